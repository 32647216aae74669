"""Model files (no pickle, versioned), tables, xarray input and atomic writes."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import funbat
from funbat import FunBaT, FunBaTCP, InputError
from funbat.files import (
    atomic_write,
    from_dataarray,
    read_table,
    select_columns,
    write_table,
)
from funbat.io import FORMAT_VERSION, read_metadata


def small_data(n: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    lat = rng.uniform(0, 10, n).round(1)
    days = rng.integers(0, 90, n)
    X = pd.DataFrame({"lat": lat, "day": pd.Timestamp("2021-01-01") + pd.to_timedelta(days, "D")})
    y = np.sin(lat / 2) * np.cos(days / 20) + 0.1 * rng.normal(size=n)
    return X, y


@pytest.fixture(scope="module")
def fitted():
    X, y = small_data()
    tucker = FunBaT(rank=2, max_iter=8, random_state=0).fit(X, y)
    cp = FunBaTCP(rank=2, max_iter=4, kernel="matern12", random_state=1).fit(X, y)
    return X, y, tucker, cp


def _query(X):
    """Training rows plus coordinates between and beyond them."""
    new = pd.DataFrame(
        {
            "lat": [-1.0, 0.05, 4.44, 11.0],
            "day": pd.to_datetime(["2020-12-01", "2021-01-01", "2021-02-03", "2021-06-01"]),
        }
    )
    return pd.concat([X, new], ignore_index=True)


# -- model files ------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["tucker", "cp"])
def test_round_trip_predictions_are_identical(fitted, tmp_path, which):
    X, _, tucker, cp = fitted
    model = tucker if which == "tucker" else cp
    path = tmp_path / "m.funbat"
    model.save(path)
    loaded = type(model).load(path)
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    Q = _query(X)
    m0, s0 = model.predict(Q, return_std=True)
    m1, s1 = loaded.predict(Q, return_std=True)
    np.testing.assert_array_equal(m0, m1)
    np.testing.assert_array_equal(s0, s1)
    for k in range(2):
        a, b = model.latent_functions(k, Q.iloc[:, k]), loaded.latent_functions(k, Q.iloc[:, k])
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    for attr in ("modes_", "ranks_", "n_train_", "elbo_", "n_iter_", "converged_", "kernels_",
                 "noise_variance_", "fit_time_"):  # fmt: skip
        assert getattr(loaded, attr) == getattr(model, attr), attr
    for attr in ("elbo_history_", "lengthscales_", "core_", "feature_names_in_"):
        np.testing.assert_array_equal(getattr(loaded, attr), getattr(model, attr))
    # Every attribute set by fit is restored with its type.
    assert set(vars(loaded)) == set(vars(model))
    for k, v in vars(model).items():
        assert type(getattr(loaded, k)) is type(v), k


def test_file_is_plain_json_and_npy(fitted, tmp_path):
    _, _, tucker, _ = fitted
    path = tmp_path / "m.funbat"
    funbat.save(tucker, path)
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("metadata.json"))
        names = zf.namelist()
    assert meta["format"] == "funbat-model" and meta["format_version"] == FORMAT_VERSION == 3
    assert meta["class"] == "FunBaT" and meta["funbat_version"] == funbat.__version__
    assert meta["params"]["rank"] == 2 and meta["params"]["kernel"] == "matern32"
    result = meta["result"]  # the fit result, its records named by the documented schema
    assert result["__record__"] == "FitResult"
    encodings = result["fields"]["encodings"]["__tuple__"]
    assert [e["fields"]["name"] for e in encodings] == ["lat", "day"]
    assert result["fields"]["modes"]["__tuple__"][0]["__record__"] == "ModeState"
    assert "result/modes/0/posterior/smoothed_covs.npy" in names
    with np.load(path, allow_pickle=False) as npz:  # an npz reader sees the arrays
        assert npz["result/modes/1/coords"].dtype == np.float64
        assert npz["result/core/cov"].shape == (4, 4)
    assert read_metadata(path)["class"] == "FunBaT"


def test_save_is_atomic_and_refuses_unfitted(fitted, tmp_path):
    _, _, tucker, _ = fitted
    with pytest.raises(InputError, match="not fitted"):
        FunBaT().save(tmp_path / "x.funbat")
    assert not list(tmp_path.iterdir())
    with pytest.raises(InputError, match="holds a FunBaT, not a FunBaTCP"):
        tucker.save(tmp_path / "t.funbat")
        FunBaTCP.load(tmp_path / "t.funbat")


def _kinds_data(n: int = 90, seed: int = 0):
    """Points (a, b) on 8 sites, a time t, a text category and a numeric one."""
    rng = np.random.default_rng(seed)
    sites = rng.uniform(size=(8, 2)) * [10.0, 4.0]
    i = rng.integers(0, 8, n)
    t = rng.uniform(0, 1, n).round(2)
    X = pd.DataFrame(
        {
            "a": sites[i, 0],
            "b": sites[i, 1],
            "t": t,
            "station": rng.choice(["north", "south", "east"], n),
            "level": rng.integers(1, 4, n),
        }
    )
    y = np.sin(X["a"] / 3) * np.cos(3 * t) + 0.3 * X["level"] + 0.1 * rng.normal(size=n)
    return X, y.to_numpy()


def _assert_same_model(model, loaded, Q):
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    m0, s0 = model.predict(Q, return_std=True)
    m1, s1 = loaded.predict(Q, return_std=True)
    np.testing.assert_array_equal(m0, m1)
    np.testing.assert_array_equal(s0, s1)
    assert set(vars(loaded)) == set(vars(model))
    for k, v in vars(model).items():
        assert type(getattr(loaded, k)) is type(v), k
    assert loaded.mode_kinds_ == model.mode_kinds_
    for a, b in zip(loaded.result_.encodings, model.result_.encodings):
        assert a.kind == b.kind and a.columns == b.columns
        np.testing.assert_array_equal(a.offset, b.offset)
        np.testing.assert_array_equal(a.scale, b.scale)
        if b.categories is not None:
            assert list(a.categories) == list(b.categories)


def test_round_trip_spatial_and_continuous(tmp_path):
    X, y = _kinds_data()
    model = FunBaT(rank=2, modes=[("a", "b"), "t"], max_iter=6, random_state=0)
    model.fit(X, y)
    assert model.mode_kinds_ == ["spatial", "continuous"]
    path = tmp_path / "s.funbat"
    model.save(path)
    loaded = FunBaT.load(path)
    assert loaded.modes == [("a", "b"), "t"]
    new = pd.DataFrame({"a": [0.5, 20.0], "b": [1.0, -3.0], "t": [0.333, 1.5]})
    _assert_same_model(model, loaded, pd.concat([X[["a", "b", "t"]], new], ignore_index=True))
    pts = [[5.0, 2.0], [1.0, 1.0]]
    for a, b in zip(model.latent_functions("a+b", pts), loaded.latent_functions("a+b", pts)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.lengthscales_[0], model.lengthscales_[0])
    assert read_metadata(path)["format_version"] == FORMAT_VERSION


def test_round_trip_discrete_and_continuous(tmp_path):
    X, y = _kinds_data()
    X = X[["station", "level", "t"]]
    model = FunBaTCP(rank=2, discrete=["level"], max_iter=6, random_state=0).fit(X, y)
    assert model.mode_kinds_ == ["discrete", "discrete", "continuous"]
    path = tmp_path / "d.funbat"
    model.save(path)
    meta = read_metadata(path)
    encodings = meta["result"]["fields"]["encodings"]["__tuple__"]
    assert encodings[1]["fields"]["categories"] == {
        "__objects__": [1, 2, 3]
    }
    loaded = FunBaTCP.load(path)
    _assert_same_model(model, loaded, X.iloc[::-1])
    with pytest.raises(InputError, match="not seen in training"):
        loaded.predict(X.assign(station="west"))


def test_version_1_files_of_continuous_models_still_load(tmp_path):
    """A file from before modes had kinds: encodings without kind, columns, categories."""
    legacy = Path(__file__).parent / "golden" / "legacy_models" / "tucker.funbat"
    model = funbat.load(legacy)

    def as_version_1(m):
        m["format_version"] = 1
        for p in ("modes", "discrete"):
            m["params"].pop(p, None)
        m["state"].pop("mode_kinds_", None)
        for enc in m["state"]["_encodings"]["__list__"]:
            for f in ("kind", "columns", "categories"):
                enc["fields"].pop(f, None)

    old = funbat.load(_rewrite(legacy, tmp_path / "v1.funbat", as_version_1))
    Q = pd.DataFrame(json.loads((legacy.parent / "expected.json").read_text())
                     ["tucker.funbat"]["query"]["values"])  # fmt: skip
    np.testing.assert_array_equal(old.predict(Q), model.predict(Q))
    assert old.mode_kinds_ == ["continuous"] * len(model.modes_)


def _rewrite(src: Path, dst: Path, edit_meta=None, drop=()):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            if item in drop:
                continue
            data = zin.read(item)
            if item == "metadata.json" and edit_meta:
                meta = json.loads(data)
                edit_meta(meta)
                data = json.dumps(meta).encode()
            zout.writestr(item, data)
    return dst


def test_bad_model_files_are_clear_errors(fitted, tmp_path):
    _, _, tucker, _ = fitted
    good = tmp_path / "good.funbat"
    tucker.save(good)

    def newer(m):
        m["format_version"] = FORMAT_VERSION + 1

    def foreign_class(m):
        m["result"]["fields"]["core"]["__record__"] = "os:system"

    def wrong_format(m):
        m["format"] = "something-else"

    text = tmp_path / "t.csv"
    text.write_text("a,b\n1,2\n")
    truncated = tmp_path / "cut.funbat"
    truncated.write_bytes(good.read_bytes()[:2000])
    cases = {
        text: "is not a funbat model file",
        truncated: "is not a funbat model file|damaged",
        tmp_path / "missing.funbat": "does not exist",
        _rewrite(good, tmp_path / "new.funbat", newer): "newer funbat.*upgrade",
        _rewrite(good, tmp_path / "fmt.funbat", wrong_format): "is not a funbat model file",
        _rewrite(good, tmp_path / "os.funbat", foreign_class): "damaged.*unknown record 'os:system'",
        _rewrite(good, tmp_path / "nometa.funbat", drop=["metadata.json"]): "not a funbat model",
        _rewrite(good, tmp_path / "noarr.funbat", drop=["result/core/cov.npy"]): "damaged.*missing",
    }
    for path, pattern in cases.items():
        with pytest.raises(InputError, match=pattern):
            funbat.load(path)


def test_loading_never_unpickles(fitted, tmp_path):
    """An object array (which needs pickle) inside the file is refused, not loaded."""
    _, _, tucker, _ = fitted
    good = tmp_path / "good.funbat"
    tucker.save(good)
    evil = tmp_path / "evil.funbat"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(evil, "w") as zout:
        for item in zin.namelist():
            if item == "result/core/cov.npy":
                with zout.open(item, "w") as f:
                    np.lib.format.write_array(f, np.array([{"x": 1}], dtype=object))
            else:
                zout.writestr(item, zin.read(item))
    with pytest.raises(InputError, match="damaged"):
        funbat.load(evil)


# -- tables -----------------------------------------------------------------------------


def test_read_table_csv_parquet_and_dates(tmp_path):
    df = pd.DataFrame({"x": [1.5, 2.5], "when": ["2020-01-01", "2020-03-01"], "y": [1, 2]})
    df.to_csv(tmp_path / "a.csv", index=False)
    df.to_parquet(tmp_path / "a.parquet")
    for name in ("a.csv", "a.parquet"):
        t = read_table(tmp_path / name)
        assert pd.api.types.is_datetime64_any_dtype(t["when"])
        assert t["when"].iloc[1] == pd.Timestamp("2020-03-01")
        assert t["x"].tolist() == [1.5, 2.5]
    # Text that is not a date stays text (and is then refused as a coordinate).
    pd.DataFrame({"c": ["a", "b"], "y": [1, 2]}).to_csv(tmp_path / "b.csv", index=False)
    assert read_table(tmp_path / "b.csv")["c"].tolist() == ["a", "b"]


def test_write_table_round_trip_and_atomicity(tmp_path):
    df = pd.DataFrame({"x": [1.0, 2.0], "when": pd.to_datetime(["2020-01-01", "2020-01-02"])})
    write_table(df, tmp_path / "o.csv")
    assert (tmp_path / "o.csv").read_text().splitlines()[1] == "1.0,2020-01-01"
    write_table(df, tmp_path / "o.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "o.parquet"), df)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.csv", "o.parquet"]
    # Not the 0600 of a temporary file: the umask's default, or the replaced file's mode.
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "o.csv").stat().st_mode & 0o777 == 0o666 & ~mask
    os.chmod(tmp_path / "o.csv", 0o640)
    write_table(df, tmp_path / "o.csv")
    assert (tmp_path / "o.csv").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_write_leaves_nothing_on_failure(tmp_path, error):
    target = tmp_path / "out.txt"
    with pytest.raises(error), atomic_write(target, "w") as f:
        f.write("partial")
        raise error()
    assert list(tmp_path.iterdir()) == []
    target.write_text("good")
    with pytest.raises(error), atomic_write(target, "w") as f:
        f.write("bad")
        raise error()
    assert target.read_text() == "good"
    assert list(tmp_path.iterdir()) == [target]


def test_select_columns():
    df = pd.DataFrame({"a": [1.0, np.nan, 3.0, 4.0], "b": [1, 2, 3, 4], "y": [1, 2, np.inf, 4]})
    X, y, dropped = select_columns(df, None, "y", dropna=True)
    assert list(X.columns) == ["a", "b"] and dropped == 2
    assert X["a"].tolist() == [1.0, 4.0] and y.tolist() == [1.0, 4.0]
    with pytest.raises(InputError, match="column 'a' has 1 missing"):
        select_columns(df, None, "y")
    with pytest.raises(InputError, match="its columns are a, b, y"):
        select_columns(df, ["a", "c"], "y")
    with pytest.raises(InputError, match="both the target and a coordinate"):
        select_columns(df, ["a", "y"], "y")


# -- xarray -----------------------------------------------------------------------------


def test_dataarray_in_grid_out(fitted):
    xr = pytest.importorskip("xarray")
    _, _, tucker, _ = fitted
    lat = np.array([0.5, 1.0, 2.0])
    day = pd.to_datetime(["2021-01-01", "2021-01-05"])
    values = np.array([[1.0, np.nan], [2.0, 3.0], [np.nan, 4.0]])
    da = xr.DataArray(values, coords={"lat": lat, "day": day}, dims=("lat", "day"))
    X, y = from_dataarray(da)
    assert list(X.columns) == ["lat", "day"] and y.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert X["lat"].tolist() == [0.5, 1.0, 1.0, 2.0]
    assert pd.api.types.is_datetime64_any_dtype(X["day"])
    with pytest.raises(InputError, match="give y"):
        FunBaT().fit(values)

    grid = tucker.predict_grid(lat=lat)  # 'day' defaults to the training dates
    assert grid["mean"].dims == ("lat", "day")
    assert grid.sizes["lat"] == 3 and grid.sizes["day"] == tucker.result_.encodings[1].unique.size
    gx = funbat.predict_grid(tucker, da)
    assert gx["mean"].shape == (3, 2)
    flat = pd.DataFrame({"lat": np.repeat(lat, 2), "day": np.tile(day, 3)})
    mean, std = tucker.predict(flat, return_std=True)
    np.testing.assert_allclose(gx["mean"].values.reshape(-1), mean, rtol=1e-12)
    np.testing.assert_allclose(gx["std"].values.reshape(-1), std, rtol=1e-12)
    lower, upper = tucker.predict_interval(flat, 0.95)  # the model's own interval
    np.testing.assert_allclose(gx["lower95"].values.reshape(-1), lower, rtol=1e-9)
    np.testing.assert_allclose(gx["upper95"].values.reshape(-1), upper, rtol=1e-9)
    with pytest.raises(InputError, match="not a mode"):
        tucker.predict_grid(depth=[1.0])


def test_fit_on_a_dataarray():
    xr = pytest.importorskip("xarray")
    X, y = small_data()
    table = X.assign(y=y).groupby(["lat", "day"]).y.mean()
    da = table.to_xarray()  # a sparse grid: unobserved cells are NaN
    model = FunBaT(rank=2, max_iter=3, random_state=0).fit(da)
    assert isinstance(da, xr.DataArray)
    assert model.modes_ == ["lat", "day"] and model.n_train_ == int(np.isfinite(da.values).sum())

"""The command line: every command on small generated data, every bad input's message.

Commands run in-process through :func:`funbat.cli.main` (the console entry point), so
JAX compilations are shared between tests. Fits use few sweeps on a small table.
"""

from __future__ import annotations

import contextlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import funbat
from funbat import cli

SHARED_DATA = Path(__file__).parents[1] / ".." / "shared" / "data"
BEIJING = SHARED_DATA / "beijing_pm25.csv"


def small_table(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """Two modes (a number and an ISO date) and a smooth target with noise."""
    rng = np.random.default_rng(seed)
    lat = rng.uniform(0, 10, n).round(1)
    days = rng.integers(0, 90, n)
    date = (pd.Timestamp("2021-01-01") + pd.to_timedelta(days, "D")).strftime("%Y-%m-%d")
    y = np.sin(lat / 2) * np.cos(days / 20) + 0.1 * rng.normal(size=n)
    return pd.DataFrame({"lat": lat, "day": date, "y": y.round(5)})


def run(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with the small table, a copy with 3 missing targets, and a model fitted on
    the latter with --dropna (and what the fit printed on stderr)."""
    d = tmp_path_factory.mktemp("cli")
    small_table().to_csv(d / "data.csv", index=False)
    bad = small_table().astype({"y": object})
    bad.loc[[3, 50, 77], "y"] = np.nan
    bad.to_csv(d / "with_nan.csv", index=False)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(
            ["fit", str(d / "with_nan.csv"), "-t", "y", "--rank", "2", "--max-iter", "8",
             "--dropna", "-o", str(d / "model.funbat")]
        )  # fmt: skip
    assert code == 0, err.getvalue()
    (d / "fit_stderr.txt").write_text(err.getvalue())
    return d


def kinds_table(n: int = 90, seed: int = 0) -> pd.DataFrame:
    """Points (a, b) on 8 sites, a continuous c, a text category s and an integer one."""
    rng = np.random.default_rng(seed)
    sites = rng.uniform(size=(8, 2)).round(3) * [10.0, 4.0]
    i = rng.integers(0, 8, n)
    c = rng.uniform(0, 1, n).round(2)
    s = rng.choice(["north", "south", "east"], n)
    lvl = rng.integers(1, 4, n)
    y = np.sin(sites[i, 0] / 3) * np.cos(3 * c) + 0.3 * lvl + 0.1 * rng.normal(size=n)
    return pd.DataFrame(
        {"a": sites[i, 0], "b": sites[i, 1], "c": c, "s": s, "lvl": lvl, "y": y.round(5)}
    )


@pytest.fixture(scope="module")
def kinds(work):
    """A model with a spatial mode a+b, a continuous c, a text (discrete) s and a declared
    discrete lvl, fitted through the CLI."""
    kinds_table().to_csv(work / "kinds.csv", index=False)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(
            ["fit", str(work / "kinds.csv"), "-t", "y", "--coords", "a+b,c,s,lvl",
             "--discrete", "lvl", "-r", "2", "--max-iter", "6", "-o", str(work / "kinds.funbat")]
        )  # fmt: skip
    assert code == 0, err.getvalue()
    assert "a+b (spatial), c, s (discrete), lvl (discrete)" in err.getvalue()
    return work / "kinds.funbat"


# -- help -----------------------------------------------------------------------------


@pytest.mark.parametrize("command", [None, "fit", "predict", "evaluate", "plot", "info", "demo"])
def test_help_is_useful(capsys, command):
    args = ["--help"] if command is None else [command, "--help"]
    code, out, err = run(capsys, *args)
    assert code == 0 and err == ""
    assert "Usage: funbat" in out
    if command is None:
        for name in ("fit", "predict", "evaluate", "plot", "info", "demo"):
            assert name in out
    if command in ("fit", "evaluate"):
        for option in ("--target", "--coords", "--model", "--rank", "--kernel", "--max-iter"):
            assert option in out


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"funbat {funbat.__version__}"


# -- commands -------------------------------------------------------------------------


def test_fit_saves_a_model_and_reports_dropped_rows(work):
    model = funbat.load(work / "model.funbat")
    assert isinstance(model, funbat.FunBaT)
    assert model.modes_ == ["lat", "day"] and model.n_train_ == 117
    assert model.ranks_ == (2, 2) and model.n_iter_ <= 8
    assert model.result_.encodings[1].is_datetime  # ISO dates in the CSV are a time mode
    err = (work / "fit_stderr.txt").read_text()
    assert "dropped 3 row(s) with missing or infinite values" in err
    assert "fitted FunBaT rank 2x2 on 117 rows, modes lat, day" in err
    assert not [f for f in files_in(work) if f.endswith(".tmp")]


def test_fit_progress_bar_on_a_terminal_only(work, capsys, monkeypatch):
    args = ["fit", work / "data.csv", "-t", "y", "-c", "lat,day", "-r", "2", "--max-iter", "2",
            "-o", work / "quiet.funbat"]  # fmt: skip
    code, out, err = run(capsys, *args, "-q")
    assert code == 0 and out == "" and err == ""
    assert (work / "quiet.funbat").exists()
    code, out, err = run(capsys, *args)  # not a terminal: a summary line, no bar
    assert code == 0 and out == "" and len(err.strip().splitlines()) == 1

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    monkeypatch.setattr(cli.sys, "stderr", term)
    assert cli.main([str(a) for a in args]) == 0
    assert "ELBO" in term.getvalue() and "sweep" in term.getvalue()


def test_predict_writes_rows_and_intervals(work, capsys):
    code, _, err = run(capsys, "predict", work / "model.funbat", work / "data.csv", "-o",
                       work / "pred.csv")  # fmt: skip
    assert code == 0 and "wrote 120 predictions" in err
    pred = pd.read_csv(work / "pred.csv")
    assert list(pred.columns) == ["lat", "day", "y", "mean", "std", "lower95", "upper95"]
    data = small_table()
    pd.testing.assert_frame_equal(pred[["lat", "day", "y"]], data)
    model = funbat.load(work / "model.funbat")
    X = data[["lat", "day"]].assign(day=pd.to_datetime(data.day))
    mean, std = model.predict(X, return_std=True)
    np.testing.assert_allclose(pred["mean"], mean, rtol=1e-12)
    np.testing.assert_allclose(pred["std"], std, rtol=1e-12)
    lower, upper = model.predict_interval(X, 0.95)  # the recalibrated (Student-t) interval
    np.testing.assert_allclose(pred["lower95"], lower, rtol=1e-9)
    np.testing.assert_allclose(pred["upper95"], upper, rtol=1e-9)
    # Parquet out, and extra columns carried through in order.
    code, _, _ = run(capsys, "predict", work / "model.funbat", work / "pred.csv", "-o",
                     work / "pred.parquet")  # fmt: skip
    assert code == 2  # pred.csv already has a 'mean' column: refused, nothing written
    assert not (work / "pred.parquet").exists()
    data.assign(station="A").to_parquet(work / "in.parquet")
    code, _, _ = run(capsys, "predict", work / "model.funbat", work / "in.parquet", "-o",
                     work / "pred.parquet")  # fmt: skip
    assert code == 0
    pq = pd.read_parquet(work / "pred.parquet")
    assert list(pq.columns[:4]) == ["lat", "day", "y", "station"]
    np.testing.assert_allclose(pq["mean"], mean, rtol=1e-12)


def test_info_describes_the_model(work, capsys):
    code, out, _ = run(capsys, "info", work / "model.funbat")
    assert code == 0
    for text in ("FunBaT model", "117 rows, 2 modes", "lat", "day", "2021-01-01", "matern32",
                 "noise std", "ELBO", "days"):  # fmt: skip
        assert text in out
    assert "recalibrated on 117 leave-one-out residuals" in out
    code, out, _ = run(capsys, "info", work / "model.funbat", "--json")
    d = json.loads(out)
    assert d["model"] == "FunBaT" and d["n_train"] == 117
    assert d["noise_dof"] is None and d["recalibration"]["n"] == 117
    assert [m["name"] for m in d["modes"]] == ["lat", "day"]
    assert d["modes"][1]["kind"] == "date" and d["modes"][0]["rank"] == 2
    assert d["funbat_version"] == funbat.__version__


def test_n_init_fits_several_starts_and_info_lists_them(work, capsys):
    code, _, err = run(capsys, "fit", work / "data.csv", "-t", "y", "--rank", "2", "--max-iter",
                       "6", "--n-init", "2", "-o", work / "n2.funbat")  # fmt: skip
    assert code == 0, err
    code, out, _ = run(capsys, "info", work / "n2.funbat", "--json")
    d = json.loads(out)
    assert len(d["init_elbos"]) == 2 and d["elbo"] == max(d["init_elbos"])
    code, out, _ = run(capsys, "info", work / "n2.funbat")
    assert "starts    2, final ELBOs" in out
    code, out, _ = run(capsys, "info", work / "model.funbat")
    assert "starts" not in out  # one start: nothing to compare


def test_no_recalibrate_keeps_the_gaussian_predictive(work, capsys):
    code, _, _ = run(capsys, "fit", work / "data.csv", "-t", "y", "--rank", "2", "--max-iter",
                     "8", "--no-recalibrate", "-q", "-o", work / "g.funbat")  # fmt: skip
    assert code == 0
    code, out, _ = run(capsys, "info", work / "g.funbat")
    assert code == 0 and "noise std" in out and "recalibrated" not in out
    code, out, _ = run(capsys, "info", work / "g.funbat", "--json")
    assert json.loads(out)["recalibration"] is None
    model = funbat.load(work / "g.funbat")
    assert model.recalibration_ is None and model.dof_ == np.inf
    X = small_table()[["lat", "day"]].assign(day=lambda d: pd.to_datetime(d.day))
    mean, std = model.predict(X, return_std=True)
    lower, upper = model.predict_interval(X, 0.95)
    np.testing.assert_allclose(upper - lower, 2 * 1.959964 * std, rtol=1e-6)


def test_learn_intercept_fit_and_info(work, capsys):
    code, _, err = run(capsys, "fit", work / "data.csv", "-t", "y", "--rank", "2", "--max-iter",
                       "15", "--learn-intercept", "-q", "-o", work / "b.funbat")  # fmt: skip
    assert code == 0, err
    model = funbat.load(work / "b.funbat")
    assert model.learn_intercept and model.result_.offset is not None
    code, out, _ = run(capsys, "info", work / "b.funbat")
    assert f"intercept {model.intercept_:.6g} (learned, target units)" in out
    code, out, _ = run(capsys, "info", work / "model.funbat")
    assert "intercept" not in out  # the targets' mean: nothing learned to report
    code, _, err = run(capsys, "fit", work / "data.csv", "-t", "y", "--learn-intercept",
                       "--likelihood", "student_t", "-o", work / "bt.funbat")  # fmt: skip
    assert code == 2 and "learn_intercept=True needs likelihood='gaussian'" in err
    assert not (work / "bt.funbat").exists()


def test_student_t_fit_info_and_predict_intervals(work, capsys):
    code, _, _ = run(capsys, "fit", work / "data.csv", "-t", "y", "--rank", "2", "--max-iter",
                     "15", "--likelihood", "student_t", "-q", "-o", work / "t.funbat")  # fmt: skip
    assert code == 0
    code, out, _ = run(capsys, "info", work / "t.funbat")
    assert code == 0 and "Student-t, scale" in out and "degrees of freedom" in out
    code, out, _ = run(capsys, "info", work / "t.funbat", "--json")
    model = funbat.load(work / "t.funbat")
    assert json.loads(out)["noise_dof"] == pytest.approx(model.dof_)
    _check_predict_writes_the_model_interval(work, capsys, "t")


def test_noise_mode_fit_info_and_predict_intervals(work, capsys):
    code, _, _ = run(capsys, "fit", work / "data.csv", "-t", "y", "--rank", "2", "--max-iter",
                     "15", "--noise-mode", "day", "-q", "-o", work / "nm.funbat")  # fmt: skip
    assert code == 0
    model = funbat.load(work / "nm.funbat")
    assert model.noise_mode_ == "day"
    code, out, _ = run(capsys, "info", work / "nm.funbat")
    assert code == 0 and "noise     varies along 'day'" in out
    code, out, _ = run(capsys, "info", work / "nm.funbat", "--json")
    d = json.loads(out)
    assert d["noise_mode"] == "day" and d["noise_group_dof"] == pytest.approx(
        model.noise_group_dof_
    )
    lo, mid, hi = d["noise_scale_factors"]
    assert lo <= mid <= hi
    _check_predict_writes_the_model_interval(work, capsys, "nm")


def _check_predict_writes_the_model_interval(work, capsys, name):
    """``funbat predict`` with the model ``work/<name>.funbat`` writes its own 95% interval."""
    code, _, _ = run(capsys, "predict", work / f"{name}.funbat", work / "data.csv", "-o",
                     work / f"{name}_pred.csv", "-q")  # fmt: skip
    assert code == 0
    pred = pd.read_csv(work / f"{name}_pred.csv")
    data = small_table()
    model = funbat.load(work / f"{name}.funbat")
    lo, hi = model.predict_interval(data[["lat", "day"]].assign(day=pd.to_datetime(data.day)))
    np.testing.assert_allclose(pred["lower95"], lo, rtol=1e-10)
    np.testing.assert_allclose(pred["upper95"], hi, rtol=1e-10)


def test_plot_writes_a_png(work, capsys):
    code, _, err = run(capsys, "plot", work / "model.funbat", "-o", work / "latent.png",
                       "--points", "50")  # fmt: skip
    assert code == 0 and "wrote" in err
    assert (work / "latent.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_json_and_table(work, capsys):
    code, out, _ = run(capsys, "evaluate", work / "data.csv", "-t", "y", "-r", "2",
                       "--max-iter", "3", "--splits", "2", "--json")  # fmt: skip
    assert code == 0
    res = json.loads(out)
    assert [s["split"] for s in res["splits"]] == [0, 1]
    assert all(s["n_test"] == 24 and s["n_train"] == 96 for s in res["splits"])
    for m in ("rmse", "mae", "nlpd", "coverage95", "fit_time_s"):
        vals = [s[m] for s in res["splits"]]
        assert res["summary"][m]["mean"] == pytest.approx(np.mean(vals))
        assert res["summary"][m]["std"] == pytest.approx(np.std(vals, ddof=1))
    assert 0 <= res["summary"]["coverage95"]["mean"] <= 1
    code, out, _ = run(capsys, "evaluate", work / "data.csv", "-t", "y", "-r", "2",
                       "--max-iter", "3", "--splits", "1")  # fmt: skip
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[1].split() == ["split", "n_train", "n_test", "rmse", "mae", "nlpd",
                                "coverage95", "fit_time_s"]  # fmt: skip
    assert lines[2].split()[:3] == ["0", "96", "24"]
    assert lines[-2].split()[0] == "mean" and lines[-1].split()[0] == "std"


def test_fit_predict_info_plot_with_spatial_and_discrete_modes(work, kinds, capsys):
    model = funbat.load(kinds)
    assert model.modes_ == ["a+b", "c", "s", "lvl"]
    assert model.mode_kinds_ == ["spatial", "continuous", "discrete", "discrete"]
    # predict reads the spatial mode's columns, in any column order
    data = kinds_table()[["y", "lvl", "s", "c", "b", "a"]]
    data.to_csv(work / "kinds_in.csv", index=False)
    code, _, err = run(capsys, "predict", kinds, work / "kinds_in.csv", "-o",
                       work / "kinds_pred.csv")  # fmt: skip
    assert code == 0, err
    pred = pd.read_csv(work / "kinds_pred.csv")
    assert list(pred.columns) == list(data.columns) + ["mean", "std", "lower95", "upper95"]
    np.testing.assert_allclose(pred["mean"], model.predict(data), rtol=1e-12)
    # info: kinds, a spatial mode's columns and lengthscales, number of categories
    code, out, _ = run(capsys, "info", kinds)
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()[3:7]}
    assert rows["a+b"].split()[1] == "spatial" and "a " in rows["a+b"] and "b " in rows["a+b"]
    ell = model.lengthscales_[0]
    assert rows["a+b"].endswith(f"a {ell[0]:.4g}, b {ell[1]:.4g}")
    assert "discrete" in rows["s"] and "3 categories: east, north, south" in rows["s"]
    assert "3 categories: 1, 2, 3" in rows["lvl"] and "identity" in rows["lvl"]
    code, out, _ = run(capsys, "info", kinds, "--json")
    d = {m["name"]: m for m in json.loads(out)["modes"]}
    assert d["a+b"]["kind"] == "spatial" and d["a+b"]["columns"] == ["a", "b"]
    assert d["a+b"]["lengthscale"] == pytest.approx(list(ell))
    assert d["s"]["n_categories"] == 3 and d["lvl"]["categories"] == [1, 2, 3]
    assert d["c"]["kind"] == "continuous"
    # plot: maps for a+b, a line panel for c, error bars for s and lvl
    code, _, err = run(capsys, "plot", kinds, "-o", work / "kinds.png", "--points", "50")
    assert code == 0 and (work / "kinds.png").read_bytes()[:4] == b"\x89PNG"


def test_predict_array_model_with_reordered_positional_spatial_mode(work, capsys):
    """A model fitted in Python on an array with modes=[(2, 0), 1] names its columns
    x2+x0 and x1; the CLI must read those columns by name, not by position."""
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 1, (300, 3))
    y = np.sin(3 * X[:, 0]) + X[:, 2] ** 2 + np.cos(2 * X[:, 1]) + 0.05 * rng.normal(size=300)
    model = funbat.FunBaT(rank=2, modes=[(2, 0), 1], max_iter=5, random_state=0).fit(X, y)
    assert model.modes_ == ["x2+x0", "x1"]
    model.save(work / "positional.zip")
    pd.DataFrame(X[:20], columns=["x0", "x1", "x2"]).to_csv(work / "pos_in.csv", index=False)
    code, _, err = run(capsys, "predict", work / "positional.zip", work / "pos_in.csv",
                       "-o", work / "pos_pred.csv")  # fmt: skip
    assert code == 0, err
    np.testing.assert_allclose(
        pd.read_csv(work / "pos_pred.csv")["mean"], model.predict(X[:20]), rtol=1e-10
    )


def test_evaluate_with_spatial_and_discrete_modes(work, kinds, capsys):
    code, out, err = run(capsys, "evaluate", work / "kinds.csv", "-t", "y", "--coords",
                         "a+b,c,s,lvl", "--discrete", "lvl", "-r", "2", "--max-iter", "6",
                         "--splits", "1", "--json")  # fmt: skip
    assert code == 0, err
    res = json.loads(out)
    assert res["modes"] == ["a+b", "c", "s", "lvl"] and res["discrete"] == ["lvl"]
    assert res["splits"][0]["n_test"] == 18 and np.isfinite(res["summary"]["rmse"]["mean"])


def test_demo(capsys):
    code, out, _ = run(capsys, "demo", "--n", "300", "--rank", "2")
    assert code == 0
    for text in ("test RMSE", "95% coverage", "noise std", "fit time"):
        assert text in out


# -- bad input: one line on stderr, exit code 2, nothing written --------------------------


def _write(d: Path, name: str, content) -> Path:
    p = d / name
    if isinstance(content, pd.DataFrame):
        content.to_csv(p, index=False)
    elif isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)
    return p


def _bad_inputs(d: Path, model: Path, kinds: Path) -> dict[str, tuple[list, str | tuple]]:
    """name -> (arguments with OUT for the output path, expected message part, or a
    tuple of parts that must all be in it)."""
    t = small_table(10)
    newer = d / "newer.funbat"
    with zipfile.ZipFile(model) as zin, zipfile.ZipFile(newer, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "metadata.json":
                meta = json.loads(data)
                meta["format_version"] = 99
                data = json.dumps(meta).encode()
            zout.writestr(item, data)
    fit = ["fit", None, "-t", "y", "--max-iter", "2", "-o", "OUT"]

    def fit_on(path, *extra):
        return [fit[0], path, *fit[2:], *extra]

    return {
        "missing file": (fit_on(d / "nope.csv"), "file '{}' does not exist".format(d / "nope.csv")),
        "empty file": (fit_on(_write(d, "empty.csv", "")), "is empty"),
        "header only": (fit_on(_write(d, "header.csv", "lat,day,y\n")), "has no data rows"),
        "unreadable parquet": (fit_on(_write(d, "junk.parquet", "not parquet")), "cannot read"),
        "unknown extension": (fit_on(_write(d, "data.xlsx", "x")), "unknown table extension"),
        "folder as data": (fit_on(d), "unknown table extension"),
        "target absent": (
            ["fit", _write(d, "t.csv", t), "-t", "pm25", "-o", "OUT"],
            "target column 'pm25' is not in the data; its columns are lat, day, y",
        ),
        "coordinate absent": (
            fit_on(d / "t.csv", "-c", "lat,date"),
            "column 'date' is not in the data; its columns are lat, day, y",
        ),
        "non-numeric coordinate": (
            fit_on(_write(d, "nn.csv", t.assign(lat=["a"] + [1.0] * 9))),
            "column 'lat' is mostly numbers but 1 of its 10 cells are not (line 2: 'a')",
        ),
        "non-numeric target": (
            fit_on(_write(d, "nt.csv", t.assign(y=["high"] + [1.0] * 9))),
            "target column 'y' is not numeric (e.g. 'high')",
        ),
        "NaN in coordinate": (
            fit_on(_write(d, "nan.csv", t.assign(lat=[np.nan, np.nan] + [1.0] * 8))),
            "column 'lat' has 2 missing or infinite value(s); pass --dropna",
        ),
        "inf in target": (
            fit_on(_write(d, "inf.csv", t.assign(y=[np.inf] + [1.0] * 9))),
            "column 'y' has 1 missing or infinite value(s); pass --dropna",
        ),
        "one row": (fit_on(_write(d, "one.csv", t.head(1))), "need at least 2 rows"),
        "one row left after dropna": (
            fit_on(_write(d, "nan9.csv", t.assign(y=[np.nan] * 9 + [1.0])), "--dropna"),
            "need at least 2 rows",
        ),
        "rank zero": (fit_on(d / "t.csv", "--rank", "0"), "rank must be a positive integer"),
        "rank not an integer": (
            fit_on(d / "t.csv", "--rank", "1.5"),
            "rank must be a positive integer (or one per mode, comma-separated, or auto); got '1.5'",
        ),
        "rank per mode for cp": (
            fit_on(d / "t.csv", "--rank", "2,3", "--model", "cp"),
            "the cp model takes one rank",
        ),
        "unknown kernel": (  # the kernel string is parsed before the fit
            fit_on(d / "t.csv", "--kernel", "rbf"),
            ("kernel 'rbf': unknown kernel part 'rbf'; choose among [", "'matern32'"),
        ),
        "unknown model": (fit_on(d / "t.csv", "--model", "parafac"), "unknown model 'parafac'"),
        "unknown likelihood": (
            fit_on(d / "t.csv", "--likelihood", "laplace"),
            # the estimator's check_params (scikit-learn's message; the choices as a set,
            # in no fixed order)
            ("The 'likelihood' parameter of FunBaT must be a str among {", "'gaussian'",
             "'student_t'", "Got 'laplace' instead"),  # fmt: skip
        ),
        "unknown noise mode": (
            fit_on(d / "t.csv", "--noise-mode", "lon"),
            "noise_mode 'lon' is not one of the modes",
        ),
        "max-iter not a number": (fit_on(d / "t.csv", "--max-iter", "lots"), "--max-iter"),
        "n-init out of range": (
            fit_on(d / "t.csv", "--n-init", "6"),
            "The 'n_init' parameter of FunBaT must be an int in the range [1, 5]",
        ),
        "output folder missing": (
            ["fit", d / "t.csv", "-t", "y", "-o", d / "no" / "m.funbat"],
            "folder '{}' does not exist".format(d / "no"),
        ),
        "evaluate with too few rows": (
            ["evaluate", _write(d, "four.csv", t.head(4)), "-t", "y"],
            "need at least 5 rows",
        ),
        "evaluate zero splits": (["evaluate", d / "t.csv", "-t", "y", "-s", "0"], "--splits"),
        "predict with a missing mode column": (
            ["predict", model, _write(d, "nolat.csv", t.drop(columns="lat")), "-o", "OUT"],
            "the data lacks the model's mode column(s) lat; the model's modes are lat, day "
            "and the data's columns are day, y",
        ),
        "predict with numbers for a date mode": (
            ["predict", model, _write(d, "numday.csv", t.assign(day=1.0)), "-o", "OUT"],
            "column 'day' must hold dates, as in training",
        ),
        "predict with an unseen category": (
            [
                "predict",
                kinds,
                _write(d, "west.csv", kinds_table(10).assign(s="west")),
                "-o",
                "OUT",
            ],
            "mode 's' is discrete and 1 category was not seen in training (e.g. 'west')",
        ),  # fmt: skip
        "predict without a spatial mode's column": (
            [
                "predict",
                kinds,
                _write(d, "nob.csv", kinds_table(10).drop(columns="b")),
                "-o",
                "OUT",
            ],
            "the data lacks the model's mode column(s) b; the model's modes are a+b, c, s, lvl",
        ),  # fmt: skip
        "empty column in a spatial mode": (
            fit_on(d / "t.csv", "--coords", "lat+,day"),
            "+ joining the columns of a spatial mode",
        ),
        "discrete column not a mode": (
            fit_on(d / "t.csv", "--coords", "lat", "--discrete", "day"),
            "--discrete column 'day' is not a mode column; the mode columns are lat",
        ),
        "discrete column in a spatial mode": (
            fit_on(d / "t.csv", "--coords", "lat+day", "--discrete", "lat"),
            "spatial mode 'lat+day' cannot contain a discrete column",
        ),
        "dates in a spatial mode": (
            fit_on(d / "t.csv", "--coords", "lat+day"),
            "column 'day' of spatial mode 'lat+day' holds dates",
        ),
        "predict to an unknown format": (
            ["predict", model, d / "t.csv", "-o", "OUT.xlsx"],
            "unknown table extension",
        ),  # fmt: skip
        "model is a csv": (
            ["predict", d / "t.csv", d / "t.csv", "-o", "OUT"],
            "is not a funbat model file",
        ),  # fmt: skip
        "model is a foreign zip": (
            ["info", _write(d, "foreign.zip", _zip_bytes({"a.txt": b"hi"}))],
            "is not a funbat model file",
        ),
        "model is missing": (["plot", d / "gone.funbat", "-o", "OUT.png"], "does not exist"),
        "model from a newer format": (["info", newer], "newer funbat"),
        "plot to an unknown format": (["plot", model, "-o", "OUT.xyz"], "cannot save a picture"),
    }


def _zip_bytes(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, v in entries.items():
            zf.writestr(k, v)
    return buf.getvalue()


def test_every_bad_input_is_one_line_exit_2_and_writes_nothing(work, kinds, tmp_path, capsys):
    cases = _bad_inputs(tmp_path, work / "model.funbat", kinds)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = files_in(tmp_path)
    failures = []
    for name, (args, expected) in cases.items():
        out = out_dir / "result.csv"
        argv = []
        for a in args:
            a = str(a)
            if a.startswith("OUT"):
                a = str(out_dir / ("result" + (a[3:] or ".csv")))
            argv.append(a)
        code, stdout, stderr = run(capsys, *argv)
        lines = stderr.strip().splitlines()
        parts = expected if isinstance(expected, tuple) else (expected,)
        problems = []
        if code != 2:
            problems.append(f"exit code {code}")
        if len(lines) != 1 or not lines[0].startswith("funbat: error: "):
            problems.append(f"stderr is not one error line: {stderr!r}")
        elif not all(part in lines[0] for part in parts):
            problems.append(f"message {lines[0]!r} lacks {expected!r}")
        if "Traceback" in stderr + stdout:
            problems.append("traceback")
        if any(out_dir.iterdir()) or out.exists():
            problems.append(f"wrote {sorted(files_in(out_dir))}")
        if problems:
            failures.append(f"{name}: {'; '.join(problems)}")
    assert not failures, "\n".join(failures)
    assert not [f for f in files_in(tmp_path) - before if f.endswith(".tmp")]


def test_failed_predict_keeps_the_previous_output(work, capsys):
    good = work / "keep.csv"
    good.write_text("previous good output\n")
    code, _, _ = run(capsys, "predict", work / "model.funbat", work / "nope.csv", "-o", good)
    assert code == 2
    assert good.read_text() == "previous good output\n"


# -- real data ------------------------------------------------------------------------


@pytest.mark.skipif(not BEIJING.exists(), reason=f"shared data not found at {SHARED_DATA}")
def test_fit_predict_on_beijing(tmp_path, capsys):
    code, _, err = run(capsys, "fit", BEIJING, "-t", "pm25_z", "-r", "2", "--max-iter", "5",
                       "-o", tmp_path / "b.funbat")  # fmt: skip
    assert code == 0, err
    model = funbat.load(tmp_path / "b.funbat")
    # 29 rows repeat another exactly (the same temperature, pressure, date and target):
    # dropped, with one warning line
    assert model.modes_ == ["temp_c", "pres_hpa", "date"] and model.n_train_ == 16936
    assert "warning: 29 of 16965 rows repeat another row exactly" in err
    assert model.result_.encodings[2].is_datetime
    code, _, err = run(capsys, "predict", tmp_path / "b.funbat", BEIJING, "-o", tmp_path / "p.csv")
    assert code == 0, err
    pred = pd.read_csv(tmp_path / "p.csv")
    assert len(pred) == 16965
    rmse = float(np.sqrt(np.mean((pred["mean"] - pred["pm25_z"]) ** 2)))
    assert rmse < 0.8  # the target is a z-score: a fit explains much of its variance
    inside = (pred["lower95"] <= pred["pm25_z"]) & (pred["pm25_z"] <= pred["upper95"])
    assert 0.85 < inside.mean() <= 1.0


def test_fit_reports_a_collapsed_lengthscale_as_one_warning_line(work, capsys):
    from funbat.datasets import make_synthetic

    d = make_synthetic(5000, seed=4)
    table = d.X.iloc[1000:].assign(x1=lambda t: (t["x1"] > 0.5).astype(float), y=d.y[1000:])
    table.to_csv(work / "weak.csv", index=False)
    code, _, err = run(capsys, "fit", work / "weak.csv", "--target", "y", "-o", work / "weak.zip")
    assert code == 0
    lines = [ln for ln in err.splitlines() if "warning" in ln]
    assert lines and lines[0].startswith("funbat: warning: the learned lengthscale of mode 'x0'")
    assert (work / "weak.zip").is_file()

"""Fitting on Dask data equals fitting in memory (same data, same seed)."""

import numpy as np
import pandas as pd
import pytest

from funbat import FunBaT, FunBaTCP, FunBaTWarning, InputError
from funbat.data import as_mode_columns, encode_modes
from funbat.init import svd_init

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
from funbat.backends.dask import DaskEntries  # noqa: E402


def _table(n=1200, seed=0):
    """Three modes (one of dates), repeated coordinates, duplicate cells."""
    rng = np.random.default_rng(seed)
    a = rng.choice(np.linspace(0.0, 5.0, 25), n)
    b = rng.choice(np.linspace(-1.0, 1.0, 8), n)
    days = rng.integers(0, 20, n)
    t = pd.Timestamp("2021-03-01") + pd.to_timedelta(days, unit="D")
    y = np.sin(a) * np.cos(3 * b) + 0.5 * np.cos(days / 5.0) + 0.1 * rng.normal(size=n)
    return pd.DataFrame({"a": a, "t": t, "b": b, "value": y})


def _assert_same(p_dask, p_mem):
    np.testing.assert_allclose(p_dask, p_mem, rtol=1e-8, atol=1e-8 * np.max(np.abs(p_mem)))


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    df = _table()
    root = tmp_path_factory.mktemp("entries")
    for i, part in enumerate(np.array_split(np.arange(len(df)), 4)):
        df.iloc[part].to_parquet(root / f"part-{i}.parquet", index=False)
    return df, str(root / "*.parquet")


@pytest.mark.parametrize("cls", [FunBaT, FunBaTCP])
def test_cluster_fit_equals_in_memory_fit(client, parquet, cls):
    df, glob = parquet
    X = df[["a", "t", "b"]]
    mem = cls(rank=2, max_iter=4, tol=0.0, random_state=0).fit(X, df["value"])
    dsk = cls(rank=2, max_iter=4, tol=0.0, random_state=0).fit(glob, y="value")
    _assert_same(dsk.predict(X), mem.predict(X))
    np.testing.assert_allclose(dsk.elbo_history_, mem.elbo_history_, rtol=1e-10)
    assert dsk.modes_ == ["a", "t", "b"] and dsk.n_train_ == len(df)
    # the fitted model needs no cluster to predict, with the same columns in memory
    _, std_m = mem.predict(X.iloc[:50], return_std=True)
    _, std_d = dsk.predict(X.iloc[:50], return_std=True)
    # recalibrated on the same leave-one-out residuals, computed on the workers (their
    # order differs, so the Student-t fit agrees to its optimiser's tolerance)
    assert dsk.recalibration_.n == mem.recalibration_.n
    np.testing.assert_allclose(dsk.recalibration_[:2], mem.recalibration_[:2], rtol=1e-6)
    np.testing.assert_allclose(std_d, std_m, rtol=1e-6)


def test_cluster_learned_intercept_fit_equals_in_memory_fit(client, parquet):
    """The intercept's sums come back from the workers with the statistics; 14 sweeps
    learn it for 7 (after the warm-up)."""
    df, glob = parquet
    X = df[["a", "t", "b"]]
    kw = dict(rank=2, max_iter=14, tol=0.0, learn_intercept=True, random_state=0)
    mem = FunBaTCP(**kw).fit(X, df["value"])
    dsk = FunBaTCP(**kw).fit(glob, y="value")
    np.testing.assert_allclose(dsk.elbo_history_, mem.elbo_history_, rtol=1e-10)
    assert dsk.intercept_ == pytest.approx(mem.intercept_, rel=1e-10)
    assert mem.intercept_ != pytest.approx(df["value"].mean(), rel=1e-6)
    _assert_same(dsk.predict(X), mem.predict(X))


def test_cluster_recalibrates_on_a_random_subset_of_large_data(client, parquet, monkeypatch):
    import funbat.inference.recalibration

    monkeypatch.setattr(funbat.inference.recalibration, "MAX_RESIDUALS", 300)
    _, glob = parquet
    m = FunBaT(rank=2, max_iter=4, random_state=0).fit(glob, y="value")
    assert 200 < m.recalibration_.n < 400  # of 1,200 entries in four partitions


@pytest.mark.parametrize("cls", [FunBaT, FunBaTCP])
def test_cluster_student_t_fit_equals_in_memory_fit(client, parquet, cls):
    """Student-t weights live with their partitions on the workers; 7 sweeps use them."""
    df, glob = parquet
    X = df[["a", "t", "b"]]
    kw = dict(rank=2, max_iter=14, tol=0.0, likelihood="student_t", random_state=0)
    mem = cls(**kw).fit(X, df["value"])
    dsk = cls(**kw).fit(glob, y="value")
    np.testing.assert_allclose(dsk.elbo_history_, mem.elbo_history_, rtol=1e-9)
    assert dsk.dof_ == pytest.approx(mem.dof_, rel=1e-12)
    _assert_same(dsk.predict(X), mem.predict(X))


@pytest.mark.parametrize("likelihood", ["gaussian", "student_t"])
def test_cluster_noise_mode_fit_equals_in_memory_fit(client, parquet, likelihood):
    """A noise level per date: the groups' sums are reduced over the partitions."""
    df, glob = parquet
    X = df[["a", "t", "b"]]
    kw = dict(rank=2, max_iter=14, tol=0.0, likelihood=likelihood, noise_mode="t",
              random_state=0)  # fmt: skip
    mem = FunBaT(**kw).fit(X, df["value"])
    dsk = FunBaT(**kw).fit(glob, y="value")
    np.testing.assert_allclose(dsk.elbo_history_, mem.elbo_history_, rtol=1e-9)
    assert dsk.noise_group_dof_ == pytest.approx(mem.noise_group_dof_, rel=1e-12)
    np.testing.assert_allclose(dsk.noise_multipliers_, mem.noise_multipliers_, rtol=1e-8)
    p_d, p_m = dsk.predictive(X), mem.predictive(X)
    _assert_same(p_d.mean, p_m.mean)
    np.testing.assert_allclose(p_d.noise_scale, p_m.noise_scale, rtol=1e-8)


def test_local_scheduler_and_series_target(parquet):
    """Dask's local threaded scheduler (as without a client); the target as a dask Series."""
    df, _ = parquet
    X = df[["a", "t", "b"]]
    ddf = dd.from_pandas(df, npartitions=3)
    mem = FunBaT(rank=2, max_iter=3, tol=0.0, random_state=1).fit(X, df["value"])
    with dask.config.set(scheduler="threads"):
        dsk = FunBaT(rank=2, max_iter=3, tol=0.0, random_state=1).fit(ddf[list(X)], ddf["value"])
    _assert_same(dsk.predict(X), mem.predict(X))


@pytest.mark.parametrize("ranks", [(2, 2, 2), (3, 1, 2), (5, 5, 5)])
def test_svd_init_equals_in_memory(ranks):
    """Both branches of the randomised SVD (unfolding wider than tall and the reverse)."""
    df = _table(n=800, seed=3)
    X = df[["a", "t", "b"]]
    names, columns, is_dt = as_mode_columns(X)
    encodings, idx = encode_modes(names, columns, is_dt)
    y = df["value"].to_numpy()
    ys = (y - y.mean()) / y.std()
    sizes = [e.unique.size for e in encodings]
    ref = svd_init(idx, ys, sizes, ranks, np.random.default_rng(7))
    entries = DaskEntries.from_input(dd.from_pandas(df, npartitions=3), "value")
    for e_mem, e_dsk in zip(encodings, entries.encodings):
        np.testing.assert_array_equal(e_dsk.unique, e_mem.unique)
    got = entries.svd_init(sizes, ranks, np.random.default_rng(7))
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-10)


def test_binned_start_of_scattered_coordinates_equals_in_memory():
    """Every coordinate distinct (the binned start, :func:`funbat.init.binned_start`):
    the coarse grid's sums reduced over the partitions give the in-memory start."""
    rng = np.random.default_rng(4)
    df = pd.DataFrame({c: rng.uniform(size=900) for c in "abc"})
    df["value"] = np.sin(5 * df.a) * (1 + df.b) + 0.1 * rng.normal(size=900)
    names, columns, is_dt = as_mode_columns(df[["a", "b", "c"]])
    encodings, idx = encode_modes(names, columns, is_dt)
    y = df["value"].to_numpy()
    sizes, ranks = [e.unique.size for e in encodings], (2, 3, 2)
    ref = svd_init(idx, (y - y.mean()) / y.std(), sizes, ranks, np.random.default_rng(7))
    entries = DaskEntries.from_input(dd.from_pandas(df, npartitions=3), "value")
    got = entries.svd_init(sizes, ranks, np.random.default_rng(7))
    for r, g in zip(ref, got):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-10)


def test_bad_dask_input_says_what_to_do():
    ddf = dd.from_pandas(_table(n=50), npartitions=2)
    with pytest.raises(InputError, match="column name"):
        FunBaT().fit(ddf, np.zeros(50))
    with pytest.raises(InputError, match="not in the data"):
        FunBaT().fit(ddf, y="missing")
    with pytest.raises(InputError, match="in-memory data"):
        FunBaT(discrete=["b"]).fit(ddf, y="value")
    with pytest.raises(InputError, match="numbers or dates"):
        FunBaT().fit(ddf.assign(s="x"), y="value")
    bad = _table(n=50)
    bad.loc[3, "value"] = np.nan
    with pytest.raises(InputError, match="NaN"):
        FunBaT().fit(dd.from_pandas(bad, npartitions=2), y="value")


def test_cli_fit_dask_with_scheduler_address(client, parquet, tmp_path, capsys):
    from funbat import cli, load

    df, glob = parquet
    out = tmp_path / "model.zip"
    args = [
        "fit",
        glob,
        "-t",
        "value",
        "-o",
        out,
        "--dask",
        "--scheduler",
        client.scheduler.address,
    ]
    code = cli.main([str(a) for a in [*args, "--max-iter", "3", "--rank", "2", "-q"]])
    assert code == 0, capsys.readouterr().err
    X = df[["a", "t", "b"]]
    mem = FunBaT(rank=2, max_iter=3, random_state=0).fit(X, df["value"])
    _assert_same(load(out).predict(X), mem.predict(X))
    assert cli.main(["fit", "x.csv", "-t", "v", "-o", str(out), "--scheduler", "tcp://x:1"]) == 2
    assert "--scheduler needs --dask" in capsys.readouterr().err


def test_dask_drops_copied_rows_as_memory_does(parquet):
    df = parquet[0].head(300)
    thrice = pd.concat([df] * 3, ignore_index=True)
    fit = dict(rank=2, max_iter=5, random_state=0)
    with pytest.warns(FunBaTWarning, match="600 of 900 rows repeat another row exactly"):
        m = FunBaT(**fit).fit(dd.from_pandas(thrice, npartitions=3), y="value")
    mem = FunBaT(**fit).fit(df[["a", "t", "b"]], df["value"].to_numpy())
    assert m.n_train_ == mem.n_train_ == 300
    np.testing.assert_allclose(m.noise_variance_, mem.noise_variance_, rtol=1e-8)
    kept = FunBaT(**fit, duplicates="keep").fit(dd.from_pandas(thrice, npartitions=3), y="value")
    assert kept.n_train_ == 900


def test_dask_text_columns_are_read_as_in_memory(parquet):
    df = parquet[0].head(120).copy()
    df["a"] = df["a"].astype(object)  # numbers as objects (Dask makes them text)
    m = FunBaT(rank=1, max_iter=2, random_state=0).fit(dd.from_pandas(df, npartitions=3), y="value")
    assert m.mode_kinds_ == ["continuous"] * 3
    df.loc[97, "a"] = "n/a"
    with pytest.raises(InputError, match=r"'a' is mostly numbers but 1 of its 120 cells are not "
                       r"\(row 97: 'n/a'\)"):  # fmt: skip
        FunBaT().fit(dd.from_pandas(df, npartitions=3), y="value")

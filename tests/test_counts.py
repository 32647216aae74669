"""Yes/no and count data (Polya-Gamma augmentation): the augmentation's moments against
Monte Carlo draws and series, the bound against exact log-likelihoods, the predictive's
quadrature against direct integrals, and fits to data drawn from the model (ELBO,
recovery, calibration, coverage), files, the command line and bad targets."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats
from scipy.special import expit

from funbat import FunBaT, FunBaTCP, InputError, cli, load
from funbat.backends.base import EntryBlock
from funbat.datasets import make_synthetic_counts
from funbat.likelihoods.polya_gamma import (
    CountPredictive,
    _log_c_counted,
    _weights_block,
    pg_mean,
)


def pg_draws(rng, b, c, size, terms=400):
    """Draws of PG(b, c) from its defining series (Polson, Scott & Windle 2013, eq. 1):
    ``omega = sum_k g_k / ((k - 1/2)^2 + c^2 / (4 pi^2)) / (2 pi^2)``, ``g_k ~ Gamma(b)``;
    the truncated tail is replaced by its mean."""
    k = np.arange(1, terms + 1)
    d = (k - 0.5) ** 2 + c**2 / (4 * math.pi**2)
    g = rng.gamma(b, size=(size, terms))
    tail_k = np.arange(terms + 1, 200_000)
    tail = b * np.sum(1.0 / ((tail_k - 0.5) ** 2 + c**2 / (4 * math.pi**2)))
    return (g / d).sum(axis=1) / (2 * math.pi**2) + tail / (2 * math.pi**2)


@pytest.mark.parametrize("b, c", [(1.0, 0.0), (1.0, 2.5), (7.0, 0.3), (30.0, 6.0)])
def test_polya_gamma_mean_matches_draws_and_the_series(x64, b, c):
    rng = np.random.default_rng(0)
    draws = pg_draws(rng, b, c, 20_000)
    mean = float(pg_mean(b, c))
    assert mean == pytest.approx(draws.mean(), rel=4 * draws.std() / draws.mean() / math.sqrt(2e4))
    k = np.arange(1, 2_000_000)
    series = b * np.sum(1.0 / ((k - 0.5) ** 2 + c**2 / (4 * math.pi**2))) / (2 * math.pi**2)
    assert mean == pytest.approx(series, rel=1e-6)


@pytest.mark.parametrize("b, c", [(1.0, 1.5), (4.0, 3.0)])
def test_polya_gamma_laplace_transform_is_the_cosh_power(b, c):
    # E_{PG(b, 0)}[exp(-omega c^2 / 2)] = cosh(c / 2)^(-b): the identity behind the bound
    draws = pg_draws(np.random.default_rng(1), b, 0.0, 40_000)
    mc = np.exp(-0.5 * c**2 * draws)
    assert mc.mean() == pytest.approx(math.cosh(c / 2) ** -b, abs=4 * mc.std() / 200)


def _block(y, mean, var):
    n = len(y)
    return EntryBlock(np.zeros((n, 1), np.int32), np.asarray(y, float), np.ones(n),
                      np.asarray(mean, float), np.asarray(var, float), 0)  # fmt: skip


@pytest.mark.parametrize("family", ["bernoulli", "negative_binomial"])
def test_bound_is_the_exact_log_likelihood_when_the_latent_value_is_known(x64, family):
    # with Var[f] = 0 and q(omega) optimal, the likelihood's term plus the engine's
    # -E[omega] (z - f)^2 / 2 is log p(y | psi) exactly
    rng = np.random.default_rng(2)
    f, offset, r = rng.normal(size=40), 0.4, 2.7
    y = rng.integers(0, 2, 40) if family == "bernoulli" else rng.integers(0, 30, 40)
    if family != "bernoulli":  # counts past the histogram's bins take the per-entry path
        y[:4] = [1022, 1023, 1500, 4000]
    (w, z), (sums, hist) = _weights_block(_block(y, f, 0 * f), 0.0, 1.0, offset, r, 1.0, family,
                                          1.0, constants=True)  # fmt: skip
    w, z, sums = np.asarray(w), np.asarray(z), np.array(sums)
    if family != "bernoulli":  # the constant sum_n log C_n of the counts in the histogram
        sums[1] += float(_log_c_counted(hist, r))
    bound = sums[1] - 0.5 * np.sum(w * (z - f) ** 2)
    psi = f + offset
    if family == "bernoulli":
        exact = stats.bernoulli.logpmf(y, expit(psi)).sum()
    else:
        exact = stats.nbinom.logpmf(y, r, expit(-psi)).sum()
    assert bound == pytest.approx(exact, rel=1e-10)
    # with latent variance it is a lower bound on E_q[log p(y | psi)] (Jensen's)
    var = np.full(40, 0.5)
    (w, z), (sums, hist) = _weights_block(_block(y, f, var), 0.0, 1.0, offset, r, 1.0, family,
                                          1.0, constants=True)  # fmt: skip
    w, z, sums = np.asarray(w), np.asarray(z), np.array(sums)
    if family != "bernoulli":  # the constant sum_n log C_n of the counts in the histogram
        sums[1] += float(_log_c_counted(hist, r))
    bound = sums[1] - 0.5 * np.sum(w * ((z - f) ** 2 + var))
    x, gw = np.polynomial.hermite_e.hermegauss(60)
    psi = (f + offset)[:, None] + math.sqrt(0.5) * x
    if family == "bernoulli":
        ell = stats.bernoulli.logpmf(y[:, None], expit(psi))
    else:
        ell = stats.nbinom.logpmf(y[:, None], r, expit(-psi))
    assert bound < float((ell @ gw).sum() / math.sqrt(2 * math.pi))


def test_predictive_matches_direct_integrals():
    m, v, r = np.array([-1.0, 0.3, 1.0]), np.array([0.0, 0.4, 0.6]), 3.5
    pb = CountPredictive("bernoulli", m, v, 1.0)
    for i in range(3):
        if v[i] == 0:
            exact = expit(m[i])
        else:
            norm = stats.norm(m[i], math.sqrt(v[i]))
            exact = integrate.quad(lambda t, d=norm: expit(t) * d.pdf(t), -30, 30)[0]
        assert pb.mean[i] == pytest.approx(exact, abs=1e-8)
    np.testing.assert_allclose(pb.proba().sum(axis=1), 1.0)
    for family in ("poisson", "negative_binomial"):
        pc = CountPredictive(family, m, v, r)
        np.testing.assert_allclose(pc.mean, r * np.exp(m + v / 2), rtol=1e-6)  # log-normal mean
        ks = np.arange(0, 600)
        pmf = np.array([pc.pmf(k) for k in ks])  # (k, n)
        np.testing.assert_allclose(pmf.sum(axis=0), 1.0, atol=1e-5)  # a tail beyond 600
        cond = (lambda t, k: stats.poisson.pmf(k, r * np.exp(t))) if family == "poisson" else (
            lambda t, k: stats.nbinom.pmf(k, r, expit(-t)))  # fmt: skip
        norm = stats.norm(m[2], math.sqrt(v[2]))
        for k, rel in ((0, 1e-8), (3, 1e-8), (40, 2e-3)):  # a far tail: quadrature's worst
            exact = integrate.quad(lambda t, k=k, c=cond, d=norm: c(t, k) * d.pdf(t), -15, 15,
                                   limit=200)[0]
            assert pmf[k, 2] == pytest.approx(exact, rel=rel)
        lo, hi = pc.interval(0.9)
        cdf = np.cumsum(pmf, axis=0)
        for i in range(3):  # the smallest k with P(y <= k) >= q, counted out directly
            assert lo[i] == np.argmax(cdf[:, i] >= 0.05 - 1e-12)
            assert hi[i] == np.argmax(cdf[:, i] >= 0.95 - 1e-12)
    nb = CountPredictive("negative_binomial", m[:1], v[:1], r)
    assert nb.std[0] == pytest.approx(stats.nbinom(r, expit(-m[0])).std(), rel=1e-8)


# -- fits ---------------------------------------------------------------------------


def draw(family: str, n: int, seed: int):
    """X, y and the true log-odds / log-mean of ``n`` entries from the model."""
    return make_synthetic_counts(n, family, seed=seed)


N_TRAIN, N_TEST = 1500, 1500


@pytest.fixture(scope="module")
def fits():
    """One fit per family on the first N_TRAIN entries, and the held-out rest."""
    out = {}
    for family in ("bernoulli", "poisson", "negative_binomial"):
        X, y, truth = draw(family, N_TRAIN + N_TEST, seed=3)
        model = FunBaT(rank=2, likelihood=family, max_iter=25, duplicates="keep",
                       random_state=0).fit(X[:N_TRAIN], y[:N_TRAIN])  # fmt: skip
        out[family] = (model, X[N_TRAIN:], y[N_TRAIN:], truth[N_TRAIN:])
    return out


@pytest.mark.parametrize("family", ["bernoulli", "poisson", "negative_binomial"])
def test_elbo_never_decreases(fits, family, assert_elbo_rises):
    model = fits[family][0]
    assert_elbo_rises(model.elbo_history_, model.max_iter)
    assert model.n_iter_ > 12  # past the warm-up: the likelihood's updates ran


def test_elbo_never_decreases_cp(assert_elbo_rises):
    X, y, _ = draw("negative_binomial", 600, seed=4)
    model = FunBaTCP(rank=2, likelihood="negative_binomial", max_iter=16,
                     duplicates="keep", random_state=0).fit(X, y)  # fmt: skip
    assert_elbo_rises(model.elbo_history_, model.max_iter)


@pytest.mark.parametrize("family", ["bernoulli", "poisson", "negative_binomial"])
def test_recovers_the_latent_better_than_gaussian_noise_on_transformed_targets(fits, family):
    model, X, y, truth = fits[family]
    pred = model.predictive(X)
    log_mean = pred.loc + (0.0 if family == "bernoulli" else math.log(pred.dispersion))
    err = np.sqrt(np.mean((log_mean - truth) ** 2))
    assert err < 0.6 * truth.std()  # 1500 yes/no entries carry little information
    # the same model with Gaussian noise on transformed targets, the same training data
    X_all, y_all, _ = draw(family, N_TRAIN + N_TEST, seed=3)
    target = y_all[:N_TRAIN] if family == "bernoulli" else np.log1p(y_all[:N_TRAIN])
    gauss = FunBaT(rank=2, max_iter=25, duplicates="keep", random_state=0)
    gauss.fit(X_all[:N_TRAIN], target)
    g = gauss.predict(X)
    g_latent = (np.log(np.clip(g, 1e-3, 1 - 1e-3) / (1 - np.clip(g, 1e-3, 1 - 1e-3)))
                if family == "bernoulli" else np.log(np.expm1(np.maximum(g, 1e-3))))  # fmt: skip
    assert err < np.sqrt(np.mean((g_latent - truth) ** 2))


def test_probabilities_are_calibrated(fits):
    model, X, y, truth = fits["bernoulli"]
    proba = model.predict_proba(X)
    assert proba.shape == (len(y), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    p = proba[:, 1]
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(abs(y[bins == b].mean() - p[bins == b].mean()) * np.mean(bins == b)
              for b in range(10) if np.any(bins == b))  # fmt: skip
    # the noise floor of an ECE over 1500 draws is about 0.02; the truth's own ECE:
    q = expit(truth)
    qb = np.minimum((q * 10).astype(int), 9)
    ece_truth = sum(abs(y[qb == b].mean() - q[qb == b].mean()) * np.mean(qb == b)
                    for b in range(10) if np.any(qb == b))  # fmt: skip
    assert ece < max(0.05, 1.5 * ece_truth)
    np.testing.assert_array_equal(model.classes_, [0, 1])
    assert np.all(model.predict(X) == p)


@pytest.mark.parametrize("family", ["poisson", "negative_binomial"])
def test_count_intervals_cover(fits, family):
    model, X, y, _ = fits[family]
    lo, hi = model.predict_interval(X, 0.95)
    assert lo.dtype.kind == "i" and hi.dtype.kind == "i" and np.all(lo >= 0)
    coverage = np.mean((y >= lo) & (y <= hi))
    # integer intervals hold at least 95%: the predictive's own mass inside them is
    # what the held-out coverage must match
    pred = model.predictive(X)
    inside = np.mean(pred.cdf(hi) - pred.cdf(lo - 1))
    assert 0.95 <= inside <= 0.99
    assert abs(coverage - inside) < 3 * math.sqrt(inside * (1 - inside) / len(y)) + 0.005
    assert coverage >= 0.93
    mean = model.predict(X)
    assert np.all(mean > 0)


def test_dispersion_is_learned(fits):
    model = fits["negative_binomial"][0]
    # truth 4; a search at a fixed offset, from the marginal moments' start, kept 2.2
    assert 2.9 < model.dispersion_ < 5.5, model.dispersion_
    assert fits["poisson"][0].dispersion_ == 100.0


def test_the_state_tallies_the_counts(fits, x64):
    # sum_n log C_n at each candidate r comes from this histogram, not from the entries
    for family in ("poisson", "negative_binomial"):
        model, *_ = fits[family]
        y = np.asarray(draw(family, N_TRAIN + N_TEST, seed=3)[1])[:N_TRAIN]
        hist = np.asarray(model.result_.likelihood_state.histogram)
        np.testing.assert_array_equal(hist, np.bincount(y.astype(int), minlength=hist.size))
        r = model.dispersion_
        direct = np.sum(special.gammaln(y + r) - special.gammaln(r) - special.gammaln(y + 1))
        assert _log_c_counted(hist, r) == pytest.approx(direct, rel=1e-12)
    assert fits["bernoulli"][0].result_.likelihood_state.histogram is None


def test_sample_y_draws_counts_and_yes_no(fits):
    for family in ("bernoulli", "poisson"):
        model, X, _, _ = fits[family]
        draws = model.sample_y(X[:50], n_samples=400, random_state=0)
        assert draws.shape == (50, 400)
        np.testing.assert_array_equal(draws, np.round(draws))
        assert draws.min() >= 0 and (family != "bernoulli" or draws.max() <= 1)
        mean = model.predict(X[:50])
        se = draws.std(axis=1).mean() / math.sqrt(400)
        assert np.abs(draws.mean(axis=1) - mean).mean() < 3 * se


def test_save_load_round_trip(fits, tmp_path):
    for family in ("bernoulli", "negative_binomial"):
        model, X, _, _ = fits[family]
        model.save(tmp_path / f"{family}.funbat")
        back = load(tmp_path / f"{family}.funbat")
        np.testing.assert_allclose(back.predict(X), model.predict(X), rtol=1e-12)
        for a, b in zip(back.predict_interval(X), model.predict_interval(X)):
            np.testing.assert_array_equal(a, b)
        assert back.offset_ == model.offset_
    assert back.dispersion_ == model.dispersion_
    assert not hasattr(FunBaT(), "predict_proba")


@pytest.mark.parametrize(
    "family, y, words",
    [
        ("bernoulli", [0, 1, 2], ("bernoulli", "0 and 1")),
        ("bernoulli", [0, 0.5, 1], ("bernoulli", "0 and 1")),
        ("poisson", [0, 3, -1], ("counts >= 0", "negative")),
        ("negative_binomial", [0, 1.5, 2], ("whole-number", "round")),
    ],
)
def test_bad_targets_are_one_line_errors(family, y, words):
    X = pd.DataFrame({"a": np.linspace(0, 1, 30), "b": np.tile([0.0, 1.0, 2.0], 10)})
    target = np.resize(np.asarray(y, float), 30)
    with pytest.raises(InputError) as err:
        FunBaT(rank=1, likelihood=family, max_iter=2).fit(X, target)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words)


def test_noise_mode_with_counts_is_refused():
    X, y, _ = draw("poisson", 100, seed=5)
    with pytest.raises(InputError, match="noise_mode"):
        FunBaT(rank=1, likelihood="poisson", noise_mode=0, max_iter=2).fit(X, y)


def test_cli_fit_and_predict(tmp_path, capsys):
    X, y, _ = draw("bernoulli", 400, seed=6)
    table = X.assign(y=y.astype(int))
    table.to_csv(tmp_path / "yes_no.csv", index=False)
    Xc, yc, _ = draw("poisson", 400, seed=6)
    Xc.assign(n=yc.astype(int)).to_csv(tmp_path / "counts.csv", index=False)

    def run(*args):
        code = cli.main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.err

    code, err = run("fit", tmp_path / "yes_no.csv", "-t", "y", "--likelihood", "bernoulli",
                    "-r", "2", "--max-iter", "12", "--keep-duplicates", "-q", "-o",
                    tmp_path / "b.funbat")  # fmt: skip
    assert code == 0, err
    code, err = run("predict", tmp_path / "b.funbat", tmp_path / "yes_no.csv", "-o",
                    tmp_path / "b.csv", "-q")  # fmt: skip
    assert code == 0, err
    out = pd.read_csv(tmp_path / "b.csv")
    model = load(tmp_path / "b.funbat")
    np.testing.assert_allclose(out["probability"], model.predict_proba(X)[:, 1], rtol=1e-9)
    code, err = run("fit", tmp_path / "counts.csv", "-t", "n", "--likelihood", "poisson",
                    "-r", "2", "--max-iter", "12", "--keep-duplicates", "-q", "-o",
                    tmp_path / "p.funbat")  # fmt: skip
    assert code == 0, err
    code, err = run("predict", tmp_path / "p.funbat", tmp_path / "counts.csv", "-o",
                    tmp_path / "p.csv", "-q")  # fmt: skip
    assert code == 0, err
    out = pd.read_csv(tmp_path / "p.csv")
    assert out["lower95"].dtype.kind == "i" and out["upper95"].dtype.kind == "i"
    code = cli.main(["info", str(tmp_path / "p.funbat")])
    assert code == 0 and "poisson, offset" in capsys.readouterr().out
    assert np.all(out["lower95"] <= out["mean"]) and np.all(out["mean"] <= out["upper95"])
    # a count target that is not a count: one line, exit 2
    table.assign(y=table["y"] - 0.5).to_csv(tmp_path / "bad.csv", index=False)
    err_buf = io.StringIO()
    with contextlib.redirect_stderr(err_buf):
        code = cli.main(["fit", str(tmp_path / "bad.csv"), "-t", "y", "--likelihood",
                         "poisson", "-q", "-o", str(tmp_path / "bad.funbat")])  # fmt: skip
    text = capsys.readouterr().err + err_buf.getvalue()
    assert code == 2 and len(text.strip().splitlines()) == 1 and "counts" in text
    assert not (tmp_path / "bad.funbat").exists()


@pytest.mark.parametrize("family", ["bernoulli", "negative_binomial"])
def test_dask_fit_equals_in_memory_fit(family):
    dask = pytest.importorskip("dask")
    dd = pytest.importorskip("dask.dataframe")
    X, y, _ = draw(family, 600, seed=8)
    df = X.assign(y=y)
    kw = dict(rank=2, max_iter=14, tol=0.0, likelihood=family, duplicates="keep",
              random_state=0)  # fmt: skip
    mem = FunBaT(**kw).fit(X, y)
    with dask.config.set(scheduler="threads"):
        dsk = FunBaT(**kw).fit(dd.from_pandas(df, npartitions=3), y="y")
    np.testing.assert_allclose(dsk.elbo_history_, mem.elbo_history_, rtol=1e-9)
    assert dsk.offset_ == pytest.approx(mem.offset_, rel=1e-9)
    np.testing.assert_allclose(dsk.predict(X), mem.predict(X), rtol=1e-7)


def test_repeated_rows_are_kept_for_yes_no_data_and_dropped_for_gaussian_by_default():
    """``duplicates="auto"``: equal 0/1 rows are genuine observations; equal real-valued
    rows are copies (dropped with a warning), as before."""
    import warnings

    from funbat import FunBaTWarning

    X = pd.DataFrame({"a": np.repeat(np.linspace(0, 1, 20), 3), "b": np.tile([0.0, 0.5, 1.0], 20)})
    X = pd.concat([X, X], ignore_index=True)  # every row twice
    y = (np.sin(6 * X["a"].to_numpy()) + X["b"].to_numpy() > 0.5).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FunBaTWarning)
        yes_no = FunBaT(rank=1, likelihood="bernoulli", max_iter=4, random_state=0).fit(X, y)
    assert yes_no.n_train_ == 120
    with pytest.warns(FunBaTWarning, match="60 of 120 rows repeat another row exactly"):
        gauss = FunBaT(rank=1, max_iter=4, random_state=0).fit(X, y + 0.1 * X["a"].to_numpy())
    assert gauss.n_train_ == 60
    dropped = FunBaT(rank=1, likelihood="bernoulli", duplicates="drop", max_iter=4,
                     random_state=0)  # fmt: skip
    with pytest.warns(FunBaTWarning, match="repeat another row exactly"):
        assert dropped.fit(X, y).n_train_ == 60


@pytest.mark.parametrize("family", ["bernoulli", "negative_binomial"])
def test_counts_and_yes_no_with_spatial_and_discrete_modes(family, assert_elbo_rises):
    # points (a, b), a category s and a time t, the latent log-odds / log-mean known
    rng = np.random.default_rng(11)
    P = rng.uniform(size=(20, 2)) * [10.0, 4.0]
    n = 2000
    ip, s, t = rng.integers(0, 20, n), rng.integers(0, 4, n), rng.uniform(0, 1, n)
    eta = 1.2 * np.sin(P[ip, 0] / 3.0) * np.cos(3 * t) * (1.0 + 0.5 * s)
    if family == "bernoulli":
        y = (rng.uniform(size=n) < expit(eta)).astype(float)
    else:
        mu = np.exp(eta + 1.0)
        y = rng.negative_binomial(4.0, 4.0 / (4.0 + mu)).astype(float)
    X = pd.DataFrame({"a": P[ip, 0], "b": P[ip, 1], "s": [f"s{i}" for i in s], "t": t})
    model = FunBaT(rank=2, modes=[("a", "b"), "s", "t"], likelihood=family, max_iter=30,
                   duplicates="keep", random_state=0).fit(X, y)  # fmt: skip
    assert model.mode_kinds_ == ["spatial", "discrete", "continuous"]
    assert_elbo_rises(model.elbo_history_, model.max_iter)
    pred = model.predictive(X)
    truth = eta if family == "bernoulli" else eta + 1.0
    latent = pred.loc + (0.0 if family == "bernoulli" else math.log(pred.dispersion))
    # the fit follows the latent function, well inside its spread
    assert np.sqrt(np.mean((latent - truth) ** 2)) < 0.3 * truth.std()
    if family == "bernoulli":
        assert np.all((pred.mean > 0) & (pred.mean < 1))
    else:
        lo, hi = pred.interval(0.95)
        assert np.all(lo >= 0) and np.all(lo == np.round(lo))
        assert 0.9 < np.mean((y >= lo) & (y <= hi)) <= 1.0

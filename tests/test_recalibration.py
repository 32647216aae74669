"""Recalibration (``recalibrate=True``): the leave-one-out residuals against brute-force
leave-one-out refits of a dense GP, the Student-t fit against scipy, and fits to data
with heavy-tailed errors and to data from the model itself."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from funbat import FunBaT, FunBaTCP, InputError, make_kernel
from funbat.calibration import Recalibration, fit_recalibration, loo_residuals
from funbat.datasets import make_synthetic
from funbat.evaluation import split_indices


def test_loo_residuals_equal_brute_force_leave_one_out_of_a_dense_gp():
    rng = np.random.default_rng(0)
    n, s2 = 40, 0.05
    x = np.sort(rng.uniform(0, 1, n))
    K = np.asarray(make_kernel("matern32", 0.2).covariance(x[:, None] - x[None, :]))
    y = np.linalg.cholesky(K + 1e-9 * np.eye(n)) @ rng.normal(size=n)
    y = y + np.sqrt(s2) * rng.standard_t(3, size=n)
    A = np.linalg.inv(K + s2 * np.eye(n))
    mean, var_f = K @ A @ y, np.diag(K - K @ A @ K)
    brute = np.empty(n)
    for i in range(n):  # refit without entry i, predict it
        o = np.arange(n) != i
        Ao = np.linalg.inv(K[np.ix_(o, o)] + s2 * np.eye(n - 1))
        mu = K[i, o] @ Ao @ y[o]
        var = K[i, i] - K[i, o] @ Ao @ K[o, i] + s2
        brute[i] = (y[i] - mu) / np.sqrt(var)
    np.testing.assert_allclose(loo_residuals(y - mean, var_f, s2), brute, rtol=1e-8)


def test_loo_residuals_leave_out_entries_whose_latent_variance_exceeds_the_noise():
    z = loo_residuals(np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.0, 2.0]), 1.0)
    np.testing.assert_allclose(z, [1.0 / np.sqrt(0.5)])


def test_fit_recalibration_is_the_maximum_likelihood_scaled_t():
    z = 0.7 * stats.t.rvs(3.0, size=30_000, random_state=1)
    fit = fit_recalibration(z)
    dof, _, scale = stats.t.fit(z, floc=0.0)
    assert fit.n == z.size
    assert fit.dof == pytest.approx(dof, rel=1e-3) and fit.scale == pytest.approx(scale, rel=1e-3)
    gauss = fit_recalibration(np.random.default_rng(0).normal(size=20_000))
    assert gauss.dof > 50 and gauss.scale == pytest.approx(1.0, abs=0.02)
    with pytest.raises(ValueError, match="at least 10"):
        fit_recalibration(np.ones(5))


def test_fit_recalibration_reaches_the_optimum_to_round_off():
    # the log-likelihood's gradient vanishes there (central differences, independent of
    # the fit's own analytic gradient): the result does not hang on optimiser defaults
    z = 0.7 * stats.t.rvs(3.0, size=5_000, random_state=2)
    fit = fit_recalibration(z)

    def loglik(log_s, log_v):
        return np.sum(stats.t.logpdf(z, np.exp(log_v), scale=np.exp(log_s)))

    p, h = np.log([fit.scale, fit.dof]), 1e-5
    for i in range(2):
        e = np.eye(2)[i] * h
        slope = (loglik(*(p + e)) - loglik(*(p - e))) / (2 * h)
        assert abs(slope) < 1e-5 * z.size


def _heavy_tailed(seed=0, n=6000, dof=2.5):
    """Synthetic three-mode data with Student-t errors (scale 0.08)."""
    data = make_synthetic(n, rank=2, n_unique=60, noise_std=0.0, seed=seed)
    rng = np.random.default_rng(seed + 1)
    return data.X, data.f + 0.08 * rng.standard_t(dof, size=n)


def test_recalibration_calibrates_heavy_tailed_errors_and_keeps_the_fit():
    X, y = _heavy_tailed()
    tr, te = split_indices(len(y), 0)
    kw = dict(rank=2, max_iter=40, random_state=0)
    recal = FunBaT(**kw).fit(X.iloc[tr], y[tr])
    plain = FunBaT(recalibrate=False, **kw).fit(X.iloc[tr], y[tr])
    # the fit itself is untouched (to 1e-9: a GPU's reductions are not bit-reproducible)
    np.testing.assert_allclose(recal.predict(X.iloc[te]), plain.predict(X.iloc[te]), rtol=1e-9)
    assert recal.elbo_ == pytest.approx(plain.elbo_, rel=1e-12)
    assert plain.recalibration_ is None and plain.dof_ == np.inf
    assert isinstance(recal.recalibration_, Recalibration) and recal.dof_ < 6
    pr, pp = recal.predictive(X.iloc[te]), plain.predictive(X.iloc[te])
    cov_r, cov_p = pr.coverage_table(y[te]), pp.coverage_table(y[te])
    assert abs(cov_r[0.5] - 0.5) < 0.04 and abs(cov_r[0.95] - 0.95) < 0.02, cov_r
    assert cov_p[0.5] > 0.6, cov_p  # the Gaussian predictive is too wide in the middle
    assert pr.nlpd(y[te]) < pp.nlpd(y[te]) - 0.1
    # intervals still widen with the latent uncertainty: away from the data
    far = X.iloc[te[:20]].assign(x0=X["x0"].max() + 0.5)
    lo_n, hi_n = recal.predict_interval(X.iloc[te[:20]])
    lo_f, hi_f = recal.predict_interval(far)
    assert np.all(hi_f - lo_f > hi_n - lo_n)
    # joint draws have the predictive's marginals
    draws = recal.sample_y(X.iloc[te[:3]], n_samples=4000, random_state=0)
    lo, hi = pr.interval(0.9)
    inside = (draws >= lo[:3, None]) & (draws <= hi[:3, None])
    assert np.all(np.abs(inside.mean(axis=1) - 0.9) < 0.025), inside.mean(axis=1)


def test_recalibration_keeps_data_from_the_model_calibrated():
    data = make_synthetic(4000, rank=2, n_unique=50, noise_std=0.1, seed=2)
    tr, te = split_indices(len(data.y), 0)
    m = FunBaTCP(rank=2, max_iter=40, random_state=0).fit(data.X.iloc[tr], data.y[tr])
    cov = m.predictive(data.X.iloc[te]).coverage_table(data.y[te])
    assert abs(cov[0.5] - 0.5) < 0.05 and abs(cov[0.95] - 0.95) < 0.025, cov
    assert m.recalibration_.dof > 10


def test_recalibration_is_saved_and_skipped_for_other_noise_models(tmp_path):
    X, y = _heavy_tailed(n=1500)
    m = FunBaT(rank=2, max_iter=15, random_state=0).fit(X, y)
    m.save(tmp_path / "m.funbat")
    back = FunBaT.load(tmp_path / "m.funbat")
    assert back.recalibration_ == m.recalibration_
    lo, hi = m.predict_interval(X.iloc[:30])
    np.testing.assert_allclose(back.predict_interval(X.iloc[:30]), (lo, hi), rtol=1e-12)
    for other in (dict(likelihood="student_t"), dict(noise_mode="x1")):
        assert FunBaT(rank=2, max_iter=15, **other).fit(X, y).recalibration_ is None
    # too few entries to fit a Student-t: the Gaussian predictive stays
    small = FunBaT(rank=2, max_iter=15).fit(X.iloc[:40], y[:40])
    assert small.recalibration_ is None and small.dof_ == np.inf
    # nor when the model fits the target exactly (a constant)
    flat = FunBaT(rank=2, max_iter=15).fit(X, np.full(len(y), 3.0))
    assert flat.recalibration_ is None


def test_large_data_recalibrate_on_a_random_subset(monkeypatch):
    import funbat.inference.recalibration

    monkeypatch.setattr(funbat.inference.recalibration, "MAX_RESIDUALS", 500)
    X, y = _heavy_tailed(n=3000)
    m = FunBaT(rank=2, max_iter=15, random_state=0).fit(X, y)
    assert 400 < m.recalibration_.n < 600 and m.recalibration_.dof < 6


def test_recalibrate_must_be_a_bool():
    X = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    with pytest.raises(InputError, match="'recalibrate' parameter of FunBaT must be an instance of 'bool'"):
        FunBaT(recalibrate="yes").fit(X, np.ones(20))

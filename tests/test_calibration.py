"""Learned lengthscales and honest uncertainty on data drawn from the model itself."""

import numpy as np
import pandas as pd
import pytest

from funbat import FunBaT, make_kernel
from funbat.calibration import coverage, coverage_table, nlpd

TRUE_ELL = 0.15  # in the user's units of mode "t"


def _model_data(nu_name, seed=0, n_t=80, n_c=10, noise=0.1):
    """y = u(t) v(c) + noise, u ~ GP(Matérn, TRUE_ELL), v ~ N(0, 1) per category."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 1, size=n_t))
    K = np.asarray(make_kernel(nu_name, TRUE_ELL).covariance(t[:, None] - t[None, :]))
    u = np.linalg.cholesky(K + 1e-6 * np.eye(n_t)) @ rng.normal(size=n_t)
    v = rng.normal(size=n_c) + 1.5 * np.sign(rng.normal(size=n_c))
    it, ic = np.meshgrid(np.arange(n_t), np.arange(n_c), indexing="ij")
    it, ic = it.reshape(-1), ic.reshape(-1)
    f = u[it] * v[ic]
    X = pd.DataFrame({"t": t[it], "c": [f"c{i}" for i in ic]})
    return X, f + noise * rng.normal(size=f.size), f, noise


def _fits(kernel):
    X, y, _, _ = _model_data(kernel)
    kw = dict(rank=1, kernel=kernel, lengthscale=0.6, max_iter=60, random_state=0)
    return FunBaT(**kw).fit(X, y), FunBaT(learn_hyperparameters=False, **kw).fit(X, y)


@pytest.mark.parametrize(
    "kernel",
    [
        "matern12",
        "matern32",
        "matern52",
    ],
)
def test_learned_lengthscale_within_factor_1_5_and_elbo_not_lower(kernel):
    learned, fixed = _fits(kernel)
    assert fixed.lengthscales_[0] == pytest.approx(0.6)
    assert learned.elbo_ >= fixed.elbo_
    assert TRUE_ELL / 1.5 < learned.lengthscales_[0] < TRUE_ELL * 1.5


def test_intervals_calibrated_on_data_from_the_model():
    X, y, f, noise = _model_data("matern32", seed=1, n_t=120, n_c=12, noise=0.2)
    rng = np.random.default_rng(0)
    test = rng.uniform(size=y.size) < 0.3
    m = FunBaT(rank=1, max_iter=60, random_state=0).fit(X[~test], y[~test])
    mean, std = m.predict(X[test], return_std=True)
    cov = coverage_table(y[test], mean, std)
    assert 0.91 <= cov[0.95] <= 0.99 and 0.42 <= cov[0.5] <= 0.58, cov
    oracle = nlpd(y[test], f[test], np.full(test.sum(), noise))
    # measured gap 0.28: the fitted std (~0.27) is wider than the true noise (0.2)
    assert nlpd(y[test], mean, std) < oracle + 0.35


def test_coverage_and_nlpd_by_hand():
    y = np.array([0.0, 1.0, 3.0])
    assert coverage(y, np.zeros(3), np.ones(3), 0.95) == pytest.approx(2 / 3)
    want = np.mean(0.5 * np.log(2 * np.pi) + 0.5 * y**2)
    assert nlpd(y, np.zeros(3), np.ones(3)) == pytest.approx(want)


def test_spread_is_the_one_sigma_half_width_and_finite_for_heavy_tails():
    from scipy import stats

    from funbat.calibration import Predictive

    mean, scale, dof = np.array([0.0, 2.0, -1.0]), np.array([1.0, 0.5, 2.0]), 1.5
    pred = Predictive(mean, np.zeros(3), scale, dof)
    assert np.all(np.isinf(pred.std))  # a Student-t with dof <= 2 has no variance
    exact = scale * stats.t.ppf(0.5 + 0.6826894921370859 / 2, dof)
    np.testing.assert_allclose(pred.spread, exact, rtol=1e-12)
    lo, hi = pred.interval(0.9)  # a pure Student-t: the closed-form quantile
    np.testing.assert_allclose(hi - mean, scale * stats.t.ppf(0.95, dof), rtol=1e-12)
    gauss = Predictive.gaussian(mean, scale)
    np.testing.assert_array_equal(gauss.spread, gauss.std)

"""Student-t noise: the predictive distribution's quadrature against independent
integrals, the variational weight update against its closed form, and fits to data
with heavy-tailed noise."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import integrate, stats
from scipy.special import digamma, gammaln

from funbat import FunBaT, FunBaTCP, InputError
from funbat.calibration import Predictive
from funbat.datasets import make_synthetic
from funbat.evaluation import split_indices
from funbat.likelihoods import DOF_BOUNDS, EntryWeights, StudentT
from funbat.selection import select_model


@pytest.mark.parametrize("dof", [1.0, 1.7, 4.0, 30.0])
def test_student_t_predictive_without_latent_variance_is_the_t_distribution(dof):
    y = np.array([0.0, 0.3, 2.0, 15.0, 400.0])
    scale = 0.7
    pred = Predictive(np.full(5, 1.0), np.zeros(5), scale, dof)
    exact = stats.t(dof, loc=1.0, scale=scale)
    np.testing.assert_allclose(pred.logpdf(1.0 + y), exact.logpdf(1.0 + y), atol=1e-6)
    for level in (0.5, 0.95):
        lo, hi = pred.interval(level)
        assert hi[0] == pytest.approx(exact.ppf(0.5 + level / 2), rel=1e-4)
        assert lo[0] == pytest.approx(exact.ppf(0.5 - level / 2), rel=1e-4)


def test_student_t_predictive_with_latent_variance_matches_direct_integrals():
    # y = f + e, f ~ N(0, v), e ~ t(dof, scale s): integrate over f with scipy's quad
    v, s, dof = 0.5, 0.3, 2.5
    t = stats.t(dof, scale=s)
    f = stats.norm(scale=math.sqrt(v))
    pred = Predictive(np.zeros(1), np.full(1, v), s, dof)

    def density(y):
        return integrate.quad(lambda x: f.pdf(x) * t.pdf(y - x), -np.inf, np.inf)[0]

    for y in (0.0, 0.8, 4.0, 40.0):
        assert pred.logpdf([y])[0] == pytest.approx(math.log(density(y)), abs=1e-6)
    for level in (0.5, 0.8, 0.95):
        h = pred.interval(level)[1][0]
        inside = integrate.quad(lambda x, h=h: f.pdf(x) * (t.cdf(h - x) - t.cdf(-h - x)), -20, 20)
        assert inside[0] == pytest.approx(level, abs=1e-5)
    assert pred.std[0] == pytest.approx(math.sqrt(v + s**2 * dof / (dof - 2)))
    assert np.isinf(Predictive(np.zeros(1), np.ones(1), s, 2.0).std[0])


@settings(max_examples=40, deadline=None)
@given(
    var_f=st.floats(0.0, 4.0),
    scale=st.floats(0.05, 3.0),
    dof=st.one_of(st.just(math.inf), st.floats(1.0, 200.0)),
    levels=st.lists(st.floats(0.05, 0.99), min_size=2, max_size=2, unique=True),
)
def test_intervals_hold_their_probability_and_nest(var_f, scale, dof, levels):
    pred = Predictive(np.zeros(1), np.full(1, var_f), scale, dof)
    lo, hi = sorted(levels)
    assume(hi - lo > 1e-6)  # closer levels can share one interval in float64
    h_lo, h_hi = pred.interval(lo)[1][0], pred.interval(hi)[1][0]
    assert 0.0 < h_lo < h_hi
    assert pred.central_probability([h_lo])[0] == pytest.approx(lo, abs=1e-7)
    assert pred.central_probability([h_hi])[0] == pytest.approx(hi, abs=1e-7)
    # the density integrates to the interval's probability
    x = np.linspace(-h_hi, h_hi, 4001)
    dens = np.exp(Predictive(np.zeros_like(x), np.full_like(x, var_f), scale, dof).logpdf(x))
    assert integrate.trapezoid(dens, x) == pytest.approx(hi, abs=2e-3)


def test_gaussian_predictive_is_closed_form():
    mean, std = np.array([0.0, 3.0]), np.array([1.0, 0.5])
    pred = Predictive.gaussian(mean, std)
    lo, hi = pred.interval(0.95)
    np.testing.assert_allclose(hi - mean, 1.959963984540054 * std)
    np.testing.assert_allclose(pred.logpdf([1.0, 2.0]), stats.norm(mean, std).logpdf([1.0, 2.0]))


def test_weight_update_is_the_closed_form_and_dof_maximises_the_elbo(x64, errors_only):
    rng = np.random.default_rng(0)
    sq = rng.standard_t(2.0, 500) ** 2
    mask = np.ones(500)
    mask[-20:] = 0.0  # padding entries count for nothing
    tau, dof = 3.0, 10.0
    lik = StudentT()
    state, weights = lik.update(
        lik.init(None)._replace(dof=np.float64(dof)), EntryWeights(None, 0.0, 0.0),
        errors_only(sq, mask), None, None, None, tau, structure="tucker",
    )  # fmt: skip
    w, new_dof, term = weights.weights, state.dof, weights.term
    np.testing.assert_allclose(np.asarray(w), mask * (dof + 1) / (dof + tau * sq))
    assert DOF_BOUNDS[0] <= float(new_dof) <= DOF_BOUNDS[1]

    # the ELBO terms of the weights, computed independently with scipy
    a = (dof + 1) / 2
    b = dof / 2 + tau * sq / 2

    def elbo_part(nu):
        e_log_w = digamma(a) - np.log(b)
        e_w = a / b
        log_prior = (
            nu / 2 * np.log(nu / 2) - gammaln(nu / 2) + (nu / 2 - 1) * e_log_w - nu / 2 * e_w
        )
        entropy = a - np.log(b) + gammaln(a) + (1 - a) * digamma(a)
        return np.sum(mask * (0.5 * e_log_w + log_prior + entropy))

    assert float(term) == pytest.approx(elbo_part(float(new_dof)), rel=1e-10)
    grid = np.geomspace(*DOF_BOUNDS, 2000)
    best = max(elbo_part(v) for v in grid)
    assert elbo_part(float(new_dof)) >= best - 1e-3 * abs(best)
    assert elbo_part(float(new_dof)) >= elbo_part(dof)


def _heavy_tailed(seed=0, dof=2.5, scale=0.1):
    data = make_synthetic(5000, n_modes=3, rank=2, n_unique=60, noise_std=0.1, seed=seed)
    rng = np.random.default_rng(seed + 100)
    return data.X, data.f + scale * rng.standard_t(dof, size=data.f.size), data.f


@pytest.mark.parametrize("cls", [FunBaT, FunBaTCP])
def test_elbo_never_decreases_with_student_t_noise(cls, assert_elbo_rises):
    X, y, _ = _heavy_tailed(seed=1)
    model = cls(rank=2, max_iter=25, tol=0.0, likelihood="student_t", random_state=0)
    assert_elbo_rises(model.fit(X.iloc[:1500], y[:1500]).elbo_history_, 25)


def test_student_t_fit_learns_the_tails_and_calibrates_intervals():
    X, y, f = _heavy_tailed(seed=2, dof=2.5, scale=0.1)
    train, test = split_indices(len(y), 0)
    kw = dict(rank=2, max_iter=60, random_state=0)
    robust = FunBaT(likelihood="student_t", **kw).fit(X.iloc[train], y[train])
    gauss = FunBaT(recalibrate=False, **kw).fit(X.iloc[train], y[train])
    assert 1.5 < robust.dof_ < 5.0 and math.isinf(gauss.dof_)
    assert math.sqrt(robust.noise_variance_) == pytest.approx(0.1, rel=0.25)
    pr, pg = robust.predictive(X.iloc[test]), gauss.predictive(X.iloc[test])
    cov_r, cov_g = pr.coverage_table(y[test]), pg.coverage_table(y[test])
    # the true predictive (known f, true t noise) covers 52.5% / 95.1% of this sample
    oracle = Predictive(f[test], np.zeros(test.size), 0.1, 2.5).coverage_table(y[test])
    assert all(abs(cov_r[p] - oracle[p]) <= 0.035 for p in oracle), (cov_r, oracle)
    assert cov_g[0.5] > 0.58, cov_g  # the Gaussian fit's inner interval is too wide
    assert pr.nlpd(y[test]) < pg.nlpd(y[test]) - 0.1
    # outliers pull less: the latent function is recovered at least as well
    err_r = np.sqrt(np.mean((pr.mean - f[test]) ** 2))
    err_g = np.sqrt(np.mean((pg.mean - f[test]) ** 2))
    assert err_r < err_g
    lo, hi = robust.predict_interval(X.iloc[test[:5]], level=0.8)
    np.testing.assert_allclose((lo + hi) / 2, pr.mean[:5])
    draws = robust.sample_y(X.iloc[test[:3]], n_samples=4000, random_state=0)
    lo95, hi95 = pr.interval(0.95)
    inside = (draws >= lo95[:3, None]) & (draws <= hi95[:3, None])
    assert np.all(np.abs(inside.mean(axis=1) - 0.95) < 0.02)


def test_select_model_prefers_student_t_noise_on_heavy_tailed_data():
    X, y, _ = _heavy_tailed(seed=4)
    base = FunBaT(rank=2, max_iter=25, random_state=0)
    best, table = select_model(base, X.iloc[:2000], y[:2000], ranks=(2,),
                               likelihoods=("gaussian", "student_t"))  # fmt: skip
    assert list(table["likelihood"]) == ["student_t", "gaussian"]
    assert best.likelihood == "student_t" and np.isfinite(best.dof_)


def test_student_t_model_saves_and_loads(tmp_path):
    X, y, _ = _heavy_tailed(seed=3)
    model = FunBaT(rank=2, max_iter=15, likelihood="student_t", random_state=0)
    model.fit(X.iloc[:1000], y[:1000])
    model.save(tmp_path / "m.funbat")
    back = FunBaT.load(tmp_path / "m.funbat")
    assert back.likelihood == "student_t" and back.dof_ == model.dof_
    np.testing.assert_allclose(
        back.predict_interval(X.iloc[:7], 0.9), model.predict_interval(X.iloc[:7], 0.9)
    )


def test_bad_likelihood_and_level_are_clear_errors():
    X = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    with pytest.raises(InputError, match="'likelihood' parameter of FunBaT must be a str among "
                       "{'bernoulli', 'gaussian', 'negative_binomial', 'poisson', 'student_t'}"):
        FunBaT(likelihood="laplace").fit(X, np.ones(20))
    model = FunBaT(rank=1, max_iter=3).fit(X, np.sin(np.arange(20.0)))
    with pytest.raises(InputError, match="level"):
        model.predict_interval(X, level=95)


def test_student_t_noise_with_spatial_and_discrete_modes():
    # points (a, b), a category s and a time t; a few gross outliers in the targets
    rng = np.random.default_rng(5)
    P = rng.uniform(size=(20, 2)) * [10.0, 4.0]
    n = 1500
    ip, s, t = rng.integers(0, 20, n), rng.integers(0, 4, n), rng.uniform(0, 1, n)
    f = np.sin(P[ip, 0] / 3.0) * np.cos(3 * t) * (1.0 + 0.5 * s)
    y = f + 0.05 * rng.normal(size=n)
    bad = rng.uniform(size=n) < 0.03
    y[bad] += rng.choice([-3.0, 3.0], bad.sum())
    X = pd.DataFrame({"a": P[ip, 0], "b": P[ip, 1], "s": [f"s{i}" for i in s], "t": t})
    kw = dict(rank=2, modes=[("a", "b"), "s", "t"], max_iter=40, random_state=0)
    robust = FunBaT(likelihood="student_t", **kw).fit(X, y)
    gauss = FunBaT(**kw).fit(X, y)
    assert robust.mode_kinds_ == ["spatial", "discrete", "continuous"]
    assert robust.dof_ < 10.0
    # the outliers barely move the Student-t fit, so it follows f more closely
    err = [np.sqrt(np.mean((m.predict(X[~bad]) - f[~bad]) ** 2)) for m in (robust, gauss)]
    assert err[0] < err[1], err
    assert robust.predictive(X).coverage(y, 0.9) > 0.85

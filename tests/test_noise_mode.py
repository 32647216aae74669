"""Noise that varies along one mode (``noise_mode=``): the group update against its
closed form, the predictive noise against Monte Carlo, and fits to data whose noise
level changes from one coordinate to the next."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import digamma, gammaln

from funbat import FunBaT, FunBaTCP, InputError
from funbat.calibration import Predictive
from funbat.datasets import make_synthetic
from funbat.evaluation import split_indices
from funbat.likelihoods import DOF_BOUNDS, EntryWeights, Gaussian, NoiseMode
from funbat.likelihoods.gamma import predictive_noise
from funbat.selection import select_model


def test_predictive_with_a_dof_per_point_is_the_t_distribution_per_point():
    rng = np.random.default_rng(0)
    n = 400
    dof = rng.choice([1.5, 4.0, 11.3, math.inf], n)
    scale = rng.uniform(0.5, 2.0, n)
    pred = Predictive(np.zeros(n), np.zeros(n), scale, dof)
    y = 2.0 * rng.normal(size=n)
    t = np.isfinite(dof)
    exact_lp = np.where(t, stats.t.logpdf(y, np.where(t, dof, 1), scale=scale),
                        stats.norm.logpdf(y, scale=scale))  # fmt: skip
    np.testing.assert_allclose(pred.logpdf(y), exact_lp, atol=1e-6)
    hi = pred.interval(0.9)[1]
    exact_hi = np.where(t, stats.t.ppf(0.95, np.where(t, dof, 1), scale=scale),
                        stats.norm.ppf(0.95) * scale)  # fmt: skip
    np.testing.assert_allclose(hi, exact_hi, rtol=1e-3)
    std = pred.std
    assert np.all(np.isinf(std[dof <= 2])) and np.allclose(
        std[dof == math.inf], scale[dof == math.inf]
    )


def test_group_update_is_the_closed_form_for_gaussian_noise(x64, errors_only):
    rng = np.random.default_rng(1)
    N, G = 600, 7
    group = rng.integers(0, G, N)
    sq = (rng.normal(size=N) * np.exp(rng.normal(size=G))[group]) ** 2
    mask = np.ones(N)
    mask[-30:] = 0.0  # padding counts for nothing
    tau, c_old = 2.0, 10.0
    lik = NoiseMode(Gaussian(), 0)
    state0 = lik.init([SimpleNamespace(unique=np.arange(G))])
    state, w = lik.update(state0._replace(group_dof=np.float64(c_old)),
                          EntryWeights(None, 0.0, 0.0), errors_only(sq, mask, group), None, None,
                          None, tau, structure="tucker")  # fmt: skip
    weights, c, term, alpha, beta = w.weights, float(state.group_dof), w.term, state.alpha, state.beta
    n_g = np.bincount(group, weights=mask, minlength=G)
    r_g = np.bincount(group, weights=mask * sq, minlength=G)
    np.testing.assert_allclose(alpha, c / 2 + n_g / 2)
    np.testing.assert_allclose(beta, c / 2 + tau * r_g / 2)
    np.testing.assert_allclose(weights, mask * (alpha / beta)[group])

    def elbo_part(c):  # with q(s) refreshed for c, computed independently with scipy
        a, b = c / 2 + n_g / 2, c / 2 + tau * r_g / 2
        e_log, e_s = digamma(a) - np.log(b), a / b
        log_prior = c / 2 * np.log(c / 2) - gammaln(c / 2) + (c / 2 - 1) * e_log - c / 2 * e_s
        entropy = a - np.log(b) + gammaln(a) + (1 - a) * digamma(a)
        return np.sum(0.5 * n_g * e_log + log_prior + entropy)

    assert float(term) == pytest.approx(elbo_part(c), rel=1e-10)
    assert DOF_BOUNDS[0] <= c <= DOF_BOUNDS[1]
    assert elbo_part(c) >= elbo_part(c_old) - 1e-9


@pytest.mark.parametrize("dof", [math.inf, 6.0])
def test_predictive_noise_matches_monte_carlo_of_the_precision_mixture(dof):
    # noise e = z / sqrt(w s), s ~ Gamma(alpha, beta), w ~ Gamma(dof/2, dof/2)
    alpha, beta = np.array([1.3, 4.0, 30.0]), np.array([0.7, 6.0, 25.0])
    dof_g, factor = predictive_noise(alpha, beta, dof)
    rng = np.random.default_rng(2)
    M = 400_000
    for a, b, d, f in zip(alpha, beta, dof_g, factor):
        s = rng.gamma(a, 1.0 / b, M)
        w = rng.gamma(dof / 2, 2.0 / dof, M) if math.isfinite(dof) else 1.0
        e = rng.normal(size=M) / np.sqrt(w * s)
        pred = Predictive(np.zeros(1), np.zeros(1), np.array([f]), np.array([d]))
        for level in (0.5, 0.9, 0.95):
            hi = pred.interval(level)[1][0]
            # exact for Gaussian noise; a matched Gamma for the product w s
            tol = 0.004 if not math.isfinite(dof) else 0.012
            assert np.mean(np.abs(e) <= hi) == pytest.approx(level, abs=tol)


def _grouped_noise_data(seed=0, n=4000):
    """Synthetic entries whose noise std depends on the coordinate of mode x2."""
    data = make_synthetic(n, n_modes=3, rank=2, n_unique=40, noise_std=0.0, seed=seed)
    rng = np.random.default_rng(seed + 50)
    levels = np.sort(data.X["x2"].unique())
    stds = np.exp(rng.uniform(np.log(0.03), np.log(0.4), levels.size))
    true_std = stds[np.searchsorted(levels, data.X["x2"].to_numpy())]
    return data.X, data.f + true_std * rng.normal(size=n), data.f, true_std


def test_noise_mode_learns_the_noise_levels_and_calibrates_intervals():
    X, y, _, true_std = _grouped_noise_data(seed=3)
    train, test = split_indices(len(y), 0)
    kw = dict(rank=2, max_iter=60, random_state=0)
    grouped = FunBaT(noise_mode="x2", **kw).fit(X.iloc[train], y[train])
    plain = FunBaT(**kw).fit(X.iloc[train], y[train])
    assert grouped.noise_mode_ == "x2" and plain.noise_mode_ is None
    assert grouped.noise_multipliers_.shape == (X.iloc[train]["x2"].nunique(),)
    pg, pp = grouped.predictive(X.iloc[test]), plain.predictive(X.iloc[test])
    # the learned noise scale follows the true one, point by point
    ratio = pg.noise_scale / true_std[test]
    assert np.corrcoef(np.log(pg.noise_scale), np.log(true_std[test]))[0, 1] > 0.95
    assert 0.8 < np.median(ratio) < 1.25
    cov = pg.coverage_table(y[test])
    assert abs(cov[0.5] - 0.5) < 0.05 and abs(cov[0.95] - 0.95) < 0.025, cov
    assert pg.nlpd(y[test]) < pp.nlpd(y[test]) - 0.2
    # draws agree with the predictive's intervals
    draws = grouped.sample_y(X.iloc[test[:3]], n_samples=4000, random_state=0)
    lo, hi = pg.interval(0.9)
    inside = (draws >= lo[:3, None]) & (draws <= hi[:3, None])
    assert np.all(np.abs(inside.mean(axis=1) - 0.9) < 0.025), inside.mean(axis=1)


@pytest.mark.parametrize("cls", [FunBaT, FunBaTCP])
@pytest.mark.parametrize("likelihood", ["gaussian", "student_t"])
def test_elbo_never_decreases_with_a_noise_mode(cls, likelihood, assert_elbo_rises):
    X, y, _, _ = _grouped_noise_data(seed=1, n=1500)
    model = cls(rank=2, max_iter=25, tol=0.0, likelihood=likelihood, noise_mode=2, random_state=0)
    assert_elbo_rises(model.fit(X, y).elbo_history_, 25)
    assert model.noise_mode_ == "x2" and np.isfinite(model.noise_group_dof_)


def test_unseen_coordinates_get_the_prior_noise_level():
    X, y, _, _ = _grouped_noise_data(seed=4, n=1500)
    model = FunBaT(rank=2, max_iter=20, noise_mode="x2", random_state=0).fit(X, y)
    new = X.iloc[[0, 1, 2]].copy()
    new["x2"] = [0.123456, 0.123456, X["x2"].iloc[5]]
    pred = model.predictive(new)
    c = model.noise_group_dof_
    base = math.sqrt(model.noise_variance_)
    # Gaussian noise: an unseen coordinate's noise is t(c) with the global scale
    np.testing.assert_allclose(pred.dof[:2], c)
    np.testing.assert_allclose(pred.noise_scale[:2], base)
    seen = model.predictive(X.iloc[[5]])
    assert pred.dof[2] == pytest.approx(seen.dof[0])
    assert pred.noise_scale[2] == pytest.approx(seen.noise_scale[0])
    # the two points at the same unseen coordinate share one draw of its noise level
    draws = model.sample_y(new, n_samples=3000, random_state=1)
    assert np.all(np.isfinite(draws))


def test_noise_mode_on_spatial_and_discrete_modes_saves_and_loads(tmp_path):
    rng = np.random.default_rng(5)
    P = rng.uniform(size=(15, 2)) * [10.0, 4.0]
    n = 1500
    ip, s, t = rng.integers(0, 15, n), rng.integers(0, 4, n), rng.uniform(0, 1, n)
    f = np.sin(P[ip, 0] / 3.0) * np.cos(3 * t) * (1.0 + 0.5 * s)
    y = f + np.array([0.02, 0.05, 0.1, 0.3])[s] * rng.normal(size=n)
    X = pd.DataFrame({"a": P[ip, 0], "b": P[ip, 1], "s": [f"s{i}" for i in s], "t": t})
    kw = dict(rank=2, modes=[("a", "b"), "s", "t"], max_iter=40, random_state=0)
    by_station = FunBaT(noise_mode=("a", "b"), **kw).fit(X, y)
    assert by_station.noise_mode_ == "a+b" and by_station.noise_multipliers_.shape == (15,)
    model = FunBaT(noise_mode="s", likelihood="student_t", **kw).fit(X, y)
    # the noisiest category gets the smallest precision multiplier
    assert np.argsort(model.noise_multipliers_).tolist() == [3, 2, 1, 0]
    model.save(tmp_path / "m.funbat")
    back = FunBaT.load(tmp_path / "m.funbat")
    assert back.noise_mode_ == "s"
    np.testing.assert_allclose(
        back.predict_interval(X.iloc[:9], 0.9), model.predict_interval(X.iloc[:9], 0.9)
    )
    with pytest.raises(InputError, match="not seen in training"):
        model.predictive(X.iloc[:2].assign(s="s9"))
    # the noise levels per station and per category, as tables and pictures
    from funbat.plot import plot_latent_functions

    stations = by_station.noise_levels()
    assert list(stations.columns[:2]) == ["a", "b"] and len(stations) == 15
    cats = model.noise_levels()
    assert list(cats["s"]) == ["s0", "s1", "s2", "s3"]
    assert cats["noise_scale"].is_monotonic_increasing  # noise std 0.02, 0.05, 0.1, 0.3
    for m in (by_station, model):
        titles = [ax.get_title() for ax in plot_latent_functions(m).axes]
        assert any(t.startswith(f"noise scale along {m.noise_mode_}") for t in titles)


def test_bad_noise_modes_are_clear_errors():
    X = pd.DataFrame({"a": np.arange(20.0), "b": np.arange(20.0) % 3})
    y = np.sin(np.arange(20.0))
    with pytest.raises(InputError, match="noise_mode 'c' is not one of the modes"):
        FunBaT(rank=1, max_iter=2, noise_mode="c").fit(X, y)
    with pytest.raises(InputError, match="noise_mode=5 is not a mode position"):
        FunBaT(rank=1, max_iter=2, noise_mode=5).fit(X, y)


def test_select_model_prefers_the_noise_mode_on_data_whose_noise_varies():
    X, y, _, _ = _grouped_noise_data(seed=6, n=2000)
    base = FunBaT(rank=2, max_iter=25, random_state=0)
    best, table = select_model(base, X, y, ranks=(2,), noise_modes=(None, "x2"))
    assert table["noise_mode"].iloc[0] == "x2" and pd.isna(table["noise_mode"].iloc[1])
    assert best.noise_mode_ == "x2" and table["elbo"].iloc[0] > table["elbo"].iloc[1]


def test_noise_levels_table_follows_the_true_noise_and_the_plot_shows_it(tmp_path):
    from scipy.stats import gamma

    from funbat.plot import plot_latent_functions, save_figure

    X, y, _, true_std = _grouped_noise_data(seed=3)
    model = FunBaT(rank=2, max_iter=40, noise_mode="x2", random_state=0).fit(X, y)
    t = model.noise_levels(0.9)
    assert list(t.columns) == ["x2", "entries", "noise_scale", "lower", "upper"]
    np.testing.assert_allclose(t["x2"], np.sort(X["x2"].unique()))
    np.testing.assert_array_equal(t["entries"], X["x2"].value_counts().sort_index())
    truth = pd.Series(true_std, index=X["x2"]).groupby(level=0).first().to_numpy()
    assert np.corrcoef(np.log(t["noise_scale"]), np.log(truth))[0, 1] > 0.95
    assert np.all((t["lower"] < t["noise_scale"]) & (t["noise_scale"] < t["upper"]))
    # the interval is sigma / sqrt(s) at the 5% and 95% quantiles of q(s)
    alpha, beta = model.result_.likelihood_state.alpha, model.result_.likelihood_state.beta
    sigma = math.sqrt(model.noise_variance_)
    s95 = gamma.ppf(0.95, alpha, scale=1 / beta)
    np.testing.assert_allclose(t["lower"], sigma / np.sqrt(s95))
    fig = plot_latent_functions(model, n_points=30)
    assert len(fig.axes) == 4 and fig.axes[-1].get_ylabel() == "noise scale"
    np.testing.assert_allclose(fig.axes[-1].get_lines()[0].get_ydata(), t["noise_scale"])
    save_figure(fig, tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0
    with pytest.raises(InputError, match="one noise level"):
        FunBaT(rank=2, max_iter=3).fit(X, y).noise_levels()

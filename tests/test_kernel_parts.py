"""Kernel parts in state-space form (funbat.kernel_parts) against their closed forms, the
chain smoother with a sum kernel against the dense GP, and sum kernels in a fit."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from _numerics import interpolate, smooth

import funbat
from funbat import FunBaT, InputError, cli
from funbat import kernel_parts as KP
from funbat.kernels import make_kernel

pytestmark = pytest.mark.usefixtures("x64")


def _periodic(period, variance=1.0, lengthscale=1.0, tol=KP.PERIODIC_TOL):
    weights = KP.periodic_weights(lengthscale, tol)
    return KP.Periodic(jnp.asarray(period), jnp.asarray(variance), lengthscale, weights)


def _parts():
    return {
        "matern32": make_kernel("matern32", 0.4, 1.3),
        "constant": KP.Constant(jnp.asarray(0.7)),
        "trend": KP.Trend(jnp.asarray(0.5), jnp.asarray(2.0)),
        "periodic": _periodic(0.3, 0.8, 0.9),
        "quasiperiodic": KP.QuasiPeriodic(_periodic(0.5, 1.1), make_kernel("matern32", 0.7)),
    }


@functools.cache
def _jitted(method):
    return jax.jit(lambda k, *a: getattr(k, method)(*a))


def _compiled(kernel, method, *args):
    """``kernel.method(*args)``, compiled: run eagerly, every small operation of a kernel
    part compiles on its own (seconds per test). One compiled function per method, so
    kernels of the same structure and shapes share its compilation. The closed forms
    stay in numpy."""
    return _jitted(method)(kernel, *args)


def _chain_gram(kernel, x):
    """Prior covariance of ``u = z_1`` at sorted ``x`` from the chain's A, Q, Pinf only."""
    gaps = np.concatenate([[np.inf], np.diff(x)])
    A, Q = (np.asarray(m) for m in _compiled(kernel, "transition", jnp.asarray(gaps)))
    Ps = [np.asarray(kernel.sde()[1])]
    for j in range(1, x.size):
        Ps.append(A[j] @ Ps[-1] @ A[j].T + Q[j])
    K = np.zeros((x.size, x.size))
    for i in range(x.size):
        M = Ps[i]
        for j in range(i, x.size):
            if j > i:
                M = A[j] @ M  # Cov(s_j, s_i) = A_j ... A_{i+1} P_i
            K[i, j] = K[j, i] = M[0, 0]
    return K


@pytest.mark.parametrize("name", list(_parts()))
def test_each_part_state_space_covariance_equals_closed_form(name):
    part = _parts()[name]
    kern = KP.Sum((part,), name)
    x = np.sort(np.random.default_rng(0).uniform(0.0, 2.0, 40))
    ref = np.asarray(_compiled(kern, "gram", x, x, x[0]))
    np.testing.assert_allclose(_chain_gram(kern, x), ref, atol=1e-12)
    if name != "trend":  # stationary: H A(lag) Pinf H^T = k(lag) at many lags
        lags = np.linspace(0.0, 3.0, 301)
        A, _ = _compiled(kern, "transition", jnp.asarray(lags))
        Pinf = kern.sde()[1]
        cov = _compiled(kern, "covariance", lags)
        np.testing.assert_allclose((A @ Pinf)[:, 0, 0], cov, atol=1e-12)
        np.testing.assert_allclose(cov, _compiled(part, "covariance", lags), atol=1e-14)
    # the SDE's F gives the same transitions: A(D) = expm(F D)
    from scipy.linalg import expm

    F = np.asarray(kern.sde()[0])
    A, _ = kern.transition(jnp.asarray([0.37]))
    np.testing.assert_allclose(A[0], expm(F * 0.37), atol=1e-10)


@pytest.mark.parametrize("lengthscale", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("tol", [1e-3, 1e-6])
def test_periodic_truncation_error_within_the_stated_accuracy(lengthscale, tol):
    var = 1.7
    per = _periodic(2.0, var, lengthscale, tol)
    lags = np.linspace(-3.0, 3.0, 2001)
    err = np.abs(np.asarray(per.covariance(lags) - per.exact_covariance(lags)))
    assert err.max() <= tol * var * (1 + 1e-9)
    assert err[1000] == pytest.approx(err.max())  # the largest error is at lag 0
    # and J is the smallest number of harmonics that does it
    fewer = KP.Periodic(per.period, per.variance, lengthscale, per.weights[:-1])
    assert np.abs(np.asarray(fewer.covariance(0.0) - fewer.exact_covariance(0.0))) > tol * var


def test_sum_covariance_is_the_sum_of_the_parts():
    parts = _parts()
    stationary = tuple(parts[n] for n in ("matern32", "constant", "periodic", "quasiperiodic"))
    kern = KP.Sum(stationary, "sum")
    lags = np.linspace(0.0, 2.5, 251)
    total = sum(np.asarray(_compiled(p, "covariance", lags)) for p in stationary)
    np.testing.assert_allclose(_compiled(kern, "covariance", lags), total, atol=1e-13)
    A, _ = _compiled(kern, "transition", jnp.asarray(lags))
    np.testing.assert_allclose((A @ kern.sde()[1])[:, 0, 0], total, atol=1e-12)
    full = KP.Sum(tuple(parts.values()), "all")
    assert full.state_dim == sum(p.state_dim for p in parts.values())
    x = np.sort(np.random.default_rng(1).uniform(0.0, 2.0, 15))
    np.testing.assert_allclose(_chain_gram(full, x), _compiled(full, "gram", x, x, x[0]),
                               atol=1e-11)  # fmt: skip


def test_smoother_with_a_sum_kernel_equals_dense_gp(random_messages, dense_gp_posterior):
    rank = 3
    rng = np.random.default_rng(2)
    t = np.sort(rng.uniform(0, 2, size=22))
    p = _parts()
    kern = KP.Sum((p["matern32"], p["periodic"], p["constant"], p["trend"]), "sum")
    Lams, etas = random_messages(rng, t.size, rank)
    post = smooth(kern, jnp.asarray(t), jnp.asarray(Lams), jnp.asarray(etas))
    d, covs = kern.state_dim, np.asarray(post.smoothed_covs)
    mean, Sigma, logZ = dense_gp_posterior(np.asarray(_compiled(kern, "gram", t, t, t[0])), Lams, etas)
    np.testing.assert_allclose(post.smoothed_means[:, ::d], mean, atol=1e-8)
    for j in range(t.size):
        blk = Sigma[j * rank : (j + 1) * rank, j * rank : (j + 1) * rank]
        np.testing.assert_allclose(covs[j][::d, ::d], blk, atol=1e-8)
    np.testing.assert_allclose(post.log_normaliser, logZ, rtol=1e-9)
    # interpolation at new coordinates: the dense GP's conditional at those points
    q = np.array([t[0] - 0.3, 0.5 * (t[4] + t[5]), t[-1] + 0.4])
    m_q, s_q = interpolate(kern, jnp.asarray(t), t.size, post, jnp.asarray(q))
    Kqt = np.kron(np.asarray(_compiled(kern, "gram", q, t, t[0])), np.eye(rank))
    Ktt = np.kron(np.asarray(_compiled(kern, "gram", t, t, t[0])), np.eye(rank))
    W = np.linalg.solve(Ktt, Kqt.T).T  # u(q) = W u(t) + independent prior residual
    ref_m = (W @ mean.reshape(-1)).reshape(q.size, rank)
    np.testing.assert_allclose(m_q, ref_m, atol=1e-7)
    Kqq = np.kron(np.asarray(_compiled(kern, "gram", q, q, t[0])), np.eye(rank))
    C = Kqq - W @ Kqt.T + W @ Sigma @ W.T
    for i in range(q.size):
        blk = C[i * rank : (i + 1) * rank, i * rank : (i + 1) * rank]
        np.testing.assert_allclose(s_q[i] - np.outer(m_q[i], m_q[i]), blk, atol=1e-7)


def _seasonal_table(n=300, seed=0):
    rng = np.random.default_rng(seed)
    site = rng.uniform(0, 10, n).round(1)
    day = rng.integers(0, 400, n)
    date = pd.Timestamp("2020-01-01") + pd.to_timedelta(day, "D")
    y = (1.0 + 0.3 * np.sin(site / 2)) * (2.0 + np.sin(2 * np.pi * day / 91.0))
    return pd.DataFrame({"site": site, "date": date}), y + 0.1 * rng.normal(size=n)


def test_native_solver_runs_a_sum_kernel_as_the_jax_solver_does(random_messages):
    from funbat.hyper import smooth_with_lengthscale_search
    from funbat.solvers import get_solver

    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 2, size=12))
    p = _parts()
    kern = KP.Sum((p["matern32"], p["periodic"], p["constant"]), "sum")
    Lams, etas = (jnp.asarray(a) for a in random_messages(rng, t.size, 2))
    native, ref = get_solver("native"), smooth(kern, jnp.asarray(t), Lams, etas)
    got = jax.jit(native.smooth)(kern, jnp.asarray(t), Lams, etas, None)
    np.testing.assert_allclose(got.smoothed_means, ref.smoothed_means, atol=1e-12)
    bounds = jnp.array([-5.0, 5.0])
    k1, post1, _ = jax.jit(native.smooth_with_lengthscale_search)(
        kern, jnp.asarray(t), Lams, etas, 0.5, bounds, None)  # fmt: skip
    # compiled: run eagerly, the search's small operations compile one by one
    k2, post2, _ = jax.jit(smooth_with_lengthscale_search)(kern, jnp.asarray(t), Lams, etas, 0.5,
                                                           bounds)  # fmt: skip
    assert float(k1.lengthscale) == float(k2.lengthscale) != 0.4  # the search moved it
    assert float(post1.log_normaliser) >= float(ref.log_normaliser)  # and never lowers log Z
    np.testing.assert_allclose(post1.smoothed_means, post2.smoothed_means, atol=1e-12)


def _noisy_draw(kernel, t, sd, rng):
    """Messages (Lams (I, 1, 1), etas (I, 1)) of noisy observations (noise ``sd``) of one
    draw of the GP ``kernel`` at ``t`` (I,)."""
    K = np.asarray(_compiled(kernel, "gram", t, t, t[0]))
    u = np.linalg.cholesky(K + 1e-10 * np.eye(t.size)) @ rng.normal(size=t.size)
    Lams = jnp.full((t.size, 1, 1), 1.0 / sd**2)
    etas = jnp.asarray((u + sd * rng.normal(size=t.size))[:, None] / sd**2)
    return Lams, etas


def _searched(kern, t, Lams, etas, sweeps=60):
    """``sweeps`` searches from ``kern`` with the messages fixed: the last kernel and each
    search's log Z, checked never to decrease."""
    from funbat.hyper import smooth_with_lengthscale_search

    search = jax.jit(smooth_with_lengthscale_search)
    step, bounds, logzs = 0.5, jnp.array([-6.0, 3.0]), []
    for _ in range(sweeps):
        kern, post, step = search(kern, jnp.asarray(t), Lams, etas, step, bounds)
        logzs.append(float(post.log_normaliser))
    assert np.all(np.diff(logzs) >= -1e-9)  # never lowers log Z
    return kern, logzs


def test_search_learns_a_sum_kernels_variance_to_the_dense_marginal_likelihood_maximum(
    dense_gp_posterior,
):
    """Coordinate search on (log lengthscale, log variance) of the Matérn part of
    ``matern32 + constant``, messages fixed (noisy observations of one draw), against
    the dense GP log marginal likelihood maximised on a grid."""
    rng = np.random.default_rng(5)
    t = np.sort(rng.uniform(0, 2, size=60))
    truth = KP.Sum((make_kernel("matern32", 0.2, 0.3), KP.Constant(jnp.asarray(1.0))), "t")
    Lams, etas = _noisy_draw(truth, t, 0.05, rng)
    kern = KP.Sum((make_kernel("matern32", 0.5, 1.0), KP.Constant(jnp.asarray(1.0))), "s")
    assert KP.learns_variance(kern) and not KP.learns_variance(make_kernel("matern32", 0.5))
    kern, logzs = _searched(kern, t, Lams, etas)

    def dense_logz(ell, var):
        k = KP.Sum((make_kernel("matern32", ell, var), KP.Constant(jnp.asarray(1.0))), "d")
        gram = np.asarray(_compiled(k, "gram", t, t, t[0]))
        return dense_gp_posterior(gram, np.asarray(Lams), np.asarray(etas))[2]

    grid = [(e, v) for e in np.geomspace(0.05, 1.0, 16) for v in np.geomspace(0.01, 3.0, 16)]
    best = max(grid, key=lambda ev: dense_logz(*ev))
    np.testing.assert_allclose(logzs[-1], dense_logz(float(kern.lengthscale),
                                                     float(kern.variance)), rtol=1e-9)  # fmt: skip
    assert logzs[-1] >= dense_logz(*best) - 1e-6  # at least the grid's best
    # and near it: within a grid cell of the grid's maximum in both coordinates
    cell = np.log(1.0 / 0.05) / 15, np.log(3.0 / 0.01) / 15
    assert abs(np.log(float(kern.lengthscale) / best[0])) <= 1.5 * cell[0]
    assert abs(np.log(float(kern.variance) / best[1])) <= 1.5 * cell[1]


def test_search_learns_a_period_to_the_dense_marginal_likelihood_maximum(dense_gp_posterior):
    """``learn_period=True``: the coordinate search on (log lengthscale, log variance,
    log period) of ``matern32 + periodic``, messages fixed (noisy observations of one
    draw with period 0.1, search started at 0.104), against the dense GP log marginal
    likelihood over a fine grid of periods at the search's lengthscale and variance."""
    rng = np.random.default_rng(11)
    t = np.sort(rng.uniform(0, 1, size=100))

    def kernel(ell, var, period, learn):
        per = KP.Periodic(jnp.asarray(period), jnp.asarray(1.0), 1.0,
                          KP.periodic_weights(1.0, KP.PERIODIC_TOL), learn)  # fmt: skip
        return KP.Sum((make_kernel("matern32", ell, var), per), "t")

    Lams, etas = _noisy_draw(kernel(0.3, 0.05, 0.1, False), t, 0.1, rng)
    kern = kernel(0.3, 0.05, 0.104, True)
    assert KP.learns_period(kern) and not KP.learns_period(kernel(0.3, 0.05, 0.1, False))
    kern, logzs = _searched(kern, t, Lams, etas, sweeps=30)
    assert kern.parts[1].learn_period  # the flag survives the search

    ell, var, period = (float(v) for v in (kern.lengthscale, kern.variance, kern.period))

    def dense_logz(p):
        gram = np.asarray(_compiled(kernel(ell, var, p, False), "gram", t, t, t[0]))
        return dense_gp_posterior(gram, np.asarray(Lams), np.asarray(etas))[2]

    np.testing.assert_allclose(logzs[-1], dense_logz(period), rtol=1e-9)
    grid = np.linspace(0.097, 0.103, 61)
    best = grid[np.argmax([dense_logz(p) for p in grid])]
    assert logzs[-1] >= dense_logz(best) - 1e-6  # at least the grid's best
    assert abs(period - best) <= 2 * (grid[1] - grid[0])
    assert abs(period - 0.1) < 0.002  # and the true period, near enough


def test_fit_learns_a_period_in_days(assert_elbo_rises, tmp_path, capsys):
    X, y = _seasonal_table()
    kernel = {"date": "matern32 + periodic(85, learn_period=True) + constant"}
    m = FunBaT(rank=2, kernel=kernel, max_iter=25, random_state=0).fit(X, y)
    assert m.kernels_[1] == "matern32 + periodic(85, learn_period=True) + constant"
    assert_elbo_rises(m.elbo_history_, 25)
    info = {d["name"]: d for d in m.summary()["modes"]}
    assert info["date"]["period"] == pytest.approx(91.0, rel=0.01)  # the data's, in days
    fixed = FunBaT(rank=2, kernel={"date": "matern32 + periodic(85) + constant"},
                   max_iter=25, random_state=0).fit(X, y)  # fmt: skip
    assert {d["name"]: d for d in fixed.summary()["modes"]}["date"]["period"] is None
    assert m.elbo_ > fixed.elbo_
    m.save(tmp_path / "m.funbat")
    back = funbat.load(tmp_path / "m.funbat")
    np.testing.assert_array_equal(back.predict(X), m.predict(X))
    assert cli.main(["info", str(tmp_path / "m.funbat")]) == 0
    assert f"period {info['date']['period']:.6g} days" in capsys.readouterr().out


def test_fit_with_a_sum_kernel_raises_the_elbo_and_round_trips(assert_elbo_rises, tmp_path):
    X, y = _seasonal_table()
    kernel = {"date": "matern32 + periodic(91) + constant"}
    m = FunBaT(rank=2, kernel=kernel, max_iter=24, random_state=0).fit(X, y)
    assert m.kernels_ == ["matern32", "matern32 + periodic(91) + constant"]
    assert_elbo_rises(m.elbo_history_, 24)
    # the period is in days: 91 days in the model's scaled units
    k = m.result_.modes[1].kernel
    enc = m.result_.encodings[1]
    np.testing.assert_allclose(float(k.parts[1].period) * enc.scale, 91.0)
    assert m.lengthscales_[1] > 0 and np.isfinite(m.lengthscales_[1])
    pred = m.predict(X)
    assert np.sqrt(np.mean((pred - y) ** 2)) < 0.6 * np.std(y)  # it fits (loosely)
    m.save(tmp_path / "m.funbat")
    back = funbat.load(tmp_path / "m.funbat")
    assert back.kernel == kernel and back.kernels_ == m.kernels_
    np.testing.assert_array_equal(back.predict(X), pred)
    info = {d["name"]: d for d in m.summary()["modes"]}
    assert info["date"]["kernel_parts"] == ["Matern", "Periodic", "Constant"]
    # the Matérn part's variance is learned against the others' (it starts at 1)
    assert info["date"]["part_variance"] == pytest.approx(float(k.parts[0].variance))
    assert info["date"]["part_variance"] != 1.0
    assert "kernel_parts" not in info["site"]


def test_deterministic_parts_are_the_smoothed_states_and_exact_past_the_data():
    X, y = _seasonal_table()
    m = FunBaT(rank=2, kernel={"date": "matern32 + trend + periodic(91)"}, max_iter=12,
               random_state=0).fit(X, y)  # fmt: skip
    state, enc = m.result_.modes[1], m.result_.encodings[1]
    kern, I = state.kernel, int(state.n_valid)
    # at the training dates: the parts' own states from the smoother, coordinate by
    # coordinate (latent_parts carries the first one's state instead)
    z = np.asarray(state.posterior.smoothed_means[:I]).reshape(I, 2, kern.state_dim)
    parts_state = z @ np.asarray(kern._basis()[1]).T  # (I, R, D): [matern 2, trend 2, periodic]
    train_dates = pd.Timestamp("1970-01-01") + pd.to_timedelta(
        np.rint(enc.unscaled(enc.unique)), "D")  # fmt: skip
    parts = m.latent_parts("date", train_dates)
    assert list(parts) == ["trend", "periodic"]
    np.testing.assert_allclose(parts["trend"], parts_state[:, :, 2], atol=1e-8)
    h = kern.parts[2].observation()
    np.testing.assert_allclose(parts["periodic"], parts_state[:, :, 4:] @ h, atol=1e-8)
    # past the data: the trend is a straight line and the season repeats every 91 days
    ahead = pd.date_range(X["date"].max(), periods=200, freq="D")
    later = m.latent_parts("date", ahead)
    np.testing.assert_allclose(np.diff(later["trend"], 2, axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(later["periodic"][91:], later["periodic"][:-91], atol=1e-8)
    mean, _ = m.latent_functions("date", ahead)
    assert np.all(np.isfinite(mean - later["trend"] - later["periodic"]))
    assert m.latent_parts("site", [1.0, 2.0]) == {}
    with pytest.raises(InputError, match="mode 'nope' does not exist"):
        m.latent_parts("nope", [1.0])
    # the plot draws their sum, dashed, per component
    from funbat.plot import plot_latent_functions

    fig = plot_latent_functions(m)
    dashed = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert len(dashed) == 2 and dashed[0].get_label() == "trend + periodic"


@pytest.mark.parametrize(
    ("kernel", "message"),
    [
        ("rbf", "unknown kernel part 'rbf'"),
        ("matern32 + ", "cannot read kernel part ''"),
        ("periodic", "periodic needs a period"),
        ("periodic(-7)", "argument 'period' of periodic must be positive"),
        ("periodic(7, foo=1)", "periodic has no argument 'foo'"),
        ("matern32 + periodic(x)", "argument 'period' of periodic must be a number"),
        ("constant(1, 2)", "constant takes at most 1 arguments"),
        ("matern32 + periodic(7, learn_period=1)", "'learn_period' of periodic must be True"),
        ("periodic(7, learn_period=True) + constant", "learn_period=True needs a Matérn"),
        ("matern32 + periodic(7, learn_period=True) + periodic(3, learn_period=True)",
         "only one part may learn its period"),
        ({"nope": "constant"}, "kernel names modes \\['nope'\\]"),
        ({"date": 3}, "a kernel is a string"),
    ],
)
def test_bad_kernel_strings_are_one_line_errors(kernel, message):
    X, y = _seasonal_table(40)
    with pytest.raises(InputError, match=message) as err:
        FunBaT(kernel=kernel, max_iter=2).fit(X, y)
    assert "\n" not in str(err.value)


def test_cli_kernel_option_and_info_show_the_parts(tmp_path, capsys):
    X, y = _seasonal_table(120)
    X.assign(y=y.round(5), date=X["date"].dt.strftime("%Y-%m-%d")).to_csv(
        tmp_path / "d.csv", index=False
    )
    code = cli.main(["fit", str(tmp_path / "d.csv"), "-t", "y", "-c", "site,date", "-r", "2",
                     "--max-iter", "4", "--kernel", "date=matern32 + periodic(91, variance=0.5)",
                     "-o", str(tmp_path / "m.funbat")])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    model = funbat.load(tmp_path / "m.funbat")
    assert model.kernel == {"date": "matern32 + periodic(91, variance=0.5)"}
    capsys.readouterr()
    assert cli.main(["info", str(tmp_path / "m.funbat")]) == 0
    out = capsys.readouterr().out
    assert "matern32 + periodic(91, variance=0.5)" in out
    part_variance = float(model.result_.modes[1].kernel.variance)
    assert f"its variance {part_variance:.4g}" in out
    from funbat.cli._common import parse_kernels

    assert parse_kernels("matern52, periodic(7, variance=2) + constant") == [
        "matern52", "periodic(7, variance=2) + constant"]  # fmt: skip

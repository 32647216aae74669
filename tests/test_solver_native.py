"""The native chain solver (numba loops) against the JAX reference and the dense GP.

Every case compiles the solver's kernels for its state size and rank once per machine
(numba's disk cache keeps them), so the cases share a few ``(d, R)`` pairs.
"""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _numerics import assert_close, random_chain

from funbat import FunBaT
from funbat import kernel_parts as KP
from funbat.data import InputError
from funbat.hyper import smooth_with_lengthscale_search
from funbat.kalman import prior_quadratic, smooth
from funbat.kernels import KERNELS, make_kernel
from funbat.solvers import (
    SOLVERS,
    NativeSolver,
    SequentialSolver,
    default_solver_name,
    get_solver,
    numba_available,
)

pytestmark = [
    pytest.mark.usefixtures("x64"),
    pytest.mark.skipif(not numba_available(), reason="numba is not installed"),
]

NAMES = sorted(KERNELS)
#: (kernel, rank) pairs: every order at ranks 1 and 3, and Matérn-3/2 at ranks 1-7.
CASES = [(n, r) for n in NAMES for r in (1, 3)] + [("matern32", r) for r in (2, 4, 5, 6, 7)]


@jax.jit
def _native_smooth(kern, t, Lams, etas, n_valid):
    # compiled once per shape: cheaper than the eager calls' many small compilations
    return NativeSolver().smooth(kern, t, Lams, etas, n_valid)


@jax.jit
def _jax_smooth(kern, t, Lams, etas, n_valid):
    return smooth(kern, t, Lams, etas, n_valid=n_valid)


@jax.jit
def _native_search(kern, t, Lams, etas, step, bounds):
    return NativeSolver().smooth_with_lengthscale_search(kern, t, Lams, etas, step, bounds, 26)


@jax.jit
def _jax_search(kern, t, Lams, etas, step, bounds):
    return smooth_with_lengthscale_search(kern, t, Lams, etas, step, bounds, 26)


def _bounds():
    return jnp.array([np.log(1e-4), np.log(10.0)])  # float64: built inside the x64 fixture


@pytest.mark.parametrize(("name", "rank"), CASES)
def test_native_smoother_equals_dense_gp(name, rank, dense_gp_posterior):
    rng = np.random.default_rng(rank)
    I, n_valid = 24, 19  # padded: the last 5 coordinates carry no message
    t, Lams, etas = random_chain(rng, I, rank, n_valid, near=5)
    kern = make_kernel(name, lengthscale=0.8, variance=1.1)
    post = _native_smooth(kern, t, Lams, etas, n_valid)
    d, tv = kern.state_dim, np.asarray(t)[:n_valid]
    Kt = np.asarray(kern.covariance(tv[:, None] - tv[None, :]))
    mean, Sigma, logZ = dense_gp_posterior(Kt, np.asarray(Lams)[:n_valid],
                                           np.asarray(etas)[:n_valid])  # fmt: skip
    assert_close(post.smoothed_means[:n_valid, ::d], mean, rtol=1e-9)
    for j in range(n_valid):
        blk = Sigma[j * rank : (j + 1) * rank, j * rank : (j + 1) * rank]
        assert_close(post.smoothed_covs[j][::d, ::d], blk, rtol=1e-9)
    assert_close(post.log_normaliser, logZ)
    # the last real coordinate's filtered moments are its smoothed ones
    assert_close(post.filtered_means[n_valid - 1], post.smoothed_means[n_valid - 1], rtol=1e-12)
    # the padding keeps the stationary prior, as the JAX solver leaves it
    prior = np.kron(np.eye(rank), np.asarray(kern.sde()[1]))
    for f in post[:4]:
        pad = np.asarray(f)[n_valid:]
        assert_close(pad, np.broadcast_to(prior, pad.shape) if pad.ndim == 3 else 0 * pad)


# rank 7 (21-dimensional states) is checked against the dense GP above, and the search
# below; each rank-7 case costs half a minute of compilation
@pytest.mark.parametrize(("name", "rank"), [(n, 3) for n in NAMES])
def test_native_smoother_equals_jax(name, rank):
    """Every field, filtered moments included, against the JAX reference."""
    rng = np.random.default_rng(rank)
    t, Lams, etas = random_chain(rng, 24, rank, 19, near=5)
    kern = make_kernel(name, lengthscale=0.8, variance=1.1)
    ref = _jax_smooth(kern, t, Lams, etas, 19)
    for a, b in zip(_native_smooth(kern, t, Lams, etas, 19), ref):
        assert_close(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_native_pairwise_moments_equal_jax(name):
    """The prior's expected quadratic form, through the pairwise moments of the smoother's
    gains. (Not with coordinates 1e-7 apart: there ``Q^{-1}`` ~ 1e14 scales round-off of
    either solver's covariances into the result.)"""
    rng = np.random.default_rng(7)
    t, Lams, etas = random_chain(rng, 24, 3, 20)
    kern = make_kernel(name, lengthscale=0.3, variance=1.1)
    post = _native_smooth(kern, t, Lams, etas, 20)
    ref = _jax_smooth(kern, t, Lams, etas, 20)
    assert_close(prior_quadratic(kern, t, post, 20), prior_quadratic(kern, t, ref, 20))


@pytest.mark.parametrize(
    ("name", "rank", "step"),
    [(n, 3, s) for n in NAMES for s in (0.0, 0.7)] + [("matern32", 7, 0.7)],
)
def test_native_lengthscale_search_equals_jax(name, rank, step):
    rng = np.random.default_rng(10 + rank)
    t, Lams, etas = random_chain(rng, 30, rank, 26, near=5)
    kern = make_kernel(name, lengthscale=0.3, variance=0.9)
    k_ref, p_ref, s_ref = _jax_search(kern, t, Lams, etas, step, _bounds())
    k, p, s = _native_search(kern, t, Lams, etas, step, _bounds())
    assert_close(k.lengthscale, k_ref.lengthscale, rtol=1e-12)
    assert_close(s, s_ref, rtol=1e-12)
    for a, b in zip(p, p_ref):
        assert_close(a, b)


def test_native_search_at_the_bound_and_vmapped():
    """A search from the upper bound stays in bounds; a vmapped call (the callback runs
    once per batch element) gives the unbatched numbers."""
    rng = np.random.default_rng(3)
    t, Lams, etas = random_chain(rng, 30, 3, 26, near=5)
    kern = make_kernel("matern32", lengthscale=10.0)
    ref = _jax_search(kern, t, Lams, etas, 1.0, _bounds())
    k, p, s = _native_search(kern, t, Lams, etas, 1.0, _bounds())
    assert float(k.lengthscale) <= 10.0 * (1 + 1e-12)
    assert_close(k.lengthscale, ref[0].lengthscale, rtol=1e-12)
    assert_close(p.smoothed_means, ref[1].smoothed_means)
    both = jax.jit(jax.vmap(lambda L, e: NativeSolver().smooth(kern, t, L, e, 26)))(
        jnp.stack([Lams, 2 * Lams]), jnp.stack([etas, etas])
    )
    assert_close(both.smoothed_covs[1], _jax_smooth(kern, t, 2 * Lams, etas, 26).smoothed_covs)


def test_native_single_coordinate_and_no_messages(dense_gp_posterior):
    """A mode with one coordinate (a chain padded to 8, as the engine pads), and a chain
    without information (the prior, log Z = 0)."""
    kern = make_kernel("matern52", lengthscale=0.5, variance=2.0)
    t = jnp.asarray(0.3 + np.arange(8.0))
    Lams = jnp.zeros((8, 2, 2)).at[0].set(jnp.array([[4.0, 1.0], [1.0, 0.5]]))
    etas = jnp.zeros((8, 2)).at[0].set(jnp.array([1.5, -0.2]))
    post = _native_smooth(kern, t, Lams, etas, 1)
    for a, b in zip(post, _jax_smooth(kern, t, Lams, etas, 1)):
        assert_close(a, b)
    mean, Sigma, logZ = dense_gp_posterior(np.array([[2.0]]), np.asarray(Lams[:1]),
                                           np.asarray(etas[:1]))  # fmt: skip
    assert_close(post.smoothed_means[0, ::3], mean[0])
    assert_close(post.smoothed_covs[0][::3, ::3], Sigma)
    assert_close(post.log_normaliser, logZ)
    post = _native_smooth(kern, t, jnp.zeros((8, 2, 2)), jnp.zeros((8, 2)), 8)
    assert_close(post.smoothed_covs, np.broadcast_to(np.kron(np.eye(2), kern.sde()[1]), (8, 6, 6)))
    assert float(post.log_normaliser) == 0.0


def _sum(name):
    """Sums of kernel parts: the native solver runs them on transitions JAX builds. The
    two larger ones have 15 states per function, as a fit in test_kernel_parts does, so
    they share its compiled loops."""
    m32 = make_kernel("matern32", 0.4, 1.3)

    def per(lengthscale, learn=False):  # 5 harmonics at lengthscale 1, 3 at 2
        weights = KP.periodic_weights(lengthscale)
        return KP.Periodic(jnp.asarray(0.9), jnp.asarray(0.8), lengthscale, weights, learn)

    parts = {
        "matern32 + constant": (m32, KP.Constant(jnp.asarray(0.7))),
        "matern32 + trend + periodic": (m32, KP.Trend(jnp.asarray(0.5), jnp.asarray(2.0)),
                                        per(1.0, learn=True)),
        "quasiperiodic + constant": (KP.QuasiPeriodic(per(2.0), make_kernel("matern32", 0.7)),
                                     KP.Constant(jnp.asarray(0.3))),
    }[name]  # fmt: skip
    return KP.Sum(parts, name)


SUM_CASES = [("matern32 + constant", 1), ("matern32 + constant", 3),
             ("matern32 + trend + periodic", 2), ("quasiperiodic + constant", 2)]  # fmt: skip


@pytest.mark.parametrize(("name", "rank"), SUM_CASES)
def test_native_sum_kernels_equal_jax_and_the_dense_gp(name, rank, dense_gp_posterior):
    """Smoother (every field) and the search on (log lengthscale, log variance) of the
    learned part (and the log period, for the case that learns one), padded chains with a nearly repeated coordinate, against the JAX
    reference; the smoothed marginals against the dense GP of the sum's covariance."""
    rng = np.random.default_rng(20 + rank)
    t, Lams, etas = random_chain(rng, 30, rank, 26, near=5)
    kern = _sum(name)
    post = _native_smooth(kern, t, Lams, etas, 26)
    for a, b in zip(post, _jax_smooth(kern, t, Lams, etas, 26)):
        assert_close(a, b)
    tv = np.asarray(t)[:26]
    Kt = np.asarray(kern.gram(jnp.asarray(tv), jnp.asarray(tv), tv[0]))
    mean, Sigma, logZ = dense_gp_posterior(Kt, np.asarray(Lams)[:26], np.asarray(etas)[:26])
    d = kern.state_dim
    assert_close(post.smoothed_means[:26, ::d], mean, rtol=1e-8)
    assert_close(post.log_normaliser, logZ, rtol=1e-8)
    for step in (0.0, 0.7):
        k_ref, p_ref, s_ref = _jax_search(kern, t, Lams, etas, step, _bounds())
        k, p, s = _native_search(kern, t, Lams, etas, step, _bounds())
        assert_close(k.lengthscale, k_ref.lengthscale, rtol=1e-12)
        assert_close(k.variance, k_ref.variance, rtol=1e-12)
        if KP.learns_period(kern):
            assert_close(k.period, k_ref.period, rtol=1e-12)
        assert_close(s, s_ref, rtol=1e-12)
        for a, b in zip(p, p_ref):
            assert_close(a, b)
    moved = (float(k.lengthscale), float(k.variance)) != (float(kern.lengthscale),
                                                          float(kern.variance))  # fmt: skip
    assert moved


def test_solver_choice():
    assert set(SOLVERS) == {"native", "parallel", "sequential"}
    backend = jax.default_backend()
    assert default_solver_name() == {"cpu": "native", "gpu": "parallel"}.get(backend, "sequential")
    assert isinstance(get_solver("sequential"), SequentialSolver)
    assert get_solver("auto").name == default_solver_name()
    with pytest.raises(InputError, match="unknown chain solver"):
        get_solver("parallel-ish")
    with pytest.raises(InputError, match="chain_solver"):
        FunBaT(chain_solver="fast").check_params()


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.uniform(0, 1, n), rng.uniform(0, 2, n), rng.integers(0, 4, n)])
    y = np.sin(3 * X[:, 0]) * np.cos(X[:, 1]) + 0.3 * X[:, 2] + 0.1 * rng.normal(size=n)
    return X.astype(float), y


def test_fits_agree_across_solvers(tmp_path):
    """ELBO history, fitted lengthscales and predictions to 1e-8 (without the
    recalibration: the Student-t dof of near-Gaussian residuals is barely identified, so
    its optimum moves with round-off whatever the solver)."""
    from funbat import load, save

    X, y = _data()
    kw = dict(rank=2, max_iter=15, random_state=0, recalibrate=False)
    fits = {s: FunBaT(chain_solver=s, **kw).fit(X, y) for s in ("sequential", "native")}
    a, b = fits["sequential"], fits["native"]
    assert_close(b.elbo_history_, a.elbo_history_, rtol=1e-8)
    assert_close(b.lengthscales_[:2], a.lengthscales_[:2], rtol=1e-8)
    Xq = X[:40] + 0.01
    for pa, pb in zip(a.predict(Xq, return_std=True), b.predict(Xq, return_std=True)):
        assert_close(pb, pa, rtol=1e-8)
    assert a.summary()["chain_solver"] == "sequential"
    assert b.summary()["chain_solver"] == "native"
    save(b, tmp_path / "m.funbat")
    c = load(tmp_path / "m.funbat")
    assert c.summary()["chain_solver"] == "native" and c.get_params()["chain_solver"] == "native"
    assert_close(c.predict(Xq), b.predict(Xq), rtol=1e-12)


def test_native_without_numba_falls_back_to_jax(monkeypatch):
    """A model file naming the native solver still predicts where numba is missing."""
    import funbat.solvers.native as native

    monkeypatch.setattr(native, "numba_available", lambda: False)
    rng = np.random.default_rng(5)
    t, Lams, etas = random_chain(rng, 12, 2, near=5)
    kern = make_kernel("matern32", 0.4)
    assert_close(NativeSolver().smooth(kern, t, Lams, etas, 12).smoothed_means,
           smooth(kern, t, Lams, etas).smoothed_means, rtol=1e-14)  # fmt: skip
    kind = replace(get_solver("native"))
    assert kind == NativeSolver()

"""The parallel chain solver (associative scans) against the JAX reference and the dense GP.

An associative scan compiles its operator once per level of the scan, so a case costs
seconds of compilation; the chains here are short (8 coordinates) and each compiled
function serves several checks (``n_valid`` is traced: padding, a single coordinate and
no messages reuse one compilation).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _numerics import assert_close, random_chain

from funbat import FunBaT
from funbat import kernel_parts as KP
from funbat.hyper import smooth_with_lengthscale_search
from funbat.kalman import prior_quadratic, smooth
from funbat.kernels import make_kernel
from funbat.solvers import ParallelSolver, get_solver

pytestmark = pytest.mark.usefixtures("x64")

#: (kernel, rank); Matérn-3/2 at rank 3 is the case of the tests below, the search's
#: rank 1 (a sum kernel), the fit's rank 2.
CASES = [("matern12", 1), ("matern52", 3), ("matern12", 7)]

#: Chain length: three levels of the scan, room for padding.
I = 8


@jax.jit
def _par(kern, t, Lams, etas, n_valid):
    return ParallelSolver().smooth(kern, t, Lams, etas, n_valid)


@jax.jit
def _ref(kern, t, Lams, etas, n_valid):
    return smooth(kern, t, Lams, etas, n_valid=n_valid)


def _both(kern, t, Lams, etas, n_valid):
    """The parallel and the reference posterior (each compiled once per shape)."""
    return _par(kern, t, Lams, etas, n_valid), _ref(kern, t, Lams, etas, n_valid)


def _check_dense(post, kern, t, Lams, etas, n, dense_gp_posterior):
    """Smoothed marginals and log Z against the dense GP on the first ``n`` coordinates,
    and the filtered moments at the last of them (the dense posterior of all ``n``)."""
    d, rank, tv = kern.state_dim, etas.shape[-1], np.asarray(t)[:n]
    Kt = np.asarray(kern.covariance(tv[:, None] - tv[None, :]))
    mean, Sigma, logZ = dense_gp_posterior(Kt, np.asarray(Lams)[:n], np.asarray(etas)[:n])
    assert_close(post.smoothed_means[:n, ::d], mean)
    for j in range(n):
        blk = Sigma[j * rank : (j + 1) * rank, j * rank : (j + 1) * rank]
        assert_close(post.smoothed_covs[j][::d, ::d], blk)
    assert_close(post.filtered_means[n - 1, ::d], mean[n - 1])
    assert_close(post.filtered_covs[n - 1][::d, ::d], blk)
    assert_close(post.log_normaliser, logZ)


def _check_padding(post, kern, n, rtol=1e-14):
    """Past ``n`` every moment is the stationary prior, as the sequential solver leaves it."""
    rank = post.filtered_means.shape[-1] // kern.state_dim
    prior = np.kron(np.eye(rank), np.asarray(kern.sde()[1]))
    for f in post[:4]:
        pad = np.asarray(f)[n:]
        if not pad.size:
            continue
        assert_close(pad, np.broadcast_to(prior, pad.shape) if pad.ndim == 3 else 0 * pad, rtol)


@pytest.mark.parametrize(("name", "rank"), CASES)
def test_parallel_equals_dense_gp_and_reference(name, rank, dense_gp_posterior):
    """Padded and unpadded chains with singular and zero messages: every field against the
    sequential solver, the marginals and log Z against the dense GP."""
    rng = np.random.default_rng(rank)
    kern = make_kernel(name, lengthscale=0.8, variance=1.1)
    for n_valid in (I - 3, I):
        t, Lams, etas = random_chain(rng, I, rank, n_valid, near=2)
        par, ref = _both(kern, t, Lams, etas, n_valid)
        for a, b in zip(par, ref):
            assert_close(a, b)
        _check_dense(par, kern, t, Lams, etas, n_valid, dense_gp_posterior)
        _check_padding(par, kern, n_valid)


def test_parallel_pairwise_moments_equal_reference():
    """Matérn-3/2, rank 3: every field, and the prior's expected quadratic form (through
    the pairwise moments of the gains) from either posterior. (Not with coordinates 1e-7 apart: there ``Q^{-1}`` ~ 1e14
    scales either solver's round-off into it.)"""
    rng = np.random.default_rng(7)
    kern = make_kernel("matern32", lengthscale=0.3, variance=1.1)
    t, Lams, etas = random_chain(rng, I, 3, I - 2)
    par, ref = _both(kern, t, Lams, etas, I - 2)
    for a, b in zip(par, ref):
        assert_close(a, b)
    assert_close(prior_quadratic(kern, t, par, I - 2), prior_quadratic(kern, t, ref, I - 2))


def test_parallel_single_coordinate_and_no_messages(dense_gp_posterior):
    """A mode with one coordinate (a padded chain), a chain without information (the
    prior, log Z = 0), and messages of rank one at every coordinate."""
    rng = np.random.default_rng(3)
    kern = make_kernel("matern32", lengthscale=0.8, variance=1.1)  # shapes as above
    t, Lams, etas = random_chain(rng, I, 3, 1, near=2)
    Lams = Lams.at[0].set(jnp.array([[4.0, 1.0, 0.0], [1.0, 0.5, 0.0], [0.0, 0.0, 0.0]]))
    etas = etas.at[0].set(jnp.array([1.5, -0.2, 0.0]))
    par, ref = _both(kern, t, Lams, etas, 1)
    for a, b in zip(par, ref):
        assert_close(a, b)
    _check_dense(par, kern, t, Lams, etas, 1, dense_gp_posterior)
    _check_padding(par, kern, 1)
    par = _par(kern, t, jnp.zeros_like(Lams), jnp.zeros_like(etas), I)
    _check_padding(par, kern, 0, rtol=1e-12)  # the prior, up to round-off
    assert float(par.log_normaliser) == 0.0
    v = rng.normal(size=(I, 3))
    Lams, etas = jnp.asarray(v[:, :, None] * v[:, None, :]), jnp.asarray(rng.normal(size=(I, 3)))
    par, ref = _both(kern, t, Lams, etas, I)
    for a, b in zip(par, ref):
        assert_close(a, b)
    _check_dense(par, kern, t, Lams, etas, I, dense_gp_posterior)


@jax.jit
def _searches(kern, t, Lams, etas, step, bounds):
    par = ParallelSolver().smooth_with_lengthscale_search(kern, t, Lams, etas, step, bounds, I - 2)
    return par, smooth_with_lengthscale_search(kern, t, Lams, etas, step, bounds, I - 2)


def test_parallel_lengthscale_search_equals_reference():
    """The same lengthscale and next step, and the same smoothed chain of the winner, for
    searches inside the bounds and from the upper bound (a long lengthscale), on a sum
    of parts (singular process noise: the constant and the trend are deterministic).
    The search on a plain Matérn kernel runs in the fit below (its learning sweeps)."""
    rng = np.random.default_rng(10)
    t, Lams, etas = random_chain(rng, I, 1, I - 2, near=2)
    bounds = jnp.array([np.log(1e-4), np.log(10.0)])
    for ell, step in ((0.3, 0.7), (0.3, 0.0), (10.0, 1.0)):
        kern = KP.Sum((make_kernel("matern52", lengthscale=ell, variance=0.9),
                       KP.Constant(jnp.asarray(0.7)),
                       KP.Trend(jnp.asarray(0.5), jnp.asarray(2.0))), "sum")  # fmt: skip
        (k, p, s), (k_ref, p_ref, s_ref) = _searches(kern, t, Lams, etas, step, bounds)
        assert_close(k.lengthscale, k_ref.lengthscale, rtol=1e-12)
        assert_close(s, s_ref, rtol=1e-12)
        for a, b in zip(p, p_ref):
            assert_close(a, b)
    # a learned period (three harmonics: periodic lengthscale 2) moves the same way
    per = KP.Periodic(jnp.asarray(0.4), jnp.asarray(0.8), 2.0, KP.periodic_weights(2.0), True)
    kern = KP.Sum((make_kernel("matern32", lengthscale=0.3), per), "learned period")
    (k, p, s), (k_ref, p_ref, s_ref) = _searches(kern, t, Lams, etas, 0.7, bounds)
    assert_close(k.period, k_ref.period, rtol=1e-12)
    assert_close(k.variance, k_ref.variance, rtol=1e-12)
    assert_close(s, s_ref, rtol=1e-12)
    for a, b in zip(p, p_ref):
        assert_close(a, b)


def _data(n=200, seed=0):
    """One continuous mode of 8 unique coordinates (a short chain, quick to compile) and a
    discrete one."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.integers(0, 8, n) / 7, rng.integers(0, 4, n)]).astype(float)
    y = np.sin(3 * X[:, 0]) + 0.3 * X[:, 1] + 0.1 * rng.normal(size=n)
    return X, y


def test_fits_agree_with_the_sequential_solver(tmp_path):
    """ELBO history, lengthscales and predictions to 1e-8; the solver is saved with the
    model and shown by its summary."""
    from funbat import load, save

    X, y = _data()
    kw = dict(rank=2, max_iter=8, random_state=0, recalibrate=False)
    a = FunBaT(chain_solver="sequential", **kw).fit(X, y)
    b = FunBaT(chain_solver="parallel", **kw).fit(X, y)
    assert_close(b.elbo_history_, a.elbo_history_, rtol=1e-8)
    assert_close(b.lengthscales_[0], a.lengthscales_[0], rtol=1e-8)
    assert abs(b.lengthscales_[0] - 3 / 7) > 1e-3  # the searches moved it from its start
    Xq = X[:40] + 0.01
    for pa, pb in zip(a.predict(Xq, return_std=True), b.predict(Xq, return_std=True)):
        assert_close(pb, pa, rtol=1e-8)
    assert b.summary()["chain_solver"] == "parallel"
    save(b, tmp_path / "m.funbat")
    c = load(tmp_path / "m.funbat")
    assert c.summary()["chain_solver"] == "parallel" and isinstance(get_solver("parallel"),
                                                                      ParallelSolver)  # fmt: skip
    assert_close(c.predict(Xq), b.predict(Xq), rtol=1e-12)

"""The state-space machinery against dense Gaussian-process computations."""

import jax.numpy as jnp
import numpy as np
import pytest
from _numerics import interpolate, smooth

from funbat.kalman import log_normaliser, message_factors
from funbat.kernels import KERNELS, make_kernel

NAMES = sorted(KERNELS)


pytestmark = pytest.mark.usefixtures("x64")


@pytest.mark.parametrize("name", NAMES)
def test_state_space_matches_closed_form_covariance(name):
    kern = make_kernel(name, lengthscale=0.7, variance=1.3)
    lags = np.linspace(0.0, 5.0, 60)
    A, _ = kern.transition(lags)
    Pinf = kern.sde()[1]
    # Cov(f(x + D), f(x)) = H A Pinf H^T
    cov_ss = (A @ Pinf)[:, 0, 0]
    np.testing.assert_allclose(cov_ss, kern.covariance(lags), rtol=1e-9, atol=1e-12)
    # stationarity: A Pinf A^T + Q = Pinf
    A, Q = kern.transition(lags)
    np.testing.assert_allclose(
        A @ Pinf @ np.swapaxes(A, 1, 2) + Q, np.broadcast_to(Pinf, A.shape), atol=1e-10
    )


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("rank", [1, 3])
def test_smoother_equals_dense_gp_posterior(name, rank, random_messages, dense_gp_posterior):
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 4, size=25))
    t[5] = t[4] + 1e-7  # nearly repeated coordinate
    kern = make_kernel(name, lengthscale=0.8, variance=1.1)
    Lams, etas = random_messages(rng, t.size, rank)
    post = smooth(kern, jnp.asarray(t), jnp.asarray(Lams), jnp.asarray(etas))
    d = kern.state_dim
    Kt = np.asarray(kern.covariance(t[:, None] - t[None, :]))
    mean, Sigma, logZ = dense_gp_posterior(Kt, Lams, etas)
    np.testing.assert_allclose(post.smoothed_means[:, ::d], mean, atol=1e-8)
    for j in range(t.size):
        blk = Sigma[j * rank : (j + 1) * rank, j * rank : (j + 1) * rank]
        np.testing.assert_allclose(post.smoothed_covs[j][::d, ::d], blk, atol=1e-8)
    np.testing.assert_allclose(post.log_normaliser, logZ, rtol=1e-9)
    np.testing.assert_allclose(log_normaliser(kern, jnp.asarray(t), Lams, etas), logZ, rtol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_interpolation_equals_smoother_with_inserted_coordinate(name, random_messages):
    rng = np.random.default_rng(1)
    rank = 2
    t = np.sort(rng.uniform(0, 3, size=12))
    kern = make_kernel(name, lengthscale=0.5, variance=0.9)
    Lams, etas = random_messages(rng, t.size, rank)
    post = smooth(kern, jnp.asarray(t), jnp.asarray(Lams), jnp.asarray(etas))
    # inside, on a training point, before the first and after the last coordinate
    queries = np.array([t[3] + 0.3 * (t[4] - t[3]), t[7], t[0] - 0.4, t[-1] + 0.25, t[-1]])
    mean, second = interpolate(kern, jnp.asarray(t), t.size, post, jnp.asarray(queries))
    d = kern.state_dim
    for q, m_q, s_q in zip(queries, mean, second):
        if q in t:
            j = int(np.flatnonzero(t == q)[0])
            ref_m = post.smoothed_means[j][::d]
            ref_c = post.smoothed_covs[j][::d, ::d]
        else:
            t2 = np.sort(np.append(t, q))
            pos = int(np.searchsorted(t2, q))
            L2 = np.insert(Lams, pos, 0.0, axis=0)
            e2 = np.insert(etas, pos, 0.0, axis=0)
            p2 = smooth(kern, jnp.asarray(t2), jnp.asarray(L2), jnp.asarray(e2))
            ref_m = p2.smoothed_means[pos][::d]
            ref_c = p2.smoothed_covs[pos][::d, ::d]
        np.testing.assert_allclose(m_q, ref_m, atol=1e-9)
        np.testing.assert_allclose(s_q - np.outer(m_q, m_q), ref_c, atol=1e-9)


def test_interpolation_ignores_padding(random_messages):
    rng = np.random.default_rng(2)
    t = np.sort(rng.uniform(0, 1, size=6))
    kern = make_kernel("matern32", 0.3)
    Lams, etas = random_messages(rng, 6, 2)
    post = smooth(kern, jnp.asarray(t), jnp.asarray(Lams), jnp.asarray(etas))
    tp = np.concatenate([t, t[-1] + np.arange(1, 4)])
    Lp = np.concatenate([Lams, np.zeros((3, 2, 2))])
    ep = np.concatenate([etas, np.zeros((3, 2))])
    postp = smooth(kern, jnp.asarray(tp), jnp.asarray(Lp), jnp.asarray(ep))
    q = jnp.asarray([-0.5, 0.33, t[-1] + 0.5, t[-1] + 2.5])
    a = interpolate(kern, jnp.asarray(t), 6, post, q)
    b = interpolate(kern, jnp.asarray(tp), 6, postp, q)
    np.testing.assert_allclose(a[0], b[0], atol=1e-10)
    np.testing.assert_allclose(a[1], b[1], atol=1e-10)
    np.testing.assert_allclose(post.log_normaliser, postp.log_normaliser, rtol=1e-12)


@pytest.mark.parametrize("rank", [1, 2, 3, 5, 9])
def test_message_factors_reproduce_singular_precisions(rank, x64):
    """L L^T = Lambda also for rank-deficient Lambda (coordinates seen by few entries)."""
    rng = np.random.default_rng(rank)
    for deficient in range(rank + 1):
        B = rng.normal(size=(40, rank, rank - deficient))
        Lams = np.einsum("iab,icb->iac", B, B) * rng.uniform(1e-2, 1e2, (40, 1, 1))
        F = np.asarray(message_factors(jnp.asarray(Lams)))
        assert np.all(np.isfinite(F))
        np.testing.assert_allclose(
            np.einsum("iab,icb->iac", F, F), Lams, atol=1e-11 * np.abs(Lams).max()
        )

"""Dense-GP modes (spatial points, discrete categories) against independent dense algebra."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _numerics import categories_posterior, interpolate, points_posterior, smooth

from funbat import dense as DN
from funbat.kernels import make_kernel
from funbat.sampling import chain_samples

pytestmark = pytest.mark.usefixtures("x64")


def _matern(nu, r):
    if nu == 0.5:
        return np.exp(-r)
    if nu == 1.5:
        return (1 + np.sqrt(3) * r) * np.exp(-np.sqrt(3) * r)
    return (1 + np.sqrt(5) * r + 5 * r**2 / 3) * np.exp(-np.sqrt(5) * r)


def _gram(nu, ells, s2, A, B):
    r = np.sqrt((((A[:, None, :] - B[None, :, :]) / ells) ** 2).sum(-1))
    return s2 * _matern(nu, r)


@pytest.mark.parametrize("nu", [0.5, 1.5, 2.5])
def test_spatial_posterior_equals_dense_gp(nu, random_messages, dense_gp_posterior):
    rng = np.random.default_rng(1)
    I, R = 30, 3
    X = rng.uniform(size=(I, 2))
    kern = DN.PointMatern(nu, jnp.array([0.3, 0.6]), jnp.asarray(1.4))
    Lams, etas = random_messages(rng, I, R)
    _, post, means, seconds, _ = points_posterior(
        kern, jnp.asarray(X), jnp.asarray(Lams), jnp.asarray(etas), 0.5, None, learn=False
    )
    mean, Sigma, logZ = dense_gp_posterior(_gram(nu, np.array([0.3, 0.6]), 1.4, X, X), Lams, etas)
    np.testing.assert_allclose(means, mean, atol=1e-6)
    for j in range(I):
        blk = Sigma[j * R : (j + 1) * R, j * R : (j + 1) * R]
        np.testing.assert_allclose(seconds[j] - np.outer(mean[j], mean[j]), blk, atol=1e-6)
    np.testing.assert_allclose(post.log_normaliser, logZ, rtol=1e-6)


def test_discrete_posterior_is_identity_kernel_gp(random_messages, dense_gp_posterior):
    rng = np.random.default_rng(2)
    I, R, s2 = 12, 2, 0.7
    Lams, etas = random_messages(rng, I, R)
    post, means, seconds = categories_posterior(
        DN.Identity(jnp.asarray(s2)), jnp.arange(I, dtype=float), Lams, etas
    )
    mean, Sigma, logZ = dense_gp_posterior(s2 * np.eye(I), Lams, etas)
    np.testing.assert_allclose(means, mean, atol=1e-9)
    for j in range(I):
        S = np.linalg.inv(np.eye(R) / s2 + Lams[j])  # per category, by hand
        np.testing.assert_allclose(seconds[j] - np.outer(mean[j], mean[j]), S, atol=1e-9)
    np.testing.assert_allclose(post.log_normaliser, logZ, rtol=1e-7)


def _fitted_spatial(random_messages, nu=1.5):
    rng = np.random.default_rng(3)
    I, R = 25, 2
    X = rng.uniform(size=(I, 2))
    ells = np.array([0.4, 0.25])
    kern = DN.PointMatern(nu, jnp.asarray(ells), jnp.asarray(1.2))
    Lams, etas = random_messages(rng, I, R)
    _, post, means, seconds, _ = points_posterior(
        kern, jnp.asarray(X), Lams, etas, 0.5, None, learn=False
    )
    return rng, X, ells, kern, Lams, etas, post, means, seconds


def test_conditional_at_training_points_equals_posterior_marginal(random_messages):
    _, X, _, kern, _, _, post, means, seconds = _fitted_spatial(random_messages)
    m, s = DN.conditional(kern, jnp.asarray(X), post, jnp.asarray(X))
    np.testing.assert_allclose(m, means, atol=1e-6)
    np.testing.assert_allclose(s, seconds, atol=1e-6)


def test_conditional_at_new_points_equals_dense_joint_gaussian(random_messages, dense_gp_posterior):
    rng, X, ells, kern, Lams, etas, post, _, _ = _fitted_spatial(random_messages, nu=2.5)
    Q = rng.uniform(-0.2, 1.2, size=(7, 2))
    R = etas.shape[1]
    # joint dense GP over training + query points, with no message at the queries
    P = np.vstack([X, Q])
    Lj = np.concatenate([Lams, np.zeros((7, R, R))])
    ej = np.concatenate([etas, np.zeros((7, R))])
    mean, Sigma, _ = dense_gp_posterior(_gram(2.5, ells, 1.2, P, P), Lj, ej)
    m, s = DN.conditional(kern, jnp.asarray(X), post, jnp.asarray(Q))
    I = X.shape[0]
    np.testing.assert_allclose(m, mean[I:], atol=1e-6)
    for q in range(7):
        j = I + q
        blk = Sigma[j * R : (j + 1) * R, j * R : (j + 1) * R]
        np.testing.assert_allclose(s[q] - np.outer(m[q], m[q]), blk, atol=1e-6)


def test_spatial_joint_samples_match_dense_joint_gaussian(random_messages, dense_gp_posterior):
    rng, X, ells, kern, Lams, etas, post, _, _ = _fitted_spatial(random_messages, nu=2.5)
    Q = np.vstack([X[:2], rng.uniform(size=(3, 2))])
    R = etas.shape[1]
    P = np.vstack([X, Q[2:]])
    Lj = np.concatenate([Lams, np.zeros((3, R, R))])
    ej = np.concatenate([etas, np.zeros((3, R))])
    mean, Sigma, _ = dense_gp_posterior(_gram(2.5, ells, 1.2, P, P), Lj, ej)
    pick = np.array([0, 1, 25, 26, 27])
    rows = (pick[:, None] * R + np.arange(R)).reshape(-1)
    u = DN.sample_points(kern, jnp.asarray(X), post, jnp.asarray(Q), jax.random.PRNGKey(0), 20000)
    u = np.asarray(u).reshape(20000, -1)
    np.testing.assert_allclose(u.mean(0), mean[pick].reshape(-1), atol=0.05)
    np.testing.assert_allclose(np.cov(u.T), Sigma[np.ix_(rows, rows)], atol=0.05)


def test_chain_samples_match_interpolated_marginals_and_joint(random_messages, dense_gp_posterior):
    rng = np.random.default_rng(4)
    t = np.sort(rng.uniform(0, 3, size=20))
    kern = make_kernel("matern32", 0.6, 1.0)
    Lams, etas = random_messages(rng, t.size, 2)
    post = smooth(kern, jnp.asarray(t), jnp.asarray(Lams), jnp.asarray(etas))
    q = np.array([-0.5, t[3], 0.5 * (t[7] + t[8]), 3.4])
    u = np.asarray(chain_samples(kern, t, t.size, post, q, jax.random.PRNGKey(1), 20000))
    m, s = interpolate(kern, jnp.asarray(t), t.size, post, jnp.asarray(q))
    np.testing.assert_allclose(u.mean(0), m, atol=0.05)
    emp = np.einsum("snr,snq->nrq", u, u) / u.shape[0]
    np.testing.assert_allclose(emp, s, atol=0.06)
    # joint: neighbours in the chain are correlated as the dense posterior says
    tj = np.concatenate([t, q[[0, 2]]])
    order = np.argsort(tj)
    Lj = np.concatenate([Lams, np.zeros((2, 2, 2))])[order]
    ej = np.concatenate([etas, np.zeros((2, 2))])[order]
    Kt = np.asarray(kern.covariance(tj[order][:, None] - tj[order][None, :]))
    _, Sigma, _ = dense_gp_posterior(Kt, Lj, ej)
    a = int(np.where(order == 21)[0][0])  # the midpoint query
    b = int(np.where(order == 7)[0][0])  # its left neighbour, a training coordinate
    q7 = np.asarray(
        chain_samples(kern, t, t.size, post, [t[7], q[2]], jax.random.PRNGKey(2), 20000)
    )
    np.testing.assert_allclose(
        np.cov(q7[:, 0, 0], q7[:, 1, 0])[0, 1], Sigma[b * 2, a * 2], atol=0.03
    )


def test_learning_spatial_lengthscales_raises_log_normaliser(random_messages):
    _, X, _, kern, Lams, etas, post, _, _ = _fitted_spatial(random_messages)
    bounds = jnp.log(jnp.array([1e-3, 10.0]))
    k2, post2, *_ = points_posterior(
        DN.PointMatern(1.5, jnp.array([2.0, 2.0]), jnp.asarray(1.2)),
        jnp.asarray(X),
        Lams,
        etas,
        jnp.asarray(0.5),
        bounds,
        learn=True,
    )
    _, post0, *_ = points_posterior(
        DN.PointMatern(1.5, jnp.array([2.0, 2.0]), jnp.asarray(1.2)),
        jnp.asarray(X),
        Lams,
        etas,
        0.5,
        None,
        learn=False,
    )
    assert float(post2.log_normaliser) > float(post0.log_normaliser)
    assert not np.allclose(k2.lengthscales, 2.0)


def test_too_many_points_is_a_clear_error():
    from funbat import InputError

    with pytest.raises(InputError, match="at most"):
        DN.check_size(DN.MAX_SPATIAL_POINTS + 1, "lat+lon")

"""Mode kinds: their expected prior quadratic forms against dense computations."""

import jax.numpy as jnp
import numpy as np
import pytest
from _numerics import categories_posterior, points_posterior, smooth

from funbat import dense as DN
from funbat.kalman import chain_matrices, prior_quadratic
from funbat.kernels import make_kernel


def _dense_state_posterior(kernel, coords, Lams, etas):
    """The chain's posterior over all states (I D,) by dense linear algebra, and each
    component's prior precision over its own states (R, I d, I d)."""
    I, R = etas.shape
    d = kernel.state_dim
    D = R * d
    A, Q, _ = (np.asarray(m) for m in chain_matrices(kernel, jnp.asarray(coords), R))
    M = np.eye(I * D)  # x_j - A_j x_{j-1}, stacked
    for j in range(1, I):
        M[j * D : (j + 1) * D, (j - 1) * D : j * D] = -A[j]
    Qinv = np.zeros((I * D, I * D))
    for j in range(I):
        Qinv[j * D : (j + 1) * D, j * D : (j + 1) * D] = np.linalg.inv(Q[j])
    prior = M.T @ Qinv @ M
    H = np.zeros((R, D))
    H[np.arange(R), np.arange(R) * d] = 1.0  # u = H x (component-major states)
    msg, shift = np.zeros((I * D, I * D)), np.zeros(I * D)
    for j in range(I):
        msg[j * D : (j + 1) * D, j * D : (j + 1) * D] = H.T @ Lams[j] @ H
        shift[j * D : (j + 1) * D] = H.T @ etas[j]
    Sigma = np.linalg.inv(prior + msg)
    mean = Sigma @ shift
    idx = [[j * D + r * d + a for j in range(I) for a in range(d)] for r in range(R)]
    return mean, Sigma, [prior[np.ix_(i, i)] for i in idx], idx


@pytest.mark.parametrize("name", ["matern12", "matern32", "matern52"])
def test_chain_prior_quadratic_equals_dense_state_space(x64, random_messages, name):
    rng = np.random.default_rng(4)
    I, R = 7, 3
    coords = np.sort(rng.uniform(0.0, 1.0, I))
    kernel = make_kernel(name, 0.3, 1.3)
    Lams, etas = random_messages(rng, I, R)
    mean, Sigma, priors, idx = _dense_state_posterior(kernel, coords, Lams, etas)
    P = priors[0]  # every component has the same prior
    exact = np.array([[np.trace(P @ Sigma[np.ix_(i, j)]) + mean[i] @ P @ mean[j] for j in idx]
                      for i in idx])  # fmt: skip
    post = smooth(kernel, jnp.asarray(coords), jnp.asarray(Lams), jnp.asarray(etas))
    np.testing.assert_allclose(prior_quadratic(kernel, jnp.asarray(coords), post), exact, rtol=1e-7)
    # a chain padded past its last coordinate gives the same (the padding does not count)
    pad = np.concatenate([coords, coords[-1] + 1.0 + np.arange(3)])
    Lp = np.concatenate([Lams, np.zeros((3, R, R))])
    ep = np.concatenate([etas, np.zeros((3, R))])
    post_p = smooth(kernel, jnp.asarray(pad), jnp.asarray(Lp), jnp.asarray(ep), n_valid=I)
    np.testing.assert_allclose(prior_quadratic(kernel, jnp.asarray(pad), post_p, I), exact,
                               rtol=1e-7)  # fmt: skip


def test_chain_prior_quadratic_at_nearly_coincident_coordinates(x64, random_messages):
    """Two coordinates far closer than a lengthscale: the transition noise is at
    round-off (an eigenvalue of -2e-16 was computed at a gap of 4e-6 with lengthscale
    2.6, and the forms came out NaN, stopping a rank="auto" fit). The forms are finite
    and continuous as the gap closes, and equal the dense ones while those are exact."""
    rng = np.random.default_rng(5)
    I, R = 8, 2
    base = np.sort(rng.uniform(0.0, 1.0, I - 1))
    kernel = make_kernel("matern32", 2.6, 1.0)
    Lams, etas = random_messages(rng, I, R)
    forms = {}
    for gap in (1e-3, 1e-5, 4e-6, 1e-7):
        coords = np.sort(np.append(base, base[3] + gap))
        post = smooth(kernel, jnp.asarray(coords), jnp.asarray(Lams), jnp.asarray(etas))
        forms[gap] = np.asarray(prior_quadratic(kernel, jnp.asarray(coords), post))
        assert np.all(np.isfinite(forms[gap])), gap
    mean, Sigma, priors, idx = _dense_state_posterior(
        kernel, np.sort(np.append(base, base[3] + 1e-3)), Lams, etas)  # fmt: skip
    exact = np.array([[np.trace(priors[0] @ Sigma[np.ix_(i, j)]) + mean[i] @ priors[0] @ mean[j]
                       for j in idx] for i in idx])  # fmt: skip
    # the dense inverse of Q itself loses digits at that gap: 1e-7 of the forms' size
    scale = np.max(np.abs(exact))
    np.testing.assert_allclose(forms[1e-3], exact, rtol=1e-6, atol=1e-7 * scale)
    np.testing.assert_allclose(forms[1e-7], forms[1e-5], rtol=1e-3, atol=1e-3 * scale)


def test_dense_prior_quadratics_equal_their_formulas(x64, random_messages, dense_gp_posterior):
    rng = np.random.default_rng(5)
    I, R = 9, 2
    X = rng.uniform(size=(I, 2))
    kern = DN.PointMatern(1.5, jnp.array([0.4, 0.7]), jnp.asarray(1.1))
    Lams, etas = random_messages(rng, I, R)
    _, post, *_ = points_posterior(kern, jnp.asarray(X), jnp.asarray(Lams), jnp.asarray(etas),
                                   0.5, None, learn=False)  # fmt: skip
    K = np.asarray(kern.gram(jnp.asarray(X), jnp.asarray(X)))
    K = K + 1e-8 * np.max(np.diag(K)) * np.eye(I)  # the jitter the posterior uses
    mean, Sigma, _ = dense_gp_posterior(K, Lams, etas)
    Kinv = np.linalg.inv(K)
    exact = np.array([[np.trace(Kinv @ Sigma[s::R, r::R]) + mean[:, r] @ Kinv @ mean[:, s]
                       for s in range(R)] for r in range(R)])  # fmt: skip
    np.testing.assert_allclose(DN.prior_quadratic(post), exact, rtol=1e-6)
    # categories: iid N(0, s2) per category, so E[u_r^2] / s2 summed
    s2 = 0.6
    post, means, seconds = categories_posterior(DN.Identity(jnp.asarray(s2)),
                                                jnp.arange(I, dtype=float), Lams, etas)  # fmt: skip
    exact = np.asarray(seconds).sum(axis=0) / (s2 * (1.0 + 1e-8))  # with the posterior's jitter
    np.testing.assert_allclose(DN.prior_quadratic(post), exact, rtol=1e-9)


@pytest.mark.parametrize("name", ["matern12", "matern32"])
def test_transformed_chain_kl_equals_the_dense_gaussian_kl(x64, random_messages, name):
    """Pushing the chain's q through u -> T u changes KL(q || p) by
    tr(T Q T^T - Q) / 2 - D log|det T| (the moves' bookkeeping), against the dense KL of
    the transformed Gaussian over all states; the chain kind's transform gives the
    transformed marginals."""
    from funbat.kalman import ChainPosterior, transform_chain

    rng = np.random.default_rng(8)
    I, R = 6, 2
    coords = np.sort(rng.uniform(0.0, 1.0, I))
    kernel = make_kernel(name, 0.4, 1.2)
    d = kernel.state_dim
    Lams, etas = random_messages(rng, I, R)
    mean, Sigma, priors, idx = _dense_state_posterior(kernel, coords, Lams, etas)
    A, Q, _ = (np.asarray(m) for m in chain_matrices(kernel, jnp.asarray(coords), R))
    D = R * d
    M = np.eye(I * D)
    for j in range(1, I):
        M[j * D : (j + 1) * D, (j - 1) * D : j * D] = -A[j]
    Qinv = np.zeros((I * D, I * D))
    for j in range(I):
        Qinv[j * D : (j + 1) * D, j * D : (j + 1) * D] = np.linalg.inv(Q[j])
    prec = M.T @ Qinv @ M  # the prior's precision over all states

    def dense_kl(m, S):
        n = m.size
        _, logdet_prec = np.linalg.slogdet(prec)
        _, logdet_S = np.linalg.slogdet(S)
        return 0.5 * (np.trace(prec @ S) + m @ prec @ m - n - logdet_prec - logdet_S)

    T = rng.normal(size=(R, R)) + 1.5 * np.eye(R)
    B = np.kron(np.eye(I), np.kron(T, np.eye(d)))
    post = smooth(kernel, jnp.asarray(coords), jnp.asarray(Lams), jnp.asarray(etas))
    Qk = np.asarray(prior_quadratic(kernel, jnp.asarray(coords), post))
    change = 0.5 * (np.trace(T @ Qk @ T.T) - np.trace(Qk)) - I * d * np.log(abs(np.linalg.det(T)))
    np.testing.assert_allclose(dense_kl(B @ mean, B @ Sigma @ B.T), dense_kl(mean, Sigma) + change,
                               rtol=1e-8)  # fmt: skip
    moved = transform_chain(post, jnp.asarray(T), d)
    assert isinstance(moved, ChainPosterior)
    np.testing.assert_allclose(np.asarray(moved.smoothed_means).reshape(-1), B @ mean, rtol=1e-7,
                               atol=1e-10)  # fmt: skip
    blocks = [slice(j * D, (j + 1) * D) for j in range(I)]
    S_t = B @ Sigma @ B.T
    for j, b in enumerate(blocks):
        np.testing.assert_allclose(np.asarray(moved.smoothed_covs[j]), S_t[b, b], rtol=1e-7,
                                   atol=1e-10)  # fmt: skip


def _lapack_calls_and_ancestors(hlo: str):
    """The batched LAPACK custom calls of a compiled program's text, each with the set
    of instructions it depends on through their operands (HLO names are unique in a
    module)."""
    import re

    operands, lapack = {}, []
    for line in hlo.splitlines():
        m = re.match(r"\s*(?:ROOT )?%([\w.\-]+) = .*?\((.*)", line)
        if not m:
            continue
        name = m.group(1)
        operands[name] = set(re.findall(r"%([\w.\-]+)", m.group(2)))
        if "lapack_" in line and "custom-call" in line:
            lapack.append(name)

    def ancestors(name, seen):
        for op in operands.get(name, ()):
            if op not in seen:
                seen.add(op)
                ancestors(op, seen)
        return seen

    return {name: ancestors(name, set()) for name in lapack}


def test_sum_kernel_prior_quadratic_runs_its_lapack_kernels_in_order(x64, random_messages):
    """A sum kernel's prior quadratic forms need a batched Cholesky (the RTS gains of
    a state larger than the unrolled size) and a batched eigendecomposition (the
    singular Q's pseudo-inverse). Run side by side they have deadlocked XLA's CPU
    thread pool on two cores (a ``transform_moves=True`` fit that never returned);
    each must depend on the other, one way or the other."""
    from funbat import kernel_parts as KP

    rng = np.random.default_rng(3)
    I, R = 9, 3
    coords = np.sort(rng.uniform(0.0, 1.0, I))
    kernel = KP.Sum((make_kernel("matern32", 0.3, 1.3), KP.Trend(jnp.asarray(1.0),
                                                                 jnp.asarray(0.5))), "k")  # fmt: skip
    assert R * kernel.state_dim > 8  # the solve's Cholesky is LAPACK's, not unrolled
    Lams, etas = random_messages(rng, I, R)
    post = smooth(kernel, jnp.asarray(coords), jnp.asarray(Lams), jnp.asarray(etas))
    hlo = prior_quadratic.lower(kernel, jnp.asarray(coords), post).compile().as_text()
    calls = _lapack_calls_and_ancestors(hlo)
    assert len(calls) >= 2, list(calls)
    for a in calls:
        for b in calls:
            if a < b:
                assert a in calls[b] or b in calls[a], f"{a} and {b} may run side by side"

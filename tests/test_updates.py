"""Block updates against brute-force per-entry computations (Kronecker order included)."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from funbat import updates as U
from funbat.stats import mode_statistics

pytestmark = pytest.mark.usefixtures("x64")


def _stats(idx, y, means, seconds, k, n_groups, chunk, structure):
    """Grouped statistics of mode ``k`` (no padding entries)."""
    return mode_statistics(
        jnp.asarray(idx),
        jnp.asarray(y),
        jnp.ones(len(y)),
        tuple(map(jnp.asarray, means)),
        tuple(map(jnp.asarray, seconds)),
        mode=k,
        n_groups=n_groups,
        chunk=chunk,
        structure=structure,
    )


def _random_moments(rng, sizes, ranks):
    means, seconds = [], []
    for I, R in zip(sizes, ranks):
        m = rng.normal(size=(I, R))
        a = rng.normal(size=(I, R, R)) * 0.3
        means.append(m)
        seconds.append(m[:, :, None] * m[:, None, :] + a @ np.swapaxes(a, 1, 2))
    return means, seconds


def _problem(seed, ranks, sizes, n):
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.integers(0, I, size=n) for I in sizes], axis=1).astype(np.int32)
    y = rng.normal(size=n)
    means, seconds = _random_moments(rng, sizes, ranks)
    P = int(np.prod(ranks))
    a = rng.normal(size=(P, P)) * 0.2
    core = U.CoreMoments(jnp.asarray(rng.normal(size=P)), jnp.asarray(a @ a.T))
    return rng, idx, y, means, seconds, core


@pytest.mark.parametrize("ranks", [(2, 3), (2, 1, 3), (2, 2, 1, 2)])
def test_tucker_messages_equal_per_entry_expectations(ranks):
    """Lambda_j, eta_j from grouped stats = sum over entries of E[tau] E[a a^T], E[tau] y E[a]."""
    K = len(ranks)
    sizes = [4, 3, 5, 2][:K]
    _, idx, y, means, seconds, core = _problem(0, ranks, sizes, 40)
    Eww = np.asarray(U.core_second_moment(core)).reshape(ranks * 2)
    Ew = np.asarray(core.mean).reshape(ranks)
    tau = 1.7
    for k in range(K):
        G, g = _stats(idx, y, means, seconds, k, sizes[k], 8, "tucker")
        Lams, etas = U.mode_messages(
            G, g, tau, U.unfold_core(core, ranks[k], U.core_orders(ranks, k)[0])
        )
        ref_L = np.zeros((sizes[k], ranks[k], ranks[k]))
        ref_e = np.zeros((sizes[k], ranks[k]))
        for n in range(len(y)):
            j = idx[n, k]
            # E[a_a a_b] = sum over all other-mode indices of E[W W] prod_i S^i
            for ia in itertools.product(*[range(r) for r in ranks]):
                for ib in itertools.product(*[range(r) for r in ranks]):
                    w = Eww[ia + ib]
                    for i in range(K):
                        if i != k:
                            w = w * seconds[i][idx[n, i], ia[i], ib[i]]
                    ref_L[j, ia[k], ib[k]] += tau * w
                w1 = Ew[ia]
                for i in range(K):
                    if i != k:
                        w1 = w1 * means[i][idx[n, i], ia[i]]
                ref_e[j, ia[k]] += tau * y[n] * w1
        # the double loop above visits each (a, b) once per (other indices) pair: the
        # mode-k indices are fixed by ia[k], ib[k], so no double counting
        np.testing.assert_allclose(Lams, ref_L, atol=1e-10)
        np.testing.assert_allclose(etas, ref_e, atol=1e-10)


@pytest.mark.parametrize("ranks", [(2, 3), (2, 1, 3), (2, 2, 1, 2)])
def test_core_sums_equal_brute_force_kronecker_sums(ranks):
    K = len(ranks)
    sizes = [4, 3, 5, 2][:K]
    _, idx, y, means, seconds, _ = _problem(1, ranks, sizes, 30)
    T_ref = 0.0
    b_ref = 0.0
    for n in range(len(y)):
        S = np.ones((1, 1))
        m = np.ones(1)
        for i in range(K):
            S = np.kron(S, seconds[i][idx[n, i]])
            m = np.kron(m, means[i][idx[n, i]])
        T_ref = T_ref + S
        b_ref = b_ref + y[n] * m
    for k in range(K):
        G, g = _stats(idx, y, means, seconds, k, sizes[k], 10, "tucker")
        T, b = U.core_from_statistics(
            G, g, means[k], seconds[k], "tucker", U.core_orders(ranks, k)[1]
        )
        np.testing.assert_allclose(T, T_ref, atol=1e-10)
        np.testing.assert_allclose(b, b_ref, atol=1e-10)


def test_cp_sums_equal_brute_force():
    ranks = (3, 3, 3)
    sizes = [4, 3, 5]
    _, idx, y, means, seconds, _ = _problem(2, ranks, sizes, 30)
    T_ref = b_ref = 0.0
    for n in range(len(y)):
        S = np.prod([seconds[i][idx[n, i]] for i in range(3)], axis=0)
        m = np.prod([means[i][idx[n, i]] for i in range(3)], axis=0)
        T_ref += S.sum()
        b_ref += y[n] * m.sum()
    for k in range(3):
        G, g = _stats(idx, y, means, seconds, k, sizes[k], 6, "cp")
        T, b = U.core_from_statistics(G, g, means[k], seconds[k], "cp")
        np.testing.assert_allclose(T, T_ref, rtol=1e-12)
        np.testing.assert_allclose(b, b_ref, rtol=1e-12)


def test_core_update_is_the_gaussian_posterior():
    """q(w) from (T, b) equals the conjugate posterior of w in y = Z w + noise."""
    rng = np.random.default_rng(3)
    Z = rng.normal(size=(50, 4))
    y = Z @ rng.normal(size=4) + 0.1 * rng.normal(size=50)
    tau, s2 = 20.0, 2.0
    core = U.core_update(jnp.asarray(Z.T @ Z), jnp.asarray(Z.T @ y), tau, s2)
    cov = np.linalg.inv(np.eye(4) / s2 + tau * Z.T @ Z)
    np.testing.assert_allclose(core.cov, cov, rtol=1e-10)
    np.testing.assert_allclose(core.mean, cov @ (tau * Z.T @ y), rtol=1e-10)


def test_kl_formulas_against_numerical_integration():
    from scipy import integrate, stats

    q = U.NoiseMoments(jnp.asarray(3.0), jnp.asarray(2.0))
    a0, b0 = 1.5, 0.7

    def integrand(t):
        lq = stats.gamma.logpdf(t, 3.0, scale=1 / 2.0)
        lp = stats.gamma.logpdf(t, a0, scale=1 / b0)
        return np.exp(lq) * (lq - lp)

    ref, _ = integrate.quad(integrand, 0, 50)
    np.testing.assert_allclose(U.gamma_kl(q, a0, b0), ref, rtol=1e-7)
    core = U.CoreMoments(jnp.array([0.3, -1.0]), jnp.array([[0.5, 0.1], [0.1, 0.2]]))
    s2 = 1.5
    # closed form KL(N(m,S) || N(0, s2 I)) via the general Gaussian KL
    S = np.asarray(core.cov)
    m = np.asarray(core.mean)
    ref = 0.5 * (np.trace(S) / s2 + m @ m / s2 - 2 + 2 * np.log(s2) - np.log(np.linalg.det(S)))
    np.testing.assert_allclose(U.gaussian_kl_to_isotropic(core, s2), ref, rtol=1e-12)

"""Joint posterior samples of a continuous mode's latent functions (forward filtering,
backward sampling).

The query coordinates are merged into the mode's chain. At a training coordinate the
filtered moments are the stored ones; at a query coordinate (no data) they are the
prediction from the previous point. Sampling backwards through the merged chain,
``s_j | s_{j+1} ~ N(m_j + G_j (s_{j+1} - A m_j), P_j - G_j A P_j)``,
``G_j = P_j A^T (A P_j A^T + Q)^{-1}``, then draws the functions jointly at every
query coordinate from ``q`` (Carter & Kohn 1994; Frühwirth-Schnatter 1994).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .kalman import ChainPosterior
from .kernels import Matern

__all__ = ["chain_samples"]


@partial(jax.jit, static_argnames=("n_samples",))
def _ffbs(kernel: Matern, merged, is_train, train_pos, post: ChainPosterior, key, *, n_samples):
    R = post.filtered_means.shape[-1] // kernel.state_dim
    eye = jnp.eye(R)
    gaps = jnp.concatenate([jnp.array([jnp.inf]), jnp.diff(merged)])
    A1, Q1 = kernel.transition(gaps)
    A = jax.vmap(lambda a: jnp.kron(eye, a))(A1)
    Q = jax.vmap(lambda q: jnp.kron(eye, q))(Q1)
    D = A.shape[-1]

    def forward(carry, inp):
        m, P = carry
        A_j, Q_j, tr, pos = inp
        m_pred, P_pred = A_j @ m, A_j @ P @ A_j.T + Q_j
        m = jnp.where(tr, post.filtered_means[pos], m_pred)
        P = jnp.where(tr, post.filtered_covs[pos], P_pred)
        return (m, P), (m, P)

    _, (ms, Ps) = jax.lax.scan(
        forward, (jnp.zeros(D), jnp.zeros((D, D))), (A, Q, is_train, train_pos)
    )
    keys = jax.random.split(key, merged.shape[0])

    def draw(key, m, P):
        C = jnp.linalg.cholesky(0.5 * (P + P.T) + 1e-10 * jnp.eye(D))
        return m + jax.random.normal(key, (n_samples, D)) @ C.T

    last = draw(keys[-1], ms[-1], Ps[-1])

    def backward(s_next, inp):
        m, P, A_n, Q_n, k = inp
        P_pred = A_n @ P @ A_n.T + Q_n
        G = jnp.linalg.solve(P_pred, A_n @ P).T
        cov = P - G @ A_n @ P
        mean = m[None] + (s_next - (A_n @ m)[None]) @ G.T
        C = jnp.linalg.cholesky(0.5 * (cov + cov.T) + 1e-10 * jnp.eye(D))
        s = mean + jax.random.normal(k, (n_samples, D)) @ C.T
        return s, s

    _, states = jax.lax.scan(
        backward, last, (ms[:-1], Ps[:-1], A[1:], Q[1:], keys[:-1]), reverse=True
    )
    states = jnp.concatenate([states, last[None]])  # (M, S, D)
    return jnp.swapaxes(states[:, :, :: kernel.state_dim], 0, 1)  # (S, M, R)


def chain_samples(kernel, coords, n_valid, post, query, key, n_samples):
    """Joint samples (n_samples, n, R) of a continuous mode's functions at ``query`` (n,).

    ``coords`` (I,) are the chain's sorted coordinates, the first ``n_valid`` real.
    """
    train = np.asarray(coords)[:n_valid]
    merged, inv = np.unique(np.concatenate([train, np.asarray(query, float)]), return_inverse=True)
    pos = np.searchsorted(train, merged)
    pos_c = np.minimum(pos, n_valid - 1)
    is_train = train[pos_c] == merged
    samples = _ffbs(
        kernel,
        jnp.asarray(merged),
        jnp.asarray(is_train),
        jnp.asarray(pos_c),
        post,
        key,
        n_samples=int(n_samples),
    )
    return samples[:, inv[n_valid:]]

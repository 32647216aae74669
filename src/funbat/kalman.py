"""Kalman filter, RTS smoother and exact interpolation for one mode's latent functions.

A mode with rank ``R`` has ``R`` independent Matérn GPs sharing one kernel. Their SDE
states are stacked component-major: ``s = [s_1, ..., s_R]``, each ``s_r`` of size ``d``,
so ``A = I_R ⊗ A_1``, ``Q = I_R ⊗ Q_1`` and ``u = H s`` with ``H = I_R ⊗ e_1^T``.
The data reach the chain as Gaussian messages in information form,
``exp(eta_j^T u_j - 1/2 u_j^T Lambda_j u_j)``, one per sorted unique coordinate
(``shared/DESIGN.md`` section 3). ``Lambda_j`` is often singular (a coordinate seen
by few entries), so the update never inverts it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .kernels import Matern

__all__ = [
    "ChainPosterior",
    "chain_matrices",
    "interpolate",
    "log_normaliser",
    "smooth",
]


class ChainPosterior(NamedTuple):
    """Posterior of one mode's state chain over its sorted unique coordinates.

    Attributes
    ----------
    filtered_means : (I, R d)
    filtered_covs : (I, R d, R d)
    smoothed_means : (I, R d)
    smoothed_covs : (I, R d, R d)
    log_normaliser : scalar
        ``sum_j log Z_j``: log of the integral of prior times messages.
    """

    filtered_means: jax.Array
    filtered_covs: jax.Array
    smoothed_means: jax.Array
    smoothed_covs: jax.Array
    log_normaliser: jax.Array


def chain_matrices(kernel: Matern, coords, rank: int):
    """Stacked transitions of a rank-``rank`` chain over sorted ``coords`` (I,).

    Returns ``A`` (I, Rd, Rd), ``Q`` (I, Rd, Rd) and ``Pinf`` (Rd, Rd); step ``j``
    moves from coordinate ``j-1`` to ``j`` and step 0 starts from the stationary prior.
    """
    gaps = jnp.concatenate([jnp.array([jnp.inf]), jnp.diff(coords)])
    A1, Q1 = kernel.transition(gaps)
    eye = jnp.eye(rank)
    A = jax.vmap(lambda a: jnp.kron(eye, a))(A1)
    Q = jax.vmap(lambda q: jnp.kron(eye, q))(Q1)
    Pinf = jnp.kron(eye, kernel.sde()[1])
    return A, Q, Pinf


def _observe(m_pred, P_pred, Lam, eta, d):
    """Information-form update and its log normaliser (DESIGN.md section 3)."""
    R = Lam.shape[0]
    mu = m_pred[::d]
    PHt = P_pred[:, ::d]  # P- H^T
    B = PHt[::d, :]  # H P- H^T
    IpLB = jnp.eye(R) + Lam @ B
    # K = P- H^T (I + Lambda B)^{-1}, computed as a solve on the transpose
    K = jnp.linalg.solve(IpLB.T, PHt.T).T
    r = eta - Lam @ mu
    m = m_pred + K @ r
    P = P_pred - K @ (Lam @ PHt.T)
    P = 0.5 * (P + P.T)
    _, logdet = jnp.linalg.slogdet(IpLB)
    # B (I + Lambda B)^{-1} r = H K r
    logZ = -0.5 * logdet + eta @ mu - 0.5 * mu @ Lam @ mu + 0.5 * r @ (K @ r)[::d]
    return m, P, logZ


def _filter(A, Q, Lams, etas, d):
    D = A.shape[-1]

    def step(carry, inp):
        m, P, logZ = carry
        A_j, Q_j, Lam, eta = inp
        m_pred = A_j @ m
        P_pred = A_j @ P @ A_j.T + Q_j
        m, P, lz = _observe(m_pred, P_pred, Lam, eta, d)
        return (m, P, logZ + lz), (m, P)

    init = (jnp.zeros(D), jnp.zeros((D, D)), jnp.zeros(()))
    (_, _, logZ), (ms, Ps) = jax.lax.scan(step, init, (A, Q, Lams, etas))
    return ms, Ps, logZ


def log_normaliser(kernel: Matern, coords, Lams, etas):
    """``sum_j log Z_j`` of the chain given messages: the ELBO as a function of ``kernel``.

    Parameters
    ----------
    kernel : Matern
    coords : (I,) sorted unique coordinates
    Lams : (I, R, R) message precisions; etas : (I, R) message shifts.
    """
    rank = Lams.shape[-1]
    A, Q, _ = chain_matrices(kernel, coords, rank)
    return _filter(A, Q, Lams, etas, kernel.state_dim)[2]


def smooth(kernel: Matern, coords, Lams, etas) -> ChainPosterior:
    """Kalman filter then Rauch-Tung-Striebel smoother over ``coords`` (I,).

    Returns the filtered and smoothed state moments at every coordinate.
    """
    rank = Lams.shape[-1]
    A, Q, _ = chain_matrices(kernel, coords, rank)
    ms, Ps, logZ = _filter(A, Q, Lams, etas, kernel.state_dim)

    def back(carry, inp):
        m_next, P_next = carry
        m_f, P_f, A_next, Q_next = inp
        m_pred = A_next @ m_f
        P_pred = A_next @ P_f @ A_next.T + Q_next
        # G = P_f A^T P_pred^{-1}
        G = jnp.linalg.solve(P_pred, A_next @ P_f).T
        m = m_f + G @ (m_next - m_pred)
        P = P_f + G @ (P_next - P_pred) @ G.T
        P = 0.5 * (P + P.T)
        return (m, P), (m, P)

    _, (msr, Psr) = jax.lax.scan(
        back, (ms[-1], Ps[-1]), (ms[:-1], Ps[:-1], A[1:], Q[1:]), reverse=True
    )
    sm = jnp.concatenate([msr, ms[-1:]])
    sP = jnp.concatenate([Psr, Ps[-1:]])
    return ChainPosterior(ms, Ps, sm, sP, logZ)


def interpolate(kernel: Matern, coords, n_valid, post: ChainPosterior, query):
    """Exact posterior marginals of the latent functions at ``query`` (n,) coordinates.

    Between training coordinates ``t_j <= x < t_{j+1}``: predict from the filtered
    moments at ``t_j`` to ``x``, then one RTS step back from the smoothed moments at
    ``t_{j+1}``. Before the first coordinate the left neighbour is the stationary prior
    (infinite gap); after the last, the right neighbour carries no information.

    Parameters
    ----------
    coords : (I,) sorted coordinates; only the first ``n_valid`` are real (the rest pad).
    query : (n,) coordinates, same units as ``coords``.

    Returns
    -------
    mean : (n, R) and second moment ``E[u u^T]`` : (n, R, R).
    """
    rank = post.smoothed_means.shape[-1] // kernel.state_dim
    d = kernel.state_dim
    eye = jnp.eye(rank)
    Pinf = jnp.kron(eye, kernel.sde()[1])
    real = jnp.arange(coords.shape[0]) < n_valid
    t = jnp.where(real, coords, jnp.inf)
    j = jnp.searchsorted(t, query, side="right") - 1  # -1 .. n_valid-1
    has_left = j >= 0
    has_right = j < n_valid - 1
    jl = jnp.clip(j, 0, coords.shape[0] - 1)
    jr = jnp.clip(j + 1, 0, coords.shape[0] - 1)
    gap_l = jnp.where(has_left, query - coords[jl], jnp.inf)
    gap_r = jnp.where(has_right, coords[jr] - query, jnp.inf)
    A1, Q1 = kernel.transition(gap_l)
    A2, Q2 = kernel.transition(gap_r)
    D = Pinf.shape[0]
    m_l = jnp.where(has_left[:, None], post.filtered_means[jl], 0.0)
    P_l = jnp.where(has_left[:, None, None], post.filtered_covs[jl], Pinf)

    def one(A1, Q1, A2, Q2, m_l, P_l, m_r, P_r, right):
        A1, Q1 = jnp.kron(eye, A1), jnp.kron(eye, Q1)
        A2, Q2 = jnp.kron(eye, A2), jnp.kron(eye, Q2)
        m = A1 @ m_l
        P = A1 @ P_l @ A1.T + Q1
        m_pred = A2 @ m
        P_pred = A2 @ P @ A2.T + Q2
        G = jnp.linalg.solve(P_pred, A2 @ P).T
        m_s = m + G @ (m_r - m_pred)
        P_s = P + G @ (P_r - P_pred) @ G.T
        m = jnp.where(right, m_s, m)
        P = jnp.where(right, P_s, P)
        return m, 0.5 * (P + P.T)

    m, P = jax.vmap(one)(
        A1, Q1, A2, Q2, m_l, P_l, post.smoothed_means[jr], post.smoothed_covs[jr], has_right
    )
    del D
    mean = m[:, ::d]
    cov = P[:, ::d, ::d]
    return mean, cov + mean[:, :, None] * mean[:, None, :]

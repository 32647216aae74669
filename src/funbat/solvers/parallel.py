"""The parallel chain solver: the filter and smoother as associative scans (GPU default).

The filter and RTS smoother of :mod:`funbat.kalman`, reorganised as prefix "sums" of
an associative operator (Särkkä & García-Fernández, *Temporal parallelization of
Bayesian smoothers*, IEEE TAC 66(1), 2021) and run by :func:`jax.lax.associative_scan`:
``O(I (R d)^3)`` work, a constant factor more than the sequential loops, in
``O(log I)`` rounds of batched matrix products instead of ``I`` steps of small ones:
what a GPU runs well. On a CPU it is slower than the native and the sequential solvers
(``benchmarks/kalman_step.py --solver parallel``), and the scan, unrolled into one
operator per level, takes seconds to compile for each chain length.

**Filter.** With the messages ``exp(eta_j^T u_j - 1/2 u_j^T Lambda_j u_j)`` on
``u_j = H s_j`` and the transition ``s_j = A_j s_{j-1} + q_j``, ``q_j ~ N(0, Q_j)``
(``A_0 = 0``, ``Q_0 = Pinf``: the stationary start), step ``j`` is the element
``(F, b, C, zeta, J)``: ``p(s_j | s_{j-1}, message j) = N(F s_{j-1} + b, C)`` and the
message's likelihood of the previous state, ``exp(zeta^T s_{j-1} - 1/2 s_{j-1}^T J
s_{j-1})`` up to a constant. With ``B = H Q H^T``, ``Lambda = L L^T`` (the filter's
factor, tolerating singular ``Lambda``), ``M = I + L^T B L = N N^T`` (eigenvalues
``>= 1``) and ``Omega = (I + Lambda B)^{-1} Lambda = L M^{-1} L^T``, all without an
inverse of ``Lambda`` or of ``Q`` (singular for the deterministic kernel parts):

* ``C = Q - Q H^T Omega H Q``, ``F = A - Q H^T Omega H A``,
  ``b = Q H^T (I + Lambda B)^{-1} eta``, ``(I + Lambda B)^{-1} eta = eta - Omega B eta``;
* ``J = (H A)^T Omega (H A)``, ``zeta = (H A)^T (I + Lambda B)^{-1} eta`` (the message
  seen through the transition: a Gaussian potential of precision
  ``(B + Lambda^{-1})^{-1} = Omega`` on ``H A s_{j-1}``).

Two elements combine (the paper's Lemma 8) through ``(I + C_i J_k)^{-1}``, whose
eigenvalues lie in ``(0, 1]`` (``C_i J_k`` is similar to a PSD matrix), by one LU
factorisation. Since ``A_0 = 0``, the prefix from step 0 to ``j`` has ``F = 0``,
``zeta = 0``, ``J = 0`` and is the filtered posterior ``N(b, C)``. The log normaliser
then needs no scan: ``log Z_j`` (``docs/theory.md`` section 3.3) depends on the
filtered moments at ``j - 1`` only, through the prediction ``A_j m_{j-1}``,
``A_j P_{j-1} A_j^T + Q_j``, so it is one batched evaluation over all ``j`` and a sum.

**Smoother.** The elements ``(E, g, L) = (G_j, m_j - G_j A_{j+1} m_j,
P_j - G_j A_{j+1} P_j)``, ``G_j`` the RTS gain, and at the last real coordinate
``(0, m, P)``, combined from the end (``E_j E_k, E_j g_k + g_j, E_j L_k E_j^T + L_j``),
give the smoothed moments; the gains are solved for all ``j`` at once, as in
:func:`funbat.kalman.rts_smooth`.

**Padding.** Past ``n_valid`` (traced) the filter's elements are the operator's
identity and the results are set to the stationary prior ``(0, Pinf)``, filtered and
smoothed, as the sequential solver leaves them; their ``log Z_j`` are not counted.

Kernels are anything with ``transition``, ``sde`` and ``state_dim`` (a Matérn kernel
or a sum of parts, :mod:`funbat.kernel_parts`). The lengthscale search is
:func:`funbat.hyper.lengthscale_search` with these filter and smoother (the five
candidates' filters side by side, ``vmap``). Interpolation is one batched computation
and sampling a one-off per prediction, so they are JAX's
(:func:`funbat.kalman.interpolate`, :func:`funbat.sampling.chain_samples`), as for the
native solver.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from ..hyper import lengthscale_search
from ..kalman import ChainPosterior, chain_matrices, interpolate, message_factors
from ..sampling import chain_samples
from .base import ChainSolver

__all__ = ["ParallelSolver", "scan_filter", "scan_rts_smooth", "scan_smooth"]


def _sym(X):
    return 0.5 * (X + jnp.swapaxes(X, -1, -2))


def _t(X):
    return jnp.swapaxes(X, -1, -2)


def _filtering_element(A, Q, L, eta, d):
    """The element ``(F, b, C, zeta, J)`` of one step (module docstring): ``A``, ``Q``
    (D, D), the factor ``L`` (R, R) of ``Lambda`` and ``eta`` (R,)."""
    R = L.shape[0]
    QHt = Q[:, ::d]  # Q H^T (D, R)
    B = QHt[::d, :]  # H Q H^T (R, R)
    HA = A[::d, :]  # (R, D)
    N = jnp.linalg.cholesky(jnp.eye(R, dtype=Q.dtype) + L.T @ B @ L)
    V = solve_triangular(N, L.T, lower=True)  # Omega = V^T V
    Omega = V.T @ V
    eta_eff = eta - Omega @ (B @ eta)  # (I + Lambda B)^{-1} eta
    W = V @ QHt.T  # (R, D): Q H^T Omega H Q = W^T W
    C = Q - W.T @ W
    F = A - QHt @ (Omega @ HA)
    b = QHt @ eta_eff
    J = HA.T @ Omega @ HA
    zeta = HA.T @ eta_eff
    return F, b, _sym(C), zeta, _sym(J)


def _filter_operator(e1, e2):
    """``e1`` (steps up to ``i``) then ``e2`` (steps ``i+1 .. k``): the element of the
    steps up to ``k`` (the paper's Lemma 8); one element, vmapped by the caller."""
    F1, b1, C1, z1, J1 = e1
    F2, b2, C2, z2, J2 = e2
    M = jnp.eye(C1.shape[0], dtype=C1.dtype) + C1 @ J2  # I + C1 J2; (I + J2 C1) = M^T
    lu = jax.scipy.linalg.lu_factor(M)
    T2 = jax.scipy.linalg.lu_solve(lu, F2.T, trans=1).T  # F2 M^{-1}
    T1 = jax.scipy.linalg.lu_solve(lu, F1).T  # F1^T M^{-T} = F1^T (I + J2 C1)^{-1}
    F = T2 @ F1
    b = T2 @ (b1 + C1 @ z2) + b2
    C = T2 @ C1 @ F2.T + C2
    z = T1 @ (z2 - J2 @ b1) + z1
    J = T1 @ J2 @ F1 + J1
    return F, b, _sym(C), z, _sym(J)


def _smoother_operator(later, earlier):
    """The smoothing element of steps ``j .. I-1`` from that of ``j`` (``earlier``) and
    of ``j+1 .. I-1`` (``later``); the order :func:`jax.lax.associative_scan` passes
    them in with ``reverse=True``."""
    E2, g2, L2 = later
    E1, g1, L1 = earlier
    return E1 @ E2, E1 @ g2 + g1, _sym(E1 @ L2 @ E1.T + L1)


def _log_z(m_pred, P_pred, L, Lam, eta, d):
    """``log Z_j`` of one step from its prediction (``docs/theory.md`` section 3.3), by
    the sequential filter's factorisation ``M = I + L^T B L``."""
    R = L.shape[0]
    mu = m_pred[::d]
    B = P_pred[::d, ::d]
    N = jnp.linalg.cholesky(jnp.eye(R, dtype=B.dtype) + L.T @ B @ L)
    r = eta - Lam @ mu
    Br = B @ r
    x = solve_triangular(N, L.T @ Br, lower=True)  # r^T B (I + Lambda B)^{-1} r = r^T B r - x^T x
    log_det = jnp.sum(jnp.log(jnp.diagonal(N)))  # 1/2 log|I + Lambda B| = 1/2 log|M|
    return -log_det + eta @ mu - 0.5 * mu @ (Lam @ mu) + 0.5 * (r @ Br - x @ x)


def _valid(I, n_valid):
    return jnp.arange(I) < (I if n_valid is None else n_valid)


def scan_filter(kernel, coords, Lams, etas, factors=None, n_valid=None):
    """The Kalman filter by an associative scan: ``((filtered means, covs), sum log Z)``.

    Same arguments and results as :func:`funbat.kalman.filter_chain` (with ``store``):
    ``coords`` (I,) sorted, ``Lams`` (I, R, R), ``etas`` (I, R), ``factors`` optional
    ``message_factors(Lams)``, ``n_valid`` the number of real coordinates (traced or
    None); past it the filtered moments are the stationary prior ``(0, Pinf)``.
    """
    Lams, etas = jnp.asarray(Lams), jnp.asarray(etas)
    if factors is None:
        factors = message_factors(Lams)
    I, R = Lams.shape[0], Lams.shape[-1]
    d = kernel.state_dim
    A, Q, Pinf = chain_matrices(kernel, coords, R)
    D = A.shape[-1]
    valid = _valid(I, n_valid)
    elems = jax.vmap(lambda a, q, f, e: _filtering_element(a, q, f, e, d))(A, Q, factors, etas)
    # past n_valid: the identity element (F = I, the rest 0), so nothing there can reach
    # (or poison) the real steps
    eye = jnp.broadcast_to(jnp.eye(D, dtype=A.dtype), (I, D, D))
    ident = (eye, jnp.zeros((I, D)), jnp.zeros((I, D, D)), jnp.zeros((I, D)), jnp.zeros((I, D, D)))
    elems = tuple(jnp.where(valid.reshape((I,) + (1,) * (x.ndim - 1)), x, y)
                  for x, y in zip(elems, ident))  # fmt: skip
    _, ms, Ps, _, _ = jax.lax.associative_scan(jax.vmap(_filter_operator), elems)
    # log Z_j from the prediction out of the filtered moments at j - 1 (A_0 = 0)
    m_prev = jnp.concatenate([jnp.zeros((1, D), ms.dtype), ms[:-1]])
    P_prev = jnp.concatenate([jnp.zeros((1, D, D), Ps.dtype), Ps[:-1]])
    m_pred = jnp.einsum("jab,jb->ja", A, m_prev)
    P_pred = _sym(A @ P_prev @ _t(A) + Q)
    lz = jax.vmap(lambda m, P, f, lam, e: _log_z(m, P, f, lam, e, d))(
        m_pred, P_pred, factors, Lams, etas
    )
    logZ = jnp.sum(jnp.where(valid, lz, 0.0))
    ms = jnp.where(valid[:, None], ms, 0.0)
    Ps = jnp.where(valid[:, None, None], Ps, Pinf)
    return (ms, Ps), logZ


def scan_rts_smooth(kernel, coords, filtered, logZ, n_valid=None) -> ChainPosterior:
    """The RTS smoother by an associative scan over the output of :func:`scan_filter`
    (or :func:`funbat.kalman.filter_chain`): a :class:`funbat.kalman.ChainPosterior`."""
    ms, Ps = filtered
    I, D = ms.shape
    R = D // kernel.state_dim
    n_valid = I if n_valid is None else n_valid
    A, Q, _ = chain_matrices(kernel, coords, R)
    A, Q = A[1:], Q[1:]  # step j+1, for j = 0 .. I-2
    AP = A @ Ps[:-1]  # A_{j+1} P_j
    P_pred = _sym(AP @ _t(A) + Q)
    m_pred = jnp.einsum("jab,jb->ja", A, ms[:-1])
    G = _t(jnp.linalg.solve(P_pred, AP))  # P_j A_{j+1}^T (P^-_{j+1})^{-1}
    # the last real coordinate, and the padding (filtered = smoothed = the prior), end
    # the chain: E = 0
    has_next = (jnp.arange(I - 1) < n_valid - 1)[:, None, None]
    E = jnp.concatenate([jnp.where(has_next, G, 0.0), jnp.zeros((1, D, D), G.dtype)])
    Em = jnp.concatenate([jnp.einsum("jab,jb->ja", E[:-1], m_pred), jnp.zeros((1, D), ms.dtype)])
    EAP = jnp.concatenate([E[:-1] @ AP, jnp.zeros((1, D, D), Ps.dtype)])
    g = ms - Em
    L = _sym(Ps - EAP)
    _, sm, sP = jax.lax.associative_scan(jax.vmap(_smoother_operator), (E, g, L), reverse=True)
    return ChainPosterior(ms, Ps, sm, sP, logZ)


def scan_smooth(kernel, coords, Lams, etas, factors=None, n_valid=None) -> ChainPosterior:
    """:func:`scan_filter` then :func:`scan_rts_smooth`: the numbers of
    :func:`funbat.kalman.smooth`, by associative scans."""
    filtered, logZ = scan_filter(kernel, coords, Lams, etas, factors, n_valid)
    return scan_rts_smooth(kernel, coords, filtered, logZ, n_valid)


@dataclass(frozen=True)
class ParallelSolver(ChainSolver):
    """Filter and smoother as associative scans (the default on a GPU)."""

    name = "parallel"

    def smooth(self, kernel, coords, Lams, etas, n_valid):
        return scan_smooth(kernel, coords, Lams, etas, n_valid=n_valid)

    def smooth_with_lengthscale_search(self, kernel, coords, Lams, etas, step, log_bounds,
                                       n_valid):  # fmt: skip
        factors = message_factors(Lams)
        return lengthscale_search(
            kernel, step, log_bounds,
            lambda k: scan_filter(k, coords, Lams, etas, factors, n_valid),
            lambda k, filtered, logZ: scan_rts_smooth(k, coords, filtered, logZ, n_valid),
        )  # fmt: skip

    def interpolate(self, kernel, coords, n_valid, posterior, query):
        return interpolate(kernel, coords, n_valid, posterior, query)

    def samples(self, kernel, coords, n_valid, posterior, query, key, n_samples: int):
        return chain_samples(kernel, coords, n_valid, posterior, query, key, n_samples)

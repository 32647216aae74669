"""Kalman filter, RTS smoother and exact interpolation for one mode's latent functions.

A mode with rank ``R`` has ``R`` independent Matérn GPs sharing one kernel. Their SDE
states are stacked component-major: ``s = [s_1, ..., s_R]``, each ``s_r`` of size ``d``,
so ``A = I_R ⊗ A_1``, ``Q = I_R ⊗ Q_1`` and ``u = H s`` with ``H = I_R ⊗ e_1^T``.
The data reach the chain as Gaussian messages in information form,
``exp(eta_j^T u_j - 1/2 u_j^T Lambda_j u_j)``, one per sorted unique coordinate
(``docs/theory.md`` section 3). ``Lambda_j`` is often singular (a coordinate seen
by few entries), so the update never inverts it.

Speed (see ``benchmarks/README.md``): on a CPU a scan step over such small matrices
costs what its operations cost to *launch*, not their flops, so the sequential loops
hold only a few small matrix products:

* the update uses a factor ``Lambda_j = L_j L_j^T`` computed for all ``j`` at once
  before the loop, so that the only matrix to factorise inside it,
  ``M_j = I + L_j^T B_j L_j``, is symmetric with eigenvalues ``>= 1``; its Cholesky
  factor and triangular solves are unrolled into plain arithmetic for small ``R``
  (no LAPACK call per step), and the same factor gives ``log|I + Lambda_j B_j|``;
* the RTS gains ``G_j = P_j A_{j+1}^T (P^-_{j+1})^{-1}`` depend on filtered moments
  only, so they are solved for all ``j`` in one batched call between the two loops;
* transitions are kept as the ``d x d`` blocks ``A_1, Q_1`` (memory ``I d^2``).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .kernels import Matern

__all__ = [
    "ChainPosterior",
    "chain_matrices",
    "filter_chain",
    "interpolate",
    "log_normaliser",
    "message_factors",
    "prior_quadratic",
    "transform_chain",
    "rts_smooth",
    "smooth",
    "transition_blocks",
]

#: Largest rank whose small Cholesky factorisations are unrolled into arithmetic.
_UNROLL_MAX_RANK = 8


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


def transition_blocks(kernel: Matern, coords):
    """Per-step transition blocks ``A_1``, ``Q_1`` (I, d, d) of one component's chain over
    sorted ``coords`` (I,); step 0 starts from the stationary prior (``A = 0``,
    ``Q = Pinf``). Any kernel with ``transition(gaps)``: a Matérn or a sum of parts."""
    gaps = jnp.concatenate([jnp.array([jnp.inf]), jnp.diff(coords)])
    return kernel.transition(gaps)


def chain_matrices(kernel: Matern, coords, rank: int):
    """Stacked transitions of a rank-``rank`` chain over sorted ``coords`` (I,).

    Returns ``A`` (I, Rd, Rd), ``Q`` (I, Rd, Rd) and ``Pinf`` (Rd, Rd); step ``j``
    moves from coordinate ``j-1`` to ``j`` and step 0 starts from the stationary prior.
    (The filter itself uses the ``d x d`` blocks; this is the dense form, for checks.)
    """
    A1, Q1 = transition_blocks(kernel, coords)
    eye = jnp.eye(rank)
    A = jax.vmap(lambda a: jnp.kron(eye, a))(A1)
    Q = jax.vmap(lambda q: jnp.kron(eye, q))(Q1)
    Pinf = jnp.kron(eye, kernel.sde()[1])
    return A, Q, Pinf


def message_factors(Lams):
    """``L`` (I, R, R) with ``L_j L_j^T = Lambda_j`` for PSD ``Lams`` (I, R, R).

    ``Lambda_j`` is often singular (a coordinate seen by fewer entries than the rank),
    so a plain Cholesky factorisation would fail. For small ``R`` the unrolled Cholesky
    of the filter, in its ``psd`` form (a pivot below ``1e-12 * trace`` is zero, with
    its column), is mapped over the batch: exact for PSD matrices up to that round-off,
    and tens of times faster on a CPU than the batched symmetric eigendecomposition used
    for larger ``R`` (negative round-off eigenvalues clipped).
    """
    R = Lams.shape[-1]
    if R > _UNROLL_MAX_RANK:
        s, V = jnp.linalg.eigh(Lams)
        return V * jnp.sqrt(jnp.maximum(s, 0.0))[..., None, :]
    return jax.vmap(lambda S: _cholesky(S, psd=True))(Lams)


def _cholesky(S, psd: bool = False):
    """Lower Cholesky factor of a small SPD matrix, unrolled for small sizes.

    ``psd=True`` accepts a singular PSD matrix: a pivot below ``1e-12 * trace(S)`` is
    taken as zero, with the rest of its column (exact up to that round-off).
    """
    n = S.shape[0]
    if n > _UNROLL_MAX_RANK:
        return jnp.linalg.cholesky(S)
    tiny = 1e-12 * jnp.trace(S) + jnp.finfo(S.dtype).tiny if psd else -jnp.inf
    L = [[None] * n for _ in range(n)]
    for j in range(n):
        s = S[j, j]
        for k in range(j):
            s = s - L[j][k] * L[j][k]
        ok = s > tiny  # always true without psd: the wheres below are then identities
        d = jnp.sqrt(jnp.where(ok, s, 1.0))
        L[j][j] = jnp.where(ok, d, 0.0)
        for i in range(j + 1, n):
            v = S[i, j]
            for k in range(j):
                v = v - L[i][k] * L[j][k]
            L[i][j] = jnp.where(ok, v / d, 0.0)
    zero = jnp.zeros_like(S[0, 0])
    return jnp.stack([jnp.stack([L[i][j] if j <= i else zero for j in range(n)]) for i in range(n)])


def _solve_lower(L, B):
    """``L^{-1} B`` for lower-triangular ``L`` (n, n) and ``B`` (n, m) or (n,)."""
    n = L.shape[0]
    if n > _UNROLL_MAX_RANK:
        return jax.scipy.linalg.solve_triangular(L, B, lower=True)
    rows = []
    for i in range(n):
        s = B[i]
        for k in range(i):
            s = s - L[i, k] * rows[k]
        rows.append(s / L[i, i])
    return jnp.stack(rows)


def _spd_solve(S, B):
    """``S^{-1} B`` for a small SPD ``S`` (n, n) and ``B`` (n, m), by the unrolled
    Cholesky factor: plain arithmetic, no LAPACK call (batched LAPACK kernels run side
    by side in one computation have been seen to deadlock XLA's CPU thread pool)."""
    if S.shape[0] > _UNROLL_MAX_RANK:
        return jax.scipy.linalg.cho_solve((jnp.linalg.cholesky(S), True), B)
    L = _cholesky(S)
    Y = _solve_lower(L, B)
    n = L.shape[0]
    rows = [None] * n  # back substitution with L^T
    for i in reversed(range(n)):
        s = Y[i]
        for k in range(i + 1, n):
            s = s - L[k, i] * rows[k]
        rows[i] = s / L[i, i]
    return jnp.stack(rows)


def _kron_eye(rank, a):
    return jnp.kron(jnp.eye(rank), a)


def _filter(A1, Q1, factors, Lams, etas, d, Pinf, n_valid=None, store=True):
    """Forward pass over the first ``n_valid`` steps (all if None; may be traced).

    Returns ``((filtered means, filtered covs) or None, sum log Z)``. Steps from
    ``n_valid`` on are not run (one compiled loop serves chains padded to one length);
    their filtered moments are left at the stationary prior ``(0, Pinf)``.
    """
    I, R = Lams.shape[0], Lams.shape[-1]
    D = R * d
    eye_r = jnp.eye(R)
    n_valid = I if n_valid is None else n_valid

    def step(j, m, P):
        a1, q1, L, Lam, eta = (x[j] for x in (A1, Q1, factors, Lams, etas))
        A = _kron_eye(R, a1)
        m_pred = A @ m
        P_pred = A @ P @ A.T + _kron_eye(R, q1)
        P_pred = 0.5 * (P_pred + P_pred.T)
        mu = m_pred[::d]
        PHt = P_pred[:, ::d]  # P- H^T (D, R)
        B = PHt[::d, :]  # H P- H^T (R, R)
        # Lambda = L L^T, M = I + L^T B L:  (I + Lambda B)^{-1} Lambda = L M^{-1} L^T
        C = _cholesky(eye_r + L.T @ B @ L)
        Wt = _solve_lower(C, L.T @ PHt.T)  # (R, D); W W^T = P- H^T Lambda (I + B Lambda)^{-1} H P-
        P = P_pred - Wt.T @ Wt
        r = eta - Lam @ mu
        # K r = P- H^T (I + Lambda B)^{-1} r = P- H^T r - W C^{-1} L^T B r
        Kr = PHt @ r - Wt.T @ _solve_lower(C, L.T @ (B @ r))
        m = m_pred + Kr
        lz = (
            -jnp.sum(jnp.log(jnp.diagonal(C)))
            + eta @ mu
            - 0.5 * mu @ (Lam @ mu)
            + 0.5 * r @ Kr[::d]
        )
        return m, P, lz

    m0, P0, z0 = jnp.zeros(D), jnp.zeros((D, D)), jnp.zeros(())
    if not store:

        def body(j, carry):
            m, P, logZ = carry
            m, P, lz = step(j, m, P)
            return m, P, logZ + lz

        return None, jax.lax.fori_loop(0, n_valid, body, (m0, P0, z0))[2]

    def body_store(j, carry):
        m, P, logZ, ms, Ps = carry
        m, P, lz = step(j, m, P)
        return m, P, logZ + lz, ms.at[j].set(m), Ps.at[j].set(P)

    init = (m0, P0, z0, jnp.zeros((I, D)), jnp.broadcast_to(Pinf, (I, D, D)))
    _, _, logZ, ms, Ps = jax.lax.fori_loop(0, n_valid, body_store, init)
    return (ms, Ps), logZ


def _pinf(kernel: Matern, rank: int):
    return _kron_eye(rank, kernel.sde()[1])


def filter_chain(kernel: Matern, coords, Lams, etas, factors=None, n_valid=None, store=True):
    """Kalman filter over ``coords`` (I,): ``((filtered means, covs) or None, sum log Z)``.

    ``factors``: optional ``message_factors(Lams)``, to share between calls.
    ``n_valid``: only the first ``n_valid`` coordinates are real (default all); it may be
    a traced integer, so chains padded to one length share one compiled loop.
    """
    Lams, etas = jnp.asarray(Lams), jnp.asarray(etas)
    if factors is None:
        factors = message_factors(Lams)
    R = Lams.shape[-1]
    A1, Q1 = transition_blocks(kernel, coords)
    return _filter(A1, Q1, factors, Lams, etas, kernel.state_dim, _pinf(kernel, R), n_valid, store)


def log_normaliser(kernel: Matern, coords, Lams, etas, factors=None, n_valid=None):
    """``sum_j log Z_j`` of the chain given messages: the ELBO as a function of ``kernel``.

    Parameters
    ----------
    kernel : Matern
    coords : (I,) sorted unique coordinates
    Lams : (I, R, R) message precisions; etas : (I, R) message shifts.
    factors, n_valid : as in :func:`filter_chain`.
    """
    return filter_chain(kernel, coords, Lams, etas, factors, n_valid, store=False)[1]


def rts_smooth(kernel: Matern, coords, filtered, logZ, n_valid=None) -> ChainPosterior:
    """Rauch-Tung-Striebel pass over the output of :func:`filter_chain`."""
    ms, Ps = filtered
    I, D = ms.shape
    R = D // kernel.state_dim
    n_valid = I if n_valid is None else n_valid
    A1, Q1 = transition_blocks(kernel, coords)
    # Predictions and RTS gains for every step at once: G_j = P_j A^T (P^-_{j+1})^{-1}.
    A = jax.vmap(lambda a: _kron_eye(R, a))(A1[1:])
    Q = jax.vmap(lambda q: _kron_eye(R, q))(Q1[1:])
    AP = A @ Ps[:-1]  # A_{j+1} P_j
    P_pred = AP @ jnp.swapaxes(A, 1, 2) + Q
    P_pred = 0.5 * (P_pred + jnp.swapaxes(P_pred, 1, 2))
    m_pred = jnp.einsum("jab,jb->ja", A, ms[:-1])
    G = jnp.swapaxes(jnp.linalg.solve(P_pred, AP), 1, 2)

    def body(i, carry):
        m_next, P_next, sm, sP = carry
        j = n_valid - 2 - i
        g = G[j]
        m = ms[j] + g @ (m_next - m_pred[j])
        P = Ps[j] + g @ (P_next - P_pred[j]) @ g.T
        P = 0.5 * (P + P.T)
        return m, P, sm.at[j].set(m), sP.at[j].set(P)

    last = n_valid - 1
    init = (ms[last], Ps[last], ms, Ps)
    _, _, sm, sP = jax.lax.fori_loop(0, n_valid - 1, body, init)
    return ChainPosterior(ms, Ps, sm, sP, logZ)


@jax.jit
def prior_quadratic(kernel: Matern, coords, post: ChainPosterior, n_valid=None):
    """Expected prior quadratic forms of the components' state chains under ``q``, per pair.

    With ``x^r_j`` the SDE state (size ``d``) of component ``r`` at coordinate ``j``,
    ``A_0 = 0`` and ``Q_0 = Pinf`` (the stationary start), returns (R, R)

    ``sum_j E_q[(x^r_j - A_j x^r_{j-1})^T Q_j^{-1} (x^s_j - A_j x^s_{j-1})]``;

    the diagonal is ``-2 log p(x^r) + const``, what a precision scaling component
    ``r``'s prior (its kernel variance) needs, and the whole matrix is what a linear
    map of the components needs (``x^r -> sum_s T_rs x^s`` turns it into ``T Q T^T``).
    Each step's expectation is ``tr(Q_j^{-1} Cov_q(x_j - A_j x_{j-1})) + e_j^T Q_j^{-1}
    e_j`` with ``e_j = m^s_j - A_j m^s_{j-1}``; the covariance comes from the smoother's
    pairwise moments (``Cov(x_j, x_{j-1}) = P^s_j G_j^T``, ``G_j = P_{j-1} A_j^T
    (P^-_j)^{-1}``) in a form free of ``Q_j^{-1}``. Only the first ``n_valid``
    coordinates count (the rest pad).
    """
    Ps, sm, sP = post.filtered_covs, post.smoothed_means, post.smoothed_covs
    I, D = sm.shape
    d = kernel.state_dim
    R = D // d
    n_valid = I if n_valid is None else n_valid
    A1, Q1 = transition_blocks(kernel, coords)
    A = jax.vmap(lambda a: _kron_eye(R, a))(A1[1:])
    Q = jax.vmap(lambda q: _kron_eye(R, q))(Q1[1:])
    AP = A @ Ps[:-1]
    P_pred = AP @ jnp.swapaxes(A, 1, 2) + Q
    P_pred = 0.5 * (P_pred + jnp.swapaxes(P_pred, 1, 2))
    eye = jnp.eye(D, dtype=Ps.dtype)
    N = jax.vmap(lambda m: _spd_solve(m, eye))(P_pred)  # (P^-_j)^{-1}
    N = 0.5 * (N + jnp.swapaxes(N, 1, 2))
    G = jnp.swapaxes(N @ AP, 1, 2)
    # the eigendecomposition of a sum's Q waits for the solve (its batched Cholesky):
    # side by side, the two batched LAPACK kernels can deadlock XLA's CPU thread pool
    q_inv, rank_q = _noise_inverse(kernel, _after(Q1, G))  # (I, d, d), (I,); Q_0 = Pinf

    def blocks(M):  # (n, D, D) -> (n, R, R, d, d): the block of each pair of components
        return jnp.einsum("nrasb->nrsab", M.reshape(M.shape[0], R, d, R, d))

    # Cov(x_j - A x_{j-1}) under q, from the backward conditional x_{j-1} = G x_j + e:
    # (I - A G) P^s_j (I - A G)^T + A Cov(e) A^T = Q N P^s_j N Q + Q - Q N Q, since
    # I - A G = Q N. Written so it needs no Q^{-1}: the raw second moments' difference
    # cancels to O(Q), and at two coordinates far closer than a lengthscale (Q ~ 1e-17)
    # that cancellation left round-off that Q^{-1} blew up (NaN forms).
    Mb = blocks(N @ sP[1:] @ N - N)  # tr(Q^+ [Q X Q]_rs) = tr(X_rs Q1)
    cov = jnp.einsum("nrsab,nba->nrs", Mb, Q1[1:])
    cov = cov + rank_q[1:, None, None] * jnp.eye(R, dtype=cov.dtype)  # tr(Q^+ Q)
    e = (sm[1:] - jnp.einsum("nab,nb->na", A, sm[:-1])).reshape(I - 1, R, d)
    steps = cov + jnp.einsum("nra,nab,nsb->nrs", e, q_inv[1:], e)  # (I-1, R, R)
    keep = (jnp.arange(1, I) < n_valid)[:, None, None]
    S0 = blocks((sP[0] + jnp.outer(sm[0], sm[0]))[None])[0]  # E[x^r_0 x^sT_0]
    first = jnp.einsum("ab,rsba->rs", q_inv[0], S0)
    out = first + jnp.sum(jnp.where(keep, steps, 0.0), axis=0)
    return 0.5 * (out + out.T)


def _after(x, dep):
    """``x``, unchanged, as a value computed from ``dep`` too, so that XLA runs what
    consumes it only after ``dep`` (an ordering, not a change of numbers).

    A batched LAPACK kernel on a CPU (Cholesky, eigendecomposition) splits its batch
    over XLA's intra-op thread pool and waits for the pieces; two independent ones in
    one computation can each hold a pool thread while waiting, and with two cores
    that is every thread: the fit hangs. Seen with ``transform_moves=True`` and a sum
    kernel (``funbat.kernel_parts``), whose prior quadratic forms need both. ``0 *
    finite`` is exactly zero, so ``x`` keeps its value (an ``optimization_barrier``
    would not do: its outputs alias its inputs, and the runtime orders kernels by the
    buffers they use).
    """
    s = jnp.sum(dep)
    return x + 0.0 * jnp.where(jnp.isfinite(s), s, 0.0)


#: Relative floor of a Matérn transition noise's inverse (:func:`_noise_inverse`).
_Q_FLOOR = 1e-12


def _noise_inverse(kernel, Q1):
    """``Q_j^{-1}`` (I, d, d) of the transitions' noise ``Q1`` (I, d, d), and the rank
    of each ``Q_j`` (I,) (``tr(Q_j^{-1} Q_j)``: ``d``, or fewer for a singular one).

    A Matérn kernel's ``Q`` is positive definite (the unrolled Cholesky solve). A sum
    with deterministic parts (:mod:`funbat.kernel_parts`) has a singular ``Q``; its
    prior has a density only on ``range(Q)``, and the quadratic form there is the
    pseudo-inverse's (eigenvalues below ``1e-10`` of the largest of ``Pinf`` count as
    zero; the residuals ``x_j - A x_{j-1}`` of ``q`` vanish outside that range).
    """
    d = Q1.shape[-1]
    if getattr(kernel, "noise_rank", d) == d:
        # Q = Pinf - A Pinf A^T loses its smallest entries to round-off between two
        # coordinates far closer than a lengthscale (an eigenvalue of -2e-16 was seen
        # at a gap of 4e-6 with lengthscale 2.6): a floor of 1e-12 of the stationary
        # variance keeps the Cholesky real and leaves every other step as it was
        eye = jnp.eye(d, dtype=Q1.dtype)
        floor = _Q_FLOOR * jnp.max(jnp.diagonal(Q1[0])) * eye  # step 0: Q_0 = Pinf
        inv = jax.vmap(lambda m: _spd_solve(m + floor, eye))(Q1)
        return inv, jnp.full(Q1.shape[:1], float(d), dtype=Q1.dtype)
    s, V = jnp.linalg.eigh(Q1)
    cut = 1e-10 * jnp.max(jnp.abs(s[0]))  # step 0: Q_0 = Pinf
    inv = jnp.where(s > cut, 1.0 / jnp.where(s > cut, s, 1.0), 0.0)
    rank = jnp.sum(s > cut, axis=-1).astype(Q1.dtype)
    return (V * inv[:, None, :]) @ jnp.swapaxes(V, -1, -2), rank


def transform_chain(post: ChainPosterior, T, state_dim: int) -> ChainPosterior:
    """The chain's moments pushed through ``x^r -> sum_s T_rs x^s`` (T: (R, R)) at every
    coordinate, i.e. through ``T kron I_d`` on the component-major states (R d,).

    The log normaliser is kept as it is: it belongs to the messages, which a transformed
    posterior no longer matches (the next update recomputes it). Nor are the pairwise
    moments transformed: :func:`prior_quadratic` rebuilds them from the filtered
    covariances and the prior, which a non-orthogonal ``T`` does not carry along, so its
    value for the result is not ``T Q T^T``; read it only after the mode's next update.
    """
    M = jnp.kron(T, jnp.eye(state_dim))

    def cov(P):
        return M @ P @ M.T

    return ChainPosterior(post.filtered_means @ M.T, cov(post.filtered_covs),
                          post.smoothed_means @ M.T, cov(post.smoothed_covs),
                          post.log_normaliser)  # fmt: skip


def smooth(kernel: Matern, coords, Lams, etas, factors=None, n_valid=None) -> ChainPosterior:
    """Kalman filter then Rauch-Tung-Striebel smoother over ``coords`` (I,).

    Returns the filtered and smoothed state moments at every coordinate (at padded
    coordinates past ``n_valid``, the stationary prior). ``factors``, ``n_valid`` as in
    :func:`filter_chain`.
    """
    filtered, logZ = filter_chain(kernel, coords, Lams, etas, factors, n_valid)
    return rts_smooth(kernel, coords, filtered, logZ, n_valid)


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

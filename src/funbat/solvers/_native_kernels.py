"""Numba kernels of the native chain solver (:mod:`funbat.solvers.native`).

The same mathematics as :mod:`funbat.kalman` and :mod:`funbat.hyper`, step for step,
written as scalar loops over arrays allocated once per call: on a CPU a step of these
loops costs its flops (a fraction of a microsecond for rank 3, Matérn 3/2), where a step
of an XLA loop costs the launch of its small operations (a few microseconds).

State layout as in :mod:`funbat.kalman`: ``s = [s_1, ..., s_R]``, each ``s_r`` of size
``d``, ``A = I_R ⊗ A_1``, ``Q = I_R ⊗ Q_1``, ``u = H s`` with ``H = I_R ⊗ e_1^T``. The
block-diagonal ``A`` is applied block by block (``R^2 d^3`` flops, not ``(R d)^3``).

Compiled with ``cache=True`` (the machine code is kept on disk next to this file, or in
numba's user cache directory where that is read-only, so a second process does not
compile again) and ``fastmath`` flags that allow reassociation and fused multiply-adds
but keep IEEE infinities and NaNs (``nnan``/``ninf`` would let LLVM drop the
``isfinite`` test of the lengthscale search).
"""

from __future__ import annotations

import math
from functools import cache, partial
from types import SimpleNamespace

import numba
import numpy as np

__all__ = ["factors", "kernels", "matern_transitions", "stationary", "transition"]

#: LLVM fast-math flags: everything but "no NaNs" and "no infinities".
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

_jit = numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
#: Small helpers are inlined into the specialised kernels (numba IR level), where the
#: state size and rank are constants.
_inline = numba.njit(cache=True, fastmath=FASTMATH, nogil=True, inline="always")

#: ``log(lengthscale)`` fractions of the step tried by the search (as in funbat.hyper).
FRACTIONS = np.array([0.0, -1.0, -0.25, 0.25, 1.0])


@_jit
def stationary(d, ell, s2, Pinf):
    """The stationary covariance ``Pinf`` (d, d) of the Matérn SDE with ``d = nu + 1/2``
    (:meth:`funbat.kernels.Matern.sde`), written into ``Pinf``."""
    Pinf[:, :] = 0.0
    if d == 1:
        Pinf[0, 0] = s2
    elif d == 2:
        lam = math.sqrt(3.0) / ell
        Pinf[0, 0] = s2
        Pinf[1, 1] = lam * lam * s2
    else:
        lam = math.sqrt(5.0) / ell
        k = s2 * lam * lam / 3.0
        Pinf[0, 0] = s2
        Pinf[0, 2] = -k
        Pinf[1, 1] = k
        Pinf[2, 0] = -k
        Pinf[2, 2] = s2 * lam**4


@_inline
def transition(d, ell, gap, Pinf, A, Q, N, T, W):
    """``A = expm(F gap)`` and ``Q = Pinf - A Pinf A^T`` (d, d) for a finite gap
    (:meth:`funbat.kernels.Matern.transition`): ``N = F + lam I`` is nilpotent, so
    ``expm(F gap) = exp(-lam gap) sum_{i<d} (N gap)^i / i!``. ``N``, ``T``, ``W`` are
    (d, d) work arrays."""
    if d == 1:
        a = math.exp(-gap / ell)
        A[0, 0] = a
        Q[0, 0] = Pinf[0, 0] - a * Pinf[0, 0] * a
        return
    nu2 = 3.0 if d == 2 else 5.0  # 2 nu
    lam = math.sqrt(nu2) / ell
    N[:, :] = 0.0
    for i in range(d - 1):
        N[i, i + 1] = 1.0
    if d == 2:
        N[1, 0] = -(lam * lam)
        N[1, 1] = -2.0 * lam
    else:
        N[2, 0] = -(lam**3)
        N[2, 1] = -3.0 * lam * lam
        N[2, 2] = -3.0 * lam
    for i in range(d):
        N[i, i] += lam
    # total = sum_i term_i, term_i = term_{i-1} (N gap) / i
    for i in range(d):
        for j in range(d):
            T[i, j] = 1.0 if i == j else 0.0
            A[i, j] = T[i, j]
    for p in range(1, d):
        for i in range(d):
            for j in range(d):
                s = 0.0
                for k in range(d):
                    s += T[i, k] * (N[k, j] * gap)
                W[i, j] = s / p
        for i in range(d):
            for j in range(d):
                T[i, j] = W[i, j]
                A[i, j] += W[i, j]
    e = math.exp(-lam * gap)
    for i in range(d):
        for j in range(d):
            A[i, j] *= e
    # Q = Pinf - A Pinf A^T, symmetrised
    for i in range(d):
        for j in range(d):
            s = 0.0
            for k in range(d):
                s += A[i, k] * Pinf[k, j]
            W[i, j] = s
    for i in range(d):
        for j in range(d):
            s = 0.0
            for k in range(d):
                s += W[i, k] * A[j, k]
            T[i, j] = Pinf[i, j] - s
    for i in range(d):
        for j in range(d):
            Q[i, j] = 0.5 * (T[i, j] + T[j, i])


@_jit
def factors(Lams, n_valid, out):
    """``L_j`` with ``L_j L_j^T = Lambda_j`` for the first ``n_valid`` PSD ``Lams``
    (I, R, R) into ``out``: the filter's Cholesky in its ``psd`` form (a pivot below
    ``1e-12 * trace + tiny`` is zero, with its column), as
    :func:`funbat.kalman.message_factors`."""
    R = Lams.shape[1]
    tiny_f = np.finfo(np.float64).tiny
    out[:, :, :] = 0.0
    for j in range(n_valid):
        S = Lams[j]
        L = out[j]
        tr = 0.0
        for i in range(R):
            tr += S[i, i]
        tiny = 1e-12 * tr + tiny_f
        for c in range(R):
            s = S[c, c]
            for k in range(c):
                s -= L[c, k] * L[c, k]
            if s > tiny:
                dg = math.sqrt(s)
                L[c, c] = dg
                for i in range(c + 1, R):
                    v = S[i, c]
                    for k in range(c):
                        v -= L[i, k] * L[c, k]
                    L[i, c] = v / dg
            # else: the column stays zero


@_inline
def _lu_solve(M, X, piv, n):
    """``X <- M^{-1} X`` for ``M`` (n, n), ``X`` (n, n) by LU with partial pivoting (M
    destroyed; ``piv`` (n,) work). ``n`` is the caller's constant."""
    m = n
    for c in range(n):
        p = c
        big = abs(M[c, c])
        for i in range(c + 1, n):
            if abs(M[i, c]) > big:
                big = abs(M[i, c])
                p = i
        piv[c] = p
        if p != c:
            for k in range(n):
                t = M[c, k]
                M[c, k] = M[p, k]
                M[p, k] = t
            for k in range(m):
                t = X[c, k]
                X[c, k] = X[p, k]
                X[p, k] = t
        inv = 1.0 / M[c, c]
        for i in range(c + 1, n):
            f = M[i, c] * inv
            if f != 0.0:
                for k in range(c + 1, n):
                    M[i, k] -= f * M[c, k]
                for k in range(m):
                    X[i, k] -= f * X[c, k]
    for c in range(n - 1, -1, -1):
        inv = 1.0 / M[c, c]
        for k in range(m):
            s = X[c, k]
            for i in range(c + 1, n):
                s -= M[c, i] * X[i, k]
            X[c, k] = s * inv


@_inline
def _predict(d, R, a, q, m, P, mp, AP, Pp):
    """One prediction step of every component's chain: ``mp <- A m``, ``AP <- A P`` and
    ``Pp <- AP A^T + Q`` (symmetrised), with ``A``, ``Q`` the (d, d) blocks ``a``,
    ``q`` of the block-diagonal transition. Shared by the filter and the smoother."""
    D = R * d
    for rr in range(R):
        o = rr * d
        for i in range(d):
            s = 0.0
            for k in range(d):
                s += a[i, k] * m[o + k]
            mp[o + i] = s
            for c in range(D):
                s = 0.0
                for k in range(d):
                    s += a[i, k] * P[o + k, c]
                AP[o + i, c] = s
    for ri in range(D):
        for ss in range(R):
            o = ss * d
            for jj in range(d):
                s = 0.0
                for k in range(d):
                    s += AP[ri, o + k] * a[jj, k]
                Pp[ri, o + jj] = s
    for rr in range(R):
        o = rr * d
        for i in range(d):
            for k in range(d):
                Pp[o + i, o + k] += q[i, k]
    for i in range(D):
        for k in range(i + 1, D):
            h = 0.5 * (Pp[i, k] + Pp[k, i])
            Pp[i, k] = h
            Pp[k, i] = h


@_jit
def matern_transitions(dt, ell, s2, coords, n_valid, A1, Q1, Pinf):
    """The Matérn chain's transition blocks into ``A1``, ``Q1`` (I, d, d) for its first
    ``n_valid`` steps and its stationary covariance into ``Pinf`` (d, d): step 0 starts
    from the stationary prior (``A = 0``, ``Q = Pinf``), step ``j`` moves from
    ``coords[j-1]`` to ``coords[j]`` (as :meth:`funbat.kernels.Matern.transition`)."""
    d = len(dt)
    stationary(d, ell, s2, Pinf)
    w1 = np.empty((d, d))
    w2 = np.empty((d, d))
    w3 = np.empty((d, d))
    for i in range(d):
        for k in range(d):
            A1[0, i, k] = 0.0
            Q1[0, i, k] = Pinf[i, k]
    for j in range(1, n_valid):
        transition(d, ell, coords[j] - coords[j - 1], Pinf, A1[j], Q1[j], w1, w2, w3)


@_jit
def _prior_rows(dt, Rt, Pinf, start, ms, Ps):
    """Rows from ``start`` on: mean 0 and covariance ``I_R ⊗ Pinf`` (the padding)."""
    d, R = len(dt), len(Rt)
    for j in range(start, ms.shape[0]):
        for i in range(ms.shape[1]):
            ms[j, i] = 0.0
            for k in range(ms.shape[1]):
                Ps[j, i, k] = 0.0
        for rr in range(R):
            for i in range(d):
                for k in range(d):
                    Ps[j, rr * d + i, rr * d + k] = Pinf[i, k]


@_jit
def filter_chain(dt, Rt, A1, Q1, L, Lams, etas, n_valid, store, ms, Ps):
    """Information-form Kalman filter over the first ``n_valid`` steps
    (:func:`funbat.kalman.filter_chain`) with the transition blocks ``A1``, ``Q1``
    (I, d, d; step 0 from the prior, ``A1[0] = 0``): returns ``sum_j log Z_j``. With
    ``store`` the filtered moments go into ``ms`` (I, D) and ``Ps`` (I, D, D), whose rows
    from ``n_valid`` on are left as they are (the caller sets them to the prior)."""
    d, R = len(dt), len(Rt)
    D = R * d
    m = np.zeros(D)
    P = np.zeros((D, D))
    mp = np.empty(D)
    T = np.empty((D, D))
    Pp = np.empty((D, D))
    PHt = np.empty((D, R))
    B = np.empty((R, R))
    LtB = np.empty((R, R))
    C = np.empty((R, R))
    Wt = np.empty((R, D))
    mu = np.empty(R)
    r = np.empty(R)
    v = np.empty(R)
    Kr = np.empty(D)
    logZ = 0.0
    for j in range(n_valid):
        Lj = L[j]
        Lam = Lams[j]
        eta = etas[j]
        # -- prediction: m- = A m, P- = A P A^T + Q (symmetrised); from m = 0, P = 0 at
        # step 0, where A = 0 and Q = Pinf
        _predict(d, R, A1[j], Q1[j], m, P, mp, T, Pp)  # T <- A P
        # -- update with the message (Lambda = L L^T, eta) ----------------------------
        for rr in range(R):
            mu[rr] = mp[rr * d]
            for c in range(D):
                PHt[c, rr] = Pp[c, rr * d]
        for i in range(R):
            for k in range(R):
                B[i, k] = PHt[i * d, k]
        # M = I + L^T B L, its Cholesky factor C (eigenvalues >= 1)
        for i in range(R):
            for k in range(R):
                s = 0.0
                for t in range(R):
                    s += Lj[t, i] * B[t, k]
                LtB[i, k] = s
        for i in range(R):
            for k in range(R):
                s = 1.0 if i == k else 0.0
                for t in range(R):
                    s += LtB[i, t] * Lj[t, k]
                C[i, k] = s
        for c in range(R):
            s = C[c, c]
            for k in range(c):
                s -= C[c, k] * C[c, k]
            dg = math.sqrt(s)
            for i in range(c + 1, R):
                vv = C[i, c]
                for k in range(c):
                    vv -= C[i, k] * C[c, k]
                C[i, c] = vv / dg
            C[c, c] = dg
        # Wt = C^{-1} L^T PHt^T (R, D)
        for i in range(R):
            for c in range(D):
                s = 0.0
                for t in range(R):
                    s += Lj[t, i] * PHt[c, t]
                for k in range(i):
                    s -= C[i, k] * Wt[k, c]
                Wt[i, c] = s / C[i, i]
        # P = P- - Wt^T Wt
        for i in range(D):
            for k in range(D):
                s = Pp[i, k]
                for t in range(R):
                    s -= Wt[t, i] * Wt[t, k]
                P[i, k] = s
        # r = eta - Lambda mu;  v = C^{-1} L^T B r
        for i in range(R):
            s = eta[i]
            for k in range(R):
                s -= Lam[i, k] * mu[k]
            r[i] = s
        for i in range(R):
            s = 0.0
            for k in range(R):
                s += LtB[i, k] * r[k]
            for k in range(i):
                s -= C[i, k] * v[k]
            v[i] = s / C[i, i]
        # K r = P- H^T r - W v;  m = m- + K r
        for c in range(D):
            s = 0.0
            for k in range(R):
                s += PHt[c, k] * r[k]
            for k in range(R):
                s -= Wt[k, c] * v[k]
            Kr[c] = s
            m[c] = mp[c] + s
        lz = 0.0
        for i in range(R):
            lz -= math.log(C[i, i])
        for i in range(R):
            s = 0.0
            for k in range(R):
                s += Lam[i, k] * mu[k]
            lz += eta[i] * mu[i] - 0.5 * mu[i] * s + 0.5 * r[i] * Kr[i * d]
        logZ += lz
        if store:
            for i in range(D):
                ms[j, i] = m[i]
                for k in range(D):
                    Ps[j, i, k] = P[i, k]
    return logZ


@_jit
def rts_smooth(dt, Rt, A1, Q1, ms, Ps, n_valid, sm, sP):
    """Rauch-Tung-Striebel pass (:func:`funbat.kalman.rts_smooth`) into ``sm`` (I, D)
    and ``sP`` (I, D, D), which the caller fills with ``ms``, ``Ps`` first (the last
    real row and the padding keep them). ``G_j = P_j A_{j+1}^T (P^-_{j+1})^{-1}``."""
    d, R = len(dt), len(Rt)
    D = R * d
    AP = np.empty((D, D))
    Pp = np.empty((D, D))
    GT = np.empty((D, D))
    mp = np.empty(D)
    dm = np.empty(D)
    dP = np.empty((D, D))
    GdP = np.empty((D, D))
    piv = np.empty(D, dtype=np.int64)
    for j in range(n_valid - 2, -1, -1):
        P = Ps[j]
        # AP = A P_j, P- = AP A^T + Q (symmetrised), m- = A m_j
        _predict(d, R, A1[j + 1], Q1[j + 1], ms[j], P, mp, AP, Pp)
        # G^T = (P-)^{-1} A P_j; dP = P^s_{j+1} - P- (before Pp is overwritten)
        for i in range(D):
            dm[i] = sm[j + 1, i] - mp[i]
            for k in range(D):
                dP[i, k] = sP[j + 1, i, k] - Pp[i, k]
                GT[i, k] = AP[i, k]
        _lu_solve(Pp, GT, piv, D)
        # m = m_j + G dm;  P = P_j + G dP G^T (symmetrised)
        for i in range(D):
            s = ms[j, i]
            for k in range(D):
                s += GT[k, i] * dm[k]
            sm[j, i] = s
        for i in range(D):
            for k in range(D):
                s = 0.0
                for t in range(D):
                    s += GT[t, i] * dP[t, k]
                GdP[i, k] = s
        for i in range(D):
            for k in range(i, D):
                s = 0.0
                for t in range(D):
                    s += GdP[i, t] * GT[t, k]
                dP[i, k] = s
        for i in range(D):
            for k in range(i, D):
                h = P[i, k] + dP[i, k]
                h2 = P[k, i] + dP[i, k]
                v = 0.5 * (h + h2)
                sP[j, i, k] = v
                sP[j, k, i] = v


@_jit
def smooth_given(dt, Rt, A1, Q1, Pinf, Lams, etas, n_valid, ms, Ps, sm, sP):
    """Filter and smoother with the transition blocks ``A1``, ``Q1`` (I, d, d) and the
    prior covariance ``Pinf`` (d, d) of the padding, into ``ms``, ``Ps``, ``sm``, ``sP``;
    returns ``log Z``."""
    R = len(Rt)
    I = Lams.shape[0]
    L = np.empty((I, R, R))
    factors(Lams, n_valid, L)
    _prior_rows(dt, Rt, Pinf, n_valid, ms, Ps)
    logZ = filter_chain(dt, Rt, A1, Q1, L, Lams, etas, n_valid, True, ms, Ps)
    sm[:, :] = ms
    sP[:, :, :] = Ps
    rts_smooth(dt, Rt, A1, Q1, ms, Ps, n_valid, sm, sP)
    return logZ


@_jit
def search_given(dt, Rt, A1s, Q1s, Pinfs, Lams, etas, n_valid, ms, Ps, sm, sP):
    """The best of ``C`` candidate kernels, given by their transition blocks ``A1s``,
    ``Q1s`` (C, I, d, d) and priors ``Pinfs`` (C, d, d): each filtered in turn, the best
    finite ``log Z`` kept (the first on ties, as ``argmax``; the first candidate is the
    current kernel), then its chain smoothed into ``ms``, ``Ps``, ``sm``, ``sP``. Each
    candidate is filtered into a scratch buffer that becomes the best one when it wins
    (``C`` filter passes, not ``C + 1``). Returns the winner's index and ``log Z``."""
    d, R = len(dt), len(Rt)
    D = R * d
    I = Lams.shape[0]
    L = np.empty((I, R, R))
    factors(Lams, n_valid, L)
    bm, bP, xm, xP = ms, Ps, sm, sP  # best so far, scratch (sm, sP: free until the RTS)
    best_in_out = True
    top = filter_chain(dt, Rt, A1s[0], Q1s[0], L, Lams, etas, n_valid, True, bm, bP)
    logZ = top
    best = 0
    if not np.isfinite(top):
        top = -np.inf
    for c in range(1, A1s.shape[0]):
        lz = filter_chain(dt, Rt, A1s[c], Q1s[c], L, Lams, etas, n_valid, True, xm, xP)
        if np.isfinite(lz) and lz > top:
            top = lz
            logZ = lz
            best = c
            bm, bP, xm, xP = xm, xP, bm, bP
            best_in_out = not best_in_out
    if not best_in_out:  # the winner's moments are in (sm, sP)
        for j in range(n_valid):
            for i in range(D):
                ms[j, i] = sm[j, i]
                for k in range(D):
                    Ps[j, i, k] = sP[j, i, k]
    _prior_rows(dt, Rt, Pinfs[best], n_valid, ms, Ps)
    sm[:, :] = ms
    sP[:, :, :] = Ps
    rts_smooth(dt, Rt, A1s[best], Q1s[best], ms, Ps, n_valid, sm, sP)
    return best, logZ


@_jit
def smooth(dt, Rt, ell, s2, coords, Lams, etas, n_valid, ms, Ps, sm, sP):
    """Filter and smoother of the Matérn chain into ``ms``, ``Ps``, ``sm``, ``sP``;
    returns ``log Z``."""
    d = len(dt)
    I = Lams.shape[0]
    A1, Q1, Pinf = np.empty((I, d, d)), np.empty((I, d, d)), np.empty((d, d))
    matern_transitions(dt, ell, s2, coords, n_valid, A1, Q1, Pinf)
    return smooth_given(dt, Rt, A1, Q1, Pinf, Lams, etas, n_valid, ms, Ps, sm, sP)


@_jit
def search(dt, Rt, ell, s2, coords, Lams, etas, n_valid, step, lo, hi, ms, Ps, sm, sP, out):
    """One line search on ``log(lengthscale)`` of the Matérn chain
    (:func:`funbat.hyper.smooth_with_lengthscale_search`): the five candidates
    ``clip(theta + step * FRACTIONS)`` (the first the current value) through
    :func:`search_given`. ``out`` (3,) receives the new lengthscale, its ``log Z`` and
    the next step."""
    d = len(dt)
    I = Lams.shape[0]
    theta = math.log(ell)
    A1s, Q1s, Pinfs = np.empty((5, I, d, d)), np.empty((5, I, d, d)), np.empty((5, d, d))
    cands = np.empty(5)
    for c in range(5):
        x = theta + step * FRACTIONS[c]
        x = min(max(x, lo), hi)
        cands[c] = theta if c == 0 else x
        matern_transitions(dt, math.exp(cands[c]), s2, coords, n_valid, A1s[c], Q1s[c], Pinfs[c])
    best, logZ = search_given(dt, Rt, A1s, Q1s, Pinfs, Lams, etas, n_valid, ms, Ps, sm, sP)
    moved = abs(cands[best] - theta)
    nxt = 0.5 * step if best == 0 else 2.0 * moved
    out[0] = math.exp(cands[best])
    out[1] = logZ
    out[2] = min(max(nxt, 1e-3), 2.0)


@cache
def kernels(d: int, R: int) -> SimpleNamespace:
    """The transitions, filter, smoother and searches for state size ``d`` and rank ``R``.

    ``d`` and ``R`` reach the kernels as the lengths of tuples ``dt``, ``Rt``: part of
    the argument types, so each ``(d, R)`` is compiled with them as constants (LLVM
    unrolls the short loops over them: twice as fast as integer arguments for a Matérn
    chain, two to three times for a sum of kernel parts) and cached on disk under its
    own type signature.
    """
    dt, Rt = (0,) * d, (0,) * R
    return SimpleNamespace(
        transitions=partial(matern_transitions, dt), filter_chain=partial(filter_chain, dt, Rt),
        rts_smooth=partial(rts_smooth, dt, Rt), smooth=partial(smooth, dt, Rt),
        search=partial(search, dt, Rt), smooth_given=partial(smooth_given, dt, Rt),
        search_given=partial(search_given, dt, Rt),
    )  # fmt: skip

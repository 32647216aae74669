"""Transformation moves: exact ELBO increases along directions the data cannot see
(``docs/theory.md`` section 8).

The product ``W x_1 U^1 ... x_K U^K`` is unchanged when mode ``k``'s functions are
mapped by an invertible ``T`` (``u -> T u``) and the core's mode-``k`` unfolding by
``T^{-T}`` (``W_(k) -> T^{-T} W_(k)``, since ``f = u^T W_(k) z``) (Tucker), or
when each CP component is rescaled in every mode by factors whose product is one.
Pushing ``q`` through such a map leaves every sample of the product, hence the
expected log-likelihood, exactly as it was; only the prior terms and the entropies move
(Luttinen & Ilin 2010; Qi & Jaakkola 2006). Coordinate ascent crawls along these
directions; a move jumps to the best point along them with no pass over the data.

With ``Q_k`` (R, R) the expected prior quadratic forms of mode ``k`` under ``q``
(:meth:`funbat.modes.ModeKind.prior_quadratic`), ``D_k`` its latent variables per
component (:meth:`funbat.modes.ModeKind.dimension`), ``M_k = E[W_(k) W_(k)^T]`` and
``P_-k = P / R_k``, the Tucker move for mode ``k`` maximises

``f(T) = -tr(T Q_k T^T) / 2 - tr(T^{-T} M_k T^{-1}) / (2 s_w^2) + (D_k - P_-k) log|det T|``

(the ELBO's change is ``f(T) - f(I)``), and the CP move maximises, per component ``r``,
``sum_k [-c_k^2 Q_k[r, r] / 2 + D_k log c_k]`` subject to ``prod_k c_k = 1``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from .. import updates as U

__all__ = ["balance_cp", "balance_tucker", "component_rms", "cp_scales", "transform_core",
           "tucker_objective", "tucker_transform"]  # fmt: skip

#: Damped Newton iterations of the Tucker move: each tries a range of Levenberg-Marquardt
#: dampings (from a Newton step to a short gradient step) and keeps the best point, the
#: current one included, so the objective never decreases.
_NEWTON_ITERATIONS = 16
_DAMPINGS = tuple(10.0**e for e in range(-8, 7))


def tucker_objective(T, Q, M, dim, n_rest, core_var):
    """``f(T)`` of the module docstring: the ELBO as a function of the mode-``k`` map,
    up to a constant. ``T``, ``Q``, ``M``: (R, R); ``dim`` = ``D_k``; ``n_rest`` =
    ``P_-k``; ``core_var``: the core's prior variance."""
    Tinv_t = jnp.linalg.inv(T).T
    _, logdet = jnp.linalg.slogdet(T)
    return (
        -0.5 * jnp.sum((T @ Q) * T)
        - 0.5 * jnp.sum((Tinv_t @ M) * Tinv_t) / core_var
        + (dim - n_rest) * logdet
    )


@jax.jit
def tucker_transform(Q, M, dim, n_rest, core_var):
    """The mode map ``T`` (R, R) of the Tucker move, and the ELBO gain ``f(T) - f(I)``.

    Starts from the best multiple of the identity (a closed form: ``s^2`` solves
    ``tr(Q) s^4 - c R s^2 - tr(M) / s_w^2 = 0`` with ``c = D_k - P_-k``), then damped
    Newton steps on ``vec(T)``, each the best of a few step lengths or none.
    """
    R = Q.shape[0]
    c = dim - n_rest
    f = partial(tucker_objective, Q=Q, M=M, dim=dim, n_rest=n_rest, core_var=core_var)
    trQ, trM = jnp.trace(Q), jnp.trace(M) / core_var
    s2 = (c * R + jnp.sqrt((c * R) ** 2 + 4.0 * trQ * trM)) / (2.0 * trQ)
    eye = jnp.eye(R, dtype=Q.dtype)
    start = jnp.sqrt(s2) * eye
    T0 = jnp.where(f(start) > f(eye), start, eye)

    def vec_f(t):
        return f(t.reshape(R, R))

    grad, hess = jax.grad(vec_f), jax.hessian(vec_f)
    dampings = jnp.asarray(_DAMPINGS, dtype=Q.dtype)
    eye_p = jnp.eye(R * R, dtype=Q.dtype)

    def newton(_, t):
        g, H = grad(t), hess(t)
        H = 0.5 * (H + H.T)
        top = jnp.max(jnp.linalg.eigvalsh(H))
        scale = 1.0 + jnp.max(jnp.abs(jnp.diag(H)))
        # (mu I - H) positive definite: Newton where f is concave, gradient-like when damped
        mus = jnp.maximum(top, 0.0) + dampings * scale
        steps = jax.vmap(lambda mu: jnp.linalg.solve(mu * eye_p - H, g))(mus)
        cands = jnp.concatenate([t[None, :], t[None, :] + steps])
        vals = jax.vmap(vec_f)(cands)
        vals = jnp.where(jnp.isfinite(vals), vals, -jnp.inf)
        return cands[jnp.argmax(vals)]

    t = jax.lax.fori_loop(0, _NEWTON_ITERATIONS, newton, T0.reshape(-1))
    T = t.reshape(R, R)
    gain = f(T) - f(eye)
    ok = jnp.isfinite(gain) & (gain > 0.0)
    return jnp.where(ok, T, eye), jnp.where(ok, gain, 0.0)


@partial(jax.jit, static_argnames=("rank",))
def transform_core(core: U.CoreMoments, T, first, *, rank: int) -> U.CoreMoments:
    """``q(W)`` pushed through the core's half of the Tucker move: the mode-``k``
    unfolding ``W_(k)`` (``first`` from :func:`funbat.updates.core_orders`) becomes
    ``T^{-T} W_(k)``."""
    P = core.mean.shape[0]
    back = jnp.argsort(first)
    B = jnp.kron(jnp.linalg.inv(T).T, jnp.eye(P // rank, dtype=T.dtype))
    mean = (B @ core.mean[first])[back]
    cov = (B @ core.cov[first][:, first] @ B.T)[back][:, back]
    return U.CoreMoments(mean, 0.5 * (cov + cov.T))


def core_mode_second_moment(core: U.CoreMoments, first, rank: int):
    """``M_k = E[W_(k) W_(k)^T]`` (R_k, R_k) from the core's moments."""
    P = core.mean.shape[0]
    _, Eww = U.unfold_core(core, rank, first)
    return jnp.einsum("acbc->ab", Eww.reshape(rank, P // rank, rank, P // rank))


@jax.jit
def cp_scales(Qdiag, dims):
    """Per-mode scales ``c`` (K, R) of the CP move, with ``prod_k c[k, r] = 1``, and the
    ELBO gain (scalar).

    ``Qdiag`` (K, R): each mode's expected prior quadratic form per component;
    ``dims`` (K,): each mode's latent variables per component. The optimum has
    ``c_k^2 = (D_k - lam) / Q_k`` with ``lam`` set by the constraint, found by bisection
    on ``t = log(min D - lam)``, along which the constraint's sum of logs increases.
    """
    dims = dims[:, None].astype(Qdiag.dtype)
    base = dims - jnp.min(dims)

    def log_c(t):  # (K, R)
        return 0.5 * (jnp.log(base + jnp.exp(t)) - jnp.log(Qdiag))

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        up = jnp.sum(log_c(mid), axis=0) > 0.0
        return jnp.where(up, lo, mid), jnp.where(up, mid, hi)

    R = Qdiag.shape[1]
    lo, hi = jnp.full((R,), -60.0), jnp.full((R,), 60.0)
    lo, hi = jax.lax.fori_loop(0, 200, bisect, (lo, hi))
    x = log_c(0.5 * (lo + hi))
    x = x - jnp.mean(x, axis=0)  # the product exactly one
    gain = jnp.sum(-0.5 * Qdiag * (jnp.exp(2.0 * x) - 1.0) + dims * x)
    ok = jnp.isfinite(gain) & (gain > 0.0)
    return jnp.where(ok, jnp.exp(x), 1.0), jnp.where(ok, gain, 0.0)


def component_rms(means, n_valid):
    """Root-mean-square of each component's posterior mean over the real coordinates,
    (R,), from ``means`` (I_pad, R) (rows past ``n_valid`` are zero); 1 for a component
    outside ``[1e-6, 1e6]``: one that has collapsed towards zero (a rescaling would not
    revive it, and factors beyond that range overflow the covariances and underflow the
    core) or one that has blown up."""
    rms = jnp.sqrt(jnp.sum(means**2, axis=0) / n_valid)
    return jnp.where((rms > 1e-6) & (rms < 1e6), rms, 1.0)


def balance_tucker(kinds, modes, core, firsts, ranks):
    """Every mode's components rescaled to unit root-mean-square, the core taking the
    inverse scales (the product is unchanged): ``(modes, core)``.

    Run once, before the last warm-up sweep (:func:`funbat.inference.sweep.sweep`). A start far
    from balance (a core near zero against functions many times their prior's size,
    as the singular-vector start gives when most coordinates are seen once) is not a
    direction the exact moves fix: pushing ``q(U^k)`` through a scale also scales the
    covariances the data pin down, and the entropy that costs outweighs the prior
    terms, whereas the mode's next update recomputes them from the data. Coordinate
    ascent then shrinks the functions over hundreds of sweeps, and lengthscales learned
    meanwhile come out short (the prior's variance fixed, the data pin down
    ``variance / lengthscale^(2 nu)``, so functions too large ask for lengthscales too
    short). The warm-up makes no promise about the ELBO, so the start may jump.
    """
    modes = list(modes)
    for k, (kind, first, rank) in enumerate(zip(kinds, firsts, ranks)):
        T = jnp.diag(1.0 / component_rms(modes[k].means, modes[k].n_valid))
        modes[k] = kind.transform(modes[k], T)
        core = transform_core(core, T, first, rank=rank)
    return tuple(modes), core


def balance_cp(kinds, modes):
    """Each CP component rescaled in every mode to the geometric mean of its modes'
    root-mean-squares (the product of the scales is one: the fitted product is
    unchanged), for the reason given in :func:`balance_tucker`."""
    rms = jnp.stack([component_rms(m.means, m.n_valid) for m in modes])  # (K, R)
    log_c = jnp.mean(jnp.log(rms), axis=0) - jnp.log(rms)
    return tuple(kind.transform(m, jnp.diag(jnp.exp(c))) for kind, m, c in zip(kinds, modes, log_c))

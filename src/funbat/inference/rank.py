"""Learning the rank: automatic relevance determination of components
(``docs/theory.md`` section 9).

Every component has a precision ``lambda`` with a Gamma prior that scales its GP prior,
``u_r ~ N(0, K / lambda_r)``. CP: one precision per component, shared by all modes.
Tucker: one per component of each mode, ``lambda^k_r``, and the core's prior scaled
consistently, ``w_{r_1..r_K} ~ N(0, s_w^2 / prod_k lambda^k_{r_k})`` (Zhao, Zhang &
Cichocki 2015). ``q(lambda) = Gamma`` has an exact block update from the expected
prior quadratic forms of the modes (and the core's second moments), with no pass over
the data; a mode is updated with its prior scaled by ``E[lambda]`` by the ordinary
unit-prior update in the coordinates ``v = u sqrt(E[lambda])``, and mapped back.
A component is removed during the fit when that raises the ELBO (:func:`sweep`). A
removed component is first masked: its moments and core slices are zeroed and its
terms left out, so the arrays keep their shapes and no program is compiled again;
the arrays shrink to the live components (:func:`compact`) once a mode has lost half
its width, so later sweeps get cheaper, and at the end of the fit.

The fixed-rank fit never enters this module: a :class:`SweepState` without a
``rank`` record sweeps exactly as before.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma

from .. import updates as U
from ..dense import DensePosterior
from ..kalman import ChainPosterior
from . import moves as MV
from .state import ModelSpec, SweepState
from .sweep import (
    _moments,
    _orders,
    _priors,
    _timed,
    _unfold_core,
    core_and_noise,
    grouped_statistics,
    noise_and_elbo,
    warmup_sweeps,
)

__all__ = ["PRIOR", "TRIAL_EVERY", "RankState", "compact", "component_power", "data_sums",
           "deactivate", "default_max_rank", "init_rank", "mode_update", "precision_means", "prune",
           "prune_plan", "rank_terms", "sweep", "unit_prior_state", "update_precisions",
           "weakest"]  # fmt: skip

#: ``(c0, d0)`` of every precision's Gamma prior (shape, rate): vague, so the data
#: decide; its mean-log term costs a component about ``log(1 / c0)`` nats of ELBO.
PRIOR = (1e-6, 1e-6)


#: The default upper bound of ``rank="auto"``.
MAX_RANK = 8


class RankState(NamedTuple):
    """The precisions' posterior and what the ELBO needs of each mode.

    shape, rate : per precision group (one for CP, one per mode for Tucker), (R_g,)
    each: ``q(lambda) = Gamma(shape, rate)``. quad : per mode (R_k,), the expected prior
    quadratic forms ``E_q[u_r^T K^{-1} u_r]`` of the current ``q(U^k)``. used : per
    mode (R_k,), the ``E[lambda]`` the mode's KL term refers to (its last update).
    scale : per mode (R_k,), the map from the mode's unit-prior posterior record to the
    stored one (``u = scale * v``), which prediction undoes. sums : the data sums
    ``(T, b)`` of the last sweep's last mode (:func:`data_sums`), which the pruning
    test reads; None before the first sweep. active : per mode (R_k,), 1.0 for a live
    component and 0.0 for a removed one still in the arrays (CP: the same in every
    mode); None when every component is live (the state of a finished fit).
    """

    shape: tuple
    rate: tuple
    quad: tuple
    used: tuple
    scale: tuple
    sums: tuple | None = None
    active: tuple | None = None


def _live(rank: RankState, ranks) -> tuple:
    """The masks ``rank.active``, ones where it is None."""
    if rank.active is None:
        return tuple(jnp.ones(R) for R in ranks)
    return rank.active


def default_max_rank(sizes, structure: str = "cp", n: int | None = None) -> int:
    """``rank="auto"``'s upper bound: ``min(8, fewest unique coordinates of a mode)``;
    for Tucker also at most ``n ** (1 / K)``, so the core has no more entries than
    observations."""
    bound = min([MAX_RANK] + [int(s) for s in sizes])
    if structure != "cp" and n is not None:
        bound = min(bound, max(1, int(np.floor(n ** (1.0 / len(sizes)) + 1e-9))))
    return max(1, bound)


def _group(structure: str, k: int) -> int:
    return 0 if structure == "cp" else k


def precision_means(rank: RankState, structure: str, K: int):
    """``E[lambda]`` (R_k,) for each of the ``K`` modes."""
    return [rank.shape[_group(structure, k)] / rank.rate[_group(structure, k)] for k in range(K)]


def _dims(kinds, modes):
    return [jnp.asarray(kind.dimension(m), dtype=jnp.float64) for kind, m in zip(kinds, modes)]


def _shapes(structure, dims, active):
    """The Gamma shapes, which depend only on the sizes: for Tucker, of the live core
    entries in each slice (the live components of the other modes)."""
    c0 = PRIOR[0]
    if structure == "cp":
        return (c0 + 0.5 * sum(dims) + jnp.zeros_like(active[0]),)
    live = [jnp.sum(a) for a in active]
    out = []
    for k, (d, a) in enumerate(zip(dims, active)):
        per_slice = jnp.prod(jnp.stack([n for i, n in enumerate(live) if i != k] or [1.0]))
        out.append(c0 + 0.5 * (d + per_slice) + jnp.zeros_like(a))
    return tuple(out)


def init_rank(spec: ModelSpec, modes) -> RankState:
    """Precisions of mean 1 (the fixed-rank prior) and empty quadratic forms: the
    warm-up holds them, and they are learned from the first sweep after it."""
    ranks = tuple(m.means.shape[1] for m in modes)
    ones = tuple(jnp.ones(R) for R in ranks)
    shape = _shapes(spec.structure, _dims(spec.kinds, modes), ones)
    zeros = tuple(jnp.zeros(R) for R in ranks)
    return RankState(shape, shape, zeros, ones, ones, None, ones)


def _gamma_kl(shape, rate, live):
    return jnp.sum(live * U.gamma_kl(U.NoiseMoments(shape, rate), *PRIOR))


@partial(jax.jit, static_argnames=("structure",))
def rank_terms(rank: RankState, dims, *, structure: str):
    """The ELBO's terms of the precisions and the modes' difference from their KL
    terms: ``sum_k sum_r [D_k/2 (E log lambda_r - log used_r) - (E lambda_r - used_r)
    quad_r / 2] - sum KL(q(lambda) || p(lambda))``, over the live components. (A
    Tucker core's terms are in its own KL, :func:`_tucker_core_and_noise`.)"""
    active = rank.active
    total = 0.0
    for k, D in enumerate(dims):
        g = _group(structure, k)
        lam = rank.shape[g] / rank.rate[g]
        elog = digamma(rank.shape[g]) - jnp.log(rank.rate[g])
        used = rank.used[k]
        total = total + jnp.sum(active[k] * (
            0.5 * D * (elog - jnp.log(used)) - 0.5 * (lam - used) * rank.quad[k]))  # fmt: skip
    for g, (shape, rate) in enumerate(zip(rank.shape, rank.rate)):
        total = total - _gamma_kl(shape, rate, active[g])
    return total


def _core_e2(core):
    return jnp.diagonal(core.cov) + core.mean**2


def _core_prior(rank: RankState, ranks):
    """``alpha = E[prod_k lambda^k_{r_k}]``, ``beta = E[log prod_k lambda^k_{r_k}]`` and
    the live entries' mask (P,) in the core's C order (Tucker)."""
    alpha, beta, live = jnp.ones(()), jnp.zeros(()), jnp.ones(())
    for shape, rate, a in zip(rank.shape, rank.rate, rank.active):
        alpha = jnp.multiply.outer(alpha, shape / rate)
        beta = jnp.add.outer(beta, digamma(shape) - jnp.log(rate))
        live = jnp.multiply.outer(live, a)
    return alpha.reshape(-1), beta.reshape(-1), live.reshape(-1)


@partial(jax.jit, static_argnames=("structure", "ranks"))
def update_precisions(rank: RankState, dims, core, core_var, *, structure: str, ranks):
    """The exact block update of every ``q(lambda)`` (one after the other for Tucker,
    each given the others)."""
    d0 = PRIOR[1]
    shapes = _shapes(structure, dims, rank.active)
    if structure == "cp":
        rate = d0 + 0.5 * sum(rank.quad)
        return rank._replace(shape=shapes, rate=(rate,))
    e2 = _core_e2(core).reshape(ranks)
    rates = list(rank.rate)
    K = len(ranks)
    for k in range(K):
        weight = e2
        for i in range(K):
            if i != k:
                lam = shapes[i] / rates[i]
                weight = weight * lam.reshape([-1 if j == i else 1 for j in range(K)])
        core_part = jnp.sum(weight, axis=tuple(i for i in range(K) if i != k)) / core_var
        rates[k] = d0 + 0.5 * rank.quad[k] + 0.5 * core_part
    return rank._replace(shape=shapes, rate=tuple(rates))


@partial(jax.jit, static_argnames=("unit_noise",))
def _tucker_core_and_noise(G, g, means, seconds, core, noise, mode_kls, weights_term, sum_y2, n,
                           priors, hold_noise, from_last, offset, h, alpha, beta, live, *,
                           unit_noise=False):  # fmt: skip
    """:func:`funbat.inference.sweep.core_and_noise` with the core's prior
    ``N(0, s_w^2 / alpha)`` (ARD): precision ``diag(alpha) / s_w^2 + E[tau] T`` and the
    expected KL ``[sum alpha E[w^2] / s_w^2 - P + P log s_w^2 - sum beta - log|Sigma|] / 2``,
    over the live entries ``live`` (P,) (0/1); the others' moments are zero."""
    core_var = priors[0]
    T, b = U.core_from_statistics(G, g, means, seconds, "tucker", from_last)
    pair = live[:, None] * live[None, :]
    # a removed entry's row of T is zero already (its components' moments are); the
    # identity there keeps the factorisation of the live block's precision alone
    prec = pair * (jnp.diag(alpha) / core_var + noise.mean * T) + jnp.diag(1.0 - live)
    L = jnp.linalg.cholesky(prec)
    cov = jax.scipy.linalg.cho_solve((L, True), jnp.eye(b.shape[0]))
    cov = pair * 0.5 * (cov + cov.T)
    core = U.CoreMoments(cov @ (noise.mean * live * b), cov)
    P = jnp.sum(live)
    noise, offset, elbo = noise_and_elbo(T, b, core, noise, mode_kls, weights_term, sum_y2, n,
                                         priors, hold_noise, offset, h, means, from_last,
                                         structure="tucker", unit_noise=unit_noise)  # fmt: skip
    logdet = -2.0 * jnp.sum(jnp.log(jnp.diagonal(L)))
    kl_w = 0.5 * (jnp.sum(live * alpha * _core_e2(core)) / core_var - P
                  + P * jnp.log(core_var) - jnp.sum(live * beta) - logdet)  # fmt: skip
    return core, noise, offset, elbo - kl_w


def _scaled_inputs(G, g, unfolded, s):
    """The messages' inputs in the unit-prior coordinates ``v = u / s``."""
    if unfolded is None:  # CP: Lambda = E[tau] G, eta = E[tau] g
        return G * (s[:, None] * s[None, :]), g * s, None
    Mk, Eww = unfolded
    return G, g, (s[:, None] * Mk, Eww * s[:, None, None, None] * s[None, None, :, None])


def _masked(state, live):
    """A mode's moments with the removed components' (``live`` 0) zeroed."""
    return state._replace(means=state.means * live,
                          seconds=state.seconds * live[:, None] * live[None, :])  # fmt: skip


@partial(jax.jit, static_argnames=("kind",))
def _finish(kind, new, s, live):
    """Quadratic forms of the fresh unit-prior posterior (its record is exact), then the
    map back to ``u = s v``. A removed component gets no message, so its posterior is
    its prior (its KL term zero): its moments are zeroed, and its record, independent
    of the live components', is dropped by :func:`compact`."""
    quad = jnp.diagonal(kind.prior_quadratic(new)) * s**2 * live
    return _masked(kind.transform(new, jnp.diag(s)), live), quad


def mode_update(kind, mode, G, g, tau_mean, unfolded, lam, *, learn, learning, live=None):
    """Exact update of ``q(U^k)`` under the prior ``N(0, K / E[lambda])``: the unit-prior
    update of ``v = u sqrt(E[lambda])`` (messages ``S Lambda S``, ``S eta``, ``S =
    diag(E[lambda]^{-1/2})``) mapped back by ``S``. Returns the state, its KL term (that
    of ``v``, equal to ``KL(q(U) || N(0, K / E[lambda]))``) and its quadratic forms.
    ``live`` (R,): 0 for a removed component (default: all live)."""
    s = lam**-0.5
    live = jnp.ones_like(s) if live is None else live
    G, g, unfolded = _scaled(G, g, unfolded, s)
    new, kl = kind.update(mode, G, g, tau_mean, unfolded, learn=learn, learning=learning)
    new, quad = _finish(kind, new, s, live)
    return new, kl, quad, s


_scaled = jax.jit(_scaled_inputs)


@partial(jax.jit, static_argnames=("structure", "k", "K"))
def _mode_precisions(rank: RankState, *, structure: str, k: int, K: int):
    return precision_means(rank, structure, K)[k]


@partial(jax.jit, static_argnames=("kinds", "structure", "k", "ranks", "unit_noise"))
def _after_mode(kinds, modes, rank: RankState, quad, lam, s, G, g, core, noise, kls,
                weights_term, sum_wy2, n, priors, hold_noise, from_last, learning, offset, h, *,
                structure: str, k: int, ranks, unit_noise: bool):  # fmt: skip
    """After mode ``k``'s update: its records in the rank state, the precisions' update
    (where the traced flag ``learning`` is set), the ELBO's rank terms, then the core and
    the noise. One compiled program per model shape and mode (the flag is traced, not
    static, so the first sweep compiles nothing of its own), so that the glue between
    the blocks costs no compilation of its own."""
    rank = rank._replace(quad=_put(rank.quad, k, quad), used=_put(rank.used, k, lam),
                         scale=_put(rank.scale, k, s))  # fmt: skip
    dims = _dims(kinds, modes)
    learned = update_precisions(rank, dims, core, priors[0], structure=structure, ranks=ranks)
    rank = rank._replace(
        shape=tuple(jnp.where(learning, a, b) for a, b in zip(learned.shape, rank.shape)),
        rate=tuple(jnp.where(learning, a, b) for a, b in zip(learned.rate, rank.rate)),
    )
    terms = rank_terms(rank, dims, structure=structure)
    args = (G, g, modes[k].means, modes[k].seconds, core, noise, sum(kls) - terms,
            weights_term, sum_wy2, n, priors, hold_noise, from_last, offset, h)  # fmt: skip
    if core is None:
        core, noise, offset, elbo = core_and_noise(*args, structure=structure,
                                                   unit_noise=unit_noise)  # fmt: skip
    else:
        alpha, beta, live = _core_prior(rank, ranks)
        core, noise, offset, elbo = _tucker_core_and_noise(*args, alpha, beta, live,
                                                           unit_noise=unit_noise)  # fmt: skip
    return rank, core, noise, offset, elbo


# -- pruning -----------------------------------------------------------------------------


@partial(jax.jit, static_argnames=("structure",))
def data_sums(G, g, means, seconds, from_last, *, structure: str):
    """The fit's data sums by component from the last mode's statistics and moments: CP
    ``T[r, s] = sum_n E[f_nr f_ns]`` (R, R) and ``b[r] = sum_n y_n E[f_nr]`` (R,) (the
    Hadamard sums of :func:`funbat.updates.core_from_statistics` before summing);
    Tucker the core's ``T`` (P, P) and ``b`` (P,)."""
    if structure == "cp":
        return jnp.sum(G * seconds, axis=0), jnp.sum(g * means, axis=0)
    return U.core_from_statistics(G, g, means, seconds, structure, from_last)


def _sq_error_change(T, b, mean, second, keep):
    """The change of ``sum_n E[(y_n - f_n)^2]`` when only the weights ``keep`` (0/1) of
    ``f = sum_p w_p z_p`` stay: ``2 m^T (b - b') - tr(E[w w^T] T) + tr(E[w w^T]' T)``."""
    kept = second * np.outer(keep, keep)
    return -2.0 * mean @ (keep * b) + 2.0 * mean @ b + np.sum(kept * T) - np.sum(second * T)


@jax.jit
def _gamma_kl_terms(shape, rate):  # per component: prune_plan reads each
    return [U.gamma_kl(U.NoiseMoments(a, b), *PRIOR) for a, b in zip(shape, rate)]


def _gamma_kls(rank: RankState):
    return [np.asarray(v) for v in _gamma_kl_terms(rank.shape, rank.rate)]


def prune_plan(structure: str, ranks, core, tau_mean, rank: RankState, sums):
    """The components to keep per mode (index arrays), chosen greedily: a component is
    removed when ``KL(q(lambda_r) || p(lambda_r)) - E[tau] / 2 * (change of the expected
    squared error)`` is positive, a lower bound on the ELBO's rise (the dropped
    components' conditional KL terms, left out of it, are positive). Every pruning thus
    raises the ELBO; the weakest goes first, and one component per mode stays. Only
    live components (``rank.active``) are candidates."""
    T, b = (np.asarray(a) for a in sums)
    tau = float(tau_mean)
    kls = _gamma_kls(rank)
    K = len(ranks)
    alive = [np.asarray(a) > 0.5 for a in _live(rank, ranks)]
    if structure == "cp":
        mean, second = np.ones(ranks[0]), np.ones((ranks[0], ranks[0]))
    else:
        mean = np.asarray(core.mean)
        second = np.asarray(core.cov) + np.outer(mean, mean)
    grid = np.indices(ranks).reshape(K, -1) if structure != "cp" else None

    def weights_kept(alive):
        if structure == "cp":
            return alive[0].astype(float)
        return np.prod([alive[k][grid[k]] for k in range(K)], axis=0).astype(float)

    current = weights_kept(alive)
    while True:
        best, best_gain = None, 0.0
        for k in range(1 if structure == "cp" else K):
            if alive[k].sum() <= 1:
                continue
            for r in np.flatnonzero(alive[k]):
                trial = [a.copy() for a in alive]
                for kk in range(K) if structure == "cp" else [k]:
                    trial[kk][r] = False
                keep = weights_kept(trial)
                d_err = _sq_error_change(T, b, mean, second, keep) - _sq_error_change(
                    T, b, mean, second, current)  # fmt: skip
                gain = float(kls[0 if structure == "cp" else k][r]) - 0.5 * tau * d_err
                if np.isfinite(gain) and gain > best_gain:
                    best, best_gain = (k, r), gain
        if best is None:
            break
        k, r = best
        for kk in range(K) if structure == "cp" else [k]:
            alive[kk][r] = False
        current = weights_kept(alive)
    return [np.flatnonzero(a) for a in alive]


def select_mode(state, keep):
    """``q(U^k)``'s marginal of the components ``keep`` (index array; exact for a
    Gaussian). The selection runs on host arrays: a pruning is rare, and indexing device
    arrays by new index sets would compile a program for each."""
    post = state.posterior
    keep = np.asarray(keep)
    take = lambda a, *index: jnp.asarray(np.asarray(a)[index])  # noqa: E731
    if isinstance(post, ChainPosterior):
        d = post.filtered_means.shape[1] // state.means.shape[1]
        idx = (keep[:, None] * d + np.arange(d)).reshape(-1)
        post = ChainPosterior(take(post.filtered_means, slice(None), idx),
                              take(post.filtered_covs, slice(None), idx[:, None], idx),
                              take(post.smoothed_means, slice(None), idx),
                              take(post.smoothed_covs, slice(None), idx[:, None], idx),
                              post.log_normaliser)  # fmt: skip
    elif isinstance(post, DensePosterior):
        B, G, R = post.white_mean.shape
        n = keep.size
        cov = np.asarray(post.white_cov).reshape(B, G, R, G, R)[:, :, keep][:, :, :, :, keep]
        post = DensePosterior(post.chol, take(post.white_mean, Ellipsis, keep),
                              jnp.asarray(cov.reshape(B, G * n, G * n)),
                              post.log_normaliser)  # fmt: skip
    else:  # pragma: no cover - every kind's record is one of the two
        raise TypeError(f"cannot prune a posterior record of type {type(post).__name__}")
    return state._replace(posterior=post, means=take(state.means, slice(None), keep),
                          seconds=take(state.seconds, slice(None), keep[:, None], keep))  # fmt: skip


def _select_core(core, keeps, ranks):
    K = len(ranks)
    mean, cov = np.asarray(core.mean).reshape(ranks), np.asarray(core.cov).reshape(ranks + ranks)
    for k, keep in enumerate(keeps):
        mean = np.take(mean, keep, axis=k)
        cov = np.take(np.take(cov, keep, axis=k), keep, axis=K + k)
    P = int(np.prod([len(c) for c in keeps]))
    return U.CoreMoments(jnp.asarray(mean.reshape(P)), jnp.asarray(cov.reshape(P, P)))


def _remove(structure: str, modes, core, rank: RankState, keeps):
    """Each mode's ``q`` replaced by its marginal of the components ``keeps`` (index
    arrays per mode; exact for a Gaussian), the core by its marginal of their slices.
    The data sums are kept (selected) only when every dropped component is masked
    already: they then describe the kept ones exactly."""
    ranks = tuple(m.means.shape[1] for m in modes)
    keeps = [np.asarray(kp) for kp in keeps]
    modes = [select_mode(m, kp) for m, kp in zip(modes, keeps)]
    gkeeps = keeps[:1] if structure == "cp" else keeps

    def sel(arrays, ks):
        return tuple(jnp.asarray(np.asarray(a)[kp]) for a, kp in zip(arrays, ks))

    sums = None
    if rank.sums is not None and rank.active is not None:  # exact for masked components
        if structure == "cp":
            idx = keeps[0]
        else:  # the live core entries, in C order
            idx = np.ravel_multi_index(np.meshgrid(*keeps, indexing="ij"), ranks).reshape(-1)
        T, b = (np.asarray(a) for a in rank.sums)
        sums = (jnp.asarray(T[np.ix_(idx, idx)]), jnp.asarray(b[idx]))
    rank = RankState(sel(rank.shape, gkeeps), sel(rank.rate, gkeeps), sel(rank.quad, keeps),
                     sel(rank.used, keeps), sel(rank.scale, keeps), sums,
                     tuple(jnp.ones(len(kp)) for kp in keeps))  # fmt: skip
    if core is not None:
        core = _select_core(core, keeps, ranks)
    return modes, core, rank


@jax.jit
def _masked_core(core, live):
    pair = live[:, None] * live[None, :]
    return U.CoreMoments(core.mean * live, core.cov * pair)


@jax.jit
def _masked_modes(modes, active):
    return tuple(_masked(m, a) for m, a in zip(modes, active))


def deactivate(structure: str, modes, core, rank: RankState, keeps):
    """Mask every live component not in ``keeps`` (index arrays per mode): its moments
    and core slices zeroed, its quadratic form too; the shapes stay (no compilation).
    The live components' ``q`` is unchanged, which is exactly its marginal: a
    component whose moments are zero passes nothing to the others."""
    ranks = tuple(m.means.shape[1] for m in modes)
    active = tuple(jnp.asarray(np.isin(np.arange(R), kp), dtype=jnp.float64)
                   for R, kp in zip(ranks, keeps))  # fmt: skip
    modes = list(_masked_modes(tuple(modes), active))
    if core is not None:
        _, _, live = _core_prior(rank._replace(active=active), ranks)
        core = _masked_core(core, live)
    quad = tuple(q * a for q, a in zip(rank.quad, active))
    return modes, core, rank._replace(quad=quad, sums=None, active=active)


def compact(state: SweepState, *, at_half: bool = False) -> SweepState:
    """The state with the masked components removed (every array at the live ranks);
    itself when none is masked. ``at_half``: only once some mode has lost at least half
    its width (during a fit: each shrink costs a compilation, and masked components
    cost their share of every sweep)."""
    rank = state.rank
    if rank is None or rank.active is None:
        return state
    keeps = [np.flatnonzero(np.asarray(a) > 0.5) for a in rank.active]
    widths = [a.shape[0] for a in rank.active]
    if all(len(kp) == R for kp, R in zip(keeps, widths)):
        return state
    if at_half and not any(2 * len(kp) <= R for kp, R in zip(keeps, widths)):
        return state
    modes, core, rank = _remove("cp" if state.core is None else "tucker", list(state.modes),
                                state.core, rank, keeps)  # fmt: skip
    return state._replace(modes=tuple(modes), core=core, rank=rank)


def prune(structure: str, modes, core, tau_mean, rank: RankState, sums):
    """Remove the components :func:`prune_plan` gives up (:func:`deactivate`); returns
    ``(modes, core, rank, pruned)``, unchanged when none goes."""
    ranks = tuple(m.means.shape[1] for m in modes)
    if sums is None:
        return modes, core, rank, False
    keeps = prune_plan(structure, ranks, core, tau_mean, rank, sums)
    if all(len(kp) == int(np.sum(np.asarray(a))) for kp, a in zip(keeps, _live(rank, ranks))):
        return modes, core, rank, False
    return (*deactivate(structure, modes, core, rank, keeps), True)


@jax.jit
def _mean_second(seconds, n_valid):
    """Mean over the real coordinates of each component's ``E[u_r^2]`` (R,)."""
    diag = jnp.diagonal(seconds, axis1=1, axis2=2)
    valid = (jnp.arange(diag.shape[0]) < n_valid)[:, None]
    return jnp.sum(jnp.where(valid, diag, 0.0), axis=0) / n_valid


def component_power(structure: str, modes, core):
    """Each component's power per mode, (R_k,) each: CP ``prod_k mean E[(u^k_r)^2]``
    (its mean square over the grid of coordinates); Tucker, for component ``r`` of mode
    ``k``, the mean square of what passes through the core's slice ``r`` of mode ``k``
    (cross terms left out)."""
    ms = [np.asarray(_mean_second(m.seconds, m.n_valid)) for m in modes]
    if structure == "cp":
        return [np.prod(ms, axis=0)] * len(modes)
    ranks = tuple(m.shape[0] for m in ms)
    K = len(ranks)
    full = (np.asarray(core.cov).diagonal() + np.asarray(core.mean) ** 2).reshape(ranks)
    for i in range(K):
        full = full * ms[i].reshape([-1 if j == i else 1 for j in range(K)])
    return [np.sum(full, axis=tuple(i for i in range(K) if i != k)) for k in range(K)]


def weakest(structure: str, modes, core, active=None):
    """The live components to keep if the weakest live one (least power relative to its
    mode's strongest, :func:`component_power`) went, or None when every mode has one
    left. ``active``: per mode (R_k,) 0/1 masks (default: all live)."""
    power = component_power(structure, modes, core)
    if active is None:
        alive = [np.ones(p.size, bool) for p in power]
    else:
        alive = [np.asarray(a) > 0.5 for a in active]
    best, best_rel = None, np.inf
    for k, p in enumerate(power[:1] if structure == "cp" else power):
        live = np.flatnonzero(alive[k])
        if live.size < 2:
            continue
        r = int(live[np.argmin(p[live])])
        rel = p[r] / max(float(np.max(p[live])), 1e-300)
        if rel < best_rel:
            best, best_rel = (k, r), rel
    if best is None:
        return None
    k, r = best
    keeps = [np.flatnonzero(a) for a in alive]
    for kk in range(len(modes)) if structure == "cp" else [k]:
        keeps[kk] = keeps[kk][keeps[kk] != r]
    return keeps


# -- the moves with the learned prior --------------------------------------------------


def _rescale(kinds, modes, rank: RankState, cs):
    """Every mode's components scaled by ``cs[k]`` (R_k,), the records followed."""
    modes = [kind.transform(m, jnp.diag(c)) for kind, m, c in zip(kinds, modes, cs)]
    quad = tuple(q * c**2 for q, c in zip(rank.quad, cs))
    scale = tuple(s * c for s, c in zip(rank.scale, cs))
    return modes, rank._replace(quad=quad, scale=scale)


@partial(jax.jit, static_argnames=("kinds", "ranks"))
def _balance(kinds, modes, core, firsts, ranks, rank: RankState):
    """The warm-up's one balance (:func:`funbat.inference.moves.balance_tucker`,
    :func:`~funbat.inference.moves.balance_cp`), with the quadratic forms and record
    scales carried along."""
    rms = [MV.component_rms(m.means, m.n_valid) for m in modes]
    if core is None:
        log_rms = jnp.log(jnp.stack(rms))
        cs = list(jnp.exp(jnp.mean(log_rms, axis=0) - log_rms))
    else:
        cs = [1.0 / r for r in rms]
        for c, first, R in zip(cs, firsts, ranks):
            core = MV.transform_core(core, jnp.diag(c), first, rank=R)
    modes, rank = _rescale(kinds, modes, rank, cs)
    return modes, core, rank


@partial(jax.jit, static_argnames=("kinds",))
def _cp_move(kinds, modes, kls, rank: RankState):
    """The CP move (:func:`funbat.inference.moves.cp_scales`) with each component's prior
    scaled by its precision: the quadratic forms enter as ``E[lambda_r] Q_k[r, r]``. Each
    KL term moves by its exact change, measured against the precision it refers to."""
    dims = _dims(kinds, modes)
    lam = rank.shape[0] / rank.rate[0]
    live = rank.active[0]
    # a removed component's forms are zero; those of D_k make its optimal scale one
    qd = jnp.stack([jnp.where(live > 0.5, lam * q, D) for q, D in zip(rank.quad, dims)])
    c, _ = MV.cp_scales(qd, jnp.stack(dims))
    c = jnp.where(live > 0.5, c, 1.0)
    kls = [kl + 0.5 * jnp.sum((ck**2 - 1.0) * used * q) - D * jnp.sum(jnp.log(ck))
           for kl, ck, used, q, D in zip(kls, c, rank.used, rank.quad, dims)]  # fmt: skip
    modes, rank = _rescale(kinds, modes, rank, list(c))
    return modes, kls, rank


# -- the sweep ---------------------------------------------------------------------------


#: Sweeps between two trial prunings (:func:`sweep`), counted from the warm-up's end.
TRIAL_EVERY = 4


def sweep(spec: ModelSpec, entries, state: SweepState, *, warm: bool = False,
          timer=None) -> SweepState:  # fmt: skip
    """One sweep of :func:`funbat.inference.sweep.sweep` that learns the rank.

    After the warm-up (which holds the precisions at 1, the fixed-rank prior), the
    sweep starts by pruning, while the data sums describe the current ``q`` exactly:
    first every component whose removal provably raises the ELBO (:func:`prune`);
    else, every :data:`TRIAL_EVERY` sweeps, a trial: the weakest component
    (:func:`weakest`) is masked and a whole sweep run on the rest, which is kept if
    its ELBO beats that of the same sweep on the full model. ARD alone
    shrinks a redundant component ever more slowly; the trial settles it by the ELBO.
    Removals mask (:func:`deactivate`); the arrays shrink first, with the data sums,
    once a mode has lost half its width (:func:`compact`). Then :func:`_sweep_from`.
    The ELBO is computed after every mode has been updated, so a pruning's stale terms
    never reach the history, which never decreases.
    """
    if state.rank.active is None:  # a state from outside a fit: every component live
        ranks = tuple(m.means.shape[1] for m in state.modes)
        state = state._replace(rank=state.rank._replace(active=_live(state.rank, ranks)))
    if warm or state.sweeps < 1 or state.rank.sums is None:
        return _sweep_from(spec, entries, state, warm=warm, timer=timer)
    state = compact(state, at_half=True)  # sums kept: they describe the live components
    structure = spec.structure
    modes, core, rank, pruned = prune(structure, list(state.modes), state.core,
                                      state.noise.mean, state.rank, state.rank.sums)  # fmt: skip
    if pruned:
        state = state._replace(modes=tuple(modes), core=core, rank=rank)
    elif (state.sweeps - warmup_sweeps(spec)) % TRIAL_EVERY == 0:
        keeps = weakest(structure, state.modes, state.core, state.rank.active)
        if keeps is not None:
            modes, core, rank = deactivate(structure, list(state.modes), state.core,
                                            state.rank, keeps)  # fmt: skip
            trial = state._replace(modes=tuple(modes), core=core, rank=rank)
            trial = _sweep_from(spec, entries, trial, warm=False, timer=timer)
            full = _sweep_from(spec, entries, state, warm=False, timer=timer)
            # against the full model's sweep, not its last ELBO: while the fit still
            # climbs, one sweep's gain could hide the loss of a real component
            return trial if float(trial.elbo) > float(full.elbo) else full
    return _sweep_from(spec, entries, state, warm=warm, timer=timer)


def _sweep_from(spec: ModelSpec, entries, state: SweepState, *, warm: bool, timer):
    """The sweep proper: the likelihood's update (after the warm-up), the warm-up's
    balance, CP's move, then per mode: its update under the prior scaled by
    ``E[lambda]``, the precisions' update (after the warm-up), the core (its prior
    scaled by the precisions, Tucker) and the noise. Tucker's transformation move is
    not made (its objective assumes the isotropic core prior); CP's is, with the
    precisions in its objective."""
    spec = spec._replace(ranks=tuple(m.means.shape[1] for m in state.modes))
    structure, priors = spec.structure, _priors(spec)
    lik, weights = state.likelihood, state.weights
    rank = state.rank
    modes, kls = list(state.modes), list(state.mode_kls)
    core, noise, offset = state.core, state.noise, state.offset
    learning = state.sweeps >= 1
    if not warm:
        lik, weights = _timed(
            timer, "likelihood", spec.likelihood.update, lik, weights, entries,
            *_moments(state), state.core, state.noise.mean, structure=structure,
        )  # fmt: skip
    orders = _orders(spec)
    if warm and 0 < state.sweeps == warmup_sweeps(spec) - 1:
        modes, core, rank = _balance(spec.kinds, modes, core, tuple(o[0] for o in orders),
                                     spec.ranks, rank)  # fmt: skip
    if spec.transform_moves and not warm and core is None:
        modes, kls, rank = _cp_move(spec.kinds, modes, kls, rank)
    K = len(spec.kinds)
    for k, kind in enumerate(spec.kinds):
        G, g, h = _timed(timer, "statistics", grouped_statistics, entries, weights, modes, k,
                         structure, offset)  # fmt: skip
        used = None if offset is None else offset.mean  # the intercept g is shifted by
        unfolded = None if core is None else _unfold_core(core, spec.ranks[k], orders[k][0])
        lam = _mode_precisions(rank, structure=structure, k=k, K=K)
        modes[k], kls[k], quad, s = _timed(
            timer, "mode", mode_update, kind, modes[k], G, g, noise.mean, unfolded, lam,
            learn=spec.learn_hyperparameters, learning=not warm, live=rank.active[k],
        )  # fmt: skip
        rank, core, noise, offset, elbo = _timed(
            timer, "core", _after_mode, spec.kinds, tuple(modes), rank, quad, lam, s, G, g,
            core, noise, tuple(kls), weights.term, weights.sum_wy2, entries.n, priors,
            jnp.asarray(warm), orders[k][1], jnp.asarray(learning), offset, h,
            structure=structure, k=k, ranks=spec.ranks, unit_noise=spec.likelihood.unit_noise,
        )  # fmt: skip
    if offset is not None:  # the pruning's data sums at the intercept the sweep ends with
        g = g + (used - offset.mean) * h[:, :-2]
    sums = data_sums(G, g, modes[-1].means, modes[-1].seconds, orders[-1][1], structure=structure)
    return SweepState(tuple(modes), core, noise, lik, weights, tuple(kls), elbo,
                      state.sweeps + 1, rank._replace(sums=sums), offset=offset)  # fmt: skip


def _put(items: tuple, k: int, value) -> tuple:
    return items[:k] + (value,) + items[k + 1 :]


def unit_prior_state(kind, state, rank: RankState | None, k: int):
    """Mode ``k``'s state with its record in the unit-prior coordinates and the scale
    back (prediction: the record's prior is the kernel's), or ``(state, None)``."""
    if rank is None:
        return state, None
    s = rank.scale[k]
    return kind.transform(state, jnp.diag(1.0 / s)), s

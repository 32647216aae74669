"""The sweeps: pure functions from one :class:`~funbat.inference.state.SweepState` to
the next (``docs/theory.md`` section 3).

A sweep updates the likelihood's own variables (after the warm-up), then each mode in
turn from its grouped statistics, refreshing the core and the noise after every mode.
Every step is the exact optimum of the ELBO in its block (or a search that includes
the current value), so the ELBO never decreases past the warm-up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from .. import updates as U
from ..modes import bucket
from . import moves as MV
from .state import ModelSpec, SweepState

__all__ = ["core_and_noise", "grouped_statistics", "initial_state", "learns_core_variance",
           "noise_and_elbo", "run", "sweep", "warmup_sweeps"]  # fmt: skip

_f64 = partial(jnp.asarray, dtype=jnp.float64)  # strong dtypes: no retracing later


def _orders(spec: ModelSpec):
    """Gather indices between the core's C order and each mode's layouts."""
    return _core_orders(spec.structure, tuple(spec.ranks))


@lru_cache(maxsize=64)
def _core_orders(structure: str, ranks: tuple[int, ...]):
    # built once per model shape, not once per sweep (device arrays of int32)
    if structure == "cp":
        return [(None, None)] * len(ranks)
    return [tuple(map(jnp.asarray, U.core_orders(ranks, k))) for k in range(len(ranks))]


@partial(jax.jit, static_argnames=("structure", "unit_noise"))
def core_and_noise(G, g, means, seconds, core, noise, mode_kls, weights_term, sum_y2, n,
                   priors, hold_noise, from_last, offset=None, h=None, *, structure,
                   unit_noise=False):  # fmt: skip
    """Core, then the intercept (if learned), then noise, then the ELBO, from one mode's
    statistics and new moments: ``(core, noise, offset, elbo)``.

    Run after every mode update: it needs no pass over the entries, and refreshing the
    core often speeds up the sweeps' convergence (the core couples all modes).
    ``weights_term`` is the likelihood's part of the ELBO; ``priors`` is
    ``(core prior variance, a0, b0)``; ``from_last`` orders a Tucker core's sums
    (:func:`funbat.updates.core_orders`). ``unit_noise``: the noise precision stays 1
    and the Gaussian part of the ELBO is ``-E[sum of squared errors] / 2``, the rest
    being the likelihood's ``weights_term``
    (:attr:`funbat.likelihoods.Likelihood.unit_noise`). ``offset``: ``q(b)`` of a
    learned intercept, which ``g`` is shifted by already (:func:`grouped_statistics`),
    and ``h`` its sums; None: no intercept.
    """
    core_var = priors[0]
    T, b = U.core_from_statistics(G, g, means, seconds, structure, from_last)
    if structure != "cp":
        core = U.core_update(T, b, noise.mean, core_var)
    noise, offset, elbo = noise_and_elbo(T, b, core, noise, mode_kls, weights_term, sum_y2,
                                         n, priors, hold_noise, offset, h, means, from_last,
                                         structure=structure, unit_noise=unit_noise)  # fmt: skip
    if core is not None:
        elbo = elbo - U.gaussian_kl_to_isotropic(core, core_var)
    return core, noise, offset, elbo


def noise_and_elbo(T, b, core, noise, mode_kls, weights_term, sum_y2, n, priors, hold_noise,
                   offset, h, means, from_last, *, structure, unit_noise):  # fmt: skip
    """After the core's update (``T``, ``b`` its data sums,
    :func:`funbat.updates.core_from_statistics`): the intercept's update (``offset``
    not None), the noise's, and the ELBO less the core's KL term: ``(noise, offset,
    elbo)``. The warm-up (``hold_noise``) holds the intercept with the noise."""
    _, a0, b0 = priors
    offset_kl = 0.0
    if offset is not None:
        new, lin = U.offset_update(h, means, core, noise.mean, structure, from_last)
        new = _held(hold_noise, offset, new)
        b = b + (offset.mean - new.mean) * lin  # the data sums at the new intercept
        offset, sum_y2 = new, U.offset_sq_sum(new, h, sum_y2)
        offset_kl = U.offset_kl(offset)
    esq = U.expected_sq_error(sum_y2, T, b, core)
    if unit_noise:  # tau = 1 is part of the model, not a variable
        elbo = -0.5 * esq - mode_kls
    else:
        noise = _held(hold_noise, noise, U.noise_update(n, esq, a0, b0))
        elbo = U.expected_log_likelihood(n, esq, noise) - U.gamma_kl(noise, a0, b0) - mode_kls
    return noise, offset, elbo + weights_term - offset_kl


def _held(hold, old, new):
    """``old`` where the traced flag ``hold`` is set (the warm-up), else ``new``."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(hold, a, b), old, new)


def grouped_statistics(entries, weights, modes, k: int, structure: str, offset=None):
    """Mode ``k``'s grouped statistics ``(G, g, h)`` from the backend
    (:meth:`funbat.backends.EntryBackend.statistics`) under the current moments; with
    a learned intercept ``offset``, ``g`` is that of the targets less ``E[b]`` and
    ``h`` the intercept's sums, else ``h`` is None."""
    means, seconds = tuple(m.means for m in modes), tuple(m.seconds for m in modes)
    out = entries.statistics(weights.weights, means, seconds, mode=k,
                             n_groups=modes[k].coords.shape[0], structure=structure,
                             targets=weights.targets, offset_sums=offset is not None)  # fmt: skip
    if offset is None:
        return (*out, None)
    G, g, h = out
    return G, _shifted(g, h, offset.mean), h


@jax.jit
def _shifted(g, h, b):
    return g - b * h[:, :-2]


def warmup_sweeps(spec: ModelSpec) -> int:
    """Warm-up sweeps of a fit: ``min(spec.warmup, max_iter // 2)``."""
    return min(spec.warmup, int(spec.max_iter) // 2)


def _priors(spec: ModelSpec):
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)  # float32 outside a float64 context
    # "auto" starts at 1 (a CP model has no core and ignores it)
    auto = spec.core_prior_variance == "auto"
    core_var = 1.0 if auto else float(spec.core_prior_variance)
    return _prior_arrays(core_var, *map(float, spec.noise_prior), dtype)


def learns_core_variance(spec: ModelSpec) -> bool:
    """Whether the fit learns the prior variance of a Tucker core's entries
    (``core_prior_variance="auto"``; it starts at 1)."""
    return spec.core_prior_variance == "auto" and spec.structure != "cp"


@jax.jit
def _core_variance_step(core, core_var, elbo):
    """The prior variance of the core's entries that maximises the ELBO given ``q(W)``,
    ``E[|W|^2] / P``, and the ELBO with it: only the core's KL term depends on it, and
    its change needs no determinant."""
    P = core.mean.shape[0]
    second = jnp.trace(core.cov) + core.mean @ core.mean
    new = jnp.maximum(second / P, 1e-12)
    gain = 0.5 * (second / core_var - second / new + P * jnp.log(core_var / new))
    return new, elbo + gain


@lru_cache(maxsize=64)
def _prior_arrays(core_var: float, a0: float, b0: float, dtype):
    # device scalars built once per model, not once per sweep
    return tuple(jnp.asarray(v, dtype=dtype) for v in (core_var, a0, b0))


def _moments(state: SweepState):
    return tuple(m.means for m in state.modes), tuple(m.seconds for m in state.modes)


def initial_state(spec: ModelSpec, entries, kernels, rng: np.random.Generator) -> SweepState:
    """The starting posterior: SVD start of every mode, the core and the noise fitted to
    it (least squares with the prior), so the first messages are informative.

    ``kernels`` : (K,) prior kernels in scaled units; ``rng`` : the fit's generator.
    """
    encs = entries.encodings
    sizes = [e.unique.shape[0] for e in encs]
    starts = entries.svd_init(sizes, spec.ranks, rng)
    # one padded length for all chain modes: their updates share one compilation
    lengths = [kind.chain_length(enc) for kind, enc in zip(spec.kinds, encs)]
    chain = bucket(max([n for n in lengths if n is not None] or [1]))
    modes = tuple(
        kind.init(enc, R, kern, start, chain)
        for kind, enc, R, kern, start in zip(spec.kinds, encs, spec.ranks, kernels, starts)
    )
    P = int(np.prod(spec.ranks))
    core = None
    if spec.structure != "cp":
        core = U.CoreMoments(jnp.asarray(rng.normal(size=P) / math.sqrt(P)), jnp.zeros((P, P)))
    lik = spec.likelihood
    # E[tau] = 10: start confident; a unit-noise likelihood keeps E[tau] = 1 throughout
    noise = U.NoiseMoments(_f64(1e6), _f64(1e6)) if lik.unit_noise else U.NoiseMoments(
        _f64(1.0), _f64(0.1))  # fmt: skip
    kls = (jnp.zeros(()),) * len(modes)
    lik_state = lik.init(encs)
    means, seconds = tuple(m.means for m in modes), tuple(m.seconds for m in modes)
    lik_state, weights = lik.initial_weights(lik_state, entries, means, seconds, core,
                                             structure=spec.structure)  # fmt: skip
    state = SweepState(modes, core, noise, lik_state, weights, kls, jnp.zeros(()), 0)
    if spec.rank_learning:  # precisions of mean 1: the fixed-rank prior until learned
        from .rank import init_rank

        state = state._replace(rank=init_rank(spec, modes))
    offset = None
    if spec.learn_intercept:  # at the targets' mean; its variance about the posterior's
        offset = U.OffsetMoments(_f64(0.0), _f64(1.0 / (entries.n + 1.0)))
    G, g, h = grouped_statistics(entries, weights, modes, 0, spec.structure, offset)
    core, noise, offset, elbo = core_and_noise(
        G, g, means[0], seconds[0], core, noise, sum(kls), weights.term, weights.sum_wy2,
        entries.n, _priors(spec), jnp.asarray(warmup_sweeps(spec) > 0), _orders(spec)[0][1],
        offset, h, structure=spec.structure, unit_noise=lik.unit_noise,
    )  # fmt: skip
    return state._replace(core=core, noise=noise, elbo=elbo, offset=offset)


def _timed(timer, stage: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, its time reported to ``timer(stage, seconds)`` if given."""
    if timer is None:
        return fn(*args, **kwargs)
    import time

    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    timer(stage, time.perf_counter() - t0)
    return out


def sweep(spec: ModelSpec, entries, state: SweepState, *, warm: bool = False,
          timer: Callable[[str, float], None] | None = None) -> SweepState:  # fmt: skip
    """One sweep over the likelihood and every mode.

    ``warm``: a warm-up sweep holds the noise precision, the likelihood's variables and
    the lengthscales at their current values, so the functions take up the signal first
    (from a weak start, learning them at once can settle in the all-noise fixed point,
    core ~ 0 and noise = var(y), which message passing never leaves). The last warm-up
    sweep starts by rescaling the functions against the core to a balanced start
    (:func:`funbat.inference.moves.balance_tucker`); the transformation moves wait for
    the end of the warm-up.
    ``timer`` (optional) receives each stage's time: ``"likelihood"``, ``"statistics"``,
    ``"mode"``, ``"core"``, ``"moves"``.
    A state with a ``rank`` record learns the rank (:func:`funbat.inference.rank.sweep`).
    """
    if state.rank is not None:
        from .rank import sweep as rank_sweep

        return rank_sweep(spec, entries, state, warm=warm, timer=timer)
    structure, orders, priors = spec.structure, _orders(spec), _priors(spec)
    if state.core_var is not None:
        priors = (state.core_var, *priors[1:])
    learn_core_var = learns_core_variance(spec) and not warm
    lik, weights = state.likelihood, state.weights
    if not warm:  # the entries' weights from the last sweep's posterior
        lik, weights = _timed(
            timer, "likelihood", spec.likelihood.update, lik, weights, entries,
            *_moments(state), state.core, state.noise.mean, structure=structure,
        )  # fmt: skip
    modes, kls = list(state.modes), list(state.mode_kls)
    core, noise, offset = state.core, state.noise, state.offset
    if warm and 0 < state.sweeps == warmup_sweeps(spec) - 1:  # balanced before learning
        # (funbat.inference.moves.balance_tucker); once: balancing every warm-up sweep
        # led us_temp's fits to a worse optimum (ELBO 22,903 against 24,515 at 50 sweeps)
        balanced, core = _timed(timer, "moves", _balance, spec.kinds, tuple(modes), core,
                                tuple(o[0] for o in orders), ranks=tuple(spec.ranks))  # fmt: skip
        modes = list(balanced)
    # the moves read each mode's posterior record, which a balance leaves transformed
    # (funbat.kalman.transform_chain) until the mode's next update: none in the warm-up
    moving = spec.transform_moves and not warm
    if moving and core is None:
        modes, kls = map(list, _timed(timer, "moves", _cp_move, spec.kinds, tuple(modes),
                                      tuple(kls)))  # fmt: skip
    for k, kind in enumerate(spec.kinds):
        if moving and core is not None:
            core = _timed(timer, "moves", _tucker_move, kind, modes[k], core, orders[k][0],
                          priors[0], rank=spec.ranks[k])  # fmt: skip
        G, g, h = _timed(timer, "statistics", grouped_statistics, entries, weights, modes, k,
                         structure, offset)  # fmt: skip
        unfolded = None if core is None else _unfold_core(core, spec.ranks[k], orders[k][0])
        modes[k], kls[k] = _timed(
            timer, "mode", kind.update, modes[k], G, g, noise.mean, unfolded,
            learn=spec.learn_hyperparameters, learning=not warm,
        )  # fmt: skip
        core, noise, offset, elbo = _timed(
            timer, "core", core_and_noise, G, g, modes[k].means, modes[k].seconds, core, noise,
            sum(kls), weights.term, weights.sum_wy2, entries.n, priors, jnp.asarray(warm),
            orders[k][1], offset, h, structure=structure, unit_noise=spec.likelihood.unit_noise,
        )  # fmt: skip
        if learn_core_var:
            core_var, elbo = _timed(timer, "core", _core_variance_step, core, priors[0], elbo)
            priors = (core_var, *priors[1:])
    return SweepState(tuple(modes), core, noise, lik, weights, tuple(kls), elbo,
                      state.sweeps + 1,
                      core_var=priors[0] if learns_core_variance(spec) else None,
                      offset=offset)  # fmt: skip


@partial(jax.jit, static_argnames=("kinds", "ranks"))
def _balance(kinds, modes, core, firsts, ranks):
    if core is None:
        return MV.balance_cp(kinds, modes), None
    return MV.balance_tucker(kinds, modes, core, firsts, ranks)


_unfold_core = jax.jit(U.unfold_core, static_argnames=("rank",))


@partial(jax.jit, static_argnames=("kind", "rank"))
def _tucker_move(kind, mode, core, first, core_var, rank: int):
    """The core after mode ``k``'s transformation move; the mode's own transformed
    ``q`` is not kept, because the mode's update, which comes next, replaces it (and
    raises the ELBO at least as much as keeping it would)."""
    P = core.mean.shape[0]
    M = MV.core_mode_second_moment(core, first, rank)
    T, _ = MV.tucker_transform(kind.prior_quadratic(mode), M, kind.dimension(mode),
                               P // rank, core_var)  # fmt: skip
    return MV.transform_core(core, T, first, rank=rank)


def _cp_move(kinds, modes, kls):
    """Every mode rescaled by the CP move; each mode's KL term moves by its exact change
    (its message-based formula no longer applies until the mode's next update)."""
    Qs = [jax.block_until_ready(kind.prior_quadratic(m)) for kind, m in zip(kinds, modes)]
    return _cp_rescale(kinds, tuple(modes), tuple(kls), tuple(Qs))


@partial(jax.jit, static_argnames=("kinds",))
def _cp_rescale(kinds, modes, kls, Qs):
    # each mode's quadratic forms come from its own computation: one chain at a time
    dims = jnp.stack([jnp.asarray(kind.dimension(m), dtype=jnp.float64)
                      for kind, m in zip(kinds, modes)])  # fmt: skip
    qdiag = jnp.stack([jnp.diagonal(Q) for Q in Qs])
    c, _ = MV.cp_scales(qdiag, dims)
    new_modes, new_kls = [], []
    for kind, m, kl, Q, ck, D in zip(kinds, modes, kls, Qs, c, dims):
        new_modes.append(kind.transform(m, jnp.diag(ck)))
        change = 0.5 * jnp.sum((ck**2 - 1.0) * jnp.diagonal(Q)) - D * jnp.sum(jnp.log(ck))
        new_kls.append(kl + change)
    return tuple(new_modes), tuple(new_kls)


def run(spec: ModelSpec, entries, state: SweepState, *,
        callback: Callable[[int, float], None] | None = None,
        timer: Callable[[str, float], None] | None = None):  # fmt: skip
    """Sweeps until the ELBO converges or ``spec.max_iter`` sweeps are done.

    The first :func:`warmup_sweeps` sweeps are warm-up sweeps (see :func:`sweep`); convergence is checked after them. ``callback(sweep, elbo)`` runs
    after each sweep. Returns the final state, the ELBO history (list of floats) and
    whether it converged.
    """
    warmup = warmup_sweeps(spec)
    history: list[float] = []
    for it in range(int(spec.max_iter)):
        state = sweep(spec, entries, state, warm=it < warmup, timer=timer)
        elbo = float(state.elbo)
        if not np.isfinite(elbo):
            raise FloatingPointError(
                f"the ELBO became {elbo} at sweep {it + 1}; try a smaller rank or fixed "
                "lengthscales (learn_hyperparameters=False)"
            )
        history.append(elbo)
        if callback is not None:
            callback(it + 1, elbo)
        if it > warmup and abs(history[-1] - history[-2]) <= spec.tol * abs(history[-1]):
            return state, history, True
    return state, history, False

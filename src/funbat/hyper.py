"""Kernel hyperparameters by ascent on the chain's log normaliser.

With mode ``k``'s messages fixed, the ELBO as a function of its kernel is
``sum_j log Z_j(theta) + const`` (``docs/theory.md`` section 3), so any step that
raises the log normaliser raises the ELBO: coordinate ascent. Each sweep tries a few
log-lengthscales around the current one, ``theta + step * {0, +-1/4, +-1}``, with one
forward Kalman pass each (run side by side with ``vmap``: on a CPU a batch of five
small chains costs about twice one), keeps the best, the current value included, so
the ELBO never decreases, and runs the backward (RTS) pass for that one only. The step grows when the search
goes to the end of its range and shrinks when it stays near the current value. For a
sum of kernel parts (:mod:`funbat.kernel_parts`) the same moves are tried in the
log-variance of the learned part with the lengthscale held, nine candidates in all: the
variance is a kernel hyperparameter like the lengthscale, so the same argument keeps
the ELBO monotone. A period written with ``learn_period=True`` gets four more, in
log-period, with steps scaled down by ``period / (pi J)`` (``J`` harmonics, the data's
range being 1): a relative change ``delta`` of the period turns the ``J``-th harmonic
by ``2 pi J delta / period`` radians over the range, so this scale makes the moves
shift the season's phase by about a radian at the full step.

The search uses no gradient: ``jax.grad`` of the filter (to choose a direction) costs
more in its reverse pass through the scan than all the candidates together, and
triples the compilation time, for no better fit.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from .kalman import ChainPosterior, filter_chain, message_factors, rts_smooth
from .kernel_parts import learns_period, learns_variance, with_lengthscale
from .kernels import Matern

__all__ = [
    "ascend_log_normaliser",
    "lengthscale_search",
    "search_candidates",
    "search_outcome",
    "smooth_with_lengthscale_search",
    "with_log_hyper",
]

#: Fractions of the current step tried around the current value (index 0 keeps it).
_FRACTIONS = (0.0, -1.0, -0.25, 0.25, 1.0)


#: Bounds of the log-variance of a sum kernel's learned part (relative to the other
#: parts', whose variances are fixed; the core carries the overall scale).
LOG_VARIANCE_BOUNDS = (math.log(1e-8), math.log(1e4))

#: Bounds of a learned log-period (scaled units: the training range is 1).
LOG_PERIOD_BOUNDS = (math.log(1e-4), math.log(10.0))


#: Fractions of the step tried along the gradient's sign by :func:`ascend_log_normaliser`.
_GRAD_FRACTIONS = jnp.array([0.0, 0.25, 0.5, 1.0, 2.0])


def ascend_log_normaliser(objective, posterior_fn, get_logz, theta, step, log_bounds):
    """One gradient-guided line search on log-hyperparameters ``theta`` (scalar or (D,)).

    Used by the dense GP of a spatial mode (:mod:`funbat.dense`), whose lengthscales are
    a vector: candidates move each coordinate of ``theta`` by ``step * fraction`` in the
    direction of its gradient's sign (``jax.grad`` of ``objective``); the candidates'
    posteriors are computed side by side (``vmap``) and the best ``log Z`` wins, the
    current value included, so the ELBO never decreases.

    Parameters
    ----------
    objective : ``theta -> log Z`` (differentiated).
    posterior_fn : ``theta -> posterior`` (any pytree); ``get_logz(posterior) -> log Z``.
    theta : current log-hyperparameters; step : scalar step length.
    log_bounds : (2,) lower and upper bound of each coordinate of ``theta``.

    Returns
    -------
    The best ``theta``, its posterior, and the next step.
    """
    grad = jax.grad(objective)(theta)
    frac = _GRAD_FRACTIONS.reshape((-1,) + (1,) * jnp.ndim(theta))
    cands = jnp.clip(theta + jnp.sign(grad) * step * frac, log_bounds[0], log_bounds[1])
    cands = cands.at[0].set(theta)
    posts = jax.vmap(posterior_fn)(cands)
    logzs = get_logz(posts)
    best = jnp.argmax(jnp.where(jnp.isfinite(logzs), logzs, -jnp.inf))
    post = jax.tree_util.tree_map(lambda x: x[best], posts)
    moved = jnp.max(jnp.abs(cands[best] - theta))
    next_step = jnp.where(best == 0, step * 0.25, jnp.maximum(2.0 * moved, step * 0.5))
    next_step = jnp.clip(next_step, 1e-3, 2.0)
    return cands[best], post, next_step


def smooth_with_lengthscale_search(
    kernel: Matern, coords, Lams, etas, step, log_bounds, n_valid=None
) -> tuple[Matern, ChainPosterior, jax.Array]:
    """One line search on ``log(lengthscale)``, then the smoothed chain.

    Parameters
    ----------
    kernel : Matern, the current kernel of the mode.
    coords : (I,) sorted coordinates; Lams (I, R, R), etas (I, R): the mode's messages.
    step : scalar, current step length in log-lengthscale.
    log_bounds : (2,) lower and upper bound of ``log(lengthscale)``.
    n_valid : number of real coordinates (the rest pad), see :func:`funbat.kalman.filter_chain`.

    Returns
    -------
    The kernel with the best lengthscale found, its smoothed chain, and the next step.
    """
    factors = message_factors(Lams)
    return lengthscale_search(
        kernel, step, log_bounds,
        lambda k: filter_chain(k, coords, Lams, etas, factors, n_valid),
        lambda k, filtered, logZ: rts_smooth(k, coords, filtered, logZ, n_valid),
    )  # fmt: skip


def with_log_hyper(kernel, theta):
    """``kernel`` with ``theta = (log lengthscale[, log variance][, log period])`` (D,)
    set; which coordinates there are follows from the kernel (:func:`search_candidates`)."""
    kernel = with_lengthscale(kernel, jnp.exp(theta[0]))
    i = 1
    if learns_variance(kernel):
        kernel, i = kernel.with_variance(jnp.exp(theta[i])), i + 1
    if learns_period(kernel):
        kernel = kernel.with_period(jnp.exp(theta[i]))
    return kernel


def search_candidates(kernel, step, log_bounds):
    """The current ``theta`` (D,) and the candidates (C, D), row 0 the current one: the
    line in log-lengthscale and, for each further hyperparameter the kernel learns (its
    learned part's variance, :func:`funbat.kernel_parts.learns_variance`; a period,
    :func:`funbat.kernel_parts.learns_period`), the same moves in it with the others
    held (a coordinate search, one step length; a period's moves scaled as the module
    docstring says)."""
    moves = step * jnp.array(_FRACTIONS)
    coords = _coordinates(kernel)
    theta = jnp.stack([c[0] for c in coords])
    bounds = [log_bounds if b is None else b for _, _, b in coords]
    lo = jnp.stack([jnp.asarray(b[0], float) for b in bounds])
    hi = jnp.stack([jnp.asarray(b[1], float) for b in bounds])
    D = len(coords)
    rows = [jnp.zeros((1, D))]
    for i, (_, scale, _) in enumerate(coords):
        rows.append(jnp.zeros((len(_FRACTIONS) - 1, D)).at[:, i].set(scale * moves[1:]))
    cands = jnp.clip(theta + jnp.concatenate(rows), lo, hi)
    return theta, cands.at[0].set(theta)


def _coordinates(kernel):
    """``(value, move scale, bounds)`` of each log-hyperparameter the search learns (the
    lengthscale's bounds, None here, are the caller's)."""
    coords = [(jnp.log(kernel.lengthscale), 1.0, None)]
    if learns_variance(kernel):
        coords.append((jnp.log(kernel.variance), 1.0, LOG_VARIANCE_BOUNDS))
    if learns_period(kernel):
        scale = kernel.period / (jnp.pi * max(kernel.n_harmonics, 1))
        coords.append((jnp.log(kernel.period), scale, LOG_PERIOD_BOUNDS))
    return coords


def lengthscale_search(kernel, step, log_bounds, filter_fn, smoother_fn):
    """The search of :func:`smooth_with_lengthscale_search` with any chain filter and
    smoother (a chain solver's, :mod:`funbat.solvers`).

    ``filter_fn(kernel) -> (filtered, log Z)`` runs the forward pass of the mode's chain
    (vmapped over the candidates); ``smoother_fn(kernel, filtered, log Z)`` the backward
    pass of the winner, returning its ``ChainPosterior``. Returns the kernel with the
    best lengthscale (and, for a sum kernel, the best variance of its learned part and
    a learned period: four more candidates each), its posterior and the next step.
    """
    theta, cands = search_candidates(kernel, step, log_bounds)
    filtered, logzs = jax.vmap(lambda th: filter_fn(with_log_hyper(kernel, th)))(cands)
    best = jnp.argmax(jnp.where(jnp.isfinite(logzs), logzs, -jnp.inf))
    kernel, next_step = search_outcome(kernel, theta, cands, best, step)
    filtered = jax.tree_util.tree_map(lambda x: x[best], filtered)
    post = smoother_fn(kernel, filtered, logzs[best])
    return kernel, post, next_step


def search_outcome(kernel, theta, cands, best, step):
    """The kernel of candidate ``best`` (an index into ``cands`` (C, D), from
    :func:`search_candidates`) and the next step: half the step when the current value
    (row 0) won, else twice the move made (in step units), within ``[1e-3, 2]``."""
    scales = jnp.stack([jnp.asarray(c[1], float) for c in _coordinates(kernel)])
    moved = jnp.max(jnp.abs(cands[best] - theta) / scales)
    next_step = jnp.where(best == 0, 0.5 * step, 2.0 * moved)
    return with_log_hyper(kernel, cands[best]), jnp.clip(next_step, 1e-3, 2.0)

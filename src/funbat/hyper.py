"""Kernel hyperparameters by ascent on the chain's log normaliser.

With mode ``k``'s messages fixed, the ELBO as a function of its kernel is
``sum_j log Z_j(theta) + const`` (``shared/DESIGN.md`` section 3), so any step that
raises the log normaliser raises the ELBO: coordinate ascent. We take the gradient of
``log Z`` with respect to the log-lengthscale through the Kalman filter (``jax.grad``),
try a few step lengths along it in one vectorised pass (the candidates' chains are
smoothed side by side, which costs little more than one chain on a CPU), and keep the
best, the current value included, so the ELBO never decreases.
"""

from __future__ import annotations

from dataclasses import replace

import jax
import jax.numpy as jnp

from .kalman import ChainPosterior, log_normaliser, smooth
from .kernels import Matern

__all__ = ["ascend_log_normaliser", "smooth_with_lengthscale_search"]

#: Fractions of the current step tried along the gradient (0 keeps the current value).
_FRACTIONS = jnp.array([0.0, 0.25, 0.5, 1.0, 2.0])


def ascend_log_normaliser(objective, posterior_fn, get_logz, theta, step, log_bounds):
    """One gradient-guided line search on log-hyperparameters ``theta`` (scalar or (D,)).

    Shared by every kind of mode: the chain of a continuous mode and the dense GP of a
    spatial one (:mod:`funbat.dense`). Candidates move each coordinate of ``theta`` by
    ``step * fraction`` in the direction of its gradient's sign; the candidates'
    posteriors are computed side by side (``vmap``) and the best ``log Z`` wins, the
    current value included, so the ELBO never decreases.

    Parameters
    ----------
    objective : ``theta -> log Z`` (cheap form, differentiated).
    posterior_fn : ``theta -> posterior`` (any pytree); ``get_logz(posterior) -> log Z``.
    theta : current log-hyperparameters; step : scalar step length.
    log_bounds : (2,) lower and upper bound of each coordinate of ``theta``.

    Returns
    -------
    The best ``theta``, its posterior, and the next step.
    """
    grad = jax.grad(objective)(theta)
    frac = _FRACTIONS.reshape((-1,) + (1,) * jnp.ndim(theta))
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
    kernel: Matern, coords, Lams, etas, step, log_bounds
) -> tuple[Matern, ChainPosterior, jax.Array]:
    """One gradient-guided line search on ``log(lengthscale)``, then the smoothed chain.

    Parameters
    ----------
    kernel : Matern, the current kernel of the mode.
    coords : (I,) sorted coordinates; Lams (I, R, R), etas (I, R): the mode's messages.
    step : scalar, current step length in log-lengthscale.
    log_bounds : (2,) lower and upper bound of ``log(lengthscale)``.

    Returns
    -------
    The kernel with the best lengthscale found, its smoothed chain, and the next step.
    """

    def with_theta(theta):
        return replace(kernel, lengthscale=jnp.exp(theta))

    theta, post, next_step = ascend_log_normaliser(
        lambda th: log_normaliser(with_theta(th), coords, Lams, etas),
        lambda th: smooth(with_theta(th), coords, Lams, etas),
        lambda p: p.log_normaliser,
        jnp.log(kernel.lengthscale),
        step,
        log_bounds,
    )
    return with_theta(theta), post, next_step

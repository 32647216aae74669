"""Spatial modes: functions of a point (latitude and longitude, say), a dense GP each.

Each latent function has a Matérn prior on the per-dimension scaled Euclidean distance
between points; the posterior given the grouped messages is computed densely in
whitened coordinates (:mod:`funbat.dense`, ``docs/theory.md`` section 2), and at new
points by the exact GP conditional.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .. import dense as DN
from .. import updates as U
from ..data import InputError
from ..hyper import ascend_log_normaliser
from ..kernels import KERNELS
from .base import (
    LOG_LENGTHSCALE_BOUNDS,
    ModeKind,
    ModeState,
    bucket,
    check_variance,
    start_state,
    transform_moments,
)

__all__ = ["PointsMode", "points_posterior"]


def _posterior(kernel, coords, Lams, etas):
    L, mv, Sv, logZ, means, seconds = DN.dense_posterior(kernel.gram(coords, coords), Lams, etas)
    return DN.DensePosterior(L[None], mv[None], Sv[None], logZ), means, seconds


def points_posterior(kernel, coords, Lams, etas, step, log_bounds, *, learn: bool):
    """Prior + messages -> posterior of a spatial mode.

    With ``learn``, one gradient-guided line search on the log lengthscales raises
    ``log Z``, i.e. the ELBO, first (:mod:`funbat.hyper`). Returns the kernel, the
    :class:`funbat.dense.DensePosterior`, means (I, R), seconds (I, R, R) and the next
    step length.
    """
    if learn:

        def with_theta(theta):
            return replace(kernel, lengthscales=jnp.exp(theta))

        theta, (post, means, seconds), step = ascend_log_normaliser(
            lambda th: _posterior(with_theta(th), coords, Lams, etas)[0].log_normaliser,
            lambda th: _posterior(with_theta(th), coords, Lams, etas),
            lambda out: out[0].log_normaliser,
            jnp.log(kernel.lengthscales),
            step,
            log_bounds,
        )
        kernel = with_theta(theta)
    else:
        post, means, seconds = _posterior(kernel, coords, Lams, etas)
    return kernel, post, means, seconds, step


@partial(jax.jit, static_argnames=("learn",))
def _points_update(kernel, coords, G, g, tau_mean, unfolded, step, n_valid, *, learn):
    """Messages, the posterior (:func:`points_posterior`) and the mode's KL."""
    Lams, etas = U.mode_messages(G, g, tau_mean, unfolded)
    kernel, post, means, seconds, step = points_posterior(
        kernel, coords, Lams, etas, step, jnp.array(LOG_LENGTHSCALE_BOUNDS), learn=learn
    )
    kl = U.mode_kl(Lams, etas, means, seconds, post.log_normaliser)
    return ModeState(coords, kernel, post, means, seconds, n_valid, step), kl


_conditional = jax.jit(DN.conditional)


@dataclass(frozen=True)
class PointsMode(ModeKind):
    """A spatial mode: functions of points in ``R^D`` (its columns)."""

    name = "spatial"

    def kernel(self, enc, name, lengthscale, variance):
        variance = check_variance(enc, variance)
        DN.check_size(enc.unique.shape[0], enc.name)
        if name not in KERNELS:
            raise InputError(f"unknown kernel {name!r}; choose one of {sorted(KERNELS)}")
        D = enc.unique.shape[1]
        if lengthscale is None:
            ells = DN.default_lengthscales(enc.unique)
        else:
            ells = (
                np.broadcast_to(np.asarray(lengthscale, dtype=float), (D,))
                if np.ndim(lengthscale) < 2
                else None
            )
            if ells is None or not np.all(np.isfinite(ells)) or np.any(ells <= 0):
                raise InputError(
                    f"lengthscale of spatial mode {enc.name!r} must be a positive number or "
                    f"{D} of them (one per column {enc.columns}); got {lengthscale!r}"
                )
            ells = ells / enc.scale
        return DN.PointMatern(
            KERNELS[name], jnp.asarray(ells, float), jnp.asarray(float(variance))
        )

    def init(self, enc, rank, kernel, start, chain_length):
        I = enc.unique.shape[0]
        empty = DN.DensePosterior(
            jnp.zeros((1, I, I)), jnp.zeros((1, I, rank)), jnp.zeros((1, I * rank, I * rank)),
            jnp.zeros(()),
        )  # fmt: skip
        return start_state(enc.unique, kernel, empty, start, I)

    def _update(self, state, G, g, tau_mean, unfolded, *, learn):
        return _points_update(
            state.kernel, state.coords, G, g, tau_mean, unfolded, state.step, state.n_valid,
            learn=learn,
        )  # fmt: skip

    def _unique_queries(self, enc, x_user):
        uq, inv = np.unique(enc.scaled(x_user), axis=0, return_inverse=True)
        return uq, inv.reshape(-1)

    def prior_quadratic(self, state):
        return DN.prior_quadratic(state.posterior)

    def dimension(self, state):
        return state.means.shape[0]

    def transform(self, state, T):
        return transform_moments(state, T, DN.transform_posterior(state.posterior, T))

    def marginals(self, state, enc, x_user):
        uq, inv = self._unique_queries(enc, x_user)
        n_u = uq.shape[0]
        uq = np.concatenate([uq, np.zeros((bucket(n_u, 16) - n_u, uq.shape[1]))])
        m, s = _conditional(state.kernel, state.coords, state.posterior, jnp.asarray(uq))
        return m[inv], s[inv]

    def samples(self, state, enc, x_user, key, n_samples):
        uq, inv = self._unique_queries(enc, x_user)
        u = DN.sample_points(
            state.kernel, state.coords, state.posterior, jnp.asarray(uq), key, n_samples
        )
        return u[:, inv]

    def parse_coords(self, enc, coords):
        x = np.asarray(coords, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(enc.columns):
            raise InputError(
                f"mode {enc.name!r} is spatial: give points as an (n, {len(enc.columns)}) "
                f"array of {enc.columns}; got shape {x.shape}"
            )
        return x

    def user_lengthscale(self, state, enc):
        return np.asarray(state.kernel.lengthscales) * enc.scale

    def coordinate_table(self, enc):
        pts = enc.unscaled(enc.unique)
        return {c: pts[:, j] for j, c in enumerate(enc.columns)}

    def describe(self, state, enc):
        pts = enc.unscaled(enc.unique)
        ells = np.asarray(self.user_lengthscale(state, enc), float)
        return {
            "kind": "spatial",
            "columns": list(enc.columns),
            "min": [float(v) for v in pts.min(axis=0)],
            "max": [float(v) for v in pts.max(axis=0)],
            "n_unique": int(pts.shape[0]),
            "lengthscale": [float(v) for v in ells],
            "lengthscale_unit": "coordinate units, per column",
        }

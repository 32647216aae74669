"""A noise level per coordinate of one mode, over Gaussian or Student-t noise.

Each unique coordinate ``g`` of the noise mode scales the noise precision by
``s_g ~ Gamma(c/2, c/2)`` (mean 1; ``c`` learned on a grid). ``q(s_g)`` and, for
Student-t noise, ``q(w_n)`` are exact block updates computed from per-group sums over
the entries (``docs/theory.md`` section 5, :mod:`funbat.likelihoods.gamma`). The
predictive noise at a seen coordinate carries its posterior; at an unseen one, the
prior's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .base import EntryWeights, Likelihood
from .gamma import (
    DOF_START,
    best_dof,
    best_group_dof,
    entry_weights,
    group_posterior,
    group_sums,
    predictive_noise,
    weights_elbo,
)

__all__ = ["NoiseMode", "NoiseModeState"]

#: Alternations between ``q(w)`` and ``q(s)`` per sweep (Student-t noise).
ROUNDS = 2


class NoiseModeState(NamedTuple):
    """dof : ``nu`` of the base's Student-t weights (unused over Gaussian noise);
    group_dof : ``c``; alpha, beta : (G,) ``q(s_g) = Gamma(alpha_g, beta_g)``."""

    dof: jax.Array
    group_dof: jax.Array
    alpha: jax.Array
    beta: jax.Array


def _group_sums_block(block, mean_s, tau_mean, dof, mode, n_groups, robust):
    return group_sums(block.sq_err, block.idx[:, mode], block.mask, mean_s, tau_mean, dof,
                      n_groups=n_groups, robust=robust)  # fmt: skip


def _entry_weights_block(block, mean_s, tau_mean, dof, mode, robust):
    w, w_sums = entry_weights(block.sq_err, block.idx[:, mode], block.mask, mean_s, tau_mean,
                              dof, robust=robust)  # fmt: skip
    return w, (w_sums, jnp.sum(w * block.y**2))


@dataclass(frozen=True)
class NoiseMode(Likelihood):
    """``base`` noise (Gaussian or Student-t) whose level varies along mode ``mode``."""

    base: Likelihood
    mode: int

    @property
    def name(self):
        return self.base.name

    @property
    def robust(self):
        return self.base.robust

    def init(self, encodings):
        G = encodings[self.mode].unique.shape[0]
        f64 = jnp.float64
        return NoiseModeState(jnp.asarray(DOF_START, f64), jnp.asarray(DOF_START, f64),
                              jnp.ones(G), jnp.ones(G))  # fmt: skip

    def update(self, state, weights, entries, means, seconds, core, tau_mean, *, structure):
        moments = entries.entry_moments(means, seconds, core, structure=structure)
        tau, dof, c = float(tau_mean), float(state.dof), float(state.group_dof)
        n_groups, robust = state.alpha.shape[0], self.robust
        mean_s = state.alpha / state.beta
        for _ in range(ROUNDS if robust else 1):  # with Gaussian noise q(s) is exact at once
            n_g, r_g = entries.map_reduce(
                _group_sums_block, moments, np.asarray(mean_s), tau, dof, self.mode, n_groups,
                robust,
            )  # fmt: skip
            alpha, beta = group_posterior(jnp.asarray(n_g), jnp.asarray(r_g), tau, c)
            mean_s = alpha / beta
        group_dof, alpha, beta, term = best_group_dof(
            jnp.asarray(n_g), jnp.asarray(r_g), tau, c
        )
        w, (w_sums, sum_wy2) = entries.map_weights(
            _entry_weights_block, moments, np.asarray(alpha / beta), tau, dof, self.mode, robust
        )
        new_dof = jnp.asarray(dof)
        if robust:
            w_sums = jnp.asarray(w_sums)
            new_dof = best_dof(w_sums, new_dof)
            term = term + weights_elbo(w_sums, new_dof)
        state = NoiseModeState(new_dof, group_dof, alpha, beta)
        return state, EntryWeights(w, jnp.asarray(sum_wy2), term)

    def dof(self, state):
        return float(state.dof) if self.robust else float("inf")

    def _group_params(self, state, encodings, kinds, x_user):
        """Noise groups of query coordinates (n,) and their ``q(s)`` (G + U,): a training
        coordinate keeps its posterior; each of the ``U`` distinct unseen coordinates is
        a new group with the prior ``Gamma(c/2, c/2)``."""
        ids, n_new = kinds[self.mode].groups(encodings[self.mode], x_user)
        prior = np.full(n_new, 0.5 * float(state.group_dof))
        alpha, beta = np.asarray(state.alpha), np.asarray(state.beta)
        return ids, np.concatenate([alpha, prior]), np.concatenate([beta, prior])

    def predictive_noise(self, state, encodings, kinds, columns, scale):
        ids, alpha, beta = self._group_params(state, encodings, kinds, columns[self.mode])
        dof_g, factor_g = predictive_noise(alpha, beta, self.dof(state))
        return scale * factor_g[ids], dof_g[ids]

    def precision_draws(self, state, encodings, kinds, columns, rng, n_samples, n):
        dof = self.dof(state)
        draws = 1.0
        if np.isfinite(dof):  # Student-t noise: a Gamma(dof/2, rate dof/2) weight per draw
            draws = rng.gamma(0.5 * dof, 2.0 / dof, size=(n_samples, n))
        ids, alpha, beta = self._group_params(state, encodings, kinds, columns[self.mode])
        return draws * rng.gamma(alpha, 1.0 / beta, size=(n_samples, alpha.shape[0]))[:, ids]

    def attributes(self, state, names):
        return {
            "noise_mode_": names[self.mode],
            "noise_group_dof_": float(state.group_dof),
            "noise_multipliers_": np.asarray(state.alpha) / np.asarray(state.beta),
        }

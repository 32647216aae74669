"""Student-t noise as a Gamma scale mixture of Gaussians (``docs/theory.md`` section 5).

``e_n ~ N(0, 1 / (tau w_n))``, ``w_n ~ Gamma(nu/2, nu/2)``; ``q(w_n)`` has a closed
form (:func:`funbat.likelihoods.gamma.weight_posterior`), computed on the entries where
they live, and ``nu`` maximises the ELBO on a grid that includes the current value, so
the ELBO never decreases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from .base import EntryWeights, Likelihood
from .gamma import DOF_START, best_dof, weight_posterior, weights_elbo

__all__ = ["StudentT", "StudentTState"]


class StudentTState(NamedTuple):
    """dof : ``nu``, the degrees of freedom (scalar)."""

    dof: jax.Array


def _weights_block(block, tau_mean, dof):
    """One block's ``E[w_n]`` and its sums (they add up over blocks)."""
    w, sums = weight_posterior(block.sq_err, tau_mean, dof, block.mask)
    return w, (sums, jnp.sum(w * block.y**2))


@dataclass(frozen=True)
class StudentT(Likelihood):
    """Heavy-tailed noise with learned degrees of freedom."""

    name = "student_t"
    robust = True

    def init(self, encodings):
        return StudentTState(jnp.asarray(DOF_START, dtype=jnp.float64))

    def update(self, state, weights, entries, means, seconds, core, tau_mean, *, structure):
        moments = entries.entry_moments(means, seconds, core, structure=structure)
        w, (sums, sum_wy2) = entries.map_weights(
            _weights_block, moments, float(tau_mean), float(state.dof)
        )
        sums = jnp.asarray(sums)
        dof = best_dof(sums, state.dof)
        return StudentTState(dof), EntryWeights(w, jnp.asarray(sum_wy2), weights_elbo(sums, dof))

    def dof(self, state):
        return float(state.dof)

    def precision_draws(self, state, encodings, kinds, columns, rng, n_samples, n):
        dof = self.dof(state)  # a Gamma(dof/2, rate dof/2) weight per point and draw
        return rng.gamma(0.5 * dof, 2.0 / dof, size=(n_samples, n))

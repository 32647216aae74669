"""The likelihood interface: how observations depend on the latent value ``f_n``.

A likelihood is a small immutable object with a state record. The sweep calls
:meth:`Likelihood.update` once per sweep (after the warm-up) on every likelihood alike:
it may run passes over the entries through the backend's generic map-reduce
(:mod:`funbat.backends`) and returns new :class:`EntryWeights`, the per-entry weights
every other update then uses (``docs/theory.md`` section 5). A new likelihood is one
new module and one entry in :data:`funbat.likelihoods.LIKELIHOODS`; it never needs a new
backend method.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["EntryWeights", "Likelihood"]


class EntryWeights(NamedTuple):
    """The entries' weights as the other block updates see them.

    Attributes
    ----------
    weights
        The backend's handle of the per-entry weights (None: every weight 1).
    sum_wy2
        ``sum_n w_n y_n^2`` (standardised targets, or the pseudo-targets).
    term
        The likelihood's own part of the ELBO (0 for Gaussian noise).
    targets
        The backend's handle of per-entry pseudo-targets that replace the standardised
        targets in the statistics (None: the targets themselves), for likelihoods that
        are Gaussian only given an augmentation (Polya-Gamma).
    """

    weights: Any
    sum_wy2: jax.Array
    term: jax.Array
    targets: Any = None


class Likelihood:
    """Interface of a likelihood. Subclasses are frozen dataclasses."""

    #: The name the estimators' ``likelihood`` parameter takes.
    name: str = ""
    #: Per-entry Gamma weights of the noise precision (a Student-t scale mixture).
    robust: bool = False
    #: The Gaussian predictive may be recalibrated (:mod:`funbat.calibration`).
    recalibrates: bool = False
    #: The pseudo-observations have unit precision: ``tau`` is held at 1 and the ELBO's
    #: Gaussian part is ``-E[sum of weighted squared errors] / 2``, the likelihood's
    #: ``term`` holding the rest (Polya-Gamma augmentation).
    unit_noise: bool = False
    #: The observations are counts or 0/1, where rows repeating another exactly are
    #: usually genuine observations (two days above a threshold at the same
    #: coordinates), so ``duplicates="auto"`` keeps them.
    discrete_observations: bool = False

    def initial_weights(self, state, entries, means, seconds, core, *, structure: str):
        """The starting state and the entries' weights before the first :meth:`update`
        (the warm-up's): every weight 1 and the standardised targets, unless the
        likelihood says otherwise. It may check the targets (raising
        :class:`funbat.InputError`). Returns ``(state, EntryWeights)``."""
        return state, EntryWeights(None, jnp.asarray(entries.sum_y2, jnp.float64),
                                   jnp.asarray(0.0, jnp.float64))  # fmt: skip

    def init(self, encodings) -> NamedTuple:
        """The starting state (weights 1: Gaussian noise until the warm-up ends)."""
        raise NotImplementedError

    def update(self, state, weights: EntryWeights, entries, means, seconds, core, tau_mean, *,
               structure: str):  # fmt: skip
        """Exact block updates of the likelihood's own variables.

        ``entries`` is the backend; ``means``, ``seconds``, ``core`` the current
        moments; ``tau_mean`` is ``E[tau]``. Returns the new state and
        :class:`EntryWeights`.
        """
        raise NotImplementedError

    def dof(self, state) -> float:
        """Degrees of freedom of the noise (``inf``: Gaussian)."""
        return float("inf")

    def predictive_noise(self, state, encodings, kinds, columns, scale):
        """The noise of the predictive at query columns: ``(scale, dof)``, scalars or (n,).

        ``scale`` is the global noise std in target units.
        """
        return scale, self.dof(state)

    def precision_draws(self, state, encodings, kinds, columns, rng: np.random.Generator,
                        n_samples: int, n: int):  # fmt: skip
        """Draws (n_samples, n) of the noise precision's multiplier (1.0: none)."""
        return 1.0

    def observation_predictive(self, state, mean_f, var_f):
        """The predictive of the observations given the latent value's mean and variance
        (n,) each (standardised units), or None: the Gaussian/Student-t one of
        :func:`funbat.inference.predict.predictive`."""
        return None

    def draw_observations(self, state, f, rng: np.random.Generator):
        """Observations (S, n) drawn given latent draws ``f`` (S, n), or None: Gaussian
        noise as :func:`funbat.inference.predict.sample` draws it."""
        return None

    def attributes(self, state, names) -> dict:
        """Fitted attributes the estimator reports (``noise_mode_`` and the like)."""
        return {"noise_mode_": None}

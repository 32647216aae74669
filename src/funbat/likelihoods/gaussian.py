"""Gaussian noise: ``y_n = f_n + e_n``, ``e_n ~ N(0, 1 / tau)``, ``tau ~ Gamma(a0, b0)``.

Its only variable is ``tau``, updated with the core (:mod:`funbat.updates`); every
entry has weight 1, so :meth:`Gaussian.update` has nothing to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .base import Likelihood

__all__ = ["Gaussian", "GaussianState"]


class GaussianState(NamedTuple):
    """Gaussian noise has no variables of its own beyond ``tau``."""


@dataclass(frozen=True)
class Gaussian(Likelihood):
    """Gaussian observation noise (the default)."""

    name = "gaussian"
    recalibrates = True

    def init(self, encodings):
        return GaussianState()

    def update(self, state, weights, entries, means, seconds, core, tau_mean, *, structure):
        return state, weights

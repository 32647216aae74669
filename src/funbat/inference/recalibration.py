"""Recalibration of a Gaussian fit's predictive from its leave-one-out residuals
(``docs/theory.md`` section 6; the formulas are in :mod:`funbat.calibration`)."""

from __future__ import annotations

import numpy as np

from ..calibration import Recalibration, fit_recalibration, loo_residuals
from ..likelihoods import DOF_BOUNDS
from .state import ModelSpec, SweepState

__all__ = ["MAX_RESIDUALS", "MIN_RESIDUALS", "recalibrate"]

#: Residuals at most used (about that many, drawn at random, beyond it), and at least
#: (fewer keep the Gaussian predictive: two parameters need data).
MAX_RESIDUALS, MIN_RESIDUALS = 1_000_000, 50


def _loo_block(block, noise_var, keep, seed, offset=(0.0, 0.0)):
    """One block's standardised leave-one-out residuals, of a random fraction ``keep``
    of its entries (all when ``keep >= 1``); ``offset``: the mean and variance of a
    learned intercept, part of every entry's latent value."""
    n = int(np.sum(np.asarray(block.mask)))  # padding is at the end of a block
    resid = np.asarray(block.y - block.mean)[:n] - offset[0]
    var_f = np.asarray(block.var)[:n] + offset[1]
    if keep < 1.0:  # a random subset bounds the Student-t fit's cost
        chosen = np.random.default_rng(seed + block.index).random(n) < keep
        resid, var_f = resid[chosen], var_f[chosen]
    return loo_residuals(resid, var_f, noise_var)


def recalibrate(spec: ModelSpec, entries, state: SweepState,
                rng: np.random.Generator) -> Recalibration | None:  # fmt: skip
    """The Student-t shape of the fit's standardised leave-one-out residuals, or None
    where it does not apply: not asked for, a likelihood with its own predictive, fewer
    than :data:`MIN_RESIDUALS` residuals, or residuals mostly exactly 0 (a target the
    model fits exactly has no shape)."""
    if not (spec.recalibrate and spec.likelihood.recalibrates):
        return None
    means = tuple(m.means for m in state.modes)
    seconds = tuple(m.seconds for m in state.modes)
    moments = entries.entry_moments(means, seconds, state.core, structure=spec.structure)
    noise_var = float(state.noise.rate / (state.noise.shape - 1.0))
    keep = min(1.0, MAX_RESIDUALS / entries.n)
    offset = (0.0, 0.0) if state.offset is None else tuple(map(float, state.offset))
    z = entries.gather(_loo_block, moments, noise_var, keep, int(rng.integers(2**31)), offset)
    if z.size >= MIN_RESIDUALS and np.median(np.abs(z)) > 0.0:
        return fit_recalibration(z, DOF_BOUNDS)
    return None

"""Is the predictive uncertainty honest? Coverage of central intervals and NLPD.

For a Gaussian predictive ``N(mean, std^2)``, the central interval of level ``p`` is
``mean +- z std`` with ``z = Phi^{-1}((1 + p) / 2)``; a calibrated model covers a
fraction ``p`` of held-out targets with it. The negative log predictive density (NLPD)
``mean_n [ log(std_n sqrt(2 pi)) + (y_n - mean_n)^2 / (2 std_n^2) ]`` rewards sharp *and*
honest predictions (lower is better).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtri

__all__ = ["coverage", "coverage_table", "nlpd"]

#: Nominal levels reported by default.
LEVELS = (0.5, 0.8, 0.9, 0.95)


def coverage(y, mean, std, level: float) -> float:
    """Fraction of ``y`` inside the central ``level`` interval of ``N(mean, std^2)``."""
    z = float(ndtri(0.5 + 0.5 * level))
    y, mean, std = (np.asarray(a, float) for a in (y, mean, std))
    return float(np.mean(np.abs(y - mean) <= z * std))


def nlpd(y, mean, std) -> float:
    """Mean negative log density of ``y`` under ``N(mean, std^2)``."""
    y, mean = np.asarray(y, float), np.asarray(mean, float)
    sd = np.maximum(np.asarray(std, float), 1e-300)
    return float(np.mean(0.5 * math.log(2 * math.pi) + np.log(sd) + 0.5 * ((y - mean) / sd) ** 2))


def coverage_table(y, mean, std, levels=LEVELS) -> dict[float, float]:
    """``{nominal level: observed coverage}`` for each level."""
    return {float(p): coverage(y, mean, std, p) for p in levels}

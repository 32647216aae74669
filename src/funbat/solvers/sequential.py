"""The sequential chain solver: a Kalman filter and RTS smoother as ``lax`` loops.

Information-form filter, Rauch-Tung-Striebel smoother, interpolation between chain
coordinates and forward-filtering backward-sampling (:mod:`funbat.kalman`,
:mod:`funbat.hyper`, :mod:`funbat.sampling`). Cost ``O(I (R d)^3)`` per chain, one step
after another.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..hyper import smooth_with_lengthscale_search
from ..kalman import interpolate, smooth
from ..sampling import chain_samples
from .base import ChainSolver

__all__ = ["SequentialSolver"]


@dataclass(frozen=True)
class SequentialSolver(ChainSolver):
    """JAX's sequential filter and smoother: the reference, used by default where there is
    neither a GPU nor numba."""

    name = "sequential"

    def smooth(self, kernel, coords, Lams, etas, n_valid):
        return smooth(kernel, coords, Lams, etas, n_valid=n_valid)

    def smooth_with_lengthscale_search(self, kernel, coords, Lams, etas, step, log_bounds,
                                       n_valid):  # fmt: skip
        return smooth_with_lengthscale_search(kernel, coords, Lams, etas, step, log_bounds,
                                              n_valid)  # fmt: skip

    def interpolate(self, kernel, coords, n_valid, posterior, query):
        return interpolate(kernel, coords, n_valid, posterior, query)

    def samples(self, kernel, coords, n_valid, posterior, query, key, n_samples: int):
        return chain_samples(kernel, coords, n_valid, posterior, query, key, n_samples)

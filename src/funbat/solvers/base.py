"""The chain-solver interface (see :mod:`funbat.solvers`)."""

from __future__ import annotations

__all__ = ["ChainSolver"]


class ChainSolver:
    """What a continuous mode needs of its chain. Subclasses are frozen dataclasses
    (hashable: they are static arguments of compiled functions); every method is pure
    and traceable by JAX.

    Shapes: ``coords`` (I,) sorted scaled coordinates, the first ``n_valid`` real (the
    rest pad); ``Lams`` (I, R, R) and ``etas`` (I, R) the messages; ``kernel`` a
    :class:`funbat.kernels.Matern` of state size ``d``; the posterior a
    :class:`funbat.kalman.ChainPosterior` over states of size ``R d``.
    """

    def smooth(self, kernel, coords, Lams, etas, n_valid):
        """Filtered and smoothed moments and ``log Z``: a ``ChainPosterior``."""
        raise NotImplementedError

    def smooth_with_lengthscale_search(self, kernel, coords, Lams, etas, step, log_bounds,
                                       n_valid):  # fmt: skip
        """One line search on ``log(lengthscale)`` raising ``log Z`` (the ELBO), then the
        smoothed chain: ``(kernel, ChainPosterior, next step)``."""
        raise NotImplementedError

    def interpolate(self, kernel, coords, n_valid, posterior, query):
        """Posterior mean (n, R) and second moment (n, R, R) at ``query`` (n,)."""
        raise NotImplementedError

    def samples(self, kernel, coords, n_valid, posterior, query, key, n_samples: int):
        """Joint posterior draws (n_samples, n, R) at ``query`` (n,) (NumPy ``query``)."""
        raise NotImplementedError

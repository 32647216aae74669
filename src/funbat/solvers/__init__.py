"""Chain solvers: the filter, smoother, interpolation and sampling of one mode's chain.

A continuous mode's posterior is a linear-Gaussian state-space chain over its sorted
unique coordinates (``docs/theory.md`` sections 2-3). A *chain solver* computes, from
the chain's prior (kernel, coordinates) and its grouped messages ``(Lambda_j, eta_j)``,
the filtered and smoothed moments and the log-normaliser (:class:`ChainSolver`). Every
solver gives the same numbers; they differ in how they run on the hardware. A new
solver is one new module here and one entry in :data:`SOLVERS`.
"""

from __future__ import annotations

from .base import ChainSolver
from .sequential import SequentialSolver

__all__ = ["SOLVERS", "ChainSolver", "SequentialSolver", "get_solver"]

#: Solvers by name.
SOLVERS: dict[str, type[ChainSolver]] = {"sequential": SequentialSolver}


def get_solver(name: str = "sequential") -> ChainSolver:
    """The chain solver called ``name`` (one of :data:`SOLVERS`)."""
    from ..data import InputError

    if name not in SOLVERS:
        raise InputError(f"unknown chain solver {name!r}; choose one of {sorted(SOLVERS)}")
    return SOLVERS[name]()

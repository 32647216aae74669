"""Chain solvers: the filter, smoother, interpolation and sampling of one mode's chain.

A continuous mode's posterior is a linear-Gaussian state-space chain over its sorted
unique coordinates (``docs/theory.md`` sections 2-3). A *chain solver* computes, from
the chain's prior (kernel, coordinates) and its grouped messages ``(Lambda_j, eta_j)``,
the filtered and smoothed moments and the log-normaliser (:class:`ChainSolver`). Every
solver gives the same numbers; they differ in how they run on the hardware. A new
solver is one new module here and one entry in :data:`SOLVERS`.

==============  ===============================================================
name            how the chain runs
==============  ===============================================================
``native``      loops compiled by numba, on the host (the default on a CPU)
``parallel``    associative scans (``O(log I)`` depth; the default on a GPU)
``sequential``  JAX's ``lax`` loops (the reference; differentiable; the default
                elsewhere, or on a CPU without numba)
==============  ===============================================================
"""

from __future__ import annotations

from .base import ChainSolver
from .native import NativeSolver, numba_available
from .parallel import ParallelSolver
from .sequential import SequentialSolver

__all__ = ["SOLVERS", "ChainSolver", "NativeSolver", "ParallelSolver", "SequentialSolver",
           "default_solver_name", "get_solver", "resolve_solver_name"]  # fmt: skip

#: Solvers by name.
SOLVERS: dict[str, type[ChainSolver]] = {
    "native": NativeSolver,
    "parallel": ParallelSolver,
    "sequential": SequentialSolver,
}


def default_solver_name() -> str:
    """The solver ``"auto"`` stands for: ``"parallel"`` when JAX's default backend is a
    GPU (the chain stays on the device, in ``O(log I)`` steps), ``"native"`` on a CPU
    where numba imports, else ``"sequential"``."""
    import jax

    backend = jax.default_backend()
    if backend == "gpu":
        return "parallel"
    return "native" if backend == "cpu" and numba_available() else "sequential"


def resolve_solver_name(name: str = "auto") -> str:
    """``name`` itself, or for ``"auto"`` the device's default (:func:`default_solver_name`)."""
    return default_solver_name() if name == "auto" else name


def get_solver(name: str = "auto") -> ChainSolver:
    """The chain solver called ``name`` (one of :data:`SOLVERS`, or ``"auto"``)."""
    from ..data import InputError

    name = resolve_solver_name(name)
    if name not in SOLVERS:
        raise InputError(
            f"unknown chain solver {name!r}; choose 'auto' or one of {sorted(SOLVERS)}"
        )
    return SOLVERS[name]()

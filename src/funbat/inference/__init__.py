"""The inference engine: FunBaT's variational message passing as pure functions.

:func:`fit` runs a whole fit from a :class:`ModelSpec`, an entry backend
(:mod:`funbat.backends`) and the prior kernels; :func:`initial_state`, :func:`sweep`
and :func:`run` are its pieces, callable on their own (to resume, profile or test one
sweep). Prediction from a :class:`FitResult` is in :mod:`funbat.inference.predict`.
The mathematics is in ``docs/theory.md``.

>>> spec = ModelSpec("tucker", (3, 3), kinds, Gaussian())        # doctest: +SKIP
>>> result = fit(spec, MemoryEntries(encodings, idx, y), kernels)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np

from .rank import compact
from .recalibration import recalibrate
from .state import FitResult, ModelSpec, SweepState
from .sweep import initial_state, run, sweep

__all__ = ["FitResult", "ModelSpec", "SweepCost", "SweepState", "chunk_size", "fit", "initial_state",
           "result_of", "run", "sweep", "sweep_cost"]  # fmt: skip

#: The per-entry statistics of one chunk on a CPU: (chunk, P (P + 1) / 2) plus gathers
#: of the same size; their few live copies stay well under ~64 MB whatever the rank,
#: and a scan over such chunks costs the CPU nothing extra.
_CHUNK_BYTES = 2**26

#: Entries per chunk that ``chunk_size="auto"`` asks for on a CPU.
_CPU_CHUNK = 65536


def chunk_budget_bytes(device=None) -> int:
    """Bytes one chunk's per-entry statistics may take on ``device`` (default: JAX's
    first device).

    64 MiB on a CPU. On a GPU a thirty-second of the device's memory (at most 4 GiB):
    each chunk is one step of a ``lax.scan``, and on a GPU every step is a handful of
    kernel launches, so millions of entries should be a few whole-array segment sums,
    not hundreds of small ones.
    """
    import jax

    dev = jax.devices()[0] if device is None else device
    if dev.platform == "cpu":
        return _CHUNK_BYTES
    try:
        limit = int((dev.memory_stats() or {}).get("bytes_limit", 0))
    except Exception:  # a backend without memory statistics
        limit = 0
    return max(_CHUNK_BYTES, min(limit // 32, 2**32))


def chunk_size(n: int, ranks, requested: int | str = "auto", *, device=None) -> int:
    """Entries per chunk for ``n`` entries of ``ranks`` (K,), at most ``requested``.

    ``requested="auto"`` is 65536 on a CPU and all ``n`` entries on a GPU; either way
    the chunk is lowered until its statistics fit :func:`chunk_budget_bytes` of
    ``device`` (default: JAX's first device).
    """
    import jax

    from ..modes import bucket

    dev = jax.devices()[0] if device is None else device
    if requested == "auto":
        requested = _CPU_CHUNK if dev.platform == "cpu" else n
    K = len(ranks)
    chunk = min(int(requested), bucket(n, 64))
    P_max = max(int(np.prod([r for i, r in enumerate(ranks) if i != k])) for k in range(K))
    budget = chunk_budget_bytes(dev)
    return max(64, min(chunk, bucket(budget // (32 * P_max * P_max), 64) // 2))


class SweepCost(NamedTuple):
    """The size of one sweep, known before fitting (:func:`sweep_cost`).

    core_entries : entries of the Tucker core ``prod_k R_k`` (0 for CP), each a free
    parameter with a dense Gaussian posterior (a ``core_entries``-square covariance);
    statistic_bytes : the largest grouped statistics of one mode's message, ``I_k P_k^2``
    float64 numbers with ``P_k = prod_{j != k} R_j`` (``R`` for CP), plus the core's
    covariance; work : multiply-adds of one sweep, about ``sum_k (N + I_k) P_k^2`` for the
    statistics, ``sum_k I_k C^2`` for the core's statistics and ``K C^3 / 3`` for its
    Cholesky (the core is updated after every mode).
    """

    core_entries: int
    statistic_bytes: float
    work: float


def sweep_cost(structure: str, ranks, sizes, n: int) -> SweepCost:
    """Estimate one sweep's cost from the ranks (K,), the unique coordinates per mode
    ``sizes`` (K,) and the ``n`` entries. On a CPU a sweep takes roughly ``work / 1e8``
    seconds (measured between 6e7 and 9e8 per second on 2 cores, 300 entries, 3 to 10
    modes)."""
    ranks, sizes = [int(r) for r in ranks], [int(i) for i in sizes]
    if structure == "cp":
        P, C = [ranks[0]] * len(ranks), 0
    else:
        C = int(np.prod(ranks, dtype=object))  # exact: 50**10 overflows int64
        P = [C // r for r in ranks]
    stats = max(i * p * p for i, p in zip(sizes, P))
    work = sum((n + i) * float(p) ** 2 + i * float(C) ** 2 for i, p in zip(sizes, P))
    work += len(ranks) * float(C) ** 3 / 3
    return SweepCost(C, 8.0 * (stats + float(C) ** 2), work)


def result_of(spec: ModelSpec, entries, state: SweepState, history, converged,
              recalibration) -> FitResult:  # fmt: skip
    """The :class:`FitResult` of a final sweep state (with the ranks it has: a fit that
    learns its rank may have pruned some)."""
    ranks = tuple(int(m.means.shape[1]) for m in state.modes)
    return FitResult(
        spec.structure, ranks, tuple(spec.kinds), spec.likelihood,
        tuple(entries.encodings), state.modes, state.core, state.noise, state.likelihood,
        float(entries.y_mean), float(entries.y_scale), int(entries.n), np.asarray(history),
        bool(converged), recalibration, state.rank,
        None if state.core_var is None else float(state.core_var), state.offset,
    )  # fmt: skip


def fit(spec: ModelSpec, entries, kernels, *, rng: np.random.Generator | None = None,
        callback: Callable[[int, float], None] | None = None,
        timer: Callable[[str, float], None] | None = None) -> FitResult:  # fmt: skip
    """Fit the posterior: start, sweep until converged, recalibrate.

    Parameters
    ----------
    spec : the model; entries : an entry backend prepared with ``with_chunk``;
    kernels : (K,) prior kernels in scaled units (``ModeKind.kernel``);
    rng : the generator of the random start and subsets (default: a fresh one);
    callback : ``callback(sweep, elbo)`` after each sweep; timer : ``timer(stage,
    seconds)`` per stage of each sweep (see :func:`sweep`).
    """
    rng = np.random.default_rng() if rng is None else rng
    with jax.enable_x64(True):
        state = initial_state(spec, entries, kernels, rng)
        state, history, converged = run(spec, entries, state, callback=callback, timer=timer)
        state = compact(state)  # a rank-learning fit's masked components out of the arrays
        spec = spec._replace(ranks=tuple(int(m.means.shape[1]) for m in state.modes))
        recalibration = recalibrate(spec, entries, state, rng)
    return result_of(spec, entries, state, history, converged, recalibration)

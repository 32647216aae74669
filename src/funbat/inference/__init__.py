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

import jax
import numpy as np

from .recalibration import recalibrate
from .state import FitResult, ModelSpec, SweepState
from .sweep import initial_state, run, sweep

__all__ = ["FitResult", "ModelSpec", "SweepState", "chunk_size", "fit", "initial_state", "result_of",
           "run", "sweep"]  # fmt: skip

#: Entries per chunk of a statistics pass at most, whatever the requested chunk size:
#: a chunk's per-entry statistics are (chunk, P (P + 1) / 2) plus gathers of the same
#: size; their few live copies stay well under ~64 MB whatever the rank.
_CHUNK_BYTES = 2**26


def chunk_size(n: int, ranks, requested: int) -> int:
    """Entries per chunk for ``n`` entries of ``ranks``, at most ``requested``."""
    from ..modes import bucket

    K = len(ranks)
    chunk = min(int(requested), bucket(n, 64))
    P_max = max(int(np.prod([r for i, r in enumerate(ranks) if i != k])) for k in range(K))
    return max(64, min(chunk, bucket(_CHUNK_BYTES // (32 * P_max * P_max), 64) // 2))


def result_of(spec: ModelSpec, entries, state: SweepState, history, converged,
              recalibration) -> FitResult:  # fmt: skip
    """The :class:`FitResult` of a final sweep state."""
    return FitResult(
        spec.structure, tuple(spec.ranks), tuple(spec.kinds), spec.likelihood,
        tuple(entries.encodings), state.modes, state.core, state.noise, state.likelihood,
        float(entries.y_mean), float(entries.y_scale), int(entries.n), np.asarray(history),
        bool(converged), recalibration,
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
        recalibration = recalibrate(spec, entries, state, rng)
    return result_of(spec, entries, state, history, converged, recalibration)

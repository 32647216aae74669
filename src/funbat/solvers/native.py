"""The native chain solver: the filter, smoother and lengthscale search as compiled
loops on the host (the default on a CPU).

On a CPU a step of an XLA loop over a chain costs what launching its few small matrix
operations costs (2.6 us for a filter step of rank 3, Matérn 3/2), not its flops. This
solver runs the same information-form filter, RTS smoother and five-candidate
lengthscale search (:mod:`funbat.kalman`, :mod:`funbat.hyper`) as scalar loops over
arrays allocated once per call, compiled by numba (:mod:`._native_kernels`; compiled
once per machine, then loaded from numba's on-disk cache).

The engine calls the solver inside its compiled mode update (``jax.jit``); the chain
is handed to the host by :func:`jax.pure_callback` (its inputs and outputs are the
chain's arrays: no other change to the sweep). Interpolation is one batched
computation (no loop) and sampling a one-off per prediction, so they stay JAX's
(:func:`funbat.kalman.interpolate`, :func:`funbat.sampling.chain_samples`). The JAX
solver (``"sequential"``) remains the reference, and the one to differentiate: a
callback has no derivative.

Kernels other than a plain Matérn (sums of parts) and machines without numba use
the JAX functions. Without numba installed the solver falls back to the JAX one, so a model file naming it
loads and predicts everywhere.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from ..hyper import smooth_with_lengthscale_search
from ..kalman import ChainPosterior, interpolate, smooth
from ..kernels import Matern
from ..sampling import chain_samples
from .base import ChainSolver

__all__ = ["NativeSolver", "numba_available"]


@lru_cache(maxsize=1)
def numba_available() -> bool:
    """Whether numba can be imported (checked once; numba itself is imported lazily)."""
    if importlib.util.find_spec("numba") is None:
        return False
    try:
        from . import _native_kernels  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken numba install means: no native solver
        return False
    return True


def _kernels():
    from . import _native_kernels

    return _native_kernels


# Float64 arrays cross the callback as uint32 words (two per number), both ways. JAX
# converts a callback's arguments and results to the dtypes of the x64 setting of the
# thread it runs on, and the callback runs on a runtime thread outside
# ``jax.enable_x64``: float64 would be rounded to float32 there. Unsigned words pass
# unchanged; a bitcast on each side turns them back into the same float64 numbers.


def _to_words(x):
    """float64 (...) -> uint32 (..., 2), the same bytes."""
    return jax.lax.bitcast_convert_type(jnp.asarray(x, jnp.float64), jnp.uint32)


def _from_words(w):
    return jax.lax.bitcast_convert_type(w, jnp.float64)


def _host(kind, d, head, coords, Lams, etas, n_valid):
    """The host side: the numba kernel ``kind`` on the unpacked arrays."""
    f64 = lambda w: np.ascontiguousarray(w).view(np.float64)[..., 0]  # noqa: E731
    head, coords, Lams, etas = f64(head), f64(coords), f64(Lams), f64(etas)
    ell, s2, step, lo, hi = (float(v) for v in head)
    I, R = Lams.shape[0], Lams.shape[1]
    D = R * d
    ms, Ps, sm, sP = np.empty((I, D)), np.empty((I, D, D)), np.empty((I, D)), np.empty((I, D, D))
    tail = np.zeros(3)
    k = _kernels().kernels(d, R)
    if kind == "smooth":
        tail[1] = k.smooth(ell, s2, coords, Lams, etas, int(n_valid), ms, Ps, sm, sP)
    else:
        k.search(ell, s2, coords, Lams, etas, int(n_valid), step, lo, hi, ms, Ps, sm, sP,
                 tail)  # fmt: skip
    return tuple(x.view(np.uint32).reshape(x.shape + (2,)) for x in (ms, Ps, sm, sP, tail))


def _call(kind, kernel, coords, Lams, etas, n_valid, step=0.0, bounds=(0.0, 0.0)):
    """Run the numba kernel ``kind`` on the host from traced code; returns the
    ChainPosterior's four arrays and ``(lengthscale, log Z, next step)`` (float64; the
    lengthscale and next step only from the search)."""
    I, R, d = coords.shape[0], Lams.shape[-1], kernel.state_dim
    D = R * d
    head = jnp.stack([jnp.asarray(v, jnp.float64) for v in
                      (kernel.lengthscale, kernel.variance, step, bounds[0], bounds[1])])  # fmt: skip
    S = jax.ShapeDtypeStruct
    shapes = tuple(S(sh + (2,), np.uint32) for sh in ((I, D), (I, D, D), (I, D), (I, D, D), (3,)))
    out = jax.pure_callback(
        partial(_host, kind, d), shapes, _to_words(head), _to_words(coords), _to_words(Lams),
        _to_words(etas), jnp.asarray(n_valid, jnp.int32), vmap_method="sequential",
    )  # fmt: skip
    return [_from_words(w) for w in out]


def _native(kernel) -> bool:
    """Whether the numba kernels serve ``kernel``: they build the transitions of a
    Matérn kernel themselves, so a sum of kernel parts (:mod:`funbat.kernel_parts`),
    whose transitions only the kernel itself knows, runs the JAX solver's functions."""
    return isinstance(kernel, Matern) and numba_available()


@dataclass(frozen=True)
class NativeSolver(ChainSolver):
    """Sequential filter and smoother compiled by numba, run on the host (CPU default)."""

    name = "native"

    def smooth(self, kernel, coords, Lams, etas, n_valid):
        if not _native(kernel):
            return smooth(kernel, coords, Lams, etas, n_valid=n_valid)
        n_valid = coords.shape[0] if n_valid is None else n_valid
        ms, Ps, sm, sP, tail = _call("smooth", kernel, coords, Lams, etas, n_valid)
        return ChainPosterior(ms, Ps, sm, sP, tail[1])

    def smooth_with_lengthscale_search(self, kernel, coords, Lams, etas, step, log_bounds,
                                       n_valid):  # fmt: skip
        if not _native(kernel):
            return smooth_with_lengthscale_search(kernel, coords, Lams, etas, step, log_bounds,
                                                  n_valid)  # fmt: skip
        n_valid = coords.shape[0] if n_valid is None else n_valid
        ms, Ps, sm, sP, tail = _call("search", kernel, coords, Lams, etas, n_valid, step,
                                     log_bounds)  # fmt: skip
        kernel = replace(kernel, lengthscale=tail[0])
        return kernel, ChainPosterior(ms, Ps, sm, sP, tail[1]), tail[2]

    def interpolate(self, kernel, coords, n_valid, posterior, query):
        return interpolate(kernel, coords, n_valid, posterior, query)

    def samples(self, kernel, coords, n_valid, posterior, query, key, n_samples: int):
        return chain_samples(kernel, coords, n_valid, posterior, query, key, n_samples)

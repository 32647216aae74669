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

Without numba installed the solver falls back to the JAX one, so a model file naming it
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


def _layout(I: int, D: int, extra: int):
    """Sizes of the packed result: ``ms`` (I, D), ``Ps`` (I, D, D), ``sm``, ``sP``, then
    ``extra`` scalars."""
    return (I * D, I * D * D, I * D, I * D * D, extra)


def _split(flat, sizes, shapes):
    cuts = np.cumsum((0,) + tuple(sizes))
    return [flat[cuts[k] : cuts[k + 1]].reshape(sh) for k, sh in enumerate(shapes)]


# Float64 arrays cross the callback as pairs of uint32 words, both ways. JAX converts a
# callback's arguments and results to the dtypes of the x64 setting of the thread it
# runs on, and the callback runs on a runtime thread outside ``jax.enable_x64``: float64
# would be rounded to float32 there. Unsigned words pass unchanged; a bitcast on each
# side turns them back into the same float64 numbers. Packing also makes the callback
# move one array each way.


def _to_words(x):
    return jax.lax.bitcast_convert_type(x, jnp.uint32).reshape(-1)


def _host(kind, I, R, d, extra, words, n_valid):
    """The host side: unpack, run the numba kernel ``kind``, pack."""
    x = np.asarray(words).view(np.float64)
    head, coords, Lams, etas = _split(x, (5, I, I * R * R, I * R),
                                      ((5,), (I,), (I, R, R), (I, R)))  # fmt: skip
    ell, s2, step, lo, hi = (float(v) for v in head)
    D = R * d
    sizes = _layout(I, D, extra)
    buf = np.empty(sum(sizes))
    ms, Ps, sm, sP, tail = _split(buf, sizes, ((I, D), (I, D, D), (I, D), (I, D, D), (extra,)))
    k = _kernels().kernels(d, R)
    if kind == "smooth":
        tail[0] = k.smooth(ell, s2, coords, Lams, etas, int(n_valid), ms, Ps, sm, sP)
    else:
        k.search(ell, s2, coords, Lams, etas, int(n_valid), step, lo, hi, ms, Ps, sm, sP,
                 tail)  # fmt: skip
    return buf.view(np.uint32)


def _call(kind, kernel, coords, Lams, etas, n_valid, extra: int, step=0.0, bounds=(0.0, 0.0)):
    """Run the numba kernel ``kind`` on the host from traced code; returns the
    ChainPosterior's four arrays and the ``extra`` trailing scalars (float64)."""
    I, R, d = coords.shape[0], Lams.shape[-1], kernel.state_dim
    f64 = partial(jnp.asarray, dtype=jnp.float64)
    head = jnp.stack([f64(kernel.lengthscale), f64(kernel.variance), f64(step),
                      f64(bounds[0]), f64(bounds[1])])  # fmt: skip
    packed = jnp.concatenate([head, f64(coords), f64(Lams).reshape(-1), f64(etas).reshape(-1)])
    sizes = _layout(I, R * d, extra)
    words = jax.ShapeDtypeStruct((2 * sum(sizes),), np.uint32)
    flat = jax.pure_callback(
        partial(_host, kind, I, R, d, extra), words, _to_words(packed),
        jnp.asarray(n_valid, jnp.int32), vmap_method="sequential",
    )  # fmt: skip
    flat = jax.lax.bitcast_convert_type(flat.reshape(-1, 2), jnp.float64)
    D = R * d
    return _split(flat, sizes, ((I, D), (I, D, D), (I, D), (I, D, D), (extra,)))


@dataclass(frozen=True)
class NativeSolver(ChainSolver):
    """Sequential filter and smoother compiled by numba, run on the host (CPU default)."""

    name = "native"

    def smooth(self, kernel, coords, Lams, etas, n_valid):
        if not numba_available():
            return smooth(kernel, coords, Lams, etas, n_valid=n_valid)
        n_valid = coords.shape[0] if n_valid is None else n_valid
        ms, Ps, sm, sP, tail = _call("smooth", kernel, coords, Lams, etas, n_valid, 1)
        return ChainPosterior(ms, Ps, sm, sP, tail[0])

    def smooth_with_lengthscale_search(self, kernel, coords, Lams, etas, step, log_bounds,
                                       n_valid):  # fmt: skip
        if not numba_available():
            return smooth_with_lengthscale_search(kernel, coords, Lams, etas, step, log_bounds,
                                                  n_valid)  # fmt: skip
        n_valid = coords.shape[0] if n_valid is None else n_valid
        ms, Ps, sm, sP, tail = _call("search", kernel, coords, Lams, etas, n_valid, 3, step,
                                     log_bounds)  # fmt: skip
        kernel = replace(kernel, lengthscale=tail[0])
        return kernel, ChainPosterior(ms, Ps, sm, sP, tail[1]), tail[2]

    def interpolate(self, kernel, coords, n_valid, posterior, query):
        return interpolate(kernel, coords, n_valid, posterior, query)

    def samples(self, kernel, coords, n_valid, posterior, query, key, n_samples: int):
        return chain_samples(kernel, coords, n_valid, posterior, query, key, n_samples)

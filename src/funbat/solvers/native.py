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

For a Matérn kernel the numba kernels build the transitions themselves. For a sum of
kernel parts (:mod:`funbat.kernel_parts`) JAX builds the transition blocks of the chain
(and of each candidate of the search) in one batched computation and the same loops
run on them. The kernels are compiled for each state size and rank, which are
constants in the machine code. Without numba installed the solver falls back to the
JAX one, so a model file naming it loads and predicts everywhere.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from ..hyper import (
    search_candidates,
    search_outcome,
    smooth_with_lengthscale_search,
    with_log_hyper,
)
from ..kalman import ChainPosterior, interpolate, smooth, transition_blocks
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


def _f64(w):
    """uint32 words (..., 2) -> the float64 array (...) they hold."""
    return np.ascontiguousarray(w).view(np.float64)[..., 0]


def _words_out(arrays):
    return tuple(x.view(np.uint32).reshape(x.shape + (2,)) for x in arrays)


def _outputs(I, D):
    """Filtered and smoothed moments ``ms, Ps, sm, sP`` to be written by a kernel."""
    return np.empty((I, D)), np.empty((I, D, D)), np.empty((I, D)), np.empty((I, D, D))


def _host(kind, d, head, coords, Lams, etas, n_valid):
    """The host side for a Matérn kernel: the numba kernel ``kind`` on the unpacked
    arrays (the kernels build the transitions themselves)."""
    head, coords, Lams, etas = _f64(head), _f64(coords), _f64(Lams), _f64(etas)
    ell, s2, step, lo, hi = (float(v) for v in head)
    I, R = Lams.shape[0], Lams.shape[1]
    out = _outputs(I, R * d)
    tail = np.zeros(3)
    k = _kernels().kernels(d, R)
    if kind == "smooth":
        tail[1] = k.smooth(ell, s2, coords, Lams, etas, int(n_valid), *out)
    else:
        k.search(ell, s2, coords, Lams, etas, int(n_valid), step, lo, hi, *out, tail)
    return _words_out(out + (tail,))


def _host_given(kind, A1, Q1, Pinf, Lams, etas, n_valid):
    """The host side for a kernel whose transitions came from JAX (a sum of parts):
    ``smooth`` with ``A1``, ``Q1`` (I, d, d) and ``Pinf`` (d, d), or ``search`` over
    candidates ``A1``, ``Q1`` (C, I, d, d) and ``Pinf`` (C, d, d)."""
    A1, Q1, Pinf, Lams, etas = (_f64(x) for x in (A1, Q1, Pinf, Lams, etas))
    I, R, d = Lams.shape[0], Lams.shape[1], A1.shape[-1]
    out = _outputs(I, R * d)
    tail = np.zeros(2)  # (index of the best candidate, log Z)
    k = _kernels().kernels(d, R)
    if kind == "smooth":
        tail[1] = k.smooth_given(A1, Q1, Pinf, Lams, etas, int(n_valid), *out)
    else:
        tail[:] = k.search_given(A1, Q1, Pinf, Lams, etas, int(n_valid), *out)
    return _words_out(out + (tail,))


def _callback(host, n_tail, I, D, *args):
    """Run ``host`` on ``args`` (float64 arrays, then the int ``n_valid``) from traced
    code; returns ``ms, Ps, sm, sP`` and the ``n_tail`` numbers it reports (float64)."""
    S = jax.ShapeDtypeStruct
    shapes = tuple(S(sh + (2,), np.uint32)
                   for sh in ((I, D), (I, D, D), (I, D), (I, D, D), (n_tail,)))  # fmt: skip
    *floats, n_valid = args
    out = jax.pure_callback(
        host, shapes, *(_to_words(x) for x in floats), jnp.asarray(n_valid, jnp.int32),
        vmap_method="sequential",
    )  # fmt: skip
    return [_from_words(w) for w in out]


def _call(kind, kernel, coords, Lams, etas, n_valid, step=0.0, bounds=(0.0, 0.0)):
    """The Matérn kernel ``kind`` from traced code; returns the ChainPosterior's four
    arrays and ``(lengthscale, log Z, next step)`` (the lengthscale and next step only
    from the search)."""
    I, R, d = coords.shape[0], Lams.shape[-1], kernel.state_dim
    head = jnp.stack([jnp.asarray(v, jnp.float64) for v in
                      (kernel.lengthscale, kernel.variance, step, bounds[0], bounds[1])])  # fmt: skip
    return _callback(partial(_host, kind, d), 3, I, R * d, head, coords, Lams, etas, n_valid)


def _call_given(kind, A1, Q1, Pinf, Lams, etas, n_valid):
    """The numba kernel ``kind`` on given transitions; returns the four arrays and
    ``(best candidate, log Z)``."""
    I, R, d = Lams.shape[0], Lams.shape[-1], A1.shape[-1]
    return _callback(partial(_host_given, kind), 2, I, R * d, A1, Q1, Pinf, Lams, etas, n_valid)


@dataclass(frozen=True)
class NativeSolver(ChainSolver):
    """Sequential filter and smoother compiled by numba, run on the host (CPU default)."""

    name = "native"

    def smooth(self, kernel, coords, Lams, etas, n_valid):
        if not numba_available():
            return smooth(kernel, coords, Lams, etas, n_valid=n_valid)
        n_valid = coords.shape[0] if n_valid is None else n_valid
        if isinstance(kernel, Matern):
            ms, Ps, sm, sP, tail = _call("smooth", kernel, coords, Lams, etas, n_valid)
        else:
            A1, Q1 = transition_blocks(kernel, coords)
            ms, Ps, sm, sP, tail = _call_given("smooth", A1, Q1, kernel.sde()[1], Lams, etas,
                                               n_valid)  # fmt: skip
        return ChainPosterior(ms, Ps, sm, sP, tail[1])

    def smooth_with_lengthscale_search(self, kernel, coords, Lams, etas, step, log_bounds,
                                       n_valid):  # fmt: skip
        if not numba_available():
            return smooth_with_lengthscale_search(kernel, coords, Lams, etas, step, log_bounds,
                                                  n_valid)  # fmt: skip
        n_valid = coords.shape[0] if n_valid is None else n_valid
        if isinstance(kernel, Matern):
            ms, Ps, sm, sP, tail = _call("search", kernel, coords, Lams, etas, n_valid, step,
                                         log_bounds)  # fmt: skip
            kernel = replace(kernel, lengthscale=tail[0])
            return kernel, ChainPosterior(ms, Ps, sm, sP, tail[1]), tail[2]
        theta, cands = search_candidates(kernel, step, log_bounds)

        def blocks(th):
            k = with_log_hyper(kernel, th)
            return (*transition_blocks(k, coords), k.sde()[1])

        ms, Ps, sm, sP, tail = _call_given("search", *jax.vmap(blocks)(cands), Lams, etas,
                                           n_valid)  # fmt: skip
        kernel, next_step = search_outcome(kernel, theta, cands, tail[0].astype(jnp.int32), step)
        return kernel, ChainPosterior(ms, Ps, sm, sP, tail[1]), next_step

    def interpolate(self, kernel, coords, n_valid, posterior, query):
        return interpolate(kernel, coords, n_valid, posterior, query)

    def samples(self, kernel, coords, n_valid, posterior, query, key, n_samples: int):
        return chain_samples(kernel, coords, n_valid, posterior, query, key, n_samples)

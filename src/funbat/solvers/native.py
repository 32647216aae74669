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

A plain Matérn's transitions are built inside the loops. For a sum of kernel parts
(:mod:`funbat.kernel_parts`) with a small state (at most :data:`GIVEN_MAX_STATE` per
component), whose transitions only the kernel knows, they are built first, for every
step at once, by the kernel's own ``transition``, and handed to the same loops; the
search then runs :func:`funbat.hyper.lengthscale_search` (the JAX solver's candidates
and rules) with the native filter and smoother. Larger states use the JAX functions. Without
numba installed the solver falls back to the JAX one, so a model file naming it loads
and predicts everywhere.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np

from ..hyper import lengthscale_search, smooth_with_lengthscale_search
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


def _f64(w):
    return np.ascontiguousarray(w).view(np.float64)[..., 0]


def _words_out(*arrays):
    return tuple(x.view(np.uint32).reshape(x.shape + (2,)) for x in arrays)


def _host(kind, d, head, coords, Lams, etas, n_valid):
    """The host side: the numba kernel ``kind`` on the unpacked arrays."""
    head, coords, Lams, etas = (_f64(x) for x in (head, coords, Lams, etas))
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
    return _words_out(ms, Ps, sm, sP, tail)


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
    """Whether the numba kernels build ``kernel``'s transitions themselves (a Matérn)."""
    return isinstance(kernel, Matern) and numba_available()


#: The largest state per component (``d``) whose chains run natively when the kernel
#: builds the transitions: a constant or a trend beside a Matérn (3 to 5). Larger ones
#: (``matern32 + periodic(365.25) + constant``: 14 at the default accuracy) ran no
#: faster in the loops than in JAX on beijing_pm25 (``benchmarks/sum_kernel_cost.py``
#: with this limit raised), and each ``(d, R)`` compiles its fully unrolled loops once
#: per machine.
GIVEN_MAX_STATE = 6


def _given(kernel) -> bool:
    """Whether ``kernel``'s transitions are built by the kernel and handed to the loops."""
    return (not isinstance(kernel, Matern) and kernel.state_dim <= GIVEN_MAX_STATE
            and numba_available())  # fmt: skip


def _transitions(kernel, coords):
    """``Pinf`` (d, d) and ``A``, ``Q`` (I, d, d): row ``j`` steps from ``coords[j - 1]``
    to ``coords[j]`` (row 0, from the prior, is not used)."""
    gaps = jnp.concatenate([jnp.full((1,), jnp.inf), jnp.diff(coords)])
    A, Q = kernel.transition(gaps)
    return kernel.sde()[1], A, Q


def _host_given(kind, d, Pinf, As, Qs, Lams, etas, n_valid, *filtered):
    """The host side for given transitions: ``"filter"`` (filtered moments and ``log
    Z``), ``"smooth"`` (filtered, smoothed and ``log Z``) or ``"rts"`` (the smoothed
    moments from the ``filtered`` ones)."""
    Pinf, As, Qs, Lams, etas = (_f64(x) for x in (Pinf, As, Qs, Lams, etas))
    I, R = Lams.shape[0], Lams.shape[1]
    D = R * d
    k = _kernels().kernels(d, R)
    n = int(n_valid)
    if kind == "rts":
        ms, Ps = (_f64(x) for x in filtered)
        sm, sP = ms.copy(), Ps.copy()
        k.rts_given(As, Qs, ms, Ps, n, sm, sP)
        return _words_out(sm, sP)
    ms, Ps = np.empty((I, D)), np.empty((I, D, D))
    if kind == "filter":
        logZ = k.filter_given(Pinf, As, Qs, Lams, etas, n, ms, Ps)
        return _words_out(ms, Ps, np.array([logZ]))
    sm, sP = np.empty((I, D)), np.empty((I, D, D))
    logZ = k.smooth_given(Pinf, As, Qs, Lams, etas, n, ms, Ps, sm, sP)
    return _words_out(ms, Ps, sm, sP, np.array([logZ]))


def _call_given(kind, kernel, coords, Lams, etas, n_valid, filtered=()):
    """Run :func:`_host_given` from traced code; float64 arrays back."""
    Pinf, A, Q = _transitions(kernel, coords)
    I, R, d = coords.shape[0], Lams.shape[-1], kernel.state_dim
    D = R * d
    S = jax.ShapeDtypeStruct
    shapes = {"filter": ((I, D), (I, D, D), (1,)), "rts": ((I, D), (I, D, D)),
              "smooth": ((I, D), (I, D, D), (I, D), (I, D, D), (1,))}[kind]  # fmt: skip
    out = jax.pure_callback(
        partial(_host_given, kind, d), tuple(S(sh + (2,), np.uint32) for sh in shapes),
        *(_to_words(x) for x in (Pinf, A, Q, Lams, etas)), jnp.asarray(n_valid, jnp.int32),
        *(_to_words(x) for x in filtered), vmap_method="sequential",
    )  # fmt: skip
    return [_from_words(w) for w in out]


@dataclass(frozen=True)
class NativeSolver(ChainSolver):
    """Sequential filter and smoother compiled by numba, run on the host (CPU default)."""

    name = "native"

    def smooth(self, kernel, coords, Lams, etas, n_valid):
        if _given(kernel):
            n_valid = coords.shape[0] if n_valid is None else n_valid
            ms, Ps, sm, sP, tail = _call_given("smooth", kernel, coords, Lams, etas, n_valid)
            return ChainPosterior(ms, Ps, sm, sP, tail[0])
        if not _native(kernel):
            return smooth(kernel, coords, Lams, etas, n_valid=n_valid)
        n_valid = coords.shape[0] if n_valid is None else n_valid
        ms, Ps, sm, sP, tail = _call("smooth", kernel, coords, Lams, etas, n_valid)
        return ChainPosterior(ms, Ps, sm, sP, tail[1])

    def smooth_with_lengthscale_search(self, kernel, coords, Lams, etas, step, log_bounds,
                                       n_valid):  # fmt: skip
        if _given(kernel):
            n = coords.shape[0] if n_valid is None else n_valid

            def filter_fn(k):
                ms, Ps, tail = _call_given("filter", k, coords, Lams, etas, n)
                return (ms, Ps), tail[0]

            def smoother_fn(k, filtered, logZ):
                sm, sP = _call_given("rts", k, coords, Lams, etas, n, filtered)
                return ChainPosterior(filtered[0], filtered[1], sm, sP, logZ)

            return lengthscale_search(kernel, step, log_bounds, filter_fn, smoother_fn)
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

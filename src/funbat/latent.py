"""Moments of the latent value ``f(x) = W x_1 u^1(x^1) ... x_K u^K(x^K)``.

From the core's moments and each mode's moments at the entries' (or queries')
coordinates: the mean ``E[f]`` and second moment ``E[f^2]`` under the mean-field
posterior (``docs/theory.md`` section 6). Used by the passes over the entries
(:mod:`funbat.backends`) and by prediction (:mod:`funbat.inference.predict`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from . import updates as U

__all__ = ["contract", "entry_predictions", "latent_moments"]


def contract(core_moment, factors, second: bool):
    """Contract core moments with per-query mode moments, one mode at a time.

    ``second=False``: mean (P,) with factors (n, R_k) -> (n,).
    ``second=True``: E[w w^T] (P, P) with factors (n, R_k, R_k) -> (n,).
    The first contraction is a matrix product, so nothing of size (n, P^2) is formed:
    the largest intermediate is (n, P^2 / R_1^2).
    """
    ranks = [f.shape[1] for f in factors]
    n, K = factors[0].shape[0], len(ranks)
    if second:
        T = core_moment.reshape(tuple(ranks) * 2)
        T = jnp.transpose(T, [a for k in range(K) for a in (k, K + k)])
        flat = [f.reshape(n, -1) for f in factors]
    else:
        T = core_moment
        flat = list(factors)
    X = flat[0] @ T.reshape(flat[0].shape[1], -1)
    for f in flat[1:]:
        X = jnp.sum(X.reshape(n, f.shape[1], -1) * f[:, :, None], axis=1)
    return X[:, 0]


@partial(jax.jit, static_argnames=("structure",))
def latent_moments(core, means, seconds, *, structure):
    """Mean and ``E[f^2]`` (n,) each of the standardised latent value.

    ``core`` : ``updates.CoreMoments`` (None for CP: the super-diagonal of ones);
    ``means`` : K arrays (n, R_k); ``seconds`` : K arrays (n, R_k, R_k).
    """
    if structure == "cp":
        m = jnp.prod(jnp.stack(means), axis=0).sum(axis=1)
        s = jnp.prod(jnp.stack(seconds), axis=0).sum(axis=(1, 2))
        return m, s
    m = contract(core.mean, means, second=False)
    s = contract(U.core_second_moment(core), seconds, second=True)
    return m, s


@partial(jax.jit, static_argnames=("structure", "chunk"))
def entry_predictions(idx, means, seconds, core, *, structure, chunk):
    """Mean and variance of every entry's latent value ``f_n``, (N,) each, ``chunk``
    entries at a time (standardised units). ``idx`` (N, K), N a multiple of ``chunk``;
    ``means``, ``seconds`` the modes' moments at their coordinates."""

    def one(ix):
        mom = [(mu[ix[:, k]], se[ix[:, k]]) for k, (mu, se) in enumerate(zip(means, seconds))]
        m, e2 = latent_moments(core, [a for a, _ in mom], [b for _, b in mom], structure=structure)
        return m, e2 - m**2

    K = idx.shape[1]
    m, v = jax.lax.map(one, idx.reshape(-1, chunk, K))
    return m.reshape(-1), v.reshape(-1)

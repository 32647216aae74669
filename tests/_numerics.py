"""Helpers shared by the numerical tests (imported by test modules and conftest)."""

import jax
import jax.numpy as jnp
import numpy as np

from funbat import kalman
from funbat.modes import categories, points


def random_messages(rng, n, rank):
    """``(Lams (n, R, R), etas (n, R))``: random Gaussian site messages, some precisions
    singular (of random rank ``0..R``), their ``eta`` zero when the precision is."""
    Lams, etas = [], []
    for _ in range(n):
        a = rng.normal(size=(rank, rng.integers(0, rank + 1)))
        Lams.append(a @ a.T * 2.0)
        etas.append(rng.normal(size=rank) if a.shape[1] else np.zeros(rank))
    return np.array(Lams), np.array(etas)


def random_chain(rng, I, rank, n_valid=None, near=None):
    """A chain's inputs as JAX arrays: sorted coordinates ``t`` (I,) on [0, 3], messages
    (:func:`random_messages`) zero past ``n_valid`` (padding); ``near``: the index
    ``j`` of a coordinate put ``1e-7`` after coordinate ``j - 1`` (a nearly repeated
    coordinate), None for none."""
    n_valid = I if n_valid is None else n_valid
    t = np.sort(rng.uniform(0, 3, size=I))
    if near is not None:
        t[near] = t[near - 1] + 1e-7
    Lams, etas = random_messages(rng, I, rank)
    Lams[n_valid:], etas[n_valid:] = 0.0, 0.0
    return jnp.asarray(t), jnp.asarray(Lams), jnp.asarray(etas)


def assert_close(a, b, rtol=1e-9):
    """``a == b`` to ``rtol`` relative, and absolute ``rtol * max(1, max |b|)``."""
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, np.abs(b).max()))


# The chain smoother and interpolation compiled, as the engine runs them. Called eagerly,
# every new shape costs a compilation of each small operation in their loops (seconds
# per test); the tests compare these against dense references.
smooth = jax.jit(kalman.smooth)
interpolate = jax.jit(kalman.interpolate)
# the dense modes' posteriors likewise (one compilation per shape instead of hundreds)
points_posterior = jax.jit(points.points_posterior, static_argnames=("learn",))
categories_posterior = jax.jit(categories.categories_posterior)

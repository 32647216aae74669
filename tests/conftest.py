"""Shared test fixtures: float64 JAX for the numerical modules, random Gaussian messages."""

import jax
import numpy as np
import pytest


@pytest.fixture
def x64():
    """Run a test with JAX in float64, as the library's own calls do."""
    with jax.enable_x64(True):
        yield


@pytest.fixture
def random_messages():
    """``make(rng, n, rank) -> (Lams (n, R, R), etas (n, R))``; some precisions singular."""

    def make(rng, n, rank):
        Lams, etas = [], []
        for _ in range(n):
            a = rng.normal(size=(rank, rng.integers(0, rank + 1)))
            Lams.append(a @ a.T * 2.0)
            etas.append(rng.normal(size=rank) if a.shape[1] else np.zeros(rank))
        return np.array(Lams), np.array(etas)

    return make

"""Synthetic continuous-indexed data from known latent functions, and the shared data.

Used by ``funbat demo``, the tests and the benchmarks: the truth is known, so a fit can
be judged against the noise level and its intervals against their nominal coverage.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = ["Synthetic", "make_synthetic", "make_synthetic_counts", "make_synthetic_ranked",
           "shared_data_dir"]  # fmt: skip


class Synthetic(NamedTuple):
    """A synthetic dataset.

    Attributes
    ----------
    X : DataFrame, (N, K)
        One continuous coordinate column per mode (``x0``, ``x1``, ...; mode 0 is a
        ``date`` column of dates when ``dates=True``).
    y : array, (N,)
        Noisy observations.
    f : array, (N,)
        Noiseless values.
    noise_std : float
        Standard deviation of the noise added to ``f``.
    """

    X: pd.DataFrame
    y: np.ndarray
    f: np.ndarray
    noise_std: float


def _functions(k: int, rank: int, rng: np.random.Generator):
    """``rank`` smooth functions on [0, 1] for mode ``k``: sines of random frequency."""
    freq = rng.uniform(0.5, 2.5, size=rank)
    phase = rng.uniform(0, 2 * np.pi, size=rank)

    def u(x):
        return np.sin(2 * np.pi * freq * np.asarray(x)[:, None] + phase)

    return u


def make_synthetic(
    n: int = 20_000,
    *,
    n_modes: int = 3,
    rank: int = 2,
    n_unique: int = 200,
    noise_std: float = 0.1,
    dates: bool = False,
    seed: int = 0,
) -> Synthetic:
    """Draw ``n`` entries ``y = sum W[r] prod_k u^k_r(x^k) + noise`` from known functions.

    Parameters
    ----------
    n : number of entries.
    n_modes : number of modes K.
    rank : rank of the true Tucker core (R per mode).
    n_unique : unique coordinates per mode, drawn uniformly in [0, 1] (repeats are
        normal: several entries share coordinates).
    noise_std : standard deviation of the Gaussian noise, in the units of y.
    dates : make mode 0 a date column (one day per unique coordinate step).
    seed : random seed.
    """
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(rank,) * n_modes)
    cols, factors = {}, []
    for k in range(n_modes):
        grid = np.sort(rng.uniform(0, 1, size=n_unique))
        x = grid[rng.integers(0, n_unique, size=n)]
        factors.append(_functions(k, rank, rng)(x))
        cols[f"x{k}"] = x
    f = W.reshape(-1) @ _kron_rows(factors).T
    f = f / f.std()
    y = f + noise_std * rng.normal(size=n)
    X = pd.DataFrame(cols)
    if dates:
        days = np.round(X["x0"].to_numpy() * 3 * 365).astype(int)
        X = X.rename(columns={"x0": "date"})
        X["date"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(days, unit="D")
    return Synthetic(X, y, f, noise_std)


def _gp_draws(grid: np.ndarray, rank: int, lengthscale: float, rng: np.random.Generator):
    """``rank`` independent Matérn-3/2 GP draws (unit variance) on ``grid`` (I,) -> (I, R)."""
    d = np.sqrt(3.0) * np.abs(grid[:, None] - grid[None, :]) / lengthscale
    K = (1.0 + d) * np.exp(-d) + 1e-8 * np.eye(grid.size)
    return np.linalg.cholesky(K) @ rng.normal(size=(grid.size, rank))


def make_synthetic_ranked(
    n: int = 20_000,
    *,
    ranks=(3, 3, 3),
    structure: str = "cp",
    n_unique: int = 50,
    noise_std: float = 0.1,
    lengthscale: float = 0.2,
    seed: int = 0,
) -> Synthetic:
    """Entries from the model with a known rank: each mode's functions independent
    Matérn-3/2 GP draws on [0, 1], combined by CP (``ranks`` all equal, the core of ones)
    or by a Tucker core of iid N(0, 1) entries and multilinear rank ``ranks``; ``f`` is
    scaled to unit standard deviation, ``y = f + noise_std * N(0, 1)``. With
    ``noise_std`` > 0 and ``f`` set to 0 (``ranks`` all 0) it is pure noise."""
    rng = np.random.default_rng(seed)
    ranks = tuple(int(r) for r in ranks)
    cols, factors = {}, []
    for k, R in enumerate(ranks):
        grid = np.sort(rng.uniform(0, 1, size=n_unique))
        x = grid[rng.integers(0, n_unique, size=n)]
        factors.append(_gp_draws(grid, max(R, 1), lengthscale, rng)[np.searchsorted(grid, x)])
        cols[f"x{k}"] = x
    if min(ranks) == 0:
        f = np.zeros(n)
    elif structure == "cp":
        f = np.sum(np.prod(np.stack(factors), axis=0), axis=1)
    else:
        W = rng.normal(size=ranks)
        f = W.reshape(-1) @ _kron_rows(factors).T
    if f.std() > 0:
        f = f / f.std()
    y = f + noise_std * rng.normal(size=n)
    return Synthetic(pd.DataFrame(cols), y, f, noise_std)


def make_synthetic_counts(n: int, family: str, *, seed: int = 0):
    """Yes/no or count data from the model: a rank-2 Tucker latent on 3 modes (30
    coordinates each, :func:`make_synthetic`) through the family's link.

    ``family``: ``"bernoulli"`` (log-odds ``1.5 f - 0.5``), ``"poisson"`` (log-mean
    ``0.7 f + 1``) or ``"negative_binomial"`` (log-mean ``0.7 f + 1.5``, dispersion 4).
    Returns ``X`` (n, 3) DataFrame, ``y`` (n,) 0/1 or counts (float) and the true
    log-odds / log-mean (n,).
    """
    if family not in ("bernoulli", "poisson", "negative_binomial"):
        raise ValueError(f"family must be bernoulli, poisson or negative_binomial; got {family!r}")
    d = make_synthetic(n, n_modes=3, rank=2, n_unique=30, seed=seed)
    rng = np.random.default_rng(seed + 100)
    if family == "bernoulli":
        truth = 1.5 * d.f - 0.5
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-truth))).astype(float)
    elif family == "poisson":
        truth = 0.7 * d.f + 1.0
        y = rng.poisson(np.exp(truth)).astype(float)
    else:
        truth, r = 0.7 * d.f + 1.5, 4.0
        y = rng.negative_binomial(r, r / (r + np.exp(truth))).astype(float)
    return d.X, y, truth


def _kron_rows(factors):
    """Row-wise Kronecker product of (n, R_k) factors -> (n, prod R_k)."""
    out = factors[0]
    for f in factors[1:]:
        out = (out[:, :, None] * f[:, None, :]).reshape(out.shape[0], -1)
    return out


def shared_data_dir() -> Path:
    """``../shared/data`` next to the project root (where the real datasets live)."""
    return Path(__file__).resolve().parents[2] / ".." / "shared" / "data"

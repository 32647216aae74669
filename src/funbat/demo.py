"""The built-in default job: fit synthetic data from known functions and judge the fit."""

from __future__ import annotations

import time

import numpy as np

from .datasets import make_synthetic, protocol_split
from .estimator import FunBaT, FunBaTCP

__all__ = ["run_demo"]


def run_demo(
    n: int = 20_000, *, seed: int = 0, model: str = "tucker", rank: int = 3, max_iter: int = 100
) -> dict:
    """Fit a synthetic 3-mode dataset (dates in mode 0) and score it on held-out entries.

    Returns a dict: rmse and noise_std (same units), coverage95 (fraction of test targets
    inside the 95% predictive interval), nlpd, fit_time_s (compilation included),
    n_train, n_test, n_iter.
    """
    if model not in ("tucker", "cp"):
        raise ValueError(f"unknown model {model!r}; choose 'tucker' or 'cp'")
    data = make_synthetic(n, dates=True, seed=seed)
    train, test = protocol_split(n, seed)
    cls = FunBaT if model == "tucker" else FunBaTCP
    est = cls(rank=rank, max_iter=max_iter, random_state=seed)
    t0 = time.perf_counter()
    est.fit(data.X.iloc[train], data.y[train])
    fit_time = time.perf_counter() - t0
    mean, std = est.predict(data.X.iloc[test], return_std=True)
    err = data.y[test] - mean
    return {
        "model": model,
        "rank": rank,
        "rmse": float(np.sqrt(np.mean(err**2))),
        "noise_std": data.noise_std,
        "coverage95": float(np.mean(np.abs(err) <= 1.959964 * std)),
        "nlpd": float(np.mean(0.5 * np.log(2 * np.pi * std**2) + 0.5 * (err / std) ** 2)),
        "fit_time_s": fit_time,
        "n_train": int(train.size),
        "n_test": int(test.size),
        "n_iter": int(est.n_iter_),
    }

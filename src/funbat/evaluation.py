"""Predictive metrics and the paper's random-split evaluation protocol.

Protocol (``shared/data/README.md``): for split ``s``, with rows in file order,
``perm = np.random.default_rng(s).permutation(N)``; the first ``N // 5`` rows of
``perm`` are the test set, the rest the training set.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from .calibration import Predictive
from .data import InputError

__all__ = [
    "METRICS",
    "evaluate_splits",
    "predictive_metrics",
    "split_indices",
    "summarise",
    "warn_once_per_kind",
]

#: Metric names, in report order.
METRICS = ("rmse", "mae", "nlpd", "coverage95", "fit_time_s")


def predictive_metrics(y, pred: Predictive) -> dict[str, float]:
    """RMSE and MAE of the predictive mean, negative log predictive density and the
    coverage of the central 95% interval of ``pred`` (Gaussian or Student-t)."""
    err = np.asarray(y, float) - np.asarray(pred.mean, float)
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "nlpd": pred.nlpd(y),
        "coverage95": pred.coverage(y, 0.95),
    }


def split_indices(n: int, split: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices of split ``split`` of ``n`` rows (an 80/20 split)."""
    perm = np.random.default_rng(split).permutation(n)
    return perm[n // 5 :], perm[: n // 5]


def evaluate_splits(
    make_model: Callable,
    X: pd.DataFrame,
    y,
    n_splits: int = 5,
    on_split: Callable | None = None,
) -> list[dict]:
    """Fit a fresh ``make_model()`` on each split's training rows, score its test rows.

    Returns one dict per split: ``split``, ``n_train``, ``n_test`` and :data:`METRICS`.
    ``on_split(result)`` is called after each split. Warnings of the fits are held
    until the last split and then each is given once, saying in how many splits it
    arose (:func:`warn_once_per_kind`), so a table printed by ``on_split`` stays whole.
    """
    if isinstance(n_splits, bool) or not isinstance(n_splits, int) or n_splits < 1:
        raise InputError(f"the number of splits must be a positive integer; got {n_splits!r}")
    y = np.asarray(y)
    n = len(y)
    if n // 5 < 1 or n - n // 5 < 2:
        raise InputError(f"need at least 5 rows to make an 80/20 split; got {n}")
    results, caught = [], []
    for s in range(n_splits):
        train, test = split_indices(n, s)
        model = make_model()
        with warnings.catch_warnings(record=True) as held:
            warnings.simplefilter("always")
            model.fit(X.iloc[train].reset_index(drop=True), y[train])
            pred = model.predictive(X.iloc[test].reset_index(drop=True))
        caught.append(held)
        res = {"split": s, "n_train": int(train.size), "n_test": int(test.size)}
        res.update(predictive_metrics(y[test], pred))
        res["fit_time_s"] = float(model.fit_time_)
        results.append(res)
        if on_split is not None:
            on_split(res)
    warn_once_per_kind(caught)
    return results


def warn_once_per_kind(caught: list[list[warnings.WarningMessage]]) -> None:
    """Give each kind of warning recorded over several fits once.

    ``caught`` holds the warnings of each fit. Warnings of one kind (the same category
    and text up to its figures) become one warning, with the figures of the first fit
    that gave it and the number of fits that did.
    """
    kinds: dict[tuple, tuple] = {}  # kind -> (first message, fits, distinct texts)
    for fit, held in enumerate(caught):
        for w in held:
            text = str(w.message)
            first, fits, texts = kinds.setdefault(
                (w.category, re.sub(r"\d[\d,.]*", "#", text)), (text, set(), set())
            )
            fits.add(fit)
            texts.add(text)
    for (category, _), (first, fits, texts) in kinds.items():
        where = f"in {len(fits)} of {len(caught)} splits"
        if len(texts) > 1:
            where += f"; figures from split {min(fits)}"
        warnings.warn(f"{first} ({where})", category, stacklevel=3)


def summarise(results: list[dict]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation (ddof=1; 0 for one split) of each metric."""
    out = {}
    for k in METRICS:
        v = np.array([r[k] for r in results], float)
        out[k] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0}
        if not math.isfinite(out[k]["std"]):
            out[k]["std"] = 0.0
    return out

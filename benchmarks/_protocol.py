"""Shared data loading, split protocol and metrics for the paper-table benchmark.

The protocol follows ``shared/data/README.md``: for split ``s`` in 0..4, with rows in file
order, ``perm = np.random.default_rng(s).permutation(N)``; the first ``N // 5`` indices are
the test set and the rest the training set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from funbat.calibration import coverage, nlpd
from funbat.evaluation import split_indices

__all__ = ["DATASETS", "Dataset", "load_dataset", "metrics", "split_indices", "validation_split"]

# name -> (file, coordinate columns (mode order), target column, date columns)
DATASETS: dict[str, tuple[str, list[str], str, list[str]]] = {
    "beijing_pm25": ("beijing_pm25.csv", ["temp_c", "pres_hpa", "date"], "pm25_z", ["date"]),
    "us_temp": ("us_temp.csv", ["lat01", "lon01", "year"], "temp_f", []),
}

_DAY = np.timedelta64(1, "D")


@dataclass
class Dataset:
    name: str
    frame: pd.DataFrame  # coordinate columns (dates parsed as datetime64) + target
    coord_cols: list[str]
    target: str

    @property
    def X_df(self) -> pd.DataFrame:
        """Coordinates as a DataFrame (date columns are datetime64)."""
        return self.frame[self.coord_cols]

    @property
    def X(self) -> np.ndarray:
        """Coordinates as a float array; dates become days since 1970-01-01."""
        cols = []
        for c in self.coord_cols:
            s = self.frame[c]
            if np.issubdtype(s.dtype, np.datetime64):
                cols.append((s.to_numpy() - np.datetime64("1970-01-01")) / _DAY)
            else:
                cols.append(s.to_numpy(dtype=float))
        return np.column_stack(cols).astype(float)

    @property
    def y(self) -> np.ndarray:
        return self.frame[self.target].to_numpy(dtype=float)

    def __len__(self) -> int:
        return len(self.frame)


def load_dataset(name: str, data_dir: Path) -> Dataset:
    fname, coords, target, dates = DATASETS[name]
    path = Path(data_dir) / fname
    if not path.is_file():
        raise FileNotFoundError(path)
    frame = pd.read_csv(path)
    missing = [c for c in [*coords, target] if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    for c in dates:
        frame[c] = pd.to_datetime(frame[c], format="ISO8601")
    return Dataset(name=name, frame=frame[[*coords, target]], coord_cols=coords, target=target)


def validation_split(n: int, seed: int, frac: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) indices inside a *training* set, for hyperparameter tuning."""
    perm = np.random.default_rng(10_000 + seed).permutation(n)
    n_val = max(1, int(round(frac * n)))
    return perm[n_val:], perm[:n_val]


def metrics(y: np.ndarray, mean: np.ndarray, std: np.ndarray | None = None) -> dict[str, float]:
    """RMSE, MAE and, given a Gaussian predictive std, NLPD and 95% coverage."""
    err = np.asarray(y, dtype=float) - np.asarray(mean, dtype=float)
    out = {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "nlpd": None,
        "coverage95": None,
    }
    if std is not None:
        out["nlpd"] = nlpd(y, mean, std)
        out["coverage95"] = coverage(y, mean, std, 0.95)
    return out

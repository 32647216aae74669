"""From user tables to per-mode coordinates, index maps and scaling.

A *mode* is one column of the input: its values are real coordinates (floats, or dates
read as days since 1970-01-01). Each mode is scaled to ``[0, 1]`` by its training
range, and each entry is mapped to the rank of its coordinate among the mode's sorted
unique training coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "InputError",
    "ModeEncoding",
    "as_mode_columns",
    "as_target",
    "encode_modes",
]

_NS_PER_DAY = 86_400 * 10**9


class InputError(ValueError):
    """Bad user input: a message that names the problem and what to do."""


@dataclass(frozen=True)
class ModeEncoding:
    """How one mode's user coordinates map to the model's scaled coordinates.

    Attributes
    ----------
    name : str
        Column name (``"x0"``, ``"x1"``... for arrays).
    is_datetime : bool
        True when the user gave dates; coordinates are then days since 1970-01-01.
    offset, scale : float
        ``scaled = (x - offset) / scale``: the training range maps to ``[0, 1]``.
    unique : (I,) array
        Sorted unique training coordinates, scaled.
    """

    name: str
    is_datetime: bool
    offset: float
    scale: float
    unique: np.ndarray

    def scaled(self, x: np.ndarray) -> np.ndarray:
        """User coordinates (n,) -> scaled coordinates (n,)."""
        return (np.asarray(x, float) - self.offset) / self.scale

    def unscaled(self, s: np.ndarray) -> np.ndarray:
        """Scaled coordinates (n,) -> user coordinates (n,) (days for dates)."""
        return np.asarray(s, float) * self.scale + self.offset


def _column_to_float(values, name: str) -> tuple[np.ndarray, bool]:
    """One input column -> float coordinates and whether it held dates."""
    s = pd.Series(values) if not isinstance(values, pd.Series) else values
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        if s.isna().any():
            raise InputError(f"column {name!r} has missing dates; drop or fill those rows")
        ns = s.to_numpy(dtype="datetime64[ns]").astype(np.int64)
        return ns / _NS_PER_DAY, True
    if pd.api.types.is_bool_dtype(s.dtype) or not pd.api.types.is_numeric_dtype(s.dtype):
        bad = s[pd.to_numeric(s, errors="coerce").isna() & s.notna()]
        example = repr(bad.iloc[0]) if len(bad) else repr(s.iloc[0])
        raise InputError(
            f"column {name!r} is not numeric (e.g. {example}); coordinates must be numbers or dates"
        )
    x = s.to_numpy(dtype=float)
    if not np.all(np.isfinite(x)):
        n_bad = int(np.sum(~np.isfinite(x)))
        raise InputError(
            f"column {name!r} has {n_bad} NaN or infinite value(s); drop those rows first"
        )
    return x, False


def as_mode_columns(
    X, names: list[str] | None = None
) -> tuple[list[str], list[np.ndarray], list[bool]]:
    """Split ``X`` into one float array per mode.

    Parameters
    ----------
    X : pandas DataFrame (one column per mode) or array-like (N, K)
        Dates (``datetime64`` columns) become days since 1970-01-01.
    names : optional list of mode names for arrays.

    Returns
    -------
    names, columns (K arrays of shape (N,)), is_datetime flags.
    """
    if isinstance(X, pd.DataFrame):
        cols = [str(c) for c in X.columns]
        series = [X.iloc[:, i] for i in range(X.shape[1])]
    else:
        arr = np.asarray(X)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise InputError(f"X must be a table or a 2-D array (N, K); got {arr.ndim} dimensions")
        cols = names or [f"x{i}" for i in range(arr.shape[1])]
        if len(cols) != arr.shape[1]:
            raise InputError(f"X has {arr.shape[1]} columns but {len(cols)} mode names were given")
        series = [pd.Series(arr[:, i]) for i in range(arr.shape[1])]
    if not series:
        raise InputError("X has no columns; give one column per mode")
    out, dt = [], []
    for name, s in zip(cols, series):
        x, is_dt = _column_to_float(s, name)
        out.append(x)
        dt.append(is_dt)
    return cols, out, dt


def as_target(y, n: int) -> np.ndarray:
    """Validate the target: (N,) finite floats matching ``X``'s rows."""
    try:
        arr = np.asarray(y, dtype=float)
    except (TypeError, ValueError) as err:
        raise InputError(f"target is not numeric ({err}); give numbers") from None
    arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.ndim != 1:
        raise InputError(f"y must be one-dimensional (N,); got shape {arr.shape}")
    if arr.shape[0] != n:
        raise InputError(f"X has {n} rows but y has {arr.shape[0]}; they must match")
    if not np.all(np.isfinite(arr)):
        n_bad = int(np.sum(~np.isfinite(arr)))
        raise InputError(f"target has {n_bad} NaN or infinite value(s); drop those rows first")
    return arr


def encode_modes(names, columns, is_datetime) -> tuple[list[ModeEncoding], np.ndarray]:
    """Scale each mode to ``[0, 1]`` and index entries by unique coordinate.

    Returns the encodings and ``idx`` (N, K) int32 with ``idx[n, k]`` the position of
    entry ``n``'s coordinate among mode ``k``'s sorted unique coordinates.
    """
    encodings, idx = [], []
    for name, x, is_dt in zip(names, columns, is_datetime):
        uniq, inverse = np.unique(x, return_inverse=True)
        lo, hi = float(uniq[0]), float(uniq[-1])
        scale = hi - lo if hi > lo else 1.0
        encodings.append(ModeEncoding(name, is_dt, lo, scale, (uniq - lo) / scale))
        idx.append(inverse.astype(np.int32))
    return encodings, np.stack(idx, axis=1)

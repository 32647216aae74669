"""Entry backends: where the training entries live and how passes over them run.

* :class:`~funbat.backends.memory.MemoryEntries`: arrays in this process;
* :class:`~funbat.backends.dask.DaskEntries`: partitions of a Dask DataFrame (or
  Parquet files) on a cluster, needs the ``[dask]`` extra.

Both implement :class:`~funbat.backends.base.EntryBackend`; :func:`entries_from_input`
picks one from the type of the training data.
"""

from __future__ import annotations

import os

from ..data import (
    InputError,
    as_modes,
    as_target,
    drop_duplicate_rows,
    encode_modes,
    group_many_columns,
    warn_duplicates,
)
from ..dense import MAX_SPATIAL_POINTS
from .base import EntryBackend, EntryBlock
from .memory import MemoryEntries

__all__ = ["EntryBackend", "EntryBlock", "MemoryEntries", "entries_from_input", "is_dask_input"]


def is_dask_input(X) -> bool:
    """True for a Dask DataFrame, or a path/glob of Parquet files (``str`` or path)."""
    return isinstance(X, (str, os.PathLike)) or type(X).__module__.split(".")[0] == "dask"


def entries_from_input(X, y, modes=None, discrete=None, duplicates="drop") -> EntryBackend:
    """Validate and encode training data into the backend its type calls for.

    ``X`` : pandas DataFrame, array (N, K), xarray.DataArray (``y=None``), a dask
    DataFrame or a path/glob of Parquet files (``y`` the target column's name);
    ``modes``, ``discrete`` : the estimators' parameters (in-memory data only);
    ``duplicates`` : ``"drop"`` exact duplicate rows with a warning, or ``"keep"`` them.
    """
    if is_dask_input(X):
        from .dask import DaskEntries  # needs the [dask] extra

        if modes is not None or discrete is not None:
            raise InputError(
                "with Dask data every column but the target is one continuous mode; "
                "modes= and discrete= need in-memory data"
            )
        return DaskEntries.from_input(X, y, duplicates)
    if y is None:
        from ..files import from_dataarray

        X, y = from_dataarray(X)
    names, columns, is_dt, kinds = as_modes(X, modes, discrete)
    if modes is None:
        names, columns, is_dt, kinds = group_many_columns(
            names, columns, is_dt, kinds, MAX_SPATIAL_POINTS
        )
    y = as_target(y, columns[0].shape[0])
    if y.shape[0] < 2:
        raise InputError(f"need at least 2 observations to fit; got {y.shape[0]}")
    encodings, idx = encode_modes(names, columns, is_dt, kinds)
    n_rows = y.shape[0]
    idx, y, n_repeat = drop_duplicate_rows(idx, y) if duplicates == "drop" else (idx, y, 0)
    if n_repeat:
        warn_duplicates(n_repeat, n_rows, stacklevel=3)
    if y.shape[0] < 2:
        raise InputError(f"need at least 2 different observations to fit; got {y.shape[0]}")
    return MemoryEntries(encodings, idx, y)

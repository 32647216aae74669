"""Tables in and out: CSV/Parquet reading, xarray conversion, atomic writes.

Every file funbat writes goes through :func:`atomic_write`: the content is written to a
temporary file next to the target and renamed over it only once complete, so an
interrupted or failed command never leaves a partial file and never replaces good
output with bad.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from .data import InputError

__all__ = [
    "TABLE_SUFFIXES",
    "atomic_write",
    "from_dataarray",
    "missing_rows",
    "parse_dates",
    "predict_grid",
    "read_table",
    "select_columns",
    "write_table",
]

#: File suffixes read and written as tables, and their formats.
TABLE_SUFFIXES: dict[str, str] = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


def _table_format(path: Path) -> str:
    fmt = TABLE_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{str(path)!r} has an unknown table extension {path.suffix!r}; "
            f"use one of {', '.join(sorted(TABLE_SUFFIXES))}"
        )
    return fmt


def _permissions(path: Path) -> int:
    """Mode bits for a new file at ``path``: the old file's, else 0o666 less the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb") -> Iterator:
    """Open a temporary file next to ``path``; rename it over ``path`` on success.

    On any exception (including KeyboardInterrupt) the temporary file is removed and
    ``path`` is left as it was.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise InputError(f"cannot write {str(path)!r}: folder {str(directory)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _permissions(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def parse_dates(df: pd.DataFrame) -> pd.DataFrame:
    """Text columns whose every value is an ISO date/time become ``datetime64`` columns."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if not (pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)):
            continue
        values = s.dropna()
        if values.empty or not all(isinstance(v, str) for v in values):
            continue
        try:
            out[col] = pd.to_datetime(s, format="ISO8601")
        except (ValueError, TypeError, OverflowError):
            continue
    return out


def read_table(path) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file (chosen by extension); ISO dates become datetimes.

    Raises :class:`~funbat.InputError` with a one-line message when the file is
    missing, empty, unreadable or of an unknown kind.
    """
    path = Path(path)
    fmt = _table_format(path)
    if not path.exists():
        raise InputError(f"file {str(path)!r} does not exist")
    if path.is_dir():
        raise InputError(f"{str(path)!r} is a folder, not a data file")
    if path.stat().st_size == 0:
        raise InputError(f"file {str(path)!r} is empty")
    try:
        if fmt == "parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, sep="\t" if fmt == "tsv" else ",")
    except pd.errors.EmptyDataError:
        raise InputError(f"file {str(path)!r} has no data") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"cannot read {str(path)!r} as {fmt}: {first}") from None
    if df.shape[1] == 0 or df.shape[0] == 0:
        raise InputError(f"file {str(path)!r} has no data rows")
    df.columns = [str(c) for c in df.columns]
    if fmt == "csv" and df.shape[1] == 1:
        for sep in (";", "\t", "|"):
            if sep in df.columns[0]:
                raise InputError(
                    f"file {str(path)!r} reads as one column {df.columns[0]!r}: its values "
                    f"seem separated by {sep!r}, but a .csv is read as comma-separated; "
                    "save it with commas (or tabs, as .tsv)"
                )
    return parse_dates(df)


def write_table(df: pd.DataFrame, path) -> None:
    """Write ``df`` as CSV, TSV or Parquet (by extension), atomically."""
    path = Path(path)
    fmt = _table_format(path)
    if fmt == "parquet":
        with atomic_write(path, "wb") as f:
            df.to_parquet(f, index=False)
    else:
        with atomic_write(path, "w") as f:
            df.to_csv(f, index=False, sep="\t" if fmt == "tsv" else ",", lineterminator="\n")


def missing_rows(df: pd.DataFrame, columns) -> np.ndarray:
    """Boolean mask (N,) of rows with a missing or infinite value in any of ``columns``."""
    bad = np.zeros(len(df), bool)
    for c in columns:
        bad |= _non_finite(df[c])
    return bad


def _non_finite(s: pd.Series) -> np.ndarray:
    """Rows of ``s`` that are missing, or infinite when numeric."""
    bad = s.isna().to_numpy().copy()
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        bad |= ~np.isfinite(s.to_numpy(dtype=float, na_value=np.nan))
    return bad


def select_columns(
    df: pd.DataFrame,
    coords: list[str] | None,
    target: str | None,
    *,
    dropna: bool = False,
    action: str = "fit",
) -> tuple[pd.DataFrame, pd.Series | None, int]:
    """Pick the mode columns and the target from a table.

    Parameters
    ----------
    coords : mode column names; None means every column except the target.
    target : target column name, or None (prediction).
    dropna : drop rows with missing or infinite values in the chosen columns instead of
        raising.
    action : what the rows are for (``"fit"``, ``"predict"``), as the error says it.

    Returns
    -------
    X, y (None without target), and the number of rows dropped.
    """
    columns = [str(c) for c in df.columns]
    wanted = ([target] if target is not None else []) + list(coords or [])
    missing = [c for c in wanted if c not in columns]
    if missing:
        what = "target column" if missing[0] == target else "column"
        raise InputError(
            f"{what} {missing[0]!r} is not in the data; its columns are {', '.join(columns)}"
        )
    if coords is None:
        coords = [c for c in columns if c != target]
    if not coords:
        raise InputError("no coordinate columns: the table has only the target column")
    if len(set(coords)) != len(coords):
        raise InputError(f"coordinate columns are repeated: {coords}")
    if target is not None and target in coords:
        raise InputError(f"column {target!r} cannot be both the target and a coordinate")
    if target is not None:
        t = df[target]
        if pd.api.types.is_bool_dtype(t.dtype) or not pd.api.types.is_numeric_dtype(t.dtype):
            values = t.dropna()
            bad_t = values[pd.to_numeric(values, errors="coerce").isna()]
            example = f" (e.g. {bad_t.iloc[0]!r})" if len(bad_t) else ""
            raise InputError(f"target column {target!r} is not numeric{example}")
    used = list(coords) + ([target] if target is not None else [])
    bad = np.zeros(len(df), bool)
    for c in used:
        b = _non_finite(df[c])
        if b.any() and not dropna:
            raise InputError(
                f"column {c!r} has {int(b.sum())} missing or infinite value(s); "
                f"pass --dropna (or drop those rows) to {action} without them"
            )
        bad |= b
    n_dropped = int(bad.sum())
    if n_dropped:
        df = df.loc[~bad]
    X = df[coords].reset_index(drop=True)
    y = df[target].reset_index(drop=True) if target is not None else None
    return X, y, n_dropped


def from_dataarray(da) -> tuple[pd.DataFrame, np.ndarray]:
    """An ``xarray.DataArray`` -> (coordinates table, values); its dims are the modes.

    Every cell becomes one observation at its coordinates along each dimension; NaN
    cells are missing observations and are left out. A dimension without a coordinate
    variable uses the positions ``0, 1, ...``.
    """
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover - xarray is an optional dependency
        raise InputError("reading xarray data needs xarray: pip install funbat[xarray]") from None
    if not isinstance(da, xr.DataArray):
        raise InputError(
            f"give y, or the data as an xarray.DataArray; got {type(da).__name__} without y"
        )
    if da.ndim == 0:
        raise InputError("the DataArray has no dimensions; give one dimension per mode")
    dims = [str(d) for d in da.dims]
    axes = [np.asarray(da[d].values) if d in da.coords else np.arange(da.sizes[d]) for d in da.dims]
    grids = np.meshgrid(*axes, indexing="ij")
    values = np.asarray(da.values, dtype=float).reshape(-1)
    keep = np.isfinite(values)
    X = pd.DataFrame({d: g.reshape(-1)[keep] for d, g in zip(dims, grids)})
    return X, values[keep]


def predict_grid(model, coords=None, **coords_kw):
    """Predict on the full grid spanned by per-mode coordinates, as an xarray Dataset.

    Parameters
    ----------
    model : a fitted FunBaT or FunBaTCP.
    coords : mapping ``{mode name: 1-D coordinates}`` (or keyword arguments), one entry
        per mode; an ``xarray.DataArray`` or ``Dataset`` uses its coordinates. Modes
        left out use their unique training coordinates (a discrete mode its categories).
        A spatial mode takes an (n, D) array of points: its grid axis, named after the
        mode, indexes them, with one coordinate variable per column along it.

    Returns
    -------
    ``xarray.Dataset`` with variables ``mean`` and ``std`` (the one-sigma spread of
    ``Predictive.spread``) and the model's central 95%
    interval ``lower95``, ``upper95`` (its own predictive's: Student-t when
    recalibrated, not ``mean +- 1.96 std``), dims in the model's mode order.
    """
    try:
        import xarray as xr
    except ImportError:  # pragma: no cover - xarray is an optional dependency
        raise InputError("predict_grid needs xarray: pip install funbat[xarray]") from None
    if coords is not None and hasattr(coords, "coords") and hasattr(coords, "dims"):
        coords = {str(d): np.asarray(coords[d].values) for d in coords.dims}
    wanted = dict(coords or {}, **coords_kw)
    modes = list(model.modes_)
    unknown = [k for k in wanted if k not in modes]
    if unknown:
        raise InputError(f"{unknown[0]!r} is not a mode of the model; its modes are {modes}")
    axes, points = {}, {}  # one grid axis per mode; a spatial mode's axis indexes points
    for k, name in enumerate(modes):
        enc = model.result_.encodings[k]
        if enc.kind == "spatial":
            pts = (np.asarray(wanted[name], float) if name in wanted
                   else enc.unscaled(enc.unique))  # fmt: skip
            if pts.ndim != 2 or pts.shape[1] != len(enc.columns):
                raise InputError(
                    f"mode {name!r} is spatial: give its grid as an (n, {len(enc.columns)}) "
                    f"array of points ({', '.join(enc.columns)}); got shape {pts.shape}"
                )
            points[name] = pts
            axes[name] = np.arange(pts.shape[0])
        elif name in wanted:
            axes[name] = np.asarray(wanted[name]).reshape(-1)
        elif enc.kind == "discrete":
            axes[name] = np.asarray(enc.categories)
        else:
            days = enc.unscaled(enc.unique)
            if enc.is_datetime:
                axes[name] = (np.round(days * 86400e9).astype(np.int64)).astype("datetime64[ns]")
            else:
                axes[name] = days
        if axes[name].size == 0:
            raise InputError(f"mode {name!r} has no coordinates in the grid")
    grids = np.meshgrid(*(np.arange(a.size) for a in axes.values()), indexing="ij")
    columns = {}
    for k, (name, g) in enumerate(zip(modes, grids)):
        flat = g.reshape(-1)
        if name in points:
            cols = model.result_.encodings[k].columns
            for j, col in enumerate(cols):
                columns[col] = points[name][flat, j]
        else:
            columns[name] = axes[name][flat]
    X = pd.DataFrame(columns)
    pred = model.predictive(X)
    lower, upper = pred.interval(0.95)
    shape = tuple(a.size for a in axes.values())
    dims = tuple(modes)
    values = {"mean": pred.mean, "std": pred.spread, "lower95": lower, "upper95": upper}
    coords = dict(axes)
    for k, name in enumerate(modes):  # a spatial mode's point coordinates along its axis
        if name in points:
            for j, col in enumerate(model.result_.encodings[k].columns):
                coords[col] = (name, points[name][:, j])
    return xr.Dataset({k: (dims, v.reshape(shape)) for k, v in values.items()}, coords=coords)

"""From user tables to per-mode coordinates, index maps and scaling.

A *mode* is one column of the input, or several. Its kind is

* ``"continuous"``: one column of real coordinates (floats, or dates read as days since
  1970-01-01), scaled to ``[0, 1]`` by its training range;
* ``"spatial"``: several numeric columns read together as points (``("lat", "lon")``),
  each dimension scaled to ``[0, 1]`` by its own training range;
* ``"discrete"``: one column of categories (strings, pandas categoricals, booleans, or
  any column declared discrete), each category its own index.

Each entry is mapped to the position of its coordinate among the mode's sorted unique
training coordinates (points sorted lexicographically, categories sorted).
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "KINDS",
    "FunBaTWarning",
    "InputError",
    "ModeEncoding",
    "as_mode_columns",
    "as_modes",
    "mode_position",
    "as_target",
    "check_text_column",
    "drop_duplicate_rows",
    "encode_modes",
    "group_many_columns",
    "warn_duplicates",
]

_NS_PER_DAY = 86_400 * 10**9

#: Kinds of modes.
KINDS = ("continuous", "spatial", "discrete")


class InputError(ValueError):
    """Bad user input: a message that names the problem and what to do."""


def mode_position(names, mode) -> int:
    """The position of ``mode`` (a name, or a position) among the modes ``names`` of a
    fitted model; :class:`InputError` naming the modes when there is no such mode."""
    k = (names.index(mode) if mode in names else -1) if isinstance(mode, str) else int(mode)
    if not 0 <= k < len(names):
        raise InputError(f"mode {mode!r} does not exist; the modes are {list(names)}")
    return k


class FunBaTWarning(UserWarning):
    """Input funbat fits, but changed or probably not as meant: duplicate rows dropped, a
    rank capped to what the data support, a model whose sweeps will be slow."""


#: A text column is read as numbers (or dates) gone wrong, not as categories, when more
#: than this fraction of its cells are numbers (or ISO dates).
MOSTLY = 0.5


@dataclass(frozen=True)
class ModeEncoding:
    """How one mode's user coordinates map to the model's scaled coordinates.

    Attributes
    ----------
    name : str
        Column name (``"x0"``, ``"x1"``... for arrays); ``"a+b"`` for a spatial mode.
    is_datetime : bool
        True when the user gave dates; coordinates are then days since 1970-01-01.
    offset, scale : float, or (D,) arrays for a spatial mode
        ``scaled = (x - offset) / scale``: the training range maps to ``[0, 1]``.
    unique : (I,) array, or (I, D) for a spatial mode
        Sorted unique training coordinates, scaled (category codes ``0..I-1`` for a
        discrete mode).
    kind : ``"continuous"``, ``"spatial"`` or ``"discrete"``
    columns : the user's column names making up the mode.
    categories : (I,) object array of a discrete mode's categories, sorted.
    """

    name: str
    is_datetime: bool
    offset: float | np.ndarray
    scale: float | np.ndarray
    unique: np.ndarray
    kind: str = "continuous"
    columns: tuple[str, ...] = ()
    categories: np.ndarray | None = None

    def scaled(self, x: np.ndarray) -> np.ndarray:
        """User coordinates (n,) or points (n, D) -> scaled ones; categories -> codes."""
        if self.kind == "discrete":
            return self.codes(x).astype(float)
        return (np.asarray(x, float) - self.offset) / self.scale

    def unscaled(self, s: np.ndarray) -> np.ndarray:
        """Scaled coordinates -> user coordinates (days for dates)."""
        return np.asarray(s, float) * self.scale + self.offset

    def codes(self, labels) -> np.ndarray:
        """Categories (n,) of a discrete mode -> codes (n,); unseen ones are an error."""
        labels = np.asarray(labels, dtype=object)
        pos = pd.Index(self.categories).get_indexer(labels)
        if np.any(pos < 0):
            unseen = pd.unique(labels[pos < 0])
            raise InputError(
                f"mode {self.name!r} is discrete and {len(unseen)} categor"
                f"{'y was' if len(unseen) == 1 else 'ies were'} not seen in training "
                f"(e.g. {unseen[0]!r}); a discrete mode knows nothing about new categories. "
                "Drop those rows, or refit with them"
            )
        return pos.astype(np.int32)


def column_to_float(values, name: str) -> tuple[np.ndarray, bool]:
    """One input column -> float coordinates and whether it held dates."""
    s = pd.Series(values) if not isinstance(values, pd.Series) else values
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        if s.isna().any():
            raise InputError(f"column {name!r} has missing dates; drop or fill those rows")
        ns = s.to_numpy(dtype="datetime64[ns]").astype(np.int64)
        return ns / _NS_PER_DAY, True
    if pd.api.types.is_complex_dtype(s.dtype):
        raise InputError(
            f"column {name!r} holds complex numbers (Complex data not supported); "
            "coordinates must be real numbers or dates"
        )
    if _holds_numbers(s):  # an object column of Python or NumPy numbers
        s = s.astype(float)
    if pd.api.types.is_bool_dtype(s.dtype) or not pd.api.types.is_numeric_dtype(s.dtype):
        bad = s[~s.map(_is_number) & s.notna()]
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
    cols, series = _raw_series(X, names)
    if not series:
        raise InputError("X has no columns; give one column per mode")
    out, dt = [], []
    for name, s in zip(cols, series):
        x, is_dt = column_to_float(s, name)
        out.append(x)
        dt.append(is_dt)
    return cols, out, dt


def _is_number(v) -> bool:
    """A real number (not a boolean), or text that reads as one."""
    if isinstance(v, (bool, np.bool_)):
        return False
    if isinstance(v, numbers.Real):
        return True
    if isinstance(v, str):
        try:
            float(v)
        except ValueError:
            return False
        return True
    return False


def _holds_numbers(s: pd.Series) -> bool:
    """An object column whose every value is a real number object (not text, not bool)."""
    if not pd.api.types.is_object_dtype(s.dtype):
        return False
    values = s.dropna()
    return bool(len(values)) and all(
        isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in values
    )


def _is_categorical(s: pd.Series) -> bool:
    dt = s.dtype
    if _holds_numbers(s):  # numbers in an object array (np.array([...], dtype=object))
        return False
    return (
        isinstance(dt, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(dt)
        or pd.api.types.is_string_dtype(dt)
        or pd.api.types.is_object_dtype(dt)
    )


def check_text_column(s: pd.Series, name: str, declare: str | None = None,
                      first_row: int = 0, row_name: str = "row",
                      n_cells: int | None = None) -> None:  # fmt: skip
    """Refuse a text column that is mostly numbers or ISO dates with a few bad cells.

    Such a column would otherwise become a discrete mode with one category per value,
    and learn nothing; more likely its bad cells are typos. ``declare`` says how to read
    it as categories anyway (default ``discrete=['name']``); the message names the bad
    cells by position, ``first_row`` added and called ``row_name`` (the command line
    gives a CSV's line numbers: 2, ``"line"``), out of ``n_cells`` (default ``len(s)``:
    a part of a longer column gives the whole's). Raises :class:`InputError`; a column
    of categories passes.
    """
    if not (pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)):
        return
    values = s.dropna()
    try:
        uniq = pd.Series(pd.unique(values.to_numpy(dtype=object)), dtype=object)
    except TypeError:  # unhashable cells (dicts, lists): refused later as categories
        return
    if uniq.empty or _holds_numbers(s):
        return

    # each distinct value is classified once (a long column of few categories stays
    # cheap); the share is counted over the cells
    def share(flags) -> float:
        return float(values.isin(uniq[flags]).mean())

    number = uniq.map(_is_number).to_numpy(bool)
    what, good = "numbers", number
    if not share(number) > MOSTLY:
        text = uniq.map(lambda v: isinstance(v, str)).to_numpy(bool)
        dates = np.zeros(len(uniq), bool)
        if text.any():
            parsed = pd.to_datetime(uniq[text].astype(str), format="ISO8601", errors="coerce")
            dates[text] = parsed.notna().to_numpy()
        what, good = "dates", dates
        if not share(dates) > MOSTLY:
            return  # categories
    declare = declare or f"discrete=[{name!r}]"
    if good.all() and what == "numbers":  # numbers as text: categories, unless converted
        raise InputError(
            f"column {name!r} holds numbers as text; convert it (pd.to_numeric) to fit it as "
            f"numbers, or declare it discrete ({declare}) to read its values as categories"
        )
    if good.all():  # every value a date, as text: the library reads text as categories
        raise InputError(
            f"column {name!r} holds dates as text; convert it (pd.to_datetime) to fit it as "
            f"dates, or declare it discrete ({declare}) to read its values as categories"
        )
    bad_values = set(uniq[~good])
    rows = [i for i, v in enumerate(s.to_numpy(dtype=object)) if v in bad_values]
    shown = ", ".join(f"{row_name} {i + first_row}: {s.iloc[i]!r}" for i in rows[:3])
    more = f" and {len(rows) - 3} more" if len(rows) > 3 else ""
    raise InputError(
        f"column {name!r} is mostly {what} but {len(rows)} of its {n_cells or len(s)} cells "
        "are not "
        f"({shown}{more}); fix or drop those rows, or declare it discrete ({declare}) to "
        "read its values as categories"
    )


def _raw_series(X, names=None) -> tuple[list[str], list[pd.Series]]:
    """``X``'s columns as Series, with their names (``x0``, ``x1``... for arrays)."""
    import scipy.sparse

    if scipy.sparse.issparse(X):
        raise InputError(
            f"X is a scipy sparse {type(X).__name__}; sparse input is not supported: give a "
            "dense array (X.toarray()) or a table of coordinates"
        )
    if isinstance(X, pd.DataFrame):
        return [str(c) for c in X.columns], [X.iloc[:, i] for i in range(X.shape[1])]
    arr = np.asarray(X)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise InputError(f"X must be a table or a 2-D array (N, K); got {arr.ndim} dimensions")
    cols = list(names) if names else [f"x{i}" for i in range(arr.shape[1])]
    if len(cols) != arr.shape[1]:
        raise InputError(f"X has {arr.shape[1]} columns but {len(cols)} mode names were given")
    return cols, [pd.Series(arr[:, i]) for i in range(arr.shape[1])]


def as_modes(X, modes=None, discrete=None, kinds=None):
    """Group ``X``'s columns into modes and read each according to its kind.

    Parameters
    ----------
    X : pandas DataFrame or array-like (N, C)
    modes : None (one mode per column) or a list whose entries are a column (name or
        position: one mode) or a tuple of columns (a spatial mode over those columns).
        Columns not named are ignored.
    discrete : None or columns declared discrete (besides string, categorical and
        boolean columns, which are discrete anyway).
    kinds : optional kinds to enforce (as found in training), one per mode.

    Returns
    -------
    names, columns, is_datetime, kinds: per mode, ``columns`` is (N,) floats for a
    continuous mode, (N, D) floats for a spatial one and (N,) objects (the categories)
    for a discrete one.
    """
    cols, series = _raw_series(X)

    def position(c):
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            if not 0 <= c < len(cols):
                raise InputError(f"column {c} does not exist; X has {len(cols)} columns")
            return int(c)
        if str(c) not in cols:
            raise InputError(f"column {c!r} is not in X; its columns are {cols}")
        return cols.index(str(c))

    if modes is None:
        groups = [(i,) for i in range(len(cols))]
    else:
        if isinstance(modes, (str, int)) or not len(modes):
            raise InputError(
                "modes must be a list of columns or tuples of columns, "
                "e.g. [('lat', 'lon'), 'year']"
            )
        groups = [
            tuple(position(c) for c in m) if isinstance(m, (tuple, list)) else (position(m),)
            for m in modes
        ]
    used = [i for g in groups for i in g]
    if len(set(used)) != len(used):
        raise InputError(f"a column appears in more than one mode: {modes}")
    if kinds is not None and len(groups) != len(kinds):
        raise InputError(
            f"X has {len(groups)} modes ({[cols[g[0]] for g in groups]}) but the model was "
            f"fitted on {len(kinds)}"
        )
    declared = {position(c) for c in (discrete or ())}
    if not groups:
        raise InputError("X has no columns; give one column per mode")
    names, out, dts, out_kinds = [], [], [], []
    for m, g in enumerate(groups):
        name = "+".join(cols[i] for i in g)
        want = None if kinds is None else kinds[m]
        if len(g) > 1 or want == "spatial":
            if declared & set(g):
                raise InputError(f"spatial mode {name!r} cannot contain a discrete column")
            pts = []
            for i in g:
                x, is_dt = column_to_float(series[i], cols[i])
                if is_dt:
                    raise InputError(f"column {cols[i]!r} of spatial mode {name!r} holds dates")
                pts.append(x)
            names.append(name)
            out.append(np.stack(pts, axis=1))
            dts.append(False)
            out_kinds.append("spatial")
            continue
        s = series[g[0]]
        if want is None and g[0] not in declared:
            check_text_column(s, name)
        if want == "discrete" or (want is None and (g[0] in declared or _is_categorical(s))):
            if s.isna().any():
                raise InputError(f"column {name!r} has missing categories; drop those rows")
            names.append(name)
            out.append(s.to_numpy(dtype=object))
            dts.append(False)
            out_kinds.append("discrete")
            continue
        x, is_dt = column_to_float(s, name)
        names.append(name)
        out.append(x)
        dts.append(is_dt)
        out_kinds.append("continuous")
    return names, out, dts, out_kinds


#: More continuous (non-date) columns than this, with ``modes`` not given, are fitted as
#: one spatial mode (:func:`group_many_columns`).
MAX_PRODUCT_MODES = 5


def group_many_columns(names, columns, is_dt, kinds, max_points: int):
    """Join many continuous columns into one spatial mode, the default for wide tables.

    One mode per column makes the model a product of that many latent functions, and a
    product cannot represent what such tables usually hold (a response that depends on
    a few of many features, or on their sum): on scikit-learn's ten-feature regression
    data the ten-mode fit predicts the mean (R^2 = 0). One GP over the columns jointly
    (a spatial mode) fits it. So with more than :data:`MAX_PRODUCT_MODES` continuous
    columns (date columns and discrete ones stay modes of their own), they become one
    spatial mode, with a :class:`FunBaTWarning`; naming the modes (``modes=``) opts out.

    Parameters
    ----------
    names, columns, is_dt, kinds : per mode, as :func:`as_modes` returns them.
    max_points : the most unique points a spatial mode supports; more raise
        :class:`InputError` (neither reading of the columns would fit).

    Returns
    -------
    The same four lists, regrouped (unchanged for tables with few columns).
    """
    joined = [m for m, (k, dt) in enumerate(zip(kinds, is_dt)) if k == "continuous" and not dt]
    if len(joined) <= MAX_PRODUCT_MODES:
        return names, columns, is_dt, kinds
    points = np.stack([columns[m] for m in joined], axis=1)
    n_points = np.unique(points, axis=0).shape[0]
    label = "+".join(names[m] for m in joined)
    listed = ", ".join(repr(names[m]) for m in joined[:3]) + ", ..."
    if n_points > max_points:
        raise InputError(
            f"X has {len(joined)} numeric columns ({listed}): as {len(joined)} modes the model "
            "is a product of that many functions, which rarely fits such data, and as one "
            f"spatial mode it has {n_points:,} unique points, more than the {max_points:,} "
            "supported; choose the modes (modes=[...], --coords): a few columns, or tuples "
            "of columns joined into spatial modes"
        )
    warnings.warn(
        f"X has {len(joined)} numeric columns; they are fitted as one spatial mode "
        f"{label!r} (one GP over all of them) instead of {len(joined)} modes, whose product "
        "rarely fits such data; name the modes (modes=[...], --coords) to choose otherwise",
        FunBaTWarning,
        stacklevel=4,  # the caller of fit
    )
    first = joined[0]
    keep = [m for m in range(len(names)) if m not in joined[1:]]
    out = ([], [], [], [])
    for m in keep:
        spatial = m == first
        out[0].append(label if spatial else names[m])
        out[1].append(points if spatial else columns[m])
        out[2].append(False if spatial else is_dt[m])
        out[3].append("spatial" if spatial else kinds[m])
    return out


def as_target(y, n: int) -> np.ndarray:
    """Validate the target: (N,) finite floats matching ``X``'s rows."""
    if np.iscomplexobj(np.asarray(y)):
        raise InputError("the target holds complex numbers (Complex data not supported); "
                         "give real numbers")  # fmt: skip
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


def warn_duplicates(n_repeat: int, n_rows: int, stacklevel: int) -> None:
    """The :class:`FunBaTWarning` that ``n_repeat`` of ``n_rows`` rows were exact copies
    and were dropped (``stacklevel`` counted from the caller, as in :func:`warnings.warn`)."""
    warnings.warn(
        f"{n_repeat} of {n_rows} rows repeat another row exactly (the same coordinates "
        "and target) and were dropped: copies are not new measurements, and counting "
        "them would shrink the noise estimate and the intervals (duplicates='keep', "
        "--keep-duplicates, if they are genuine repeated measurements)",
        FunBaTWarning,
        stacklevel=stacklevel + 1,
    )


def drop_duplicate_rows(idx: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Keep one of each set of exactly equal rows: same coordinates in every mode and
    the same target.

    A table concatenated with itself is not a set of repeated measurements: counting
    each copy as an observation tells the model that the noise is nearly 0 (the copies
    agree exactly), and the leave-one-out recalibration, which leaves out one copy and
    still sees the others, then shrinks the intervals further. Rows at the same
    coordinates with different targets are real repeats and all kept.

    Parameters
    ----------
    idx : (N, K) int coordinate indices (:func:`encode_modes`); y : (N,) targets.

    Returns
    -------
    idx (M, K), y (M,) without the repeats (first copies kept, in order), and
    ``N - M``. Every unique coordinate of a mode keeps at least one entry, so the
    encodings stay valid.
    """
    table = pd.DataFrame(np.asarray(idx))
    table["y"] = np.asarray(y, float)  # exact equality: a different target is kept
    repeat = table.duplicated().to_numpy()
    n_repeat = int(repeat.sum())
    if not n_repeat:
        return idx, y, 0
    return idx[~repeat], y[~repeat], n_repeat


def encode_modes(names, columns, is_datetime, kinds=None) -> tuple[list[ModeEncoding], np.ndarray]:
    """Scale each mode to ``[0, 1]`` and index entries by unique coordinate.

    ``kinds`` (from :func:`as_modes`) defaults to all continuous. Returns the encodings
    and ``idx`` (N, K) int32 with ``idx[n, k]`` the position of entry ``n``'s coordinate
    among mode ``k``'s sorted unique coordinates (or categories).
    """
    kinds = kinds or ["continuous"] * len(names)
    encodings, idx = [], []
    for name, x, is_dt, kind in zip(names, columns, is_datetime, kinds):
        cols = tuple(name.split("+")) if kind == "spatial" else (name,)
        if kind == "discrete":
            codes, cats = pd.factorize(pd.Series(x, dtype=object), sort=True)
            cats = np.asarray(cats, dtype=object)
            uniq = np.arange(cats.size, dtype=float)
            encodings.append(ModeEncoding(name, False, 0.0, 1.0, uniq, kind, cols, cats))
            idx.append(codes.astype(np.int32))
            continue
        if kind == "spatial":
            uniq, inverse = np.unique(x, axis=0, return_inverse=True)
            lo, hi = uniq.min(axis=0), uniq.max(axis=0)
            scale = np.where(hi > lo, hi - lo, 1.0)
            encodings.append(ModeEncoding(name, False, lo, scale, (uniq - lo) / scale, kind, cols))
            idx.append(inverse.reshape(-1).astype(np.int32))
            continue
        uniq, inverse = np.unique(x, return_inverse=True)
        lo, hi = float(uniq[0]), float(uniq[-1])
        scale = hi - lo if hi > lo else 1.0
        encodings.append(ModeEncoding(name, is_dt, lo, scale, (uniq - lo) / scale, kind, cols))
        idx.append(inverse.astype(np.int32))
    return encodings, np.stack(idx, axis=1)

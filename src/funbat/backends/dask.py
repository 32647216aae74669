"""Fit on a Dask cluster: per-partition grouped sums on the workers, the rest on the client.

Every sweep is a sum over entries (``docs/theory.md`` section 7), so the entries stay
on the workers, encoded once as ``(idx, y)`` blocks (``idx`` int32 (n, K) indices of the
coordinates among each mode's sorted unique ones, ``y`` standardised). Per mode update
the client broadcasts the posterior moments per coordinate (small), each partition
returns its grouped statistics `funbat.stats.mode_statistics`, and a tree of
additions on the workers reduces them to one ``(G, g)``; the Kalman smoothing, the core
and the noise are updated on the client, exactly as in memory.

The SVD initialisation (:func:`funbat.init.svd_init`) is reproduced without gathering
the data: the randomised SVD of each mode's sparse unfolding only needs products with
the unfolding, which the workers compute after one shuffle of the entries by the
unfolding's column (the other modes' coordinates), so each column lives in one
partition. Same seeds, same random matrices, same subspaces: the result equals the
in-memory one up to rounding.

Works with the active ``distributed.Client``, or with Dask's default scheduler.
"""

from __future__ import annotations

import os
from functools import partial

import jax
import numpy as np
import pandas as pd
import scipy.linalg as la
import scipy.sparse as sp

from ..data import InputError, ModeEncoding, check_text_column, column_to_float, warn_duplicates
from ..init import (
    binned_cells,
    binned_start,
    orthonormal_columns,
    randomized_left,
    start_bins,
    uninformative,
)
from .base import EntryBackend

__all__ = ["DaskEntries", "is_dask_input"]


def is_dask_input(X) -> bool:
    """True for a Dask DataFrame, or a path/glob of Parquet files (``str`` or path)."""
    return isinstance(X, (str, os.PathLike)) or type(X).__module__.split(".")[0] == "dask"


# -- work done on the workers, one partition at a time ------------------------------


#: How a Dask user reads a column as categories (discrete modes need in-memory data).
_DECLARE_DISCRETE = "in-memory data: a pandas DataFrame with discrete=[...]"


def _float_block(df: pd.DataFrame, names, target, first_row=0, n_rows=None):
    """Partition -> coordinates (n, K) floats (days for dates) and the target (n,).

    A text column is read as in memory: numbers held as objects are numbers, and one
    that is mostly numbers or dates with a few bad cells is refused naming them, rows
    counted from ``first_row`` (the partition's first row in the whole table) out of
    ``n_rows``.
    """
    cols = np.empty((len(df), len(names)))
    for k, name in enumerate(names):
        s = df[name].reset_index(drop=True)
        if pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype):
            # Dask turns object columns into text: numbers come back as numeric strings
            as_number = pd.to_numeric(s, errors="coerce")
            if as_number.notna().all():
                s = as_number
            else:
                check_text_column(s, name, _DECLARE_DISCRETE, first_row, "row", n_rows)
        try:
            cols[:, k], _ = column_to_float(s, name)
        except InputError as err:
            if "not numeric" not in str(err):
                raise
            raise InputError(
                f"{err}; with Dask data every mode must be numbers or dates (discrete modes "
                "need in-memory data)"
            ) from None
    try:
        y = df[target].to_numpy(dtype=float)
    except (TypeError, ValueError) as err:
        raise InputError(f"target column {target!r} is not numeric ({err})") from None
    if not np.all(np.isfinite(y)):
        raise InputError(
            f"target column {target!r} has {int(np.sum(~np.isfinite(y)))} NaN or infinite "
            "value(s) in a partition; drop those rows first"
        )
    return cols, y


def _summary(block):
    cols, y = block
    return [np.unique(c) for c in cols.T], y.shape[0], float(np.sum(y))


def _row_hashes(block):
    """A partition's distinct rows (coordinates and target) as sorted 64-bit hashes."""
    cols, y = block
    table = pd.DataFrame(np.column_stack([cols, y]))
    return np.unique(pd.util.hash_pandas_object(table, index=False).to_numpy())


def _merge_summaries(a, b):
    return [np.union1d(u, v) for u, v in zip(a[0], b[0])], a[1] + b[1], a[2] + b[2]


def _sq_dev(block, mean):
    return float(np.sum((block[1] - mean) ** 2))


def _encode_block(block, uniques, y_mean, y_scale):
    """Coordinates -> indices among the sorted unique ones; standardised target."""
    cols, y = block
    idx = np.empty(cols.shape, np.int32)
    for k, u in enumerate(uniques):
        idx[:, k] = np.searchsorted(u, cols[:, k])
    return idx, (y - y_mean) / y_scale


def _sum_sq(block):
    return float(np.sum(block[1] ** 2))


def _add(a, b):
    if isinstance(a, tuple):
        return tuple(x + z for x, z in zip(a, b))
    return a + b


def _n_chunks(n: int, chunk: int) -> int:
    """Chunks for ``n`` entries, rounded up to few sizes (one compilation per size)."""
    c = max(1, -(-n // chunk))
    p = 1 << (c - 1).bit_length()
    return p * 3 // 4 if p * 3 // 4 >= c else p


def _padded(block, chunk):
    """A partition's ``(idx, y, mask)`` padded to whole chunks."""
    from ..stats import pad_entries

    idx, y = block[0], block[1]
    return pad_entries(idx, y, _n_chunks(y.shape[0], chunk) * chunk)


def _block_statistics(block, weights, targets, moments, mode, n_groups, chunk, structure,
                      offset_sums=False):  # fmt: skip
    """One partition's grouped statistics ``(G, g)`` (numpy) for the message to ``mode``,
    with its entries' ``weights`` (padded; None: the mask) and ``targets`` (padded;
    None: the partition's standardised targets); with ``offset_sums`` also ``h``."""
    import jax
    import jax.numpy as jnp

    from ..stats import mode_statistics

    idx_p, y_p, w_p = _padded(block, chunk)
    if weights is not None:
        w_p = weights
    if targets is not None:
        y_p = targets
    means, seconds = moments
    with jax.enable_x64(True):
        out = mode_statistics(
            jnp.asarray(idx_p),
            jnp.asarray(y_p),
            jnp.asarray(w_p),
            tuple(jnp.asarray(m) for m in means),
            tuple(jnp.asarray(s) for s in seconds),
            mode=mode,
            n_groups=n_groups,
            chunk=chunk,
            structure=structure,
            offset_sums=offset_sums,
        )
        return tuple(np.asarray(a) for a in out)


def _block_moments(block, index, moments, core, chunk, structure):
    """One partition's :class:`~funbat.backends.base.EntryBlock` (numpy, padded)."""
    import jax
    import jax.numpy as jnp

    from ..latent import entry_predictions
    from .base import EntryBlock

    idx_p, y_p, mask = _padded(block, chunk)
    means, seconds = moments
    with jax.enable_x64(True):
        m, var_f = entry_predictions(
            jnp.asarray(idx_p),
            tuple(jnp.asarray(a) for a in means),
            tuple(jnp.asarray(v) for v in seconds),
            core,
            structure=structure,
            chunk=chunk,
        )
        return EntryBlock(idx_p, y_p, mask, np.asarray(m), np.asarray(var_f), index)


def _run(fn, block, *args):
    """``fn(block, *args)`` with float64 JAX, its arrays returned as numpy."""
    import jax

    with jax.enable_x64(True):
        return jax.tree_util.tree_map(np.asarray, fn(block, *args))


def _unfolding_frame(block, mode, strides):
    """Entries as (row, column key, y) of mode ``mode``'s unfolding."""
    idx, y = block[0], block[1]
    others = [i for i in range(idx.shape[1]) if i != mode]
    key = idx[:, others].astype(np.int64) @ strides if others else np.zeros(len(y), np.int64)
    return pd.DataFrame({"row": idx[:, mode], "key": key, "y": y})


def _unfolding_block(df: pd.DataFrame, n_rows: int):
    """This partition's columns of the unfolding, with cell means (as ``init._unfolding``)."""
    keys, cols = np.unique(df["key"].to_numpy(), return_inverse=True)
    rows, y = df["row"].to_numpy(), df["y"].to_numpy()
    shape = (n_rows, keys.size)
    sums = sp.coo_matrix((y, (rows, cols.reshape(-1))), shape=shape).tocsr()
    counts = sp.coo_matrix((np.ones_like(y), (rows, cols.reshape(-1))), shape=shape).tocsr()
    sums.sort_indices()
    counts.sort_indices()
    sums.data = sums.data / counts.data
    return sums, keys


def _binned_cells(block, sizes, bins):
    """This partition's sums and counts on the start's coarse grid (``init.binned_cells``)."""
    return binned_cells(block[0], block[1], sizes, bins)


def _n_columns_and_cells(block):
    """This partition's unfolding columns and observed cells (2,)."""
    return np.array([block[1].size, block[0].nnz])


def _gram(block, Q):
    """``M_p M_p^T Q`` (I, s)."""
    M = block[0]
    return M @ (M.T @ Q)


def _gram_and_r(block, Q):
    """``M_p M_p^T Q`` and the R factor of ``M_p^T Q`` (for a tall-skinny QR)."""
    Z = block[0].T @ Q
    R = np.linalg.qr(Z, mode="r") if Z.shape[0] else np.zeros((0, Q.shape[1]))
    return block[0] @ Z, R


def _right(block, Q, keys):
    """``M_p Q[rows of this partition's columns]`` (I, s)."""
    return block[0] @ Q[np.searchsorted(keys, block[1])]


def _left(block, Y):
    """This partition's column keys and ``M_p^T Y`` (C_p, s)."""
    return block[1], block[0].T @ Y


# -- the client side ----------------------------------------------------------------


def _tree(items, combine):
    """Pairwise reduction of delayed values (runs on the workers)."""
    import dask

    items = list(items)
    while len(items) > 1:
        items = [
            dask.delayed(combine)(items[i], items[i + 1]) if i + 1 < len(items) else items[i]
            for i in range(0, len(items), 2)
        ]
    return items[0]


def _delayed_moments(means, seconds):
    """The modes' moments as numpy, wrapped once to be sent to every partition's task."""
    import dask

    return dask.delayed(
        (tuple(np.asarray(m) for m in means), tuple(np.asarray(s) for s in seconds)), pure=True
    )


def _delayed_core(core):
    """The core's moments (or None for CP) as numpy, wrapped once for every partition."""
    import dask

    if core is not None:  # numpy on the wire; the workers' JAX takes it as is
        core = type(core)(*(np.asarray(x) for x in core))
    return dask.delayed(core, pure=True)


def _first(pair):
    return pair[0]


def _second(pair):
    return pair[1]


def _pick(arrays, i):
    return arrays[i]


class DaskEntries(EntryBackend):
    """Entries of a Dask DataFrame, encoded once and persisted where the data lives.

    Build with :meth:`from_input`; the estimator then calls :meth:`statistics` once per
    mode update and :meth:`svd_init` once. Attributes ``names``, ``is_datetime``,
    ``encodings``, ``n``, ``y_mean``, ``y_scale``, ``sum_y2`` describe the data.
    """

    def __init__(self, names, is_datetime, encodings, blocks, n, y_mean, y_scale, sum_y2,
                 chunk=None):  # fmt: skip
        self.names = names
        self.is_datetime = is_datetime
        self.encodings = encodings
        self.blocks = blocks  # persisted Delayed (idx, y) per partition
        self.n = n
        self.y_mean = y_mean
        self.y_scale = y_scale
        self.sum_y2 = sum_y2
        self.chunk = chunk

    @staticmethod
    def _read(X, names, target, text: bool):
        """Each partition's floats, persisted; ``text``: some column holds text, so
        bad cells are named by their row in the whole table (one more pass: lengths)."""
        import dask

        parts = X.to_delayed()
        if text:
            lengths = np.asarray(X.map_partitions(len).compute(), dtype=int)
            starts, total = np.concatenate([[0], np.cumsum(lengths)[:-1]]), int(lengths.sum())
        else:
            starts, total = np.zeros(len(parts), int), None
        read = dask.delayed(_float_block)
        return dask.persist(*[read(p, names, target, int(s), total) for p, s in zip(parts, starts)])

    @classmethod
    def from_input(cls, X, y, duplicates: str = "drop") -> DaskEntries:
        """Read, validate, find unique coordinates, encode and persist the entries.

        Parameters
        ----------
        X : dask DataFrame, or a path/glob of Parquet files (read with ``dd.read_parquet``)
            One column per mode plus the target column.
        y : str or dask Series
            The target column's name in ``X`` (every other column is a mode), or a dask
            Series aligned with ``X`` (then every column of ``X`` is a mode).
        duplicates : ``"drop"`` exact duplicate rows (coordinates and target) with a
            warning, as in memory, or ``"keep"`` them.
        """
        import dask
        import dask.dataframe as dd

        if isinstance(X, (str, os.PathLike)):
            X = dd.read_parquet(os.fspath(X))
        if not isinstance(X, dd.DataFrame):
            raise InputError(f"expected a dask DataFrame or a Parquet path; got {type(X)}")
        if isinstance(y, str):
            target = y
            if target not in X.columns:
                raise InputError(
                    f"target column {target!r} is not in the data; columns are {list(X.columns)}"
                )
        elif isinstance(y, dd.Series):
            target = "__funbat_y__"
            X = X.assign(**{target: y})
        else:
            raise InputError(
                "with Dask data, give the target as a column name, fit(ddf, y='value'), or as "
                f"a dask Series aligned with X; got {type(y).__name__}"
            )
        names = [str(c) for c in X.columns if c != target]
        if not names:
            raise InputError("the data has no mode columns besides the target")
        is_dt = [bool(pd.api.types.is_datetime64_any_dtype(X[c].dtype)) for c in names]
        text = []
        for c in names:
            dtype = X[c].dtype
            numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
            if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
                text.append(c)  # numbers as objects, or typos in numbers: read per partition
            elif not (numeric or pd.api.types.is_datetime64_any_dtype(dtype)):
                raise InputError(
                    f"column {c!r} holds {dtype}: with Dask data every mode must be numbers or "
                    "dates (discrete and spatial modes need in-memory data)"
                )

        delayed = dask.delayed
        floats = cls._read(X, names, target, bool(text))
        (uniques, n, y_sum), distinct = dask.compute(
            _tree([delayed(_summary)(b) for b in floats], _merge_summaries),
            _tree([delayed(_row_hashes)(b) for b in floats], np.union1d),
        )
        if distinct.shape[0] < n and duplicates == "drop":
            # rare: drop exact copies with Dask's own (shuffling) drop_duplicates, then
            # read again; the hashes above only tell that some exist
            floats = cls._read(X.drop_duplicates(subset=names + [target]), names, target,
                               bool(text))  # fmt: skip
            n_rows = n
            uniques, n, y_sum = dask.compute(
                _tree([delayed(_summary)(b) for b in floats], _merge_summaries)
            )[0]
            warn_duplicates(n_rows - n, n_rows, stacklevel=4)
        if n < 2:
            raise InputError(f"need at least 2 observations to fit; got {n}")
        y_mean = y_sum / n
        (ssd,) = dask.compute(_tree([delayed(_sq_dev)(b, y_mean) for b in floats], _add))
        y_scale = float(np.sqrt(ssd / n)) or 1.0
        uniq_d = delayed(uniques, pure=True)
        blocks = dask.persist(*[delayed(_encode_block)(b, uniq_d, y_mean, y_scale) for b in floats])
        del floats
        (sum_y2,) = dask.compute(_tree([delayed(_sum_sq)(b) for b in blocks], _add))

        encodings = []
        for name, dt, u in zip(names, is_dt, uniques):
            lo, hi = float(u[0]), float(u[-1])
            scale = hi - lo if hi > lo else 1.0
            encodings.append(
                ModeEncoding(name, dt, lo, scale, (u - lo) / scale, "continuous", (name,))
            )
        return cls(names, is_dt, encodings, list(blocks), int(n), y_mean, y_scale, sum_y2)

    def with_chunk(self, chunk):
        return DaskEntries(self.names, self.is_datetime, self.encodings, self.blocks, self.n,
                           self.y_mean, self.y_scale, self.sum_y2, chunk)  # fmt: skip

    def statistics(self, weights, means, seconds, *, mode, n_groups, structure, targets=None,
                   offset_sums=False):  # fmt: skip
        """Grouped statistics ``(G, g)`` (with ``offset_sums``: ``(G, g, h)``) summed over
        all partitions (see ``mode_statistics``)."""
        import dask

        moments = _delayed_moments(means, seconds)
        f = partial(
            _block_statistics, mode=mode, n_groups=n_groups, chunk=self.chunk,
            structure=structure, offset_sums=offset_sums,
        )  # fmt: skip
        ws = [None] * len(self.blocks) if weights is None else weights
        ts = [None] * len(self.blocks) if targets is None else targets
        parts = [dask.delayed(f)(b, w, t, moments) for b, w, t in zip(self.blocks, ws, ts)]
        return dask.compute(_tree(parts, _add))[0]

    def entry_moments(self, means, seconds, core, *, structure):
        """Each partition's entries with their latent moments, persisted on the workers."""
        import dask

        moments, core_d = _delayed_moments(means, seconds), _delayed_core(core)
        f = partial(_block_moments, chunk=self.chunk, structure=structure)
        return list(
            dask.persist(*[dask.delayed(f)(b, i, moments, core_d) for i, b in enumerate(self.blocks)])
        )

    @staticmethod
    def _wrap(args):
        import dask

        # device arrays travel as NumPy: a worker process may not run in float64
        args = [np.asarray(a) if isinstance(a, jax.Array) else a for a in args]
        return [dask.delayed(a, pure=True) if isinstance(a, np.ndarray) else a for a in args]

    def map_reduce(self, fn, moments, *args):
        import dask

        args = self._wrap(args)
        return dask.compute(_tree([dask.delayed(_run)(fn, b, *args) for b in moments], _add))[0]

    def map_weights(self, fn, moments, *args, n_handles=1):
        """The new weights stay on the workers (persisted beside their partitions); their
        sums are added up there and returned."""
        import dask

        args = self._wrap(args)
        done = dask.persist(*[dask.delayed(_run)(fn, b, *args) for b in moments])
        weights = [dask.delayed(_first)(r) for r in done]
        if n_handles > 1:
            weights = tuple([dask.delayed(_pick)(w, i) for w in weights] for i in range(n_handles))
        sums = dask.compute(_tree([dask.delayed(_second)(r) for r in done], _add))[0]
        return weights, sums

    def gather(self, fn, moments, *args):
        import dask

        args = self._wrap(args)
        parts = dask.compute([dask.delayed(_run)(fn, b, *args) for b in moments])[0]
        return np.concatenate(parts)

    # -- initialisation ------------------------------------------------------------

    def svd_init(self, sizes, ranks, rng: np.random.Generator):
        """As :func:`funbat.init.svd_init` (same random draws), from the distributed data."""
        out, cells, bins = [], None, start_bins(sizes, self.n)
        for k, (I, R) in enumerate(zip(sizes, ranks)):
            vecs = np.zeros((I, R))
            n_svd = 0
            if I > 1:
                blocks = self._unfolding_blocks(k)
                C, n_cells = (int(v) for v in np.sum(self._compute(_n_columns_and_cells, blocks),
                                                       axis=0))  # fmt: skip
                if uninformative(n_cells, C):
                    del blocks
                    if cells is None:  # the coarse grid's sums, added over the partitions
                        cells = self._reduce(_binned_cells, self.blocks, list(sizes), bins)
                    out.append(binned_start(cells, sizes, bins, k, R, rng))
                    continue
                n_svd = min(R, min(I, C) - 1) if min(I, C) > 1 else 0
                if n_svd > 0:
                    seed = int(rng.integers(2**31 - 1))
                    vecs[:, :n_svd] = self._randomized_left(blocks, I, C, n_svd, seed)
                del blocks
            vecs[:, n_svd:] = rng.normal(size=(I, R - n_svd)) / np.sqrt(I)
            out.append(vecs * np.sqrt(I))
        return out

    def _unfolding_blocks(self, k):
        """Persisted (M_p, column keys) per partition after a shuffle by column key."""
        import dask
        import dask.dataframe as dd

        sizes = [e.unique.size for e in self.encodings]
        others = [i for i in range(len(sizes)) if i != k]
        # the column key: mixed radix over the other modes, in np.unique's lexicographic order
        others_sizes = [sizes[i] for i in others]
        if int(np.prod(others_sizes, dtype=object)) >= 2**63:
            raise InputError(
                "too many combinations of coordinates for the SVD initialisation's column keys"
            )
        strides = np.array(
            [int(np.prod(others_sizes[j + 1 :], dtype=object)) for j in range(len(others))],
            dtype=np.int64,
        )
        meta = pd.DataFrame(
            {"row": np.zeros(0, np.int32), "key": np.zeros(0, np.int64), "y": np.zeros(0)}
        )
        frames = [dask.delayed(_unfolding_frame)(b, k, strides) for b in self.blocks]
        ddf = dd.from_delayed(frames, meta=meta, verify_meta=False)
        # p2p needs the distributed scheduler; a local scheduler (even beside a client) uses tasks
        client = getattr(dask.base.get_scheduler(), "__self__", None)
        method = None if type(client).__name__ == "Client" else "tasks"
        shuffled = ddf.shuffle(on="key", npartitions=len(self.blocks), shuffle_method=method)
        I = sizes[k]
        return list(
            dask.persist(*[dask.delayed(_unfolding_block)(p, I) for p in shuffled.to_delayed()])
        )

    @staticmethod
    def _compute(fn, blocks, *args):
        """``[fn(block, *args) for block in blocks]``, run where the blocks live."""
        import dask

        return dask.compute([dask.delayed(fn)(b, *args) for b in blocks])[0]

    @staticmethod
    def _reduce(fn, blocks, *args, combine=_add):
        """``combine``-reduction of ``fn(block, *args)`` over the blocks, on the workers."""
        import dask

        args = [dask.delayed(a, pure=True) if isinstance(a, np.ndarray) else a for a in args]
        return dask.compute(_tree([dask.delayed(fn)(b, *args) for b in blocks], combine))[0]

    def _randomized_left(self, blocks, I, C, n_svd, seed):
        """Top left singular vectors of the (I, C) unfolding as ``randomized_svd`` finds them
        (:func:`funbat.init.randomized_left` for a wide one, with the products reduced
        over the partitions; for a tall one the same steps on the (C, s) side): the same
        random matrix, the same subspaces, equal up to rounding.
        """
        if I < C:  # sklearn transposes: the (I, s) side stays on the client
            return randomized_left(
                lambda Q: self._reduce(_gram, blocks, Q),
                lambda Q: self._reduce(_gram_and_r, blocks, Q, combine=_pair_gram_r),
                I, C, n_svd, seed,
            )  # fmt: skip
        s = n_svd + 10
        n_iter = 7 if n_svd < 0.1 * min(I, C) else 4
        rs = np.random.RandomState(seed)
        # I >= C: the (C, s) side is small too; columns ordered by their sorted keys
        keys = np.sort(np.concatenate(self._compute(_column_keys, blocks)))
        Q = rs.normal(size=(C, s))
        for _ in range(n_iter):
            Q = orthonormal_columns(self._reduce(_right, blocks, Q, keys))
            Q = orthonormal_columns(self._left_product(blocks, Q, keys))
        Qi = orthonormal_columns(self._reduce(_right, blocks, Q, keys))
        B = self._left_product(blocks, Qi, keys).T
        Uhat, _, _ = la.svd(B, full_matrices=False, lapack_driver="gesdd")
        U = Qi @ Uhat
        signs = np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(U.shape[1])])
        return (U * signs[None, :])[:, :n_svd]

    def _left_product(self, blocks, Y, keys):
        """``M^T Y`` (C, s), assembled from the partitions' columns in key order."""
        parts = self._compute(_left, blocks, Y)
        out = np.zeros((keys.size, Y.shape[1]))
        for k, v in parts:
            out[np.searchsorted(keys, k)] = v
        return out


def _column_keys(block):
    return block[1]


def _pair_gram_r(a, b):
    return a[0] + b[0], np.vstack([a[1], b[1]])

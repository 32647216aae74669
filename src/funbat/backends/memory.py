"""Entries in memory: JAX arrays padded to whole chunks, passes as compiled loops."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..init import svd_init
from ..latent import entry_predictions
from ..stats import mode_statistics, pad_entries
from .base import EntryBackend, EntryBlock

__all__ = ["MemoryEntries"]


class MemoryEntries(EntryBackend):
    """Encoded entries held in this process.

    Parameters
    ----------
    encodings : one ``ModeEncoding`` per mode.
    idx : (N, K) int coordinate indices; y : (N,) targets in the user's units.
    chunk : entries per chunk (set by :meth:`with_chunk`).
    """

    def __init__(self, encodings, idx, y, chunk: int | None = None):
        self.encodings = list(encodings)
        self.idx, self.y_raw = np.asarray(idx), np.asarray(y, float)
        self.n = int(self.y_raw.shape[0])
        self.y_mean = float(self.y_raw.mean())
        self.y_scale = float(self.y_raw.std()) or 1.0
        self.ys = (self.y_raw - self.y_mean) / self.y_scale
        self.sum_y2 = float(np.sum(self.ys**2))
        self.chunk = chunk
        if chunk is not None:
            padded = pad_entries(self.idx, self.ys, -(-self.n // chunk) * chunk)
            with jax.enable_x64(True):
                self._idx, self._y, self._mask = (jnp.asarray(a) for a in padded)

    def with_chunk(self, chunk):
        return MemoryEntries(self.encodings, self.idx, self.y_raw, chunk)

    def statistics(self, weights, means, seconds, *, mode, n_groups, structure, targets=None,
                   offset_sums=False):  # fmt: skip
        # mode k moved first: the statistics are the same, and modes of equal shapes
        # then share one compilation of mode_statistics
        order = (mode,) + tuple(i for i in range(len(means)) if i != mode)
        return mode_statistics(
            self._idx,
            self._y if targets is None else targets,
            self._mask if weights is None else weights,
            tuple(means[i] for i in order),
            tuple(seconds[i] for i in order),
            jnp.asarray(order, dtype=jnp.int32),
            mode=0,
            n_groups=n_groups,
            chunk=self.chunk,
            structure=structure,
            offset_sums=offset_sums,
        )

    def entry_moments(self, means, seconds, core, *, structure):
        m, var = entry_predictions(
            self._idx, means, seconds, core, structure=structure, chunk=self.chunk
        )
        return EntryBlock(self._idx, self._y, self._mask, m, var, 0)

    def map_reduce(self, fn, moments, *args):
        return fn(moments, *args)

    def map_weights(self, fn, moments, *args, n_handles=1):
        return fn(moments, *args)

    def gather(self, fn, moments, *args):
        return np.asarray(fn(moments, *args))

    def svd_init(self, sizes, ranks, rng):
        return svd_init(self.idx, self.ys, sizes, ranks, rng)

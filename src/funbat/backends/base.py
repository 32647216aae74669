"""The entry-backend interface: where the entries live and how passes over them run.

The sweep needs four kinds of pass over the entries, and every backend provides them:

* :meth:`EntryBackend.statistics`: the grouped statistics ``(G, g)`` of the message to
  one mode (:func:`funbat.stats.mode_statistics`), with the current entry weights;
* :meth:`EntryBackend.entry_moments`: each entry's latent mean and variance under the
  current posterior, as blocks of :class:`EntryBlock` kept where the entries are;
* :meth:`EntryBackend.map_reduce` / :meth:`EntryBackend.map_weights` /
  :meth:`EntryBackend.gather`: a generic per-block function over those blocks, its
  results summed (or its new per-entry weights kept as explicit state beside the
  entries, or its arrays concatenated). Likelihoods are written against these alone.
* :meth:`EntryBackend.svd_init`: the SVD start.

Entry weights are never stored on the backend: a weights *handle* (the backend's own
type; None means every weight is 1) is returned by :meth:`map_weights` and passed to
:meth:`statistics`, so a statistic depends only on its arguments.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

__all__ = ["EntryBackend", "EntryBlock"]


class EntryBlock(NamedTuple):
    """A block of entries with their latent moments (padded to whole chunks).

    idx : (n, K) int32 coordinate indices; y : (n,) standardised targets; mask : (n,)
    1 for entries, 0 for padding; mean, var : (n,) ``E[f_n]`` and ``Var[f_n]``;
    index : the block's position (seeds per-block random draws).
    """

    idx: jax.Array
    y: jax.Array
    mask: jax.Array
    mean: jax.Array
    var: jax.Array
    index: int

    @property
    def sq_err(self):
        """``E[(y_n - f_n)^2]`` (n,)."""
        return (self.y - self.mean) ** 2 + self.var


class EntryBackend:
    """Interface of an entry backend. Attributes: ``encodings`` (one
    :class:`funbat.data.ModeEncoding` per mode), ``n`` entries, ``y_mean`` and
    ``y_scale`` (the standardisation), ``sum_y2`` (``sum_n y_n^2``, standardised),
    ``chunk`` (entries per chunk of a statistics pass)."""

    def with_chunk(self, chunk: int) -> EntryBackend:
        """The same entries, prepared for passes of ``chunk`` entries at a time."""
        raise NotImplementedError

    def statistics(self, weights, means, seconds, *, mode: int, n_groups: int,
                   structure: str, targets=None, offset_sums: bool = False):  # fmt: skip
        """Grouped statistics ``G`` (n_groups, P, P) and ``g`` (n_groups, P) summed over
        all entries, each weighted by ``weights`` (None: 1), ``g`` of ``targets`` (a
        handle from :meth:`map_weights`; None: the standardised targets). With
        ``offset_sums``, also ``h`` (n_groups, P + 2), the sums a learned intercept
        needs (:func:`funbat.stats.mode_statistics`): ``(G, g, h)``."""
        raise NotImplementedError

    def entry_moments(self, means, seconds, core, *, structure: str):
        """A handle on the entries' :class:`EntryBlock` s under the given moments."""
        raise NotImplementedError

    def map_reduce(self, fn, moments, *args):
        """``sum over blocks of fn(block, *args)`` (a pytree of arrays)."""
        raise NotImplementedError

    def map_weights(self, fn, moments, *args, n_handles: int = 1):
        """``fn(block, *args) -> (weights (n,), sums)`` per block: a handle on the new
        weights (kept with the entries) and the summed ``sums``. With ``n_handles`` > 1,
        ``fn`` returns a tuple of that many per-entry arrays (weights and pseudo-targets,
        say) in place of ``weights``, made in one pass, and a tuple of handles comes
        back."""
        raise NotImplementedError

    def gather(self, fn, moments, *args):
        """``fn(block, *args)`` (1-D NumPy) per block, concatenated here."""
        raise NotImplementedError

    def svd_init(self, sizes, ranks, rng):
        """As :func:`funbat.init.svd_init`: start values (I_k, R_k) per mode."""
        raise NotImplementedError

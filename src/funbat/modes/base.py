"""The mode-kind interface: what the sweep, prediction and reporting need of a mode.

A *mode kind* (continuous chain, spatial points, categories) is a small immutable
object; the state of a fitted mode is a :class:`ModeState`. The sweep calls
:meth:`ModeKind.update` on every mode alike, prediction calls :meth:`ModeKind.marginals`
and :meth:`ModeKind.samples`, reporting :meth:`ModeKind.describe`. A new kind of mode is
one new module implementing :class:`ModeKind` and one line in
:data:`funbat.modes.KINDS`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..data import InputError, ModeEncoding
from ..kernels import kernel_name

__all__ = ["LOG_LENGTHSCALE_BOUNDS", "ModeKind", "ModeState", "bucket", "check_variance",
           "query_groups", "start_state", "transform_moments"]  # fmt: skip

#: Bounds of learned lengthscales in scaled coordinates (the training range is 1).
LOG_LENGTHSCALE_BOUNDS = (float(np.log(1e-4)), float(np.log(10.0)))


class ModeState(NamedTuple):
    """Variational posterior ``q(U^k)`` of one mode, with its prior.

    Attributes
    ----------
    coords : array
        (I_pad,) sorted unique scaled coordinates of a chain, padded past the last one;
        (I, D) points of a spatial mode; (I,) category codes of a discrete one.
    kernel : kernel
        The prior's kernel in scaled units (``kernels.Matern``, ``dense.PointMatern``
        or ``dense.Identity``).
    posterior : NamedTuple
        The kind's posterior record (``kalman.ChainPosterior`` or
        ``dense.DensePosterior``).
    means : array, (I_pad, R)
        Marginal means ``E[u]`` at ``coords``.
    seconds : array, (I_pad, R, R)
        Marginal second moments ``E[u u^T]`` at ``coords``.
    n_valid : int32 scalar
        The number of real coordinates (the rest pad a chain).
    step : float scalar
        The next step of the lengthscale search (log units).
    """

    coords: jax.Array
    kernel: Any
    posterior: Any
    means: jax.Array
    seconds: jax.Array
    n_valid: jax.Array
    step: jax.Array


def bucket(n: int, minimum: int = 8) -> int:
    """Round a size up to a few shapes (powers of 2 and 1.5x them) to share compilations."""
    n = max(n, minimum)
    p = 1 << (n - 1).bit_length()
    return p * 3 // 4 if p * 3 // 4 >= n else p


def check_variance(enc: ModeEncoding, variance) -> float:
    """A prior variance as a positive float (else a clear error naming the mode)."""
    if not np.isfinite(variance) or variance <= 0:
        raise InputError(f"variance must be positive; got {variance!r} for mode {enc.name!r}")
    return float(variance)


def transform_moments(state: ModeState, T, posterior) -> ModeState:
    """``state`` with its marginal moments pushed through ``u -> T u`` (T: (R, R)) and
    ``posterior`` (the kind's transformed record) in place of its own."""
    means = state.means @ T.T
    seconds = T @ state.seconds @ T.T
    return state._replace(posterior=posterior, means=means, seconds=seconds)


def start_state(coords, kernel, posterior, start, n_valid: int) -> ModeState:
    """A mode's state before its first update: moments from the start values (I, R)
    (a little variance around them), an empty posterior record, step 0.5."""
    means = np.asarray(start, float)
    seconds = means[:, :, None] * means[:, None, :] + 0.01 * np.eye(means.shape[1])
    return ModeState(
        jnp.asarray(coords), kernel, posterior, jnp.asarray(means), jnp.asarray(seconds),
        jnp.asarray(n_valid, dtype=jnp.int32), jnp.asarray(0.5, dtype=jnp.float64),
    )  # fmt: skip


def query_groups(enc: ModeEncoding, x_scaled: np.ndarray):
    """Match query coordinates to a mode's unique training coordinates.

    Returns ``ids`` (n,): the training coordinate's position, or ``G + j`` for the
    ``j``-th distinct unseen coordinate, and the number of unseen ones.
    """
    G = enc.unique.shape[0]
    train = np.asarray(enc.unique, float).reshape(G, -1)
    query = np.asarray(x_scaled, float).reshape(len(x_scaled), -1)
    _, inv = np.unique(np.concatenate([train, query]), axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    lookup = np.full(inv.max() + 1, -1)
    lookup[inv[:G]] = np.arange(G)
    ids = lookup[inv[G:]]
    unseen = ids < 0
    _, new = np.unique(inv[G:][unseen], return_inverse=True)
    ids[unseen] = G + new.reshape(-1)
    return ids, (int(new.max()) + 1 if new.size else 0)


class ModeKind:
    """Interface of a mode kind. Subclasses are frozen dataclasses (hashable: they are
    static arguments of compiled functions) and implement every method below but
    :meth:`update`, which is shared."""

    #: The kind's name, as in ``ModeEncoding.kind`` and ``mode_kinds_``.
    name: str = ""

    # -- prior and start -------------------------------------------------------------

    def kernel(self, enc: ModeEncoding, name: str, lengthscale, variance):
        """The prior kernel in scaled units from the user's settings (validated)."""
        raise NotImplementedError

    def kernel_label(self, state: ModeState) -> str:
        """The prior kernel's name as ``kernels_`` reports it."""
        return kernel_name(state.kernel.nu)

    def chain_length(self, enc: ModeEncoding) -> int | None:
        """Coordinates this mode needs in the chain length shared by chain modes (None:
        the mode is not a chain)."""
        return None

    def init(self, enc: ModeEncoding, rank: int, kernel, start, chain_length: int) -> ModeState:
        """The starting state from ``start`` (I, R), the SVD start's values."""
        raise NotImplementedError

    # -- the sweep -------------------------------------------------------------------

    def update(self, state: ModeState, G, g, tau_mean, unfolded, *, learn: bool,
               learning: bool):  # fmt: skip
        """Exact block update of ``q(U^k)`` from the grouped statistics ``(G, g)``.

        ``learn``: the model learns lengthscales; ``learning``: past the warm-up (a zero
        step keeps the lengthscale and reuses the same compiled update). Returns the new
        state and the mode's KL term of the ELBO.
        """
        step = state.step if learning else jnp.zeros_like(state.step)
        new, kl = self._update(state._replace(step=step), G, g, tau_mean, unfolded, learn=learn)
        return (new if learning else new._replace(step=state.step)), kl

    def _update(self, state, G, g, tau_mean, unfolded, *, learn: bool):
        raise NotImplementedError

    def prior_quadratic(self, state: ModeState):
        """Expected prior quadratic forms (R, R) under ``q``, per pair of components: the
        state chain's for a chain mode, ``E[u_r^T K^{-1} u_s]`` for a dense one. The
        diagonal is ``-2 log p(U^k_r) + const`` per component (what a precision on
        component ``r``'s prior needs); a linear map ``u -> T u`` of the components
        turns the matrix into ``T Q T^T``."""
        raise NotImplementedError

    def dimension(self, state: ModeState):
        """Scalar latent variables per component under ``q`` (a traced or Python number):
        ``n_valid * d`` states for a chain, one value per point or category for a dense
        mode. A linear map ``T`` of the components changes the entropy of ``q`` by
        ``dimension * log|det T|``."""
        raise NotImplementedError

    def transform(self, state: ModeState, T) -> ModeState:
        """``q(U^k)`` pushed through ``u -> T u`` (T: (R, R)) at every coordinate: its
        moments and its posterior record (whose log normaliser no longer applies; the
        next update recomputes it)."""
        raise NotImplementedError

    # -- prediction ------------------------------------------------------------------

    def marginals(self, state: ModeState, enc: ModeEncoding, x_user):
        """Posterior mean (n, R) and second moment (n, R, R) at user coordinates."""
        raise NotImplementedError

    def samples(self, state: ModeState, enc: ModeEncoding, x_user, key, n_samples: int):
        """Joint posterior draws (n_samples, n, R) at user coordinates."""
        raise NotImplementedError

    def part_means(self, state: ModeState, enc: ModeEncoding, x_user) -> dict:
        """Posterior means (n, R) of the kernel's deterministic parts (a level, a trend,
        a season) at user coordinates, by part name; empty for kernels without them."""
        return {}

    def groups(self, enc: ModeEncoding, x_user):
        """``(ids, n_unseen)`` of query coordinates among the training ones
        (:func:`query_groups`)."""
        return query_groups(enc, enc.scaled(x_user))

    # -- description -----------------------------------------------------------------

    def parse_coords(self, enc: ModeEncoding, coords) -> np.ndarray:
        """One mode's query coordinates as given by a user -> the kind's user array."""
        raise NotImplementedError

    def user_lengthscale(self, state: ModeState, enc: ModeEncoding):
        """The lengthscale in the user's units (None where the kind has none)."""
        return None

    def check_learned(self, state: ModeState, enc: ModeEncoding) -> None:
        """Warn about learned hyperparameters that defeat the prior (default: none)."""

    def coordinate_table(self, enc: ModeEncoding) -> dict:
        """The unique training coordinates as table columns in the user's units."""
        raise NotImplementedError

    def describe(self, state: ModeState, enc: ModeEncoding) -> dict:
        """What ``funbat info`` prints of the mode (JSON-ready)."""
        raise NotImplementedError

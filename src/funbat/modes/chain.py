"""Continuous modes: each latent function a Matérn GP, its posterior a state-space chain.

The mode's sorted unique coordinates carry a linear-Gaussian chain whose exact
posterior under the grouped messages is computed by a chain solver
(:mod:`funbat.solvers`; ``docs/theory.md`` sections 2-3). Chains are padded past their
last coordinate to a length shared by all chain modes: unobserved points there leave
the posterior at the real points unchanged, and the modes share one compilation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .. import kernel_parts as KP
from .. import updates as U
from ..data import InputError, as_mode_columns
from ..kalman import ChainPosterior, transform_chain
from ..kalman import prior_quadratic as kalman_prior_quadratic
from ..kernels import KERNELS, make_kernel
from ..solvers import ChainSolver, get_solver
from .base import (
    LOG_LENGTHSCALE_BOUNDS,
    ModeKind,
    ModeState,
    bucket,
    check_variance,
    start_state,
    transform_moments,
)

__all__ = ["ChainMode", "default_lengthscale"]

#: A learned lengthscale below this fraction of a mode's median coordinate gap makes
#: neighbouring coordinates independent a priori (correlation < 1e-6 for Matérn 3/2).
COLLAPSE_FRACTION = 0.1


def default_lengthscale(unique_scaled: np.ndarray) -> float:
    """Lengthscale from a mode's coordinates, in scaled units (training range = 1).

    A tenth of the range, but never shorter than three typical gaps between unique
    coordinates: the GP then varies over the range without tracking single points.
    """
    if unique_scaled.size < 2:
        return 1.0
    gap = float(np.median(np.diff(unique_scaled)))
    return float(max(0.1, 3.0 * gap))


@partial(jax.jit, static_argnames=("solver", "learn"))
def _chain_update(solver, kernel, coords, G, g, tau_mean, unfolded, step, n_valid, *, learn):
    """Messages to the mode, an optional lengthscale search, smoothing, and the KL.

    Compiled once per shape and shared by every chain mode with the same shapes: chains
    are padded to one length and ``n_valid`` (traced) says how many steps are real.
    """
    Lams, etas = U.mode_messages(G, g, tau_mean, unfolded)
    if learn and KP.has_lengthscale(kernel):
        bounds = jnp.array(LOG_LENGTHSCALE_BOUNDS)
        kernel, post, step = solver.smooth_with_lengthscale_search(
            kernel, coords, Lams, etas, step, bounds, n_valid
        )
    else:
        post = solver.smooth(kernel, coords, Lams, etas, n_valid)
    d = kernel.state_dim
    means = post.smoothed_means[:, ::d]
    seconds = post.smoothed_covs[:, ::d, ::d] + means[:, :, None] * means[:, None, :]
    kl = U.mode_kl(Lams, etas, means, seconds, post.log_normaliser)
    return ModeState(coords, kernel, post, means, seconds, n_valid, step), kl


@partial(jax.jit, static_argnames=("solver",))
def _chain_marginals(solver, state: ModeState, query):
    # n_valid is traced: the chain modes share one padded length, so one compilation
    return solver.interpolate(state.kernel, state.coords, state.n_valid, state.posterior, query)


@dataclass(frozen=True)
class ChainMode(ModeKind):
    """A continuous (or date) mode: functions of one real coordinate."""

    #: The chain solver (:mod:`funbat.solvers`); by default the device's
    #: (:func:`funbat.solvers.default_solver_name`).
    solver: ChainSolver = field(default_factory=get_solver)
    name = "continuous"

    def kernel(self, enc, name, lengthscale, variance):
        """A Matérn name, or a sum of parts (``"matern32 + periodic(365.25) + constant"``,
        :mod:`funbat.kernel_parts`; periods and lengthscales in user units, days for a
        date mode). ``lengthscale`` and ``variance`` are a Matérn part's defaults."""
        if not isinstance(name, str):
            raise InputError(f"a kernel is a string; got {name!r} for mode {enc.name!r}")
        if lengthscale is None:
            ell_scaled = default_lengthscale(enc.unique)
        else:
            if not np.isfinite(lengthscale) or lengthscale <= 0:
                raise InputError(
                    f"lengthscale must be positive; got {lengthscale!r} for mode {enc.name!r}"
                )
            ell_scaled = float(lengthscale) / enc.scale
        var = check_variance(enc, variance)
        if name in KERNELS:
            return make_kernel(name, ell_scaled, var)
        try:
            parsed = KP.parse_kernel(name)
            parts = KP.build_parts(parsed, float(enc.scale), ell_scaled, var)
        except ValueError as e:
            raise InputError(f"kernel {name!r} of mode {enc.name!r}: {e}") from None
        return KP.Sum(parts, KP.canonical_label(parsed))

    def kernel_label(self, state):
        if isinstance(state.kernel, KP.Sum):
            return state.kernel.label
        return super().kernel_label(state)

    def chain_length(self, enc):
        return int(enc.unique.size)

    def init(self, enc, rank, kernel, start, chain_length):
        I, Ip = enc.unique.size, chain_length
        coords = np.concatenate([enc.unique, enc.unique[-1] + 1.0 + np.arange(Ip - I)])
        D = rank * kernel.state_dim
        empty = ChainPosterior(
            jnp.zeros((Ip, D)), jnp.zeros((Ip, D, D)), jnp.zeros((Ip, D)),
            jnp.zeros((Ip, D, D)), jnp.zeros(()),
        )  # fmt: skip
        start = np.concatenate([start, np.zeros((Ip - I, rank))])
        return start_state(coords, kernel, empty, start, I)

    def _update(self, state, G, g, tau_mean, unfolded, *, learn):
        return _chain_update(
            self.solver, state.kernel, state.coords, G, g, tau_mean, unfolded, state.step,
            state.n_valid, learn=learn,
        )  # fmt: skip

    def prior_quadratic(self, state):
        return kalman_prior_quadratic(state.kernel, state.coords, state.posterior, state.n_valid)

    def dimension(self, state):
        k = state.kernel
        if isinstance(k, KP.Sum):  # deterministic parts add no variables after the start
            return k.state_dim + (state.n_valid - 1) * k.noise_rank
        return state.n_valid * k.state_dim

    def transform(self, state, T):
        post = transform_chain(state.posterior, T, state.kernel.state_dim)
        return transform_moments(state, T, post)

    def marginals(self, state, enc, x_user):
        q = enc.scaled(x_user)
        n = q.shape[0]
        qp = np.concatenate([q, np.zeros(bucket(n, 64) - n)])
        m, s = _chain_marginals(self.solver, state, jnp.asarray(qp))
        return m[:n], s[:n]

    def part_means(self, state, enc, x_user):
        if not isinstance(state.kernel, KP.Sum):
            return {}
        rank = state.means.shape[1]
        z0 = state.posterior.smoothed_means[0].reshape(rank, state.kernel.state_dim)
        parts = KP.deterministic_means(state.kernel, z0, state.coords[0],
                                       jnp.asarray(enc.scaled(x_user)))  # fmt: skip
        out: dict = {}
        for name, vals in parts:  # two parts of one kind add up
            out[name] = out.get(name, 0.0) + np.asarray(vals)
        return out

    def samples(self, state, enc, x_user, key, n_samples):
        uq, inv = np.unique(enc.scaled(x_user), return_inverse=True)
        u = self.solver.samples(
            state.kernel, state.coords, int(state.n_valid), state.posterior, uq, key, n_samples
        )
        return u[:, inv]

    def parse_coords(self, enc, coords):
        import pandas as pd

        s = pd.Series(np.asarray(coords).reshape(-1))
        if enc.is_datetime and not pd.api.types.is_datetime64_any_dtype(s.dtype):
            s = pd.to_datetime(s)
        _, (x,), _ = as_mode_columns(pd.DataFrame({enc.name: s}))
        return x

    def user_lengthscale(self, state, enc):
        if not KP.has_lengthscale(state.kernel):
            return None
        return float(state.kernel.lengthscale) * enc.scale

    def check_learned(self, state, enc):
        """Warn when learning shrank the lengthscale far below the coordinate spacing.

        Then the functions no longer vary smoothly: each coordinate gets its own value,
        as for unordered categories. Seen on data with weak signal and structured
        leftovers, where the ELBO prefers it but held-out error is worse than with the
        default lengthscales.
        """
        if enc.unique.size < 3:
            return
        if not KP.has_lengthscale(state.kernel):
            return
        gap = float(np.median(np.diff(enc.unique)))
        ell = float(state.kernel.lengthscale)
        if ell < COLLAPSE_FRACTION * gap:
            unit = " days" if enc.is_datetime else ""
            warnings.warn(
                f"the learned lengthscale of mode {enc.name!r} ({ell * enc.scale:.3g}{unit}) is "
                f"far below the median spacing of its coordinates ({gap * enc.scale:.3g}{unit}): "
                "its functions treat every coordinate as unrelated, which can fit noise; "
                "compare with learn_hyperparameters=False on held-out data",
                UserWarning,
                stacklevel=4,
            )

    def coordinate_table(self, enc):
        import pandas as pd

        x = enc.unscaled(enc.unique)
        return {enc.name: pd.to_datetime(x, unit="D") if enc.is_datetime else x}

    def describe(self, state, enc):
        lo, hi = enc.unscaled(enc.unique[[0, -1]])
        if enc.is_datetime:
            lo, hi = (
                str(np.datetime64(int(round(v * 86400)), "s").astype("datetime64[D]"))
                for v in (lo, hi)
            )
        else:
            lo, hi = float(lo), float(hi)
        return {
            "kind": "date" if enc.is_datetime else "continuous",
            "min": lo,
            "max": hi,
            "n_unique": int(enc.unique.size),
            "lengthscale": self.user_lengthscale(state, enc),
            "lengthscale_unit": "days" if enc.is_datetime else "coordinate units",
            **({"kernel_parts": [type(p).__name__ for p in state.kernel.parts],
                "part_variance": float(state.kernel.variance)
                if KP.learns_variance(state.kernel) else None,
                "period": float(state.kernel.period) * enc.scale
                if KP.learns_period(state.kernel) else None}
               if isinstance(state.kernel, KP.Sum) else {}),
        }  # fmt: skip


"""scikit-learn style estimators: validate input, orchestrate the sweeps, hold the fit.

The mathematics lives in :mod:`funbat.kalman`, :mod:`funbat.stats`,
:mod:`funbat.updates` and :mod:`funbat.hyper`; this module only wires them together.
"""

from __future__ import annotations

import math
import os
import time
from functools import partial
from numbers import Integral, Real
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from . import dense as DN
from . import updates as U
from .calibration import Predictive, fit_recalibration, loo_residuals
from .data import InputError, ModeEncoding, as_mode_columns, as_modes, as_target, encode_modes
from .hyper import smooth_with_lengthscale_search
from .init import svd_init
from .kalman import ChainPosterior, interpolate, smooth
from .kernels import KERNELS, Matern, make_kernel
from .likelihood import (
    DOF_BOUNDS,
    DOF_START,
    LIKELIHOODS,
    grouped_noise_weights,
    predictive_noise,
    student_t_weights,
)
from .sampling import chain_samples
from .stats import mode_statistics, pad_entries

__all__ = ["FunBaT", "FunBaTCP"]

#: Sweeps with the noise and lengthscales held before they are learned (see ``_fit``).
_WARMUP_SWEEPS = 10

#: Residuals at most used by ``recalibrate`` (about that many, drawn at random, beyond
#: it), and at least (fewer keep the Gaussian predictive: two parameters need data).
_RECALIBRATION_MAX, _RECALIBRATION_MIN = 1_000_000, 50

#: Bounds of learned lengthscales in scaled coordinates (the training range is 1).
_LOG_LENGTHSCALE_BOUNDS = (math.log(1e-4), math.log(10.0))


class ModeFit(NamedTuple):
    """Fitted state of one mode.

    coords : (I_pad,) sorted unique scaled coordinates, padded past the last one;
        (I, D) points of a spatial mode; (I,) category codes of a discrete one.
    kernel : Matern, in scaled units (``dense.PointMatern`` / ``dense.Identity`` for
        spatial / discrete modes).
    posterior : ChainPosterior over ``coords`` (``dense.DensePosterior`` for spatial
        and discrete modes).
    means : (I_pad, R) and seconds : (I_pad, R, R): marginal moments at ``coords``.
    """

    coords: jax.Array
    kernel: Matern
    posterior: ChainPosterior
    means: jax.Array
    seconds: jax.Array


def _bucket(n: int, minimum: int = 8) -> int:
    """Round a size up to a few shapes (powers of 2 and 1.5x them) to share compilations."""
    n = max(n, minimum)
    p = 1 << (n - 1).bit_length()
    return p * 3 // 4 if p * 3 // 4 >= n else p


@partial(jax.jit, static_argnames=("learn",))
def _update_mode(kernel, coords, G, g, tau_mean, unfolded, step, n_valid, *, learn):
    """Messages to one mode, optional lengthscale search, smoothing, and the mode's KL.

    Compiled once per shape and shared by every mode with the same shapes: chains are
    padded to one length and ``n_valid`` (traced) says how many steps are real.
    """
    Lams, etas = U.mode_messages(G, g, tau_mean, unfolded)
    if not isinstance(kernel, Matern):  # spatial or discrete: a dense GP (funbat.dense)
        bounds = jnp.array(_LOG_LENGTHSCALE_BOUNDS)
        kernel, post, means, seconds, step = DN.mode_posterior(
            kernel, coords, Lams, etas, step, bounds, learn=learn
        )
        kl = U.mode_kl(Lams, etas, means, seconds, post.log_normaliser)
        return ModeFit(coords, kernel, post, means, seconds), kl, step
    if learn:
        kernel, post, step = smooth_with_lengthscale_search(
            kernel, coords, Lams, etas, step, jnp.array(_LOG_LENGTHSCALE_BOUNDS), n_valid
        )
    else:
        post = smooth(kernel, coords, Lams, etas, n_valid=n_valid)
    d = kernel.state_dim
    means = post.smoothed_means[:, ::d]
    seconds = post.smoothed_covs[:, ::d, ::d] + means[:, :, None] * means[:, None, :]
    kl = U.mode_kl(Lams, etas, means, seconds, post.log_normaliser)
    return ModeFit(coords, kernel, post, means, seconds), kl, step


_dense_marginals = jax.jit(DN.conditional)
_unfold_core = jax.jit(U.unfold_core, static_argnames=("rank",))


def _mode_first_statistics(idx, y, w, chunk):
    """``statistics(means, seconds, mode=k, ...)`` over in-memory entries, computed with
    mode ``k`` moved first: the statistics are the same, and modes of equal shapes then
    share one compilation of :func:`funbat.stats.mode_statistics`."""

    def statistics(means, seconds, *, mode, n_groups, structure):
        order = (mode,) + tuple(i for i in range(len(means)) if i != mode)
        return mode_statistics(
            idx,
            y,
            w,
            tuple(means[i] for i in order),
            tuple(seconds[i] for i in order),
            jnp.asarray(order, dtype=jnp.int32),
            mode=0,
            n_groups=n_groups,
            chunk=chunk,
            structure=structure,
        )

    return statistics


@partial(jax.jit, static_argnames=("structure",))
def _update_core_and_noise(
    G,
    g,
    means,
    seconds,
    core,
    noise,
    mode_kls,
    weights_term,
    sum_y2,
    n,
    priors,
    hold_noise,
    from_last,
    *,
    structure,
):
    """Core, then noise, then the ELBO, from one mode's statistics and new moments.

    Run after every mode update: it needs no pass over the entries, and refreshing the
    core often speeds up the sweeps' convergence (the core couples all modes).
    ``weights_term`` is the Student-t weights' part of the ELBO (0 for Gaussian noise);
    ``from_last`` orders a Tucker core's sums (:func:`funbat.updates.core_orders`).
    """
    core_var, a0, b0 = priors
    T, b = U.core_from_statistics(G, g, means, seconds, structure, from_last)
    if structure != "cp":
        core = U.core_update(T, b, noise.mean, core_var)
    esq = U.expected_sq_error(sum_y2, T, b, core)
    new = U.noise_update(n, esq, a0, b0)
    noise = jax.tree_util.tree_map(lambda old, upd: jnp.where(hold_noise, old, upd), noise, new)
    elbo = U.expected_log_likelihood(n, esq, noise) - U.gamma_kl(noise, a0, b0) - mode_kls
    elbo = elbo + weights_term
    if core is not None:
        elbo = elbo - U.gaussian_kl_to_isotropic(core, core_var)
    return core, noise, elbo


@jax.jit
def _mode_marginals(fit: ModeFit, query, n_valid):
    # n_valid is traced: the continuous modes share one padded length, so one compilation
    return interpolate(fit.kernel, fit.coords, n_valid, fit.posterior, query)


def _contract(core_moment, factors, second: bool):
    """Contract core moments with per-query mode moments, one mode at a time.

    ``second=False``: mean (P,) with factors (n, R_k) -> (n,).
    ``second=True``: E[w w^T] (P, P) with factors (n, R_k, R_k) -> (n,).
    The first contraction is a matrix product, so nothing of size (n, P^2) is formed:
    the largest intermediate is (n, P^2 / R_1^2).
    """
    ranks = [f.shape[1] for f in factors]
    n, K = factors[0].shape[0], len(ranks)
    if second:
        T = core_moment.reshape(tuple(ranks) * 2)
        T = jnp.transpose(T, [a for k in range(K) for a in (k, K + k)])
        flat = [f.reshape(n, -1) for f in factors]
    else:
        T = core_moment
        flat = list(factors)
    X = flat[0] @ T.reshape(flat[0].shape[1], -1)
    for f in flat[1:]:
        X = jnp.sum(X.reshape(n, f.shape[1], -1) * f[:, :, None], axis=1)
    return X[:, 0]


@partial(jax.jit, static_argnames=("structure",))
def _predict_moments(core, means, seconds, *, structure):
    """Predictive mean and E[f^2] of the standardised latent value (n,) each."""
    if structure == "cp":
        m = jnp.prod(jnp.stack(means), axis=0).sum(axis=1)
        s = jnp.prod(jnp.stack(seconds), axis=0).sum(axis=(1, 2))
        return m, s
    m = _contract(core.mean, means, second=False)
    s = _contract(U.core_second_moment(core), seconds, second=True)
    return m, s


@partial(jax.jit, static_argnames=("structure", "chunk"))
def _entry_predictions(idx, means, seconds, core, *, structure, chunk):
    """Mean and variance of every entry's latent value ``f_n``, (N,) each, ``chunk``
    entries at a time (standardised units)."""

    def one(ix):
        mom = [(mu[ix[:, k]], se[ix[:, k]]) for k, (mu, se) in enumerate(zip(means, seconds))]
        m, e2 = _predict_moments(
            core, [a for a, _ in mom], [b for _, b in mom], structure=structure
        )
        return m, e2 - m**2

    K = idx.shape[1]
    m, v = jax.lax.map(one, idx.reshape(-1, chunk, K))
    return m.reshape(-1), v.reshape(-1)


@partial(jax.jit, static_argnames=("structure", "chunk"))
def _entry_sq_errors(idx, y, means, seconds, core, *, structure, chunk):
    """``E[(y_n - f_n)^2]`` (N,) of every entry, ``chunk`` entries at a time."""
    m, var_f = _entry_predictions(idx, means, seconds, core, structure=structure, chunk=chunk)
    return (y - m) ** 2 + var_f


class _MemoryEntries:
    """In-memory entries, padded to whole chunks, with the passes over them that the
    sweeps need: the same methods as ``funbat.distributed.DaskEntries``, so ``_fit`` has
    one path for both. The noise updates replace ``weights`` (Student-t ``E[w_n]``, times
    ``E[s_g]`` with a noise mode), which the statistics then use."""

    def __init__(self, idx, y, mask, n):
        self.idx, self.y, self.mask, self.n = idx, y, mask, n
        self.weights = mask

    def statistics(self, means, seconds, *, mode, n_groups, chunk, structure):
        stats = _mode_first_statistics(self.idx, self.y, self.weights, chunk)
        return stats(means, seconds, mode=mode, n_groups=n_groups, structure=structure)

    def _sq_errors(self, means, seconds, core, chunk, structure):
        return _entry_sq_errors(
            self.idx, self.y, means, seconds, core, structure=structure, chunk=chunk
        )

    def _reweight(self, weights):
        self.weights = weights
        return jnp.sum(weights * self.y**2)

    def student_t_weights(self, means, seconds, core, tau_mean, dof, *, chunk, structure):
        """As ``DaskEntries.student_t_weights``: ``nu``, the ELBO term, ``sum E[w] y^2``."""
        sq_err = self._sq_errors(means, seconds, core, chunk, structure)
        weights, dof, term = student_t_weights(sq_err, tau_mean, dof, self.mask)
        return dof, term, self._reweight(weights)

    def grouped_noise_weights(
        self, means, seconds, core, tau_mean, dof, group_dof, mean_s, *, mode, n_groups,
        robust, chunk, structure,
    ):  # fmt: skip
        """As ``DaskEntries.grouped_noise_weights``: ``nu``, ``c``, the ELBO term,
        ``alpha``, ``beta`` and ``sum E[w] E[s] y^2``."""
        sq_err = self._sq_errors(means, seconds, core, chunk, structure)
        weights, dof, group_dof, term, alpha, beta = grouped_noise_weights(
            sq_err, self.idx[:, mode], self.mask, tau_mean, dof, group_dof, mean_s,
            n_groups=n_groups, robust=robust,
        )  # fmt: skip
        return dof, group_dof, term, alpha, beta, self._reweight(weights)

    def loo_residuals(self, means, seconds, core, noise_var, *, max_entries, seed, chunk,
                      structure):  # fmt: skip
        """As ``DaskEntries.loo_residuals``: standardised leave-one-out residuals of all
        entries, or of a random subset of about ``max_entries``."""
        m, var_f = _entry_predictions(
            self.idx, means, seconds, core, structure=structure, chunk=chunk
        )
        resid, var_f = np.asarray(self.y - m)[: self.n], np.asarray(var_f)[: self.n]
        if self.n > max_entries:  # a random subset bounds the Student-t fit's cost
            keep = np.random.default_rng(seed).random(self.n) < max_entries / self.n
            resid, var_f = resid[keep], var_f[keep]
        return loo_residuals(resid, var_f, noise_var)


class _FunBaTBase(RegressorMixin, BaseEstimator):
    """Shared machinery of :class:`FunBaT` and :class:`FunBaTCP`."""

    _structure = "tucker"

    # -- input ---------------------------------------------------------------------

    def _resolve_per_mode(self, value, K: int, what: str) -> list:
        if isinstance(value, (list, tuple)):
            if len(value) != K:
                raise InputError(f"{what} has {len(value)} entries but the data has {K} modes")
            return list(value)
        return [value] * K

    def _resolve_ranks(self, K: int) -> tuple[int, ...]:
        ranks = self._resolve_per_mode(self.rank, K, "rank")
        for r in ranks:
            if isinstance(r, bool) or not isinstance(r, Integral) or r < 1:
                raise InputError(f"rank must be a positive integer (or one per mode); got {r!r}")
        if self._structure == "cp" and len(set(ranks)) != 1:
            raise InputError(f"FunBaTCP needs one rank shared by all modes; got {ranks}")
        return tuple(int(r) for r in ranks)

    def _resolve_kernels(self, encodings: list[ModeEncoding]) -> list[Matern]:
        K = len(encodings)
        names = self._resolve_per_mode(self.kernel, K, "kernel")
        lengthscales = self._resolve_per_mode(self.lengthscale, K, "lengthscale")
        variances = self._resolve_per_mode(self.variance, K, "variance")
        kernels = []
        for name, ell, var, enc in zip(names, lengthscales, variances, encodings):
            if enc.kind != "continuous":
                kernels.append(_dense_kernel(name, ell, var, enc))
                continue
            if name not in KERNELS:
                raise InputError(f"unknown kernel {name!r}; choose one of {sorted(KERNELS)}")
            if ell is None:
                ell_scaled = _default_lengthscale(enc.unique)
            else:
                if not np.isfinite(ell) or ell <= 0:
                    raise InputError(
                        f"lengthscale must be positive; got {ell!r} for mode {enc.name!r}"
                    )
                ell_scaled = float(ell) / enc.scale
            if not np.isfinite(var) or var <= 0:
                raise InputError(f"variance must be positive; got {var!r} for mode {enc.name!r}")
            kernels.append(make_kernel(name, ell_scaled, var))
        return kernels

    def _resolve_noise_mode(self, encodings: list[ModeEncoding]) -> int | None:
        """Position of ``noise_mode`` among the modes (None: one noise level)."""
        nm = self.noise_mode
        if nm is None:
            return None
        names = [e.name for e in encodings]
        if isinstance(nm, Integral) and not isinstance(nm, bool):
            if not 0 <= nm < len(names):
                raise InputError(f"noise_mode={nm} is not a mode position; the modes are {names}")
            return int(nm)
        if isinstance(nm, (list, tuple)):  # a spatial mode given as its columns
            nm = "+".join(map(str, nm))
        if nm not in names:
            raise InputError(
                f"noise_mode {nm!r} is not one of the modes {names}; give a mode's name "
                "(a spatial mode as 'a+b') or its position"
            )
        return names.index(nm)

    def _check_params(self):
        if (
            isinstance(self.max_iter, bool)
            or not isinstance(self.max_iter, Integral)
            or self.max_iter < 1
        ):
            raise InputError(f"max_iter must be a positive integer; got {self.max_iter!r}")
        if not self.tol >= 0:
            raise InputError(f"tol must be >= 0; got {self.tol!r}")
        if (
            isinstance(self.chunk_size, bool)
            or not isinstance(self.chunk_size, Integral)
            or self.chunk_size < 1
        ):
            raise InputError(f"chunk_size must be a positive integer; got {self.chunk_size!r}")
        if self.likelihood not in LIKELIHOODS:
            raise InputError(
                f"likelihood must be one of {', '.join(map(repr, LIKELIHOODS))}; "
                f"got {self.likelihood!r}"
            )
        if not isinstance(self.recalibrate, (bool, np.bool_)):
            raise InputError(f"recalibrate must be True or False; got {self.recalibrate!r}")

    # -- fitting -------------------------------------------------------------------

    def fit(self, X, y=None, callback=None):
        """Fit the posterior by message passing sweeps until the ELBO converges.

        Parameters
        ----------
        X : pandas DataFrame (one column per mode), array (N, K) or xarray.DataArray
            Coordinates; ``datetime64`` columns are read as days. A DataArray (with
            ``y=None``) gives both: its dims are the modes, NaN cells are missing.
            Or a dask DataFrame, or a path/glob of Parquet files: then the sweeps run
            on the Dask cluster (see :mod:`funbat.distributed`) and ``y`` names the
            target column.
        y : array (N,), or for Dask data the target column's name (or a dask Series)
            Observed values.
        callback : optional callable ``callback(iteration, elbo)`` after each sweep.

        Returns
        -------
        self
        """
        self._check_params()
        t0 = time.perf_counter()  # with Dask, reading and encoding the data count too
        entries = None
        if isinstance(X, (str, os.PathLike)) or type(X).__module__.split(".")[0] == "dask":
            from .distributed import DaskEntries  # needs the [dask] extra

            if self.modes is not None or self.discrete is not None:
                raise InputError(
                    "with Dask data every column but the target is one continuous mode; "
                    "modes= and discrete= need in-memory data"
                )
            entries = DaskEntries.from_input(X, y)
            names, columns, is_dt, kinds = entries.names, None, entries.is_datetime, None
        else:
            if y is None:
                from .files import from_dataarray

                X, y = from_dataarray(X)
            names, columns, is_dt, kinds = as_modes(X, self.modes, self.discrete)
            y = as_target(y, columns[0].shape[0])
            if y.shape[0] < 2:
                raise InputError(f"need at least 2 observations to fit; got {y.shape[0]}")
        if hasattr(X, "columns") or entries is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        with jax.enable_x64(True):
            self._fit(names, columns, is_dt, y, callback, kinds, entries)
        self.fit_time_ = time.perf_counter() - t0
        return self

    def _fit(self, names, columns, is_dt, y, callback, kinds=None, entries=None):
        # entries: DaskEntries when the data lives on a Dask cluster (funbat.distributed);
        # in memory, _MemoryEntries below (the same passes over the entries)
        if entries is None:
            encodings, idx = encode_modes(names, columns, is_dt, kinds)
        else:
            encodings = entries.encodings
        K = len(encodings)
        ranks = self._resolve_ranks(K)
        kernels = self._resolve_kernels(encodings)
        noise_k = self._resolve_noise_mode(encodings)
        learn = bool(self.learn_hyperparameters)
        rng = np.random.default_rng(self.random_state)

        if entries is None:
            N = y.shape[0]
            y_mean = float(y.mean())
            y_scale = float(y.std()) or 1.0
            ys = (y - y_mean) / y_scale
        else:
            N, y_mean, y_scale = entries.n, entries.y_mean, entries.y_scale

        chunk = min(int(self.chunk_size), _bucket(N, 64))
        # memory: a chunk's per-entry statistics are (chunk, P (P + 1) / 2) plus gathers of
        # the same size; keep their few live copies well under ~64 MB whatever the rank
        # (R = 7, K = 3: P = 49)
        P_max = max(int(np.prod([r for i, r in enumerate(ranks) if i != k])) for k in range(K))
        chunk = max(64, min(chunk, _bucket(2**26 // (32 * P_max * P_max), 64) // 2))
        on_cluster = entries is not None
        if not on_cluster:
            padded = pad_entries(idx, ys, -(-N // chunk) * chunk)
            entries = _MemoryEntries(*(jnp.asarray(a) for a in padded), N)
        statistics = partial(entries.statistics, chunk=chunk)

        # Chains are padded past their last coordinate: unobserved points there leave
        # the posterior at the real points unchanged, and shapes fall in few buckets.
        fits, n_valid, steps = [], [], []
        sizes = [e.unique.shape[0] for e in encodings]
        if not on_cluster:
            starts = svd_init(idx, ys, sizes, ranks, rng)
        else:
            starts = entries.svd_init(sizes, ranks, rng)
        # one padded length for all continuous modes: their chain updates share one
        # compilation; dense (spatial, discrete) modes are not padded
        Ip = _bucket(max([e.unique.size for e in encodings if e.kind == "continuous"] or [1]))
        for enc, R, kern, start in zip(encodings, ranks, kernels, starts):
            if enc.kind != "continuous":
                fits.append(_init_dense_mode(enc, R, kern, start))
                n_valid.append(enc.unique.shape[0])
                steps.append(jnp.asarray(0.5, dtype=jnp.float64))
                continue
            I = enc.unique.size
            coords = np.concatenate([enc.unique, enc.unique[-1] + 1.0 + np.arange(Ip - I)])
            means = np.concatenate([start, np.zeros((Ip - I, R))])
            seconds = means[:, :, None] * means[:, None, :] + 0.01 * np.eye(R)
            D = R * kern.state_dim
            empty = ChainPosterior(
                jnp.zeros((Ip, D)),
                jnp.zeros((Ip, D, D)),
                jnp.zeros((Ip, D)),
                jnp.zeros((Ip, D, D)),
                jnp.zeros(()),
            )
            fits.append(
                ModeFit(jnp.asarray(coords), kern, empty, jnp.asarray(means), jnp.asarray(seconds))
            )
            n_valid.append(I)
            steps.append(jnp.asarray(0.5, dtype=jnp.float64))

        P = int(np.prod(ranks))
        if self._structure == "cp":
            core = None
        else:
            core = U.CoreMoments(jnp.asarray(rng.normal(size=P) / math.sqrt(P)), jnp.zeros((P, P)))
        # gather indices between the core's C order and each mode's layouts
        orders = [
            (None, None) if core is None else tuple(map(jnp.asarray, U.core_orders(ranks, k)))
            for k in range(K)
        ]
        f64 = partial(jnp.asarray, dtype=jnp.float64)  # strong dtypes: no retracing later
        noise = U.NoiseMoments(f64(1.0), f64(0.1))  # E[tau] = 10: start confident
        a0, b0 = 1e-3, 1e-3
        priors = (f64(self.core_prior_variance), f64(a0), f64(b0))
        sum_y2 = f64(entries.sum_y2 if on_cluster else np.sum(ys**2))
        # Student-t noise: per-entry weights E[w_n]; a noise mode: per-group multipliers
        # E[s_g] (both start at 1: Gaussian noise until the warm-up ends)
        robust = self.likelihood == "student_t"
        dof, weights_term = f64(DOF_START), f64(0.0)
        if noise_k is not None:
            n_groups = encodings[noise_k].unique.shape[0]
            group_dof = f64(DOF_START)
            group_post = (jnp.ones(n_groups), jnp.ones(n_groups))  # q(s_g): E[s_g] = 1

        mode_kls = [jnp.zeros(())] * K
        # Warm-up: the first sweeps hold the noise precision at its confident start and
        # the lengthscales at their defaults, so the functions take up the signal before
        # the noise and smoothness are learned. From a weak start, learning them at
        # once can settle in the all-noise fixed point (core ~ 0, noise = var(y)), which
        # message passing never leaves.
        warmup = min(_WARMUP_SWEEPS, int(self.max_iter) // 2)
        # Fit the core (least squares with its prior) and the noise to the starting
        # functions before the first sweep, so the first messages are informative.
        G, g = statistics(
            tuple(f.means for f in fits),
            tuple(f.seconds for f in fits),
            mode=0,
            n_groups=fits[0].coords.shape[0],
            structure=self._structure,
        )
        core, noise, _ = _update_core_and_noise(
            G,
            g,
            fits[0].means,
            fits[0].seconds,
            core,
            noise,
            sum(mode_kls),
            weights_term,
            sum_y2,
            N,
            priors,
            jnp.asarray(warmup > 0),
            orders[0][1],
            structure=self._structure,
        )
        history: list[float] = []
        converged = False
        for it in range(int(self.max_iter)):
            if (robust or noise_k is not None) and it >= warmup:  # weights from the last sweep
                moments = (tuple(f.means for f in fits), tuple(f.seconds for f in fits))
                kw = dict(chunk=chunk, structure=self._structure)
                if noise_k is None:  # on a cluster the weights stay with their entries
                    dof, weights_term, sum_y2 = entries.student_t_weights(
                        *moments, core, noise.mean, dof, **kw
                    )
                else:
                    dof, group_dof, weights_term, *group_post, sum_y2 = (
                        entries.grouped_noise_weights(
                            *moments, core, noise.mean, dof, group_dof,
                            group_post[0] / group_post[1], mode=noise_k, n_groups=n_groups,
                            robust=robust, **kw,
                        )
                    )  # fmt: skip
            for k in range(K):
                G, g = statistics(
                    tuple(f.means for f in fits),
                    tuple(f.seconds for f in fits),
                    mode=k,
                    n_groups=fits[k].coords.shape[0],
                    structure=self._structure,
                )
                unfolded = None if core is None else _unfold_core(core, ranks[k], orders[k][0])
                # a zero step during the warm-up keeps the lengthscale and reuses the
                # same compiled update (a separate no-learning variant compiled twice)
                learning = it >= warmup
                fits[k], mode_kls[k], step = _update_mode(
                    fits[k].kernel,
                    fits[k].coords,
                    G,
                    g,
                    noise.mean,
                    unfolded,
                    steps[k] if learning else jnp.zeros_like(steps[k]),
                    jnp.asarray(n_valid[k], dtype=jnp.int32),
                    learn=learn,
                )
                if learning:
                    steps[k] = step
                core, noise, elbo = _update_core_and_noise(
                    G,
                    g,
                    fits[k].means,
                    fits[k].seconds,
                    core,
                    noise,
                    sum(mode_kls),
                    weights_term,
                    sum_y2,
                    N,
                    priors,
                    jnp.asarray(it < warmup),
                    orders[k][1],
                    structure=self._structure,
                )
            elbo = float(elbo)
            if not np.isfinite(elbo):
                raise FloatingPointError(
                    f"the ELBO became {elbo} at sweep {it + 1}; try a smaller rank or fixed "
                    "lengthscales (learn_hyperparameters=False)"
                )
            history.append(elbo)
            if callback is not None:
                callback(it + 1, elbo)
            if it > warmup and abs(history[-1] - history[-2]) <= self.tol * abs(history[-1]):
                converged = True
                break

        recalibration = None
        if self.recalibrate and not robust and noise_k is None:
            moments = (tuple(f.means for f in fits), tuple(f.seconds for f in fits))
            noise_var = float(noise.rate / (noise.shape - 1.0))
            z = entries.loo_residuals(
                *moments, core, noise_var, max_entries=_RECALIBRATION_MAX,
                seed=int(rng.integers(2**31)), chunk=chunk, structure=self._structure,
            )  # fmt: skip
            # residuals mostly exactly 0 (a target the model fits exactly) have no shape
            if z.size >= _RECALIBRATION_MIN and np.median(np.abs(z)) > 0.0:
                recalibration = fit_recalibration(z, DOF_BOUNDS)

        self._encodings = encodings
        self._fits = fits
        self._n_valid = tuple(n_valid)
        self._core = core
        self._noise = noise
        self._y_mean, self._y_scale = y_mean, y_scale
        self.ranks_ = ranks
        self.modes_ = list(names)
        self.n_features_in_ = K
        self.n_train_ = N
        self.elbo_ = history[-1]
        self.elbo_history_ = np.asarray(history)
        self.n_iter_ = len(history)
        self.converged_ = converged
        self.kernels_ = [
            "identity" if e.kind == "discrete" else name
            for e, name in zip(encodings, self._resolve_per_mode(self.kernel, K, "kernel"))
        ]
        self.mode_kinds_ = [e.kind for e in encodings]
        self.lengthscales_ = [_user_lengthscale(f.kernel, e) for f, e in zip(fits, encodings)]
        if learn:
            _warn_collapsed_lengthscales(fits, encodings)
        self.noise_variance_ = float(noise.rate / (noise.shape - 1.0)) * y_scale**2
        self.dof_ = float(dof) if robust else float("inf")
        self.recalibration_ = recalibration
        if recalibration is not None:
            self.dof_ = recalibration.dof
        if noise_k is None:
            self.noise_mode_ = None
            self._noise_k = self._noise_groups = None
        else:
            self.noise_mode_ = names[noise_k]
            self._noise_k = noise_k
            self._noise_groups = (np.asarray(group_post[0]), np.asarray(group_post[1]))
            self.noise_group_dof_ = float(group_dof)
            self.noise_multipliers_ = np.asarray(group_post[0] / group_post[1])
        if core is None:
            R = ranks[0]
            self.core_ = np.zeros((R,) * K)
            self.core_[(np.arange(R),) * K] = 1.0
        else:
            self.core_ = np.asarray(core.mean).reshape(ranks)

    # -- prediction ----------------------------------------------------------------

    def _input_columns(self) -> list[str]:
        """The table columns the fitted model reads, in order (a spatial mode has several)."""
        return [c for e in self._encodings for c in (e.columns or (e.name,))]

    def _query_columns(self, X) -> list[np.ndarray]:
        check_is_fitted(self, "elbo_")
        kinds = [e.kind for e in self._encodings]
        modes, discrete = self.modes, self.discrete
        if not hasattr(self, "feature_names_in_") and hasattr(X, "columns"):
            # fitted on an array, asked with a table (the CLI): positions in ``modes``
            # refer to the training array, so read the table's columns by the names the
            # model gave them (``modes_``: "x2+x0", "x1") when it has them all
            by_name = [e.columns if len(e.columns or ()) > 1 else e.name for e in self._encodings]
            if all(c in X.columns for c in self._input_columns()):
                modes, discrete = by_name, None  # the kinds say which modes are discrete
        names, columns, is_dt, _ = as_modes(X, modes, discrete, kinds)
        if len(columns) != self.n_features_in_:
            raise InputError(
                f"X has {len(columns)} columns but the model was fitted on {self.n_features_in_} "
                f"modes {self.modes_}"
            )
        if hasattr(self, "feature_names_in_") and hasattr(X, "columns"):
            if list(names) != list(self.modes_):
                raise InputError(
                    f"X has columns {list(names)} but the model was fitted on {self.modes_}; "
                    "give the same columns in the same order"
                )
        for enc, dt, name in zip(self._encodings, is_dt, names):
            if enc.is_datetime != dt:
                want = "dates" if enc.is_datetime else "numbers"
                raise InputError(f"column {name!r} must hold {want}, as in training")
        return columns

    def _mode_moments(self, k: int, x_user: np.ndarray):
        """Posterior mean (n, R) and second moment (n, R, R) of mode k at user coords."""
        enc = self._encodings[k]
        if enc.kind == "discrete":
            codes = enc.codes(x_user)
            return self._fits[k].means[codes], self._fits[k].seconds[codes]
        q = enc.scaled(x_user)
        if enc.kind == "spatial":  # exact GP conditional at the unique query points
            uq, inv = np.unique(q, axis=0, return_inverse=True)
            n_u = uq.shape[0]
            uq = np.concatenate([uq, np.zeros((_bucket(n_u, 16) - n_u, uq.shape[1]))])
            fit = self._fits[k]
            m, s = _dense_marginals(fit.kernel, fit.coords, fit.posterior, jnp.asarray(uq))
            inv = inv.reshape(-1)
            return m[inv], s[inv]
        n = q.shape[0]
        n_pad = _bucket(n, 64)
        qp = np.concatenate([q, np.zeros(n_pad - n)])
        m, s = _mode_marginals(
            self._fits[k], jnp.asarray(qp), jnp.asarray(self._n_valid[k], dtype=jnp.int32)
        )
        return m[:n], s[:n]

    def predictive(self, X) -> Predictive:
        """The posterior predictive distribution at any coordinates.

        Parameters
        ----------
        X : table or array (n, K) of coordinates, seen in training or not.

        Returns
        -------
        :class:`funbat.calibration.Predictive` in the target's units: the latent
        value's mean and variance (n,) (core and every mode's functions), the noise
        scale and degrees of freedom (``inf``: Gaussian noise). Its ``interval(level)``,
        ``logpdf(y)``, ``std`` and ``coverage_table(y)`` give intervals, densities and
        checks. A recalibrated model (``recalibration_`` set) is Student-t as a whole:
        ``var_f`` is 0 and ``noise_scale`` is ``scale * sqrt(var_f + noise variance)``.
        """
        columns = self._query_columns(X)
        n = columns[0].shape[0]
        means_out, var_out = np.empty(n), np.empty(n)
        # queries per block: the largest intermediate is (block, P^2 / R_1^2) doubles
        inner = int(np.prod(self.ranks_)) ** 2 // self.ranks_[0] ** 2
        block = int(np.clip(2**22 // max(inner, 1), 256, 16384))
        with jax.enable_x64(True):
            for s in range(0, n, block):
                cols = [c[s : s + block] for c in columns]
                mom = [self._mode_moments(k, c) for k, c in enumerate(cols)]
                m, e2 = _predict_moments(
                    self._core, [a for a, _ in mom], [b for _, b in mom], structure=self._structure
                )
                means_out[s : s + block] = np.asarray(m)
                var_out[s : s + block] = np.maximum(np.asarray(e2 - m**2), 0.0)
            noise_var = float(self._noise.rate / (self._noise.shape - 1.0))
        scale = math.sqrt(noise_var) * self._y_scale
        dof = getattr(self, "dof_", math.inf)
        recal = getattr(self, "recalibration_", None)
        if recal is not None:  # the whole spread takes the Student-t shape of the LOO errors
            spread = recal.scale * np.sqrt(var_out + noise_var) * self._y_scale
            return Predictive(means_out * self._y_scale + self._y_mean, np.zeros(n), spread, dof)
        if getattr(self, "_noise_k", None) is not None:  # noise level per group
            ids, alpha, beta = self._noise_group_params(columns[self._noise_k])
            dof_g, factor_g = predictive_noise(alpha, beta, dof)
            scale, dof = scale * factor_g[ids], dof_g[ids]
        return Predictive(
            means_out * self._y_scale + self._y_mean, var_out * self._y_scale**2, scale, dof
        )

    def _noise_group_params(self, x_user):
        """Noise groups of query coordinates (n,) of the noise mode, and their ``q(s)``.

        Returns ``ids`` (n,) and ``alpha``, ``beta`` (G + U,): a training coordinate's
        group keeps its posterior; each of the ``U`` distinct unseen coordinates is a
        new group with the prior ``Gamma(c/2, c/2)``.
        """
        enc = self._encodings[self._noise_k]
        alpha, beta = self._noise_groups
        G = alpha.shape[0]
        if enc.kind == "discrete":  # unseen categories are an error (as for the mean)
            ids, n_new = enc.codes(x_user), 0
        else:
            train = np.asarray(enc.unique, float).reshape(G, -1)
            query = np.asarray(enc.scaled(x_user), float).reshape(len(x_user), -1)
            _, inv = np.unique(np.concatenate([train, query]), axis=0, return_inverse=True)
            inv = inv.reshape(-1)
            lookup = np.full(inv.max() + 1, -1)
            lookup[inv[:G]] = np.arange(G)
            ids = lookup[inv[G:]]
            unseen = ids < 0
            _, new = np.unique(inv[G:][unseen], return_inverse=True)
            ids[unseen] = G + new.reshape(-1)
            n_new = int(new.max()) + 1 if new.size else 0
        prior = np.full(n_new, 0.5 * self.noise_group_dof_)
        return ids, np.concatenate([alpha, prior]), np.concatenate([beta, prior])

    def predict(self, X, return_std: bool = False):
        """Posterior predictive mean (and std) at any coordinates.

        Parameters
        ----------
        X : table or array (n, K) of coordinates, seen in training or not.
        return_std : also return the predictive standard deviation, which includes the
            uncertainty of the core, of every mode's functions and the noise (``inf``
            where the predictive is Student-t with 2 or fewer degrees of freedom, as with
            ``dof_ <= 2`` or at a rarely seen or unseen coordinate of a ``noise_mode``).
            With a Student-t predictive (recalibrated, ``likelihood="student_t"`` or a
            ``noise_mode``) ``mean +- z std`` is not its interval: use
            :meth:`predict_interval`.

        Returns
        -------
        mean : (n,) in the target's units; std : (n,) when ``return_std``.
        """
        pred = self.predictive(X)
        return (pred.mean, pred.std) if return_std else pred.mean

    def predict_interval(self, X, level: float = 0.95):
        """Central predictive interval of probability ``level`` at ``X``.

        Returns
        -------
        lower, upper : (n,) each, in the target's units.
        """
        return self.predictive(X).interval(_check_level(level))

    def sample_y(self, X, n_samples: int = 1, random_state=None):
        """Joint draws from the posterior predictive distribution at ``X``.

        Each draw samples the core, every mode's latent functions *jointly* over the
        query coordinates (backward sampling through a continuous mode's chain, the
        exact GP conditional for a spatial mode), the noise precision, and the noise.

        Parameters
        ----------
        X : table or array (n, K) of coordinates.
        n_samples : number of draws.
        random_state : int, numpy Generator or None.

        Returns
        -------
        (n, n_samples) array in the target's units (scikit-learn's ``sample_y`` layout).
        """
        if isinstance(n_samples, bool) or not isinstance(n_samples, Integral) or n_samples < 1:
            raise InputError(f"n_samples must be a positive integer; got {n_samples!r}")
        columns = self._query_columns(X)
        rng = np.random.default_rng(random_state)
        S, n = int(n_samples), columns[0].shape[0]
        with jax.enable_x64(True):
            key = jax.random.PRNGKey(int(rng.integers(2**31)))
            keys = jax.random.split(key, len(columns) + 1)
            factors = [self._mode_samples(k, c, keys[k], S) for k, c in enumerate(columns)]
            if self._core is None:
                f = jnp.prod(jnp.stack(factors), axis=0).sum(axis=-1)  # (S, n)
            else:
                C = jnp.linalg.cholesky(self._core.cov + 1e-12 * jnp.eye(self._core.cov.shape[0]))
                w = self._core.mean + jax.random.normal(keys[-1], (S, C.shape[0])) @ C.T
                f = jax.vmap(
                    lambda wi, *fs: _contract(wi, list(fs), second=False),
                )(w, *factors)
            f = np.asarray(f)
        tau = rng.gamma(float(self._noise.shape), 1.0 / float(self._noise.rate), size=(S, 1))
        dof = getattr(self, "dof_", math.inf)
        recal = getattr(self, "recalibration_", None)
        if recal is not None:  # the latent deviation and the noise, scaled per point
            m = (self.predict(X) - self._y_mean) / self._y_scale
            eps = rng.normal(size=(S, n)) / np.sqrt(tau)
            w = rng.gamma(0.5 * dof, 2.0 / dof, size=(S, n))
            y = m + recal.scale * (f - m + eps) / np.sqrt(w)
            return (y * self._y_scale + self._y_mean).T
        if math.isfinite(dof):  # Student-t noise: a Gamma(dof/2, rate dof/2) weight per draw
            tau = tau * rng.gamma(0.5 * dof, 2.0 / dof, size=(S, n))
        if getattr(self, "_noise_k", None) is not None:  # one multiplier per group and draw
            ids, alpha, beta = self._noise_group_params(columns[self._noise_k])
            tau = tau * rng.gamma(alpha, 1.0 / beta, size=(S, alpha.shape[0]))[:, ids]
        y = f + rng.normal(size=(S, n)) / np.sqrt(tau)
        return (y * self._y_scale + self._y_mean).T

    def _mode_samples(self, k: int, x_user, key, S: int):
        """Joint draws (S, n, R_k) of mode k's functions at user coordinates (n,)."""
        enc, fit = self._encodings[k], self._fits[k]
        if enc.kind == "discrete":  # categories are independent under q
            codes = enc.codes(x_user)
            uniq, inv = np.unique(codes, return_inverse=True)
            m = fit.means[uniq]
            cov = fit.seconds[uniq] - m[:, :, None] * m[:, None, :]
            C = jnp.linalg.cholesky(cov + 1e-12 * jnp.eye(m.shape[1]))
            u = m + jnp.einsum("irs,nis->nir", C, jax.random.normal(key, (S,) + m.shape))
            return u[:, inv]
        q = enc.scaled(x_user)
        if enc.kind == "spatial":
            uq, inv = np.unique(q, axis=0, return_inverse=True)
            u = DN.sample_points(fit.kernel, fit.coords, fit.posterior, jnp.asarray(uq), key, S)
            return u[:, inv.reshape(-1)]
        uq, inv = np.unique(q, return_inverse=True)
        u = chain_samples(fit.kernel, fit.coords, self._n_valid[k], fit.posterior, uq, key, S)
        return u[:, inv]

    def predict_grid(self, coords=None, **coords_kw):
        """Predictions on a grid as an ``xarray.Dataset``; see :func:`funbat.files.predict_grid`."""
        from .files import predict_grid

        return predict_grid(self, coords, **coords_kw)

    # -- files ---------------------------------------------------------------------

    def save(self, path) -> None:
        """Save the fitted model to ``path`` (no pickle; format in :mod:`funbat.io`)."""
        from .io import save

        save(self, path)

    @classmethod
    def load(cls, path):
        """Load a model saved by :meth:`save`."""
        from .io import load

        model = load(path)
        if not isinstance(model, cls):
            raise InputError(f"{str(path)!r} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def latent_functions(self, mode, coords):
        """Posterior mean and std of one mode's latent functions at ``coords``.

        Parameters
        ----------
        mode : int or str (the mode's name: ``"lat+lon"`` for a spatial mode)
        coords : (n,) coordinates in the user's units (dates allowed for date modes);
            (n, D) points for a spatial mode; categories for a discrete one.

        Returns
        -------
        mean, std : (n, R_k) each, in the model's (standardised) units.
        """
        check_is_fitted(self, "elbo_")
        k = self.modes_.index(mode) if isinstance(mode, str) else int(mode)
        if not 0 <= k < self.n_features_in_:
            raise InputError(f"mode {mode!r} does not exist; the modes are {self.modes_}")
        enc = self._encodings[k]
        if enc.kind == "continuous":
            x = _coords_column(coords, enc)
        elif enc.kind == "spatial":
            x = np.asarray(coords, dtype=float)
            if x.ndim != 2 or x.shape[1] != len(enc.columns):
                raise InputError(
                    f"mode {enc.name!r} is spatial: give points as an (n, {len(enc.columns)}) "
                    f"array of {enc.columns}; got shape {x.shape}"
                )
        else:
            x = np.asarray(coords, dtype=object).reshape(-1)
        with jax.enable_x64(True):
            m, s = self._mode_moments(k, x)
            var = jnp.diagonal(s, axis1=1, axis2=2) - m**2
        return np.asarray(m), np.sqrt(np.maximum(np.asarray(var), 0.0))

    def noise_levels(self, level: float = 0.95):
        """The learned noise scale at each training coordinate of the ``noise_mode``.

        The noise precision there is ``tau s`` (times the entry's weight for Student-t
        noise) with ``q(s) = Gamma(alpha, beta)``; the table gives the scale
        ``sigma / sqrt(E[s])`` (``sigma = sqrt(noise_variance_)``) and the central
        ``level`` interval of ``sigma / sqrt(s)`` under ``q(s)``.

        Returns
        -------
        pandas DataFrame, one row per unique training coordinate (sorted): the mode's
        column(s) in the user's units (dates for a date mode, categories for a discrete
        one), ``entries`` (training entries there), ``noise_scale``, ``lower``,
        ``upper`` (target units).
        """
        import pandas as pd
        from scipy.stats import gamma

        check_is_fitted(self, "elbo_")
        if getattr(self, "_noise_k", None) is None:
            raise InputError("the model has one noise level; fit it with noise_mode= first")
        level = _check_level(level)
        enc = self._encodings[self._noise_k]
        alpha, beta = self._noise_groups
        sigma = math.sqrt(self.noise_variance_)
        table = {}
        if enc.kind == "discrete":
            table[enc.name] = enc.categories
        elif enc.kind == "spatial":
            for j, c in enumerate(enc.columns):
                table[c] = enc.unscaled(enc.unique)[:, j]
        else:
            x = enc.unscaled(enc.unique)
            table[enc.name] = pd.to_datetime(x, unit="D") if enc.is_datetime else x
        table["entries"] = np.rint(2.0 * alpha - self.noise_group_dof_).astype(int)
        table["noise_scale"] = sigma * np.sqrt(beta / alpha)
        s_low, s_high = gamma.ppf([[0.5 - level / 2], [0.5 + level / 2]], alpha, scale=1 / beta)
        table["lower"], table["upper"] = sigma / np.sqrt(s_high), sigma / np.sqrt(s_low)
        return pd.DataFrame(table)


def _check_level(level) -> float:
    """A probability level strictly between 0 and 1, as a float (else a clear error)."""
    if isinstance(level, bool) or not isinstance(level, Real) or not 0.0 < level < 1.0:
        raise InputError(f"level must be a number between 0 and 1; got {level!r}")
    return float(level)


def _coords_column(coords, enc: ModeEncoding) -> np.ndarray:
    """One mode's query coordinates (n,) in the user's units -> floats (days for dates)."""
    import pandas as pd

    s = pd.Series(np.asarray(coords).reshape(-1))
    if enc.is_datetime and not pd.api.types.is_datetime64_any_dtype(s.dtype):
        s = pd.to_datetime(s)
    _, (x,), _ = as_mode_columns(pd.DataFrame({enc.name: s}))
    return x


def _dense_kernel(name, ell, var, enc: ModeEncoding):
    """Kernel of a spatial (Matérn on points) or discrete (identity) mode, scaled units."""
    if not np.isfinite(var) or var <= 0:
        raise InputError(f"variance must be positive; got {var!r} for mode {enc.name!r}")
    if enc.kind == "discrete":
        return DN.Identity(jnp.asarray(float(var)))
    DN.check_size(enc.unique.shape[0], enc.name)
    if name not in KERNELS:
        raise InputError(f"unknown kernel {name!r}; choose one of {sorted(KERNELS)}")
    D = enc.unique.shape[1]
    if ell is None:
        ells = DN.default_lengthscales(enc.unique)
    else:
        ells = np.broadcast_to(np.asarray(ell, dtype=float), (D,)) if np.ndim(ell) < 2 else None
        if ells is None or not np.all(np.isfinite(ells)) or np.any(ells <= 0):
            raise InputError(
                f"lengthscale of spatial mode {enc.name!r} must be a positive number or "
                f"{D} of them (one per column {enc.columns}); got {ell!r}"
            )
        ells = ells / enc.scale
    return DN.PointMatern(KERNELS[name], jnp.asarray(ells, float), jnp.asarray(float(var)))


def _init_dense_mode(enc: ModeEncoding, R: int, kern, start) -> ModeFit:
    """Initial moments of a spatial or discrete mode from ``start`` (I, R); no padding."""
    I = enc.unique.shape[0]
    means = np.asarray(start, float)
    seconds = means[:, :, None] * means[:, None, :] + 0.01 * np.eye(R)
    G = 1 if enc.kind == "discrete" else I
    B = I if enc.kind == "discrete" else 1
    empty = DN.DensePosterior(
        jnp.zeros((B, G, G)), jnp.zeros((B, G, R)), jnp.zeros((B, G * R, G * R)), jnp.zeros(())
    )
    coords = enc.unique if enc.kind == "spatial" else np.arange(I, dtype=float)
    return ModeFit(jnp.asarray(coords), kern, empty, jnp.asarray(means), jnp.asarray(seconds))


def _user_lengthscale(kernel, enc: ModeEncoding):
    """A mode's lengthscale in the user's units: float (continuous; days for dates),
    (D,) array (spatial, one per column) or None (discrete)."""
    if enc.kind == "discrete":
        return None
    if enc.kind == "spatial":
        return np.asarray(kernel.lengthscales) * enc.scale
    return float(kernel.lengthscale) * enc.scale


#: A learned lengthscale below this fraction of a mode's median coordinate gap makes
#: neighbouring coordinates independent a priori (correlation < 1e-6 for Matérn 3/2).
_COLLAPSE_FRACTION = 0.1


def _warn_collapsed_lengthscales(fits, encodings) -> None:
    """Warn when learning shrank a continuous mode's lengthscale far below its spacing.

    Then the mode's functions no longer vary smoothly: each coordinate gets its own
    value, as for unordered categories. Seen on data with weak signal and structured
    leftovers (``benchmarks/defaults_stress.py``), where the ELBO prefers it but held-out
    error is worse than with the default lengthscales.
    """
    import warnings

    for fit, enc in zip(fits, encodings):
        if enc.kind != "continuous" or enc.unique.size < 3:
            continue
        gap = float(np.median(np.diff(enc.unique)))
        ell = float(fit.kernel.lengthscale)
        if ell < _COLLAPSE_FRACTION * gap:
            unit = " days" if enc.is_datetime else ""
            warnings.warn(
                f"the learned lengthscale of mode {enc.name!r} ({ell * enc.scale:.3g}{unit}) is "
                f"far below the median spacing of its coordinates ({gap * enc.scale:.3g}{unit}): "
                "its functions treat every coordinate as unrelated, which can fit noise; "
                "compare with learn_hyperparameters=False on held-out data",
                UserWarning,
                stacklevel=4,
            )


def _default_lengthscale(unique_scaled: np.ndarray) -> float:
    """Lengthscale from a mode's coordinates, in scaled units (training range = 1).

    A tenth of the range, but never shorter than three typical gaps between unique
    coordinates: the GP then varies over the range without tracking single points.
    """
    if unique_scaled.size < 2:
        return 1.0
    gap = float(np.median(np.diff(unique_scaled)))
    return float(max(0.1, 3.0 * gap))


class FunBaT(_FunBaTBase):
    """Functional Bayesian Tucker decomposition (Fang et al., ICLR 2024).

    ``y(x^1, ..., x^K) = sum W[r_1..r_K] u^1_{r_1}(x^1) ... u^K_{r_K}(x^K) + noise`` with a
    Gaussian Tucker core ``W``, Matérn GP priors on every latent function ``u^k_r``, and
    Gamma noise precision. The posterior is found by message passing with a Kalman
    filter and RTS smoother per mode; see ``shared/DESIGN.md``.

    Parameters
    ----------
    rank : int or sequence of int, default 3
        Number of latent functions per mode (one int per mode for a multilinear rank).
    modes : list or None, default None
        How columns form modes. None: one mode per column. Otherwise a list whose
        entries are a column (name, or position for arrays) or a tuple of columns, which
        makes a *spatial* mode: its coordinates are points, its functions have a GP prior
        with a Matérn kernel on the (per-dimension scaled) Euclidean distance, e.g.
        ``modes=[("lat", "lon"), "year"]``. Columns not listed are ignored.
    discrete : list or None, default None
        Columns declared *discrete* (categories with an iid ``N(0, variance I)`` prior
        per category, as in classic Bayesian Tucker). String, categorical and boolean
        columns are discrete anyway. Predicting an unseen category is an error.
    kernel : str or sequence of str, default "matern32"
        ``"matern12"``, ``"matern32"`` or ``"matern52"``, or one per mode (ignored for
        discrete modes).
    lengthscale : float, sequence or None, default None
        Initial (or fixed) lengthscale per mode in the user's units (days for dates);
        for a spatial mode a number or one per column. None: a tenth of the mode's
        range, at least three typical coordinate gaps (nearest-neighbour distances).
    variance : float or sequence, default 1.0
        Prior variance of the latent functions.
    learn_hyperparameters : bool, default True
        Learn each mode's lengthscale (per dimension for spatial modes) by maximising
        the ELBO between sweeps; see ``lengthscales_``. Learning (and the noise level)
        starts after a warm-up of ``min(10, max_iter // 2)`` sweeps.
    max_iter : int, default 100
        Maximum number of sweeps.
    tol : float, default 1e-5
        Stop when the ELBO changes by less than ``tol * |ELBO|`` in a sweep (checked
        after the warm-up).
    core_prior_variance : float, default 1.0
        Prior variance of each core entry.
    likelihood : {"gaussian", "student_t"}, default "gaussian"
        Observation noise. ``"student_t"``: heavy-tailed noise, a Gaussian whose
        precision is scaled per entry by a Gamma weight (:mod:`funbat.likelihood`);
        outlying entries pull less on the fit, the degrees of freedom are learned
        (``dof_``) and predictive intervals have Student-t tails. Then
        ``noise_variance_`` is the squared noise *scale*.
    noise_mode : str, int or None, default None
        A mode along which the noise level varies (name or position; a spatial mode as
        ``"lat+lon"``): each of its unique training coordinates (a date, a station)
        scales the noise precision by its own multiplier with a Gamma prior of mean 1,
        learned with the rest (:mod:`funbat.likelihood`). ``noise_multipliers_`` holds
        their posterior means (one per unique coordinate, sorted), ``noise_group_dof_``
        the prior's shape. Predictions at a seen coordinate use its noise level and its
        uncertainty (Student-t noise); at an unseen one, the prior's.
    recalibrate : bool, default True
        With Gaussian noise and one noise level: after the fit, give the predictive
        distribution the Student-t shape (``dof_``, ``recalibration_``) that the
        model's standardised leave-one-out residuals show
        (:mod:`funbat.calibration`). Point predictions and ``elbo_`` are unchanged;
        intervals follow errors with heavy tails. False keeps the Gaussian predictive.
        Ignored for ``likelihood="student_t"`` and with a ``noise_mode`` (their
        predictive is their own), below 50 training entries, and when most residuals
        are exactly 0.
    chunk_size : int, default 65536
        Entries processed at once when accumulating statistics (bounds memory).
    random_state : int, numpy Generator or None
        Seed of the random initialisation.
    """

    _structure = "tucker"

    def __init__(
        self,
        rank=3,
        *,
        modes=None,
        discrete=None,
        kernel="matern32",
        lengthscale=None,
        variance=1.0,
        learn_hyperparameters=True,
        max_iter=100,
        tol=1e-5,
        core_prior_variance=1.0,
        likelihood="gaussian",
        noise_mode=None,
        recalibrate=True,
        chunk_size=65536,
        random_state=None,
    ):
        self.rank = rank
        self.modes = modes
        self.discrete = discrete
        self.kernel = kernel
        self.lengthscale = lengthscale
        self.variance = variance
        self.learn_hyperparameters = learn_hyperparameters
        self.max_iter = max_iter
        self.tol = tol
        self.core_prior_variance = core_prior_variance
        self.likelihood = likelihood
        self.noise_mode = noise_mode
        self.recalibrate = recalibrate
        self.chunk_size = chunk_size
        self.random_state = random_state


class FunBaTCP(_FunBaTBase):
    """FunBaT-CP: the CP variant, a fixed super-diagonal core of ones.

    ``y(x) = sum_r u^1_r(x^1) ... u^K_r(x^K) + noise``. Parameters as :class:`FunBaT`,
    with ``rank`` a single int shared by all modes (no core prior).
    """

    _structure = "cp"

    def __init__(
        self,
        rank=3,
        *,
        modes=None,
        discrete=None,
        kernel="matern32",
        lengthscale=None,
        variance=1.0,
        learn_hyperparameters=True,
        max_iter=100,
        tol=1e-5,
        likelihood="gaussian",
        noise_mode=None,
        recalibrate=True,
        chunk_size=65536,
        random_state=None,
    ):
        self.rank = rank
        self.modes = modes
        self.discrete = discrete
        self.kernel = kernel
        self.lengthscale = lengthscale
        self.variance = variance
        self.learn_hyperparameters = learn_hyperparameters
        self.max_iter = max_iter
        self.tol = tol
        self.likelihood = likelihood
        self.noise_mode = noise_mode
        self.recalibrate = recalibrate
        self.chunk_size = chunk_size
        self.random_state = random_state

    core_prior_variance = 1.0  # unused by CP; keeps the shared code path simple

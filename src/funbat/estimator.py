"""scikit-learn style estimators: validate input, call the inference engine, hold the fit.

The estimator checks its parameters (``_parameter_constraints``, the CLI reuses them),
builds the model spec and the entry backend, runs :func:`funbat.inference.fit` and sets
its fitted attributes from the :class:`~funbat.inference.FitResult` (``result_``).
Prediction reads ``result_`` through :mod:`funbat.inference.predict`.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from numbers import Integral, Real

import jax
import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import inference
from .backends import entries_from_input, is_dask_input
from .calibration import Predictive
from .data import FunBaTWarning, InputError, as_modes, mode_position
from .inference import predict as P
from .kernel_parts import parse_kernel, scale_lengthscale
from .kernels import KERNELS
from .likelihoods import LIKELIHOODS, make_likelihood
from .modes import mode_kind
from .solvers import SOLVERS, get_solver

__all__ = ["FunBaT", "FunBaTCP", "load", "save"]

#: Sizes of a fit, in :class:`funbat.inference.SweepCost` units: beyond ``SLOW_WORK``
#: multiply-adds a sweep takes seconds to minutes on a CPU (a warning); beyond
#: ``MAX_WORK`` or ``MAX_BYTES`` of statistics it cannot finish in a working day, or not
#: fit in memory (an error, before any work).
SLOW_WORK, MAX_WORK, MAX_BYTES = 1e9, 1e12, 16 * 2**30


def _fmt_rank(ranks) -> str:
    return "x".join(map(str, ranks))


def supported_ranks(structure: str, ranks, sizes, n: int) -> tuple[int, ...]:
    """The ranks, each Tucker rank lowered (largest first) until the core has at most
    ``n`` entries: a core entry is a free parameter, and more of them than observations
    are not determined by the data (``--rank 50`` on 300 rows is a core of 125,000
    entries, and sweeps of hours). Warns (:class:`~funbat.FunBaTWarning`) when it lowers
    any; CP ranks are returned as given (no core)."""
    ranks = list(ranks)
    if structure == "cp" or math.prod(ranks) <= n:
        return tuple(ranks)
    capped = list(ranks)
    while math.prod(capped) > n and max(capped) > 1:
        capped[capped.index(max(capped))] -= 1
    warnings.warn(
        f"rank {_fmt_rank(ranks)} makes a Tucker core of {math.prod(ranks):,} entries, more "
        f"than the {n:,} observations can determine; fitting rank {_fmt_rank(capped)} "
        f"({math.prod(capped):,} entries) instead. Give a smaller rank to silence this",
        FunBaTWarning,
        stacklevel=4,  # the caller of fit
    )
    return tuple(capped)


#: Fewer training entries than this learn little beyond the priors (warned).
FEW_ENTRIES = 10


def warn_few_entries(n: int) -> None:
    """Warn (:class:`~funbat.FunBaTWarning`) when ``n`` entries are too few to learn a
    noise level: then the noise and the intervals are mostly the priors'."""
    if n < FEW_ENTRIES:
        warnings.warn(
            f"only {n} training entries: too few to learn a noise level and latent "
            "functions, so the noise estimate and the intervals are mostly the priors' "
            f"(fit at least {FEW_ENTRIES} entries for a model worth reading)",
            FunBaTWarning,
            stacklevel=4,  # the caller of fit
        )


def check_cost(structure: str, ranks, sizes, n: int) -> None:
    """Refuse a fit that cannot finish (:class:`~funbat.InputError`), warn of a slow
    one (:class:`~funbat.FunBaTWarning`), from :func:`funbat.inference.sweep_cost`."""
    cost = inference.sweep_cost(structure, ranks, sizes, n)
    if cost.work <= SLOW_WORK and cost.statistic_bytes <= MAX_BYTES:
        return
    K = len(ranks)
    what = (
        f"{K} modes of rank {_fmt_rank(ranks)} on {n:,} entries: "
        + (f"a core of {cost.core_entries:,} entries, " if cost.core_entries else "")
        + f"about {cost.work:.1e} multiply-adds and {cost.statistic_bytes / 2**30:.1f} GiB "
        f"of statistics per sweep (roughly {cost.work / 1e8:,.0f} s per sweep on a CPU)"
    )
    advice = (
        "join columns into a spatial mode (modes=[('a', 'b', ...)], --coords a+b+...: one "
        "GP over those columns), leave some out, or use a smaller rank or FunBaTCP "
        "(--model cp; no core)"
    )
    if cost.work > MAX_WORK or cost.statistic_bytes > MAX_BYTES:
        raise InputError(f"this model is too big to fit: {what}; {advice}")
    warnings.warn(f"this fit will be slow: {what}; to go faster, {advice}", FunBaTWarning,
                  stacklevel=4)  # fmt: skip


#: Starting lengthscales of the fits ``n_init`` runs, as multiples of each continuous
#: mode's (the default, a tenth of the range, or ``lengthscale``): the given start,
#: then smoother and rougher ones.
START_FACTORS = (1.0, 3.0, 1.0 / 3.0, 9.0, 1.0 / 9.0)


def _precisions(result):
    """``E[lambda]`` of each component of a fit that learned its rank (CP: (R,); Tucker:
    one (R_k,) array per mode), None for fixed ranks."""
    rank = getattr(result, "rank", None)
    if rank is None:
        return None
    means = [np.asarray(a) / np.asarray(b) for a, b in zip(rank.shape, rank.rate)]
    return means[0] if result.structure == "cp" else means


def _check_level(level) -> float:
    """A probability level strictly between 0 and 1, as a float (else a clear error)."""
    if isinstance(level, bool) or not isinstance(level, Real) or not 0.0 < level < 1.0:
        raise InputError(f"level must be a number between 0 and 1; got {level!r}")
    return float(level)


def _float64_array(values):
    """A JAX array of ``values`` with its own dtype (float64 kept): unpickling's half."""
    with jax.enable_x64(True):
        return jax.numpy.asarray(values)


class _PickledArray:
    """A JAX array in a pickle: NumPy data rebuilt by :func:`_float64_array`, because
    JAX's own reducer rebuilds under the global setting and turns float64 into float32."""

    def __init__(self, array):
        self.values = np.asarray(array)

    def __reduce__(self):
        return _float64_array, (self.values,)


class _Choices(StrOptions):
    """scikit-learn's ``StrOptions``, listing its options sorted (the same message on
    every run)."""

    def __str__(self):
        return f"a str among {{{', '.join(map(repr, sorted(self.options)))}}}"


def _with_solver(kind, solver):
    """A mode kind with the chain solver ``solver`` (kinds without a chain: unchanged)."""
    return dataclasses.replace(kind, solver=solver) if hasattr(kind, "solver") else kind


class _FunBaTBase(RegressorMixin, BaseEstimator):
    """Shared machinery of :class:`FunBaT` and :class:`FunBaTCP`."""

    _structure = "tucker"

    _parameter_constraints: dict = {
        "rank": [Interval(Integral, 1, None, closed="left"), list, tuple, StrOptions({"auto"})],
        "max_rank": [Interval(Integral, 1, None, closed="left"), None],
        "modes": [list, tuple, None],
        "discrete": [list, tuple, None],
        "kernel": [str, list, tuple, dict],
        "lengthscale": [Interval(Real, 0, None, closed="neither"), "array-like", None],
        "variance": [Interval(Real, 0, None, closed="neither"), list, tuple],
        "learn_hyperparameters": ["boolean"],
        "transform_moves": ["boolean"],
        "learn_intercept": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "core_prior_variance": [Interval(Real, 0, None, closed="neither"),
                                StrOptions({"auto"})],
        "likelihood": [_Choices(set(LIKELIHOODS))],
        "noise_mode": [str, Integral, list, tuple, None],
        "recalibrate": ["boolean"],
        "duplicates": [_Choices({"auto", "drop", "keep"})],
        "chunk_size": [Interval(Integral, 1, None, closed="left"), _Choices({"auto"})],
        "random_state": ["random_state"],
        "chain_solver": [_Choices({"auto", *SOLVERS})],
        "n_init": [Interval(Integral, 1, len(START_FACTORS), closed="both")],
    }

    def __init__(
        self,
        rank=3,
        *,
        max_rank=None,
        modes=None,
        discrete=None,
        kernel="matern32",
        lengthscale=None,
        variance=1.0,
        learn_hyperparameters=True,
        transform_moves=False,
        learn_intercept=False,
        max_iter=100,
        tol=1e-5,
        core_prior_variance=1.0,
        likelihood="gaussian",
        noise_mode=None,
        recalibrate=True,
        duplicates="auto",
        chunk_size="auto",
        random_state=None,
        chain_solver="auto",
        n_init=1,
    ):
        self.rank = rank
        self.max_rank = max_rank
        self.modes = modes
        self.discrete = discrete
        self.kernel = kernel
        self.lengthscale = lengthscale
        self.variance = variance
        self.learn_hyperparameters = learn_hyperparameters
        self.transform_moves = transform_moves
        self.learn_intercept = learn_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.core_prior_variance = core_prior_variance
        self.likelihood = likelihood
        self.noise_mode = noise_mode
        self.recalibrate = recalibrate
        self.duplicates = duplicates
        self.chunk_size = chunk_size
        self.random_state = random_state
        self.chain_solver = chain_solver
        self.n_init = n_init

    def __getstate__(self):
        # pickling (pickle, joblib, multiprocessing) keeps the fit's float64 arrays exact
        state = super().__getstate__()
        if "result_" in state:
            wrap = lambda a: _PickledArray(a) if isinstance(a, jax.Array) else a  # noqa: E731
            state = dict(state, result_=jax.tree_util.tree_map(wrap, state["result_"]))
        return state

    # -- parameters ----------------------------------------------------------------

    def check_params(self) -> None:
        """Check the parameters against ``_parameter_constraints``; raises
        :class:`~funbat.InputError` naming the first one that is wrong."""
        try:
            self._validate_params()
        except InvalidParameterError as err:
            raise InputError(str(err)) from None

    def _per_mode(self, value, K: int, what: str) -> list:
        if isinstance(value, (list, tuple)):
            if len(value) != K:
                raise InputError(f"{what} has {len(value)} entries but the data has {K} modes")
            return list(value)
        return [value] * K

    def _kernel_names(self, encodings) -> list:
        """One kernel string per mode: ``kernel`` as a string, a sequence, or a dict by
        mode name (modes not named keep the default, ``"matern32"``); each string is
        checked here, so a bad one fails before any work."""
        K = len(encodings)
        if isinstance(self.kernel, dict):
            names = [e.name for e in encodings]
            unknown = [k for k in self.kernel if k not in names]
            if unknown:
                raise InputError(
                    f"kernel names modes {unknown} that the data does not have; its modes "
                    f"are {names}"
                )
            kernels = [self.kernel.get(n, "matern32") for n in names]
        else:
            kernels = self._per_mode(self.kernel, K, "kernel")
        for k, e in zip(kernels, encodings):
            if not isinstance(k, str):
                raise InputError(f"a kernel is a string; got {k!r} for mode {e.name!r}")
            if k not in KERNELS:
                try:
                    parse_kernel(k)
                except ValueError as err:
                    raise InputError(f"kernel {k!r}: {err}") from None
        return kernels

    def _ranks(self, K: int, sizes=None, n: int | None = None) -> tuple[int, ...]:
        """The fixed ranks, or for ``rank="auto"`` the upper bound the fit starts from
        (``max_rank``, else :func:`funbat.inference.rank.default_max_rank` of the
        unique coordinates per mode ``sizes``)."""
        if isinstance(self.rank, str):  # "auto" (the constraints admit no other string)
            if self.max_rank is not None:
                return (int(self.max_rank),) * K
            from .inference.rank import default_max_rank

            return (default_max_rank(sizes or [8], self._structure, n),) * K
        ranks = self._per_mode(self.rank, K, "rank")
        for r in ranks:
            if isinstance(r, bool) or not isinstance(r, Integral) or r < 1:
                raise InputError(f"rank must be a positive integer (or one per mode); got {r!r}")
        if self._structure == "cp" and len(set(ranks)) != 1:
            raise InputError(f"FunBaTCP needs one rank shared by all modes; got {ranks}")
        return tuple(int(r) for r in ranks)

    def _noise_mode(self, encodings) -> int | None:
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

    def _spec(self, encodings, n: int | None = None):
        """The model spec and the prior kernels (scaled units) for encoded data; with
        ``n`` entries, the ranks are capped to what they support
        (:func:`supported_ranks`) and a fit too big to finish is refused
        (:func:`check_cost`)."""
        K = len(encodings)
        sizes = [e.unique.shape[0] for e in encodings]
        ranks = self._ranks(K, sizes, n)
        if n is not None:
            warn_few_entries(n)
            ranks = supported_ranks(self._structure, ranks, sizes, n)
            check_cost(self._structure, ranks, sizes, n)
        solver = get_solver(self.chain_solver)
        kinds = tuple(_with_solver(mode_kind(e.kind), solver) for e in encodings)
        names = self._kernel_names(encodings)
        ells = self._per_mode(self.lengthscale, K, "lengthscale")
        variances = self._per_mode(self.variance, K, "variance")
        kernels = [
            kind.kernel(enc, name, ell, var)
            for kind, enc, name, ell, var in zip(kinds, encodings, names, ells, variances)
        ]
        noise_mode = self._noise_mode(encodings)
        if self.learn_intercept and (self.likelihood != "gaussian" or noise_mode is not None):
            raise InputError(
                "learn_intercept=True needs likelihood='gaussian' with one noise level; "
                f"got likelihood={self.likelihood!r}"
                + ("" if noise_mode is None else f", noise_mode={self.noise_mode!r}")
                + " (counts and yes/no learn their own offset already)"
            )
        spec = inference.ModelSpec(
            structure=self._structure,
            ranks=ranks,
            kinds=kinds,
            likelihood=make_likelihood(self.likelihood, noise_mode),
            core_prior_variance=self._core_prior_variance(),
            learn_hyperparameters=bool(self.learn_hyperparameters),
            transform_moves=bool(self.transform_moves),
            rank_learning=isinstance(self.rank, str),
            learn_intercept=bool(self.learn_intercept),
            max_iter=int(self.max_iter),
            tol=float(self.tol),
            recalibrate=bool(self.recalibrate),
        )
        return spec, kernels

    def _core_prior_variance(self) -> float | str:
        """``core_prior_variance`` for the spec: a float, or ``"auto"`` (learned)."""
        if self.core_prior_variance != "auto":
            return float(self.core_prior_variance)
        if isinstance(self.rank, str) and self._structure != "cp":
            raise InputError(
                "core_prior_variance='auto' cannot be combined with rank='auto', which "
                "scales the core's prior by the learned component precisions; give one "
                "of them a fixed value"
            )
        return "auto"

    # -- fitting -------------------------------------------------------------------

    def _duplicates(self) -> str:
        """``duplicates`` with ``"auto"`` resolved by the likelihood's observations."""
        if self.duplicates != "auto":
            return self.duplicates
        return "keep" if LIKELIHOODS[self.likelihood].discrete_observations else "drop"

    def fit(self, X, y=None, callback=None):
        """Fit the posterior by message passing sweeps until the ELBO converges.

        Parameters
        ----------
        X : pandas DataFrame (one column per mode), array (N, K) or xarray.DataArray
            Coordinates; ``datetime64`` columns are read as days. A DataArray (with
            ``y=None``) gives both: its dims are the modes, NaN cells are missing.
            Or a dask DataFrame, or a path/glob of Parquet files: then the sweeps run
            on the Dask cluster (:mod:`funbat.backends.dask`) and ``y`` names the
            target column.
        y : array (N,), or for Dask data the target column's name (or a dask Series)
            Observed values.
        callback : optional callable ``callback(iteration, elbo)`` after each sweep.

        Returns
        -------
        self
        """
        self.check_params()
        t0 = time.perf_counter()  # with Dask, reading and encoding the data count too
        named = hasattr(X, "columns") or is_dask_input(X) or y is None
        entries = entries_from_input(X, y, self.modes, self.discrete, self._duplicates())
        with jax.enable_x64(True):  # the priors' arrays are float64 from the start
            spec, kernels = self._spec(entries.encodings, entries.n)
            entries = entries.with_chunk(
                inference.chunk_size(entries.n, spec.ranks, self.chunk_size)
            )
            # the starts fit the same model to the same data, so their ELBOs compare;
            # only the best result is kept, not one per start
            result, elbos = None, []
            for f in START_FACTORS[: int(self.n_init)]:
                start = inference.fit(
                    spec, entries, [scale_lengthscale(k, f) for k in kernels],
                    rng=np.random.default_rng(self.random_state), callback=callback,
                )  # fmt: skip
                elbos.append(float(start.elbo_history[-1]))
                if result is None or elbos[-1] > max(elbos[:-1]):
                    result = start
        if spec.learn_hyperparameters:
            for kind, state, enc in zip(result.kinds, result.modes, result.encodings):
                kind.check_learned(state, enc)
        self._set_fitted(result, time.perf_counter() - t0, named, elbos)
        return self

    def _set_fitted(self, result, fit_time: float, named: bool, init_elbos=None) -> None:
        """Set every fitted attribute from a fit result (``fit`` and ``load``);
        ``init_elbos``: the final ELBO of each start (None: the result's alone)."""
        for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, key)  # a refit leaves nothing of an earlier one
        names = [e.name for e in result.encodings]
        lik, lik_state, recal = result.likelihood, result.likelihood_state, result.recalibration
        if result.core is None:
            R, K = result.ranks[0], len(result.ranks)
            core = np.zeros((R,) * K)
            core[(np.arange(R),) * K] = 1.0
        else:
            core = np.asarray(result.core.mean).reshape(result.ranks)
        attrs = {
            "result_": result,
            "ranks_": tuple(result.ranks),
            "modes_": list(names),
            "n_features_in_": len(names),
            "n_train_": result.n_train,
            "elbo_": float(result.elbo_history[-1]),
            "elbo_history_": np.asarray(result.elbo_history),
            "n_iter_": int(result.elbo_history.shape[0]),
            "converged_": bool(result.converged),
            "kernels_": [k.kernel_label(s) for k, s in zip(result.kinds, result.modes)],
            "mode_kinds_": [k.name for k in result.kinds],
            "lengthscales_": [
                k.user_lengthscale(s, e)
                for k, s, e in zip(result.kinds, result.modes, result.encodings)
            ],
            "noise_variance_": (
                math.nan if lik.unit_noise else result.noise_variance * result.y_scale**2
            ),
            "intercept_": (
                None if lik.unit_noise
                else result.y_mean + result.y_scale * (
                    0.0 if result.offset is None else float(result.offset.mean))
            ),
            "dof_": recal.dof if recal is not None else lik.dof(lik_state),
            "recalibration_": recal,
            "core_": core,
            "component_precisions_": _precisions(result),
            "core_prior_variance_": (
                None if result.core is None
                else result.core_variance if result.core_variance is not None
                else float(self.core_prior_variance)
            ),
            "fit_time_": float(fit_time),
            "init_elbos_": np.asarray(
                [float(result.elbo_history[-1])] if init_elbos is None else init_elbos, float
            ),
            **lik.attributes(lik_state, names),
        }
        if named:
            attrs["feature_names_in_"] = np.asarray(names, dtype=object)
        for key, value in attrs.items():
            setattr(self, key, value)

    def summary(self) -> dict:
        """What ``funbat info`` prints: modes, noise, fit (JSON-ready)."""
        import math

        check_is_fitted(self, "result_")
        r = self.result_
        modes = [
            {"name": e.name, "rank": int(R), "kernel": label, **kind.describe(state, e)}
            for e, R, label, kind, state in zip(r.encodings, r.ranks, self.kernels_, r.kinds,
                                                r.modes)  # fmt: skip
        ]
        precisions = self.component_precisions_
        if precisions is not None:  # the rank was learned: E[lambda] per component
            per_mode = [precisions] * len(modes) if self._structure == "cp" else precisions
            for m, p in zip(modes, per_mode):
                m["precisions"] = [float(v) for v in p]
        recal = self.recalibration_
        noise_mode = getattr(self, "noise_mode_", None)
        return {
            "model": type(self).__name__,
            "modes": modes,
            # rank="auto": the ranks above were learned from the upper bound max_rank
            "rank_learned": precisions is not None,
            # the prior variance of the Tucker core's entries (null for CP), learned when
            # core_prior_variance="auto"
            "core_prior_variance": self.core_prior_variance_,
            "core_prior_variance_learned": self.core_prior_variance == "auto"
            and self.core_prior_variance_ is not None,
            "n_train": int(self.n_train_),
            # null for counts and yes/no (no Gaussian noise)
            "noise_std": (
                math.sqrt(self.noise_variance_) if math.isfinite(self.noise_variance_) else None
            ),
            # bernoulli, poisson, negative_binomial: the log-odds' constant, dispersion r
            "likelihood": self.result_.likelihood.name or "gaussian",
            "offset": getattr(self, "offset_", None),
            # the targets' intercept b of y = b + f + noise (null for counts and yes/no):
            # their mean, or learned (learn_intercept=True)
            "intercept": self.intercept_,
            "intercept_learned": self.result_.offset is not None,
            "dispersion": getattr(self, "dispersion_", None),
            # Student-t degrees of freedom (null: Gaussian noise; then noise_std is a scale)
            "noise_dof": float(self.dof_) if math.isfinite(self.dof_) and recal is None else None,
            # Gaussian noise with a Student-t predictive (null: not recalibrated)
            "recalibration": None if recal is None else recal._asdict(),
            # the mode whose coordinates each have a noise level (null: one level for all)
            "noise_mode": noise_mode,
            "noise_group_dof": getattr(self, "noise_group_dof_", None),
            # min / median / max over those coordinates of their noise scale / noise_std
            "noise_scale_factors": (
                None
                if noise_mode is None
                else [float(q) for q in np.quantile(self.noise_multipliers_**-0.5, [0, 0.5, 1])]
            ),
            "elbo": float(self.elbo_),
            "n_iter": int(self.n_iter_),
            "converged": bool(self.converged_),
            "fit_time_s": float(self.fit_time_),
            # the final ELBO of each start (n_init of them; the best one was kept)
            "init_elbos": [float(e) for e in self.init_elbos_],
            # the chain solver of the continuous modes (null: none)
            "chain_solver": next(
                (k.solver.name for k in r.kinds if getattr(k, "solver", None)), None
            ),
        }

    # -- prediction ----------------------------------------------------------------

    def input_columns(self) -> list[str]:
        """The table columns the fitted model reads, in order (a spatial mode has several)."""
        check_is_fitted(self, "result_")
        return [c for e in self.result_.encodings for c in (e.columns or (e.name,))]

    def _query_columns(self, X) -> list[np.ndarray]:
        check_is_fitted(self, "result_")
        encodings = self.result_.encodings
        kinds = [e.kind for e in encodings]
        modes, discrete = self.modes, self.discrete
        by_name = [e.columns if len(e.columns or ()) > 1 else e.name for e in encodings]
        if not hasattr(self, "feature_names_in_") and hasattr(X, "columns"):
            # fitted on an array, asked with a table (the CLI): positions in ``modes``
            # refer to the training array, so read the table's columns by the names the
            # model gave them (``modes_``: "x2+x0", "x1") when it has them all
            if all(c in X.columns for c in self.input_columns()):
                modes, discrete = by_name, None  # the kinds say which modes are discrete
        if self.modes is None and "spatial" in kinds:
            # many columns joined into a spatial mode at fit (group_many_columns):
            # read them the same way
            modes = by_name
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
        for enc, dt, name in zip(encodings, is_dt, names):
            if enc.is_datetime != dt:
                want = "dates" if enc.is_datetime else "numbers"
                raise InputError(f"column {name!r} must hold {want}, as in training")
        return columns

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
        columns = self._query_columns(X)  # checks the model is fitted
        return P.predictive(self.result_, columns)

    def predict(self, X, return_std: bool = False):
        """Posterior predictive mean (and std) at any coordinates.

        Parameters
        ----------
        X : table or array (n, K) of coordinates, seen in training or not.
        return_std : also return the predictive's one-sigma spread
            (:attr:`funbat.calibration.Predictive.spread`): half the width of its
            central 68.27% interval. For a Gaussian predictive
            (``recalibrate=False``) it is the standard deviation; for a Student-t one
            (the recalibrated default, ``likelihood="student_t"``, a ``noise_mode``) it
            stays finite where the standard deviation is infinite (``dof_ <= 2``), and
            ``mean +- spread`` still holds 68.27%. The tails are heavier than a
            Gaussian's, so ``mean +- 1.96 spread`` is not a 95% interval: use
            :meth:`predict_interval`; ``predictive(X).std`` is the standard deviation.

        Returns
        -------
        mean : (n,) in the target's units; spread : (n,) when ``return_std``.
        """
        pred = self.predictive(X)
        return (pred.mean, pred.spread) if return_std else pred.mean

    @available_if(lambda self: self.likelihood == "bernoulli")
    def predict_proba(self, X):
        """Class probabilities ``[P(y = 0), P(y = 1)]`` (n, 2) at ``X``, the latent
        log-odds' uncertainty integrated (``likelihood="bernoulli"`` only).

        Columns follow ``classes_`` (``[0, 1]``), as in scikit-learn classifiers.
        """
        return self.predictive(X).proba()

    @property
    def classes_(self):
        """``[0, 1]``: the classes of a Bernoulli fit (the columns of :meth:`predict_proba`)."""
        check_is_fitted(self, "result_")
        if self.likelihood != "bernoulli":
            raise AttributeError("classes_ exists for likelihood='bernoulli' only")
        return np.array([0, 1])

    def predict_interval(self, X, level: float = 0.95):
        """Central predictive interval of probability ``level`` at ``X``.

        Returns
        -------
        lower, upper : (n,) each, in the target's units (integers for counts and
        yes/no, holding at least ``level``).
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
        return P.sample(self.result_, columns, np.random.default_rng(random_state), n_samples)

    def predict_grid(self, coords=None, **coords_kw):
        """Predictions on a grid as an ``xarray.Dataset``; see :func:`funbat.files.predict_grid`."""
        from .files import predict_grid

        return predict_grid(self, coords, **coords_kw)

    def _mode_query(self, mode, coords):
        """``(k, x)``: the index of ``mode`` (a name or an index) and ``coords`` parsed
        by its kind (the user array its queries take)."""
        check_is_fitted(self, "result_")
        k = mode_position(self.modes_, mode)
        r = self.result_
        return k, r.kinds[k].parse_coords(r.encodings[k], coords)

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
        k, x = self._mode_query(mode, coords)
        r = self.result_
        with jax.enable_x64(True):
            m, s = P.mode_marginals(r, k, x)
            var = np.diagonal(np.asarray(s), axis1=1, axis2=2) - np.asarray(m) ** 2
        return np.asarray(m), np.sqrt(np.maximum(var, 0.0))

    def latent_parts(self, mode, coords) -> dict:
        """Posterior means of the deterministic parts of one mode's sum kernel (a level
        ``"constant"``, a ``"trend"``, a season ``"periodic"``) at ``coords``.

        These parts have no noise of their own, so their values are exact functions of
        their state anywhere, past the data included: what each latent function
        reverts to away from the data. The rest of the function is
        :meth:`latent_functions`' mean minus their sum.

        Parameters
        ----------
        mode : int or str (the mode's name).
        coords : (n,) coordinates in the user's units (dates allowed for date modes).

        Returns
        -------
        dict part name -> mean (n, R_k) in the model's (standardised) units; empty when
        the mode's kernel has no such part (a plain Matérn, a spatial or discrete mode).
        """
        k, x = self._mode_query(mode, coords)
        r = self.result_
        with jax.enable_x64(True):
            return P.mode_part_means(r, k, x)

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
        import math

        import pandas as pd
        from scipy.stats import gamma

        check_is_fitted(self, "result_")
        if getattr(self, "noise_mode_", None) is None:
            raise InputError("the model has one noise level; fit it with noise_mode= first")
        level = _check_level(level)
        r = self.result_
        k = self.modes_.index(self.noise_mode_)
        state = r.likelihood_state
        alpha, beta = np.asarray(state.alpha), np.asarray(state.beta)
        sigma = math.sqrt(self.noise_variance_)
        table = dict(r.kinds[k].coordinate_table(r.encodings[k]))
        table["entries"] = np.rint(2.0 * alpha - self.noise_group_dof_).astype(int)
        table["noise_scale"] = sigma * np.sqrt(beta / alpha)
        s_low, s_high = gamma.ppf([[0.5 - level / 2], [0.5 + level / 2]], alpha, scale=1 / beta)
        table["lower"], table["upper"] = sigma / np.sqrt(s_high), sigma / np.sqrt(s_low)
        return pd.DataFrame(table)

    # -- files ---------------------------------------------------------------------

    def save(self, path) -> None:
        """Save the fitted model to ``path`` (format in :mod:`funbat.io`)."""
        save(self, path)

    @classmethod
    def load(cls, path):
        """Load a model saved by :meth:`save`."""
        model = load(path)
        if not isinstance(model, cls):
            raise InputError(f"{str(path)!r} holds a {type(model).__name__}, not a {cls.__name__}")
        return model


class FunBaT(_FunBaTBase):
    """Functional Bayesian Tucker decomposition (Fang et al., ICLR 2024).

    ``y(x^1, ..., x^K) = sum W[r_1..r_K] u^1_{r_1}(x^1) ... u^K_{r_K}(x^K) + noise`` with a
    Gaussian Tucker core ``W``, Matérn GP priors on every latent function ``u^k_r``, and
    Gamma noise precision. The posterior is found by message passing with a Kalman
    filter and RTS smoother per mode; see ``docs/theory.md``.

    Parameters
    ----------
    rank : int, sequence of int or "auto", default 3
        Number of latent functions per mode (one int per mode for a multilinear rank).
        ``"auto"`` learns it (``docs/guide/rank.md``): every component gets a precision
        with a vague Gamma prior that scales its prior (automatic relevance
        determination; for Tucker per mode, with the core's prior scaled to match), and
        components are pruned during the fit when that raises the ELBO. ``ranks_`` then
        holds the learned ranks and ``component_precisions_`` the precisions.
    max_rank : int or None, default None
        The upper bound ``rank="auto"`` starts from (ignored otherwise). None:
        ``min(8, fewest unique coordinates of a mode)``, for Tucker also at most
        ``n_train ** (1 / K)``.
    modes : list or None, default None
        How columns form modes. None: one mode per column, except that more than five
        numeric (non-date) columns are joined into one spatial mode, with a
        :class:`~funbat.FunBaTWarning` (a product of that many functions rarely fits
        such data; :func:`funbat.data.group_many_columns`). Otherwise a list whose
        entries are a column (name, or position for arrays) or a tuple of columns, which
        makes a *spatial* mode: its coordinates are points, its functions have a GP prior
        with a Matérn kernel on the (per-dimension scaled) Euclidean distance, e.g.
        ``modes=[("lat", "lon"), "year"]``. Columns not listed are ignored.
    discrete : list or None, default None
        Columns declared *discrete* (categories with an iid ``N(0, variance I)`` prior
        per category, as in classic Bayesian Tucker). String, categorical and boolean
        columns are discrete anyway. Predicting an unseen category is an error.
    kernel : str, sequence of str or dict, default "matern32"
        ``"matern12"``, ``"matern32"`` or ``"matern52"``, or for a continuous or date
        mode a sum of parts such as ``"matern32 + periodic(365.25) + constant"``
        (:mod:`funbat.kernel_parts`, ``docs/guide/kernels.md``; periods in the mode's
        units, days for dates); one for all modes, one per mode, or a dict by mode name
        (modes not named keep ``"matern32"``). Ignored for discrete modes.
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
    transform_moves : bool, default False
        Between block updates, rescale (CP) or linearly transform (Tucker) each mode's
        functions against the core so as to maximise the ELBO, leaving the fitted
        product unchanged (:mod:`funbat.inference.moves`). It lets the fit reach in
        tens of sweeps the balance of scales that plain coordinate ascent approaches
        over hundreds. False gives plain coordinate ascent.
    learn_intercept : bool, default False
        Learn the intercept ``b`` of ``y = b + f + noise`` (a Gaussian posterior, prior
        ``N(0, 1)`` in units of the targets' standard deviation about their mean)
        rather than fix it at the targets' mean; ``intercept_`` reports it (target
        units). A low-rank ``f`` minus its mean is not low-rank: data from a rank-3
        CP model, centred, need a fourth component, so a fit that learns its rank
        (``rank="auto"``) or fixes it at the data's wants the intercept learned.
        Gaussian noise with one noise level only.
    max_iter : int, default 100
        Maximum number of sweeps.
    tol : float, default 1e-5
        Stop when the ELBO changes by less than ``tol * |ELBO|`` in a sweep (checked
        after the warm-up).
    core_prior_variance : float or "auto", default 1.0
        Prior variance of each core entry (ignored by :class:`FunBaTCP`, whose core is
        fixed). ``"auto"`` learns it: after the warm-up, each core update is followed
        by the variance that maximises the ELBO given the core's posterior,
        ``E[|W|^2] / P`` over the ``P`` core entries (a type-II maximum-likelihood
        step; the ELBO still never decreases). The result is
        ``core_prior_variance_``. With the default 1 the prior variance of the latent
        function is about ``P`` on standardised targets (27 at rank 3 with 3 modes),
        which a long fit can overfit (:doc:`/benchmarks/convergence`). Not with
        ``rank="auto"``.
    likelihood : {"gaussian", "student_t", "bernoulli", "poisson", "negative_binomial"}, \
default "gaussian"
        Observation noise. ``"student_t"``: heavy-tailed noise, a Gaussian whose
        precision is scaled per entry by a Gamma weight (:mod:`funbat.likelihoods`);
        outlying entries pull less on the fit, the degrees of freedom are learned
        (``dof_``) and predictive intervals have Student-t tails. Then
        ``noise_variance_`` is the squared noise *scale*. ``"bernoulli"`` (0/1 or
        boolean targets, logit link), ``"poisson"`` and ``"negative_binomial"``
        (whole-number counts, log link; the latter learns the dispersion
        ``dispersion_``) by Polya-Gamma augmentation
        (:mod:`funbat.likelihoods.polya_gamma`): the latent value is the log-odds (the
        log-mean count) less the learned constant ``offset_``; the targets are not
        standardised. Their ``predict`` is the predictive mean (the probability of 1,
        the expected count), ``predict_interval`` gives integers, ``predict_proba``
        (Bernoulli) the two class probabilities, ``predictive(X)`` the whole
        distribution (:class:`~funbat.likelihoods.polya_gamma.CountPredictive`);
        ``noise_variance_`` is NaN and there is no recalibration.
    noise_mode : str, int or None, default None
        A mode along which the noise level varies (name or position; a spatial mode as
        ``"lat+lon"``): each of its unique training coordinates (a date, a station)
        scales the noise precision by its own multiplier with a Gamma prior of mean 1,
        learned with the rest (:mod:`funbat.likelihoods`). ``noise_multipliers_`` holds
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
    duplicates : {"auto", "drop", "keep"}, default "auto"
        ``"drop"``: rows that repeat another row exactly (the same coordinates and the
        same target) are dropped, with a :class:`~funbat.FunBaTWarning`: copies of a
        row are not new measurements, and counting them shrinks the noise estimate and
        the intervals. ``"keep"`` fits every row, for data whose exact repeats are
        genuine (or an evaluation protocol that counts them, as the paper's does).
        ``"auto"`` is ``"keep"`` for counts and yes/no data (``likelihood="bernoulli"``,
        ``"poisson"``, ``"negative_binomial"``), where equal rows are the rule, and
        ``"drop"`` otherwise.
    chunk_size : int or "auto", default "auto"
        Entries processed at once when accumulating statistics (bounds memory).
        ``"auto"``: 65536 on a CPU; on a GPU all entries, so a statistics pass is a
        few whole-array segment sums. Any value is lowered until one chunk's
        per-entry statistics fit a memory budget (64 MiB on a CPU, a thirty-second of
        the device's memory on a GPU, at most 4 GiB).
    random_state : int, numpy Generator or None
        Seed of the random initialisation.
    chain_solver : {"auto", "native", "parallel", "sequential"}, default "auto"
        How the Kalman filter and smoother of the continuous modes run
        (:mod:`funbat.solvers`); every solver gives the same numbers. ``"native"``:
        loops compiled by numba on the host, several times faster on a CPU;
        ``"parallel"``: associative scans, ``O(log I)`` steps deep (for a GPU; slower
        than ``"native"`` on a CPU); ``"sequential"``: JAX's loops (the reference).
        ``"auto"``: ``"parallel"`` when JAX's default backend is a GPU, ``"native"`` when
        it is the CPU and numba is installed, else ``"sequential"``. The solver used
        is stored with the fit (``summary()["chain_solver"]``, ``funbat info``).
    n_init : int, default 1
        Number of fits from different starting lengthscales, the one with the highest
        ELBO kept (at most 5). Start ``i`` multiplies every continuous mode's starting
        lengthscale (the default or ``lengthscale``) by 1, 3, 1/3, 9, 1/9 in turn
        (:data:`START_FACTORS`); spatial and discrete modes start as they are. The
        coordinate ascent can settle in a local optimum that a smoother or rougher start
        avoids (``docs/guide/counts.md`` measures one); each start costs a whole fit, and
        ``callback`` is called for the sweeps of every start. ``init_elbos_`` (n_init,)
        holds each start's final ELBO, in that order.
    """

    _structure = "tucker"


class FunBaTCP(_FunBaTBase):
    """FunBaT-CP: the CP variant, a fixed super-diagonal core of ones.

    ``y(x) = sum_r u^1_r(x^1) ... u^K_r(x^K) + noise``. Parameters as :class:`FunBaT`,
    with ``rank`` a single int shared by all modes or ``"auto"`` (``core_prior_variance`` is
    ignored).
    """

    _structure = "cp"


_CLASSES = {"FunBaT": FunBaT, "FunBaTCP": FunBaTCP}


def save(model, path) -> None:
    """Save a fitted :class:`FunBaT` or :class:`FunBaTCP` to ``path``, atomically (the
    file is replaced only once it is whole); the format is in :mod:`funbat.io`."""
    from . import io

    if not isinstance(model, _FunBaTBase):
        raise InputError(f"can only save FunBaT or FunBaTCP models; got {type(model).__name__}")
    if not hasattr(model, "result_"):
        raise InputError("the model is not fitted yet; call fit before save")
    io.write_model(
        path, type(model).__name__, model.get_params(deep=False), model.result_,
        {"fit_time": model.fit_time_, "named": hasattr(model, "feature_names_in_"),
         "init_elbos": [float(e) for e in model.init_elbos_]},
    )  # fmt: skip


def load(path):
    """Load a model saved by :func:`save` (or by an older funbat); raises
    :class:`~funbat.InputError` if the file is not a funbat model, is damaged, or comes
    from a newer format version."""
    from . import io

    name, params, result, extra = io.read_model(path)
    cls = _CLASSES.get(name)
    if cls is None:
        raise InputError(f"{str(path)!r} holds an unknown model class {name!r}")
    valid = cls().get_params(deep=False)
    model = cls(**{k: v for k, v in params.items() if k in valid})
    model._set_fitted(result, extra.get("fit_time", float("nan")), extra.get("named", False),
                      extra.get("init_elbos"))  # fmt: skip
    return model

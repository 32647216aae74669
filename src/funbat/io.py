"""Model files: a fit result and the estimator's parameters, without pickle.

File format (version 3)
-----------------------
A model file is a zip archive (any name; ``.funbat`` by convention) holding

* ``metadata.json``: ``{"format": "funbat-model", "format_version": 3,
  "funbat_version": ..., "class": "FunBaT" | "FunBaTCP", "params": get_params(),
  "fit": {"fit_time": seconds, "named": bool, "init_elbos": [...]}, "result": <tree>}``
  (files written before ``init_elbos`` existed read as one start);
* one ``<key>.npy`` entry per array (so ``numpy.load`` reads the arrays as an npz).

``result`` is the :class:`funbat.inference.FitResult` as a JSON tree:

* JSON numbers, strings, booleans and null stand for themselves;
* ``{"__array__": key, "jax": bool}``: the array stored as ``<key>.npy`` (a JAX array
  when ``jax`` is true), ``{"__scalar__": key}``: a numpy scalar stored the same way;
* ``{"__list__": [...]}``, ``{"__tuple__": [...]}``, ``{"__dict__": {...}}``;
* ``{"__strings__": [...]}``: a numpy array of strings (the categories of a discrete
  mode of text);
* ``{"__objects__": [...]}``: a 1-D numpy object array of other scalars, such as the
  categories of a declared-discrete column of numbers or booleans; each item is a JSON
  number, boolean or string, or ``{"__timestamp__": "<ISO 8601>"}`` for a date;
* ``{"__record__": name, "fields": {...}}``: one of the records of :data:`RECORDS`,
  named by its schema name (not its Python module, so moving code never breaks a
  file), rebuilt from its fields:

  ``FitResult`` (structure, ranks, kinds, likelihood, encodings, modes, core, noise,
  likelihood_state, y_mean, y_scale, n_train, elbo_history, converged,
  recalibration, rank, core_variance, offset; a file without ``rank`` reads as a
  fixed-rank fit, one without ``offset`` as a fit with the intercept at the mean);
  ``RankState`` (shape, rate, quad, used, scale, sums, active; a file without
  ``active`` reads as every component live) of a fit that learned its
  rank; ``ModeEncoding`` (name, is_datetime, offset, scale, unique, kind,
  columns, categories); ``ModeState`` (coords, kernel, posterior, means, seconds,
  n_valid, step); the mode kinds ``ChainMode`` (solver), ``PointsMode``,
  ``CategoriesMode`` and the solvers ``SequentialSolver``, ``NativeSolver`` and
  ``ParallelSolver`` (a file of format 3 written before the latter two names the
  first); kernels ``Matern`` (nu,
  lengthscale, variance), ``PointMatern`` (nu, lengthscales, variance), ``Identity``
  (variance); posteriors ``ChainPosterior`` (filtered_means, filtered_covs,
  smoothed_means, smoothed_covs, log_normaliser), ``DensePosterior`` (chol,
  white_mean, white_cov, log_normaliser); ``CoreMoments`` (mean, cov),
  ``OffsetMoments`` (mean, var),
  ``NoiseMoments`` (shape, rate); likelihoods ``Gaussian``, ``StudentT``,
  ``NoiseMode`` (base, mode), ``Bernoulli``, ``Poisson``, ``NegativeBinomial`` with
  states ``GaussianState``, ``StudentTState`` (dof), ``NoiseModeState`` (dof,
  group_dof, alpha, beta), ``PGState`` (offset, dispersion, step, histogram, rest; a
  file without the last three reads as the first step, no histogram and no rest, which
  prediction does not use); ``Recalibration`` (scale, dof, n).

``params`` holds the constructor parameters as plain JSON (tuples become lists, arrays
lists, unrepresentable values such as a numpy Generator seed null); on loading, list
entries of ``modes`` become tuples again (spatial modes).

Older files (format versions 1 and 2) stored the estimator's attributes as a
``state`` tree whose records were named by their module (``funbat.estimator:ModeFit``);
they are read by :func:`_legacy_result` and turned into the same ``FitResult``.
Loading only reads JSON and ``.npy`` data (``allow_pickle=False``) and only rebuilds
the records listed here, so it never runs code from the file.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .calibration import Recalibration
from .data import InputError, ModeEncoding
from .dense import DensePosterior, Identity, PointMatern
from .files import atomic_write
from .inference import FitResult
from .inference.rank import RankState
from .kalman import ChainPosterior
from .kernel_parts import Constant, Periodic, QuasiPeriodic, Sum, Trend
from .kernels import Matern
from .likelihoods import DOF_START, make_likelihood
from .likelihoods.gaussian import Gaussian, GaussianState
from .likelihoods.noise_mode import NoiseMode, NoiseModeState
from .likelihoods.polya_gamma import Bernoulli, NegativeBinomial, PGState, Poisson
from .likelihoods.student_t import StudentT, StudentTState
from .modes import CategoriesMode, ChainMode, ModeState, PointsMode, mode_kind
from .modes.categories import json_category
from .solvers import NativeSolver, ParallelSolver, SequentialSolver
from .updates import CoreMoments, NoiseMoments, OffsetMoments

__all__ = ["FORMAT_VERSION", "RECORDS", "read_metadata", "read_model", "write_model"]

#: Version of the model file format written by :func:`write_model`. Readers accept this
#: version and older ones.
FORMAT_VERSION = 3

#: The records a model file may hold, by their schema names.
RECORDS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        FitResult, ModeEncoding, ModeState, ChainMode, PointsMode, CategoriesMode,
        SequentialSolver, NativeSolver, ParallelSolver, Matern, PointMatern, Identity,
        ChainPosterior, DensePosterior,
        CoreMoments, NoiseMoments, Gaussian, StudentT, NoiseMode, GaussianState,
        StudentTState, NoiseModeState, Recalibration, Sum, Constant, Trend, Periodic,
        QuasiPeriodic, Bernoulli, NegativeBinomial, Poisson, PGState, RankState,
        OffsetMoments,
    )
}  # fmt: skip
_SCHEMA_NAMES = {cls: name for name, cls in RECORDS.items()}
_FORMAT_NAME = "funbat-model"
_METADATA = "metadata.json"


# -- encoding ----------------------------------------------------------------------


def _is_namedtuple(obj) -> bool:
    return isinstance(obj, tuple) and hasattr(type(obj), "_fields")


def _class_ref(obj) -> str:
    cls = type(obj)
    if cls not in _SCHEMA_NAMES:
        raise TypeError(f"cannot save objects of class {cls.__module__}.{cls.__qualname__}")
    return _SCHEMA_NAMES[cls]


def _object_item(v, key: str):
    """One item of an object array (a category) -> JSON."""
    import pandas as pd

    if isinstance(v, (bool, np.bool_, int, np.integer, float, np.floating, str)):
        return json_category(v)  # numbers and booleans as they are, text as text
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return {"__timestamp__": pd.Timestamp(v).isoformat()}
    raise TypeError(f"cannot save a {type(v).__name__} in the object array at {key!r}")


def _encode(obj, key: str, arrays: dict[str, np.ndarray]):
    """Python/NumPy/JAX object -> JSON-able tree; arrays are moved into ``arrays``."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, jax.Array):
        arrays[key] = np.asarray(obj)
        return {"__array__": key, "jax": True}
    if isinstance(obj, np.ndarray):
        if obj.dtype == object or obj.dtype.kind in "US":
            if obj.ndim == 1 and all(isinstance(v, str) for v in obj):
                return {"__strings__": [str(v) for v in obj]}
            if obj.ndim == 1 and obj.dtype == object:
                return {"__objects__": [_object_item(v, key) for v in obj]}
            raise TypeError(f"cannot save the object array at {key!r}")
        arrays[key] = obj
        return {"__array__": key, "jax": False}
    if isinstance(obj, np.generic):
        arrays[key] = np.asarray(obj)
        return {"__scalar__": key}
    if _is_namedtuple(obj):
        fields = {f: _encode(getattr(obj, f), f"{key}/{f}", arrays) for f in obj._fields}
        return {"__record__": _class_ref(obj), "fields": fields}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {
            f.name: _encode(getattr(obj, f.name), f"{key}/{f.name}", arrays)
            for f in dataclasses.fields(obj)
        }
        return {"__record__": _class_ref(obj), "fields": fields}
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, f"{key}/{i}", arrays) for i, v in enumerate(obj)]
        return {"__list__" if isinstance(obj, list) else "__tuple__": items}
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError(f"cannot save a dict with non-string keys at {key!r}")
        return {"__dict__": {k: _encode(v, f"{key}/{k}", arrays) for k, v in obj.items()}}
    raise TypeError(f"cannot save {type(obj).__name__} at {key!r}")


def _json_param(value):
    """A constructor parameter as JSON (a numpy Generator seed cannot be kept)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_json_param(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _json_param(v) for k, v in value.items()}  # kernel={"date": "..."}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return None


def write_model(path, class_name: str, params: dict, result: FitResult, fit: dict) -> None:
    """Write a model file (see the module docstring), atomically: ``path`` is replaced
    only once the whole file is written.

    ``class_name`` : the estimator's class name; ``params`` : its ``get_params()``;
    ``fit`` : ``{"fit_time": seconds, "named": bool, "init_elbos": [...]}`` (feature
    names known; each start's final ELBO, ``n_init``).
    """
    from . import __version__

    arrays: dict[str, np.ndarray] = {}
    try:
        tree = _encode(result, "result", arrays)
    except TypeError as err:
        raise InputError(f"cannot save this model: {err}") from None
    meta = {
        "format": _FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "funbat_version": __version__,
        "class": class_name,
        "params": {k: _json_param(v) for k, v in params.items()},
        "fit": {"fit_time": float(fit["fit_time"]), "named": bool(fit["named"]),
                "init_elbos": [float(e) for e in fit["init_elbos"]]},
        "result": tree,
    }
    with atomic_write(path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_METADATA, json.dumps(meta, indent=1))
        for key, arr in arrays.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asarray(arr), allow_pickle=False)


# -- decoding ----------------------------------------------------------------------


class _Corrupt(Exception):
    pass


class _LegacyModeFit(NamedTuple):
    """A mode's fitted state as format versions 1-2 stored it."""

    coords: object
    kernel: object
    posterior: object
    means: object
    seconds: object


#: Records of format versions 1-2, named by the module that defined them then.
_LEGACY_RECORDS = {
    "funbat.estimator:ModeFit": _LegacyModeFit,
    "funbat.kalman:ChainPosterior": ChainPosterior,
    "funbat.kernels:Matern": Matern,
    "funbat.data:ModeEncoding": ModeEncoding,
    "funbat.dense:PointMatern": PointMatern,
    "funbat.dense:Identity": Identity,
    "funbat.dense:DensePosterior": DensePosterior,
    "funbat.updates:CoreMoments": CoreMoments,
    "funbat.updates:NoiseMoments": NoiseMoments,
    "funbat.calibration:Recalibration": Recalibration,
}


def _resolve_class(ref: str, records: dict):
    if ref not in records:
        raise _Corrupt(f"unknown record {ref!r}")
    return records[ref]


def _object_from_json(v):
    if isinstance(v, dict) and set(v) == {"__timestamp__"}:
        import pandas as pd

        return pd.Timestamp(v["__timestamp__"])
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise _Corrupt("unknown item in an object array")


def _param_from_json(name: str, value):
    """A constructor parameter read from JSON: spatial modes are tuples again."""
    if name == "modes" and isinstance(value, list):
        return [tuple(m) if isinstance(m, list) else m for m in value]
    return value


def _decode(tree, zf: zipfile.ZipFile, records: dict):
    if tree is None or isinstance(tree, (bool, int, float, str)):
        return tree
    if not isinstance(tree, dict):
        raise _Corrupt(f"unexpected {type(tree).__name__} in the state")
    if "__array__" in tree or "__scalar__" in tree:
        key = tree.get("__array__", tree.get("__scalar__"))
        try:
            with zf.open(f"{key}.npy") as f:
                arr = np.lib.format.read_array(f, allow_pickle=False)
        except KeyError:
            raise _Corrupt(f"array {key!r} is missing") from None
        if "__scalar__" in tree:
            return arr[()]
        return jnp.asarray(arr) if tree.get("jax") else arr
    if "__strings__" in tree:
        return np.asarray(tree["__strings__"], dtype=object)
    if "__objects__" in tree:
        out = np.empty(len(tree["__objects__"]), dtype=object)
        for i, v in enumerate(tree["__objects__"]):
            out[i] = _object_from_json(v)
        return out
    if "__list__" in tree:
        return [_decode(v, zf, records) for v in tree["__list__"]]
    if "__tuple__" in tree:
        return tuple(_decode(v, zf, records) for v in tree["__tuple__"])
    if "__dict__" in tree:
        return {k: _decode(v, zf, records) for k, v in tree["__dict__"].items()}
    if "__record__" in tree:
        cls = _resolve_class(tree["__record__"], records)
        fields = {k: _decode(v, zf, records) for k, v in tree["fields"].items()}
        try:
            return cls(**fields)
        except TypeError as err:
            raise _Corrupt(f"cannot rebuild {tree['__record__']}: {err}") from None
    raise _Corrupt("unknown entry in the state")


def _not_a_model(path) -> InputError:
    return InputError(f"{str(path)!r} is not a funbat model file")


def read_metadata(path) -> dict:
    """The JSON metadata of a model file, after checking its format and version."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"model file {str(path)!r} does not exist")
    if path.is_dir():
        raise InputError(f"{str(path)!r} is a folder, not a model file")
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read(_METADATA))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError, OSError):
        raise _not_a_model(path) from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT_NAME:
        raise _not_a_model(path)
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise InputError(f"{str(path)!r} has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise InputError(
            f"{str(path)!r} was saved by a newer funbat ({meta.get('funbat_version')}, "
            f"format version {version}); this funbat reads up to format version "
            f"{FORMAT_VERSION}: upgrade funbat to load it"
        )
    return meta


def _legacy_result(class_name: str, params: dict, state: dict) -> tuple[FitResult, dict]:
    """A :class:`FitResult` from the estimator attributes that versions 1-2 stored."""
    encodings = [
        e if getattr(e, "kind", None) else ModeEncoding(e.name, e.is_datetime, e.offset,
                                                        e.scale, e.unique)  # fmt: skip
        for e in state["_encodings"]
    ]
    kinds = tuple(mode_kind(e.kind) for e in encodings)
    modes = tuple(
        ModeState(f.coords, f.kernel, f.posterior, f.means, f.seconds,
                  jnp.asarray(n, dtype=jnp.int32), jnp.asarray(0.5, dtype=jnp.float64))
        for f, n in zip(state["_fits"], state["_n_valid"])
    )  # fmt: skip
    noise_k = state.get("_noise_k")
    likelihood = make_likelihood(params.get("likelihood") or "gaussian", noise_k)
    dof = state.get("dof_", float("inf"))
    f64 = jnp.float64
    if noise_k is not None:
        alpha, beta = state["_noise_groups"]
        lik_state = NoiseModeState(
            jnp.asarray(dof if likelihood.robust else DOF_START, f64),
            jnp.asarray(state["noise_group_dof_"], f64), jnp.asarray(alpha), jnp.asarray(beta),
        )  # fmt: skip
    elif likelihood.robust:
        lik_state = StudentTState(jnp.asarray(dof, f64))
    else:
        lik_state = GaussianState()
    result = FitResult(
        "cp" if class_name == "FunBaTCP" else "tucker", tuple(state["ranks_"]), kinds,
        likelihood, tuple(encodings), modes, state["_core"], state["_noise"], lik_state,
        float(state["_y_mean"]), float(state["_y_scale"]), int(state["n_train_"]),
        np.asarray(state["elbo_history_"]), bool(state["converged_"]),
        state.get("recalibration_"),
    )  # fmt: skip
    fit = {"fit_time": state.get("fit_time_", float("nan")), "named": "feature_names_in_" in state}
    return result, fit


def read_model(path) -> tuple[str, dict, FitResult, dict]:
    """Read a model file: ``(class name, params, FitResult, fit info)``; raises
    :class:`~funbat.InputError` if the file is not a funbat model, is damaged, or comes
    from a newer format version."""
    path = Path(path)
    meta = read_metadata(path)
    try:
        params = {k: _param_from_json(k, v) for k, v in meta["params"].items()}
        with jax.enable_x64(True), zipfile.ZipFile(path) as zf:
            if meta["format_version"] >= 3:
                result = _decode(meta["result"], zf, RECORDS)
                fit = meta["fit"]
            else:
                state = {k: _decode(v, zf, _LEGACY_RECORDS) for k, v in meta["state"].items()}
                if "elbo_" not in state:
                    raise _Corrupt("no fitted state")
                result, fit = _legacy_result(meta.get("class"), params, state)
        if not isinstance(result, FitResult):
            raise _Corrupt("no fit result")
    except (_Corrupt, KeyError, TypeError, ValueError, AttributeError, zipfile.BadZipFile,
            OSError) as err:  # fmt: skip
        raise InputError(f"{str(path)!r} is a damaged funbat model file ({err})") from None
    return meta.get("class"), params, result, fit

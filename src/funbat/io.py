"""Saving and loading fitted models without pickle.

File format (version 2)
-----------------------
A model file is a zip archive (any name; ``.funbat`` by convention) holding

* ``metadata.json``: ``{"format": "funbat-model", "format_version": 1 | 2,
  "funbat_version": ..., "class": "FunBaT" | "FunBaTCP", "params": get_params(),
  "state": <tree>}``;
* one ``<key>.npy`` entry per array (so ``numpy.load`` reads the arrays as an npz).

``state`` describes every attribute the fit set on the estimator (everything in
``vars(model)`` that is not a constructor parameter) as a JSON tree:

* JSON numbers, strings, booleans and null stand for themselves;
* ``{"__array__": key, "jax": bool}``: the array stored as ``<key>.npy`` (a JAX array
  when ``jax`` is true), ``{"__scalar__": key}``: a numpy scalar stored the same way;
* ``{"__list__": [...]}``, ``{"__tuple__": [...]}``, ``{"__dict__": {...}}``;
* ``{"__strings__": [...]}``: a numpy array of strings (e.g. ``feature_names_in_``, the
  categories of a discrete mode of text);
* ``{"__objects__": [...]}`` (version 2): a 1-D numpy object array of other scalars,
  such as the categories of a declared-discrete column of numbers or booleans; each
  item is a JSON number, boolean or string, or ``{"__timestamp__": "<ISO 8601>"}``
  for a date (a ``pandas.Timestamp``);
* ``{"__record__": "module:Class", "fields": {...}}``: a NamedTuple or dataclass
  defined in a ``funbat`` module (fit state such as ``ModeFit``, ``ChainPosterior``,
  ``Matern``, ``ModeEncoding``), rebuilt from its fields.

``params`` holds the constructor parameters as plain JSON (tuples become lists, arrays
lists, unrepresentable values such as a numpy Generator seed null); on loading, list
entries of ``modes`` become tuples again (spatial modes).

The state of spatial and discrete modes needs nothing special: their encodings
(``ModeEncoding`` with ``kind``, ``columns``, per-dimension ``offset``/``scale`` arrays,
``categories``), kernels (``dense.PointMatern``, ``dense.Identity``) and dense
posteriors (``dense.DensePosterior``) are records and arrays like any other.

``format_version`` is the oldest version that can read the file: a file is written as
version 1 (readable by every funbat that reads model files) unless it holds a version-2
entry. Version 1 has no ``__objects__``; version-1 files of models fitted before modes
had kinds (encodings without ``kind``, ``columns``, ``categories``) load as
continuous-only models.

Array keys are the attribute paths (``_fits/0/posterior/filtered_means``), like JAX
tree key paths. Loading only reads JSON and ``.npy`` data (``allow_pickle=False``) and
only rebuilds NamedTuples and dataclasses of the ``funbat`` package, so it never runs
code from the file. New fit attributes are saved without changes here.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .data import InputError
from .files import atomic_write

__all__ = ["FORMAT_VERSION", "load", "read_metadata", "save"]

#: Version of the model file format written by :func:`save`. Readers accept this
#: version and older ones.
FORMAT_VERSION = 2
_FORMAT_NAME = "funbat-model"
_METADATA = "metadata.json"


# -- encoding ----------------------------------------------------------------------


def _is_namedtuple(obj) -> bool:
    return isinstance(obj, tuple) and hasattr(type(obj), "_fields")


def _class_ref(obj) -> str:
    cls = type(obj)
    if not cls.__module__.startswith("funbat"):
        raise TypeError(f"cannot save objects of class {cls.__module__}.{cls.__qualname__}")
    return f"{cls.__module__}:{cls.__qualname__}"


def _object_item(v, key: str):
    """One item of an object array (a category) -> JSON."""
    import pandas as pd

    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return {"__timestamp__": pd.Timestamp(v).isoformat()}
    raise TypeError(f"cannot save a {type(v).__name__} in the object array at {key!r}")


def _encode(obj, key: str, arrays: dict[str, np.ndarray], needs: set | None = None):
    """Python/NumPy/JAX object -> JSON-able tree; arrays are moved into ``arrays``.

    The format versions the tree needs beyond version 1 are added to ``needs``.
    """
    if needs is None:
        needs = set()
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
                needs.add(2)
                return {"__objects__": [_object_item(v, key) for v in obj]}
            raise TypeError(f"cannot save the object array at {key!r}")
        arrays[key] = obj
        return {"__array__": key, "jax": False}
    if isinstance(obj, np.generic):
        arrays[key] = np.asarray(obj)
        return {"__scalar__": key}
    if _is_namedtuple(obj):
        fields = {f: _encode(getattr(obj, f), f"{key}/{f}", arrays, needs) for f in obj._fields}
        return {"__record__": _class_ref(obj), "fields": fields}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {
            f.name: _encode(getattr(obj, f.name), f"{key}/{f.name}", arrays, needs)
            for f in dataclasses.fields(obj)
        }
        return {"__record__": _class_ref(obj), "fields": fields}
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, f"{key}/{i}", arrays, needs) for i, v in enumerate(obj)]
        return {"__list__" if isinstance(obj, list) else "__tuple__": items}
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError(f"cannot save a dict with non-string keys at {key!r}")
        return {"__dict__": {k: _encode(v, f"{key}/{k}", arrays, needs) for k, v in obj.items()}}
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
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return None


def save(model, path) -> None:
    """Save a fitted :class:`~funbat.FunBaT` or :class:`~funbat.FunBaTCP` to ``path``.

    The file is written atomically: ``path`` is replaced only once the whole file is
    written. See the module docstring for the format.
    """
    from . import __version__
    from .estimator import FunBaT, FunBaTCP

    if not isinstance(model, (FunBaT, FunBaTCP)):
        raise InputError(f"can only save FunBaT or FunBaTCP models; got {type(model).__name__}")
    if not hasattr(model, "elbo_"):
        raise InputError("the model is not fitted yet; call fit before save")
    params = model.get_params(deep=False)
    state_attrs = {k: v for k, v in vars(model).items() if k not in params}
    arrays: dict[str, np.ndarray] = {}
    needs: set[int] = set()
    try:
        state = {k: _encode(v, k, arrays, needs) for k, v in state_attrs.items()}
    except TypeError as err:
        raise InputError(f"cannot save this model: {err}") from None
    meta = {
        "format": _FORMAT_NAME,
        "format_version": max(needs, default=1),
        "funbat_version": __version__,
        "class": type(model).__name__,
        "params": {k: _json_param(v) for k, v in params.items()},
        "state": state,
    }
    with atomic_write(path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_METADATA, json.dumps(meta, indent=1))
        for key, arr in arrays.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asarray(arr), allow_pickle=False)


# -- decoding ----------------------------------------------------------------------


class _Corrupt(Exception):
    pass


def _resolve_class(ref: str):
    module, _, name = ref.partition(":")
    if module != "funbat" and not module.startswith("funbat."):
        raise _Corrupt(f"unknown class {ref!r}")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise _Corrupt(f"unknown class {ref!r}") from None
    if not isinstance(cls, type) or not (
        (issubclass(cls, tuple) and hasattr(cls, "_fields")) or dataclasses.is_dataclass(cls)
    ):
        raise _Corrupt(f"class {ref!r} is not a record type")
    return cls


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


def _decode(tree, zf: zipfile.ZipFile):
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
        return [_decode(v, zf) for v in tree["__list__"]]
    if "__tuple__" in tree:
        return tuple(_decode(v, zf) for v in tree["__tuple__"])
    if "__dict__" in tree:
        return {k: _decode(v, zf) for k, v in tree["__dict__"].items()}
    if "__record__" in tree:
        cls = _resolve_class(tree["__record__"])
        fields = {k: _decode(v, zf) for k, v in tree["fields"].items()}
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


def load(path):
    """Load a model saved by :func:`save`; raises :class:`~funbat.InputError` if the
    file is not a funbat model, is damaged, or comes from a newer format version."""
    from .estimator import FunBaT, FunBaTCP

    path = Path(path)
    meta = read_metadata(path)
    classes = {"FunBaT": FunBaT, "FunBaTCP": FunBaTCP}
    cls = classes.get(meta.get("class"))
    if cls is None:
        raise InputError(f"{str(path)!r} holds an unknown model class {meta.get('class')!r}")
    try:
        params = meta["params"]
        valid = cls().get_params(deep=False)
        model = cls(**{k: _param_from_json(k, v) for k, v in params.items() if k in valid})
        with jax.enable_x64(True), zipfile.ZipFile(path) as zf:
            state = {k: _decode(v, zf) for k, v in meta["state"].items()}
    except (_Corrupt, KeyError, TypeError, ValueError, zipfile.BadZipFile, OSError) as err:
        raise InputError(f"{str(path)!r} is a damaged funbat model file ({err})") from None
    if "elbo_" not in state:
        raise InputError(f"{str(path)!r} is a damaged funbat model file (no fitted state)")
    if "mode_kinds_" not in state and "_encodings" in state:  # saved before modes had kinds
        state["mode_kinds_"] = [getattr(e, "kind", "continuous") for e in state["_encodings"]]
    for k, v in state.items():
        setattr(model, k, v)
    return model

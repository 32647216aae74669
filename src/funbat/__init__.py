"""funbat: functional Bayesian Tucker decomposition of continuous-indexed tensor data.

>>> from funbat import FunBaT
>>> model = FunBaT(rank=3).fit(X, y)                      # doctest: +SKIP
>>> mean, std = model.predict(X_new, return_std=True)    # doctest: +SKIP

The public names are imported on first use (PEP 562), so ``import funbat`` and the
command line's ``--help`` do not pay for JAX and scikit-learn until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .cache import _from_environment

__version__ = "0.1.0"

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "FunBaT": "estimator",
    "FunBaTCP": "estimator",
    "FunBaTWarning": "data",
    "InputError": "data",
    "KERNELS": "kernels",
    "Matern": "kernels",
    "enable_compilation_cache": "cache",
    "load": "estimator",
    "make_kernel": "kernels",
    "predict_grid": "files",
    "read_table": "files",
    "save": "estimator",
}

__all__ = [
    "KERNELS",
    "FunBaT",
    "FunBaTCP",
    "FunBaTWarning",
    "InputError",
    "Matern",
    "enable_compilation_cache",
    "load",
    "make_kernel",
    "predict_grid",
    "read_table",
    "save",
    "__version__",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time see __getattr__
    from .cache import enable_compilation_cache
    from .data import FunBaTWarning, InputError
    from .estimator import FunBaT, FunBaTCP, load, save
    from .files import predict_grid, read_table
    from .kernels import KERNELS, Matern, make_kernel


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'funbat' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


_from_environment()

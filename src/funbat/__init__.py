"""funbat: functional Bayesian Tucker decomposition of continuous-indexed tensor data.

>>> from funbat import FunBaT
>>> model = FunBaT(rank=3).fit(X, y)                      # doctest: +SKIP
>>> mean, std = model.predict(X_new, return_std=True)    # doctest: +SKIP
"""

from .cache import _from_environment, enable_compilation_cache
from .data import InputError
from .estimator import FunBaT, FunBaTCP
from .files import predict_grid, read_table
from .io import load, save
from .kernels import KERNELS, Matern, make_kernel

__version__ = "0.1.0"

_from_environment()

__all__ = [
    "KERNELS",
    "FunBaT",
    "FunBaTCP",
    "InputError",
    "Matern",
    "load",
    "make_kernel",
    "predict_grid",
    "read_table",
    "save",
    "__version__",
    "enable_compilation_cache",
]

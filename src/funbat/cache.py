"""Opt-in persistent compilation cache: pay JAX's compilation once per machine.

A fresh Python process compiles funbat's sweep for every new shape (a few seconds on a
CPU). With the cache on, compiled programs are written to a directory and later
processes load them instead of compiling. It is opt-in because it writes files the
user may not expect; turn it on with :func:`enable_compilation_cache` or by setting the
environment variable ``FUNBAT_COMPILATION_CACHE`` to a directory before importing
funbat (the CLI honours it too).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["enable_compilation_cache", "ENV_VAR"]

#: Environment variable naming the cache directory; read when funbat is imported.
ENV_VAR = "FUNBAT_COMPILATION_CACHE"


def _default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "funbat" / "jax"


def enable_compilation_cache(path=None) -> Path:
    """Cache JAX compilations of this process on disk, in ``path``.

    Parameters
    ----------
    path : str or Path, optional
        Cache directory, created if missing. Default ``$XDG_CACHE_HOME/funbat/jax``
        (``~/.cache/funbat/jax``).

    Returns
    -------
    The cache directory (absolute).

    Every compiled program is cached, however quick its compilation: funbat's are small
    and many, and together they are most of a first ``fit`` on small data.
    """
    import jax

    d = Path(path).expanduser() if path else _default_dir()
    d.mkdir(parents=True, exist_ok=True)
    d = d.resolve()
    jax.config.update("jax_compilation_cache_dir", str(d))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return d


def _from_environment() -> None:
    """Enable the cache when ``FUNBAT_COMPILATION_CACHE`` names a directory."""
    path = os.environ.get(ENV_VAR)
    if path:
        enable_compilation_cache(path)

"""The opt-in persistent compilation cache (``funbat.cache``), in fresh processes."""

import json
import os
import subprocess
import sys

_SCRIPT = """
import json, sys
import funbat
from funbat.datasets import make_synthetic
d = make_synthetic(400, n_unique=20, seed=1)
m = funbat.FunBaT(rank=2, max_iter=3, random_state=0).fit(d.X, d.y)
print(json.dumps([float(v) for v in m.predict(d.X.iloc[:5])]))
"""


def _run(env):
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_environment_variable_fills_the_cache_and_reuses_it(tmp_path):
    cache = tmp_path / "jit-cache"
    env = {**os.environ, "FUNBAT_COMPILATION_CACHE": str(cache)}
    first = _run(env)
    entries = sorted(p.name for p in cache.iterdir())
    assert entries, "no compiled program was written to the cache"
    second = _run(env)  # loads from the cache: same programs, same numbers
    assert second == first
    assert sorted(p.name for p in cache.iterdir()) == entries  # nothing new compiled


def test_enable_compilation_cache_returns_the_directory(tmp_path):
    import jax

    from funbat import enable_compilation_cache

    before = jax.config.jax_compilation_cache_dir
    try:
        d = enable_compilation_cache(tmp_path / "c")
        assert d.is_dir() and jax.config.jax_compilation_cache_dir == str(d)
    finally:
        jax.config.update("jax_compilation_cache_dir", before)

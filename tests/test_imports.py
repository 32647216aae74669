"""``import funbat`` is cheap: JAX and scikit-learn load on first use of a public name."""

import os
import subprocess
import sys

import pytest


def test_import_funbat_does_not_load_jax_or_sklearn():
    code = (
        "import sys, funbat\n"
        "heavy = [m for m in ('jax', 'sklearn') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "funbat.FunBaT\n"
        "assert 'jax' in sys.modules and 'sklearn' in sys.modules\n"
    )
    # without the cache variable the suite sets (it turns JAX's cache on at import)
    env = {k: v for k, v in os.environ.items() if k != "FUNBAT_COMPILATION_CACHE"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_public_names_resolve_and_unknown_names_raise():
    import funbat

    for name in funbat.__all__:
        assert getattr(funbat, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Tucker'"):
        funbat.Tucker  # noqa: B018

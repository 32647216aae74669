"""``import funbat`` is cheap: JAX and scikit-learn load on first use of a public name."""

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
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names_resolve_and_unknown_names_raise():
    import funbat

    for name in funbat.__all__:
        assert getattr(funbat, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'Tucker'"):
        funbat.Tucker  # noqa: B018

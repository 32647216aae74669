"""Sphinx configuration of funbat's documentation.

Build: ``pip install '.[docs]'`` then ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
The examples gallery (``examples/``) is executed at build time; it reads the shared real
datasets (``../shared/data`` beside the project). Without them the gallery is rendered
from its sources without running it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "_ext"))

import funbat  # noqa: E402
from funbat.datasets import shared_data_dir  # noqa: E402

project = "funbat"
author = "the funbat developers"
copyright = "the funbat developers"
release = funbat.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
    "sphinx_copybutton",
    "benchdata",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5", "sg_execution_times.rst"]

# -- MyST ---------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "attrs_inline"]
myst_heading_anchors = 3
# a cross-reference that does not resolve is a warning, so -W fails the build on it
nitpicky = False

# -- API reference ------------------------------------------------------------------
autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "none"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
napoleon_preprocess_types = False
napoleon_use_ivar = True  # NamedTuple fields: one description each, not a second object


def _skip_namedtuple_aliases(app, what, name, obj, skip, options):
    """Hide the "Alias for field number N" entries of NamedTuple fields (the class's
    Attributes section documents them)."""
    doc = getattr(obj, "__doc__", None) or ""
    return True if doc.startswith("Alias for field number") else None


def setup(app):
    app.connect("autodoc-skip-member", _skip_namedtuple_aliases)

# -- examples gallery ----------------------------------------------------------------
_has_data = (shared_data_dir() / "beijing_pm25.csv").is_file()
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "plot_gallery": "True" if _has_data else "False",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "matplotlib_animations": False,
    "show_memory": False,
    "reset_modules": ("matplotlib",),
}

# -- HTML ---------------------------------------------------------------------------
templates_path = ["_templates"]
html_theme = "furo"
html_title = f"funbat {release}"
html_static_path = ["_static"]
html_show_sourcelink = False
html_theme_options = {"navigation_with_keys": True}

suppress_warnings = ["config.cache"]
os.environ.setdefault("MPLBACKEND", "Agg")

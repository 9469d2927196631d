"""Sphinx configuration of the mtl_lib documentation (``make docs``; built with ``-W``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # the library, importable without installing
sys.path.insert(0, str(DOCS / "_ext"))  # our small build-time extensions

# The docs build never touches the network: encoders and data are read from local files.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

import mtl_lib  # noqa: E402

project = "mtl_lib"
author = "the mtl_lib authors"
copyright = "the mtl_lib authors"  # noqa: A001 - Sphinx's name for it
release = version = mtl_lib.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "mtl_docs",
    "myst_nb",  # the lessons: executed copies in lessons/ (`make lessons`), rendered as they are
]

# _build holds the output and build-time figures;
# reliability_results.md is a result file that reliability.rst includes, not a page.
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "reliability_results.md"]
templates_path: list[str] = []
html_static_path = ["_static"]
html_css_files = ["mtl.css"]
html_theme = "furo"
html_title = f"mtl_lib {release}"
html_theme_options = {"navigation_with_keys": True}

# The lessons are executed by `make lessons` (or its fast variant), never by the docs build:
# the pages show the outputs stored in docs/lessons/*.ipynb, plots included.
nb_execution_mode = "off"
nb_output_stderr = "remove"  # progress bars and library warnings: noise on a page
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# autodoc + numpy-style docstrings
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_ivar = True  # "Attributes" as fields: properties documented by autodoc stay unique
napoleon_use_rtype = False

# No intersphinx mappings: the build must work offline.
intersphinx_mapping: dict = {}

# Formulas as MathML rendered at build time when latex2mathml is installed (readable offline);
# otherwise MathJax, which needs a connection to its CDN when the pages are read.
try:
    import latex2mathml  # noqa: F401
except ImportError:
    pass
else:
    html_math_renderer = "mathml"
pygments_style = "friendly"  # code cells on a light background, readable in both furo modes

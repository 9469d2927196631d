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
]

# docs/dev holds internal working notes; _build holds the output and build-time figures.
exclude_patterns = ["_build", "dev", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []
html_static_path = ["_static"]
html_css_files = ["mtl.css"]
html_theme = "alabaster"
html_title = f"mtl_lib {release}"
html_theme_options = {
    "description": "Multi-task NLP with one shared transformer encoder",
    "page_width": "1180px",
    "sidebar_width": "230px",
    "fixed_sidebar": True,
    "show_relbars": True,
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}

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
pygments_style = "sphinx"

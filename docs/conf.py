"""Sphinx configuration for the structjac documentation.

The default build is offline and must pass with ``-W --keep-going -n``:

* MathJax 3 (``tex-svg-full.js``, fonts embedded as SVG paths) is vendored in
  ``_static/mathjax/`` so that formulas render without network access;
* intersphinx is enabled only when ``STRUCTJAC_DOCS_INTERSPHINX=1``;
* the rule table, the sparsity figures and the benchmark figure list are
  generated at build time by ``_ext/structjac_docs.py`` into the git-ignored
  ``_generated/`` directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
# Document the source tree, not whatever version happens to be installed.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

import structjac  # noqa: E402

# -- Project -----------------------------------------------------------------

project = "structjac"
author = "the structjac developers"
copyright = "the structjac developers"
release = getattr(structjac, "__version__", "0.1.0")
version = ".".join(release.split(".")[:2])

# -- General -----------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "structjac_docs",
]

INTERSPHINX = os.environ.get("STRUCTJAC_DOCS_INTERSPHINX", "") == "1"
if INTERSPHINX:
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable/", None),
        "scipy": ("https://docs.scipy.org/doc/scipy/", None),
        "numba": ("https://numba.readthedocs.io/en/stable/", None),
    }

# _generated/*.rst are pieces that pages pull in with ``.. include::``, not pages
# of their own (as pages they would be untitled).
exclude_patterns = ["_build", "_generated/**/README*", "_generated/*.rst", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]
root_doc = "index"
nitpicky = True
default_role = "code"

autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Parameter types stay plain text (``array_like, shape (n,)`` is prose, not a
# type); explicit roles (:class:`numpy.ndarray`) are cross-references.
numpydoc_xref_param_type = False

# References to anything outside structjac (Python, NumPy, SciPy, Numba) can
# only resolve through intersphinx. They are exempt from nitpicky checking —
# with STRUCTJAC_DOCS_INTERSPHINX=1 they become links where the inventories
# have them — while every reference into structjac is checked.
nitpick_ignore_regex = [
    (r"py:.*", r"(?!structjac\b).*"),
]

# -- HTML --------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = "structjac"
html_static_path = ["_static"]
html_css_files = ["structjac.css"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {
    "index": [],
    "install": [],
    "rules": [],
    "performance": [],
    "conventions": [],
    "getting_started": [],
    "architecture": [],
}

# MathJax, vendored (no CDN): MathJax 3.2.2, SVG output with embedded fonts.
mathjax_path = "mathjax/tex-svg-full.js"
mathjax3_config = {
    "tex": {"macros": {"diag": r"\operatorname{diag}"}},
    "svg": {"fontCache": "global"},
    "options": {"enableMenu": False},
}

"""Sphinx configuration for the skcce documentation.

Build with::

    sphinx-build -W --keep-going -b html docs docs/_build/html
"""

import os
import re
import warnings

import skcce

project = "skcce"
author = "The skcce developers"
copyright = "2026, The skcce developers"
version = release = skcce.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.md5", "auto_examples/*.json"]
templates_path = ["_templates"]
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

html_theme = "pydata_sphinx_theme"
html_title = f"skcce {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_static_path = []

# The examples run at build time; they are small (each well under 30 s).
os.environ.setdefault("MPLBACKEND", "Agg")
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "download_all_examples": False,
    "within_subsection_order": "FileNameSortKey",
    "remove_config_comments": True,
    "show_memory": False,
    "doc_module": ("skcce",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"skcce": None},
}


def _plain_sklearn_refs(app, what, name, obj, options, lines):
    """Inherited scikit-learn docstrings refer to labels of scikit-learn's own
    documentation (``:ref:`...```); render those as plain text here."""
    if getattr(obj, "__module__", "").startswith("sklearn"):
        pattern = re.compile(r":ref:`([^`<]*?)\s*(<[^>]*>)?`")
        lines[:] = [pattern.sub(lambda m: m.group(1), line) for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _plain_sklearn_refs)

# Silence matplotlib's font cache chatter during example execution.
warnings.filterwarnings("ignore", message="Matplotlib is building the font cache")

"""Sphinx configuration for the dg documentation site (built by `nox -s docs`, warnings are errors)."""

project = "dg"
author = "the dg developers"
copyright = "2026, the dg developers"
release = "0.1.0"

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = "dg"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
nitpicky = False
suppress_warnings = ["myst.xref_missing"]

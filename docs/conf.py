"""Sphinx configuration of the netproto_twisted documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
Only built-in extensions are used and nothing is fetched from the network.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__: list[str] = []

ROOT = Path(__file__).resolve().parent.parent

# Document the source tree itself, not whatever copy an (editable) install
# happens to expose: strict editable installs only see files present at
# install time.
sys.path.insert(0, str(ROOT))

import netproto_twisted  # noqa: E402

project = "netproto_twisted"
author = "the netproto_twisted authors"
copyright = "2026, the netproto_twisted authors"
version = release = netproto_twisted.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

# No intersphinx: the build must not touch the network.

root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
nitpicky = False
language = "en"

# autodoc --------------------------------------------------------------------

# Members are listed in source order, which keeps related things together.
autodoc_member_order = "bysource"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
# Type hints go into the parameter descriptions rather than the signatures;
# many of them name Twisted/zope types that cannot be cross-referenced
# without intersphinx, and that is fine outside nitpicky mode.
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_class_signature = "mixed"
autodoc_preserve_defaults = True
# Render the documented classes' own docstrings, not their __init__'s.
autoclass_content = "class"

# HTML -----------------------------------------------------------------------

html_theme = "alabaster"
html_title = f"netproto_twisted {release}"
html_static_path: list[str] = []
html_show_sourcelink = False

"""Sphinx configuration of the netproto_twisted documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
Only built-in extensions are used and nothing is fetched from the network.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform

__all__: list[str] = []

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

# Document the source tree itself, not whatever copy an (editable) install
# happens to expose: strict editable installs only see files present at
# install time.
sys.path.insert(0, str(ROOT))
# The tree's own Sphinx extensions (docs/_ext/*.py).
sys.path.insert(0, str(DOCS / "_ext"))

import netproto_twisted  # noqa: E402

project = "netproto_twisted"
author = "the netproto_twisted authors"
copyright = "2026, the netproto_twisted authors"
version = release = netproto_twisted.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
# ``.. netproto-config::`` renders the configuration reference from the code.
if (DOCS / "_ext" / "configref.py").exists():
    extensions.append("configref")

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
    "ignore-module-all": True,
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


# Ambiguous type names -------------------------------------------------------

_MISSING = object()


class PickImportedTarget(SphinxPostTransform):
    """Resolve an ambiguous short type name to the object the module imported.

    Type hints are kept as written, so a parameter annotated ``Runner`` in
    one module may match a ``Runner`` documented in two others.  When the
    Python domain's search finds several candidates, pick the one that *is*
    the object bound to that name in the referring module.
    """

    default_priority = 5  # before the ReferencesResolver (10)

    def run(self, **kwargs: Any) -> None:
        """Rewrite each ambiguous ``py`` cross-reference to its real target."""
        domain: Any = self.env.get_domain("py")
        for node in self.document.findall(addnodes.pending_xref):
            target = node.get("reftarget", "")
            modname = node.get("py:module")
            if node.get("refdomain") != "py" or "." in target or not modname:
                continue
            matches = domain.find_obj(
                self.env, modname, node.get("py:class"), target, None, 1
            )
            if len(matches) < 2:
                continue
            bound = getattr(sys.modules.get(modname), target, _MISSING)
            for fullname, _entry in matches:
                owner, _, attr = fullname.rpartition(".")
                if getattr(sys.modules.get(owner), attr, None) is bound:
                    node["reftarget"] = fullname
                    break


def setup(app: Sphinx) -> dict[str, Any]:
    """Register this configuration's own transform."""
    app.add_post_transform(PickImportedTarget)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

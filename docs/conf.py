"""Sphinx configuration of the netproto_twisted documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
Only built-in extensions are used and nothing is fetched from the network.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import Any

from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util.docutils import SphinxDirective
from zope.interface.interface import Attribute, InterfaceClass, Method

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
exclude_patterns = [
    "_build",
    "Thumbs.db",
    ".DS_Store",
]
nitpicky = False
language = "en"

# autodoc --------------------------------------------------------------------

# Members are listed in source order, which keeps related things together.
autodoc_member_order = "bysource"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    # Each module documents what it defines, in source order.  A package
    # whose modules are private (``smtp/wire/_syntax.py``) says
    # ``:no-ignore-module-all:`` to document its ``__all__`` instead; then
    # _skip_reexports keeps out what other public modules document.
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
    """Resolve an ambiguous short name to the object the referring module means.

    Type hints are kept as written, so a parameter annotated ``Runner`` in
    one module may match a ``Runner`` documented in two others; likewise
    ``:mod:`.errors``` in a docstring.  When the Python domain's search finds
    several candidates, pick the one that *is* the object bound to that name
    in the referring module, or else the one nearest to it in the package
    tree (``smtp.client`` -> ``smtp.errors``) if exactly one is nearest.
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
            names = [fullname for fullname, _entry in matches]
            same = [n for n in names if _bound_object(n) is bound]
            if len(same) == 1:
                node["reftarget"] = same[0]
                continue
            closeness = {n: _shared_prefix(n, modname) for n in names}
            best = max(closeness.values())
            nearest = [n for n, c in closeness.items() if c == best]
            if len(nearest) == 1:
                node["reftarget"] = nearest[0]


def _bound_object(fullname: str) -> object:
    """Return the object a documented dotted name stands for (a module or a member)."""
    if fullname in sys.modules:
        return sys.modules[fullname]
    owner, _, attr = fullname.rpartition(".")
    return getattr(sys.modules.get(owner), attr, None)


def _shared_prefix(a: str, b: str) -> int:
    """Count the leading dotted components two names share."""
    count = 0
    for x, y in zip(a.split("."), b.split("."), strict=False):
        if x != y:
            break
        count += 1
    return count


# Where each object is documented ---------------------------------------------


def _is_private(modname: str) -> bool:
    return any(part.startswith("_") for part in modname.split("."))


def _public_home(modname: str) -> str:
    """Return the public module that presents a private module's names (its package)."""
    parts = modname.split(".")
    while parts and parts[-1].startswith("_"):
        parts.pop()
    return ".".join(parts)


def _skip_reexports(
    app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any
) -> bool | None:
    """Document each object once: where it is defined, or, if that module is private
    (``smtp/wire/_syntax.py``), in the package that re-exports it (``netproto_twisted.smtp``).

    Modules list their public names in ``__all__``, re-exports included; a
    re-export from a public module is skipped here (it has its own page).
    """
    if what != "module":
        return None
    documenting = app.env.current_document.autodoc_module
    defined_in = getattr(obj, "__module__", None)
    if not documenting or not isinstance(defined_in, str) or defined_in == documenting:
        return None
    if not defined_in.startswith("netproto_twisted"):
        return True  # imported from a library
    if _is_private(defined_in) and _public_home(defined_in) == documenting:
        return None
    return True


# zope.interface ---------------------------------------------------------------

# Interfaces are InterfaceClass instances, not classes: autodoc skips them as
# members, and renders them in type hints through their repr.
_INTERFACE_REPR = re.compile(r"<InterfaceClass ([\w.]+)>")


def _qualify_interface_hints(
    app: Sphinx, domain: str, objtype: str, contentnode: Any
) -> None:
    """Render an interface in a recorded type hint as its dotted name, not its repr."""
    annotations: dict[str, dict[str, str]] = app.env.current_document.autodoc_annotations
    for hints in annotations.values():
        for key, text in hints.items():
            if "<InterfaceClass " in text:
                hints[key] = _INTERFACE_REPR.sub(r"~\1", text)


def _indented(text: str | None, prefix: str) -> list[str]:
    return [prefix + line if line else "" for line in inspect.cleandoc(text or "").splitlines()]


class ZopeInterfaces(SphinxDirective):
    """``.. zope-interfaces:: MODULE``: document the interfaces a module defines.

    Each interface becomes a ``py:class`` with its bases, docstring,
    attributes and method signatures, in definition order.
    """

    required_arguments = 1

    def run(self) -> list[Any]:
        """Generate the descriptions as reST and parse them."""
        modname = self.arguments[0]
        module = importlib.import_module(modname)
        lines: list[str] = []
        for name, iface in vars(module).items():
            if not isinstance(iface, InterfaceClass) or iface.__module__ != modname:
                continue
            lines += [f".. py:class:: {name}", f"   :module: {modname}", ""]
            bases = ", ".join(
                f":class:`~{b.__module__}.{b.__name__}`" for b in iface.__bases__
            )
            lines += [f"   Bases: {bases}", ""]
            lines += [*_indented(iface.__doc__, "   "), ""]
            for member in iface.names():
                desc = iface[member]
                if isinstance(desc, Method):
                    lines.append(f"   .. py:method:: {member}{desc.getSignatureString()}")
                elif isinstance(desc, Attribute):
                    lines.append(f"   .. py:attribute:: {member}")
                else:  # pragma: no cover - zope has no other kinds
                    continue
                lines += ["", *_indented(desc.__doc__, "      "), ""]
        return self.parse_text_to_nodes("\n".join(lines), allow_section_headings=False)


def setup(app: Sphinx) -> dict[str, Any]:
    """Register this configuration's own transform, directive and event handler."""
    app.add_post_transform(PickImportedTarget)
    app.add_directive("zope-interfaces", ZopeInterfaces)
    app.connect("autodoc-skip-member", _skip_reexports)
    app.connect("object-description-transform", _qualify_interface_hints, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

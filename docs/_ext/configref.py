"""Sphinx directive ``.. netproto-config::``: the configuration reference, from the code.

Renders one table per section of the combined daemon's TOML file, built with
:func:`netproto_twisted.core.config.describe_section` from the dataclasses the
daemon really parses, so the reference cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

__all__ = ["ConfigReference", "setup"]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|") or " "


class ConfigReference(SphinxDirective):
    """Emit a heading (rubric) and a key/type/default/help table per TOML table."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        """Build the tables."""
        from netproto_twisted.core.config import describe_section
        from netproto_twisted.tap import _sections

        lines: list[str] = []
        for table, cls in _sections().items():
            lines += [f".. rubric:: [{table}]", ""]
            doc = (cls.__doc__ or "").strip().splitlines()
            if doc:
                lines += [doc[0], ""]
            lines += [".. list-table::", "   :header-rows: 1", "   :widths: 25 15 20 40", ""]
            lines += ["   * - key", "     - type", "     - default", "     - meaning"]
            for key, type_name, default, help_text in describe_section(cls):
                lines += [
                    f"   * - ``{key}``",
                    f"     - {_cell(type_name)}",
                    f"     - ``{_cell(default)}``" if default.strip() else "     - ",
                    f"     - {_cell(help_text)}",
                ]
            lines.append("")
        node = nodes.Element()
        node.document = self.state.document
        self.state.nested_parse(StringList(lines, source="netproto-config"), 0, node)
        return list(node.children)


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive."""
    app.add_directive("netproto-config", ConfigReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

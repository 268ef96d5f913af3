"""The HTML page documenting a server's methods (what the stdlib's DocXMLRPCServer serves).

Every name, signature and docstring is escaped: a docstring is text, never markup.
"""

from __future__ import annotations

from html import escape

from netproto_twisted.xmlrpc.methods import MethodRegistry

__all__ = ["render_documentation"]


def _signature(registry: MethodRegistry, name: str) -> str:
    method = registry.lookup(name)
    if method is None or method.signature is None:
        return "(...)"
    sig = method.signature
    bare = [p.replace(annotation=p.empty) for p in sig.parameters.values()]
    return str(sig.replace(parameters=bare, return_annotation=sig.empty))


def render_documentation(
    registry: MethodRegistry, *, title: str = "XML-RPC Server", description: str = ""
) -> bytes:
    """Return the UTF-8 HTML page listing every method with its signature and documentation."""
    out = [
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "dt{font-family:monospace;font-weight:bold;margin-top:1em}"
        "dd pre{white-space:pre-wrap}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]
    if description:
        out.append(f"<p>{escape(description)}</p>")
    out.append("<h2>Methods</h2>\n<dl>")
    for name in registry.list_methods():
        doc = registry.method_help(name)
        out.append(
            f"<dt id='{escape(name)}'>{escape(name)}{escape(_signature(registry, name))}</dt>"
        )
        out.append(f"<dd><pre>{escape(doc)}</pre></dd>" if doc else "<dd></dd>")
    out.append("</dl>\n</body></html>\n")
    return "".join(out).encode("utf-8")

"""The admin console: a Python shell inside the daemon that shows its connections and limits.

Enabled with ``[telnet] console = true`` (off by default).  It listens on
loopback only (``console_listen``, 127.0.0.1:2324 by default; any other
address is refused), asks for a login like the Telnet server, and gives a
Python prompt whose namespace holds:

- ``status()``: each listening service, its addresses, open connections
  (per address), refused connections, and the Telnet sessions;
- ``limits``: the daemon's limits; ``services``: the service tree;
- ``sessions()``: the Telnet sessions of this daemon, one line each.

Everything else in the daemon is reachable from the prompt too: it is an
operator's tool, as Twisted's manhole is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from twisted.application.service import IService, IServiceCollection

from netproto_twisted.core.access import ConnectionGuard
from netproto_twisted.core.limits import Limits
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.telnet.interfaces import TerminalInfo
from netproto_twisted.telnet.server import TelnetServerFactory

__all__ = ["console_namespace", "describe_services"]


def _walk(service: Any) -> Iterator[Any]:
    yield service
    if IServiceCollection.providedBy(service):
        for child in service:
            yield from _walk(child)


def _root(service: IService) -> Any:
    node: Any = service
    while getattr(node, "parent", None) is not None:
        node = node.parent
    return node


def describe_services(root: Any) -> str:
    """Return one block per listening service: addresses, connections, refusals, sessions."""
    lines: list[str] = []
    for service in _walk(root):
        if not isinstance(service, EndpointsService):
            continue
        where = ", ".join(f"{kind} {address}" for kind, address in service.addresses) or "-"
        lines.append(f"{service.name}: {where}")
        factory = service.factory
        if isinstance(factory, ConnectionGuard):
            per_host = ", ".join(f"{h}={n}" for h, n in sorted(factory.per_host_counts.items()))
            lines.append(
                f"  connections {factory.connection_count}/{factory.limits.max_connections}"
                f" (per address max {factory.limits.max_connections_per_ip}: {per_host or 'none'})"
                f", refused {factory.refused_count}"
            )
            factory = factory.wrappedFactory
        if isinstance(factory, TelnetServerFactory):
            lines.extend("  " + line for line in describe_sessions(factory))
    return "\n".join(lines)


def describe_sessions(factory: TelnetServerFactory) -> list[str]:
    """Return one line per Telnet session of ``factory``."""
    now = time.time()
    out = []
    for session in sorted(factory.sessions, key=lambda s: s.started):
        d = session.describe()
        out.append(
            f"{d['peer']} {d['state']} user={d['user'] or '-'} term={d['terminal'] or '-'}"
            f" window={d['window']} in={d['bytes_in']} out={d['bytes_out']}"
            f" age={now - d['since']:.0f}s"
        )
    return out


def console_namespace(
    service: IService, limits: Limits
) -> Callable[[TerminalInfo], dict[str, Any]]:
    """Return the namespace factory of the console shell living in ``service``'s tree."""

    def namespace(terminal: TerminalInfo) -> dict[str, Any]:
        def status() -> None:
            """Print every listening service with its connections."""
            print(describe_services(_root(service)))

        def sessions() -> None:
            """Print the Telnet sessions."""
            for node in _walk(_root(service)):
                if isinstance(node, EndpointsService):
                    factory = node.factory
                    if isinstance(factory, ConnectionGuard):
                        factory = factory.wrappedFactory
                    if isinstance(factory, TelnetServerFactory):
                        print("\n".join(describe_sessions(factory)) or "no sessions")

        return {
            "user": terminal.user,
            "status": status,
            "sessions": sessions,
            "limits": limits,
            "services": _root(service),
        }

    return namespace

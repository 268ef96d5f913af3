"""The admin console: a Python shell inside the daemon that shows its connections and limits.

Enabled with ``[telnet] console = true`` (off by default).  It listens on
loopback only (``console_listen``, 127.0.0.1:2324 by default; any other
address is refused), asks for a login like the Telnet server, and gives a
Python prompt whose namespace holds:

- ``status()``: each listening service, its addresses, open connections
  (per address), refused connections, and the Telnet sessions;
- ``limits``: the daemon's limits; ``services``: the service tree;
- ``sessions()``: the Telnet sessions of this daemon, one line each;
- ``queues()``: each queue a service exposes (the SMTP relay's spool):
  entries queued, active, deferred and held, and the age of the oldest
  (read from disk in a thread: it returns a Deferred, shown when it fires).

A service exposes a queue with a ``queue_status()`` method returning a
mapping of counts (read-only, from memory); with a ``spool`` attribute whose
``scan(summarise)`` fires with a summary of each entry (as
:class:`~netproto_twisted.smtp.relay.queue.Spool` does), ``queues()`` also
reports the oldest entry's age, and the spool's group commits when its
``committer`` counts them.  ``status()`` shows the counts too.

Everything else in the daemon is reachable from the prompt too: it is an
operator's tool, as Twisted's manhole is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from twisted.application.service import IService, IServiceCollection
from twisted.internet.defer import Deferred, gatherResults, succeed

from netproto_twisted.core.access import ConnectionGuard
from netproto_twisted.core.limits import Limits
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.telnet.interfaces import TerminalInfo
from netproto_twisted.telnet.server import TelnetServerFactory

__all__ = ["ConsoleText", "console_namespace", "describe_queues", "describe_services"]


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
    lines.extend(_queue_line(service, None) for service in _queue_services(root))
    return "\n".join(lines)


class ConsoleText(str):
    """Text that the console's prompt shows as it is (its ``repr`` is the text itself)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "\n" + str(self)


def _queue_services(root: Any) -> list[Any]:
    return [s for s in _walk(root) if callable(getattr(s, "queue_status", None))]


def _received_at(entry: Any) -> float:
    """What :meth:`describe_queues` reads of each spooled entry (runs in the spool's thread)."""
    return float(entry.received_at)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _queue_line(service: Any, oldest: float | None, now: float | None = None) -> str:
    counts = service.queue_status()
    name = getattr(service, "name", None) or type(service).__name__
    text = f"queue {name}: " + " ".join(f"{key} {value}" for key, value in counts.items())
    if oldest is not None:
        text += f" oldest {_age(max(0.0, (now or time.time()) - oldest))}"
    committer: Any = getattr(getattr(service, "spool", None), "committer", None)
    if isinstance(getattr(committer, "committed", None), int):
        text += f" (commits {committer.committed} in {committer.rounds} rounds)"
    return text


def describe_queues(root: Any) -> Deferred[ConsoleText]:
    """Fire with one line per queue in ``root``'s tree: counts and the oldest entry's age."""

    def one(service: Any) -> Deferred[str]:
        scan = getattr(getattr(service, "spool", None), "scan", None)
        if scan is None:
            return succeed(_queue_line(service, None))
        d: Deferred[list[float]] = scan(_received_at)

        def line(ages: list[float]) -> str:
            return _queue_line(service, min(ages) if ages else None)

        return d.addCallback(line)

    services = _queue_services(root)
    if not services:
        return succeed(ConsoleText("no queues"))
    gathered: Deferred[list[str]] = gatherResults([one(s) for s in services], consumeErrors=True)
    return gathered.addCallback(lambda lines: ConsoleText("\n".join(lines)))


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

        def queues() -> Deferred[ConsoleText]:
            """Show each queue: entries queued, active, deferred, held; the oldest one's age."""
            return describe_queues(_root(service))

        return {
            "user": terminal.user,
            "status": status,
            "sessions": sessions,
            "queues": queues,
            "limits": limits,
            "services": _root(service),
        }

    return namespace

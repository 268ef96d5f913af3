"""Listening services shared by every daemon: endpoints, start-up report, clean stop.

Every server listens through :class:`EndpointsService`: it takes Twisted
endpoint strings (``tcp:2525:interface=127.0.0.1``, ``tcp6:...``, ``ssl:...``,
``unix:/path``) and our own ``udp:PORT[:interface=ADDR]``, logs one line per
port (``smtp listening on tcp 127.0.0.1:2525``), and on stop closes the live
connections through its :class:`~netproto_twisted.core.access.ConnectionGuard`
so that SIGTERM ends the daemon within a few seconds.

Every stream endpoint listens with a large backlog (:data:`DEFAULT_BACKLOG`,
the ``backlog`` limit, ``--backlog``) unless its string names one
(``tcp:2525:backlog=128``): Twisted's default of 50 makes a burst of a few
hundred connects wait a second for the SYN retry.
"""

from __future__ import annotations

import atexit
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IAddress, IListeningPort, IProtocolFactory
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import DEFAULT_LIMITS
from netproto_twisted.core.reactors import IListenReactor
from netproto_twisted.core.tls_alpn import prepare_tls_endpoint

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorCore

__all__ = [
    "DEFAULT_BACKLOG",
    "EndpointsService",
    "describe_address",
    "endpoint_kind",
    "exit_on_failure",
    "fail",
    "parse_udp_endpoint",
    "with_backlog",
]

_log = Logger()

#: The listen backlog of every stream endpoint that does not name one (1024).
DEFAULT_BACKLOG = DEFAULT_LIMITS.backlog

_KINDS = ("tcp", "tcp6", "ssl", "unix", "udp")
_UDP_RX = re.compile(r"^udp:(?P<port>\d{1,5})(?::interface=(?P<iface>.+))?$")
#: The largest datagram read (Twisted's default for ``listenUDP``).
_MAX_DATAGRAM = 8192
#: ``backlog=`` as an endpoint string's argument (after an unescaped colon).
_BACKLOG_RX = re.compile(r"(?<!\\):\s*backlog\s*=")


class _Closable(Protocol):
    def close_all(self, timeout: float) -> defer.Deferred[None]: ...


def fail(service_name: str, reason: object) -> NoReturn:
    """Stop a daemon's start-up with one clear line on stderr and exit status 1."""
    raise SystemExit(f"{service_name}: {reason}")


def endpoint_kind(text: str) -> str:
    """Return the kind of an endpoint string (``tcp``, ``tcp6``, ``ssl``, ``unix``, ``udp``)."""
    kind = text.split(":", 1)[0].strip().lower()
    if kind not in _KINDS:
        choices = ", ".join(_KINDS)
        raise ConfigError(text, f"unsupported endpoint type {kind!r} (use one of {choices})")
    return kind


def with_backlog(text: str, backlog: int = DEFAULT_BACKLOG) -> str:
    """Return the endpoint string ``text`` listening with ``backlog``, unless it names one.

    Stream endpoints (``tcp``, ``tcp6``, ``ssl``, ``unix``) take Twisted's
    ``backlog=`` argument; ``udp`` strings are returned unchanged.
    """
    if backlog < 1:
        raise ConfigError(text, f"backlog must be a positive integer, got {backlog}")
    if endpoint_kind(text) == "udp" or _BACKLOG_RX.search(text):
        return text
    return f"{text.rstrip()}:backlog={backlog}"


def parse_udp_endpoint(text: str) -> tuple[int, str]:
    """Parse ``udp:PORT[:interface=ADDR]`` into ``(port, interface)``; interface may be empty."""
    m = _UDP_RX.match(text.strip())
    if m is None:
        raise ConfigError(text, "expected udp:PORT[:interface=ADDRESS]")
    port = int(m.group("port"))
    if port > 65535:
        raise ConfigError(text, f"port {port} is out of range")
    iface = (m.group("iface") or "").replace("\\:", ":")
    return port, iface


def describe_address(address: IAddress | Any) -> str:
    """Render a listening address as ``127.0.0.1:2525``, ``[::1]:2525`` or a unix path."""
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None and port is not None:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    name = getattr(address, "name", None)
    if name is not None:
        return name.decode() if isinstance(name, bytes) else str(name)
    return str(address)


class EndpointsService(Service):
    """Listen on several endpoint strings with one factory; report and close them together.

    ``backlog`` is the listen backlog of every stream endpoint whose string
    does not name one (see :func:`with_backlog`).
    """

    def __init__(
        self,
        name: str,
        reactor: IListenReactor,
        listen: Sequence[str],
        factory: IProtocolFactory | None = None,
        *,
        datagram: DatagramProtocol | None = None,
        guard: IProtocolFactory | None = None,
        close_timeout: float = 5.0,
        backlog: int = DEFAULT_BACKLOG,
    ) -> None:
        self.name = name
        self._backlog = backlog
        self._reactor = reactor
        self._listen = list(listen)
        self._factory = guard if guard is not None else factory
        self._datagram = datagram
        self._close_timeout = close_timeout
        self._ports: list[IListeningPort] = []
        self._listening: defer.Deferred[list[tuple[str, str]]] | None = None
        self._waiters: list[defer.Deferred[list[tuple[str, str]]]] = []
        self._result: list[tuple[str, str]] | Failure | None = None
        #: ``(kind, address)`` per port once listening, e.g. ``("tcp", "127.0.0.1:2525")``.
        self.addresses: list[tuple[str, str]] = []
        for text in self._listen:
            kind = endpoint_kind(text)
            if kind == "udp":
                parse_udp_endpoint(text)
                if datagram is None:
                    raise ConfigError(text, f"{name} does not serve UDP")
            elif self._factory is None:
                raise ConfigError(text, f"{name} serves only UDP")

    def startService(self) -> None:
        """Start listening on every endpoint (all or nothing)."""
        Service.startService(self)
        self._listening = defer.ensureDeferred(self._listen_all())
        self._listening.addBoth(self._record)

    async def _listen_all(self) -> list[tuple[str, str]]:
        name = self.name
        for text in self._listen:
            kind = endpoint_kind(text)
            try:
                if kind == "udp":
                    port_no, iface = parse_udp_endpoint(text)
                    assert self._datagram is not None  # checked in __init__
                    port = self._reactor.listenUDP(
                        port_no, self._datagram, interface=iface, maxPacketSize=_MAX_DATAGRAM
                    )
                else:
                    endpoint = serverFromString(self._reactor, with_backlog(text, self._backlog))
                    prepare_tls_endpoint(endpoint)  # clients offering ALPN are welcome
                    port = await endpoint.listen(self._factory)
            except Exception as exc:
                await self._stop_ports()
                raise ConfigError(text, f"{name} cannot listen: {_reason(exc)}") from exc
            self._ports.append(port)
            where = describe_address(port.getHost())
            self.addresses.append((kind, where))
            _log.info("{name} listening on {kind} {where}", name=name, kind=kind, where=where)
        return list(self.addresses)

    @property
    def factory(self) -> IProtocolFactory | None:
        """The factory stream connections are built with (the guard, when one wraps it)."""
        return self._factory

    @property
    def backlog(self) -> int:
        """The listen backlog of stream endpoints whose string names none."""
        return self._backlog

    @property
    def endpoints(self) -> list[str]:
        """The endpoint strings this service listens on (or will)."""
        return list(self._listen)

    @property
    def ports(self) -> list[tuple[str, IListeningPort]]:
        """``(endpoint string, listening port)`` of every port listening now, in endpoint order."""
        return list(zip(self._listen, self._ports, strict=False))

    def _record(self, result: list[tuple[str, str]] | Failure) -> None:
        self._result = result
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            self._fire(d)

    def _fire(self, d: defer.Deferred[list[tuple[str, str]]]) -> None:
        if isinstance(self._result, Failure):
            d.errback(self._result)
        else:
            assert self._result is not None
            d.callback(list(self._result))

    def when_listening(self) -> defer.Deferred[list[tuple[str, str]]]:
        """Fire with the ``(kind, address)`` list once every port listens; fail if one cannot."""
        d: defer.Deferred[list[tuple[str, str]]] = defer.Deferred()
        if self._result is None:
            self._waiters.append(d)
        else:
            self._fire(d)
        return d

    async def _stop_ports(self) -> None:
        ports, self._ports = self._ports, []
        await defer.gatherResults(
            [defer.maybeDeferred(p.stopListening) for p in ports], consumeErrors=True
        )

    def stopService(self) -> defer.Deferred[None]:
        """Stop listening, then close the live connections (abort after ``close_timeout``)."""
        Service.stopService(self)

        async def stop() -> None:
            if self._listening is not None and self._result is None:
                self._listening.cancel()
            await self._stop_ports()
            close_all = getattr(self._factory, "close_all", None)
            if close_all is not None:
                await close_all(self._close_timeout)

        return defer.ensureDeferred(stop())


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


_exit_status = 0


def exit_on_failure(reactor: IReactorCore, d: defer.Deferred[Any], name: str) -> None:
    """If ``d`` fails, log one clear line, stop the reactor and make the process exit with 1.

    Used by the daemons' start-up: a port that cannot be bound ends ``twistd``
    with a non-zero status instead of leaving a daemon that serves nothing.
    """

    def failed(failure: Failure) -> None:
        global _exit_status
        reason = " ".join(failure.getErrorMessage().split())
        _log.critical("{name}: {reason}", name=name, reason=reason)
        if _exit_status == 0:
            _exit_status = 1
            atexit.register(_exit_nonzero)
        if reactor.running:
            reactor.stop()
        else:
            reactor.callWhenRunning(reactor.stop)

    d.addErrback(failed)


def _exit_nonzero() -> None:
    # atexit runs after twistd has removed its pid file and flushed its logs.
    os._exit(_exit_status)

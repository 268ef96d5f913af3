"""Client endpoints: TCP_NODELAY on every connection, and CONNECT tunnels through a proxy.

:class:`TunnelEndpoint` connects to a proxy, asks ``CONNECT host:port``
(RFC 9110 section 9.3.6), and on a 2xx answer hands the connection to the
real protocol (TLS for https, wrapped around it by
:func:`twisted.internet.endpoints.wrapClientTLS`).  The proxy's answer is
read only up to its blank line, within :data:`MAX_CONNECT_REPLY` bytes; its
status line is all we look at, and its headers are parsed by
:func:`http.client.parse_headers`.
"""

from __future__ import annotations

import http.client
import io
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from netproto_twisted.core.net import set_nodelay
from netproto_twisted.http.client.errors import URLError

__all__ = ["MAX_CONNECT_REPLY", "NoDelayEndpoint", "TunnelEndpoint", "TunnelRefused"]

#: Largest proxy answer to a CONNECT we read before giving up.
MAX_CONNECT_REPLY = 64 * 1024


class TunnelRefused(URLError):
    """The proxy answered CONNECT with a non-2xx status (``code``, ``headers``)."""

    def __init__(self, code: int, reason: str, headers: http.client.HTTPMessage | None) -> None:
        super().__init__(f"proxy refused the tunnel: {code} {reason}")
        self.code = code
        self.headers = headers


@implementer(IStreamClientEndpoint)
class NoDelayEndpoint:
    """Wrap a TCP endpoint so that each connection it makes sets TCP_NODELAY."""

    def __init__(self, inner: IStreamClientEndpoint) -> None:
        self.inner = inner

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """Connect through the inner endpoint, then set TCP_NODELAY."""

        def made(protocol: IProtocol) -> IProtocol:
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                set_nodelay(transport)
            return protocol

        return self.inner.connect(protocolFactory).addCallback(made)


class _TunnelProtocol(Protocol):
    """Speak CONNECT, then relay everything to the wrapped protocol."""

    def __init__(self, target: bytes, headers: dict[str, str], factory: IProtocolFactory,
                 addr: IAddress) -> None:  # fmt: skip
        self.target = target
        self.headers = headers
        self.factory = factory
        self.addr = addr
        self.buffer = b""
        self.inner: IProtocol | None = None
        self.ready: Deferred[IProtocol] = Deferred()

    def connectionMade(self) -> None:
        lines = [b"CONNECT " + self.target + b" HTTP/1.1", b"Host: " + self.target]
        for name, value in self.headers.items():
            lines.append(f"{name}: {value}".encode("latin-1"))
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n")  # type: ignore[union-attr]

    def _fail(self, error: BaseException) -> None:
        if not self.ready.called:
            self.ready.errback(Failure(error))
        self.transport.abortConnection()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.dataReceived(data)
            return
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_CONNECT_REPLY:
                self._fail(URLError("proxy's answer to CONNECT is too long"))
            return
        head, rest = self.buffer[:end], self.buffer[end + 4 :]
        self.buffer = b""
        status_line, _, header_block = head.partition(b"\r\n")
        parts = status_line.split(None, 2)
        try:
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
                raise ValueError(status_line)
            code = int(parts[1])
        except ValueError:
            self._fail(URLError(f"bad answer to CONNECT: {status_line[:80]!r}"))
            return
        reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
        if not 200 <= code < 300:
            headers = http.client.parse_headers(io.BytesIO(header_block + b"\r\n\r\n"))
            self._fail(TunnelRefused(code, reason, headers))
            return
        inner = self.factory.buildProtocol(self.addr)
        if inner is None:
            self._fail(URLError("no protocol for the tunnel"))
            return
        self.inner = inner
        inner.makeConnection(self.transport)
        self.ready.callback(inner)
        if rest:
            inner.dataReceived(rest)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        if self.inner is not None:
            self.inner.connectionLost(reason)
        elif not self.ready.called:
            self.ready.errback(Failure(URLError(f"proxy closed during CONNECT: {reason.value}")))


@implementer(IStreamClientEndpoint)
class TunnelEndpoint:
    """Reach ``host:port`` through an HTTP proxy's CONNECT method."""

    def __init__(
        self,
        proxy: IStreamClientEndpoint,
        host: str,
        port: int,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.proxy = proxy
        self.host = host
        self.port = port
        self.headers = dict(headers or {})

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """Connect to the proxy, tunnel, and fire with the tunnelled protocol."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        target = f"{host}:{self.port}".encode("idna" if not host.isascii() else "ascii")
        holder: dict[str, _TunnelProtocol] = {}

        def build(addr: IAddress) -> _TunnelProtocol:
            proto = _TunnelProtocol(target, self.headers, protocolFactory, addr)
            holder["p"] = proto
            return proto

        factory: Any = Factory.forProtocol(Protocol)
        factory.buildProtocol = build
        d = self.proxy.connect(factory)
        return d.addCallback(lambda _: holder["p"].ready)

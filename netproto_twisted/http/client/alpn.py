"""ALPN for https: offer ``h2`` and ``http/1.1``, then speak what the server picked.

:class:`ALPNCreator` wraps a client TLS connection creator so that the
ClientHello offers :data:`ALPN_PROTOCOLS`.  :class:`Negotiator` is the
protocol the pool connects with: it waits for the TLS handshake
(:class:`~twisted.internet.interfaces.IHandshakeListener`), reads the
transport's ``negotiatedProtocol``, builds an HTTP/2 connection (``h2``) or
an HTTP/1.1 one (anything else, including no ALPN answer) and passes the
connection's bytes on to it.  HTTP/2 is offered only when :mod:`h2` can be
imported (:func:`h2_available`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener, IOpenSSLClientConnectionCreator
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from netproto_twisted.http.client.errors import URLError

__all__ = ["ALPN_PROTOCOLS", "H2", "ALPNCreator", "Negotiator", "h2_available"]

H2 = b"h2"
#: What an https connection offers, preferred first, when HTTP/2 is on.
ALPN_PROTOCOLS = (H2, b"http/1.1")

_h2_found: list[bool] = []


def h2_available() -> bool:
    """True when the ``h2`` package (the ``h2`` extra) is installed."""
    if not _h2_found:
        _h2_found.append(importlib.util.find_spec("h2") is not None)
    return _h2_found[0]


@implementer(IOpenSSLClientConnectionCreator)
class ALPNCreator:
    """A client TLS connection creator that also offers ``protocols`` by ALPN."""

    def __init__(self, inner: Any, protocols: tuple[bytes, ...] = ALPN_PROTOCOLS) -> None:
        self.inner = inner
        self.protocols = list(protocols)

    def clientConnectionForTLS(self, tlsProtocol: Any) -> Any:
        """The inner creator's OpenSSL connection, with the ALPN list set."""
        connection = self.inner.clientConnectionForTLS(tlsProtocol)
        connection.set_alpn_protos(self.protocols)
        return connection


@implementer(IHandshakeListener)
class Negotiator(Protocol):
    """Wait for the handshake, then hand the connection to HTTP/2 or HTTP/1.1.

    ``build(negotiated)`` makes the connection protocol for the ALPN
    answer (``None`` when the server gave none).  :attr:`ready` fires with
    that protocol, or fails when the connection ends first.
    """

    def __init__(self, build: Callable[[bytes | None], Any], key: object = None) -> None:
        self.build = build
        self.key = key
        self.inner: Any = None
        self.lost = False
        self.ready: Deferred[Any] = Deferred()

    @property
    def reusable(self) -> bool:
        """Not before the protocol is known."""
        return False

    def close(self) -> None:
        """Close the connection (the handshake is abandoned)."""
        if self.transport is not None and not self.lost:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def handshakeCompleted(self) -> None:
        """Build the connection for the protocol the server picked and start it."""
        if self.inner is not None or self.lost:
            return
        negotiated = getattr(self.transport, "negotiatedProtocol", None)
        inner = self.build(negotiated)
        self.inner = inner
        inner.makeConnection(self.transport)
        self.ready.callback(inner)

    def dataReceived(self, data: bytes) -> None:
        """Pass the bytes on (nothing arrives before the handshake is done)."""
        if self.inner is not None:
            self.inner.dataReceived(data)

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        """Tell the connection, or fail :attr:`ready` when there is none yet."""
        self.lost = True
        if self.inner is not None:
            self.inner.connectionLost(reason)
        elif not self.ready.called:
            self.ready.errback(Failure(URLError(reason.value or "connection lost")))

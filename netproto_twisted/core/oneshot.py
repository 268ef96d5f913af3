"""A one-shot TCP listener: a bare listening socket that hands over one connection.

A data-channel listener (FTP's passive port and the like) accepts a single
connection and is closed again.  A Twisted ``Port`` does that job, but it
costs a few times the system calls' own price to set up and tear down, and
logs two lines every time ("... starting on N", "(TCP Port N Closed)").
:func:`listen_once` binds and listens on a plain non-blocking socket, waits
for it to become readable as a small reader of the reactor, and adopts each
accepted socket as an ordinary TCP connection of the reactor
(``IReactorSocket.adoptStreamConnection``), so the factory sees the usual
``buildProtocol(addr)`` and the protocol the usual transport.

The factory decides whom it takes: when ``buildProtocol`` returns ``None``
(a stranger), that connection is closed and the listener keeps waiting;
the first connection the factory takes closes the listener.  When taking
one fails otherwise (``buildProtocol`` or the protocol's ``connectionMade``
raises), the error is logged, the listener closes, and a factory with an
``adoption_failed(failure)`` method is told, so that whoever waits for the
connection learns at once (FTP answers ``425``).  A reactor that
cannot adopt sockets or watch descriptors gets a plain ``listenTCP`` port
instead (same interface: ``getHost`` and ``stopListening``).
"""

from __future__ import annotations

import errno
import socket
from typing import Any, Protocol

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorFDSet, IReactorSocket, IReadDescriptor
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

__all__ = ["OneShotListener", "OneShotPort", "bind_address", "listen_once"]

_log = Logger(namespace="netproto.core.oneshot")

#: Connections accepted per readable event before control returns to the reactor.
ACCEPT_BATCH = 16
#: ``accept`` errors after which the listener simply waits for the next event.
_TRANSIENT = frozenset(
    {errno.ECONNABORTED, errno.EPROTO, errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
)


class OneShotPort(Protocol):
    """What :func:`listen_once` returns: a listener with an address and a stop."""

    def getHost(self) -> Any:
        """The address listened on."""

    def stopListening(self) -> Any:
        """Stop listening (idempotent)."""


class _Built(Factory):
    """Hands the reactor a protocol already built (by :class:`OneShotListener`)."""

    noisy = False

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    def buildProtocol(self, addr: Any) -> Any:
        """The protocol given."""
        return self._protocol


@implementer(IReadDescriptor)
class OneShotListener:
    """A bare listening socket, read by the reactor, adopting what it accepts.

    Built by :func:`listen_once`; implements ``IReadDescriptor`` for the reactor.
    """

    def __init__(self, reactor: Any, sock: socket.socket, factory: Factory) -> None:
        self.reactor = reactor
        self.socket: socket.socket | None = sock
        self.factory = factory
        self.family = sock.family
        host, port = sock.getsockname()[:2]
        self._host = (IPv6Address if sock.family == socket.AF_INET6 else IPv4Address)(
            "TCP", host, port
        )
        self.refused = 0

    # IReadDescriptor
    def fileno(self) -> int:
        """The listening socket's descriptor (-1 once closed)."""
        return self.socket.fileno() if self.socket is not None else -1

    def logPrefix(self) -> str:
        """Log prefix for the reactor."""
        return "OneShotListener"

    def doRead(self) -> None:
        """Accept what is waiting; adopt it; stop after the first one taken."""
        for _ in range(ACCEPT_BATCH):
            if self.socket is None:
                return
            try:
                conn, peer = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno not in _TRANSIENT:
                    _log.warn("accept failed on a one-shot listener: {error}", error=str(e))
                return
            try:
                # The protocol is built here, before the reactor duplicates the socket:
                # a factory that refuses or fails then leaves no duplicate behind.
                address = (IPv6Address if self.family == socket.AF_INET6 else IPv4Address)
                protocol = self.factory.buildProtocol(address("TCP", *peer))
                transport = None
                if protocol is not None:
                    conn.setblocking(False)
                    transport = self.reactor.adoptStreamConnection(
                        conn.fileno(), self.family, _Built(protocol)
                    )
            except OSError:  # the peer went away before it was adopted
                transport = None
            except Exception:
                self._adoption_failed(Failure())
                return
            finally:
                conn.close()  # the transport holds its own duplicate
            if transport is not None:
                self.stopListening()
                return
            self.refused += 1

    def _adoption_failed(self, failure: Failure) -> None:
        _log.failure("taking a connection on a one-shot listener failed", failure)
        self.stopListening()
        tell = getattr(self.factory, "adoption_failed", None)
        if tell is not None:
            tell(failure)

    def connectionLost(self, reason: Failure) -> None:
        """The reactor dropped the descriptor (shutdown): close the socket."""
        self._close()

    # the IListeningPort parts callers use
    def getHost(self) -> IPv4Address | IPv6Address:
        """The address listened on."""
        return self._host

    def stopListening(self) -> None:
        """Stop listening and close the socket (idempotent)."""
        if self.socket is not None:
            self.reactor.removeReader(self)
            self._close()

    def _close(self) -> None:
        sock, self.socket = self.socket, None
        if sock is not None:
            sock.close()


def bind_address(interface: str, port: int) -> tuple[Any, ...]:
    """The address ``bind`` takes for ``interface``:``port``, an IPv6 zone kept.

    ``(host, port)`` loses the zone of a link-local address (``fe80::1%eth0``,
    as ``getHost`` reports a connection on one): the zone becomes the
    scope id of a four-part address instead.
    """
    if "%" not in interface:
        return (interface, port)
    try:
        info = socket.getaddrinfo(
            interface, port, socket.AF_INET6, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST
        )
    except socket.gaierror as e:
        raise CannotListenError(interface, port, e) from e
    address: tuple[Any, ...] = info[0][4]
    return address


def listen_once(
    reactor: Any, port: int, factory: Factory, *, interface: str = "", backlog: int = 1
) -> OneShotPort:
    """Listen on ``interface``:``port`` for connections until ``factory`` takes one.

    :param port: 0 for any free port.
    :raises CannotListenError: when the address cannot be bound.
    """
    if not (IReactorSocket.providedBy(reactor) and IReactorFDSet.providedBy(reactor)):
        listening: OneShotPort = reactor.listenTCP(port, factory, backlog, interface)
        return listening
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    address = bind_address(interface, port)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setblocking(False)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise CannotListenError(interface, port, e) from e
    listener = OneShotListener(reactor, sock, factory)
    reactor.addReader(listener)
    return listener

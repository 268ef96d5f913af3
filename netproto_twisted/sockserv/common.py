"""What the threaded, async and datagram adapters share: ``self.server``, addresses, watermarks."""

from __future__ import annotations

import io
import socket
import sys
import threading
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer, IReactorFromThreads
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from netproto_twisted.core.access import DirectlyGuarded
from netproto_twisted.core.net import raw_tcp_connection

__all__ = [
    "HIGH_WATER",
    "LOW_WATER",
    "MAX_IN_FLIGHT",
    "WRITE_CHUNK",
    "HandlerServer",
    "HandlerStreamProtocol",
    "StreamSocketBase",
    "WriteGate",
    "address_family",
    "socket_address",
]

#: Buffered unread bytes above which a connection stops reading from the peer.
HIGH_WATER = 256 * 1024
#: Buffered unread bytes at or below which reading resumes.
LOW_WATER = 64 * 1024
#: The largest piece a threaded ``sendall`` hands to the reactor at once.
WRITE_CHUNK = 64 * 1024
#: Bytes a handler thread may have queued for the reactor before ``sendall`` blocks.
MAX_IN_FLIGHT = 128 * 1024


def socket_address(address: Any) -> Any:
    """Return a Twisted address as the ``socket`` module gives it: a tuple or a unix path."""
    if isinstance(address, IPv6Address):
        return (address.host, address.port, 0, 0)
    if isinstance(address, IPv4Address):
        return (address.host, address.port)
    if isinstance(address, UNIXAddress):
        name = address.name
        if name is None:
            return ""
        return name.decode() if isinstance(name, bytes) else str(name)
    return address


def address_family(address: Any) -> socket.AddressFamily:
    """Return the socket family (AF_INET, AF_INET6, AF_UNIX) of a Twisted address."""
    if isinstance(address, IPv6Address):
        return socket.AF_INET6
    if isinstance(address, UNIXAddress):
        return socket.AF_UNIX
    return socket.AF_INET


class HandlerServer:
    """What a handler sees as ``self.server``: the attributes of a ``socketserver`` server.

    One exists per listening port.  :meth:`shutdown` is safe from any thread:
    it stops the service from accepting new requests and never blocks.
    """

    allow_reuse_address = True
    allow_reuse_port = False
    request_queue_size = 50
    timeout: float | None = None
    daemon_threads = True
    block_on_close = False
    max_packet_size = 8192

    _log = Logger()

    def __init__(
        self,
        handler_class: type,
        server_address: Any,
        socket_type: socket.SocketKind,
        address_family: socket.AddressFamily,
        reactor: IReactorFromThreads,
        name: str = "socket",
        on_shutdown: Any = None,
    ) -> None:
        self.RequestHandlerClass = handler_class
        self.server_address = server_address
        self.socket_type = socket_type
        self.address_family = address_family
        #: The reactor the daemon runs; async handlers may use it for timers.
        self.reactor = reactor
        self.name = name
        #: Always ``None``: the listening socket belongs to the reactor.
        self.socket = None
        self._on_shutdown = on_shutdown
        self._shutdown_requested = threading.Event()

    def __repr__(self) -> str:
        return f"<HandlerServer {self.name} {self.server_address!r}>"

    def fileno(self) -> int:
        """Refuse: the listening socket belongs to the reactor."""
        raise OSError("the listening socket is owned by the Twisted reactor")

    def shutdown(self) -> None:
        """Stop accepting new requests (from any thread, without blocking)."""
        if self._shutdown_requested.is_set():
            return
        self._shutdown_requested.set()
        self._log.info("{name}: handler requested shutdown", name=self.name)
        if self._on_shutdown is not None:
            self.reactor.callFromThread(self._on_shutdown)

    def server_close(self) -> None:
        """Do nothing: the daemon closes its ports when it stops."""

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Refuse: the Twisted reactor is already serving."""
        raise RuntimeError("the Twisted reactor serves this server; run it under twistd")

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log the exception being handled, as ``socketserver`` prints it."""
        if sys.exc_info()[1] is None:
            self._log.error(
                "{name}: error while handling a request from {client}",
                name=self.name,
                client=client_address,
            )
            return
        self._log.failure(
            "{name}: exception while handling a request from {client}",
            Failure(),
            name=self.name,
            client=client_address,
        )

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Return True: access control happens before the handler is built."""
        return True


class StreamSocketBase:
    """The socket facade both stream adapters share: addresses, options, no fileno.

    Subclasses call :meth:`_bind_transport` from ``__init__``.
    """

    _sockname: Any
    _peername: Any
    _handle: socket.socket | None

    def _bind_transport(self, transport: Any) -> None:
        host = transport.getHost()
        self.family = address_family(host)
        self.type = socket.SOCK_STREAM
        self.proto = 0
        self._sockname = socket_address(host)
        self._peername = socket_address(transport.getPeer())
        handle = getattr(transport, "getHandle", lambda: None)()
        self._handle = handle if isinstance(handle, socket.socket) else None
        self._raw = raw_tcp_connection(transport)

    def getpeername(self) -> Any:
        """Return the peer's address as the ``socket`` module does."""
        return self._peername

    def getsockname(self) -> Any:
        """Return the local address as the ``socket`` module does."""
        return self._sockname

    def setsockopt(self, level: int, option: int, value: Any, optlen: int | None = None) -> None:
        """Set a socket option on the real socket when there is one; otherwise do nothing."""
        if self._handle is None:
            return
        if optlen is None:
            self._handle.setsockopt(level, option, value)
        else:
            self._handle.setsockopt(level, option, value, optlen)

    def getsockopt(self, level: int, option: int, buflen: int | None = None) -> Any:
        """Read a socket option from the real socket when there is one; otherwise 0."""
        if self._handle is None:
            return 0 if buflen is None else b"\0" * buflen
        if buflen is None:
            return self._handle.getsockopt(level, option)
        return self._handle.getsockopt(level, option, buflen)

    def fileno(self) -> int:
        """Refuse: the connection's descriptor belongs to the reactor."""
        raise io.UnsupportedOperation("fileno: the connection is owned by the Twisted reactor")


@implementer(IHalfCloseableProtocol)
class HandlerStreamProtocol(DirectlyGuarded):
    """What the threaded and async stream connections share: events go to their socket.

    Subclasses set ``self.socket`` in ``connectionMade`` and start the handler.
    A :class:`~netproto_twisted.core.access.ConnectionGuard` without an idle
    timeout counts it without a wrapper: one call less per received chunk.
    """

    socket: Any = None

    def __init__(self, host: Any) -> None:
        self._host = host

    def dataReceived(self, data: bytes) -> None:
        """Hand ``data`` to the socket."""
        assert self.socket is not None
        self.socket._on_data(data)

    def readConnectionLost(self) -> None:
        """The peer finished sending: reads see the end of the stream once the buffer is read."""
        assert self.socket is not None
        self.socket._on_eof()

    def writeConnectionLost(self) -> None:
        """Our half-close completed; nothing to do."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Tell the socket (pending reads and writes report the loss) and the host."""
        if self.socket is not None:
            self.socket._on_lost(reason)
        self._host.connection_lost(self)
        super().connectionLost(reason)


@implementer(IPushProducer)
class WriteGate:
    """The producer registered on a transport: relays its pause/resume to a socket adapter."""

    __slots__ = ("_sock",)

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def pauseProducing(self) -> None:
        """The transport's write buffer is full: writers wait."""
        self._sock._on_write_paused(True)

    def resumeProducing(self) -> None:
        """The transport's write buffer drained: writers go on."""
        self._sock._on_write_paused(False)

    def stopProducing(self) -> None:
        """The connection is going away: release any waiting writer."""
        self._sock._on_write_paused(False)

"""Datagram handlers: ``request = (data, socket_like)``, as ``socketserver.UDPServer`` gives.

Blocking handlers run in the thread pool (at most ``max_pending`` datagrams
wait for a thread; more are dropped, as a full socket buffer would drop
them); reactor-run handlers run at once.  ``socket_like.sendto(data, addr)``
sends through the reactor's UDP port.  Datagrams from hosts the access
policy refuses are dropped before any handler sees them.
"""

from __future__ import annotations

import io
import socket
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from netproto_twisted.sockserv.aio import run_async_handler
from netproto_twisted.sockserv.common import HandlerServer, address_family, socket_address

__all__ = ["DatagramSocket", "HandlerDatagramProtocol"]

#: Datagrams that may wait for a pool thread before new ones are dropped.
MAX_PENDING = 1000


class DatagramSocket:
    """The socket half of a UDP ``request``: ``sendto`` goes out through the reactor."""

    type = socket.SOCK_DGRAM
    proto = 0

    def __init__(self, reactor: IReactorFromThreads, transport: Any, *, threaded: bool) -> None:
        self._reactor = reactor
        self._transport = transport
        self._threaded = threaded
        host = transport.getHost()
        self.family = address_family(host)
        self._sockname = socket_address(host)

    def __repr__(self) -> str:
        return f"<DatagramSocket laddr={self._sockname!r}>"

    def sendto(self, data: Any, flags_or_address: Any, address: Any = None) -> int:
        """Send one datagram to ``address``; return its length."""
        target = flags_or_address if address is None else address
        payload = bytes(data)
        host, port = target[0], target[1]
        if self._threaded:
            self._reactor.callFromThread(self._write, payload, (host, port))
        else:
            self._write(payload, (host, port))
        return len(payload)

    def _write(self, payload: bytes, address: tuple[str, int]) -> None:
        try:
            self._transport.write(payload, address)
        except OSError as e:
            HandlerDatagramProtocol.log.warn(
                "cannot send a datagram to {address}: {error}", address=address, error=e
            )

    def getsockname(self) -> Any:
        """Return the local address as the ``socket`` module does."""
        return self._sockname

    def settimeout(self, value: float | None) -> None:
        """Do nothing: sending a datagram does not block."""

    def gettimeout(self) -> float | None:
        """Return ``None``."""
        return None

    def setsockopt(self, *args: Any) -> None:
        """Do nothing: the port belongs to the reactor."""

    def getsockopt(self, *args: Any) -> int:
        """Return 0: the port belongs to the reactor."""
        return 0

    def fileno(self) -> int:
        """Refuse: the port's descriptor belongs to the reactor."""
        raise io.UnsupportedOperation("fileno: the UDP port is owned by the Twisted reactor")

    def close(self) -> None:
        """Do nothing: the port stays open for the next datagram."""


class HandlerDatagramProtocol(DatagramProtocol):
    """One UDP port: builds the handler for each permitted datagram."""

    log = Logger()
    noisy = False

    def __init__(self, host: Any, policy: Any = None, max_pending: int = MAX_PENDING) -> None:
        self._host = host
        self._policy = policy
        self._max_pending = max_pending
        self._pending = 0
        self._dropped = 0
        self._socket: DatagramSocket | None = None
        self._server: HandlerServer | None = None

    def startProtocol(self) -> None:
        """Prepare the socket-like object and the ``server`` the handlers see."""
        assert self.transport is not None
        self._socket = DatagramSocket(
            self._host.reactor, self.transport, threaded=not self._host.on_reactor
        )
        self._server = self._host.server_for(self.transport.getHost(), socket.SOCK_DGRAM)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """Drop refused or excess datagrams; run the handler for the others."""
        host = addr[0]
        if self._policy is not None and not self._policy.permits(host):
            self.log.debug("dropped a datagram from {host}: refused", host=host)
            return
        assert self._socket is not None and self._server is not None
        client = (host, addr[1]) if ":" not in host else (host, addr[1], 0, 0)
        request = (datagram, self._socket)
        if self._host.on_reactor:
            Deferred.fromCoroutine(
                run_async_handler(self._host.handler_class, request, client, self._server)
            )
            return
        if self._pending >= self._max_pending:
            self._dropped += 1
            if self._dropped in (1, 10, 100) or self._dropped % 1000 == 0:
                self.log.warn(
                    "{count} datagrams dropped: all handler threads busy", count=self._dropped
                )
            return
        self._pending += 1
        self._host.pool.callInThread(self._run, request, client)

    def _run(self, request: tuple[bytes, DatagramSocket], client: Any) -> None:
        assert self._server is not None
        try:
            self._host.handler_class(request, client, self._server)
        except Exception:
            self._server.handle_error(request, client)
        finally:
            self._host.reactor.callFromThread(self._done)

    def _done(self) -> None:
        self._pending -= 1

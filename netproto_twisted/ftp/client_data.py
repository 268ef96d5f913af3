"""The FTP client's data connections: the protocol, its factory, passive or active set-up.

:class:`DataSetup` is one data connection being set up: already connected
(passive mode), or awaited on a listening port (active mode, where the
server connects to the client and only the control peer's address is
taken).  Either way the client stays the TLS client under ``PROT P``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.internet.protocol import Factory, connectionDone
from twisted.python.failure import Failure

from netproto_twisted.core.net import canonical_ip
from netproto_twisted.core.plumbing import ConnectionPlumbing
from netproto_twisted.ftp.errors import FTPConnectionLost

__all__ = ["DataFactory", "DataProtocol", "DataSetup", "LineSplitter"]


class DataProtocol(ConnectionPlumbing):
    """A client data connection: received bytes to a sink; fires ``done`` when closed."""

    transfer_timeout = None
    idle_timeout = None

    def __init__(self, sink: Callable[[bytes], object] | None) -> None:
        super().__init__()
        self.sink = sink
        self.count = 0
        self.done: Deferred[int] = Deferred()
        self.made: Deferred[DataProtocol] = Deferred()

    def connectionMade(self) -> None:
        super().connectionMade()
        self.made.callback(self)

    def bytes_received(self, data: bytes) -> None:
        self.count += len(data)
        if self.sink is not None:
            self.sink(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        if reason.check(ConnectionDone) or self.sink is None:
            self.done.callback(self.count)
        else:
            self.done.errback(FTPConnectionLost(f"data connection lost: {reason.value}"))


class DataFactory(Factory):
    """Builds the data connection; in active mode only one, and only from ``peer``."""

    def __init__(
        self, reactor: Any, sink: Callable[[bytes], object] | None, peer: str | None = None
    ) -> None:
        self.reactor = reactor
        self.sink = sink
        #: Active mode: the one address a connection is taken from (None: passive).
        self.peer = None if peer is None else (canonical_ip(peer) or peer)
        self.taken = False
        #: Active mode: fires with the connection once made.
        self.accepted: Deferred[DataProtocol] = Deferred()
        #: Active mode: called when the connection is taken (stop listening).
        self.on_taken: Callable[[], None] | None = None

    def buildProtocol(self, addr: Any) -> DataProtocol | None:
        if self.peer is not None:
            host = getattr(addr, "host", "")
            if self.taken or (canonical_ip(host) or host) != self.peer:
                return None
            self.taken = True
        p = DataProtocol(self.sink)
        p.factory = self
        if self.peer is not None:
            if self.on_taken is not None:
                self.on_taken()
            p.made.chainDeferred(self.accepted)
        return p


class DataSetup:
    """A data connection being set up: made already (passive), or awaited (active)."""

    def __init__(
        self,
        data: DataProtocol | None = None,
        factory: DataFactory | None = None,
        port: IListeningPort | None = None,
    ) -> None:
        self.data = data
        self._port = port
        self._waiting: Deferred[DataProtocol] | None = None
        if factory is not None:
            self._waiting = factory.accepted
            factory.on_taken = self.close

            def made(p: DataProtocol) -> DataProtocol:
                self.data = p
                return p

            factory.accepted.addCallback(made)

    async def connected(self, clock: IReactorTime, timeout: float) -> DataProtocol:
        """The data connection, once the server has made it (active: within ``timeout``)."""
        if self._waiting is None:
            assert self.data is not None
            return self.data
        waiting = self._waiting
        call = clock.callLater(timeout, waiting.cancel)
        try:
            return await waiting
        except CancelledError:
            raise FTPConnectionLost(
                f"the server did not open the data connection within {timeout:g} s"
            ) from None
        finally:
            if call.active():
                call.cancel()
            self.close()

    def abort(self) -> None:
        """Drop it: stop listening, close a connection already made."""
        self.close()
        data = self.data
        if data is not None and data.transport is not None:
            data.done.addErrback(lambda _: None)  # the reply is the error to report
            data.transport.abortConnection()

    def close(self) -> None:
        """Stop listening (active mode)."""
        port, self._port = self._port, None
        if port is not None:
            port.stopListening()


class LineSplitter:
    """Bytes in, lines out (without their endings, UTF-8 with surrogates for the rest)."""

    def __init__(self, callback: Callable[[str], object]) -> None:
        self._callback = callback
        self._rest = b""

    def feed(self, data: bytes) -> None:
        data = self._rest + data
        *lines, self._rest = data.split(b"\n")
        for line in lines:
            self._callback(line.rstrip(b"\r").decode("utf-8", "surrogateescape"))

    def finish(self) -> None:
        if self._rest:
            self._callback(self._rest.rstrip(b"\r").decode("utf-8", "surrogateescape"))
            self._rest = b""

"""Bodies that do not come from a socket: a file (file: URLs) or bytes (data: URLs).

Each is a body source for :class:`~netproto_twisted.http.client.response.Response`
(Twisted's ``deliverBody``): chunks are read and delivered from the reactor
one per turn, honouring pause/resume and stop from the consumer.
"""

from __future__ import annotations

from typing import IO

from twisted.internet.interfaces import IDelayedCall, IProtocol, IPushProducer, IReactorTime
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from zope.interface import implementer

__all__ = ["CHUNK", "StreamSource"]

#: Bytes read and delivered per reactor turn.
CHUNK = 64 * 1024


@implementer(IPushProducer)
class _Delivery:
    def __init__(self, reactor: IReactorTime, stream: IO[bytes], protocol: IProtocol) -> None:
        self.reactor = reactor
        self.stream = stream
        self.protocol = protocol
        self.paused = False
        self.done = False
        self.call: IDelayedCall | None = None

    def start(self) -> None:
        self.protocol.makeConnection(self)  # type: ignore[arg-type]
        self._schedule()

    def _schedule(self) -> None:
        if not self.done and not self.paused and self.call is None:
            self.call = self.reactor.callLater(0, self._step)

    def _step(self) -> None:
        self.call = None
        if self.done or self.paused:
            return
        try:
            data = self.stream.read(CHUNK)
        except OSError as e:
            self._end(Failure(e))
            return
        if not data:
            self._end(Failure(ResponseDone()))
            return
        self.protocol.dataReceived(data)
        self._schedule()

    def _end(self, reason: Failure) -> None:
        if self.done:
            return
        self.done = True
        self.stream.close()
        self.protocol.connectionLost(reason)

    def pauseProducing(self) -> None:
        """Stop reading until resumed."""
        self.paused = True

    def resumeProducing(self) -> None:
        """Read on."""
        self.paused = False
        self._schedule()

    def stopProducing(self) -> None:
        """Abandon the body."""
        if self.call is not None:
            self.call.cancel()
            self.call = None
        self._end(Failure(ConnectionAbortedError("body delivery stopped")))


class StreamSource:
    """A body read from a binary stream, delivered in :data:`CHUNK` pieces."""

    def __init__(self, reactor: IReactorTime, stream: IO[bytes], length: int | None) -> None:
        self.reactor = reactor
        self.stream = stream
        self.length = length

    def deliverBody(self, protocol: IProtocol) -> None:
        """Start delivering to ``protocol``."""
        _Delivery(self.reactor, self.stream, protocol).start()

"""The streams of an HTTP/2 client connection: one request each, its response and request bodies.

:class:`HTTP2Response` is the :class:`~netproto_twisted.http.client.http11.RawResponse`
an HTTP/2 stream answers with; its body is delivered through Twisted's
``deliverBody`` as the HTTP/1.1 one is, and what the consumer takes is
acknowledged to the server (:meth:`HTTP2Connection.acknowledge
<netproto_twisted.http.client.http2.HTTP2Connection.acknowledge>`), which is
what paces the server.  :class:`_StreamWriter` is the consumer a request
body producer writes to.
"""

from __future__ import annotations

from collections import deque
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IConsumer, IProtocol, IPushProducer
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from netproto_twisted.http.client.http11 import ExchangeOwner, RawResponse

if TYPE_CHECKING:
    from netproto_twisted.http.client.http2 import HTTP2Connection

__all__ = ["HTTP2Response", "StreamReset"]

_HTTP2 = (2, 0)


class StreamReset(Exception):
    """The server reset a stream (RST_STREAM) or the connection failed under it."""


_REASONS = {int(s): s.phrase.encode("ascii") for s in HTTPStatus}


def _reason(status: int) -> bytes:
    """HTTP/2 has no reason phrase: the standard one for ``status`` (empty if unknown)."""
    return _REASONS.get(status, b"")


class HTTP2Response(RawResponse):
    """A :class:`RawResponse` whose body comes from an HTTP/2 stream."""

    __slots__ = ("_stream",)

    def __init__(
        self,
        stream: _Stream,
        status: int,
        headers: list[tuple[bytes, bytes]],
        length: int | None,
    ) -> None:
        self._stream = stream
        self.status = status
        self.reason = _reason(status)
        self.version = _HTTP2
        self.headers = headers
        self.length = length

    def deliverBody(self, protocol: IProtocol) -> None:
        """Stream the body to ``protocol`` (acknowledged to the server as it is taken)."""
        self._stream.attach(protocol)

    def abort(self) -> None:
        """Drop the body: the stream is reset (the connection stays)."""
        self._stream.stop()


@implementer(IPushProducer)
class _StreamControl:
    """The transport a body consumer sees: flow control over one stream."""

    __slots__ = ("stream",)

    def __init__(self, stream: _Stream) -> None:
        self.stream = stream

    def pauseProducing(self) -> None:
        """Stop handing data over (and stop acknowledging it, which stalls the stream)."""
        self.stream.paused = True

    def resumeProducing(self) -> None:
        """Hand over what is held, then acknowledge as usual."""
        if self.stream.paused:
            self.stream.paused = False
            self.stream.flush()

    def stopProducing(self) -> None:
        """Abandon the body (the stream is reset unless it is all in)."""
        self.stream.stop()


@implementer(IConsumer)
class _StreamWriter:
    """The consumer a request body producer writes to: one stream's send buffer."""

    def __init__(self, stream: _Stream) -> None:
        self.stream = stream

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """The connection paces the producer itself (send window, socket)."""

    def unregisterProducer(self) -> None:
        """Undo :meth:`registerProducer`."""

    def write(self, data: bytes) -> None:
        """Queue a piece of the body; it goes out as the send window allows."""
        stream = self.stream
        if data and not stream.finished:
            stream.outgoing.append(data)
            stream.outgoing_size += len(data)
            stream.conn.send_pending(stream)


class _Stream:
    """One request and its response on the connection."""

    def __init__(
        self,
        conn: HTTP2Connection,
        owner: ExchangeOwner,
        method: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | IBodyProducer | None,
    ) -> None:
        self.conn = conn
        self.owner = owner
        self.method = method
        self.headers = headers
        self.body = body
        self.stream_id = 0  # 0 while waiting in line
        self.answered = False  # the response head is in
        self.consumer: IProtocol | None = None
        self.held: deque[tuple[bytes, int]] = deque()  # (data, flow-controlled size)
        self.paused = False
        self.stopped = False
        self.end_reason: Failure | None = None
        self.body_done = False  # the consumer was told of the end
        self.got_bytes = False
        self.finished = False  # the stream is over for the connection
        # Sending the request body.
        self.producer: IBodyProducer | None = None
        self.producer_paused = False
        self.outgoing: deque[bytes] = deque()
        self.outgoing_size = 0
        self.body_complete = False  # everything the request sends is queued

    # -- the consumer's side ----------------------------------------------------------

    def attach(self, protocol: IProtocol) -> None:
        if self.consumer is not None or self.body_done:
            raise RuntimeError("the body of this response is already being delivered")
        self.consumer = protocol
        protocol.makeConnection(_StreamControl(self))  # type: ignore[arg-type]
        self.flush()

    def stop(self) -> None:
        if self.stopped or self.body_done:
            return
        self.stopped = True
        self.held.clear()
        if self.end_reason is None:
            self.conn.cancel_stream(self)
            self.end(Failure(StreamReset("the body was abandoned")))
        else:
            self.flush()

    # -- the connection's side ----------------------------------------------------------

    def data(self, data: bytes, size: int) -> None:
        if self.stopped:
            self.conn.acknowledge(self, size)
            return
        if self.consumer is not None and not self.paused and not self.held:
            self.conn.acknowledge(self, size)
            self.consumer.dataReceived(data)
        else:
            self.held.append((data, size))

    def end(self, reason: Failure) -> None:
        if self.end_reason is None:
            self.end_reason = reason
            self.flush()

    def flush(self) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        held = self.held
        while held and not self.paused and not self.stopped:
            data, size = held.popleft()
            self.conn.acknowledge(self, size)
            consumer.dataReceived(data)
        if (self.paused and not self.stopped) or held:
            return
        if self.end_reason is not None and not self.body_done:
            self.body_done = True
            self.consumer = None  # no cycle left: refcounting frees all
            consumer.connectionLost(self.end_reason)

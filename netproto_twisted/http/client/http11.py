"""One HTTP/1.1 client connection: a Twisted protocol around h11's parser.

:class:`HTTP11Connection` sends one request at a time (keep-alive, no
pipelining) and reads the answer with :mod:`h11`, which does the framing:
Content-Length, chunked and close-delimited bodies, HEAD, 1xx, 204 and
304, ``Connection: close`` and HTTP/1.0.  The answer is a
:class:`RawResponse` -- status, reason, raw headers -- whose body is
delivered through Twisted's ``deliverBody(protocol)``:

* the protocol's transport is a push producer; pausing it pauses the
  socket (``pauseProducing`` of the TCP or TLS transport), so a slow
  consumer of a 1 GB body holds no more than what one read brought in;
* ``connectionLost`` gets :class:`~twisted.web.client.ResponseDone` at a
  complete end, else the reason the body ended early;
* body bytes that arrive before anyone asks for them are held (the socket
  paused meanwhile), so a response whose body is not read at once still
  lets its connection go back to the pool as soon as the body is in.

Request bodies are bytes (sent with the head) or an
:class:`~twisted.web.iweb.IBodyProducer` (registered with the transport
as a streaming producer: a full socket buffer pauses it; unknown length
means chunked).  The owner of a request (the pool) is told what happened
through the :class:`ExchangeOwner` methods, without Deferreds on the hot
path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import Protocol as TypingProtocol

import h11
from twisted.internet.interfaces import IConsumer, IProtocol, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from netproto_twisted.core.net import raw_tcp_connection, write_now
from netproto_twisted.http.client.errors import URLError
from netproto_twisted.http.client.h11cache import HEADS, Head, remember_head, request_event

__all__ = [
    "DEFAULT_MAX_HEADER_BYTES",
    "ExchangeOwner",
    "HTTP11Connection",
    "RawResponse",
    "StaleConnection",
]

#: Largest response head (status line and header fields) read before giving up.
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
#: A Content-Length body at least this big is read from a plain TCP socket ...
BIG_BODY = 1 << 20
#: ... this many bytes at a time (64 KiB otherwise; why not 1 MiB: bench/README.md).
BIG_READ = 1 << 18

_DONE = Failure(ResponseDone())
#: One end-of-message event for every request (building one validates its empty trailers).
_END = h11.EndOfMessage()
_NO_BODY_STATUS = frozenset({204, 304})
_COMPLETE = (h11.DONE, h11.MUST_CLOSE)


class StaleConnection(URLError):
    """A kept-alive connection closed before any byte of the answer came back."""


class ExchangeOwner(TypingProtocol):
    """What a connection tells the sender of a request."""

    def response_received(self, response: RawResponse) -> None:
        """The response head is in (the body follows through ``deliverBody``)."""

    def request_failed(self, failure: Failure, stale: bool) -> None:
        """No response: ``stale`` when a reused connection died before answering."""


@implementer(IPushProducer)
class _BodyControl:
    """The transport a body consumer sees: flow control over one response body."""

    __slots__ = ("exchange",)

    def __init__(self, exchange: _Exchange) -> None:
        self.exchange = exchange

    def pauseProducing(self) -> None:
        """Stop reading the socket until resumed."""
        self.exchange.pause()

    def resumeProducing(self) -> None:
        """Deliver what is held, then read on."""
        self.exchange.resume()

    def stopProducing(self) -> None:
        """Abandon the body (the connection is closed unless the body is all in)."""
        self.exchange.stop()


class RawResponse:
    """A response head as received, and the source of its body.

    :ivar status: the status code.
    :ivar reason: the reason phrase (bytes).
    :ivar version: ``(1, 1)`` or ``(1, 0)``.
    :ivar headers: ``(name, value)`` byte pairs, in order, names as sent.
    :ivar length: the body's length when known (0 for HEAD, 204, 304), else ``None``.
    """

    __slots__ = ("_exchange", "headers", "length", "reason", "status", "version")

    def __init__(
        self,
        exchange: _Exchange,
        status: int,
        reason: bytes,
        version: tuple[int, int],
        headers: list[tuple[bytes, bytes]],
        length: int | None,
    ) -> None:
        self._exchange = exchange
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.length = length

    def deliverBody(self, protocol: IProtocol) -> None:
        """Stream the body to ``protocol`` (see the module docstring)."""
        self._exchange.attach(protocol)

    @property
    def complete(self) -> bool:
        """True when the whole body is in hand: delivering it cannot stall on the network."""
        return self._exchange.end_reason is _DONE

    def abort(self) -> None:
        """Drop the body and the connection (when the body is not all in yet)."""
        self._exchange.stop()


class _Exchange:
    """One request and its response on a connection."""

    __slots__ = (
        "answered",
        "body_done",
        "conn",
        "consumer",
        "control",
        "end_reason",
        "ended",
        "got_bytes",
        "held",
        "method",
        "owner",
        "paused",
        "producer",
        "stopped",
    )

    def __init__(self, conn: HTTP11Connection, owner: ExchangeOwner, method: bytes) -> None:
        self.conn = conn
        self.owner = owner
        self.method = method
        self.answered = False  # the response head is in
        self.consumer: IProtocol | None = None
        self.control: _BodyControl | None = None
        self.held: list[bytes] = []
        self.paused = False
        self.stopped = False
        self.ended = False  # the whole body is in (held or delivered)
        self.end_reason: Failure | None = None  # why the body ended (None: not yet)
        self.body_done = False  # the consumer was told
        self.got_bytes = False
        self.producer: IBodyProducer | None = None

    # -- the consumer's side ----------------------------------------------------------

    def attach(self, protocol: IProtocol) -> None:
        if self.consumer is not None or self.body_done:
            raise RuntimeError("the body of this response is already being delivered")
        self.consumer = protocol
        self.control = _BodyControl(self)
        protocol.makeConnection(self.control)  # type: ignore[arg-type]
        self._flush()

    def pause(self) -> None:
        if not self.paused:
            self.paused = True
            if not self.ended:
                self.conn.hold_reading(self)

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self._flush()

    def stop(self) -> None:
        if self.stopped or self.body_done:
            return
        self.stopped = True
        self.held = []
        if self.ended:
            self._flush()
            return
        self.conn.abort_exchange(self)  # the consumer hears of it in connectionLost

    # -- the connection's side ------------------------------------------------------------

    def data(self, data: bytes, last: bool = False) -> None:
        """Pass body bytes on, or hold them (pausing the socket unless they are the ``last``)."""
        if self.stopped:
            return
        if self.consumer is not None and not self.paused and not self.held:
            self.consumer.dataReceived(data)
        else:
            self.held.append(data)
            if not last:
                self.conn.hold_reading(self)

    def end(self, reason: Failure) -> None:
        """The body ended (``ResponseDone`` or the failure); tell the consumer when it may hear."""
        if self.end_reason is not None:
            return
        self.ended = True
        self.end_reason = reason
        self._flush()

    def _flush(self) -> None:
        consumer = self.consumer
        if consumer is None:
            return
        while self.held and not self.paused and not self.stopped:
            consumer.dataReceived(self.held.pop(0))
        if self.paused and not self.stopped:
            return
        if self.end_reason is not None:
            if not self.body_done:
                self.body_done = True
                self.consumer = self.control = None  # no cycle left: refcounting frees all
                consumer.connectionLost(self.end_reason)
        elif not self.stopped:
            self.conn.resume_reading(self)


@implementer(IConsumer)
class _BodyWriter:
    """The consumer a request body producer writes to: h11 frames each write."""

    def __init__(self, conn: HTTP11Connection, exchange: _Exchange) -> None:
        self.conn = conn
        self.exchange = exchange

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Pass the producer to the transport (back-pressure from the socket)."""
        if self.conn.transport is not None:
            self.conn.transport.registerProducer(producer, streaming)  # type: ignore[attr-defined]

    def unregisterProducer(self) -> None:
        """Undo :meth:`registerProducer`."""
        if self.conn.transport is not None:
            self.conn.transport.unregisterProducer()  # type: ignore[attr-defined]

    def write(self, data: bytes) -> None:
        """Frame and send a piece of the body."""
        self.conn.send_body(self.exchange, data)


class HTTP11Connection(Protocol):
    """An HTTP/1.1 client connection (see the module docstring).

    ``on_idle(conn)`` is called when an exchange ends and the connection
    can carry another request; ``on_lost(conn)`` when it is gone.
    """

    def __init__(
        self,
        on_idle: Callable[[HTTP11Connection], None],
        on_lost: Callable[[HTTP11Connection], None],
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        key: object = None,
    ) -> None:
        self.on_idle = on_idle
        self.on_lost = on_lost
        self.key = key
        self.max_header_bytes = max_header_bytes
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_header_bytes)
        self._exchange: _Exchange | None = None
        self._processing = False
        self._reading_held = False
        self.completed = 0  #: exchanges finished on this connection
        self.lost = False
        self.closing = False
        self._lost_reason: Failure | None = None
        #: Bytes of a Content-Length body still to come (``None``: h11 reads).
        self._counting: int | None = None
        self._keep_alive = True
        self._raw: Any = None  #: the plain TCP connection beneath (see ``connectionMade``)
        self._read_size = 0  #: its usual read size
        self._big_reads = False  #: reading a big body in :data:`BIG_READ` pieces
        #: The head cache key of the bytes just fed to h11, and how many they were.
        self._head_key: tuple[bytes, object, int, bytes] | None = None
        self._head_fed = 0

    def connectionMade(self) -> None:
        """Note the plain TCP connection beneath, if any (direct writes, read size)."""
        self._raw = raw_tcp_connection(self.transport)
        if self._raw is not None:
            self._read_size = self._raw.bufferSize

    # -- state -----------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        """True when the connection is open, idle, and both sides can start another cycle."""
        h = self._h11
        return (
            not self.lost
            and not self.closing
            and self._exchange is None
            and h.our_state is h11.IDLE
            and h.their_state is h11.IDLE
        )

    def close(self) -> None:
        """Close the connection (at once: there is no polite way mid-exchange)."""
        self.closing = True
        if self.transport is not None and not self.lost:
            if self._exchange is None:
                self.transport.loseConnection()
            else:
                self.transport.abortConnection()  # type: ignore[attr-defined]

    # -- sending -----------------------------------------------------------------------

    def request(
        self,
        owner: ExchangeOwner,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | IBodyProducer | None,
    ) -> None:
        """Send a request; ``owner`` hears of the response or the failure."""
        assert self._exchange is None and self.transport is not None
        exchange = self._exchange = _Exchange(self, owner, method)
        h = self._h11
        try:
            if body is None or isinstance(body, bytes):
                size = len(body) if body is not None else -1
                if size < 0 and method in (b"POST", b"PUT", b"PATCH"):
                    size = 0
                data = h.send(request_event(method, target, headers, size))
                if body:
                    data += h.send(h11.Data(data=body))
                data += h.send(_END)
                # Straight to the socket when nothing is queued: no wait for the
                # reactor's next turn, no two epoll_ctl calls per request.
                write_now(self.transport, data, self._raw)
                return
            length = body.length
            if length is UNKNOWN_LENGTH:
                headers = [*headers, (b"Transfer-Encoding", b"chunked")]
            else:
                headers = [*headers, (b"Content-Length", b"%d" % length)]
            self.transport.write(
                h.send(h11.Request(method=method, target=target, headers=headers))
            )
        except h11.LocalProtocolError as e:
            self._exchange = None
            self.closing = True
            self.transport.abortConnection()  # type: ignore[attr-defined]
            owner.request_failed(Failure(URLError(f"cannot send the request: {e}")), False)
            return
        exchange.producer = body
        writer = _BodyWriter(self, exchange)
        try:
            started = body.startProducing(writer)
        except Exception:
            self._producer_failed(exchange, Failure())
            return
        started.addCallbacks(
            lambda _: self._producer_done(exchange),
            lambda f: self._producer_failed(exchange, f),
        )

    def send_body(self, exchange: _Exchange, data: bytes) -> None:
        """Send part of a streamed request body."""
        if exchange is not self._exchange or self.lost or not data:
            return
        out = self._h11.send(h11.Data(data=data))
        if out:
            self.transport.write(out)  # type: ignore[union-attr]

    def _producer_done(self, exchange: _Exchange) -> None:
        exchange.producer = None
        if exchange is not self._exchange or self.lost:
            return
        try:
            out = self._h11.send(_END)
        except h11.LocalProtocolError as e:
            # The producer wrote less (or more) than its length said.
            self._abort_with(exchange, URLError(f"request body: {e}"))
            return
        if out:
            self.transport.write(out)  # type: ignore[union-attr]
        self._maybe_cycle()

    def _producer_failed(self, exchange: _Exchange, failure: Failure) -> None:
        exchange.producer = None
        if exchange is self._exchange and not self.lost:
            self._abort_with(exchange, failure.value or URLError("request body failed"))

    def _abort_with(self, exchange: _Exchange, error: BaseException) -> None:
        self.closing = True
        self._exchange = None
        if not exchange.answered:
            exchange.owner.request_failed(Failure(error), False)
        else:
            exchange.end(Failure(error))
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    # -- reading -----------------------------------------------------------------------

    def hold_reading(self, exchange: _Exchange) -> None:
        """Pause the socket: a consumer is slow or absent."""
        if exchange is self._exchange and not self._reading_held and not self.lost:
            self._reading_held = True
            self.transport.pauseProducing()  # type: ignore[union-attr]

    def resume_reading(self, exchange: _Exchange) -> None:
        """Read the socket again (a consumer caught up)."""
        if exchange is self._exchange and self._reading_held and not self.lost:
            self._reading_held = False
            self.transport.resumeProducing()  # type: ignore[union-attr]

    def abort_exchange(self, exchange: _Exchange) -> None:
        """Abandon ``exchange``: its answer is unwanted, so the connection goes."""
        if exchange is self._exchange and not self.lost:
            self.closing = True
            self.transport.abortConnection()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        """Feed h11 and act on the events it parses."""
        exchange = self._exchange
        if exchange is None:
            # Nothing asked for: a server talking out of turn; this connection is done.
            self.closing = True
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        if self._counting is not None:
            self._counted(exchange, data)
            return
        self._head_key = None
        if not exchange.got_bytes:
            exchange.got_bytes = True
            end = data.find(b"\r\n\r\n")
            h = self._h11
            if end > 0 and h.their_state is h11.SEND_RESPONSE and not h.trailing_data[0]:
                end += 4
                key = (exchange.method, h.our_state, self.max_header_bytes, data[:end])
                head = HEADS.get(key)
                if head is not None:
                    self._cached_head(exchange, head, data[end:])
                    return
                self._head_key = key
                self._head_fed = len(data)
        self._h11.receive_data(data)
        self._process()
        self._head_key = None

    def _cached_head(self, exchange: _Exchange, head: Head, rest: bytes) -> None:
        """A head already parsed by h11, byte for byte: its Content-Length body follows."""
        status, reason, version, headers, length, keep_alive = head
        response = RawResponse(exchange, status, reason, version, list(headers), length)
        exchange.answered = True
        self._start_counting(exchange, response, length, keep_alive, rest)

    def _counted(self, exchange: _Exchange, data: bytes) -> None:
        """Body bytes of a Content-Length body: passed on as they come, counted."""
        left = self._counting
        assert left is not None
        size = len(data)
        if size < left:
            self._counting = left - size
            exchange.data(data)
            return
        self._counting = None
        if self._big_reads:
            self._big_reads = False
            self._raw.bufferSize = self._read_size
        extra = size > left
        if extra:
            data = data[:left]
        if data:
            exchange.data(data, last=True)
        self._exchange = None
        self.completed += 1
        if self._reading_held:
            self._reading_held = False
            self.transport.resumeProducing()  # type: ignore[union-attr]
        if extra or not self._keep_alive:
            # More than the length said (or Connection: close): this connection is done.
            self.closing = True
            self.transport.loseConnection()  # type: ignore[union-attr]
        else:
            self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=self.max_header_bytes)
            if not self.closing:
                self.on_idle(self)
        exchange.end(_DONE)

    def _process(self) -> None:
        if self._processing:
            return
        self._processing = True
        h = self._h11
        try:
            while True:
                exchange = self._exchange
                if exchange is None:
                    return
                try:
                    event = h.next_event()
                except h11.RemoteProtocolError as e:
                    self._protocol_error(exchange, e)
                    return
                kind = type(event)
                if kind is h11.Data:
                    exchange.data(bytes(event.data))  # type: ignore[union-attr]
                elif event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                elif kind is h11.Response:
                    self._head(exchange, event)  # type: ignore[arg-type]
                    if self._counting is not None or self._exchange is not exchange:
                        return
                elif kind is h11.EndOfMessage:
                    self._body_in(exchange)
                elif kind is h11.ConnectionClosed:
                    return
                # InformationalResponse (1xx): wait for the final answer.
        finally:
            self._processing = False
            reason, self._lost_reason = self._lost_reason, None
            if reason is not None:
                if self._exchange is not None:
                    self._end_at_close(self._exchange, reason)
                self.on_lost(self)

    def _head(self, exchange: _Exchange, event: h11.Response) -> None:
        headers = event.headers.raw_items()
        status = event.status_code
        length: int | None = None
        if exchange.method == b"HEAD" or status in _NO_BODY_STATUS:
            length = 0
        else:
            chunked = False
            for name, value in headers:
                lowered = name.lower()
                if lowered == b"content-length":
                    length = int(value)
                elif lowered == b"transfer-encoding":
                    chunked = True
            if chunked:
                length = None
        version = (1, 1) if event.http_version == b"1.1" else (1, 0)
        response = RawResponse(exchange, status, event.reason, version, headers, length)
        exchange.answered = True
        our_state = self._h11.our_state
        if length and (our_state is h11.DONE or our_state is h11.MUST_CLOSE):
            # h11 framed the head and found a Content-Length: the body is that many
            # bytes, counted here without a parser event (and a copy) per read.  The
            # connection gets a fresh h11 state for its next request (if it is kept:
            # h11 says MUST_CLOSE for Connection: close and HTTP/1.0 answers).
            keep_alive = our_state is h11.DONE
            rest = bytes(self._h11.trailing_data[0])
            key = self._head_key
            if key is not None and self._head_fed - len(rest) == len(key[3]):
                # h11 took exactly these bytes as the head: the same bytes after the
                # same request will mean the same (a server repeats its heads).
                remember_head(
                    key, (status, event.reason, version, tuple(headers), length, keep_alive)
                )
            self._start_counting(exchange, response, length, keep_alive, rest)
            return
        exchange.owner.response_received(response)

    def _start_counting(
        self,
        exchange: _Exchange,
        response: RawResponse,
        length: int,
        keep_alive: bool,
        rest: bytes,
    ) -> None:
        """Count the Content-Length body past the head; ``rest`` is what came with it."""
        self._keep_alive = keep_alive
        self._counting = length
        if length - len(rest) >= BIG_BODY and self._raw is not None:
            # A big body: read the socket in larger pieces (fewer reactor turns).
            self._big_reads = True
            self._raw.bufferSize = BIG_READ
        if len(rest) >= length:
            # The whole body came with the head: the exchange ends (and the
            # connection is free) before the owner hears of the response, so a
            # consumer attached from there (a redirect draining its body, a
            # read()) gets it all at once, without waiting for another read.
            self._counted(exchange, rest)
            exchange.owner.response_received(response)
            return
        exchange.owner.response_received(response)
        if rest and self._exchange is exchange and self._counting is not None:
            self._counted(exchange, rest)

    def _body_in(self, exchange: _Exchange) -> None:
        self._maybe_cycle()
        exchange.end(_DONE)

    def _maybe_cycle(self) -> None:
        """After a complete exchange, make the connection idle (or close it)."""
        exchange = self._exchange
        h = self._h11
        if exchange is None or h.their_state not in _COMPLETE:
            return
        if h.our_state is h11.SEND_BODY:
            # The answer came before the request body was all sent: give up the connection.
            if exchange.producer is not None:
                exchange.producer.stopProducing()
                exchange.producer = None
            self._exchange = None
            self.closing = True
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        if h.our_state not in _COMPLETE:
            return
        self._exchange = None
        self.completed += 1
        if self._reading_held:
            self._reading_held = False
            self.transport.resumeProducing()  # type: ignore[union-attr]
        if h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE:
            self.closing = True  # Connection: close, or HTTP/1.0
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        h.start_next_cycle()
        if not self.closing:
            self.on_idle(self)

    def _protocol_error(self, exchange: _Exchange, error: h11.RemoteProtocolError) -> None:
        self._exchange = None
        self.closing = True
        if not exchange.answered:
            text = str(error)
            if "buffer" in text.lower() and "long" in text.lower():
                message = f"response header fields exceed {self.max_header_bytes} bytes"
            else:
                message = f"bad response: {text}"
            exchange.owner.request_failed(Failure(URLError(message)), False)
        else:
            exchange.end(Failure(error))  # mapped to ContentTooShortError by the reader
        self.transport.abortConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = _DONE) -> None:
        """End the exchange in progress: a close-delimited body ends here, others fail."""
        self.lost = True
        exchange = self._exchange
        if exchange is not None:
            if exchange.producer is not None:
                exchange.producer.stopProducing()
                exchange.producer = None
            if not exchange.answered:
                self._exchange = None
                stale = self.completed > 0 and not exchange.got_bytes
                error = (
                    StaleConnection(f"kept-alive connection lost: {reason.value}")
                    if stale
                    else URLError(reason.value or "connection lost")
                )
                exchange.owner.request_failed(Failure(error), stale)
            elif self._processing:
                self._lost_reason = reason  # finished once the events in hand are handled
                return
            else:
                self._end_at_close(exchange, reason)
        self.on_lost(self)

    def _end_at_close(self, exchange: _Exchange, reason: Failure) -> None:
        if self._counting is None:
            # Let h11 see the end: a close-delimited body is complete now.
            self._h11.receive_data(b"")
            self._process()
        self._counting = None
        if self._exchange is exchange:
            self._exchange = None
            exchange.end(reason)

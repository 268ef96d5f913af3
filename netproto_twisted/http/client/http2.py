"""One HTTP/2 client connection: a Twisted protocol around the :mod:`h2` state machine.

:class:`HTTP2Connection` carries many requests at once, one stream each,
on one (TLS) connection; :mod:`h2` does the framing, HPACK and the state
of every stream.  Each request is answered with a
:class:`~netproto_twisted.http.client.http11.RawResponse` (the same object
the HTTP/1.1 connection hands out, ``version`` ``(2, 0)``), so the
opener's handlers, decoding, timeouts and the
:class:`~netproto_twisted.http.client.response.Response` work unchanged.

Flow control is backpressure:

* received DATA is acknowledged (a WINDOW_UPDATE for its stream) only as
  the body's consumer takes it, so a paused or absent consumer stalls its
  own stream after one stream window (:data:`DEFAULT_STREAM_WINDOW`) and
  leaves the others running (the connection window is that many times the
  stream limit, so paused streams never starve it);
* request bodies (bytes or an :class:`~twisted.web.iweb.IBodyProducer`)
  are sent as the server's send window allows; a producer is paused while
  its stream has more than :data:`_SEND_HIGH_WATER` bytes waiting;
* the connection registers with its transport as a producer: when the
  socket's send buffer is full (a server that sends PINGs or SETTINGS but
  reads none of our acknowledgements), reading stops too, so a flood of
  control frames cannot grow memory without bound.  h2 caps a header block
  at 64 CONTINUATION frames and checks :data:`max_header_list_size
  <DEFAULT_MAX_HEADER_BYTES>`.

Requests beyond the server's SETTINGS_MAX_CONCURRENT_STREAMS (and our own
``max_streams``) wait in line on the connection.  A GOAWAY retires the
connection: streams the server did not process (above its last stream
id) and requests still in line are reported as "stale" (the pool sends
them again, once, on a new connection when they are idempotent), the
others finish.  RST_STREAM fails its stream only (REFUSED_STREAM counts as
not processed).  A connection lost mid-body ends the body with the
reason, which the reader reports as
:class:`~netproto_twisted.http.client.errors.ContentTooShortError`.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer

from netproto_twisted.http.client.errors import URLError
from netproto_twisted.http.client.http2_streams import (
    HTTP2Response,
    StreamReset,
    _Stream,
    _StreamWriter,
)
from netproto_twisted.http.client.http11 import (
    DEFAULT_MAX_HEADER_BYTES,
    ExchangeOwner,
    StaleConnection,
)

__all__ = [
    "DEFAULT_MAX_STREAMS",
    "DEFAULT_STREAM_WINDOW",
    "HTTP2Connection",
    "HTTP2Response",
    "StreamReset",
]

_log = Logger()

#: Receive window of each stream: what one unread response may hold in memory.
DEFAULT_STREAM_WINDOW = 1 << 20
#: Streams open at once on one connection at most (the server may allow fewer).
DEFAULT_MAX_STREAMS = 100
#: Unsent request body bytes per stream above which its producer is paused.
_SEND_HIGH_WATER = 64 * 1024
_MAX_WINDOW = (1 << 31) - 1
_DONE = Failure(ResponseDone())
_NO_BODY_STATUS = frozenset({204, 304})
#: Fields that mean something only on an HTTP/1.1 connection (RFC 9113 section 8.2.2).
_HOP_BY_HOP = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)


class HTTP2Connection(Protocol):
    """An HTTP/2 client connection (see the module docstring).

    ``on_lost(conn)`` is called once the connection is gone.  The pool
    sends on it while :attr:`available`; it is never "idle" in the
    HTTP/1.1 sense (:attr:`reusable` is always false).
    """

    #: Never handed out as an idle HTTP/1.1 connection.
    reusable = False

    def __init__(
        self,
        on_lost: Callable[[Any], None],
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        stream_window: int = DEFAULT_STREAM_WINDOW,
        max_streams: int = DEFAULT_MAX_STREAMS,
        key: object = None,
        authority: bytes = b"",
    ) -> None:
        self.on_lost = on_lost
        self.key = key
        self.authority = authority
        self.max_header_bytes = max_header_bytes
        self.stream_window = stream_window
        self.max_streams = max_streams
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self._h2 = h2.connection.H2Connection(config=config)
        self._streams: dict[int, _Stream] = {}
        self._waiting: deque[_Stream] = deque()
        self._blocked: set[_Stream] = set()  # streams with body bytes waiting for a window
        self.completed = 0  #: streams finished on this connection
        self.lost = False
        self.closing = False
        self.goaway = False
        self._write_paused = False
        self._read_paused = False
        self._registered = False
        self._receiving = False  # handling a read: acknowledgements are written once, after

    # -- state ---------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """True while new requests may be sent on this connection."""
        return not (self.lost or self.closing or self.goaway)

    @property
    def active_streams(self) -> int:
        """Requests open or waiting in line on this connection."""
        return len(self._streams) + len(self._waiting)

    def close(self) -> None:
        """Say GOAWAY and close; streams still open fail."""
        self.closing = True
        if self.transport is None or self.lost:
            return
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.close_connection()
        self._flush_out()
        if self._streams or self._waiting:
            self.transport.abortConnection()  # type: ignore[attr-defined]
        else:
            self._lose()

    def _lose(self) -> None:
        """Close politely (a registered producer would hold the connection open)."""
        assert self.transport is not None
        if self._registered:
            self._registered = False
            self.transport.unregisterProducer()  # type: ignore[attr-defined]
        self.transport.loseConnection()

    # -- the transport -----------------------------------------------------------------

    def connectionMade(self) -> None:
        """Send the preface and our settings; open the connection window wide."""
        h = self._h2
        h.initiate_connection()
        h.update_settings(
            {
                h2.settings.SettingCodes.ENABLE_PUSH: 0,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.stream_window,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: self.max_header_bytes,
            }
        )
        connection_window = min(_MAX_WINDOW, self.stream_window * self.max_streams)
        extra = connection_window - h.inbound_flow_control_window
        if extra > 0:
            h.increment_flow_control_window(extra)
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        self._registered = True
        self._flush_out()

    def _flush_out(self) -> None:
        data = self._h2.data_to_send()
        if data and self.transport is not None and not self.lost:
            self.transport.write(data)

    # IPushProducer, for the transport: its send buffer is full, or has drained.
    def pauseProducing(self) -> None:
        """The socket's send buffer is full: stop reading (and sending bodies)."""
        self._write_paused = True
        if not self._read_paused and not self.lost:
            self._read_paused = True
            self.transport.pauseProducing()  # type: ignore[union-attr]
        for stream in self._streams.values():
            if stream.producer is not None and not stream.producer_paused:
                stream.producer_paused = True
                stream.producer.pauseProducing()

    def resumeProducing(self) -> None:
        """The send buffer drained: read again, send again."""
        self._write_paused = False
        if self._read_paused and not self.lost:
            self._read_paused = False
            self.transport.resumeProducing()  # type: ignore[union-attr]
        for stream in list(self._blocked):
            self.send_pending(stream)
        self._flush_out()

    def stopProducing(self) -> None:
        """The transport is going away (connectionLost follows)."""

    # -- sending -----------------------------------------------------------------------

    def request(
        self,
        owner: ExchangeOwner,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | IBodyProducer | None,
    ) -> None:
        """Send a request on a new stream (or queue it); ``owner`` hears of the outcome."""
        authority = self.authority
        fields: list[tuple[bytes, bytes]] = []
        for name, value in headers:
            lowered = name.lower()
            if lowered == b"host":
                authority = value
            elif lowered not in _HOP_BY_HOP and not (lowered == b"te" and value != b"trailers"):
                fields.append((lowered, value))
        if isinstance(body, bytes):
            fields.append((b"content-length", b"%d" % len(body)))
        elif body is not None and body.length is not UNKNOWN_LENGTH:
            fields.append((b"content-length", b"%d" % body.length))
        elif body is None and method in (b"POST", b"PUT", b"PATCH"):
            fields.append((b"content-length", b"0"))
        pseudo = [
            (b":method", method),
            (b":scheme", b"https"),
            (b":authority", authority),
            (b":path", target),
        ]
        stream = _Stream(self, owner, method, pseudo + fields, body)
        if not self.available:
            owner.request_failed(Failure(StaleConnection("HTTP/2 connection is closing")), True)
            return
        self._waiting.append(stream)
        self._open_waiting()

    def _can_open(self) -> bool:
        h = self._h2
        limit = min(self.max_streams, h.remote_settings.max_concurrent_streams)
        return h.open_outbound_streams < limit and len(self._streams) < limit

    def _open_waiting(self) -> None:
        while self._waiting and self.available and self._can_open():
            stream = self._waiting.popleft()
            self._open(stream)
        self._flush_out()

    def _open(self, stream: _Stream) -> None:
        h = self._h2
        body = stream.body
        stream.body = None  # a producer is held (stream.producer) only while it produces
        try:
            stream_id = h.get_next_available_stream_id()
            h.send_headers(stream_id, stream.headers, end_stream=body is None or body == b"")
        except (h2.exceptions.ProtocolError, ValueError) as e:
            stream.finished = True
            stream.owner.request_failed(Failure(URLError(f"cannot send the request: {e}")), False)
            return
        stream.stream_id = stream_id
        self._streams[stream_id] = stream
        stream.headers = []
        if body is None or body == b"":
            stream.body_complete = True
            return
        if isinstance(body, bytes):
            stream.outgoing.append(body)
            stream.outgoing_size = len(body)
            stream.body_complete = True
            self.send_pending(stream)
            return
        stream.producer = body
        try:
            started = body.startProducing(_StreamWriter(stream))
        except Exception:
            self._producer_failed(stream, Failure())
            return
        started.addCallbacks(
            lambda _: self._producer_done(stream),
            lambda f: self._producer_failed(stream, f),
        )

    def send_pending(self, stream: _Stream) -> None:
        """Send what the stream's body has queued, as far as the send window allows."""
        if stream.finished or self.lost or stream.stream_id == 0:
            return
        h = self._h2
        sid = stream.stream_id
        outgoing = stream.outgoing
        try:
            while outgoing and not self._write_paused:
                window = min(h.local_flow_control_window(sid), h.max_outbound_frame_size)
                if window <= 0:
                    break
                chunk = outgoing.popleft()
                if len(chunk) > window:
                    outgoing.appendleft(chunk[window:])
                    chunk = chunk[:window]
                stream.outgoing_size -= len(chunk)
                last = stream.body_complete and not outgoing
                h.send_data(sid, chunk, end_stream=last)
            if not outgoing and stream.body_complete and stream.producer is None:
                self._blocked.discard(stream)
            elif outgoing:
                self._blocked.add(stream)
        except h2.exceptions.StreamClosedError:
            outgoing.clear()
            stream.outgoing_size = 0
            self._blocked.discard(stream)
        producer = stream.producer
        if producer is not None:
            if stream.outgoing_size > _SEND_HIGH_WATER or self._write_paused:
                if not stream.producer_paused:
                    stream.producer_paused = True
                    producer.pauseProducing()
            elif stream.producer_paused:
                stream.producer_paused = False
                producer.resumeProducing()
        self._flush_out()

    def _producer_done(self, stream: _Stream) -> None:
        stream.producer = None
        if stream.finished or self.lost:
            return
        stream.body_complete = True
        if stream.outgoing:
            self.send_pending(stream)
            return
        try:
            self._h2.end_stream(stream.stream_id)
        except h2.exceptions.StreamClosedError:
            return
        self._flush_out()

    def _producer_failed(self, stream: _Stream, failure: Failure) -> None:
        stream.producer = None
        if stream.finished or self.lost:
            return
        self.cancel_stream(stream)
        error = failure.value or URLError("request body failed")
        self._fail_stream(stream, Failure(error), stale=False)

    # -- receiving ---------------------------------------------------------------------

    def acknowledge(self, stream: _Stream, size: int) -> None:
        """The consumer took ``size`` flow-controlled bytes: let the server send more."""
        if size and not self.lost and stream.stream_id:
            try:
                self._h2.acknowledge_received_data(size, stream.stream_id)
            except h2.exceptions.ProtocolError:
                return
            if not self._receiving:  # else flushed once the read is handled
                self._flush_out()

    def cancel_stream(self, stream: _Stream) -> None:
        """Reset one stream (its request was cancelled or its body abandoned)."""
        if stream.stream_id == 0:
            if stream in self._waiting:
                self._waiting.remove(stream)
            stream.finished = True
            return
        if stream.finished or self.lost:
            return
        stream.finished = True
        if stream.producer is not None:
            stream.producer.stopProducing()
            stream.producer = None
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self._h2.reset_stream(stream.stream_id, h2.errors.ErrorCodes.CANCEL)
        self._forget(stream)
        self._flush_out()

    def cancel_request(self, owner: ExchangeOwner) -> None:
        """Cancel the request sent for ``owner`` (the pool's cancellation)."""
        for stream in [*self._streams.values(), *self._waiting]:
            if stream.owner is owner:
                self.cancel_stream(stream)
                if stream.answered:
                    stream.end(Failure(StreamReset("the request was cancelled")))
                return

    def dataReceived(self, data: bytes) -> None:
        """Feed h2 and act on its events."""
        try:
            events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            self._protocol_error(e)
            return
        self._receiving = True
        try:
            self._handle(events)
        finally:
            self._receiving = False
        self._flush_out()

    def _handle(self, events: list[h2.events.Event]) -> None:
        for event in events:
            kind = type(event)
            if kind is h2.events.DataReceived:
                self._data(event)  # type: ignore[arg-type]
            elif kind is h2.events.ResponseReceived:
                self._head(event)  # type: ignore[arg-type]
            elif kind is h2.events.StreamEnded:
                self._ended(event.stream_id)  # type: ignore[attr-defined]
            elif kind is h2.events.StreamReset:
                self._reset(event)  # type: ignore[arg-type]
            elif kind is h2.events.WindowUpdated:
                self._window(event)  # type: ignore[arg-type]
            elif kind is h2.events.RemoteSettingsChanged:
                self._open_waiting()
            elif kind is h2.events.ConnectionTerminated:
                self._goaway(event)  # type: ignore[arg-type]
            if self.lost:
                return

    def _data(self, event: h2.events.DataReceived) -> None:
        stream = self._streams.get(event.stream_id or 0)
        size = event.flow_controlled_length or 0
        if stream is None:
            # A stream we reset: give the connection window back.
            if size:
                self._h2.acknowledge_received_data(size, event.stream_id or 0)
            return
        stream.got_bytes = True
        stream.data(bytes(event.data or b""), size)

    def _head(self, event: h2.events.ResponseReceived) -> None:
        stream = self._streams.get(event.stream_id or 0)
        if stream is None:
            return
        stream.got_bytes = True
        status = 0
        length: int | None = None
        fields: list[tuple[bytes, bytes]] = []
        for name, value in event.headers or ():
            name = bytes(name)
            value = bytes(value)
            if name[:1] == b":":
                if name == b":status":
                    status = int(value)
                continue
            if name == b"content-length":
                length = int(value)
            fields.append((name, value))
        if stream.method == b"HEAD" or status in _NO_BODY_STATUS:
            length = 0
        response = HTTP2Response(stream, status, fields, length)
        stream.answered = True
        stream.owner.response_received(response)

    def _ended(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        if stream.producer is not None or stream.outgoing:
            # Answered before the whole body went: stop sending it.
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self._h2.reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)
            if stream.producer is not None:
                stream.producer.stopProducing()
                stream.producer = None
        stream.finished = True
        self.completed += 1
        self._forget(stream)
        stream.end(_DONE)

    def _reset(self, event: h2.events.StreamReset) -> None:
        stream = self._streams.get(event.stream_id or 0)
        if stream is None:
            return
        code = event.error_code
        name = getattr(code, "name", str(code))
        refused = code == h2.errors.ErrorCodes.REFUSED_STREAM
        if stream.producer is not None:
            stream.producer.stopProducing()
            stream.producer = None
        if refused and not stream.answered:
            self._fail_stream(stream, Failure(StaleConnection("stream refused")), stale=True)
        else:
            self._fail_stream(stream, Failure(StreamReset(f"stream reset by the server: {name}")))
        self._open_waiting()

    def _window(self, event: h2.events.WindowUpdated) -> None:
        if event.stream_id:
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                self.send_pending(stream)
        else:
            for stream in list(self._blocked):
                self.send_pending(stream)

    def _goaway(self, event: h2.events.ConnectionTerminated) -> None:
        self.goaway = True
        last = event.last_stream_id if event.last_stream_id is not None else 0
        graceful = event.error_code == h2.errors.ErrorCodes.NO_ERROR
        waiting, self._waiting = self._waiting, deque()
        for stream in list(self._streams.values()):
            if stream.stream_id > last:
                self._fail_stream(
                    stream, Failure(StaleConnection("not processed (GOAWAY)")), stale=True
                )
            elif not graceful:
                code = getattr(event.error_code, "name", str(event.error_code))
                self._fail_stream(stream, Failure(StreamReset(f"GOAWAY {code}")))
        for stream in waiting:
            stream.finished = True
            stream.owner.request_failed(Failure(StaleConnection("connection retired")), True)
        if graceful and self._streams:
            # h2 treats a received GOAWAY as the end of the connection; the streams
            # the server did take are still answered, so let their frames in.
            self._h2.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
            return
        self._finish_if_done()

    def _forget(self, stream: _Stream) -> None:
        self._streams.pop(stream.stream_id, None)
        self._blocked.discard(stream)
        if self.goaway:
            self._finish_if_done()
        elif self._waiting:
            self._open_waiting()

    def _finish_if_done(self) -> None:
        if not self._streams and not self.lost and self.transport is not None:
            self.closing = True
            self._flush_out()
            self._lose()

    def _fail_stream(self, stream: _Stream, failure: Failure, stale: bool = False) -> None:
        stream.finished = True
        self._streams.pop(stream.stream_id, None)
        self._blocked.discard(stream)
        if not stream.answered:
            if isinstance(failure.value, StreamReset):
                failure = Failure(URLError(str(failure.value)))
            stream.owner.request_failed(failure, stale)
        else:
            stream.end(failure)

    def _protocol_error(self, error: h2.exceptions.ProtocolError) -> None:
        oversized = isinstance(error, h2.exceptions.DenialOfServiceError)
        if oversized and "header" in str(error).lower():
            message = f"response header fields exceed {self.max_header_bytes} bytes"
        else:
            message = f"bad HTTP/2 frame from the server: {error}"
        _log.info("HTTP/2 connection to {key} failed: {why}", key=self.key, why=message)
        self.closing = True
        self._flush_out()  # h2 queued a GOAWAY
        self._fail_all(URLError(message), StreamReset(message))
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def _fail_all(self, before_head: BaseException, after_head: BaseException) -> None:
        streams = list(self._streams.values())
        waiting, self._waiting = self._waiting, deque()
        self._streams.clear()
        self._blocked.clear()
        for stream in streams:
            if stream.producer is not None:
                stream.producer.stopProducing()
                stream.producer = None
            stream.finished = True
            if not stream.answered:
                stale = isinstance(before_head, StaleConnection) and not stream.got_bytes
                stream.owner.request_failed(Failure(before_head), stale)
            else:
                stream.end(Failure(after_head))
        for stream in waiting:
            stream.finished = True
            stream.owner.request_failed(Failure(StaleConnection("connection lost")), True)

    def connectionLost(self, reason: Failure = _DONE) -> None:
        """Fail every stream still open; tell the pool."""
        self.lost = True
        why = reason.value or "connection lost"
        if self.completed:
            before: BaseException = StaleConnection(f"HTTP/2 connection lost: {why}")
        else:
            before = URLError(why)
        self._fail_all(before, StreamReset(f"HTTP/2 connection lost: {why}"))
        self.on_lost(self)

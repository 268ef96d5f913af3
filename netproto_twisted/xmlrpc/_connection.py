"""One HTTP/1.1 connection of the XML-RPC client: a prebuilt request head, h11 reads the answer.

An RPC client sends the same request over and over, with only the body
(and its Content-Length) changing, so :class:`RPCConnection` writes a head
prebuilt once per endpoint (its header fields validated once, by building
h11's ``Request`` event) followed by the body, in one write, straight to
the socket when it is plain TCP and nothing is queued
(:func:`~netproto_twisted.core.net.write_now`).

The answer is read by :mod:`h11`, a fresh parser per answer: h11 lets a
server answer a client that has sent nothing yet (a server may answer a
request it has not read, say with a 400), so its state machine does not
need to be walked through the request this side sent.  h11 parses the
head and frames chunked and close-delimited bodies; a Content-Length body
is counted past the head, without a parser event per read, as
:mod:`netproto_twisted.http.client.http11` does.  Interim (1xx) answers are
skipped: for those alone, h11 is first shown a request.  The connection is
kept for the next call unless the answer is HTTP/1.0 or says
``Connection: close``.

The owner of a call is told what happened through :class:`CallOwner`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from typing import Protocol as TypingProtocol

import h11
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from netproto_twisted.core.net import raw_tcp_connection, write_now
from netproto_twisted.http.client.errors import URLError
from netproto_twisted.http.client.http11 import DEFAULT_MAX_HEADER_BYTES, StaleConnection
from netproto_twisted.xmlrpc.errors import BodyTooLarge

__all__ = ["CallOwner", "RPCConnection", "request_head"]

_CONNECTION_DONE = Failure(ConnectionDone())
#: An interim (1xx) answer first: h11 reads those only after a request it has seen.
_INTERIM = re.compile(rb"HTTP/1\.\d 1\d\d")


class CallOwner(TypingProtocol):
    """What a connection tells the sender of a call."""

    def answered(self, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        """The whole answer is in (``headers``: lower-cased names, the first value of each)."""

    def request_failed(self, failure: Failure, stale: bool) -> None:
        """No complete answer: ``stale`` when a reused connection died before answering."""


def request_head(target: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The head of a POST to ``target`` up to ``Content-Length: `` (the length and CRLFs follow).

    The fields are checked by building h11's ``Request`` event (which
    refuses CR, LF and NUL in names and values, and a missing Host).
    """
    h11.Request(method=b"POST", target=target, headers=[*headers, (b"Content-Length", b"0")])
    lines = [b"POST %s HTTP/1.1\r\n" % target]
    lines += [b"%s: %s\r\n" % (name, value) for name, value in headers]
    lines.append(b"Content-Length: ")
    return b"".join(lines)


def _primed(max_header_bytes: int, data: bytes) -> h11.Connection:
    """An h11 client that has sent a (bodiless) POST, fed ``data``: it accepts 1xx answers."""
    h = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_header_bytes)
    h.send(h11.Request(method=b"POST", target=b"/", headers=[(b"Host", b"h"), _NO_BODY]))
    h.send(h11.EndOfMessage())
    h.receive_data(data)
    return h


_NO_BODY = (b"Content-Length", b"0")


class RPCConnection(Protocol):
    """One persistent connection carrying one call at a time (see the module docstring).

    ``on_idle(conn)`` is called when an answer is in and the connection can
    carry another call; ``on_lost(conn)`` when it is gone.
    """

    def __init__(
        self,
        on_idle: Callable[[RPCConnection], None],
        on_lost: Callable[[RPCConnection], None],
        *,
        max_response: int,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    ) -> None:
        self.on_idle = on_idle
        self.on_lost = on_lost
        self.max_response = max_response
        self.max_header_bytes = max_header_bytes
        self.raw: Any = None  #: the plain TCP connection beneath, for write_now (or None)
        self.call: CallOwner | None = None
        self.lost = False
        self.closing = False
        self.completed = 0  #: answers read on this connection
        self._h11: h11.Connection | None = None
        self._got_bytes = False
        self._early: list[bytes] | None = None  # what came before the final head (for 1xx)
        self._counting: int | None = None  # bytes of a Content-Length body still to come
        self._parts: list[bytes] = []
        self._size = 0
        self._status = 0
        self._reason = ""
        self._headers: dict[str, str] = {}
        self._keep_alive = True

    def connectionMade(self) -> None:
        """Look up the plain TCP connection beneath once (``None`` for TLS: no direct writes)."""
        self.raw = raw_tcp_connection(self.transport)

    @property
    def reusable(self) -> bool:
        """True when the connection is open and idle."""
        return not self.lost and not self.closing and self.call is None

    def close(self) -> None:
        """Close the connection (at once when a call is in flight: its answer is unwanted)."""
        self.closing = True
        if self.transport is not None and not self.lost:
            if self.call is None:
                self.transport.loseConnection()
            else:
                self.transport.abortConnection()  # type: ignore[attr-defined]

    def request(self, call: CallOwner, head: bytes, body: bytes) -> None:
        """Send a POST: ``head`` from :func:`request_head`, then ``body``."""
        assert self.call is None
        self.call = call
        self._got_bytes = False
        self._early = []
        self._status = 0
        self._counting = None
        self._parts = []
        self._size = 0
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=self.max_header_bytes)
        write_now(self.transport, b"%s%d\r\n\r\n%s" % (head, len(body), body), self.raw)

    # -- reading ---------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Count a Content-Length body; give anything else to h11."""
        if self.call is None:
            # Nothing asked for: a server talking out of turn; this connection is done.
            self.closing = True
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self._got_bytes = True
        if self._counting is not None:
            self._count(data)
        else:
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        h = self._h11
        assert h is not None
        early = self._early
        if early is not None:
            early.append(data)
        h.receive_data(data)
        while self.call is not None:
            try:
                event = h.next_event()
            except h11.RemoteProtocolError as e:
                if early is not None and not self._status and _INTERIM.match(b"".join(early)):
                    h = self._h11 = _primed(self.max_header_bytes, b"".join(early))
                    self._early = early = None
                    continue
                text = str(e)
                if "buffer" in text.lower() and "long" in text.lower():
                    text = f"response header fields exceed {self.max_header_bytes} bytes"
                self._fail(URLError(f"bad response: {text}"))
                return
            kind = type(event)
            if kind is h11.Response:
                self._early = None
                if self._head(event):  # type: ignore[arg-type]
                    return
            elif kind is h11.Data:
                self._add(bytes(event.data))  # type: ignore[union-attr]
            elif kind is h11.EndOfMessage:
                self._complete(False)
                return
            else:  # NEED_DATA, PAUSED, ConnectionClosed
                return

    def _head(self, event: h11.Response) -> bool:
        """Take the head in; True when the rest is a counted body (h11 is done with)."""
        headers: dict[str, str] = {}
        length: int | None = None
        chunked = False
        keep_alive = event.http_version == b"1.1"
        for raw_name, value in event.headers.raw_items():
            name = raw_name.lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                keep_alive = False
            headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        self._status = event.status_code
        self._reason = event.reason.decode("latin-1")
        self._headers = headers
        self._keep_alive = keep_alive
        if event.status_code in (204, 304):
            length = 0
        if length is not None and length > self.max_response:
            self._fail(BodyTooLarge(self.max_response))
            return True
        if chunked or length is None:
            return False  # h11 frames it
        h = self._h11
        assert h is not None
        rest = bytes(h.trailing_data[0])
        self._h11 = None
        self._counting = length
        self._count(rest)
        return True

    def _count(self, data: bytes) -> None:
        left = self._counting
        assert left is not None
        size = len(data)
        if size < left:
            self._counting = left - size
            if data:
                self._parts.append(data)
            return
        self._counting = None
        extra = size > left
        self._parts.append(data[:left] if extra else data)
        self._complete(extra)

    def _add(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self.max_response:
            self._fail(BodyTooLarge(self.max_response))
            return
        self._parts.append(data)

    def _complete(self, extra: bool) -> None:
        call = self.call
        assert call is not None
        self.call = None
        self._h11 = None
        self.completed += 1
        parts = self._parts
        self._parts = []
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        # Taken before on_idle, which may send the next call on this connection at once.
        status, reason, headers = self._status, self._reason, self._headers
        if extra or not self._keep_alive:
            # More than the length said, or Connection: close / HTTP/1.0: this one is done.
            self.closing = True
            self.transport.loseConnection()  # type: ignore[union-attr]
        elif not self.closing:
            self.on_idle(self)
        call.answered(status, reason, headers, body)

    def _fail(self, error: BaseException) -> None:
        call = self.call
        self.call = None
        self.closing = True
        if self.transport is not None and not self.lost:
            self.transport.abortConnection()  # type: ignore[attr-defined]
        if call is not None:
            call.request_failed(Failure(error), False)

    def connectionLost(self, reason: Failure = _CONNECTION_DONE) -> None:
        """End a close-delimited answer here; fail a call still waiting for its answer."""
        self.lost = True
        call = self.call
        if call is not None:
            h = self._h11
            if h is not None and self._got_bytes and h.their_state is h11.SEND_BODY:
                self._feed(b"")  # a close-delimited body ends here (h11 says if it may)
            if self.call is call:
                self.call = None
                stale = self.completed > 0 and not self._got_bytes
                error: BaseException = (
                    StaleConnection(f"kept-alive connection lost: {reason.value}")
                    if stale
                    else reason.value or ConnectionDone()
                )
                call.request_failed(Failure(error), stale)
        self.on_lost(self)

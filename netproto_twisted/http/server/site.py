"""The web site: twisted.web's Site and HTTP channels with limits, error pages and mounts.

* :class:`HTTPLimits`: header size and count, the time a request's head may
  take (slowloris), keep-alive idle time, and the largest request body.
* :class:`HTTPSite`: a :class:`~twisted.web.server.Site` whose connections
  are HTTP/1.1 channels with those limits (and TCP_NODELAY), switching to
  HTTP/2 when TLS negotiates ``h2``; it writes a combined-format access log
  only when given a file, and its 500 page says nothing about the server
  unless debug mode is on.
* :class:`HTTPRequest`: refuses an over-long body with 413 as soon as its
  length is known (or, chunked, as soon as it passes the limit) -- before
  the body is buffered; the limit is the site's, or the resource's own
  (``max_request_body(request)``) when lower; over HTTP/1.1 and HTTP/2 it
  starts a resource that takes its body as it comes (``streams_body``)
  before the body.
* :class:`SiteRoot`: the resource tree's root: mounted resources (XML-RPC at
  ``/RPC2`` ...) looked up at request time, then ``/cgi-bin/``, then the
  static files, then the WSGI application.
"""

from __future__ import annotations

import contextlib
import inspect
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote_to_bytes

from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import IResource, NoResource, Resource
from twisted.web.server import Request, Site

from netproto_twisted.core._twisted_compat import http_channel_protocol
from netproto_twisted.http.server.debug import traceback_page
from netproto_twisted.http.server.request_body import RequestBody
from netproto_twisted.http.server.static import StaticFiles

__all__ = [
    "DEFAULT_HTTP_LIMITS",
    "GENERIC_ERROR_PAGE",
    "STREAM_THRESHOLD",
    "HTTPLimits",
    "HTTPRequest",
    "HTTPSite",
    "LimitedHTTPChannel",
    "SiteRoot",
]

_log = Logger(namespace="netproto.http")

#: What a client sees of a failure when debug mode is off.
GENERIC_ERROR_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head>"
    b"<body><h1>Internal Server Error</h1><p>The server could not complete the request."
    b"</p></body></html>\n"
)
_TOO_LARGE = b"request body too large\n"
#: Bodies up to this size are buffered whole before rendering, even for streaming resources.
STREAM_THRESHOLD = 64 * 1024
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
)


@dataclass(frozen=True)
class HTTPLimits:
    """What one HTTP client may send, and how slowly.

    :ivar max_header_bytes: the request line plus all header lines, in bytes (16 KiB).
    :ivar max_headers: header lines per request (100).
    :ivar header_timeout: seconds from a request's first line to the end of its headers
        (20): a client trickling its head (slowloris) gets 408 and is closed.
    :ivar idle_timeout: seconds a connection may stay silent (60).
    :ivar max_body: the largest request body accepted, in bytes (10 MiB); 413 beyond.
    """

    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    header_timeout: float = 20.0
    idle_timeout: float = 60.0
    max_body: int = 10 * 1024 * 1024


#: The defaults.
DEFAULT_HTTP_LIMITS = HTTPLimits()


class LimitedHTTPChannel(http.HTTPChannel):
    """twisted.web's HTTP/1.1 channel with our header limits, a head deadline and TCP_NODELAY."""

    def __init__(self, limits: HTTPLimits, clock: IReactorTime) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.maxHeaders = limits.max_headers
        self.totalHeadersSize = limits.max_header_bytes
        self.head_timeout = limits.header_timeout
        self.clock = clock
        self.head_deadline: IDelayedCall | None = None
        self.head_started: float | None = None
        self.request_line = b""

    local_address: Any = None
    peer_address: Any = None

    def getHost(self) -> Any:
        """The local address (looked up once per connection: twisted.web asks per request)."""
        if self.local_address is None:
            self.local_address = super().getHost()  # type: ignore[no-untyped-call]
        return self.local_address

    def getPeer(self) -> Any:
        """The peer's address (looked up once per connection)."""
        if self.peer_address is None:
            self.peer_address = super().getPeer()  # type: ignore[no-untyped-call]
        return self.peer_address

    def connectionMade(self) -> None:
        """Set TCP_NODELAY: a response is written whole, never worth delaying."""
        super().connectionMade()  # type: ignore[no-untyped-call]
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:
            with contextlib.suppress(OSError):  # a socket that is not TCP
                no_delay(True)

    def lineReceived(self, line: bytes) -> None:
        """Note when a request's head starts (its first line)."""
        if self.head_started is None and line:
            self.request_line = line
            self.head_started = self.clock.seconds()
            if self.head_deadline is None:
                self.head_deadline = self.clock.callLater(self.head_timeout, self._head_check)
        super().lineReceived(line)  # type: ignore[no-untyped-call]

    def allHeadersReceived(self) -> None:
        """The head is complete: no deadline until the next request's first line.

        A request whose resource takes its body as it comes (WSGI, CGI) is
        started now (see :meth:`HTTPRequest.start_streaming`).
        """
        self.head_started = None
        super().allHeadersReceived()  # type: ignore[no-untyped-call]
        request = self.requests[-1] if self.requests else None
        if isinstance(request, HTTPRequest):
            request.start_streaming()

    def _cancel_head_deadline(self) -> None:
        self.head_started = None
        if self.head_deadline is not None:
            if self.head_deadline.active():
                self.head_deadline.cancel()
            self.head_deadline = None

    def _head_check(self) -> None:
        """The timer: close if the current head is overdue, else wait for its own deadline.

        One timer serves the requests of a keep-alive connection in turn
        (not one scheduled and cancelled per request).
        """
        self.head_deadline = None
        if self.head_started is None:
            return
        left = self.head_started + self.head_timeout - self.clock.seconds()
        if left > 0:
            self.head_deadline = self.clock.callLater(left, self._head_check)
            return
        self.head_started = None
        _log.info("request head not complete in {seconds} s: closing", seconds=self.head_timeout)
        if self.transport is not None:
            self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Cancel the head deadline."""
        self._cancel_head_deadline()
        super().connectionLost(reason)  # type: ignore[no-untyped-call]


#: Whether twisted.web's Request takes ``parsePOSTFormSubmission`` (26.10 does).
_HAS_FORM_SWITCH = "parsePOSTFormSubmission" in inspect.signature(http.Request.__init__).parameters


class HTTPRequest(Request):
    """A request that refuses an oversized body early and renders failures safely.

    twisted.web's parse of a form body into ``request.args`` is off (it runs
    on the reactor thread over the whole body);
    :func:`~netproto_twisted.http.server.forms.form_from_request` parses with
    limits instead.
    """

    site: HTTPSite
    body_refused = False
    body_received = 0
    declared_length: int | None = 0
    #: The body goes to the resource as it comes (a :class:`RequestBody`).
    streaming = False
    stream_started = False
    body_complete = False
    finish_pending = False

    def __init__(self, channel: Any, *args: Any, **kwargs: Any) -> None:
        if _HAS_FORM_SWITCH:
            kwargs.setdefault("parsePOSTFormSubmission", False)
        super().__init__(channel, *args, **kwargs)  # type: ignore[no-untyped-call]

    @property
    def max_body(self) -> int:
        """The site's body limit (the site is known from the channel before ``process``)."""
        site = getattr(self.channel, "site", None)
        limits = getattr(site, "limits", DEFAULT_HTTP_LIMITS)
        return int(limits.max_body)

    #: The body limit of this request: the site's, or the resource's own if lower.
    body_limit: int | None = None
    head_looked_up = False
    head_resource: IResource | None = None
    #: An HTTP/2 stream's head is complete (see :meth:`parseCookies`).
    h2_head_done = False

    def _head_line(self) -> tuple[bytes, bytes, bytes] | None:
        """Method, URI and version from the head, before ``requestReceived`` has them."""
        channel: Any = self.channel
        if isinstance(channel, http.HTTPChannel):
            parts = getattr(channel, "request_line", b"").split()
            if len(parts) != 3:
                return None
            return parts[0], parts[1], parts[2]
        command, path = getattr(channel, "command", None), getattr(channel, "path", None)
        if not isinstance(command, bytes) or not isinstance(path, bytes):
            return None
        return command, path, b"HTTP/2"

    def head_resource_lookup(self) -> IResource | None:
        """The resource the head names, looked up once the head is in (``None`` if it cannot be).

        Used before the body: for a resource's own body limit
        (``max_request_body(request)``) and for a resource that takes the
        body as it comes (``streams_body(request)``).
        """
        if self.head_looked_up:
            return self.head_resource
        self.head_looked_up = True
        line = self._head_line()
        site = getattr(self.channel, "site", None)
        if line is None or site is None:
            return None
        command, uri, version = line
        self.method, self.uri, self.clientproto = command, uri, version
        self.path = uri.split(b"?", 1)[0]
        self.prepath = []
        self.postpath = [unquote_to_bytes(p) for p in self.path[1:].split(b"/")]
        try:
            self.head_resource = site.getResourceFor(self)
        except Exception:
            self.head_resource = None
        return self.head_resource

    def gotLength(self, length: int | None) -> None:
        """Refuse with 413 now if the declared length is over the limit.

        The limit is the site's, or the resource's own
        (``max_request_body(request)``, as XML-RPC has) when lower; the
        resource is looked up for that only when a body may come.
        """
        limit = self.max_body
        if length != 0:
            own = getattr(self.head_resource_lookup(), "max_request_body", None)
            if own is not None:
                limit = min(limit, int(own(self)))
        self.body_limit = limit
        if length is not None and length > limit:
            self._refuse_body()
            return
        self.declared_length = length
        super().gotLength(length)  # type: ignore[no-untyped-call]

    def parseCookies(self) -> None:
        """Parse cookies; on HTTP/2, also note that the stream's head is complete.

        twisted.web's HTTP/2 stream calls this once it has added the last
        header (on HTTP/1.1 the channel calls it before ``gotLength``).
        """
        super().parseCookies()  # type: ignore[no-untyped-call]
        if not isinstance(self.channel, http.HTTPChannel):
            self.h2_head_done = True

    def start_streaming(self) -> None:
        """Start now, before its body, a request whose resource takes the body as it comes.

        Called by the HTTP/1.1 channel once the head is in (and any ``100
        Continue`` sent), and for an HTTP/2 stream with its first DATA frame
        (the stream is then known to its connection and can answer).  Only a
        body of unknown length or over :data:`STREAM_THRESHOLD` bytes
        qualifies, and only for a resource whose ``streams_body(request)`` says
        yes; ``request.content`` is then a
        :class:`~netproto_twisted.http.server.request_body.RequestBody`.
        The response may be written before the body's end, but the request
        finishes (and an HTTP/1.1 connection reads the next one) only after it.
        On HTTP/2 the backpressure is the stream's flow-control window:
        a paused stream stops acknowledging DATA, so the client stops after
        one window.
        """
        length = self.declared_length
        if (
            self.body_refused
            or self.streaming
            or self.stream_checked
            or (length is not None and length <= STREAM_THRESHOLD)
        ):
            return
        self.stream_checked = True
        resource = self.head_resource_lookup()
        wants = getattr(resource, "streams_body", None)
        if wants is None or not wants(self):
            return
        channel: Any = self.channel
        site = getattr(channel, "site", None)
        call_from_thread = getattr(getattr(site, "clock", None), "callFromThread", None)
        if call_from_thread is None:
            return
        h1 = isinstance(channel, http.HTTPChannel)
        old = self.content
        self.content = RequestBody(
            channel.transport if h1 else channel,
            call_from_thread,
            length,
            set_timeout=channel.setTimeout if h1 else None,
        )
        if old is not None:
            old.close()
        self.streaming = True
        self.requestReceived(self.method, self.uri, self.clientproto)

    stream_checked = False

    def finish(self) -> None:
        """Finish; for a streamed body not yet all in, once it is (the rest is dropped)."""
        if self.streaming and not self.body_complete:
            if not self.finish_pending:
                self.finish_pending = True
                cast(RequestBody, self.content).discard()
            return
        super().finish()  # type: ignore[no-untyped-call]

    def handleContentChunk(self, data: bytes) -> None:
        """Count body bytes; refuse once over the limit (bodies of unknown length)."""
        if self.body_refused:
            return
        if self.h2_head_done and not self.stream_checked:
            self.start_streaming()
        self.body_received += len(data)
        limit = self.body_limit if self.body_limit is not None else self.max_body
        if self.body_received > limit:
            h2_streaming = self.streaming and not isinstance(self.channel, http.HTTPChannel)
            if self.startedWriting or h2_streaming:
                # A streamed request already answering (or, on HTTP/2, whose
                # reader must learn of it): cut it.
                _log.info("request body over {limit} bytes: closing", limit=limit)
                self.body_refused = True
                self._cut()
                return
            self._refuse_body()
            return
        super().handleContentChunk(data)  # type: ignore[no-untyped-call]

    def _cut(self) -> None:
        """Abandon the request: close an HTTP/1.x connection, reset an HTTP/2 stream."""
        channel: Any = self.channel
        if isinstance(channel, http.HTTPChannel):
            self.loseConnection()  # type: ignore[no-untyped-call]
            return
        # A stream ended by END_STREAM while the client still sends would leave
        # twisted.web unable to place the DATA frames: reset it (RST_STREAM).
        # In the next reactor turn: frames of this stream already parsed in
        # this one still go to it (and are dropped: the body is refused).
        clock = getattr(getattr(channel, "site", None), "clock", None)
        if clock is not None:
            clock.callLater(0, self._reset_stream, channel)

    def _reset_stream(self, channel: Any) -> None:
        if self.channel is None:  # the client reset it first, or the connection is gone
            return
        channel.abortConnection()
        reason = Failure(ConnectionLost("request body over the limit"))
        self.connectionLost(reason)  # type: ignore[no-untyped-call]

    def _refuse_body(self) -> None:
        self.body_refused = True
        if self.content is None:
            self.content = io.BytesIO()  # stays empty: the body is dropped as it comes
        self.requestHeaders.removeHeader(b"expect")  # no 100 Continue after the 413
        limit = self.body_limit if self.body_limit is not None else self.max_body
        _log.info("request body over {limit} bytes: 413", limit=limit)
        channel: Any = self.channel
        transport = getattr(channel, "transport", None)
        if isinstance(channel, http.HTTPChannel):
            if transport is not None:
                transport.write(
                    b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\n"
                    b"Content-Type: text/plain; charset=utf-8\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(_TOO_LARGE), _TOO_LARGE)
                )
                transport.loseConnection()
            return
        # An HTTP/2 stream: answered at once (in the next reactor turn: from
        # gotLength the stream is not yet known to its connection); its DATA is
        # dropped as it comes (the window stays open, nothing is kept), and the
        # request finishes when the client ends the stream (process()).
        clock = getattr(getattr(channel, "site", None), "clock", None)
        if clock is not None:
            clock.callLater(0, self._answer_too_large)

    def _answer_too_large(self) -> None:
        """Write the 413 (not finished: the stream ends after the client's END_STREAM)."""
        if self.startedWriting or self.finished or self.channel is None:
            return
        self.setResponseCode(http.REQUEST_ENTITY_TOO_LARGE)
        self.setHeader(b"content-type", b"text/plain; charset=utf-8")  # type: ignore[no-untyped-call]
        self.setHeader(b"content-length", b"%d" % len(_TOO_LARGE))  # type: ignore[no-untyped-call]
        self.write(_TOO_LARGE)  # type: ignore[no-untyped-call]

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """Take the request, without twisted.web's parse of a multipart body into ``args``.

        That parse runs on the reactor thread over the whole body (seconds for
        100,000 parts).  A Twisted without ``parsePOSTFormSubmission`` gets the
        header hidden from it, then put back.
        """
        if self.streaming:
            if not self.stream_started:  # from start_streaming: render now
                self.stream_started = True
            else:  # from the channel: the body is all in
                self.body_complete = True
                cast(RequestBody, self.content).end()
                if self.finish_pending and self.channel is not None:  # not lost meanwhile
                    self.finish_pending = False
                    super().finish()  # type: ignore[no-untyped-call]
                return
        kind = None if _HAS_FORM_SWITCH else self.requestHeaders.getRawHeaders(b"content-type")
        if kind and b"multipart/" in kind[0].lower():
            self.hidden_content_type = list(kind)
            self.requestHeaders.removeHeader(b"content-type")
        super().requestReceived(command, path, version)  # type: ignore[no-untyped-call]

    hidden_content_type: list[bytes] | None = None

    def process(self) -> None:
        """Process the request unless its body was refused."""
        if self.hidden_content_type is not None:
            self.requestHeaders.setRawHeaders(b"content-type", self.hidden_content_type)
            self.hidden_content_type = None
        if self.body_refused:
            if not isinstance(self.channel, http.HTTPChannel):
                self._answer_too_large()
                self.finish()
            return
        super().process()  # type: ignore[no-untyped-call]

    def processingFailed(self, reason: Failure) -> None:
        """Log the failure; answer 500 with a traceback page in debug mode, a bland page if not."""
        _log.failure("request {uri} failed", failure=reason, uri=self.uri)
        body = traceback_page(reason) if self.site.debug else GENERIC_ERROR_PAGE
        if self.startedWriting:
            self.finish()
            return
        self.setResponseCode(http.INTERNAL_SERVER_ERROR)
        self.setHeader(b"content-type", b"text/html; charset=utf-8")  # type: ignore[no-untyped-call]
        self.setHeader(b"content-length", b"%d" % len(body))  # type: ignore[no-untyped-call]
        self.write(body)  # type: ignore[no-untyped-call]
        self.finish()


class SiteRoot(Resource):
    """The root: mounts (read at request time), ``/cgi-bin/``, static files, then the WSGI app."""

    def __init__(
        self,
        mounts: Mapping[str, IResource] | None = None,
        *,
        cgi: IResource | None = None,
        static: StaticFiles | None = None,
        app: IResource | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.mounts: Mapping[str, IResource] = mounts if mounts is not None else {}
        self.cgi = cgi
        self.static = static
        self.app = app

    def getChildWithDefault(self, name: bytes, request: Any) -> IResource:
        """Pick the resource for the path's first segment (and any further mount segments)."""
        for path, resource in list(self.mounts.items()):
            segments = [s.encode("utf-8") for s in path.strip("/").split("/")]
            if segments[0] == name and request.postpath[: len(segments) - 1] == segments[1:]:
                for _ in segments[1:]:
                    request.prepath.append(request.postpath.pop(0))
                return resource
        if name == b"cgi-bin" and self.cgi is not None:
            return self.cgi
        request.postpath.insert(0, request.prepath.pop())
        if self.static is not None and (self.app is None or self.static.has(request)):
            return self.static
        if self.app is not None:
            return self.app
        return NoResource()

    def render(self, request: Any) -> bytes:
        """The root without a trailing slash: as ``/``."""
        return cast(bytes, self.getChildWithDefault(b"", request).render(request))


def _log_field(value: bytes | str | None) -> str:
    if value is None:
        return "-"
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return "".join(c if " " <= c < "\x7f" else f"\\x{ord(c):02x}" for c in text)


def combined_log_line(timestamp: str, request: Any) -> str:
    """One access-log line in the combined log format (Apache's and nginx's)."""
    peer = request.getClientAddress()
    host = getattr(peer, "host", "-")
    line = '{} - - {} "{} {} {}" {} {} "{}" "{}"'.format(
        host,
        timestamp,
        _log_field(request.method),
        _log_field(request.uri),
        _log_field(request.clientproto),
        request.code,
        request.sentLength or "-",
        _log_field(request.getHeader(b"referer")),
        _log_field(request.getHeader(b"user-agent")),
    )
    return line


class HTTPSite(Site):
    """A Site with :class:`HTTPLimits`, optional access log and debug pages."""

    requestFactory = HTTPRequest

    def __init__(
        self,
        resource: IResource,
        reactor: IReactorTime,
        *,
        limits: HTTPLimits = DEFAULT_HTTP_LIMITS,
        access_log: str | None = None,
        debug: bool = False,
    ) -> None:
        super().__init__(  # type: ignore[no-untyped-call]
            resource,
            logPath=access_log,
            timeout=limits.idle_timeout,
            reactor=reactor,
            logFormatter=combined_log_line,
        )
        self.limits = limits
        self.debug = debug
        self.displayTracebacks = False
        self.access_log = access_log
        self.clock = reactor

        def channel() -> Any:
            return http_channel_protocol(LimitedHTTPChannel(self.limits, self.clock))

        self.protocol = cast(Any, channel)  # type: ignore[method-assign]

    def log(self, request: Any) -> None:
        """Write the combined-format line only when an access log file was given."""
        if self.access_log is not None:
            super().log(request)

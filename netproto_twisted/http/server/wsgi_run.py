"""Running one WSGI request: the application in a pool thread, the response on the reactor.

twisted.web.wsgi makes two blocking round trips between the application's
thread and the reactor per response (``start_response``'s headers with the
first block, then each block), so a thread waits on the reactor twice for a
"hello" answer.  :class:`WSGIRun` makes none: the thread runs the
application, gathers its blocks, and hands them to the reactor without
waiting -- all at once when the application finishes within
:data:`FLUSH_BYTES`, or as it goes for a streaming one.  A streaming
application waits on the reactor only once more than :data:`MAX_IN_FLIGHT`
bytes are on their way, so that memory stays bounded.

A response handed over whole on an HTTP/1.x connection is written as one
block: its head is encoded in the application's thread (header lines
checked there: CR and LF become spaces, as twisted.web does), and the
reactor adds twisted.web's own lines (``Server``, ``Date``,
``Connection: close``), a ``Content-Length`` when the application gave none,
and writes it straight to the socket when nothing is queued.  Streaming
responses and HTTP/2 go through twisted.web's ``Request.write``.

The environment is PEP 3333's, built on the reactor thread from the
twisted.web request (``SCRIPT_NAME`` from the resource path that led here,
``PATH_INFO`` from the rest, percent-decoded, as latin-1 strings), from a
template of the keys that do not change and the connection's addresses,
looked up once per connection.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from twisted.logger import Logger
from twisted.web.server import Request

from netproto_twisted.http.server.whole import can_write_whole, write_whole

__all__ = ["FLUSH_BYTES", "MAX_IN_FLIGHT", "WSGIRun", "environ_template", "wsgi_environ"]

_log = Logger(namespace="netproto.http.wsgi")

#: Gathered bytes handed to the reactor at once.
FLUSH_BYTES = 64 * 1024
#: Bytes handed over but not yet written before the application's thread waits.
MAX_IN_FLIGHT = 1024 * 1024

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
#: Hands a call over to the reactor thread (``reactor.callFromThread`` or a batching one).
HandOver = Callable[..., None]

#: Request header names (bytes) to environment keys; bounded (names are the client's).
_ENV_KEYS: dict[bytes, str | None] = {}
_MAX_ENV_KEYS = 1000
#: The per-connection part of the environment, kept on the channel under this attribute.
_CONNECTION_KEYS = "netproto_wsgi_environ"


class _Errors:
    """``wsgi.errors``: text written goes to the log, one event per line."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = ""

    def write(self, text: str) -> None:
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            _log.warn("wsgi.errors: {line}", line=line)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self.pending:
            line, self.pending = self.pending, ""
            _log.warn("wsgi.errors: {line}", line=line)


def environ_template(*, multiprocess: bool = False) -> dict[str, Any]:
    """The keys of the environment that are the same for every request."""
    return {
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }


def _env_key(name: bytes) -> str | None:
    key = _ENV_KEYS.get(name, "")
    if key == "":
        text = name.decode("latin-1").upper().replace("-", "_")
        if text in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = text
        elif text == "PROXY":  # httpoxy: never HTTP_PROXY
            key = None
        else:
            key = "HTTP_" + text
        if len(_ENV_KEYS) < _MAX_ENV_KEYS:
            _ENV_KEYS[name] = key
    return key


def _connection_keys(request: Request) -> dict[str, str]:
    channel = request.channel
    keys: dict[str, str] | None = getattr(channel, _CONNECTION_KEYS, None)
    if keys is None:
        host = request.getHost()
        peer = request.getClientAddress()
        keys = {
            "SERVER_PORT": str(getattr(host, "port", "")),
            "REMOTE_ADDR": str(getattr(peer, "host", "")),
            "wsgi.url_scheme": "https" if request.isSecure() else "http",
        }
        keys["SERVER_NAME"] = str(getattr(host, "host", ""))
        # A channel that takes no attributes: looked up per request.
        with contextlib.suppress(AttributeError):
            setattr(channel, _CONNECTION_KEYS, keys)
    return keys


def wsgi_environ(
    request: Request, *, multiprocess: bool = False, template: dict[str, Any] | None = None
) -> dict[str, Any]:
    """PEP 3333's environment for a twisted.web request."""
    environ = (template or environ_template(multiprocess=multiprocess)).copy()
    environ.update(_connection_keys(request))
    prepath, postpath = request.prepath, request.postpath
    if prepath:
        environ["SCRIPT_NAME"] = "/" + b"/".join(prepath).decode("latin-1")
    else:
        environ["SCRIPT_NAME"] = ""
    environ["PATH_INFO"] = "/" + b"/".join(postpath).decode("latin-1") if postpath else ""
    environ["REQUEST_METHOD"] = request.method.decode("latin-1")
    environ["QUERY_STRING"] = request.uri.partition(b"?")[2].decode("latin-1")
    environ["SERVER_PROTOCOL"] = request.clientproto.decode("latin-1")
    content = request.content
    if content is not None:
        content.seek(0)
    environ["wsgi.input"] = content
    environ["wsgi.errors"] = _Errors()
    for name, values in request.requestHeaders.getAllRawHeaders():
        key = _env_key(name)
        if key is not None:
            environ[key] = (
                values[0].decode("latin-1")
                if len(values) == 1
                else ",".join(v.decode("latin-1") for v in values)
            )
    host_header = environ.get("HTTP_HOST")
    if host_header:
        environ["SERVER_NAME"] = _host_name(host_header)
    return environ


def _host_name(host: str) -> str:
    """The name part of a ``Host`` header (``[v6]:port``, ``name:port`` or a name)."""
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host
    return host.partition(":")[0]


def _clean(text: str) -> str:
    """CR and LF of a header line become spaces (no response splitting), as twisted.web does."""
    if "\r" in text or "\n" in text:
        return text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
    return text


#: twisted.web's own response headers an application may set instead.
_OWN_HEADERS = {"server": b"Server", "date": b"Date"}


class _Head:
    """A response head encoded in the application's thread."""

    __slots__ = ("code", "has_length", "lines", "reason", "skip")

    def __init__(self, status: str, headers: list[tuple[str, str]]) -> None:
        code, _, reason = status.partition(" ")
        self.code = int(code)
        self.reason = _clean(reason).encode("latin-1")
        self.has_length = False
        skip: set[bytes] = set()
        parts = []
        for name, value in headers:
            lower = name.lower()
            if lower == "content-length":
                self.has_length = True
            elif lower in _OWN_HEADERS:  # the application's Server or Date replaces ours
                skip.add(_OWN_HEADERS[lower])
            parts.append(f"{_clean(name)}: {_clean(value)}\r\n")
        self.lines = "".join(parts).encode("latin-1")
        self.skip = frozenset(skip)


class WSGIRun:
    """One request through one application call.

    ``hand_over`` runs a call on the reactor thread (``reactor.callFromThread``
    by default).  Call :meth:`finished` when the request is done or lost
    (``request.notifyFinish()``'s result, success or failure).
    """

    def __init__(
        self,
        reactor: Any,
        request: Request,
        app: Callable[..., Any],
        environ: dict[str, Any],
        hand_over: HandOver | None = None,
    ) -> None:
        self.reactor = reactor
        self.request = request
        self.app = app
        self.environ = environ
        self.hand_over: HandOver = hand_over or reactor.callFromThread
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.headers_sent = False  # in the application's thread: headers handed over
        self.gone = False  # on the reactor: the client went away
        self.in_flight = 0
        self.lock = threading.Lock()
        self.drained: threading.Event | None = None  # made once a thread must wait
        self.pending: list[bytes] = []
        self.pending_size = 0

    def finished(self, result: Any) -> Any:
        """The request is done; if it failed (the client went away), stop the application."""
        if result is not None:  # a Failure: the connection was lost
            with self.lock:
                self.gone = True
                if self.drained is not None:
                    self.drained.set()
        return None

    # -- in the application's thread -------------------------------------------------------

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: _ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        """PEP 3333's ``start_response``."""
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise RuntimeError("start_response called twice without exc_info")
        if not isinstance(status, str) or not status[:3].isdigit():
            raise TypeError(f"bad WSGI status {status!r}")
        for name, value in headers:
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(f"WSGI header {name!r}: {value!r} is not two strings")
        self.status = status
        self.headers = list(headers)
        return self.write

    def write(self, data: bytes) -> None:
        """The ``write`` callable: queue ``data`` (handed over at once)."""
        self._add(data)
        self._flush(final=False)

    def _add(self, data: bytes) -> None:
        if not isinstance(data, bytes):
            raise TypeError(f"WSGI body blocks must be bytes, not {type(data).__name__}")
        if self.status is None:
            raise RuntimeError("the application sent a body before start_response")
        if data:
            self.pending.append(data)
            self.pending_size += len(data)

    def _flush(self, final: bool) -> None:
        chunks, size = self.pending, self.pending_size
        self.pending, self.pending_size = [], 0
        if final and not self.headers_sent and self.status is not None:
            # The whole response at once: its head is encoded here, off the reactor.
            head = _Head(self.status, self.headers)
            self.headers_sent = True
            self.hand_over(self._deliver_whole, head, chunks)
            return
        drained = None
        with self.lock:
            self.in_flight += size
            if self.in_flight > MAX_IN_FLIGHT and not self.gone:
                if self.drained is None:
                    self.drained = threading.Event()
                drained = self.drained
                drained.clear()
        status, headers = (None, None) if self.headers_sent else (self.status, self.headers)
        self.headers_sent = True
        self.hand_over(self._deliver, status, headers, chunks, size, final)
        if drained is not None:
            drained.wait()

    def run(self) -> None:
        """Call the application and hand its response over (the pool thread's job)."""
        try:
            result = self.app(self.environ, self.start_response)
            # A list's blocks all exist already: gather them.  An iterator's
            # next block may be slow to come (server-sent events), so each of
            # its blocks is handed over at once (PEP 3333: no delay).
            gather = isinstance(result, (list, tuple))
            try:
                for block in result:
                    self._add(block)
                    if not gather or self.pending_size >= FLUSH_BYTES:
                        self._flush(final=False)
                    if self.gone:
                        break
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            if self.status is None:
                raise RuntimeError("the application returned without calling start_response")
            self._flush(final=True)
        except BaseException:
            self.hand_over(self._fail, sys.exc_info(), self.headers_sent)

    # -- on the reactor ----------------------------------------------------------------------

    def _deliver_whole(self, head: _Head, chunks: list[bytes]) -> None:
        """Write a whole response; on HTTP/1.x as one block of bytes."""
        if self.gone:
            return
        request = self.request
        if not can_write_whole(request):
            headers = None if request.startedWriting else self.headers
            self._deliver(self.status, headers, chunks, 0, True)
            return
        write_whole(
            request,
            head.code,
            head.reason,
            head.lines,
            chunks[0] if len(chunks) == 1 else b"".join(chunks),
            has_length=head.has_length,
            skip=head.skip,
        )

    def _deliver(
        self,
        status: str | None,
        headers: list[tuple[str, str]] | None,
        chunks: list[bytes],
        size: int,
        final: bool,
    ) -> None:
        with self.lock:
            self.in_flight -= size
            if self.in_flight <= MAX_IN_FLIGHT and self.drained is not None:
                self.drained.set()
        if self.gone:
            return
        request = self.request
        if status is not None and headers is not None:
            code, _, reason = status.partition(" ")
            request.setResponseCode(int(code), reason.encode("latin-1") or None)
            raw = request.responseHeaders
            for name, value in headers:
                raw.addRawHeader(name.encode("latin-1"), value.encode("latin-1"))
        if chunks:
            request.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if final:
            request.finish()

    def _fail(self, exc_info: _ExcInfo, headers_sent: bool) -> None:
        _log.failure(
            "WSGI application failed on {uri}", failure=_failure(exc_info), uri=self.request.uri
        )
        if self.gone:
            return
        request = self.request
        if headers_sent or request.startedWriting:
            # Part of the response went out: the client must see it cut short.
            transport = getattr(request.channel, "transport", None)
            if transport is not None:
                transport.loseConnection()
            return
        request.processingFailed(_failure(exc_info))


def _failure(exc_info: _ExcInfo) -> Any:
    from twisted.python.failure import Failure

    return Failure(exc_info[1], exc_info[0], exc_info[2])

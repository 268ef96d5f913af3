"""Running one WSGI request: the application in a pool thread, the response on the reactor.

twisted.web.wsgi makes two blocking round trips between the application's
thread and the reactor per response (``start_response``'s headers with the
first block, then each block), so a thread waits on the reactor twice for a
"hello" answer.  :class:`WSGIRun` makes none: the thread runs the
application, gathers its blocks, and hands them to the reactor with
``callFromThread`` without waiting -- all at once when the application
finishes within :data:`FLUSH_BYTES`, or as it goes for a streaming one.  A
streaming application waits on the reactor only once more than
:data:`MAX_IN_FLIGHT` bytes are on their way, so that memory stays bounded.

The environment is PEP 3333's, built on the reactor thread from the
twisted.web request (``SCRIPT_NAME`` from the resource path that led here,
``PATH_INFO`` from the rest, percent-decoded, as latin-1 strings).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from twisted.logger import Logger
from twisted.web.server import Request

__all__ = ["FLUSH_BYTES", "MAX_IN_FLIGHT", "WSGIRun", "wsgi_environ"]

_log = Logger(namespace="netproto.http.wsgi")

#: Gathered bytes handed to the reactor at once.
FLUSH_BYTES = 64 * 1024
#: Bytes handed over but not yet written before the application's thread waits.
MAX_IN_FLIGHT = 1024 * 1024

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class _Errors:
    """``wsgi.errors``: text written goes to the log, one event per line."""

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


def wsgi_environ(request: Request, *, multiprocess: bool = False) -> dict[str, Any]:
    """PEP 3333's environment for a twisted.web request."""
    prepath, postpath = request.prepath or [], request.postpath or []
    script = b"/".join(prepath)
    script_name = ("/" + script.decode("latin-1")) if script else ""
    path_info = "/" + b"/".join(postpath).decode("latin-1") if postpath else ""
    host = request.getHost()
    peer = request.getClientAddress()
    content = request.content
    if content is not None:
        content.seek(0)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method.decode("latin-1"),
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": request.uri.partition(b"?")[2].decode("latin-1"),
        "SERVER_NAME": request.getRequestHostname().decode("latin-1"),
        "SERVER_PORT": str(getattr(host, "port", "")),
        "SERVER_PROTOCOL": request.clientproto.decode("latin-1"),
        "REMOTE_ADDR": str(getattr(peer, "host", "")),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if request.isSecure() else "http",
        "wsgi.input": content,
        "wsgi.errors": _Errors(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }
    for name, values in request.requestHeaders.getAllRawHeaders():
        key = name.decode("latin-1").upper().replace("-", "_")
        value = ",".join(v.decode("latin-1") for v in values)
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        elif key != "PROXY":
            environ["HTTP_" + key] = value
    return environ


class WSGIRun:
    """One request through one application call."""

    def __init__(
        self, reactor: Any, request: Request, app: Callable[..., Any], environ: dict[str, Any]
    ) -> None:
        self.reactor = reactor
        self.request = request
        self.app = app
        self.environ = environ
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.headers_sent = False  # in the application's thread: headers handed over
        self.gone = False  # on the reactor: the client went away
        self.in_flight = 0
        self.lock = threading.Lock()
        self.drained = threading.Event()
        self.pending: list[bytes] = []
        self.pending_size = 0
        request.notifyFinish().addErrback(self._client_gone)

    def _client_gone(self, _: Any) -> None:
        self.gone = True
        self.drained.set()

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
        with self.lock:
            self.in_flight += size
            must_wait = self.in_flight > MAX_IN_FLIGHT
            if must_wait:
                self.drained.clear()
        status, headers = (None, None) if self.headers_sent else (self.status, self.headers)
        self.headers_sent = True
        self.reactor.callFromThread(self._deliver, status, headers, chunks, size, final)
        if must_wait:
            self.drained.wait()

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
            self.reactor.callFromThread(self._fail, sys.exc_info(), self.headers_sent)

    # -- on the reactor ----------------------------------------------------------------------

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
            if self.in_flight <= MAX_IN_FLIGHT:
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

"""CGI/1.1 (RFC 3875) scripts from one directory, run without a shell, with limits.

:class:`CGIDirectory` is a leaf resource (mounted at ``/cgi-bin/`` by the
daemon).  ``/cgi-bin/NAME/more/path?q`` runs the executable file ``NAME`` of
the directory (``spawnProcess``, no shell) with the meta-variables of RFC
3875 section 4.1 in its environment and ``/more/path`` as ``PATH_INFO``.

* The request body is fed to the script's stdin as it arrives when its
  length is declared and over 64 KiB (a full pipe pauses the client:
  :class:`~netproto_twisted.http.server.request_body.RequestBody`; HTTP/1.1
  and HTTP/2 alike).  A body of unknown length (chunked, or HTTP/2 without
  ``content-length``) is spooled first into twisted.web's unlinked temporary
  file, counted against the site's body limit as it comes (413 once past
  it, so the spool is bounded), and the script starts with
  ``CONTENT_LENGTH`` set to its size: RFC 3875 has the script learn the
  body's length before it reads, and scripts that read exactly
  ``CONTENT_LENGTH`` bytes (as ``cgi.FieldStorage`` did) rely on it.  A
  small body is written from memory; neither is ever read whole.
* The script's output is streamed to the client with backpressure; its
  header block is parsed (``Status``, ``Location``, ``Content-Type`` and the
  rest).  A script named ``nph-*`` writes the whole response itself: over
  HTTP/1.x its output goes to the client untouched and the connection
  closes after it; over HTTP/2 its status line and headers are read as a
  CGI header block would be.
* Limits: ``timeout`` seconds per run and ``max_output`` bytes; a script
  that exceeds one, exits without a complete header block or writes a bad
  one is killed (SIGKILL) and answered with 502 (if nothing was sent yet)
  plus one log line naming the script and the reason.
"""

from __future__ import annotations

import contextlib
import os
import stat
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, error
from twisted.internet.interfaces import IDelayedCall, IReactorProcess, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.protocols.basic import FileSender
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from netproto_twisted.http.server.paths import safe_segments
from netproto_twisted.http.server.request_body import RequestBody

__all__ = [
    "DEFAULT_CGI_OUTPUT",
    "DEFAULT_CGI_TIMEOUT",
    "CGIDirectory",
    "CGIRun",
    "CGIService",
    "cgi_environ",
]

_log = Logger(namespace="netproto.http.cgi")

#: Seconds a script may run.
DEFAULT_CGI_TIMEOUT = 30.0
#: Bytes a script may write (headers and body).
DEFAULT_CGI_OUTPUT = 100 * 1024 * 1024
#: The longest header block a script may write.
MAX_CGI_HEADER = 64 * 1024
#: Bytes of a script's stderr kept for the log.
MAX_STDERR_LOGGED = 4096
_SERVER_SOFTWARE = "netproto_twisted"
_BAD_GATEWAY_BODY = b"bad gateway: the script failed\n"
_SKIPPED_HEADERS = {"proxy", "content-type", "content-length"}


class CGIDirectory(Resource):
    """Run the executables of ``directory`` as CGI scripts."""

    isLeaf = True

    def __init__(
        self,
        directory: str | os.PathLike[str],
        reactor: Any,
        *,
        timeout: float = DEFAULT_CGI_TIMEOUT,
        max_output: int = DEFAULT_CGI_OUTPUT,
        mount: str = "/cgi-bin",
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.directory = os.path.realpath(os.fspath(directory))
        self.reactor: IReactorProcess = reactor
        self.clock: IReactorTime = reactor
        self.timeout = timeout
        self.max_output = max_output
        self.mount = mount.rstrip("/")
        #: The runs not ended yet.
        self.runs: set[CGIRun] = set()

    def stop_all(self) -> defer.Deferred[None]:
        """Kill every running script; fires once all have ended."""
        waits = [run.ended for run in self.runs]
        for run in list(self.runs):
            run.stopProducing()
        return defer.gatherResults(waits).addCallback(lambda _: None)

    def streams_body(self, request: Request) -> bool:
        """A script's stdin gets the body as it arrives when its length is declared.

        (``CONTENT_LENGTH`` must be set before the script starts; a chunked
        body is spooled first and measured.)
        """
        return getattr(request, "declared_length", None) is not None

    def render(self, request: Request) -> bytes | int:
        """Find the script named by the path's first segment and run it."""
        segments = safe_segments(request.postpath or [])
        if not segments or not segments[0]:
            return _error(request, http.NOT_FOUND, b"no such script\n")
        name = segments[0]
        script = os.path.join(self.directory, name)
        try:
            st = os.stat(script)
        except OSError:
            return _error(request, http.NOT_FOUND, b"no such script\n")
        real = os.path.realpath(script)
        if (
            not stat.S_ISREG(st.st_mode)
            or not os.access(script, os.X_OK)
            or os.path.dirname(real) != self.directory
        ):
            return _error(request, http.FORBIDDEN, b"not an executable script\n")
        path_info = "/" + "/".join(segments[1:]) if len(segments) > 1 else ""
        env = cgi_environ(request, f"{self.mount}/{name}", path_info, self.directory)
        run = CGIRun(request, name, self.clock, self.timeout, self.max_output)
        self.runs.add(run)
        run.ended.addBoth(lambda _: self.runs.discard(run))
        self.reactor.spawnProcess(run, real, [real], env, self.directory)
        return NOT_DONE_YET


def _error(request: Request, code: int, text: bytes) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"content-length", b"%d" % len(text))
    return text


def cgi_environ(request: Request, script_name: str, path_info: str, root: str) -> dict[str, str]:
    """The RFC 3875 meta-variables for ``request`` (plus ``HTTP_*`` for its headers)."""
    host = request.getHost()
    peer = request.getClientAddress()
    query = request.uri.partition(b"?")[2]
    env = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": _SERVER_SOFTWARE,
        "SERVER_PROTOCOL": request.clientproto.decode("latin-1"),
        "SERVER_NAME": request.getRequestHostname().decode("latin-1"),
        "SERVER_PORT": str(getattr(host, "port", "")),
        "REQUEST_METHOD": request.method.decode("latin-1"),
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": query.decode("latin-1"),
        "REMOTE_ADDR": str(getattr(peer, "host", "")),
        "REMOTE_HOST": str(getattr(peer, "host", "")),
        "REQUEST_URI": request.uri.decode("latin-1"),
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HTTPS": "on" if request.isSecure() else "off",
    }
    if path_info:
        env["PATH_TRANSLATED"] = os.path.join(root, path_info.lstrip("/"))
    content_type = request.getHeader(b"content-type")
    if content_type is not None:
        env["CONTENT_TYPE"] = content_type.decode("latin-1")
    content = request.content
    if isinstance(content, RequestBody):
        env["CONTENT_LENGTH"] = str(content.length or 0)
    elif content is not None:
        length = content.seek(0, os.SEEK_END)
        content.seek(0)
        if length or request.method in (b"POST", b"PUT", b"PATCH"):
            env["CONTENT_LENGTH"] = str(length)
    authorization = request.getHeader(b"authorization")
    if authorization is not None:
        env["AUTH_TYPE"] = authorization.split(b" ", 1)[0].decode("latin-1")
    for name, values in request.requestHeaders.getAllRawHeaders():
        key = name.decode("latin-1").lower()
        if key in _SKIPPED_HEADERS or key == "authorization":
            continue
        env["HTTP_" + key.upper().replace("-", "_")] = ", ".join(
            v.decode("latin-1") for v in values
        )
    return env


class CGIRun(ProcessProtocol):
    """One run of a script: feeds the body in, streams the output out, enforces the limits."""

    def __init__(
        self, request: Request, name: str, clock: IReactorTime, timeout: float, max_output: int
    ) -> None:
        self.request = request
        self.name = name
        self.max_output = max_output
        self.nph = name.startswith("nph-")
        self.raw = self.nph and isinstance(request.channel, http.HTTPChannel)
        self.head = b""
        self.in_head = not self.raw
        self.output = 0
        self.stderr = b""
        self.failed_reason: str | None = None
        self.finished = False
        self.clock = clock
        self.deadline: IDelayedCall | None = clock.callLater(timeout, self._expired, timeout)
        #: Fires once the process has ended.
        self.ended: defer.Deferred[None] = defer.Deferred()
        request.notifyFinish().addErrback(self._client_gone)

    # -- stdin -----------------------------------------------------------------------------

    def connectionMade(self) -> None:
        """Register for backpressure and start feeding the request body to stdin."""
        self.request.registerProducer(self, True)
        content = self.request.content
        if content is None:
            self.transport.closeStdin()  # type: ignore[union-attr]
            return
        if isinstance(content, RequestBody):  # the body as it arrives
            content.pipe_to(self.transport, lambda: self._stdin_done(None))
            return
        content.seek(0)
        sender = FileSender()
        d = sender.beginFileTransfer(content, self.transport)
        d.addBoth(self._stdin_done)

    def _stdin_done(self, _: Any) -> None:
        if self.transport is not None:
            with contextlib.suppress(OSError, error.ProcessExitedAlready):
                self.transport.closeStdin()

    # -- backpressure (the request pauses us) -------------------------------------------------

    def pauseProducing(self) -> None:
        """The client is slow: stop reading the script's stdout."""
        if self.transport is not None:
            self.transport.pauseProducing()  # type: ignore[attr-defined]

    def resumeProducing(self) -> None:
        """Read the script's stdout again."""
        if self.transport is not None:
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def stopProducing(self) -> None:
        """The response is abandoned: kill the script."""
        self._kill()

    # -- output ----------------------------------------------------------------------------

    def outReceived(self, data: bytes) -> None:
        """Parse the header block, then pass the body through."""
        if self.failed_reason is not None or self.finished:
            return
        self.output += len(data)
        if self.output > self.max_output:
            self._fail(f"wrote more than {self.max_output} bytes")
            return
        if self.raw:
            self._raw_write(data)
            return
        if self.in_head:
            self.head += data
            end, sep = _head_end(self.head)
            if end < 0:
                if len(self.head) > MAX_CGI_HEADER:
                    self._fail("header block too long")
                return
            head, data = self.head[:end], self.head[end + len(sep) :]
            self.head = b""
            self.in_head = False
            if not self._apply_head(head):
                return
        if data:
            self.request.write(data)

    def _raw_write(self, data: bytes) -> None:
        transport = getattr(self.request.channel, "transport", None)
        if transport is not None:
            transport.write(data)

    def _apply_head(self, head: bytes) -> bool:
        if self.nph:  # HTTP/2: the status line becomes the status
            first, _, head = head.partition(b"\n")
            fields = first.split(None, 2)
            if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
                self._fail("bad NPH status line")
                return False
            self.request.setResponseCode(int(fields[1]))
        try:
            message = BytesHeaderParser(policy=compat32).parsebytes(head.replace(b"\r\n", b"\n"))
        except Exception:
            self._fail("unreadable header block")
            return False
        if message.defects or not message.keys():
            self._fail("malformed header block")
            return False
        self.request.defaultContentType = None
        status_set = False
        for key, value in message.items():
            lower = key.lower()
            raw = value.encode("latin-1", "replace").strip()
            if lower == "status":
                code = raw[:3]
                if not code.isdigit():
                    self._fail(f"bad Status header {value!r}")
                    return False
                self.request.setResponseCode(int(code), raw[4:] or None)
                status_set = True
            elif lower in ("server", "date"):
                continue
            else:
                if (
                    lower == "location"
                    and not status_set
                    and raw.startswith((b"http:", b"https:"))
                ):
                    self.request.setResponseCode(http.FOUND)
                self.request.responseHeaders.addRawHeader(key.encode("latin-1"), raw)
        return True

    def errReceived(self, data: bytes) -> None:
        """Keep the start of the script's stderr for the log."""
        if len(self.stderr) < MAX_STDERR_LOGGED:
            self.stderr += data[: MAX_STDERR_LOGGED - len(self.stderr)]

    # -- the end -------------------------------------------------------------------------

    def processEnded(self, reason: Failure) -> None:
        """Finish the response, or answer 502 when the script never produced one."""
        self._cancel_deadline()
        self.ended.callback(None)
        code = getattr(reason.value, "exitCode", None)
        if self.stderr:
            _log.warn(
                "CGI {name} stderr: {text}",
                name=self.name,
                text=self.stderr.decode("utf-8", "replace").rstrip(),
            )
        if self.finished:
            return
        if self.failed_reason is None and self.in_head:
            self._fail(f"ended (exit status {code}) before a complete header block")
            return
        if self.failed_reason is None and code:
            _log.warn("CGI {name} exited with status {code}", name=self.name, code=code)
        self._end()

    def _expired(self, timeout: float) -> None:
        self.deadline = None
        self._fail(f"ran longer than {timeout} s")

    def _fail(self, reason: str) -> None:
        if self.failed_reason is not None:
            return
        self.failed_reason = reason
        _log.error(
            "CGI {name} {uri}: {reason}", name=self.name, uri=self.request.uri, reason=reason
        )
        self._kill()
        if self.finished:
            return
        if not self.request.startedWriting and not self.raw:
            self.request.setResponseCode(http.BAD_GATEWAY)
            self.request.responseHeaders.removeHeader(b"location")
            self.request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            self.request.setHeader(b"content-length", b"%d" % len(_BAD_GATEWAY_BODY))
            self.request.write(_BAD_GATEWAY_BODY)
        elif not self.raw:
            # Part of the body went out: the client must see the response as cut short.
            transport = getattr(self.request.channel, "transport", None)
            self.finished = True
            self.request.unregisterProducer()
            if transport is not None:
                transport.loseConnection()
            return
        self._end()

    def _end(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.request.unregisterProducer()
        if self.raw:
            transport = getattr(self.request.channel, "transport", None)
            if transport is not None:
                transport.loseConnection()
            return
        self.request.finish()

    def _client_gone(self, _: Failure) -> None:
        self.finished = True
        self._kill()

    def _cancel_deadline(self) -> None:
        if self.deadline is not None and self.deadline.active():
            self.deadline.cancel()
        self.deadline = None

    def _kill(self) -> None:
        self._cancel_deadline()
        if self.transport is not None:
            with contextlib.suppress(OSError, error.ProcessExitedAlready):
                self.transport.signalProcess("KILL")


class CGIService(Service):
    """Kills the scripts still running when the daemon stops, and waits for them."""

    def __init__(self, directory: CGIDirectory) -> None:
        self.directory = directory

    def stopService(self) -> defer.Deferred[None]:
        """Kill and reap every running script."""
        super().stopService()  # type: ignore[no-untyped-call]
        return self.directory.stop_all()


def _head_end(data: bytes) -> tuple[int, bytes]:
    best = (-1, b"")
    for sep in (b"\r\n\r\n", b"\n\n", b"\n\r\n"):
        at = data.find(sep)
        if at >= 0 and (best[0] < 0 or at < best[0]):
            best = (at, sep)
    return best

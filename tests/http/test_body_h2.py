"""Request bodies over HTTP/2: streamed to WSGI and CGI with flow control, 413 before buffering.

The clients are real: curl ``--http2`` and a raw HTTP/2 client made with the
``h2`` library (its frames on a TLS socket with ALPN ``h2``), which can also
misbehave (ignore flow control, reset a stream mid-body).
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase

from netproto_twisted.core.daemon import TLSFiles
from netproto_twisted.http.server.build import SiteSettings, build_site
from netproto_twisted.http.server.listen import https_factory, split_tls_endpoint
from netproto_twisted.http.server.request_body import PAUSE_BYTES
from netproto_twisted.http.server.site import DEFAULT_HTTP_LIMITS, HTTPLimits

from .helpers import reactor

try:
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings
    from hyperframe.frame import DataFrame
except ImportError:  # pragma: no cover - h2 is a test dependency
    h2 = None  # type: ignore[assignment]

CURL = shutil.which("curl")
PY = sys.executable
BLOCK = bytes(range(256)) * 256  # 64 KiB


def _curl_has_http2() -> bool:
    if CURL is None:
        return False
    version = subprocess.run([CURL, "--version"], capture_output=True, check=False).stdout
    return b"HTTP2" in version


class H2Client:
    """A blocking HTTP/2 client over TLS, one socket, frames through the h2 library."""

    def __init__(self, port: int) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.sock = context.wrap_socket(raw)
        if self.sock.selected_alpn_protocol() != "h2":
            raise SkipTest("the server did not negotiate h2")
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()
        self.events: list[Any] = []
        self.closed = False

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def receive(self, timeout: float = 20.0) -> list[Any]:
        """Read once (up to ``timeout`` s); return the events (``[]`` on timeout or close)."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return []
        except (ConnectionError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return []
        events = self.conn.receive_data(data)
        for event in events:
            if isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        self.flush()
        self.events += events
        return list(events)

    def request(self, method: str, path: str, headers: list[tuple[str, str]], end: bool) -> int:
        stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(
            stream,
            [
                (":method", method),
                (":path", path),
                (":scheme", "https"),
                (":authority", "127.0.0.1"),
                *headers,
            ],
            end_stream=end,
        )
        self.flush()
        return stream

    def response(self, stream: int) -> tuple[int, bytes]:
        """Read until ``stream`` ends; its status and body."""
        while not self.closed:
            if any(
                isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset))
                and e.stream_id == stream
                for e in self.events
            ):
                break
            self.receive()
        status = 0
        body = b""
        for event in self.events:
            if getattr(event, "stream_id", None) != stream:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                status = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
        return status, body

    def close(self) -> None:
        self.sock.close()


def hash_app(started: threading.Event, gate: threading.Event, seen: dict[str, Any]) -> Any:
    """A WSGI app: ``/gate`` reads one block, waits for ``gate``, then hashes the rest."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        digest = hashlib.sha256()
        total = 0
        try:
            while block := stream.read(65536):
                if not total:
                    started.set()
                    if environ["PATH_INFO"] == "/gate" and not gate.wait(20):
                        raise RuntimeError("the test never opened the gate")
                digest.update(block)
                total += len(block)
        except OSError as e:  # the body was cut: nobody is left to answer
            seen["error"] = e
            seen["done"].set()
            start_response("500 Internal Server Error", [])
            return [b""]
        seen["done"].set()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d %s" % (total, digest.hexdigest().encode())]

    return app


class _H2Base(TestCase):
    async def serve(
        self,
        app: Any = None,
        cgi_dir: Path | None = None,
        limits: HTTPLimits = DEFAULT_HTTP_LIMITS,
    ) -> int:
        """Serve over TLS with ALPN h2 (as the daemon's ``ssl:`` listeners do)."""
        if h2 is None:
            raise SkipTest("the h2 library is not installed")
        data = Path(self.mktemp()).absolute()
        data.mkdir(parents=True)
        tls = TLSFiles.resolve(data)
        settings = SiteSettings(
            wsgi=app or "", cgi_dir=str(cgi_dir or ""), limits=limits, wsgi_threads=2
        )
        parts = build_site(reactor, settings)
        for service in parts.services:
            service.startService()
            self.addCleanup(service.stopService)
        endpoint = split_tls_endpoint(tls.complete_endpoint("ssl:0:interface=127.0.0.1"))
        port = reactor.listenTCP(0, https_factory(parts.site, endpoint), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(lambda: ensureDeferred(self._settle()))  # runs first
        return int(port.getHost().port)

    async def _settle(self) -> None:
        """Let what a cut connection still has scheduled run before the reactor is checked.

        A server that wrote to a TLS connection in its last turn has a flush
        of the written bytes due on the next turn (Twisted's TLS layer gathers
        small writes); a test that ended in that turn would leave it pending.
        """
        for _ in range(200):  # 2 s at most
            await deferLater(reactor, 0.01, lambda: None)
            if not any(
                getattr(call.func, "__name__", "") == "_scheduledFlush"
                for call in reactor.getDelayedCalls()
            ):
                return


class WSGIOverHTTP2Tests(_H2Base):
    def setUp(self) -> None:
        self.started = threading.Event()
        self.gate = threading.Event()
        self.seen: dict[str, Any] = {"done": threading.Event()}
        self.app = hash_app(self.started, self.gate, self.seen)

    async def test_body_streamed_with_flow_control_backpressure(self) -> None:
        port = await self.serve(app=self.app, limits=HTTPLimits(max_body=64 * 1024 * 1024))
        total = 4 * 1024 * 1024
        payload = BLOCK * (total // len(BLOCK))
        started, gate = self.started, self.gate

        def client() -> tuple[int, int, bytes]:
            c = H2Client(port)
            try:
                stream = c.request("POST", "/gate", [("content-length", str(total))], end=False)
                sent = 0
                stalled_at = -1
                while sent < total:
                    window = min(
                        c.conn.local_flow_control_window(stream), c.conn.max_outbound_frame_size
                    )
                    if window > 0:
                        piece = payload[sent : sent + window]
                        c.conn.send_data(stream, piece)
                        c.flush()
                        sent += len(piece)
                        continue
                    # No window: the server acknowledges only what its reader took.
                    if not c.receive(timeout=0.5) and stalled_at < 0 and started.is_set():
                        stalled_at = sent
                        gate.set()
                    elif c.closed:
                        break
                c.conn.end_stream(stream)
                c.flush()
                status, body = c.response(stream)
                return stalled_at, status, body
            finally:
                gate.set()
                c.close()

        stalled_at, status, body = await deferToThread(client)
        self.assertEqual(status, 200)
        self.assertEqual(body, b"%d %s" % (total, hashlib.sha256(payload).hexdigest().encode()))
        # The client was held back while the application did not read: at most
        # the reader's pause mark plus a stream window or two, far from 4 MiB.
        self.assertGreater(stalled_at, 0)
        self.assertLess(stalled_at, PAUSE_BYTES + 4 * 65536)

    async def test_declared_length_over_the_limit_is_413_before_any_data(self) -> None:
        port = await self.serve(app=self.app, limits=HTTPLimits(max_body=100_000))

        def client() -> tuple[int, bytes, int, bytes]:
            c = H2Client(port)
            try:
                stream = c.request("POST", "/", [("content-length", str(10**10))], end=False)
                status = 0
                while not status and not c.closed:  # no DATA sent: the answer comes anyway
                    for event in c.receive():
                        if isinstance(event, h2.events.ResponseReceived):
                            status = int(dict(event.headers)[b":status"])
                while not any(isinstance(e, h2.events.DataReceived) for e in c.events):
                    if c.closed:
                        break
                    c.receive()
                body = b"".join(e.data for e in c.events if isinstance(e, h2.events.DataReceived))
                c.conn.reset_stream(stream, 8)  # CANCEL: what a client does on an early 413
                c.flush()
                again = c.request("GET", "/", [], end=True)  # the connection still works
                status2, body2 = c.response(again)
                return status, body, status2, body2
            finally:
                c.close()

        status, body, status2, body2 = await deferToThread(client)
        self.assertEqual(status, 413)
        self.assertEqual(body, b"request body too large\n")
        self.assertEqual((status2, body2), (200, b"0 " + hashlib.sha256().hexdigest().encode()))
        self.assertFalse(self.started.is_set())

    async def test_unknown_length_over_the_limit(self) -> None:
        port = await self.serve(app=self.app, limits=HTTPLimits(max_body=200_000))

        def client() -> tuple[int, bytes]:
            c = H2Client(port)
            try:
                stream = c.request("POST", "/", [], end=False)  # no content-length
                sent = 0
                while sent < 1_000_000 and not c.closed:
                    window = min(c.conn.local_flow_control_window(stream), 16384)
                    reset = any(isinstance(e, h2.events.StreamReset) for e in c.events)
                    if reset:
                        break
                    if window > 0:
                        c.conn.send_data(stream, b"y" * window)
                        c.flush()
                        sent += window
                    else:
                        c.receive(timeout=5)
                return c.response(stream)
            finally:
                c.close()

        status, _body = await deferToThread(client)
        # Either the 413 (nothing answered yet) or a reset stream (the
        # application had started its answer); never a 200 with the body taken.
        self.assertNotEqual(status, 200)
        self.assertTrue(await deferToThread(self.seen["done"].wait, 20))
        self.assertIsInstance(self.seen.get("error"), OSError)  # the reader saw the body cut

    async def test_a_stream_reset_mid_body_aborts_the_reader(self) -> None:
        port = await self.serve(app=self.app)

        def client() -> None:
            c = H2Client(port)
            try:
                stream = c.request("POST", "/", [("content-length", "1000000")], end=False)
                sent = 0
                while not self.started.is_set() and sent < 500_000 and not c.closed:
                    if c.conn.local_flow_control_window(stream) >= 16384:
                        c.conn.send_data(stream, BLOCK[:16384])
                        c.flush()
                        sent += 16384
                    else:
                        c.receive(timeout=0.5)
                if not self.started.wait(20):
                    raise AssertionError("the application never started")
                c.conn.reset_stream(stream)
                c.flush()
                self.seen["done"].wait(20)
            finally:
                c.close()

        await deferToThread(client)
        self.assertTrue(self.seen["done"].is_set())
        self.assertIsInstance(self.seen.get("error"), OSError)

    async def test_a_client_ignoring_flow_control_is_cut(self) -> None:
        port = await self.serve(app=self.app)
        gate = self.gate

        def client() -> tuple[int | None, bool]:
            c = H2Client(port)
            try:
                stream = c.request("POST", "/gate", [("content-length", "8000000")], end=False)
                c.conn.send_data(stream, BLOCK[:16384])  # legal, so the reader starts
                c.flush()
                # Then 1 MiB of DATA frames built by hand, past every window.
                frame = DataFrame(stream)
                frame.data = BLOCK[:16384]
                try:
                    for _ in range(64):
                        c.sock.sendall(frame.serialize())
                except (ConnectionError, ssl.SSLError):
                    pass
                code = None
                while not c.closed:
                    try:
                        events = c.receive(timeout=10)
                    except h2.exceptions.ProtocolError:
                        break
                    if not events and not c.closed:
                        break
                    for event in events:
                        if isinstance(event, h2.events.ConnectionTerminated):
                            code = int(event.error_code)
                return code, c.closed
            finally:
                gate.set()
                c.close()

        code, closed = await deferToThread(client)
        self.assertTrue(code == 3 or closed, (code, closed))  # 3: FLOW_CONTROL_ERROR
        self.assertTrue(await deferToThread(self.seen["done"].wait, 20))
        self.assertIsInstance(self.seen.get("error"), OSError)

    async def test_curl_upload_hashed(self) -> None:
        if not _curl_has_http2():
            raise SkipTest("curl with HTTP/2 is not installed")
        port = await self.serve(app=self.app, limits=HTTPLimits(max_body=64 * 1024 * 1024))
        upload = Path(self.mktemp())
        payload = BLOCK * 48  # 3 MiB
        upload.write_bytes(payload)
        assert CURL is not None
        result = await deferToThread(
            subprocess.run,
            [CURL, "-sS", "-k", "--http2", "--max-time", "30", "--data-binary", f"@{upload}",
             "-H", "Content-Type: application/octet-stream", f"https://127.0.0.1:{port}/up"],
            capture_output=True,
            check=False,
        )  # fmt: skip
        expected = b"%d %s" % (len(payload), hashlib.sha256(payload).hexdigest().encode())
        self.assertEqual(result.stdout, expected, result.stderr)


CGI_COUNT = f"""#!{PY}
import hashlib, os, sys
data = sys.stdin.buffer.read()
sys.stdout.write("Content-Type: text/plain\\n\\n")
sys.stdout.write("%s %d %s" % (os.environ.get("CONTENT_LENGTH"), len(data),
                               hashlib.sha256(data).hexdigest()))
"""


class CGIOverHTTP2Tests(_H2Base):
    async def test_curl_upload_to_a_script(self) -> None:
        if not _curl_has_http2():
            raise SkipTest("curl with HTTP/2 is not installed")
        directory = Path(self.mktemp()).absolute()
        directory.mkdir(parents=True)
        script = directory / "count.py"
        script.write_text(CGI_COUNT)
        script.chmod(0o755)
        port = await self.serve(cgi_dir=directory)
        upload = Path(self.mktemp())
        payload = BLOCK * 32  # 2 MiB
        upload.write_bytes(payload)
        assert CURL is not None
        result = await deferToThread(
            subprocess.run,
            [CURL, "-sS", "-k", "--http2", "--max-time", "30", "--data-binary", f"@{upload}",
             f"https://127.0.0.1:{port}/cgi-bin/count.py"],
            capture_output=True,
            check=False,
        )  # fmt: skip
        n = len(payload)
        digest = hashlib.sha256(payload).hexdigest().encode()
        self.assertEqual(result.stdout, b"%d %d %s" % (n, n, digest), result.stderr)

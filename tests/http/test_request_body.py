"""Request bodies streamed to WSGI applications and CGI scripts as they arrive."""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.http.server.request_body import (
    PAUSE_BYTES,
    SPILL_BYTES,
    BodyAborted,
    RequestBody,
)
from netproto_twisted.http.server.site import HTTPLimits
from netproto_twisted.testing import serve_http

from .helpers import reactor

PY = sys.executable
BLOCK = b"0123456789abcdef" * 4096  # 64 KiB


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


class FakeTransport:
    def __init__(self) -> None:
        self.paused = 0
        self.resumed = 0

    def pauseProducing(self) -> None:
        self.paused += 1

    def resumeProducing(self) -> None:
        self.resumed += 1


class RequestBodyUnitTests(SynchronousTestCase):
    def body(self) -> tuple[RequestBody, FakeTransport, list[Any]]:
        transport = FakeTransport()
        calls: list[Any] = []
        body = RequestBody(transport, lambda f, *a: calls.append((f, a)), None)
        return body, transport, calls

    def test_lines_reads_and_the_end(self) -> None:
        body, _, _ = self.body()
        body.write(b"first line\nsec")
        body.write(b"ond line\nrest")
        body.end()
        self.assertEqual(body.readline(), b"first line\n")
        self.assertEqual(body.read(3), b"sec")
        self.assertEqual(list(body), [b"ond line\n", b"rest"])
        self.assertEqual(body.read(), b"")

    def test_pause_past_the_mark_resume_when_read_and_spill_to_disk(self) -> None:
        body, transport, calls = self.body()
        sent = 0
        while sent <= SPILL_BYTES + PAUSE_BYTES:
            body.write(BLOCK)
            sent += len(BLOCK)
        body.end()
        self.assertEqual(transport.paused, 1)
        self.assertGreater(body.spill_fd, -1)  # past the spill mark: on disk
        self.assertLessEqual(sum(map(len, body.chunks)), SPILL_BYTES)
        self.assertEqual(body.read(), BLOCK * (sent // len(BLOCK)))
        self.assertEqual(len(calls), 1)  # one resume asked of the reactor
        calls[0][0](*calls[0][1])
        self.assertEqual(transport.resumed, 1)
        body.close()
        self.assertEqual(body.spill_fd, -1)

    def test_a_lost_client_aborts_the_reader(self) -> None:
        body, _, _ = self.body()
        body.write(b"part")
        body.close()  # the connection was lost before end()
        self.assertRaises(BodyAborted, body.read)

    def test_seek_only_to_the_start_before_reading(self) -> None:
        body, _, _ = self.body()
        body.write(b"abc")
        self.assertEqual(body.seek(0), 0)
        body.read(1)
        self.assertRaises(OSError, body.seek, 0)


class WSGIUploadTests(TestCase):
    async def test_fifty_megabytes_hashed_as_they_come_in_bounded_memory(self) -> None:
        total = 50 * 1024 * 1024
        client_done = threading.Event()
        seen: dict[str, Any] = {}

        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            stream = environ["wsgi.input"]
            digest = hashlib.sha256()
            base = _rss()
            peak = 0
            first = True
            while block := stream.read(256 * 1024):
                if first:
                    seen["client_done_at_first_read"] = client_done.is_set()
                    first = False
                digest.update(block)
                peak = max(peak, _rss() - base)
            seen["peak"] = peak
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [digest.hexdigest().encode()]

        limits = HTTPLimits(max_body=100 * 1024 * 1024)
        server = await serve_http(reactor, app=app, limits=limits)
        self.addCleanup(server.stop)

        def client() -> bytes:
            with socket.create_connection((server.host, server.port), timeout=30) as sock:
                sock.sendall(
                    b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    b"Content-Length: %d\r\n\r\n" % total
                )
                for _ in range(total // len(BLOCK)):
                    sock.sendall(BLOCK)
                client_done.set()
                return _read_response(sock)

        answer = await deferToThread(client)
        expected = hashlib.sha256(BLOCK * (total // len(BLOCK))).hexdigest().encode()
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:100])
        self.assertTrue(answer.endswith(expected))
        self.assertIs(seen["client_done_at_first_read"], False)  # started before the end
        self.assertLess(seen["peak"], 20 * 1024 * 1024)  # a 50 MB body, far less memory

    async def test_chunked_upload_and_an_app_answering_before_reading(self) -> None:
        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            if environ["PATH_INFO"] == "/ignore":
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"not read"]
            data = environ["wsgi.input"].read()
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"%d" % len(data)]

        server = await serve_http(reactor, app=app)
        self.addCleanup(server.stop)
        chunk = b"%x\r\n%s\r\n" % (len(BLOCK), BLOCK)

        def client() -> bytes:
            with socket.create_connection((server.host, server.port), timeout=30) as sock:
                for path in (b"/ignore", b"/read"):
                    sock.sendall(
                        b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 20 + b"0\r\n\r\n"
                    )
                sock.sendall(b"GET /ignore HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return _read_response(sock)

        answer = await deferToThread(client)
        self.assertEqual(answer.count(b"HTTP/1.1 200 OK"), 3)
        self.assertIn(b"\r\n\r\n%d" % (20 * len(BLOCK)), answer)

    async def test_chunked_body_over_the_limit_is_cut(self) -> None:
        reads: list[int] = []
        app_done = threading.Event()

        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            try:
                while block := environ["wsgi.input"].read(65536):
                    reads.append(len(block))
            except OSError:
                reads.append(-1)
            app_done.set()
            start_response("200 OK", [])
            return [b""]

        server = await serve_http(reactor, app=app, limits=HTTPLimits(max_body=200_000))
        self.addCleanup(server.stop)
        chunk = b"%x\r\n%s\r\n" % (len(BLOCK), BLOCK)

        def client() -> bytes:
            with socket.create_connection((server.host, server.port), timeout=30) as sock:
                sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                try:
                    for _ in range(40):
                        sock.sendall(chunk)
                except OSError:
                    pass
                try:
                    return _read_response(sock)
                except OSError:
                    return b""

        answer = await deferToThread(client)
        self.assertTrue(await deferToThread(app_done.wait, 20))
        self.assertNotIn(b"200 OK", answer)
        self.assertLessEqual(sum(r for r in reads if r > 0), 200_000)
        self.assertEqual(reads[-1], -1)  # the application saw the body cut, not an end


CGI_HALF = f"""#!{PY}
import sys
first = sys.stdin.buffer.read(100000)
sys.stdout.write("Content-Type: text/plain\\n\\n")
sys.stdout.write("got first %d\\n" % len(first))
sys.stdout.flush()
rest = sys.stdin.buffer.read()
sys.stdout.write("got rest %d\\n" % len(rest))
"""


class CGIUploadTests(TestCase):
    async def test_script_reads_stdin_as_the_body_arrives(self) -> None:
        directory = Path(self.mktemp()).absolute()
        directory.mkdir(parents=True)
        script = directory / "half.py"
        script.write_text(CGI_HALF)
        script.chmod(0o755)
        server = await serve_http(reactor, cgi_dir=directory)
        self.addCleanup(server.stop)

        def client() -> bytes:
            with socket.create_connection((server.host, server.port), timeout=20) as sock:
                sock.sendall(
                    b"POST /cgi-bin/half.py HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    b"Content-Length: 200000\r\n\r\n" + b"a" * 100000
                )
                seen = b""
                while b"got first" not in seen:  # before the second half is sent
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    seen += chunk
                sock.sendall(b"b" * 100000)
                return seen + _read_response(sock)

        answer = await deferToThread(client)
        self.assertIn(b"got first 100000", answer)
        self.assertIn(b"got rest 100000", answer)


CGI_COUNT = f"""#!{PY}
import hashlib, os, sys
data = sys.stdin.buffer.read()
sys.stdout.write("Content-Type: text/plain\\n\\n")
sys.stdout.write("%s %d %s" % (os.environ.get("CONTENT_LENGTH"), len(data),
                               hashlib.sha256(data).hexdigest()))
"""


class ChunkedCGITests(TestCase):
    """A chunked body is spooled (CGI needs CONTENT_LENGTH first), within the body limit."""

    async def serve(self, limits: HTTPLimits) -> Any:
        directory = Path(self.mktemp()).absolute()
        directory.mkdir(parents=True)
        script = directory / "count.py"
        script.write_text(CGI_COUNT)
        script.chmod(0o755)
        server = await serve_http(reactor, cgi_dir=directory, limits=limits)
        self.addCleanup(server.stop)
        return server

    async def test_chunked_body_measured_then_given_whole(self) -> None:
        server = await self.serve(HTTPLimits())
        chunk = b"%x\r\n%s\r\n" % (len(BLOCK), BLOCK)

        def client() -> bytes:
            with socket.create_connection((server.host, server.port), timeout=20) as sock:
                sock.sendall(
                    b"POST /cgi-bin/count.py HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 5 + b"0\r\n\r\n"
                )
                return _read_response(sock)

        answer = await deferToThread(client)
        n = 5 * len(BLOCK)
        digest = hashlib.sha256(BLOCK * 5).hexdigest().encode()
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:200])
        self.assertIn(b"%d %d %s" % (n, n, digest), answer)

    async def test_chunked_body_over_the_limit_is_413_while_it_comes(self) -> None:
        server = await self.serve(HTTPLimits(max_body=100_000))
        chunk = b"%x\r\n%s\r\n" % (len(BLOCK), BLOCK)

        def client() -> bytes:
            with socket.create_connection((server.host, server.port), timeout=20) as sock:
                sock.sendall(
                    b"POST /cgi-bin/count.py HTTP/1.1\r\nHost: x\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 2  # 128 KiB, no end
                )
                try:
                    return _read_response(sock)
                except OSError:
                    return b""

        answer = await deferToThread(client)
        self.assertTrue(answer.startswith(b"HTTP/1.1 413"), answer[:200])


class BrokenBodyTests(TestCase):
    """A body that stops mid-way, or trickles past the idle timeout: the reader is told."""

    def app(self, seen: dict[str, Any], done: threading.Event) -> Any:
        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            try:
                seen["read"] = len(environ["wsgi.input"].read())
            except OSError as e:
                seen["error"] = e
            done.set()
            start_response("200 OK", [])
            return [b""]

        return app

    async def test_client_closes_mid_body(self) -> None:
        seen: dict[str, Any] = {}
        done = threading.Event()
        server = await serve_http(reactor, app=self.app(seen, done))
        self.addCleanup(server.stop)

        def client() -> None:
            with socket.create_connection((server.host, server.port), timeout=20) as sock:
                sock.sendall(
                    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + BLOCK
                )
            done.wait(20)

        await deferToThread(client)
        self.assertTrue(done.is_set())
        self.assertIsInstance(seen.get("error"), BodyAborted)

    async def test_body_stalled_past_the_idle_timeout(self) -> None:
        seen: dict[str, Any] = {}
        done = threading.Event()
        limits = HTTPLimits(idle_timeout=0.5)
        server = await serve_http(reactor, app=self.app(seen, done), limits=limits)
        self.addCleanup(server.stop)

        def client() -> bytes:
            with socket.create_connection((server.host, server.port), timeout=20) as sock:
                sock.sendall(
                    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n" + BLOCK
                )
                done.wait(20)  # the client sends nothing more
                try:
                    return _read_response(sock)
                except OSError:
                    return b""

        answer = await deferToThread(client)
        self.assertTrue(done.is_set())
        self.assertIsInstance(seen.get("error"), BodyAborted)
        self.assertNotIn(b"200 OK", answer)

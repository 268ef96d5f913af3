"""WSGI hosting: wsgiref.validate, the stdlib demo app, failures, debug pages, forms in apps."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import demo_app
from wsgiref.validate import validator

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from netproto_twisted.http import (
    DebugMiddleware,
    FormError,
    form_from_environ,
    read_cookies,
    set_cookie_header,
)
from netproto_twisted.testing import ServedSite, serve_http

from .helpers import fetch, raw_exchange, reactor


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = b"hello " + environ["PATH_INFO"].encode("latin-1")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def form_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    try:
        form = form_from_environ(environ)
    except FormError as e:
        start_response(f"{e.status} Refused", [("Content-Type", "text/plain")])
        return [e.text.encode()]
    upload = form.file("upload")
    cookies = read_cookies(environ.get("HTTP_COOKIE"))
    text = f"name={form.getfirst('name')} size={upload.size if upload else 0} c={cookies}"
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Set-Cookie", set_cookie_header("seen", "1"))],
    )
    form.close()
    return [text.encode()]


def raise_before(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    password = "hunter2"
    raise RuntimeError(f"bad state {len(password)}")


def raise_mid_stream(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"first part "
    raise RuntimeError("mid-stream")


class WSGITests(TestCase):
    async def serve(self, app: Any, **kwargs: Any) -> ServedSite:
        server = await serve_http(reactor, app=app, **kwargs)
        self.addCleanup(server.stop)
        return server

    async def test_validated_app(self) -> None:
        server = await self.serve(validator(hello))
        reply = await fetch(server.url("/some/path?x=1"))
        self.assertEqual((reply.status, reply.body), (200, b"hello /some/path"))

    async def test_stdlib_demo_app_unchanged(self) -> None:
        server = await self.serve(validator(demo_app))
        reply = await fetch(server.url("/demo?a=b"))
        self.assertEqual(reply.status, 200)
        self.assertIn(b"Hello world!", reply.body)
        self.assertIn(b"QUERY_STRING = 'a=b'", reply.body)
        self.assertIn(b"wsgi.multithread = True", reply.body)

    async def test_app_by_name(self) -> None:
        server = await self.serve("wsgiref.simple_server:demo_app")
        self.assertIn(b"Hello world!", (await fetch(server.url("/"))).body)

    async def test_forms_and_cookies_in_an_app(self) -> None:
        server = await self.serve(validator(form_app))
        boundary = "b0undary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nAda\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="upload"; '
                f'filename="f.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + b"\x00" * 2_000_000
            + f"\r\n--{boundary}--\r\n".encode()
        )
        reply = await fetch(
            server.url("/"),
            data=body,
            Content_Type=f"multipart/form-data; boundary={boundary}",
            Cookie="sid=abc; junk",
        )
        self.assertEqual(reply.body, b"name=Ada size=2000000 c={'sid': 'abc'}")
        self.assertEqual(
            reply.headers["Set-Cookie"], "seen=1; HttpOnly; Path=/; SameSite=Lax; Secure"
        )

    async def test_hundred_thousand_parts(self) -> None:
        server = await self.serve(form_app)
        part = b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n'
        body = part * 100_000 + b"--x--\r\n"
        reply = await fetch(
            server.url("/"), data=body, Content_Type="multipart/form-data; boundary=x"
        )
        self.assertEqual(reply.status, 413)
        self.assertIn(b"more than 1000 form parts", reply.body)

    async def test_exception_before_start_shows_nothing_internal(self) -> None:
        server = await self.serve(raise_before)
        reply = await fetch(server.url("/"))
        self.assertEqual(reply.status, 500)
        self.assertNotIn(b"hunter2", reply.body)
        self.assertNotIn(b"Traceback", reply.body)
        self.assertNotIn(b"RuntimeError", reply.body)
        self.flushLoggedErrors(RuntimeError)

    async def test_debug_page_shows_locals(self) -> None:
        server = await self.serve(raise_before, debug=True)
        reply = await fetch(server.url("/"))
        self.assertEqual(reply.status, 500)
        self.assertIn(b"RuntimeError: bad state 7", reply.body)
        self.assertIn(b"password", reply.body)
        self.assertIn(b"&#x27;hunter2&#x27;", reply.body)
        self.flushLoggedErrors(RuntimeError)

    async def test_debug_middleware_for_apps_hosted_elsewhere(self) -> None:
        server = await self.serve(validator(DebugMiddleware(raise_before)))
        reply = await fetch(server.url("/"))
        self.assertEqual(reply.status, 500)
        self.assertIn(b"<td>password</td>", reply.body)
        self.assertEqual(self.flushLoggedErrors(RuntimeError), [])  # handled in the app

    async def test_exception_mid_stream_cuts_the_response(self) -> None:
        server = await self.serve(raise_mid_stream)
        answer = await raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"))
        self.assertIn(b"first part", answer)
        self.assertFalse(answer.endswith(b"0\r\n\r\n"))  # no final chunk: the client sees a cut
        self.flushLoggedErrors(RuntimeError)


class WholeResponseTests(TestCase):
    """A list answer is written as one block: its head must be what twisted.web would write."""

    async def exchange(self, app: Any, request: bytes) -> bytes:
        server = await serve_http(reactor, app=app)
        self.addCleanup(server.stop)
        return await raw_exchange(server.port, request)

    async def test_length_added_and_injection_neutralised(self) -> None:
        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            evil = ("X-Evil", "a\r\nSet-Cookie: stolen=1")
            start_response("200 Fine", [evil, ("Server", "app")])
            return [b"ab", b"cd"]

        answer = await self.exchange(
            app, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.assertEqual(lines[0], b"HTTP/1.1 200 Fine")
        self.assertIn(b"Content-Length: 4", lines)
        self.assertIn(b"X-Evil: a Set-Cookie: stolen=1", lines)
        self.assertEqual([x for x in lines if x.lower().startswith(b"server:")], [b"Server: app"])
        self.assertIn(b"Connection: close", lines)
        self.assertEqual(len([x for x in lines if x.startswith(b"Date: ")]), 1)
        self.assertEqual(body, b"abcd")

    async def test_head_and_no_body_codes(self) -> None:
        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            status = "204 No Content" if environ["PATH_INFO"] == "/empty" else "200 OK"
            start_response(status, [("Content-Type", "text/plain")])
            return [b"body"]

        answer = await self.exchange(
            app,
            b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /empty HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET / HTTP/1.0\r\n\r\n",
        )
        first, second, third = answer.split(b"HTTP/1.")[1:]
        self.assertIn(b"Content-Length: 4\r\n", first)
        self.assertTrue(first.endswith(b"\r\n\r\n"))  # no body after a HEAD answer
        self.assertTrue(second.startswith(b"1 204"))
        self.assertNotIn(b"Content-Length", second)
        self.assertTrue(second.endswith(b"\r\n\r\n"))
        self.assertTrue(third.startswith(b"0 200 OK"))
        self.assertTrue(third.endswith(b"\r\n\r\nbody"))

    async def test_keep_alive_serves_many_in_turn(self) -> None:
        server = await serve_http(reactor, app=validator(hello))
        self.addCleanup(server.stop)
        requests = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(50))
        answer = await raw_exchange(
            server.port, requests + b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        bodies = [part.partition(b"\r\n\r\n")[2] for part in answer.split(b"HTTP/1.1 200 OK")[1:]]
        self.assertEqual(bodies, [b"hello /%d" % i for i in range(50)] + [b"hello /last"])


class StreamingTests(TestCase):
    async def test_an_iterators_blocks_are_not_held_back(self) -> None:
        release = threading.Event()

        def slow(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
            start_response("200 OK", [("Content-Type", "text/event-stream")])
            yield b"data: first\n\n"
            release.wait(20)  # the client must have the first block by now
            yield b"data: second\n\n"

        server = await serve_http(reactor, app=slow)
        self.addCleanup(server.stop)

        def client() -> bytes:
            with socket.create_connection((server.host, server.port), timeout=20) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                seen = b""
                while b"data: first" not in seen:
                    seen += sock.recv(4096)
                self.assertNotIn(b"second", seen)
                release.set()
                while chunk := sock.recv(4096):
                    seen += chunk
                return seen

        answer = await deferToThread(client)
        self.assertIn(b"data: second", answer)
        self.assertTrue(release.is_set())


class BusyTests(TestCase):
    async def test_503_past_max_pending(self) -> None:
        release = threading.Event()

        def stuck(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            release.wait(20)
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"done"]

        server = await serve_http(reactor, app=stuck, threads=1)
        self.addCleanup(server.stop)
        host = server.site.resource.app  # type: ignore[attr-defined]
        host.max_pending = 1
        first = fetch(server.url("/"))
        for _ in range(2000):  # the first request reaches the pool within a few reactor turns
            if host.pending:
                break
            await deferToThread(release.wait, 0.01)
        self.assertEqual(host.pending, 1)
        busy = await fetch(server.url("/"))
        self.assertEqual((busy.status, busy.headers["Retry-After"]), (503, "1"))
        release.set()
        self.assertEqual((await first).body, b"done")

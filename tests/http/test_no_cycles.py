"""Requests on a kept-alive connection leave no reference cycle behind on the server.

An object cycle per request (the request and its channel, a producer and its
consumer...) leaves every request to Python's cyclic garbage collector, whose
passes then cost a good part of the CPU time per request.  Each test makes a
few requests once the connection is kept, with the collector off, then checks
that ``gc.collect()`` finds nothing: everything was freed by refcounting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase

from netproto_twisted.http import ProxyHandler, build_opener
from netproto_twisted.testing import serve_http
from tests.gccheck import collector_finds_nothing

from .helpers import reactor


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = b"Hello, world!\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "14")])
    return [body]


class KeptAliveTests(TestCase):
    async def assert_no_cycles(self, url: str, expected: bytes) -> None:
        opener = build_opener(ProxyHandler({}), reactor=reactor, max_per_host=1)
        self.addCleanup(opener.close)

        async def one() -> None:
            response = await opener.open(url)
            self.assertEqual(await response.read(), expected)

        for _ in range(2):  # the connection is made and kept
            await one()
        with collector_finds_nothing(self):
            for _ in range(3):
                await one()

    async def test_static_file(self) -> None:
        root = Path(self.mktemp())
        root.mkdir()
        (root / "1k.txt").write_bytes(b"x" * 1024)
        server = await serve_http(reactor, path=root)
        self.addCleanup(server.stop)
        await self.assert_no_cycles(server.url("/1k.txt"), b"x" * 1024)

    async def test_wsgi_application(self) -> None:
        server = await serve_http(reactor, app=hello)
        self.addCleanup(server.stop)
        await self.assert_no_cycles(server.url("/hello"), b"Hello, world!\n")

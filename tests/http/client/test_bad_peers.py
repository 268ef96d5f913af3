"""Bad input from servers: header floods, truncated bodies, closes mid-body, stale keep-alive."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from netproto_twisted.http import (
    ContentTooShortError,
    ProxyHandler,
    RequestTimeout,
    URLError,
    build_opener,
)
from tests.http.client.webserver import listen_raw


class BadPeerTests(TestCase):
    def serve(self, respond: Any) -> tuple[Any, str]:
        port, factory, base = listen_raw(respond)
        self.addCleanup(port.stopListening)
        return factory, base

    def opener(self, **options: Any) -> Any:
        opener = build_opener(ProxyHandler({}), reactor=reactor, **options)
        self.addCleanup(opener.close)
        return opener

    async def test_header_flood_refused(self) -> None:
        def respond(p: Protocol, head: bytes) -> None:
            lines = b"".join(b"X-Flood-%d: %s\r\n" % (i, b"v" * 50) for i in range(5000))
            p.transport.write(b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 2\r\n\r\nok")

        _, base = self.serve(respond)
        with self.assertRaises(URLError) as cm:
            await self.opener().open(base + "/")
        self.assertIn("header fields", str(cm.exception))

    async def test_endless_headers_end_at_the_timeout(self) -> None:
        """Twisted's parser keeps the header lines; the wait for the headers is bounded."""
        sent = [0]

        def respond(p: Protocol, head: bytes) -> None:
            p.transport.write(b"HTTP/1.1 200 OK\r\n")

            def more() -> None:
                if p.transport.connected and sent[0] < 2000:
                    p.transport.write(b"X-Endless: %d\r\n" % sent[0])
                    sent[0] += 1
                    reactor.callLater(0, more)

            more()

        _, base = self.serve(respond)
        clock = Clock()
        d = self.opener(clock=clock, idle_timeout=10.0).open(base + "/")
        await _until(lambda: sent[0] >= 200)
        clock.advance(10)
        await self.assertFailure(d, RequestTimeout)

    async def test_truncated_chunked_body(self) -> None:
        def respond(p: Protocol, head: bytes) -> None:
            p.transport.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n10\r\nonly"
            )
            p.transport.loseConnection()

        _, base = self.serve(respond)
        r = await self.opener().open(base + "/")
        with self.assertRaises(ContentTooShortError) as cm:
            await r.read()
        self.assertEqual(cm.exception.content, b"helloonly")

    async def test_server_closes_mid_body(self) -> None:
        def respond(p: Protocol, head: bytes) -> None:
            p.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"a" * 400)
            p.transport.loseConnection()

        _, base = self.serve(respond)
        r = await self.opener().open(base + "/")
        self.assertEqual(r.length, 1000)
        with self.assertRaises(ContentTooShortError) as cm:
            await r.read()
        self.assertEqual(cm.exception.content, b"a" * 400)
        self.assertIn("of 1000", str(cm.exception))

    async def test_stale_keepalive_connection_retried_once(self) -> None:
        """The server drops a kept-alive connection when the second request arrives on it."""
        seen: list[Protocol] = []

        def respond(p: Protocol, head: bytes) -> None:
            if p in seen:
                p.transport.abortConnection()  # stale: dies without answering
                return
            seen.append(p)
            p.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        factory, base = self.serve(respond)
        opener = self.opener()
        self.assertEqual(await (await opener.open(base + "/1")).read(), b"ok")
        self.assertEqual(await (await opener.open(base + "/2")).read(), b"ok")
        self.assertEqual((factory.connections, factory.requests), (2, 3))

    async def test_post_on_a_stale_connection_is_not_repeated(self) -> None:
        seen: list[Protocol] = []

        def respond(p: Protocol, head: bytes) -> None:
            if p in seen:
                p.transport.abortConnection()
                return
            seen.append(p)
            p.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        factory, base = self.serve(respond)
        opener = self.opener()
        await (await opener.open(base + "/1")).read()
        with self.assertRaises(URLError):
            await opener.open(base + "/2", b"data")
        self.assertEqual(factory.requests, 2)

    async def test_garbage_status_line(self) -> None:
        def respond(p: Protocol, head: bytes) -> None:
            p.transport.write(b"SMTP ready\r\n\r\n")
            p.transport.loseConnection()

        _, base = self.serve(respond)
        with self.assertRaises(URLError):
            await self.opener().open(base + "/")


async def _until(condition: Any, turns: int = 2000) -> None:
    from twisted.internet.task import deferLater

    for _ in range(turns):
        if condition():
            return
        await deferLater(reactor, 0.001)
    raise AssertionError("condition never held")

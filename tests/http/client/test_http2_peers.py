"""HTTP/2 by ALPN against real servers on loopback: twisted.web's H2 server, nginx, tinyproxy."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import ResponseDone

from netproto_twisted.core.tls import ensure_dev_certificate
from netproto_twisted.http import HTTPSConnection, ProxyHandler, build_opener
from netproto_twisted.http.client.http2 import DEFAULT_STREAM_WINDOW
from tests.http.client import webserver
from tests.http.client.peers import NGINX_MISSING, TINYPROXY_MISSING, start_nginx, start_tinyproxy
from tests.http.client.webserver import App, dev_ca, listen

TEXT = b"All work and no play makes Jack a dull boy.\n" * 500
BIG_SIZE = 24 << 20


class TwistedWebTests(TestCase):
    """twisted.web's Site over TLS: it offers h2 by ALPN itself (its HTTP/2 is h2-based)."""

    def setUp(self) -> None:
        self.tls_dir = Path(self.mktemp())
        self.app = App()
        port, self.base = listen(self.app, self.tls_dir)
        self.addCleanup(port.stopListening)
        self.opener = self.make_opener()

    def make_opener(self, *handlers: Any, **options: Any) -> Any:
        options.setdefault("ca_file", dev_ca(self.tls_dir))
        opener = build_opener(ProxyHandler({}), *handlers, reactor=reactor, **options)
        self.addCleanup(opener.close)
        return opener

    async def test_concurrent_requests_share_one_connection(self) -> None:
        before = len(webserver.channels)

        async def one(i: int) -> tuple[Any, bytes]:
            r = await self.opener.open(f"{self.base}/echo?n={i}")
            return r.version, await r.read()

        results = await gatherResults([_start(one(i)) for i in range(40)])
        self.assertEqual({version for version, _ in results}, {(2, 0)})
        self.assertEqual(len(webserver.channels) - before, 1)
        self.assertEqual(len({info["client-port"] for info in self.app.seen}), 1)
        self.assertEqual(len(self.app.seen), 40)

    async def test_redirect_cookie_gzip_and_post(self) -> None:
        r = await self.opener.open(self.base + "/setcookie?c=a%3D1")
        self.assertEqual((r.version, r.reason), ((2, 0), "OK"))
        await r.read()
        r = await self.opener.open(self.base + "/redirect?to=/echo")
        self.assertTrue(r.url.endswith("/echo"))
        self.assertEqual((await r.json())["cookie"], "a=1")
        r = await self.opener.open(self.base + "/gzip")
        self.assertEqual(await r.read(), b"x" * 10000)
        r = await self.opener.open(self.base + "/echo", data=b"posted body")
        info = await r.json()
        self.assertEqual((info["method"], info["body"]), ("POST", "posted body"))

    async def test_http2_can_be_turned_off(self) -> None:
        opener = self.make_opener(http2=False)
        r = await opener.open(self.base + "/hello")
        self.assertEqual((r.version, await r.read()), ((1, 1), b"hello"))

    async def test_http11_when_the_server_offers_no_h2(self) -> None:
        plain_dir = Path(self.mktemp())
        port, base = listen(App(), plain_dir, h2=False)
        self.addCleanup(port.stopListening)
        opener = self.make_opener(ca_file=dev_ca(plain_dir))
        results = await gatherResults([_start(opener.open(base + "/hello")) for _ in range(3)])
        self.assertEqual([r.version for r in results], [(1, 1)] * 3)
        for r in results:
            self.assertEqual(await r.read(), b"hello")

    async def test_server_refusing_the_alpn_offer_gets_http11(self) -> None:
        # A Twisted 26 TLS server whose factory negotiates nothing fails any
        # handshake that offers ALPN ("internal error"): asked again without it.
        from twisted.protocols.policies import WrappingFactory
        from twisted.web import server

        from netproto_twisted.core.tls import server_context

        cert, key = ensure_dev_certificate(self.tls_dir)
        site = WrappingFactory(server.Site(App()))
        port = reactor.listenSSL(0, site, server_context(cert, key), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        base = f"https://localhost:{port.getHost().port}"
        for _ in range(2):
            r = await self.opener.open(base + "/hello")
            self.assertEqual((r.version, await r.read()), ((1, 1), b"hello"))

    async def test_https_connection_speaks_http2(self) -> None:
        port = int(self.base.rsplit(":", 1)[1])
        conn = HTTPSConnection("localhost", port, reactor=reactor, ca_file=dev_ca(self.tls_dir))
        self.addCleanup(conn.close)
        conn.request("GET", "/hello")
        r = await conn.getresponse()
        self.assertEqual((r.version, r.status, await r.read()), ((2, 0), 200, b"hello"))


class NginxHTTP2Tests(TestCase):
    """nginx with TLS and ``http2`` on its listen line."""

    skip = NGINX_MISSING

    def setUp(self) -> None:
        self.root = Path(self.mktemp()).absolute()
        cert, key = ensure_dev_certificate(self.root / "cert")
        self.ca = str(cert)
        big = self.root / "big.bin"
        self.big_digest = _write_big(big)
        files = {"text.txt": TEXT, "1k.bin": bytes(range(256)) * 4}
        self.nginx = start_nginx(self.root / "nginx", files, tls=(cert, key), http2=True)
        self.addCleanup(self.nginx.stop)
        os.link(big, self.root / "nginx" / "www" / "big.bin")
        self.base = f"https://localhost:{self.nginx.port}"
        self.opener = build_opener(ProxyHandler({}), reactor=reactor, ca_file=self.ca)
        self.addCleanup(self.opener.close)

    def access_log(self) -> list[list[str]]:
        path = self.root / "nginx" / "logs" / "access.log"
        return [line.split() for line in path.read_text().splitlines()]

    async def test_many_requests_multiplexed_on_one_connection(self) -> None:
        async def one(_: int) -> bytes:
            r = await self.opener.open(self.base + "/1k.bin")
            self.assertEqual(r.version, (2, 0))
            return bytes(await r.read())

        bodies = await gatherResults([_start(one(i)) for i in range(60)])
        self.assertEqual(set(bodies), {bytes(range(256)) * 4})
        log = self.access_log()
        self.assertEqual(len(log), 60)
        self.assertEqual({line[0] for line in log}, {log[0][0]})  # one connection
        self.assertEqual({line[1] for line in log}, {"HTTP/2.0"})

    async def test_redirect_cookie_and_gzip(self) -> None:
        r = await self.opener.open(self.base + "/redirect")
        self.assertTrue(r.url.endswith("/cookie"))
        self.assertEqual(await r.read(), b"cookie=seen=1")
        r = await self.opener.open(self.base + "/text.txt")
        self.assertEqual(r.headers["Content-Encoding"], "gzip")
        self.assertEqual(await r.read(), TEXT)

    async def test_large_body_streams_with_bounded_buffering(self) -> None:
        r = await self.opener.open(self.base + "/big.bin")
        stream = r._source._stream
        sink = _Hashing()
        r.deliver_body(sink)
        # Paused after the first chunk: what is held stays within one stream window.
        for _ in range(50):
            await deferLater(reactor, 0.01)
        held = sum(len(data) for data, _ in stream.held)
        self.assertLessEqual(held, DEFAULT_STREAM_WINDOW)
        self.assertLess(sink.size, BIG_SIZE)
        sink.resume()
        await sink.done
        self.assertEqual((sink.size, sink.digest.hexdigest()), (BIG_SIZE, self.big_digest))


class TunnelHTTP2Tests(TestCase):
    """ALPN inside a CONNECT tunnel: tinyproxy in front of nginx's HTTP/2."""

    skip = NGINX_MISSING or TINYPROXY_MISSING

    async def test_h2_through_the_tunnel(self) -> None:
        root = Path(self.mktemp()).absolute()
        cert, key = ensure_dev_certificate(root / "cert")
        nginx = start_nginx(root / "nginx", {"t.txt": b"tunnelled"}, tls=(cert, key), http2=True)
        self.addCleanup(nginx.stop)
        proxy = start_tinyproxy(root / "proxy")
        self.addCleanup(proxy.stop)
        opener = build_opener(
            ProxyHandler({"https": f"http://127.0.0.1:{proxy.port}"}),
            reactor=reactor,
            ca_file=str(cert),
        )
        self.addCleanup(opener.close)
        results = await gatherResults(
            [_start(opener.open(f"https://localhost:{nginx.port}/t.txt")) for _ in range(5)]
        )
        self.assertEqual([r.version for r in results], [(2, 0)] * 5)
        self.assertEqual(await results[0].read(), b"tunnelled")


def _start(coroutine: Any) -> Any:
    from twisted.internet.defer import Deferred, ensureDeferred

    return coroutine if isinstance(coroutine, Deferred) else ensureDeferred(coroutine)


def _write_big(path: Path) -> str:
    digest = hashlib.sha256()
    block = os.urandom(1 << 20)
    with path.open("wb") as f:
        for i in range(BIG_SIZE >> 20):
            piece = bytes([i]) + block[1:]
            f.write(piece)
            digest.update(piece)
    return digest.hexdigest()


class _Hashing(Protocol):
    """Hashes the body; pauses after the first chunk until told to resume."""

    def __init__(self) -> None:
        from twisted.internet.defer import Deferred

        self.digest = hashlib.sha256()
        self.size = 0
        self.paused = False
        self.resumed = False
        self.done: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.digest.update(data)
        self.size += len(data)
        if not self.resumed and not self.paused:
            self.paused = True
            self.transport.pauseProducing()  # type: ignore[union-attr]

    def resume(self) -> None:
        self.resumed = True
        self.transport.resumeProducing()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        if reason.check(ResponseDone):
            self.done.callback(None)
        else:
            self.done.errback(reason)

"""Against real peers: nginx (static, Basic auth, redirects, gzip, Range), tinyproxy (http and
CONNECT), the stdlib's urllib on the same Set-Cookie headers, and http.client-style connections."""

from __future__ import annotations

import http.cookiejar
import os
import sys
import urllib.request
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from netproto_twisted.http import (
    HTTPBasicAuthHandler,
    HTTPConnection,
    HTTPError,
    HTTPPasswordMgrWithDefaultRealm,
    HTTPSConnection,
    PoliteFetcher,
    ProxyHandler,
    RedirectLoop,
    build_opener,
)
from tests.http.client.peers import NGINX_MISSING, TINYPROXY_MISSING, start_nginx, start_tinyproxy
from tests.http.client.webserver import App, dev_ca, listen

ONE_KB = bytes(range(256)) * 4
TEXT = b"All work and no play makes Jack a dull boy.\n" * 500
BIG = os.urandom(300_000)


class NginxTests(TestCase):
    skip = NGINX_MISSING

    def setUp(self) -> None:
        root = Path(self.mktemp()).absolute()
        files = {"1k.bin": ONE_KB, "text.txt": TEXT, "big.bin": BIG, "private/p.txt": b"hidden"}
        self.nginx = start_nginx(root, files)
        self.addCleanup(self.nginx.stop)
        self.base = f"http://127.0.0.1:{self.nginx.port}"
        self.opener = self.make_opener()

    def make_opener(self, *handlers: Any, **options: Any) -> Any:
        opener = build_opener(ProxyHandler({}), *handlers, reactor=reactor, **options)
        self.addCleanup(opener.close)
        return opener

    async def test_static_and_keepalive(self) -> None:
        for _ in range(3):
            r = await self.opener.open(self.base + "/1k.bin")
            self.assertEqual(await r.read(), ONE_KB)
        self.assertEqual(r.headers["Content-Length"], "1024")

    async def test_gzip_from_nginx(self) -> None:
        r = await self.opener.open(self.base + "/text.txt")
        self.assertEqual(r.headers["Content-Encoding"], "gzip")
        self.assertEqual(await r.read(), TEXT)

    async def test_redirect_with_cookie(self) -> None:
        jar = http.cookiejar.CookieJar()
        opener = self.make_opener(cookiejar=jar)
        r = await opener.open(self.base + "/redirect")
        self.assertEqual(await r.read(), b"cookie=seen=1")
        self.assertEqual(r.history[0].status, 302)

    async def test_redirect_loop(self) -> None:
        with self.assertRaises(RedirectLoop):
            await self.opener.open(self.base + "/loop")

    async def test_basic_auth(self) -> None:
        with self.assertRaises(HTTPError) as cm:
            await self.opener.open(self.base + "/private/p.txt")
        self.assertEqual(cm.exception.code, 401)
        mgr = HTTPPasswordMgrWithDefaultRealm()
        mgr.add_password(None, self.base + "/private/", "alice", "wonderland")
        opener = self.make_opener(HTTPBasicAuthHandler(mgr))
        self.assertEqual(await (await opener.open(self.base + "/private/p.txt")).read(), b"hidden")

    async def test_streaming_to_a_protocol(self) -> None:
        r = await self.opener.open(self.base + "/big.bin")
        sizes: list[int] = []
        total = await r.collect(lambda data: sizes.append(len(data)))
        self.assertEqual(total, len(BIG))
        self.assertGreater(len(sizes), 1)

    async def test_download_resumes_with_range(self) -> None:
        target = Path(self.mktemp())
        Path(str(target) + ".part").write_bytes(BIG[:100_000])
        fetcher = PoliteFetcher(self.opener, reactor=reactor, robots=False, delay=0)
        seen: list[int] = []
        result = await fetcher.download(self.base + "/big.bin", target,
                                        progress=lambda p: seen.append(p.received))  # fmt: skip
        self.assertEqual((result.status, result.resumed_from), (206, 100_000))
        self.assertEqual(target.read_bytes(), BIG)
        self.assertEqual(seen[-1], len(BIG))
        self.assertGreaterEqual(seen[0], 100_000)

    async def test_fetch_command(self) -> None:
        out = Path(self.mktemp()).absolute()
        repo = str(Path(__file__).absolute().parents[3])
        Path(out).mkdir()
        (out / "big.bin.part").write_bytes(BIG[:5000])
        _, stderr, code = await getProcessOutputAndValue(
            sys.executable,
            ["-m", "netproto_twisted.http.fetch", "-o", str(out), "--delay", "0",
             self.base + "/big.bin", self.base + "/1k.bin", self.base + "/missing"],
            env={**os.environ, "PYTHONPATH": repo, "http_proxy": ""},
            path=repo,
        )  # fmt: skip
        self.assertEqual(code, 1, stderr)  # /missing is a 404
        self.assertEqual((out / "big.bin").read_bytes(), BIG)
        self.assertEqual((out / "1k.bin").read_bytes(), ONE_KB)
        self.assertIn(b"resumed at 5,000", stderr)
        self.assertIn(b"HTTP Error 404", stderr)

    async def test_netproto_fetch_subcommand(self) -> None:
        out = Path(self.mktemp()).absolute()
        repo = str(Path(__file__).absolute().parents[3])
        out.mkdir()
        _, stderr, code = await getProcessOutputAndValue(
            sys.executable,
            ["-m", "netproto_twisted.cli", "fetch", "-o", str(out), "--delay", "0",
             "--quiet", self.base + "/1k.bin"],
            env={**os.environ, "PYTHONPATH": repo, "http_proxy": ""},
            path=repo,
        )  # fmt: skip
        self.assertEqual(code, 0, stderr)
        self.assertEqual((out / "1k.bin").read_bytes(), ONE_KB)

    async def test_http_connection(self) -> None:
        conn = HTTPConnection("127.0.0.1", self.nginx.port, reactor=reactor)
        self.addCleanup(conn.close)
        conn.request("GET", "/1k.bin")
        r = await conn.getresponse()
        self.assertEqual((r.status, await r.read()), (200, ONE_KB))
        conn.putrequest("GET", "/text.txt")
        conn.putheader("Range", "bytes=0-9")
        conn.endheaders()
        r = await conn.getresponse()
        self.assertEqual((r.status, await r.read()), (206, TEXT[:10]))


class StdlibCookieTests(TestCase):
    """Our opener and urllib.request, fed the same Set-Cookie headers, keep the same cookies."""

    async def test_same_cookies_as_urllib(self) -> None:
        app = App()
        port, base = listen(app)
        self.addCleanup(port.stopListening)
        headers = [
            "plain=1",
            "withpath=2; Path=/setcookie",
            "other=3; Path=/elsewhere",
            "expired=4; Max-Age=0",
            "later=5; Expires=Wed, 09 Jun 2100 10:18:14 GMT",
            "dom=6; Domain=127.0.0.1",
            "foreign=7; Domain=example.com",
            'quoted="a b"; Version=1',
            "secure=8; Secure",
            "httponly=9; HttpOnly; SameSite=Lax",
        ]
        from urllib.parse import quote

        url = base + "/setcookie?" + "&".join("c=" + quote(h) for h in headers)
        ours = http.cookiejar.CookieJar()
        opener = build_opener(ProxyHandler({}), reactor=reactor, cookiejar=ours)
        self.addCleanup(opener.close)
        await (await opener.open(url)).read()
        await (await opener.open(base + "/echo")).read()
        theirs = http.cookiejar.CookieJar()

        def stdlib() -> None:
            std = urllib.request.build_opener(
                urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(theirs)
            )
            std.open(url).read()
            std.open(base + "/echo").read()

        await deferToThread(stdlib)

        def shape(jar: http.cookiejar.CookieJar) -> list[tuple[Any, ...]]:
            return sorted((c.name, c.value, c.domain, c.path, c.secure, c.expires) for c in jar)

        self.assertEqual(shape(ours), shape(theirs))
        self.assertGreaterEqual(len(shape(ours)), 4)
        ours_sent = app.seen[1]["cookie"]
        theirs_sent = app.seen[3]["cookie"]
        self.assertEqual(ours_sent, theirs_sent)


class ProxyTests(TestCase):
    skip = TINYPROXY_MISSING

    def setUp(self) -> None:
        self.proxy = start_tinyproxy(Path(self.mktemp()).absolute())
        self.addCleanup(self.proxy.stop)
        self.proxy_url = f"http://127.0.0.1:{self.proxy.port}"
        self.app = App()
        port, self.base = listen(self.app)
        self.addCleanup(port.stopListening)

    async def test_http_through_the_proxy(self) -> None:
        opener = build_opener(ProxyHandler({"http": self.proxy_url}), reactor=reactor)
        self.addCleanup(opener.close)
        r = await opener.open(self.base + "/echo")
        self.assertIn(b'"path": "/echo"', await r.read())
        self.assertEqual(len(self.app.seen), 1)

    async def test_https_through_a_connect_tunnel(self) -> None:
        tls_dir = Path(self.mktemp())
        tls_app = App()
        port, tls_base = listen(tls_app, tls_dir)
        self.addCleanup(port.stopListening)
        opener = build_opener(
            ProxyHandler({"https": self.proxy_url}), reactor=reactor, ca_file=dev_ca(tls_dir)
        )
        self.addCleanup(opener.close)
        for _ in range(2):
            r = await opener.open(tls_base + "/hello")
            self.assertEqual(await r.read(), b"hello")
        self.assertEqual(len(tls_app.seen), 2)

    async def test_connection_set_tunnel(self) -> None:
        tls_dir = Path(self.mktemp())
        port, _ = listen(App(), tls_dir)
        self.addCleanup(port.stopListening)
        conn = HTTPSConnection("127.0.0.1", self.proxy.port, reactor=reactor,
                               ca_file=dev_ca(tls_dir))  # fmt: skip
        self.addCleanup(conn.close)
        conn.set_tunnel("localhost", port.getHost().port)
        conn.request("GET", "/hello")
        r = await conn.getresponse()
        self.assertEqual(await r.read(), b"hello")

    async def test_no_proxy_bypasses(self) -> None:
        handler = ProxyHandler({"http": "http://127.0.0.1:9", "no": "127.0.0.1"})
        opener = build_opener(handler, reactor=reactor)
        self.addCleanup(opener.close)
        r = await opener.open(self.base + "/hello")
        self.assertEqual(await r.read(), b"hello")

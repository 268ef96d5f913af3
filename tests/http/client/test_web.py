"""The opener against a twisted.web server on loopback: redirects, cookies, decoding, errors."""

from __future__ import annotations

import http.cookiejar
import json
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from netproto_twisted.http import (
    DecompressionBomb,
    DowngradeRefused,
    HTTPError,
    ProxyHandler,
    RedirectLoop,
    Request,
    RequestTimeout,
    Response,
    build_opener,
)
from netproto_twisted.http.client import BodyTooLarge
from tests.http.client.webserver import App, dev_ca, listen


class WebTestBase(TestCase):
    """One twisted.web app on loopback, an opener with no proxies."""

    def setUp(self) -> None:
        self.app = App()
        self.port, self.base = listen(self.app)
        self.addCleanup(self.port.stopListening)
        self.clock = Clock()
        self.opener = self.make_opener()

    def make_opener(self, *handlers: Any, **options: Any) -> Any:
        opener = build_opener(ProxyHandler({}), *handlers, reactor=reactor, **options)
        self.addCleanup(opener.close)
        return opener

    async def get_json(self, response: Response) -> Any:
        return json.loads(await response.read())


class BasicsTests(WebTestBase):
    async def test_get(self) -> None:
        r = await self.opener.open(self.base + "/hello")
        self.assertEqual((r.status, r.reason, r.code, r.getcode()), (200, "OK", 200, 200))
        self.assertEqual(r.geturl(), self.base + "/hello")
        self.assertEqual(r.headers["Content-Length"], "5")
        self.assertEqual(await r.read(), b"hello")
        self.assertEqual(await r.read(), b"hello")  # read() again: same bytes

    async def test_post_bytes(self) -> None:
        r = await self.opener.open(self.base + "/echo", b"a=1")
        info = await self.get_json(r)
        self.assertEqual((info["method"], info["body"]), ("POST", "a=1"))

    async def test_http_error_is_a_readable_response(self) -> None:
        with self.assertRaises(HTTPError) as cm:
            await self.opener.open(self.base + "/status?code=503")
        e = cm.exception
        self.assertEqual((e.code, e.status, e.reason), (503, 503, "Service Unavailable"))
        self.assertEqual(await e.read(), b"status body")
        self.assertEqual(e.headers["Content-Length"], "11")

    async def test_big_error_body_is_kept_in_part(self) -> None:
        with self.assertRaises(HTTPError) as cm:
            await self.opener.open(self.base + "/bigerror")
        body = await cm.exception.read()
        self.assertTrue(0 < len(body) <= 1 << 20)
        self.assertEqual(set(body), {ord("e")})
        r = await self.opener.open(self.base + "/hello")  # the opener goes on
        self.assertEqual(await r.read(), b"hello")

    async def test_connection_refused_is_urlerror(self) -> None:
        from netproto_twisted.http import URLError

        port = self.port.getHost().port
        await self.port.stopListening()
        with self.assertRaises(URLError):
            await self.opener.open(f"http://127.0.0.1:{port}/")

    async def test_keepalive_reuses_one_connection(self) -> None:
        for _ in range(5):
            r = await self.opener.open(self.base + "/hello")
            await r.read()
        self.assertEqual(len({seen["client-port"] for seen in self.app.seen}), 1)


class RedirectTests(WebTestBase):
    async def test_302_turns_post_into_get(self) -> None:
        r = await self.opener.open(self.base + "/redirect?code=302", b"x=1")
        info = await self.get_json(r)
        self.assertEqual((info["method"], info["body"]), ("GET", ""))
        self.assertEqual([h.status for h in r.history], [302])
        self.assertEqual(r.url, self.base + "/echo")

    async def test_303_turns_put_into_get(self) -> None:
        req = Request(self.base + "/redirect?code=303", b"x", method="PUT")
        info = await self.get_json(await self.opener.open(req))
        self.assertEqual(info["method"], "GET")

    async def test_307_and_308_keep_method_and_body(self) -> None:
        for code in (307, 308):
            req = Request(self.base + f"/redirect?code={code}", b"payload", method="PUT")
            info = await self.get_json(await self.opener.open(req))
            self.assertEqual((info["method"], info["body"]), ("PUT", "payload"))

    async def test_loop_is_refused(self) -> None:
        with self.assertRaises(RedirectLoop) as cm:
            await self.opener.open(self.base + "/loop")
        self.assertEqual(cm.exception.code, 302)

    async def test_limit(self) -> None:
        from netproto_twisted.http import HTTPRedirectHandler

        opener = self.make_opener(HTTPRedirectHandler(max_redirections=0))
        with self.assertRaises(RedirectLoop):
            await opener.open(self.base + "/redirect")

    async def test_credentials_not_forwarded_to_another_origin(self) -> None:
        other = App()
        port, other_base = listen(other)
        self.addCleanup(port.stopListening)
        self.app.other = other_base
        req = Request(
            self.base + "/redirect?to=OTHER/echo",
            headers={"Authorization": "Basic c2VjcmV0", "Cookie": "sid=1", "X-Keep": "yes"},
        )
        req.add_header("Proxy-Authorization", "Basic cHJveHk=")
        info = await self.get_json(await self.opener.open(req))
        self.assertEqual(info["path"], "/echo")
        self.assertEqual((info["authorization"], info["cookie"]), ("", ""))
        self.assertEqual(info["proxy-authorization"], "")
        # the first origin did get them
        self.assertEqual(self.app.seen[0]["authorization"], "Basic c2VjcmV0")

    async def test_same_origin_redirect_keeps_authorization(self) -> None:
        req = Request(self.base + "/redirect", headers={"Authorization": "Basic c2VjcmV0"})
        info = await self.get_json(await self.opener.open(req))
        self.assertEqual(info["authorization"], "Basic c2VjcmV0")

    async def test_https_to_http_downgrade_refused(self) -> None:
        tls_dir = Path(self.mktemp())
        tls_app = App()
        tls_app.other = self.base
        port, tls_base = listen(tls_app, tls_dir)
        self.addCleanup(port.stopListening)
        opener = self.make_opener(ca_file=dev_ca(tls_dir))
        r = await opener.open(tls_base + "/hello")  # verified TLS works
        self.assertEqual(await r.read(), b"hello")
        with self.assertRaises(DowngradeRefused):
            await opener.open(tls_base + "/redirect?to=OTHER/echo")
        from netproto_twisted.http import HTTPRedirectHandler

        lax = self.make_opener(HTTPRedirectHandler(allow_downgrade=True), ca_file=dev_ca(tls_dir))
        r = await lax.open(tls_base + "/redirect?to=OTHER/echo")
        self.assertEqual(r.url, self.base + "/echo")
        await r.read()

    async def test_tls_verification_is_the_default(self) -> None:
        from netproto_twisted.http import URLError

        tls_dir = Path(self.mktemp())
        port, tls_base = listen(App(), tls_dir)
        self.addCleanup(port.stopListening)
        with self.assertRaises(URLError):
            await self.opener.open(tls_base + "/hello")
        lax = self.make_opener(verify=False)
        self.assertEqual(await (await lax.open(tls_base + "/hello")).read(), b"hello")


class CookieTests(WebTestBase):
    async def test_cookie_set_on_redirect_is_sent_after_it(self) -> None:
        jar = http.cookiejar.CookieJar()
        opener = self.make_opener(cookiejar=jar)
        await (await opener.open(self.base + "/setcookie?c=a%3D1%3B%20Path%3D%2F")).read()
        info = await self.get_json(await opener.open(self.base + "/echo"))
        self.assertEqual(info["cookie"], "a=1")
        self.assertEqual([c.name for c in jar], ["a"])

    async def test_mozilla_jar_saves_and_loads(self) -> None:
        path = self.mktemp()
        jar = http.cookiejar.MozillaCookieJar(path)
        opener = self.make_opener(cookiejar=jar)
        value = "keep%3Dyes%3B%20Path%3D%2F%3B%20Max-Age%3D3600"
        await (await opener.open(self.base + "/setcookie?c=" + value)).read()
        jar.save()
        loaded = http.cookiejar.MozillaCookieJar(path)
        loaded.load()
        self.assertEqual([(c.name, c.value) for c in loaded], [("keep", "yes")])
        fresh = self.make_opener(cookiejar=loaded)
        info = await self.get_json(await fresh.open(self.base + "/echo"))
        self.assertEqual(info["cookie"], "keep=yes")


class DecodingTests(WebTestBase):
    async def test_gzip_and_deflate(self) -> None:
        r = await self.opener.open(self.base + "/gzip")
        self.assertEqual(await r.read(), b"x" * 10000)
        self.assertEqual(r.headers["Content-Encoding"], "gzip")
        r = await self.opener.open(self.base + "/deflate")
        self.assertEqual(await r.read(), b"y" * 5000)

    async def test_gzip_bomb_refused(self) -> None:
        r = await self.opener.open(self.base + "/bomb")
        with self.assertRaises(DecompressionBomb):
            await r.read(None)

    async def test_bomb_refused_by_a_size_limit_too(self) -> None:
        from netproto_twisted.http import ContentDecodingProcessor

        opener = self.make_opener(ContentDecodingProcessor(max_size=1 << 20, max_ratio=10**9))
        r = await opener.open(self.base + "/bomb")
        with self.assertRaises(DecompressionBomb):
            await r.read(None)


class TimeoutAndBodyTests(WebTestBase):
    async def test_read_refuses_past_max_size(self) -> None:
        r = await self.opener.open(self.base + "/endless")
        with self.assertRaises(BodyTooLarge):
            await r.read(1 << 20)

    async def test_stalled_body_times_out(self) -> None:
        opener = self.make_opener(clock=self.clock, idle_timeout=5.0)
        r = await opener.open(self.base + "/stall")
        got: list[bytes] = []
        d = r.collect(got.append)
        await _until(lambda: got)
        self.assertEqual(got, [b"part"])
        self.clock.advance(4)
        self.assertNoResult(d)
        self.clock.advance(1.5)
        failure = self.failureResultOf(d, RequestTimeout)
        self.assertIn("stalled", str(failure.value))

    async def test_never_ending_body_hits_the_total_timeout(self) -> None:
        opener = self.make_opener(clock=self.clock, total_timeout=30.0)
        r = await opener.open(self.base + "/endless")
        size = [0]

        def count(data: bytes) -> None:
            size[0] += len(data)

        d = r.collect(count)
        await _until(lambda: size[0] > 100_000)
        self.clock.advance(31)
        failure = self.failureResultOf(d, RequestTimeout)
        self.assertIn("whole request", str(failure.value))

    async def test_waiting_for_headers_times_out(self) -> None:
        opener = self.make_opener(clock=self.clock)
        d = opener.open(Request(self.base + "/held", timeout=3.0))
        await _until(lambda: self.app.held)
        self.clock.advance(3.1)
        await self.assertFailure(d, RequestTimeout)

    async def test_per_host_cap(self) -> None:
        opener = self.make_opener(max_per_host=2)
        ds = [opener.open(self.base + "/held") for _ in range(5)]
        await _until(lambda: len(self.app.held) == 2)
        # a round trip on another origin shows the others are really queued
        await _round_trip()
        self.assertEqual(len(self.app.held), 2)
        # Answered in the order the server got them (which of the first two
        # connections was ready first is the kernel's business).
        answered: list[Any] = []
        for d in ds:
            d.addCallback(answered.append)
        for count in range(1, len(ds) + 1):
            await _until(lambda: len(self.app.held) > 0)
            self.assertLessEqual(len(self.app.held), 2)
            request = self.app.held.pop(0)
            request.write(b"ok")
            request.finish()
            await _until(lambda count=count: len(answered) == count)
        self.assertEqual(self.app.held, [])
        for r in answered:
            self.assertEqual(await r.read(), b"ok")


async def _round_trip() -> None:
    from twisted.internet.task import deferLater

    for _ in range(20):
        await deferLater(reactor, 0)


async def _until(condition: Any, turns: int = 2000) -> None:
    """Let the reactor run until ``condition()`` holds (bounded: about 10 s when loaded)."""
    from twisted.internet.task import deferLater

    for _ in range(turns):
        if condition():
            return
        await deferLater(reactor, 0.005)
    raise AssertionError("condition never held")


class FileAndDataTests(WebTestBase):
    async def test_file(self) -> None:
        path = Path(self.mktemp())
        path.write_bytes(b"0123456789" * 20000)
        r = await self.opener.open(path.absolute().as_uri())
        self.assertEqual(r.headers["Content-length"], "200000")
        self.assertEqual(await r.read(), b"0123456789" * 20000)

    async def test_missing_file(self) -> None:
        from netproto_twisted.http import URLError

        with self.assertRaises(URLError):
            await self.opener.open("file:///no/such/file")

    async def test_data(self) -> None:
        r = await self.opener.open("data:text/plain;charset=utf-8,caf%C3%A9")
        self.assertEqual(r.headers["Content-type"], "text/plain;charset=utf-8")
        self.assertEqual(await r.text(), "café")
        r = await self.opener.open("data:;base64,aGVsbG8")
        self.assertEqual(r.headers["Content-type"], "text/plain;charset=US-ASCII")
        self.assertEqual(await r.read(), b"hello")


class ContentTooShortTests(TestCase):
    pass

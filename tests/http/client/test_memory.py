"""In memory, through StubOpener: auth (twisted.web.guard), robots.txt, the polite fetcher."""

from __future__ import annotations

from typing import Any

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import IRealm, Portal
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import guard, resource
from twisted.web.static import Data
from zope.interface import implementer

from netproto_twisted.http import (
    HTTPBasicAuthHandler,
    HTTPDigestAuthHandler,
    HTTPError,
    HTTPPasswordMgrWithDefaultRealm,
    HTTPPasswordMgrWithPriorAuth,
    PoliteFetcher,
    Request,
    RobotsDisallowed,
    RobotsHandler,
)
from netproto_twisted.testing import StubOpener
from tests.http.client.webserver import App


class _Secret(resource.Resource):
    isLeaf = True

    def __init__(self, who: bytes) -> None:
        super().__init__()
        self.who = who

    def render_GET(self, request: Any) -> bytes:
        return b"secret for " + self.who


@implementer(IRealm)
class _Realm:
    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        return resource.IResource, _Secret(avatarId), lambda: None


def _guarded(factory: Any) -> Any:
    checker = InMemoryUsernamePasswordDatabaseDontUse(alice=b"wonderland")
    return guard.HTTPAuthSessionWrapper(Portal(_Realm(), [checker]), [factory])


class StubOpenerTests(SynchronousTestCase):
    def test_documented_example(self) -> None:
        root = resource.Resource()
        root.putChild(b"hello", Data(b"hi there", "text/plain"))
        stub = StubOpener(root)
        response, body = stub.get("http://example.test/hello")
        self.assertEqual((response.status, body), (200, b"hi there"))
        with self.assertRaises(HTTPError):
            stub.get("http://example.test/missing")

    def test_redirects_and_cookies_run_as_in_production(self) -> None:
        stub = StubOpener(App())
        stub.get("http://example.test/setcookie?c=k%3Dv%3B%20Path%3D%2F")
        response, body = stub.get("http://example.test/redirect?code=302")
        self.assertEqual(response.url, "http://example.test/echo")
        self.assertIn(b'"cookie": "k=v"', body)


class AuthTests(SynchronousTestCase):
    def test_basic(self) -> None:
        mgr = HTTPPasswordMgrWithDefaultRealm()
        mgr.add_password(None, "http://example.test/", "alice", "wonderland")
        stub = StubOpener(_guarded(guard.BasicCredentialFactory("zoo")), HTTPBasicAuthHandler(mgr))
        _, body = stub.get("http://example.test/")
        self.assertEqual(body, b"secret for alice")

    def test_basic_wrong_password_is_401_after_one_retry(self) -> None:
        mgr = HTTPPasswordMgrWithDefaultRealm()
        mgr.add_password(None, "http://example.test/", "alice", "rabbit")
        seen: list[bytes] = []
        wrapper = _guarded(guard.BasicCredentialFactory("zoo"))
        real_render = wrapper.render

        def counting(request: Any) -> Any:
            seen.append(request.getHeader(b"authorization") or b"")
            return real_render(request)

        wrapper.render = counting
        wrapper.getChildWithDefault = lambda path, request: wrapper
        stub = StubOpener(wrapper, HTTPBasicAuthHandler(mgr))
        with self.assertRaises(HTTPError) as cm:
            stub.get("http://example.test/")
        self.assertEqual(cm.exception.code, 401)

    def test_prior_auth_sends_credentials_first(self) -> None:
        mgr = HTTPPasswordMgrWithPriorAuth()
        mgr.add_password(
            None, "http://example.test/", "alice", "wonderland", is_authenticated=True
        )
        app = App()
        stub = StubOpener(app, HTTPBasicAuthHandler(mgr))
        stub.get("http://example.test/echo")
        self.assertEqual(app.seen[0]["authorization"], "Basic YWxpY2U6d29uZGVybGFuZA==")

    def test_digest_md5_against_twisted_web(self) -> None:
        mgr = HTTPPasswordMgrWithDefaultRealm()
        mgr.add_password(None, "http://example.test/", "alice", "wonderland")
        factory = guard.DigestCredentialFactory(b"md5", b"zoo")
        stub = StubOpener(_guarded(factory), HTTPDigestAuthHandler(mgr))
        _, body = stub.get("http://example.test/page?x=1")
        self.assertEqual(body, b"secret for alice")

    def test_no_credentials_is_http_error(self) -> None:
        stub = StubOpener(_guarded(guard.BasicCredentialFactory("zoo")))
        with self.assertRaises(HTTPError) as cm:
            stub.get("http://example.test/")
        self.assertEqual(cm.exception.code, 401)


class RobotsTests(SynchronousTestCase):
    def stub(self, status: int, text: bytes, **kwargs: Any) -> tuple[StubOpener, App]:
        app = App()
        app.robots = (status, text)
        return StubOpener(app, RobotsHandler("testbot", **kwargs)), app

    def test_disallowed_url_refused_clearly(self) -> None:
        stub, app = self.stub(200, b"User-agent: testbot\nDisallow: /private\n")
        with self.assertRaises(RobotsDisallowed) as cm:
            stub.get("http://example.test/private/x")
        self.assertIn("robots.txt disallows http://example.test/private/x", str(cm.exception))
        _, body = stub.get("http://example.test/hello")
        self.assertEqual(body, b"hello")
        # robots.txt was fetched once, the refused URL never
        self.assertEqual([s["path"] for s in app.seen], ["/robots.txt", "/hello"])

    def test_4xx_allows_all(self) -> None:
        for status in (401, 403, 404):
            stub, _ = self.stub(status, b"User-agent: *\nDisallow: /\n")
            self.assertEqual(stub.get("http://example.test/hello")[1], b"hello")

    def test_5xx_disallows_all(self) -> None:
        stub, _ = self.stub(503, b"")
        with self.assertRaises(RobotsDisallowed):
            stub.get("http://example.test/hello")

    def test_cache_expires(self) -> None:
        stub, app = self.stub(200, b"User-agent: *\nDisallow: /x\n", ttl=100.0)
        stub.get("http://example.test/hello")
        stub.get("http://example.test/hello")
        self.assertEqual([s["path"] for s in app.seen].count("/robots.txt"), 1)
        app.robots = (200, b"User-agent: *\nDisallow: /hello\n")
        stub.clock.advance(101)
        with self.assertRaises(RobotsDisallowed):
            stub.get("http://example.test/hello")

    def test_unreachable_disallows_all(self) -> None:
        stub = StubOpener(resource.Resource(), RobotsHandler("bot"))
        handler = stub.opener.handler(RobotsHandler)
        assert isinstance(handler, RobotsHandler)
        from twisted.internet.defer import fail

        from netproto_twisted.http import URLError

        handler.cache.fetch = lambda url: fail(URLError("connection refused"))
        with self.assertRaises(RobotsDisallowed):
            stub.get("http://example.test/hello")


class PoliteFetcherTests(SynchronousTestCase):
    def test_crawl_delay_and_per_host_pacing(self) -> None:
        app = App()
        app.robots = (200, b"User-agent: *\nCrawl-delay: 5\nDisallow: /private\n")
        stub = StubOpener(app)
        fetcher = PoliteFetcher(stub.opener, reactor=stub.clock, delay=1.0, user_agent="bot")
        pending = [fetcher.fetch(f"http://example.test/hello?{i}") for i in range(3)]
        pending.append(fetcher.fetch("http://other.test/hello"))
        arrivals: list[float] = []
        for _ in range(15):
            stub.flush()
            for d in [d for d in pending if d.called]:
                pending.remove(d)
                stub.settle(stub.settle(d).read())  # the body ends: the slot is free
            while len(arrivals) < len([s for s in app.seen if s["path"] == "/hello"]):
                arrivals.append(stub.clock.seconds())
            stub.clock.advance(1)
        # example.test every 5 s (its Crawl-delay); other.test at once, not held back
        self.assertEqual(arrivals, [0.0, 0.0, 5.0, 10.0])
        self.assertEqual(fetcher.stats.done, 4)
        with self.assertRaises(RobotsDisallowed):
            stub.settle(fetcher.fetch("http://example.test/private/a"))
        self.assertEqual(fetcher.stats.refused, 1)

    def test_request_objects_pass_through(self) -> None:
        app = App()
        stub = StubOpener(app)
        fetcher = PoliteFetcher(stub.opener, reactor=stub.clock, robots=False, delay=0)
        response = stub.settle(fetcher.fetch(Request("http://example.test/echo", b"x")))
        self.assertIn(b'"method": "POST"', stub.settle(response.read()))
        self.assertIn("bot", app.seen[0]["path"] + "bot")

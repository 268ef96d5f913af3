"""The site's limits and error pages, driven in memory (StringTransport, MemoryReactorClock)."""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from netproto_twisted.http import HTTPLimits, HTTPSite, SiteRoot
from netproto_twisted.http.server.site import GENERIC_ERROR_PAGE


class Echo(Resource):
    isLeaf = True

    def render(self, request: Any) -> bytes:
        return b"echo:" + request.content.read()


class Boom(Resource):
    isLeaf = True

    def render(self, request: Any) -> bytes:
        token = "s3cr3t-token"
        raise KeyError(token)


def connect(site: HTTPSite) -> tuple[Any, StringTransport]:
    protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5555))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 5555))
    protocol.makeConnection(transport)
    return protocol, transport


class SiteTests(SynchronousTestCase):
    def make(self, **kwargs: Any) -> tuple[HTTPSite, MemoryReactorClock]:
        clock = MemoryReactorClock()
        root = Resource()
        root.putChild(b"echo", Echo())
        root.putChild(b"boom", Boom())
        limits = kwargs.pop("limits", HTTPLimits(header_timeout=5, max_body=1000))
        site = HTTPSite(root, clock, limits=limits, **kwargs)
        return site, clock

    def test_slowloris_gets_408(self) -> None:
        site, clock = self.make()
        protocol, transport = connect(site)
        for byte in b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow: ":
            protocol.dataReceived(bytes([byte]))
            clock.advance(0.1)  # well inside the idle timeout, one byte at a time
        clock.advance(5)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 408 Request Timeout"))
        self.assertTrue(transport.disconnecting)

    def test_a_prompt_head_is_not_timed_out(self) -> None:
        site, clock = self.make()
        protocol, transport = connect(site)
        protocol.dataReceived(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        clock.advance(10)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 OK"))
        self.assertNotIn(b"408", transport.value())

    def test_header_flood_and_huge_header(self) -> None:
        site, _ = self.make(limits=HTTPLimits(max_headers=20, max_header_bytes=4096))
        protocol, transport = connect(site)
        protocol.dataReceived(
            b"GET /echo HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(25)) + b"\r\n"
        )
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 400"))
        protocol, transport = connect(site)
        protocol.dataReceived(b"GET /echo HTTP/1.1\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 4"))
        self.assertTrue(transport.disconnecting)

    def test_smuggling_attempts_are_refused(self) -> None:
        site, _ = self.make()
        for head in (
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /boom HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 30\r\n\r\n"
            b"hello",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 30\r\n\r\nhello",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ):
            protocol, transport = connect(site)
            protocol.dataReceived(head)
            self.assertTrue(transport.value().startswith(b"HTTP/1.1 400"), head)
            self.assertNotIn(b"500", transport.value())
            self.assertTrue(transport.disconnecting)

    def test_body_over_the_limit_is_refused_before_it_is_read(self) -> None:
        site, _ = self.make()
        protocol, transport = connect(site)
        protocol.dataReceived(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        value = transport.value()
        self.assertTrue(value.startswith(b"HTTP/1.1 413 Content Too Large"))
        self.assertNotIn(b"100 Continue", value)
        self.assertTrue(transport.disconnecting)

    def test_chunked_body_over_the_limit(self) -> None:
        site, _ = self.make()
        protocol, transport = connect(site)
        protocol.dataReceived(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(3):
            protocol.dataReceived(b"200\r\n" + b"a" * 512 + b"\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413"))
        self.assertNotIn(b"echo:", transport.value())

    def test_body_under_the_limit(self) -> None:
        site, _ = self.make()
        protocol, transport = connect(site)
        protocol.dataReceived(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        self.assertIn(b"echo:hello", transport.value())

    def test_500_shows_nothing_internal(self) -> None:
        site, _ = self.make()
        protocol, transport = connect(site)
        protocol.dataReceived(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
        value = transport.value()
        self.assertTrue(value.startswith(b"HTTP/1.1 500"))
        self.assertTrue(value.endswith(GENERIC_ERROR_PAGE))
        self.assertNotIn(b"s3cr3t", value)
        self.assertNotIn(b"KeyError", value)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_debug_page_has_the_traceback_and_locals(self) -> None:
        site, _ = self.make(debug=True)
        protocol, transport = connect(site)
        protocol.dataReceived(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
        value = transport.value()
        self.assertIn(b"KeyError: &#x27;s3cr3t-token&#x27;", value)
        self.assertIn(b"<td>token</td>", value)
        self.assertIn(b"in render", value)
        self.flushLoggedErrors(KeyError)

    def test_access_log_in_combined_format(self) -> None:
        path = self.mktemp()
        site, _ = self.make(access_log=path)
        site.startFactory()
        self.addCleanup(site.stopFactory)
        protocol, _ = connect(site)
        protocol.dataReceived(
            b"GET /echo?q=1 HTTP/1.1\r\nHost: x\r\nReferer: http://r/\r\nUser-Agent: ua/1\r\n\r\n"
        )
        with open(path) as f:
            line = f.read()
        self.assertRegex(
            line,
            r'^127\.0\.0\.1 - - \[.+\] "GET /echo\?q=1 HTTP/1\.1" 200 5 "http://r/" "ua/1"\n$',
        )


class MountTests(SynchronousTestCase):
    """Mounts are read at request time: a section built after [http] is still served."""

    def test_mount_added_after_the_site_was_built(self) -> None:
        mounts: dict[str, Any] = {}
        clock = MemoryReactorClock()
        site = HTTPSite(SiteRoot(mounts), clock)
        protocol, transport = connect(site)
        protocol.dataReceived(b"GET /RPC2 HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 404"))
        mounts["/RPC2"] = Echo()
        mounts["/deep/er"] = Echo()
        for path in (b"/RPC2", b"/deep/er"):
            protocol, transport = connect(site)
            protocol.dataReceived(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(transport.value().startswith(b"HTTP/1.1 200"), path)
            self.assertTrue(transport.value().endswith(b"echo:"))

"""Our client against the stdlib's SimpleXMLRPCServer, and against our server."""

from __future__ import annotations

import xmlrpc.client
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from netproto_twisted.testing import serve_xmlrpc
from netproto_twisted.xmlrpc import (
    Fault,
    IPostTransport,
    PostResponse,
    ProtocolError,
    Proxy,
    ResponseError,
    ServerSettings,
    XMLRPCTimeout,
    dump_response,
)
from netproto_twisted.xmlrpc.errors import METHOD_NOT_FOUND
from tests.gccheck import collector_finds_nothing
from tests.xmlrpc.helpers import StdlibServer, sample_registry
from tests.xmlrpc.test_wire import BILLION_LAUGHS


class AgainstStdlibServerTests(TestCase):
    """Proxy against xmlrpc.server.SimpleXMLRPCServer running in a thread."""

    def setUp(self) -> None:
        self.stdlib = StdlibServer(allow_none=True)
        self.addCleanup(self.stdlib.stop)
        self.proxy = Proxy(self.stdlib.url, reactor, allow_none=True)
        self.addCleanup(self.proxy.close)

    async def test_calls(self) -> None:
        self.assertEqual(await self.proxy.call("add", 1, 2), 3)
        self.assertEqual(await self.proxy.add(2, 2), 4)
        self.assertEqual(await self.proxy.echo(None, [1.5, {"k": "v"}]), [None, [1.5, {"k": "v"}]])
        self.assertIn("add", await self.proxy.system.listMethods())

    async def test_fault_like_stdlib(self) -> None:
        with self.assertRaises(xmlrpc.client.Fault) as caught:
            await self.proxy.fail()
        self.assertIsInstance(caught.exception, Fault)
        self.assertEqual(caught.exception.faultCode, 99)

    async def test_multicall(self) -> None:
        multi = self.proxy.multicall()
        multi.add(1, 2)
        multi.fail()
        multi.echo("x")
        results = await multi()
        self.assertEqual(len(results), 3)
        self.assertEqual(results[0], 3)
        self.assertRaises(Fault, lambda: results[1])
        self.assertEqual(results[2], ["x"])

    async def test_protocol_error(self) -> None:
        proxy = Proxy(self.stdlib.url.replace("/RPC2", "/elsewhere"), reactor)
        self.addCleanup(proxy.close)
        with self.assertRaises(xmlrpc.client.ProtocolError) as caught:
            await proxy.add(1, 2)
        self.assertIsInstance(caught.exception, ProtocolError)
        self.assertEqual(caught.exception.errcode, 404)

    async def test_connection_reused(self) -> None:
        for i in range(5):
            self.assertEqual(await self.proxy.add(i, 1), i + 1)


class AgainstOurServerTests(TestCase):
    """Proxy against our server: attribute names, gzip, auth from the URL, reuse, limits."""

    async def test_everything(self) -> None:
        server = await serve_xmlrpc(reactor, sample_registry(), ServerSettings(allow_none=True))
        self.addCleanup(server.stop)
        proxy = Proxy(server.url, reactor, gzip_threshold=100, allow_none=True)
        self.addCleanup(proxy.close)
        self.assertEqual(await proxy.later.add(1, 2), 3)
        self.assertEqual(await proxy.coro_add(1, 2), 3)
        self.assertEqual(await proxy.echo("y" * 10_000), ["y" * 10_000])  # gzip both ways
        with self.assertRaises(Fault) as caught:
            await proxy.no.such.method()
        self.assertEqual(caught.exception.faultCode, METHOD_NOT_FOUND)
        self.assertEqual(len(server.resource.registry.list_methods()) > 5, True)
        self.assertRaises(AttributeError, getattr, proxy, "_private")

    async def test_a_call_leaves_no_garbage_cycles(self) -> None:
        """A finished call's objects, client and server side, are freed by refcounting alone.

        (An object cycle per call would leave each call to the cyclic garbage
        collector, whose passes then cost a good part of the CPU time per call.)
        """
        server = await serve_xmlrpc(reactor, sample_registry())
        self.addCleanup(server.stop)
        proxy = Proxy(server.url, reactor)
        self.addCleanup(proxy.close)
        for i in range(2):  # the connection is made and kept
            self.assertEqual(await proxy.add(i, 1), i + 1)
        with collector_finds_nothing(self):
            for i in range(3):
                self.assertEqual(await proxy.add(i, 2), i + 2)
                self.assertEqual(await proxy.later.add(i, 3), i + 3)

    async def test_connections_are_reused(self) -> None:
        server = await serve_xmlrpc(reactor, sample_registry())
        self.addCleanup(server.stop)
        built: list[object] = []
        build = server.guard.buildProtocol

        def counting(addr: Any) -> Any:
            built.append(addr)
            return build(addr)

        server.guard.buildProtocol = counting  # type: ignore[method-assign]
        proxy = Proxy(server.url, reactor)
        self.addCleanup(proxy.close)
        for _ in range(5):
            await proxy.add(1, 1)
        self.assertEqual(len(built), 1)


class _Canned:
    """An IPostTransport answering every post with one canned response (or never)."""

    def __init__(self, response: PostResponse | None) -> None:
        self.response = response
        self.posts: list[tuple[bytes, dict[bytes, bytes], bytes]] = []

    def post(self, url: bytes, headers: Any, body: bytes) -> Deferred[PostResponse]:
        self.posts.append((url, dict(headers), body))
        d: Deferred[PostResponse] = Deferred()
        if self.response is not None:
            d.callback(self.response)
        return d

    def close(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        d.callback(None)
        return d


class SeamTests(TestCase):
    """The client over a fake transport: auth header, timeouts, hostile responses."""

    def test_basic_auth_from_url(self) -> None:
        canned = _Canned(PostResponse(200, "OK", {}, dump_response(1)))
        transport: IPostTransport = canned
        proxy = Proxy("https://al%40ce:p%3Ass@example.com:8443/x", Clock(), transport=transport)
        self.assertEqual(self.successResultOf(proxy.ping()), 1)
        url, headers, _ = canned.posts[0]
        self.assertEqual(url, b"https://example.com:8443/x")
        self.assertEqual(headers[b"authorization"], b"Basic YWxAY2U6cDpzcw==")
        self.assertNotIn("p:ss", repr(proxy))

    def test_timeout(self) -> None:
        clock = Clock()
        proxy = Proxy("http://127.0.0.1/RPC2", clock, transport=_Canned(None), timeout=5)
        d = proxy.add(1, 2)
        clock.advance(5)
        self.failureResultOf(d, XMLRPCTimeout)

    def test_unsafe_response_refused(self) -> None:
        bomb = BILLION_LAUGHS.replace(b"methodCall", b"methodResponse")
        proxy = Proxy(
            "http://h/RPC2", Clock(), transport=_Canned(PostResponse(200, "OK", {}, bomb))
        )
        self.failureResultOf(proxy.add(1, 2), ResponseError)

    def test_gzip_bomb_response_refused(self) -> None:
        import gzip

        body = gzip.compress(b" " * 10_000_000)
        response = PostResponse(200, "OK", {"content-encoding": "gzip"}, body)
        proxy = Proxy(
            "http://h/RPC2", Clock(), transport=_Canned(response), max_response=1_000_000
        )
        self.failureResultOf(proxy.add(1, 2), Exception)

    def test_non_200(self) -> None:
        proxy = Proxy(
            "http://h/RPC2", Clock(), transport=_Canned(PostResponse(500, "Oops", {}, b""))
        )
        failure = self.failureResultOf(proxy.add(1, 2), ProtocolError)
        self.assertEqual(failure.value.errcode, 500)

    def test_unmarshallable_params_fail_the_deferred(self) -> None:
        proxy = Proxy("http://h/RPC2", Clock(), transport=_Canned(None))
        self.failureResultOf(proxy.add(object()), TypeError)
        self.assertRaises(ValueError, Proxy, "ftp://h/", Clock())


class _Silent(Protocol):
    pass


class TLSAndTimeoutTests(TestCase):
    """HTTPS is verified by default; a server that never answers times out."""

    async def test_self_signed_refused(self) -> None:
        from pathlib import Path

        from netproto_twisted.core.tls import ensure_dev_certificate

        registry = sample_registry()
        cert, key = ensure_dev_certificate(Path(self.mktemp()))
        endpoint = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        server = await serve_xmlrpc(reactor, registry, listen=[endpoint])
        self.addCleanup(server.stop)
        url = f"https://localhost:{server.port}/RPC2"
        proxy = Proxy(url, reactor)
        self.addCleanup(proxy.close)
        with self.assertRaises(Exception) as caught:
            await proxy.add(1, 2)
        self.assertNotIsInstance(caught.exception, (Fault, AssertionError))
        from twisted.internet import ssl

        trusted = Proxy(url, reactor, tls_trust=ssl.Certificate.loadPEM(cert.read_bytes()))
        self.addCleanup(trusted.close)
        self.assertEqual(await trusted.add(1, 2), 3)

    async def test_timeout_on_silent_server(self) -> None:
        port = reactor.listenTCP(0, Factory.forProtocol(_Silent), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        proxy = Proxy(f"http://127.0.0.1:{port.getHost().port}/RPC2", reactor, timeout=0.2)
        self.addCleanup(proxy.close)
        with self.assertRaises(XMLRPCTimeout):
            await proxy.add(1, 2)

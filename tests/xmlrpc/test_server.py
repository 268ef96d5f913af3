"""The server resource: dispatch, introspection, multicall, faults, docs, limits, auth."""

from __future__ import annotations

import base64
import gzip
import http.client
import threading
import xmlrpc.client
from typing import Any

from twisted.internet import reactor
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from netproto_twisted.core.auth import password_portal
from netproto_twisted.core.passwords import PasswordFile, synchronous_runner
from netproto_twisted.testing import XMLRPCTestServer, serve_xmlrpc
from netproto_twisted.xmlrpc import (
    MethodRegistry,
    ServerSettings,
    XMLRPCResource,
    XMLRPCSite,
    dump_request,
)
from netproto_twisted.xmlrpc.errors import (
    APPLICATION_ERROR,
    INTERNAL_ERROR,
    INVALID_METHOD_PARAMS,
    INVALID_XMLRPC,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
)
from tests.xmlrpc.helpers import sample_registry
from tests.xmlrpc.test_wire import BILLION_LAUGHS, XXE


class _Instance:
    def __init__(self) -> None:
        self.child = _Child()

    def hello(self, name: str) -> str:
        return f"hello {name}"

    def _private(self) -> str:
        return "secret"


class _Child:
    def grand(self) -> str:
        return "grandchild"


class StdlibClientTests(TestCase):
    """xmlrpc.client.ServerProxy (in a thread) against our server on loopback."""

    async def _server(
        self, registry: MethodRegistry | None = None, **settings: Any
    ) -> XMLRPCTestServer:
        server = await serve_xmlrpc(
            reactor, registry or sample_registry(), ServerSettings(**settings)
        )
        self.addCleanup(server.stop)
        return server

    def _proxy(self, url: str, **kwargs: Any) -> xmlrpc.client.ServerProxy:
        proxy = xmlrpc.client.ServerProxy(url, **kwargs)
        self.addCleanup(proxy("close"))
        return proxy

    async def test_calls_of_every_kind(self) -> None:
        server = await self._server()
        proxy = self._proxy(server.url)

        def calls() -> list[Any]:
            return [
                proxy.add(1, 2),
                proxy.later.add(2, 3),
                proxy.coro_add(3, 4),
                proxy.thread_name(),
                proxy.echo("x", [1, {"a": b"z"}]),
            ]

        got = await deferToThread(calls)
        self.assertEqual(got[:3], [3, 5, 7])
        self.assertNotEqual(got[3], threading.main_thread().name)
        self.assertEqual(got[4][1][1]["a"].data, b"z")

    async def test_faults_have_stable_codes_and_leak_nothing(self) -> None:
        server = await self._server()
        proxy = self._proxy(server.url)

        def fault_of(call: Any) -> tuple[int, str]:
            try:
                call()
            except xmlrpc.client.Fault as f:
                return f.faultCode, f.faultString
            raise AssertionError("no fault")

        def run() -> list[tuple[int, str]]:
            return [
                fault_of(proxy.boom),
                fault_of(proxy.nothing_here),
                fault_of(lambda: proxy.add(1)),
                fault_of(proxy.fault),
                fault_of(proxy.stdlib_fault),
                fault_of(proxy.unmarshallable),
            ]

        got = await deferToThread(run)
        self.assertEqual(got[0], (APPLICATION_ERROR, "application error"))
        self.assertEqual(got[1][0], METHOD_NOT_FOUND)
        self.assertEqual(got[2][0], INVALID_METHOD_PARAMS)
        self.assertEqual(got[3], (42, "the answer"))
        self.assertEqual(got[4], (7, "stdlib fault"))
        self.assertEqual(got[5], (INTERNAL_ERROR, "cannot marshal the result"))
        self.assertNotIn("secret", repr(got))
        self.flushLoggedErrors(KeyError)

    async def test_debug_shows_details(self) -> None:
        server = await self._server(debug=True)
        proxy = self._proxy(server.url)
        with self.assertRaises(xmlrpc.client.Fault) as caught:
            await deferToThread(proxy.boom)
        self.assertIn("KeyError", caught.exception.faultString)
        self.flushLoggedErrors(KeyError)

    async def test_introspection_and_multicall(self) -> None:
        server = await self._server()
        proxy = self._proxy(server.url)

        def run() -> list[Any]:
            multi = xmlrpc.client.MultiCall(proxy)
            multi.add(1, 2)
            multi.boom()
            multi.later.add(5, 5)
            multi.system.multicall([])
            results = multi().results  # type: ignore[attr-defined]
            return [
                proxy.system.listMethods(),
                proxy.system.methodHelp("add"),
                proxy.system.methodSignature("add"),
                proxy.system.methodSignature("echo"),
                results,
            ]

        names, help_text, signature, none, results = await deferToThread(run)
        self.assertIn("add", names)
        self.assertIn("later.add", names)
        self.assertIn("system.multicall", names)
        self.assertEqual(help_text, "Return <a> + b & nothing else.")
        self.assertEqual(signature, [["int", "int", "int"]])
        self.assertEqual(none, "signatures not supported")
        self.assertEqual(results[0], [3])
        self.assertEqual(results[1]["faultCode"], APPLICATION_ERROR)
        self.assertEqual(results[2], [10])
        self.assertEqual(results[3]["faultCode"], INVALID_METHOD_PARAMS)
        self.flushLoggedErrors(KeyError)

    async def test_instance_dotted_names_only_when_asked(self) -> None:
        registry = MethodRegistry()
        registry.register_instance(_Instance())
        server = await self._server(registry)
        proxy = self._proxy(server.url)

        def run() -> list[Any]:
            out: list[Any] = [proxy.hello("you")]
            for call in (proxy.child.grand, proxy._private):
                try:
                    out.append(call())
                except xmlrpc.client.Fault as f:
                    out.append(f.faultCode)
            return out

        self.assertEqual(
            await deferToThread(run), ["hello you", METHOD_NOT_FOUND, METHOD_NOT_FOUND]
        )
        registry.register_instance(_Instance(), allow_dotted_names=True)
        self.assertEqual((await deferToThread(run))[:2], ["hello you", "grandchild"])
        self.assertEqual((await deferToThread(run))[2], METHOD_NOT_FOUND)

    async def test_allow_none_and_builtin_types(self) -> None:
        registry = MethodRegistry()
        registry.register_function(lambda v: [type(v).__name__, v], "kind")
        server = await self._server(registry, allow_none=True, use_builtin_types=True)
        proxy = self._proxy(server.url, allow_none=True, use_builtin_types=True)
        got = await deferToThread(lambda: [proxy.kind(None), proxy.kind(b"x")])
        self.assertEqual(got, [["NoneType", None], ["bytes", b"x"]])

    async def test_attacks_are_faults(self) -> None:
        server = await self._server()
        results = []
        for body in (BILLION_LAUGHS, XXE, b"<methodCall><junk", b"\xff\xfe\x00garbage"):
            results.append(await _post(server, body))
        self.assertEqual([r[0] for r in results], [200] * 4)
        codes = [_fault_code(r[2]) for r in results]
        self.assertEqual(codes, [INVALID_XMLRPC, INVALID_XMLRPC, PARSE_ERROR, PARSE_ERROR])

    async def test_gzip_both_ways(self) -> None:
        server = await self._server()
        body = dump_request("echo", ["x" * 5000])
        status, headers, data = await _post(
            server, gzip.compress(body), {"Content-Encoding": "gzip", "Accept-Encoding": "gzip"}
        )
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("content-encoding"), "gzip")
        self.assertEqual(xmlrpc.client.loads(gzip.decompress(data))[0][0], ["x" * 5000])

    async def test_gzip_bomb_refused(self) -> None:
        server = await self._server(max_body=100_000)
        bomb = gzip.compress(b"<" * 50_000_000)
        self.assertLess(len(bomb), 100_000)
        status, _, _ = await _post(server, bomb, {"Content-Encoding": "gzip"})
        self.assertEqual(status, 413)
        status, _, _ = await _post(server, b"not gzip", {"Content-Encoding": "gzip"})
        self.assertEqual(status, 400)
        status, _, _ = await _post(server, b"x", {"Content-Encoding": "br"})
        self.assertEqual(status, 415)

    async def test_content_type_checked(self) -> None:
        server = await self._server()
        body = dump_request("add", [1, 2])
        status, _, _ = await _post(
            server, body, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        self.assertEqual(status, 415)
        status, _, _ = await _post(server, body, {"Content-Type": "text/xml; charset=utf-8"})
        self.assertEqual(status, 200)

    async def test_oversized_body_refused_before_it_is_sent(self) -> None:
        server = await self._server(max_body=10_000)

        def run() -> tuple[int, bytes]:
            conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
            try:
                conn.putrequest("POST", "/RPC2")
                conn.putheader("Content-Type", "text/xml")
                conn.putheader("Content-Length", str(10**9))
                conn.endheaders()  # no body at all: the answer must come anyway
                response = conn.getresponse()
                return response.status, response.read()
            finally:
                conn.close()

        status, body = await deferToThread(run)
        self.assertEqual((status, body), (413, b"request body too large\n"))

    async def test_documentation_page_escapes(self) -> None:
        registry = sample_registry()

        def evil() -> None:
            """<script>alert(1)</script>"""

        registry.register_function(evil, "<img src=x onerror=alert(1)>")
        server = await self._server(registry, title="<b>t</b>")

        def run() -> tuple[int, str, str]:
            conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
            try:
                conn.request("GET", "/RPC2")
                response = conn.getresponse()
                return (
                    response.status,
                    response.getheader("content-type", ""),
                    response.read().decode(),
                )
            finally:
                conn.close()

        status, kind, page = await deferToThread(run)
        self.assertEqual(status, 200)
        self.assertTrue(kind.startswith("text/html"))
        self.assertIn("<dt id='add'>add(a, b)</dt>", page)
        self.assertIn("Return &lt;a&gt; + b &amp; nothing else.", page)
        self.assertNotIn("<script>", page)
        self.assertNotIn("<img", page)
        self.assertIn("&lt;b&gt;t&lt;/b&gt;", page)


def _fault_code(data: bytes) -> int:
    try:
        xmlrpc.client.loads(data)
    except xmlrpc.client.Fault as f:
        return f.faultCode
    raise AssertionError(f"no fault in {data!r}")


async def _post(
    server: XMLRPCTestServer, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    def run() -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        try:
            conn.request(
                "POST", server.path, body, {"Content-Type": "text/xml", **(headers or {})}
            )
            response = conn.getresponse()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            conn.close()

    return await deferToThread(run)


class BodyLimitInMemoryTests(TestCase):
    """The stand-alone site refuses an oversized body before buffering it (no socket)."""

    def setUp(self) -> None:
        self.calls: list[int] = []
        registry = MethodRegistry()
        registry.register_function(lambda *a: self.calls.append(1) or 0, "count")
        self.site = XMLRPCSite(
            XMLRPCResource(registry, reactor, ServerSettings(max_body=1000)), "/RPC2"
        )

    def _connect(self) -> tuple[Any, StringTransport]:
        protocol = self.site.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.addCleanup(protocol.connectionLost, None)
        return protocol, transport

    def test_content_length(self) -> None:
        protocol, transport = self._connect()
        protocol.dataReceived(
            b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            b"Content-Length: 1001\r\n\r\n" + b"<" * 100
        )
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 "), transport.value())
        self.assertTrue(transport.disconnecting)
        protocol.dataReceived(b"<" * 901)
        self.assertEqual(self.calls, [])

    def test_chunked(self) -> None:
        protocol, transport = self._connect()
        protocol.dataReceived(
            b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(3):
            protocol.dataReceived(b"12c\r\n" + b"<" * 300 + b"\r\n")
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(b"12c\r\n" + b"<" * 300 + b"\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 "), transport.value())
        self.assertTrue(transport.disconnecting)
        protocol.dataReceived(b"0\r\n\r\n")
        self.assertEqual(self.calls, [])

    def test_within_limit_is_served(self) -> None:
        protocol, transport = self._connect()
        body = dump_request("count", [])
        protocol.dataReceived(
            b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.assertIn(b"200 OK", transport.value())
        self.assertEqual(self.calls, [1])


class AuthTests(TestCase):
    """Basic auth through twisted.cred."""

    async def test_basic_auth(self) -> None:
        path = self.mktemp()
        passwords = PasswordFile(path)
        passwords.add("alice", "wonderland-42", iterations=4096)
        portal = password_portal(PasswordFile(path), synchronous_runner)
        server = await serve_xmlrpc(reactor, sample_registry(), portal=portal)
        self.addCleanup(server.stop)
        body = dump_request("add", [1, 2])
        status, headers, _ = await _post(server, body)
        self.assertEqual(status, 401)
        self.assertIn("Basic", headers["www-authenticate"])
        bad = base64.b64encode(b"alice:wrong").decode()
        status, _, _ = await _post(server, body, {"Authorization": f"Basic {bad}"})
        self.assertEqual(status, 401)
        good = base64.b64encode(b"alice:wonderland-42").decode()
        for _ in range(2):  # the second is answered from the cache
            status, _, data = await _post(server, body, {"Authorization": f"Basic {good}"})
            self.assertEqual((status, xmlrpc.client.loads(data)[0][0]), (200, 3))
        proxy = xmlrpc.client.ServerProxy(server.url.replace("//", "//alice:wonderland-42@"))
        self.addCleanup(proxy("close"))
        self.assertEqual(await deferToThread(proxy.add, 2, 2), 4)


class MountedTests(TestCase):
    """The resource hung on another twisted.web Site (the combined daemon's web server)."""

    def _site(self, **settings: Any) -> Any:
        from twisted.web.resource import Resource
        from twisted.web.server import Site

        root = Resource()
        root.putChild(
            b"RPC2", XMLRPCResource(sample_registry(), reactor, ServerSettings(**settings))
        )
        return Site(root)

    def _exchange(self, site: Any, data: bytes) -> bytes:
        protocol = site.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.addCleanup(protocol.connectionLost, None)
        protocol.dataReceived(data)
        return bytes(transport.value())

    def test_call(self) -> None:
        body = dump_request("add", [2, 3])
        reply = self._exchange(
            self._site(),
            b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
        )
        self.assertIn(b"200 OK", reply)
        self.assertEqual(xmlrpc.client.loads(reply.split(b"\r\n\r\n", 1)[1])[0], (5,))

    def test_oversized_body_is_413(self) -> None:
        body = dump_request("echo", ["x" * 2000])
        reply = self._exchange(
            self._site(max_body=1000),
            b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
        )
        self.assertTrue(reply.startswith(b"HTTP/1.1 413 "), reply)


class AbruptDisconnectTests(TestCase):
    """A client that goes away before a Deferred result fires costs nothing and logs nothing."""

    def test_result_after_disconnect(self) -> None:
        from twisted.internet.defer import Deferred
        from twisted.python.failure import Failure

        from netproto_twisted.xmlrpc.errors import XMLRPCError

        pending: list[Deferred[int]] = []
        registry = MethodRegistry()

        def later() -> Deferred[int]:
            d: Deferred[int] = Deferred()
            pending.append(d)
            return d

        registry.register_function(later)
        site = XMLRPCSite(XMLRPCResource(registry, reactor), "/RPC2")
        protocol = site.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        body = dump_request("later", [])
        protocol.dataReceived(
            b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.assertEqual(len(pending), 1)
        protocol.connectionLost(Failure(XMLRPCError("gone")))
        pending[0].callback(1)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.flushLoggedErrors(), [])

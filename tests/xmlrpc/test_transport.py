"""The client's transports: connection failures as stdlib errors, reuse, retry, cap, timeouts."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectionRefusedError as TwistedRefused
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import IHostnameResolver, IResolutionReceiver
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from netproto_twisted.core.tls import ensure_dev_certificate
from netproto_twisted.http.client.errors import URLError
from netproto_twisted.testing import serve_xmlrpc
from netproto_twisted.xmlrpc import (
    ConnectionLost,
    ConnectionRefused,
    DirectTransport,
    HostNotFound,
    PoolTransport,
    Proxy,
    ResponseError,
    TLSError,
    TransportError,
    XMLRPCTimeout,
    dump_response,
)
from netproto_twisted.xmlrpc.transport import transport_error
from tests.xmlrpc.helpers import sample_registry

_ANSWER = dump_response(3)
_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n" % len(_ANSWER)


def _closed_port() -> int:
    """A loopback port nobody listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


class _OneAnswerPerConnection(Protocol):
    """Answers the first request of a connection; drops the connection at the second.

    That is a server whose idle timeout closed a kept-alive connection just
    as the client reused it.
    """

    def connectionMade(self) -> None:
        self.requests = 0
        self.factory.connections += 1  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        self.requests += data.count(b"POST ")
        if self.requests == 1:
            self.transport.write(_HEAD + _ANSWER)  # type: ignore[union-attr]
        else:
            self.transport.abortConnection()  # type: ignore[union-attr]


class _Scripted(Protocol):
    """Sends its factory's canned bytes at the first request, then closes."""

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(self.factory.reply)  # type: ignore[attr-defined,union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


@implementer(IHostnameResolver)
class _NoNames:
    """A resolver that knows no name."""

    def resolveHostName(
        self, receiver: IResolutionReceiver, hostName: str, *args: Any, **kwargs: Any
    ) -> IResolutionReceiver:
        receiver.resolutionBegan(None)  # type: ignore[arg-type]
        receiver.resolutionComplete()
        return receiver


class ConnectionErrorTests(TestCase):
    """Connection failures are the OSError subclasses xmlrpc.client users catch."""

    async def test_refused(self) -> None:
        port = _closed_port()
        for transport in (DirectTransport(reactor), PoolTransport(reactor)):
            proxy = Proxy(f"http://127.0.0.1:{port}/RPC2", reactor, transport=transport)
            self.addCleanup(transport.close)
            with self.assertRaises(ConnectionRefusedError) as caught:
                await proxy.add(1, 2)
            self.assertIsInstance(caught.exception, ConnectionRefused)
            self.assertIsInstance(caught.exception, OSError)
            self.assertEqual(caught.exception.errno, 111)
            self.assertIn(f"127.0.0.1:{port}", str(caught.exception))

    def test_name_not_found(self) -> None:
        memory = MemoryReactorClock()
        memory.nameResolver = _NoNames()  # type: ignore[assignment]
        proxy = Proxy("http://no-such-host.invalid/RPC2", memory)
        failure = self.failureResultOf(proxy.add(1, 2), HostNotFound)
        self.assertIsInstance(failure.value, socket.gaierror)
        self.assertIn("no-such-host.invalid", str(failure.value))

    async def test_tls_unverified(self) -> None:
        cert, key = ensure_dev_certificate(Path(self.mktemp()))
        endpoint = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
        server = await serve_xmlrpc(reactor, sample_registry(), listen=[endpoint])
        self.addCleanup(server.stop)
        proxy = Proxy(f"https://localhost:{server.port}/RPC2", reactor)
        self.addCleanup(proxy.close)
        with self.assertRaises(ssl.SSLError) as caught:
            await proxy.add(1, 2)
        self.assertIsInstance(caught.exception, TLSError)
        self.assertEqual(caught.exception.reason, "CERTIFICATE_VERIFY_FAILED")

    async def test_closed_before_answering(self) -> None:
        factory = Factory.forProtocol(_Scripted)
        factory.reply = b""  # type: ignore[attr-defined]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        proxy = Proxy(f"http://127.0.0.1:{port.getHost().port}/RPC2", reactor)
        self.addCleanup(proxy.close)
        with self.assertRaises(ConnectionResetError) as caught:
            await proxy.add(1, 2)
        self.assertIsInstance(caught.exception, ConnectionLost)

    async def test_body_cut_short(self) -> None:
        factory = Factory.forProtocol(_Scripted)
        factory.reply = _HEAD + _ANSWER[:20]  # type: ignore[attr-defined]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        proxy = Proxy(f"http://127.0.0.1:{port.getHost().port}/RPC2", reactor)
        self.addCleanup(proxy.close)
        with self.assertRaises(TransportError):
            await proxy.add(1, 2)

    async def test_not_http(self) -> None:
        factory = Factory.forProtocol(_Scripted)
        factory.reply = b"SSH-2.0-OpenSSH_9.0\r\n\r\n"  # type: ignore[attr-defined]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        proxy = Proxy(f"http://127.0.0.1:{port.getHost().port}/RPC2", reactor)
        self.addCleanup(proxy.close)
        with self.assertRaises(ResponseError):
            await proxy.add(1, 2)

    def test_mapping(self) -> None:
        """Each Twisted failure maps to its stdlib-like class; ours pass unchanged."""
        cases = [
            (TwistedRefused(), ConnectionRefused),
            (DNSLookupError("x"), HostNotFound),
            (URLError(TwistedRefused()), ConnectionRefused),
            (URLError("bad response: junk"), ResponseError),
        ]
        for error, expected in cases:
            mapped = transport_error(Failure(error), "h:1")
            self.assertIsInstance(mapped.value, expected)
            self.assertIs(mapped.value.__cause__, error)
        timeout = XMLRPCTimeout("slow")
        self.assertIs(transport_error(Failure(timeout), "h:1").value, timeout)
        cancelled = CancelledError()
        self.assertIs(transport_error(Failure(cancelled), "h:1").value, cancelled)


class PoolTransportTests(TestCase):
    """The pool transport (the HTTP client's pool) still carries calls, gzip included."""

    async def test_calls(self) -> None:
        server = await serve_xmlrpc(reactor, sample_registry())
        self.addCleanup(server.stop)
        transport = PoolTransport(reactor)
        self.addCleanup(transport.close)
        proxy = Proxy(server.url, reactor, transport=transport, gzip_threshold=100)
        self.assertEqual(await proxy.add(1, 2), 3)
        self.assertEqual(await proxy.echo("y" * 5000), ["y" * 5000])


class DirectTransportTests(TestCase):
    """Reuse, the stale retry, the connection cap, cancellation and the one-timer timeouts."""

    async def test_stale_connection_is_retried_once(self) -> None:
        factory = Factory.forProtocol(_OneAnswerPerConnection)
        factory.connections = 0  # type: ignore[attr-defined]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        proxy = Proxy(f"http://127.0.0.1:{port.getHost().port}/RPC2", reactor)
        self.addCleanup(proxy.close)
        self.assertEqual(await proxy.add(1, 2), 3)
        self.assertEqual(await proxy.add(1, 2), 3)  # the first connection drops it: resent
        self.assertEqual(factory.connections, 2)  # type: ignore[attr-defined]

    async def test_connection_cap(self) -> None:
        server = await serve_xmlrpc(reactor, sample_registry())
        self.addCleanup(server.stop)
        built: list[object] = []
        build = server.guard.buildProtocol

        def counting(addr: Any) -> Any:
            built.append(addr)
            return build(addr)

        server.guard.buildProtocol = counting  # type: ignore[method-assign]
        proxy = Proxy(server.url, reactor, max_connections=2)
        self.addCleanup(proxy.close)
        results = await _gather([proxy.add(i, 1) for i in range(9)])
        self.assertEqual(results, [i + 1 for i in range(9)])
        self.assertEqual(len(built), 2)
        self.assertEqual(await proxy.add(2, 2), 4)
        self.assertEqual(len(built), 2)

    def test_timeout_checked_by_one_timer(self) -> None:
        memory = MemoryReactorClock()
        proxy = Proxy("http://127.0.0.1:9/RPC2", memory, timeout=8)
        calls = [proxy.add(1, 2) for _ in range(3)]
        # The connection attempts have timers of their own; the calls share one.
        self.assertEqual(len(_timeout_timers(memory)), 1)
        memory.advance(7.9)
        for d in calls:
            self.assertNoResult(d)
        memory.advance(2)  # one tick (2 s at an 8 s timeout) later at most
        for d in calls:
            self.failureResultOf(d, XMLRPCTimeout)
        self.assertEqual(_timeout_timers(memory), [])

    def test_cancel_a_waiting_call(self) -> None:
        memory = MemoryReactorClock()
        proxy = Proxy("http://127.0.0.1:9/RPC2", memory, max_connections=1)
        first, second = proxy.add(1, 2), proxy.add(3, 4)
        second.cancel()
        self.failureResultOf(second, CancelledError)
        self.assertNoResult(first)
        self.assertEqual(len(memory.tcpClients), 1)

    def test_close_fails_waiting_calls(self) -> None:
        memory = MemoryReactorClock()
        transport = DirectTransport(memory)
        proxy = Proxy("http://127.0.0.1:9/RPC2", memory, transport=transport, timeout=None)
        d = proxy.add(1, 2)
        transport.close()
        self.failureResultOf(d, CancelledError)


async def _gather(calls: list[Deferred[Any]]) -> list[Any]:
    return [await d for d in calls]


def _timeout_timers(memory: MemoryReactorClock) -> list[Any]:
    return [c for c in memory.getDelayedCalls() if getattr(c.func, "__name__", "") == "_check"]

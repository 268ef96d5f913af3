"""Tests for core.net's eager writes: raw_tcp_connection, send_now, write_now, LineProtocol."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import defer, tcp
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core.access import ConnectionGuard, GuardedProtocol
from netproto_twisted.core.lineproto import LineFactory, LineProtocol
from netproto_twisted.core.net import raw_tcp_connection, send_now, write_now
from netproto_twisted.core.tls import ensure_dev_certificate, server_context


class FakeConnection:
    """The attributes send_now reads, with a socket that records what it is given."""

    def __init__(self) -> None:
        self._tempDataBuffer: list[bytes] = []
        self.dataBuffer = b""
        self.offset = 0
        self.connected = True
        self.disconnecting = False
        self._writeDisconnecting = False
        self._writeDisconnected = False
        self.TLS = False
        self.producer: Any = None
        self.producerPaused = False
        self.streamingProducer = False
        self.sent: list[bytes] = []
        self.take: int | None = None  # bytes the "kernel" accepts per send
        self.error: OSError | None = None
        self.socket = self

    def send(self, data: bytes) -> int:
        if self.error is not None:
            raise self.error
        n = len(data) if self.take is None else min(self.take, len(data))
        self.sent.append(data[:n])
        return n


class SendNowTests(SynchronousTestCase):
    """send_now sends only when nothing can overtake or be overtaken."""

    def test_sends_when_idle(self) -> None:
        c = FakeConnection()
        self.assertEqual(send_now(c, b"250 ok\r\n"), 8)
        self.assertEqual(c.sent, [b"250 ok\r\n"])

    def test_partial_send_reports_count(self) -> None:
        c = FakeConnection()
        c.take = 3
        self.assertEqual(send_now(c, b"abcdef"), 3)

    def test_refuses_when_anything_queued_or_closing(self) -> None:
        cases: list[tuple[str, Any]] = [
            ("_tempDataBuffer", [b"queued"]),
            ("dataBuffer", b"partly sent"),
            ("connected", False),
            ("disconnecting", True),
            ("_writeDisconnecting", True),
            ("_writeDisconnected", True),
            ("TLS", True),
            ("producerPaused", True),
        ]
        for name, value in cases:
            c = FakeConnection()
            setattr(c, name, value)
            self.assertEqual(send_now(c, b"x\r\n"), 0, name)
            self.assertEqual(c.sent, [], name)

    def test_partially_sent_buffer_keeps_order(self) -> None:
        """A dataBuffer whose first half went out already: the reply must queue behind it."""
        c = FakeConnection()
        c.dataBuffer = b"first\r\n"
        c.offset = 3
        transport = StringTransport()
        write_now(transport, b"second\r\n", c)
        self.assertEqual(c.sent, [])
        self.assertEqual(transport.value(), b"second\r\n")

    def test_pull_producer_refuses_streaming_allows(self) -> None:
        c = FakeConnection()
        c.producer = object()
        c.streamingProducer = False
        self.assertEqual(send_now(c, b"x"), 0)
        c.streamingProducer = True
        self.assertEqual(send_now(c, b"x"), 1)

    def test_socket_error_means_nothing_sent(self) -> None:
        c = FakeConnection()
        c.error = BlockingIOError()
        self.assertEqual(send_now(c, b"x"), 0)


class WriteNowTests(SynchronousTestCase):
    """write_now: all eager, the rest through transport.write in order, or all queued."""

    def test_all_sent(self) -> None:
        c = FakeConnection()
        transport = StringTransport()
        write_now(transport, b"250 ok\r\n", c)
        self.assertEqual(c.sent, [b"250 ok\r\n"])
        self.assertEqual(transport.value(), b"")

    def test_rest_queued_after_partial(self) -> None:
        c = FakeConnection()
        c.take = 4
        transport = StringTransport()
        write_now(transport, b"250 ok\r\n", c)
        self.assertEqual(b"".join(c.sent) + transport.value(), b"250 ok\r\n")
        self.assertEqual(transport.value(), b"ok\r\n")

    def test_no_connection_means_transport(self) -> None:
        transport = StringTransport()
        write_now(transport, b"x", None)
        self.assertEqual(transport.value(), b"x")


class RawConnectionUnitTests(SynchronousTestCase):
    def test_not_tcp(self) -> None:
        self.assertIsNone(raw_tcp_connection(StringTransport()))
        self.assertIsNone(raw_tcp_connection(None))

    def bare_connection(self, kind: type[tcp.Connection], family: int) -> Any:
        """A tcp.Connection subclass instance holding a socket and nothing else."""
        conn: Any = object.__new__(kind)
        sock = socket.socket(family, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        conn.socket = sock
        conn.TLS = False
        return conn

    def test_connection_class_lacking_attributes(self) -> None:
        """A connection class without the private attributes send_now reads gets no eager path."""

        class Bare(tcp.Connection):
            pass

        class Complete(tcp.Connection):
            pass

        self.assertIsNone(raw_tcp_connection(self.bare_connection(Bare, socket.AF_INET)))
        complete = self.bare_connection(Complete, socket.AF_INET)
        complete._tempDataBuffer = []
        complete.dataBuffer = b""
        complete._writeDisconnecting = complete._writeDisconnected = False
        self.assertIs(raw_tcp_connection(complete), complete)
        # Looked at once per class: the answer holds for the class's other instances.
        self.assertIsNone(raw_tcp_connection(self.bare_connection(Bare, socket.AF_INET)))
        v6 = self.bare_connection(Complete, socket.AF_INET6)
        self.assertIs(raw_tcp_connection(v6), v6)

    def test_unix_socket_connection(self) -> None:
        class Unix(tcp.Connection):
            pass

        conn = self.bare_connection(Unix, socket.AF_UNIX)
        conn._tempDataBuffer = []
        conn.dataBuffer = b""
        conn._writeDisconnecting = conn._writeDisconnected = False
        self.assertIsNone(raw_tcp_connection(conn))
        conn.socket = self.bare_connection(Unix, socket.AF_INET).socket
        self.assertIs(raw_tcp_connection(conn), conn)

    def test_line_protocol_on_test_transport_writes_through_transport(self) -> None:
        proto = _Lines()
        proto.factory = LineFactory(MemoryReactorClock())
        transport = StringTransport()
        proto.makeConnection(transport)
        self.assertIsNone(proto._eager)
        proto.send_line(b"hello")
        proto.send_lines([b"a", b"b"])
        self.assertEqual(transport.value(), b"hello\r\na\r\nb\r\n")


class _Lines(LineProtocol):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[bytes] = []

    def line_received(self, line: bytes) -> None:
        self.lines.append(line)


class _Collector(Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.made: Deferred[None] = Deferred()
        self.lost: Deferred[bytes] = Deferred()
        self.want: tuple[int, Deferred[bytes]] | None = None

    def connectionMade(self) -> None:
        self.made.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if self.want is not None and len(self.data) >= self.want[0]:
            d, self.want = self.want[1], None
            d.callback(bytes(self.data))

    def wait_for(self, n: int) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        if len(self.data) >= n:
            d.callback(bytes(self.data))
        else:
            self.want = (n, d)
        return d

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self.lost.callback(bytes(self.data))


class LoopbackTests(TestCase):
    """A LineProtocol server on 127.0.0.1 and a plain client: what reaches the peer, in order."""

    timeout = 20

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor

    @defer.inlineCallbacks
    def connect(
        self, guard: bool = False, unix: bool = False, idle_timeout: float | None = None
    ) -> Any:
        servers: list[_Lines] = []
        made: Deferred[None] = Deferred()
        lost: Deferred[None] = Deferred()

        class Server(_Lines):
            def connectionMade(self) -> None:
                super().connectionMade()
                servers.append(self)
                made.callback(None)

            def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
                super().connectionLost(reason)
                lost.callback(None)

        factory: Any = LineFactory(self.reactor)
        factory.protocol = Server
        if guard:
            factory = self.guard = ConnectionGuard(
                factory, self.reactor, idle_timeout=idle_timeout
            )
        client = _Collector()
        client_factory = ClientFactory.forProtocol(lambda: client)
        if unix:
            path = self.mktemp()
            port = self.reactor.listenUNIX(path, factory)
            connector = self.reactor.connectUNIX(path, client_factory)
        else:
            port = self.reactor.listenTCP(0, factory, interface="127.0.0.1")
            connector = self.reactor.connectTCP("127.0.0.1", port.getHost().port, client_factory)
        self.addCleanup(port.stopListening)
        yield client.made
        yield made

        def close() -> Deferred[Any]:
            connector.disconnect()
            return defer.gatherResults([lost, client.lost])

        self.addCleanup(close)
        return servers[0], client

    @defer.inlineCallbacks
    def test_plain_tcp_writes_eagerly(self) -> Any:
        server, client = yield self.connect()
        conn = server._eager
        self.assertIsInstance(conn, tcp.Connection)
        self.assertIs(conn, server.transport)
        server.send_line(b"220 hello")
        # Straight to the socket: nothing waits in the transport for the next turn.
        self.assertEqual((conn._tempDataBuffer, conn.dataBuffer), ([], b""))
        data = yield client.wait_for(11)
        self.assertEqual(data, b"220 hello\r\n")

    @defer.inlineCallbacks
    def test_guard_is_looked_through(self) -> Any:
        """A guard with an idle timeout wraps the protocol; the eager path looks through it."""
        server, client = yield self.connect(guard=True, idle_timeout=60)
        self.assertIsInstance(server.transport, GuardedProtocol)
        self.assertIsInstance(server._eager, tcp.Connection)
        self.assertIs(server._eager, server.transport.transport)
        server.send_line(b"ok")
        data = yield client.wait_for(4)
        self.assertEqual(data, b"ok\r\n")

    @defer.inlineCallbacks
    def test_guard_without_wrapper(self) -> Any:
        """A guard without an idle timeout leaves a line protocol on the TCP connection itself."""
        server, client = yield self.connect(guard=True)
        self.assertIsInstance(server.transport, tcp.Connection)
        self.assertIs(server._eager, server.transport)
        self.assertEqual(self.guard.connection_count, 1)
        self.assertEqual(self.guard.connections_from("127.0.0.1"), 1)
        server.send_line(b"ok")
        data = yield client.wait_for(4)
        self.assertEqual(data, b"ok\r\n")
        yield self.guard.close_all(5)
        self.assertEqual(self.guard.connection_count, 0)
        self.assertEqual(self.guard.per_host_counts, {})

    @defer.inlineCallbacks
    def test_queued_bytes_are_not_overtaken(self) -> Any:
        server, client = yield self.connect()
        server.transport.write(b"first\r\n")  # queued until the reactor's next turn
        server.send_line(b"second")
        self.assertEqual(server._eager._tempDataBuffer, [b"first\r\n", b"second\r\n"])
        data = yield client.wait_for(15)
        self.assertEqual(data, b"first\r\nsecond\r\n")

    @defer.inlineCallbacks
    def test_full_socket_partial_send_then_order(self) -> Any:
        """A write the kernel takes only in part: the rest and later lines follow in order."""
        server, client = yield self.connect()
        conn = server._eager
        conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        client.transport.pauseProducing()
        blob = bytes(range(256)) * 8192  # 2 MiB: more than the kernel buffers
        server.send_raw(blob)
        self.assertTrue(conn._tempDataBuffer)  # the part the kernel refused is queued
        server.send_line(b"tail")
        self.assertEqual(conn._tempDataBuffer[-1], b"tail\r\n")
        client.transport.resumeProducing()
        data = yield client.wait_for(len(blob) + 6)
        self.assertEqual(data, blob + b"tail\r\n")

    @defer.inlineCallbacks
    def test_closing_connection(self) -> Any:
        server, client = yield self.connect()
        server.send_line(b"221 bye")
        server.transport.loseConnection()
        self.assertEqual(send_now(server._eager, b"x"), 0)
        server.send_line(b"late")  # queued: written before the close, never eagerly
        data = yield client.lost
        self.assertEqual(data, b"221 bye\r\nlate\r\n")
        self.assertIsNone(server._eager)
        server.send_line(b"after loss")  # no error after the connection is gone

    @defer.inlineCallbacks
    def test_no_eager_path_after_starttls(self) -> Any:
        cert, key = ensure_dev_certificate(self.mktemp())
        server, client = yield self.connect()
        conn = server._eager
        server.send_line(b"220 go ahead")
        server.start_tls(server_context(cert, key))
        self.assertIsNone(server._eager)
        self.assertIsNone(raw_tcp_connection(server.transport))
        self.assertEqual(send_now(conn, b"plaintext"), 0)
        server.send_line(b"encrypted")  # goes to the TLS layer, not the socket
        data = yield client.wait_for(14)
        self.assertEqual(data[:14], b"220 go ahead\r\n")
        self.assertNotIn(b"encrypted", data)
        self.assertNotIn(b"plaintext", data)

    @defer.inlineCallbacks
    def test_unix_socket_has_no_eager_path(self) -> Any:
        server, client = yield self.connect(unix=True)
        self.assertIsNone(server._eager)
        server.send_line(b"hi")
        data = yield client.wait_for(4)
        self.assertEqual(data, b"hi\r\n")

"""The reactor-run adapter: AsyncSocket/AsyncReader/AsyncWriter, handlers, backpressure."""

from __future__ import annotations

import socket
import socketserver
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core.access import ConnectionGuard, GuardedProtocol
from netproto_twisted.sockserv.aio import (
    AsyncReader,
    AsyncSocket,
    AsyncStreamProtocol,
    AsyncWriter,
    IncompleteReadError,
)
from netproto_twisted.sockserv.common import HIGH_WATER, LOW_WATER
from netproto_twisted.sockserv.server import HandlerFactory
from tests.sockserv import sample_handlers
from tests.sockserv.test_threaded import _port, _rx, _start


def _socket() -> tuple[AsyncSocket, StringTransport, MemoryReactorClock]:
    clock = MemoryReactorClock()
    transport = StringTransport(
        hostAddress=IPv6Address("TCP", "::1", 7),
        peerAddress=IPv6Address("TCP", "::1", 50000),
    )
    return AsyncSocket(clock, transport), transport, clock


def _result(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


class AsyncSocketTests(SynchronousTestCase):
    """Reads, writes and backpressure of the socket a reactor-run handler sees."""

    def test_addresses_ipv6(self) -> None:
        sock, _, _ = _socket()
        self.assertEqual(sock.getpeername(), ("::1", 50000, 0, 0))
        self.assertEqual(sock.getsockname(), ("::1", 7, 0, 0))
        self.assertEqual(sock.family, socket.AF_INET6)

    def test_recv_waits_then_fires_with_at_most_n(self) -> None:
        sock, _, _ = _socket()
        d = sock.recv(4)
        self.assertNoResult(d)
        sock._on_data(b"abcdefg")
        self.assertEqual(self.successResultOf(d), b"abcd")
        self.assertEqual(self.successResultOf(sock.recv(100)), b"efg")

    def test_second_concurrent_read_refused(self) -> None:
        sock, _, _ = _socket()
        sock.recv(1)
        self.failureResultOf(sock.recv(1), RuntimeError)

    def test_eof_and_reset(self) -> None:
        sock, _, _ = _socket()
        d = sock.recv(10)
        sock._on_lost(Failure(ConnectionDone()))
        self.assertEqual(self.successResultOf(d), b"")
        sock2, _, _ = _socket()
        d2 = sock2.recv(10)
        sock2._on_lost(Failure(ConnectionLost()))
        self.assertEqual(self.successResultOf(d2), b"")
        self.failureResultOf(sock2.sendall(b"x"), ConnectionResetError)

    def test_timeout(self) -> None:
        sock, _, clock = _socket()
        sock.settimeout(2.0)
        d = sock.recv(10)
        clock.advance(1.9)
        self.assertNoResult(d)
        clock.advance(0.2)
        self.failureResultOf(d, TimeoutError)
        d2 = sock.recv(10)
        sock._on_data(b"in time")
        self.assertEqual(self.successResultOf(d2), b"in time")
        self.assertEqual(clock.getDelayedCalls(), [])
        sock.setblocking(False)
        self.failureResultOf(sock.recv(1), BlockingIOError)

    def test_readline_readexactly_read_all(self) -> None:
        sock, _, _ = _socket()
        reader = AsyncReader(sock)
        d = reader.readline()
        sock._on_data(b"partial")
        self.assertNoResult(d)
        sock._on_data(b" line\nnext")
        self.assertEqual(self.successResultOf(d), b"partial line\n")
        d = reader.readexactly(6)
        self.assertNoResult(d)
        sock._on_data(b"XY")
        self.assertEqual(self.successResultOf(d), b"nextXY")
        d = reader.read()
        sock._on_data(b"rest")
        sock._on_eof()
        self.assertEqual(self.successResultOf(d), b"rest")
        self.assertEqual(self.successResultOf(reader.readline()), b"")

    def test_readline_limit(self) -> None:
        sock, _, _ = _socket()
        reader = AsyncReader(sock)
        sock._on_data(b"x" * 10 + b"\n")
        self.assertEqual(self.successResultOf(reader.readline(4)), b"xxxx")

    def test_readexactly_early_eof(self) -> None:
        sock, _, _ = _socket()
        d = AsyncReader(sock).readexactly(5)
        sock._on_data(b"abc")
        sock._on_eof()
        err = self.failureResultOf(d, IncompleteReadError)
        self.assertEqual(err.value.partial, b"abc")

    def test_reading_pauses_only_without_waiter(self) -> None:
        sock, transport, _ = _socket()
        sock._on_data(b"a" * HIGH_WATER)
        self.assertEqual(transport.producerState, "paused")
        self.successResultOf(sock.recv(HIGH_WATER - LOW_WATER))
        self.assertEqual(transport.producerState, "producing")
        # A pending readexactly larger than the watermark keeps reading going.
        d = AsyncReader(sock).readexactly(HIGH_WATER * 2)
        sock._on_data(b"b" * HIGH_WATER)
        self.assertEqual(transport.producerState, "producing")
        sock._on_data(b"c" * HIGH_WATER)
        self.assertEqual(len(self.successResultOf(d)), HIGH_WATER * 2)

    def test_sendall_and_drain_follow_the_producer(self) -> None:
        sock, transport, _ = _socket()
        writer = AsyncWriter(sock)
        self.successResultOf(sock.sendall(b"one"))
        sock._on_write_paused(True)
        d = sock.sendall(b"two")
        drained = writer.drain()
        self.assertEqual(writer.write(b"three"), 5)
        self.assertNoResult(d)
        self.assertNoResult(drained)
        sock._on_write_paused(False)
        self.successResultOf(d)
        self.successResultOf(drained)
        self.assertEqual(transport.value(), b"onetwothree")
        self.assertEqual(self.successResultOf(sock.send(b"four")), 4)

    def test_close_and_write_after_close(self) -> None:
        sock, transport, _ = _socket()
        sock.close()
        self.assertTrue(transport.disconnecting)
        self.failureResultOf(sock.sendall(b"x"), OSError)
        self.failureResultOf(sock.recv(1), OSError)

    @given(st.lists(st.binary(min_size=1, max_size=50), max_size=20), st.integers(1, 64))
    def test_chunking_never_loses_bytes(self, chunks: list[bytes], n: int) -> None:
        """Whatever the chunking, alternating reads return the stream in order."""
        sock, _, _ = _socket()
        reader = AsyncReader(sock)
        got = bytearray()
        pending: list[Deferred[bytes]] = []

        def want() -> None:
            d = reader.readline(n) if len(got) % 2 else sock.recv(n)
            pending.append(d)
            d.addCallback(got_data)

        def got_data(data: bytes) -> None:
            got.extend(data)
            if data:
                want()

        want()
        for c in chunks:
            sock._on_data(c)
        sock._on_eof()
        self.assertEqual(bytes(got), b"".join(chunks))


class AsyncHandlerUnitTests(SynchronousTestCase):
    """Handlers driven through AsyncStreamProtocol on a StringTransport."""

    def _connect(self, handler: type) -> tuple[AsyncStreamProtocol, StringTransport]:
        clock = MemoryReactorClock()
        factory = HandlerFactory(handler, clock, ThreadPool())
        proto = factory.buildProtocol(None)
        assert isinstance(proto, AsyncStreamProtocol)
        transport = StringTransport(
            hostAddress=IPv6Address("TCP", "::1", 7),
            peerAddress=IPv6Address("TCP", "::1", 50000),
        )
        proto.makeConnection(transport)
        return proto, transport

    def test_async_line_handler(self) -> None:
        proto, transport = self._connect(sample_handlers.AsyncLineUpper)
        proto.dataReceived(b"hello\nwor")
        proto.dataReceived(b"ld\n")
        self.assertEqual(transport.value(), b"HELLO\nWORLD\n")
        proto.readConnectionLost()
        self.assertTrue(transport.disconnecting)

    def test_read_exactly_handler(self) -> None:
        proto, transport = self._connect(sample_handlers.AsyncReadExactly)
        proto.dataReceived(b"0005ab")
        proto.dataReceived(b"cde")
        self.assertEqual(transport.value(), b"edcba")
        self.assertTrue(transport.disconnecting)

    def test_run_on_reactor_deferred_handler(self) -> None:
        _, transport = self._connect(sample_handlers.RunOnReactorHello)
        self.assertEqual(transport.value(), b"hello from the reactor\n")
        self.assertTrue(transport.disconnecting)

    def test_exception_logged_connection_closed(self) -> None:
        proto, transport = self._connect(sample_handlers.AsyncBoom)
        proto.dataReceived(b"x")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_setup_and_finish_hooks(self) -> None:
        calls: list[str] = []

        class Hooks(socketserver.StreamRequestHandler):
            rfile: Any
            wfile: Any

            async def setup(self) -> None:  # type: ignore[override]
                calls.append("setup:" + type(self.rfile).__name__)

            async def handle(self) -> None:  # type: ignore[override]
                calls.append("handle")
                self.wfile.write(await self.rfile.readline())

            def finish(self) -> None:
                calls.append("finish")

        proto, transport = self._connect(Hooks)
        proto.dataReceived(b"x\n")
        self.assertEqual(calls, ["setup:AsyncReader", "handle", "finish"])
        self.assertEqual(transport.value(), b"x\n")

    def test_guard_counts_without_wrapper(self) -> None:
        """Without an idle timeout the guard hands out the connection itself, and counts it."""
        clock = MemoryReactorClock()
        factory = HandlerFactory(sample_handlers.AsyncLineUpper, clock, ThreadPool())
        peer = IPv6Address("TCP", "::1", 50000)
        guard = ConnectionGuard(factory, clock)
        proto = guard.buildProtocol(peer)
        assert isinstance(proto, AsyncStreamProtocol)
        proto.makeConnection(StringTransport(IPv6Address("TCP", "::1", 7), peer))
        self.assertEqual(list(guard.protocols), [proto])
        proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual((guard.protocols, factory.connections), ({}, set()))
        wrapped = ConnectionGuard(factory, clock, idle_timeout=5.0).buildProtocol(peer)
        self.assertIsInstance(wrapped, GuardedProtocol)


class AsyncLoopbackTests(TestCase):
    """Reactor-run handlers over real loopback sockets: backpressure both ways."""

    timeout = 30

    async def test_slow_reader_pauses_sendall(self) -> None:
        state: dict[str, Any] = {}
        paused: Deferred[int] = Deferred()

        class Flood(socketserver.BaseRequestHandler):
            async def handle(self) -> None:  # type: ignore[override]
                chunk = b"f" * 65536
                sent = 0
                while sent < 64 * 1024 * 1024:
                    d = self.request.sendall(chunk)
                    sent += len(chunk)
                    if not d.called:
                        tcp = self.request._transport
                        state["buffered"] = len(tcp.dataBuffer) - tcp.offset + tcp._tempDataLen
                        paused.callback(sent)
                        await d
                        return
                    await d

        _, addrs = await _start(self, Flood, ["tcp:0:interface=127.0.0.1"])
        client = socket.create_connection(("127.0.0.1", _port(addrs)))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.addCleanup(client.close)
        sent = await paused
        self.assertLess(sent, 64 * 1024 * 1024)
        # Paused just past Twisted's 64 KiB buffer: at most one more chunk is queued.
        self.assertLessEqual(state["buffered"], 256 * 1024)

    async def test_fast_sender_pauses_reading(self) -> None:
        release: Deferred[None] = Deferred()
        total: Deferred[int] = Deferred()

        class Lazy(socketserver.BaseRequestHandler):
            async def handle(self) -> None:  # type: ignore[override]
                await release
                n = 0
                while data := await self.request.recv(65536):
                    n += len(data)
                total.callback(n)

        service, addrs = await _start(self, Lazy, ["tcp:0:interface=127.0.0.1"])
        client = socket.create_connection(("127.0.0.1", _port(addrs)))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        self.addCleanup(client.close)

        def flood() -> int:
            client.settimeout(1.0)
            sent = 0
            try:
                while sent < 256 * 1024 * 1024:
                    sent += client.send(b"s" * 65536)
            except TimeoutError:
                return sent
            return -1

        sent = await deferToThread(flood)
        self.assertGreater(sent, 0)
        (proto,) = service.factory.connections
        self.assertTrue(proto.socket._read_paused)
        self.assertLessEqual(len(proto.socket._buf), HIGH_WATER + 65536)
        release.callback(None)
        client.shutdown(socket.SHUT_WR)
        self.assertEqual(await total, sent)

    async def test_builtin_echo_many_round_trips(self) -> None:
        _, addrs = await _start(self, "echo", ["tcp:0:interface=127.0.0.1"])
        port = _port(addrs)

        def client() -> int:
            with socket.create_connection(("127.0.0.1", port)) as s:
                for i in range(200):
                    msg = b"message %d\n" % i
                    s.sendall(msg)
                    assert _rx(s, len(msg)) == msg
                return 200

        self.assertEqual(await deferToThread(client), 200)

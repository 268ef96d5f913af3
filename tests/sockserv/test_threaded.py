"""The threaded adapter: ThreadedSocket unit tests, then real threads over loopback."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import socketserver
import ssl
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from twisted.internet import reactor as _reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core.tls import ensure_dev_certificate
from netproto_twisted.sockserv.common import HIGH_WATER, LOW_WATER, MAX_IN_FLIGHT
from netproto_twisted.sockserv.server import SockservService, make_sockserv_service
from netproto_twisted.sockserv.threaded import ThreadedSocket
from tests.sockserv import sample_handlers

reactor: Any = _reactor


class _ImmediateReactor:
    """``callFromThread`` runs at once: unit tests drive ThreadedSocket from one thread."""

    def callFromThread(self, f: Callable[..., Any], *args: Any) -> None:
        f(*args)


def _socket() -> tuple[ThreadedSocket, StringTransport]:
    transport = StringTransport(
        hostAddress=IPv4Address("TCP", "127.0.0.1", 9999),
        peerAddress=IPv4Address("TCP", "127.0.0.1", 40000),
    )
    return ThreadedSocket(_ImmediateReactor(), transport), transport


class ThreadedSocketTests(SynchronousTestCase):
    """The socket API a blocking handler sees, without threads."""

    def test_addresses(self) -> None:
        sock, _ = _socket()
        self.assertEqual(sock.getpeername(), ("127.0.0.1", 40000))
        self.assertEqual(sock.getsockname(), ("127.0.0.1", 9999))
        self.assertEqual(sock.family, socket.AF_INET)
        self.assertEqual(sock.type, socket.SOCK_STREAM)

    def test_recv_takes_buffered_data(self) -> None:
        sock, _ = _socket()
        sock._on_data(b"hello world")
        self.assertEqual(sock.recv(5), b"hello")
        self.assertEqual(sock.recv(100, socket.MSG_PEEK), b" world")
        buf = bytearray(10)
        self.assertEqual(sock.recv_into(buf), 6)
        self.assertEqual(bytes(buf[:6]), b" world")
        self.assertEqual(sock.recv(0), b"")

    def test_recv_eof_and_reset(self) -> None:
        sock, _ = _socket()
        sock._on_data(b"x")
        sock._on_lost(Failure(ConnectionDone()))
        self.assertEqual(sock.recv(10), b"x")
        self.assertEqual(sock.recv(10), b"")
        reset, _ = _socket()
        reset._on_lost(Failure(ConnectionLost()))
        self.assertEqual(reset.recv(10), b"")
        self.assertRaises(ConnectionResetError, reset.sendall, b"x")
        aborted, _ = _socket()
        aborted._on_abort()
        self.assertRaises(ConnectionAbortedError, aborted.recv, 10)

    def test_timeouts(self) -> None:
        sock, _ = _socket()
        sock.setblocking(False)
        self.assertFalse(sock.getblocking())
        self.assertRaises(BlockingIOError, sock.recv, 10)
        sock.settimeout(0.01)
        self.assertEqual(sock.gettimeout(), 0.01)
        self.assertRaises(socket.timeout, sock.recv, 10)
        self.assertRaises(ValueError, sock.settimeout, -1)

    def test_reading_pauses_above_high_water_and_resumes_below_low(self) -> None:
        sock, transport = _socket()
        sock._on_data(b"a" * (HIGH_WATER - 1))
        self.assertEqual(transport.producerState, "producing")
        sock._on_data(b"a")
        self.assertEqual(transport.producerState, "paused")
        sock.recv(HIGH_WATER - LOW_WATER - 1)
        self.assertEqual(transport.producerState, "paused")
        sock.recv(1)
        self.assertEqual(transport.producerState, "producing")

    def test_sendall_writes_in_order_and_blocks_while_paused(self) -> None:
        sock, transport = _socket()
        sock.sendall(b"abc")
        sock.sendall(memoryview(b"def"))
        self.assertEqual(transport.value(), b"abcdef")
        sock._on_write_paused(True)
        sock.settimeout(0.01)
        self.assertRaises(socket.timeout, sock.sendall, b"more")
        self.assertEqual(transport.value(), b"abcdef")
        sock._on_write_paused(False)
        sock.sendall(b"more")
        self.assertEqual(transport.value(), b"abcdefmore")

    def test_in_flight_bytes_are_bounded(self) -> None:
        sock, transport = _socket()
        # The reactor has not run the queued writes: the second piece must wait.
        queued: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        later = type("R", (), {"callFromThread": lambda _s, f, *a: queued.append((f, a))})
        sock._reactor = later()
        sock.settimeout(0.01)
        sock.sendall(b"x" * MAX_IN_FLIGHT)
        self.assertRaises(socket.timeout, sock.sendall, b"y")
        for f, a in queued:
            f(*a)
        self.assertEqual(len(transport.value()), MAX_IN_FLIGHT)

    def test_makefile_streams(self) -> None:
        sock, transport = _socket()
        rfile = sock.makefile("rb")
        sock._on_data(b"line one\nline two\n")
        sock._on_eof()
        self.assertEqual(rfile.readline(), b"line one\n")
        self.assertEqual(list(rfile), [b"line two\n"])
        wfile = sock.makefile("wb", 0)
        wfile.write(b"raw")
        text = sock.makefile("w", encoding="utf-8")
        text.write("héllo")
        text.flush()
        self.assertEqual(transport.value(), "rawhéllo".encode())
        self.assertRaises(ValueError, sock.makefile, "w", 0)

    def test_stream_request_handler_runs_unmodified(self) -> None:
        sock, transport = _socket()
        sock._on_data(b"ping\n")
        sock._on_eof()

        class Upper(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write(self.rfile.readline().upper())

        Upper(sock, sock.getpeername(), None)  # type: ignore[arg-type]
        self.assertEqual(transport.value(), b"PING\n")

    def test_fileno_refused(self) -> None:
        sock, _ = _socket()
        self.assertRaises(io.UnsupportedOperation, sock.fileno)
        self.assertRaises(OSError, sock.fileno)

    def test_shutdown_and_close(self) -> None:
        sock, transport = _socket()
        sock.shutdown(socket.SHUT_WR)
        self.assertRaises(BrokenPipeError, sock.sendall, b"late")
        self.assertTrue(transport.disconnecting)  # StringTransport has no half-close
        sock.close()
        sock.close()
        self.assertRaises(OSError, sock.recv, 1)


async def _start(
    test: TestCase, handler: Any, listen: list[str], **kw: Any
) -> tuple[SockservService, list[tuple[str, str]]]:
    service = make_sockserv_service(reactor, handler=handler, listen=listen, threads=4, **kw)
    service.startService()
    test.addCleanup(service.stopService)
    return service, await service.when_listening()


def _port(addresses: list[tuple[str, str]]) -> int:
    return int(addresses[0][1].rsplit(":", 1)[1])


def _rx(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        data = sock.recv(n - len(out))
        if not data:
            break
        out += data
    return bytes(out)


def _transport_buffered(protocol: Any) -> int:
    """Bytes waiting in the TCP transport (the guard counts the protocol without a wrapper)."""
    tcp = protocol.transport
    return int(len(tcp.dataBuffer) - tcp.offset + tcp._tempDataLen)


class ThreadedLoopbackTests(TestCase):
    """Blocking handlers in real pool threads, over real loopback sockets."""

    timeout = 30

    async def test_line_echo_and_half_close(self) -> None:
        _, addrs = await _start(self, sample_handlers.LineEcho, ["tcp:0:interface=127.0.0.1"])
        port = _port(addrs)

        def client() -> bytes:
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"one\ntwo\n")
                s.shutdown(socket.SHUT_WR)
                return _rx(s, 1 << 20)

        self.assertEqual(await deferToThread(client), b"one\ntwo\n")

    async def test_large_payload_half_close(self) -> None:
        _, addrs = await _start(self, sample_handlers.CountUntilEof, ["tcp:0:interface=127.0.0.1"])
        port = _port(addrs)
        size = 3 * HIGH_WATER + 12345

        def client() -> bytes:
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"z" * size)
                s.shutdown(socket.SHUT_WR)
                return _rx(s, 100)

        self.assertEqual(await deferToThread(client), b"%d\n" % size)

    async def test_write_order_kept_across_direct_and_queued_sends(self) -> None:
        for handler in (sample_handlers.SendNumbered, sample_handlers.AsyncSendNumbered):
            _, addrs = await _start(self, handler, ["tcp:0:interface=127.0.0.1"])
            port = _port(addrs)

            def client(port: int) -> bytes:
                with socket.create_connection(("127.0.0.1", port)) as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
                    return _rx(s, 64 << 20)

            got = await deferToThread(client, port)
            self.assertEqual(got, sample_handlers.numbered_stream(), handler.__name__)

    async def test_tls_and_unix(self) -> None:
        cert, key = ensure_dev_certificate(Path(self.mktemp()))
        short = tempfile.mkdtemp(prefix="sockserv-", dir="/tmp")
        self.addCleanup(shutil.rmtree, short, True)
        path = os.path.join(short, "s.sock")
        _, addrs = await _start(
            self,
            sample_handlers.LineEcho,
            [f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}", f"unix:{path}"],
        )
        self.assertEqual(addrs[1], ("unix", path))
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN

        def client() -> tuple[bytes, bytes]:
            raw = socket.create_connection(("127.0.0.1", _port(addrs)), timeout=10)
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"secret\n" * 1000)
                over_tls = _rx(tls, 7000)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as u:
                u.settimeout(10)
                u.connect(path)
                u.sendall(b"local\n")
                u.shutdown(socket.SHUT_WR)
                over_unix = _rx(u, 100)
            return over_tls, over_unix

        self.assertEqual(await deferToThread(client), (b"secret\n" * 1000, b"local\n"))

    async def test_direct_reads_honour_timeouts(self) -> None:
        outcome: Deferred[list[str]] = Deferred()

        class Timed(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                seen = [f"direct={self.request._direct}"]
                self.request.setblocking(False)
                try:
                    self.request.recv(10)
                except BlockingIOError:
                    seen.append("would block")
                self.request.settimeout(0.2)
                try:
                    self.request.recv(10)
                except TimeoutError:
                    seen.append("timed out")
                self.request.sendall(b"go\n")
                self.request.settimeout(None)
                seen.append(self.request.recv(10).decode())
                seen.append(repr(self.request.recv(10)))
                reactor.callFromThread(outcome.callback, seen)

        for idle in (None, 30.0):
            outcome = Deferred()
            _, addrs = await _start(self, Timed, ["tcp:0:interface=127.0.0.1"], idle_timeout=idle)

            def client(port: int) -> None:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    assert _rx(s, 3) == b"go\n"
                    s.sendall(b"ok")
                    s.shutdown(socket.SHUT_WR)
                    _rx(s, 10)

            await deferToThread(client, _port(addrs))
            direct = "direct=True" if idle is None else "direct=False"
            self.assertEqual(await outcome, [direct, "would block", "timed out", "ok", "b''"])

    async def test_peer_info_and_nodelay(self) -> None:
        _, addrs = await _start(self, sample_handlers.PeerInfo, ["tcp:0:interface=127.0.0.1"])
        port = _port(addrs)

        def client() -> tuple[str, tuple[str, int]]:
            with socket.create_connection(("127.0.0.1", port)) as s:
                return _rx(s, 4096).decode(), s.getsockname()

        text, local = await deferToThread(client)
        info = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        self.assertEqual(info["client"], repr(local))
        self.assertEqual(info["peer"], repr(local))
        self.assertEqual(info["sock"], repr(("127.0.0.1", port)))
        self.assertEqual(info["server_address"], repr(("127.0.0.1", port)))
        self.assertEqual(info["socket_type"], str(int(socket.SOCK_STREAM)))
        self.assertEqual(info["handler"], "PeerInfo")
        self.assertIn("socket-handlers", info["thread"])
        self.assertEqual(info["nodelay"], "True")

    async def test_handler_exception_is_logged_and_connection_closed(self) -> None:
        _, addrs = await _start(self, sample_handlers.Boom, ["tcp:0:interface=127.0.0.1"])
        port = _port(addrs)

        def client() -> bytes:
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"go\n")
                return s.recv(100)

        self.assertEqual(await deferToThread(client), b"")
        self.assertEqual(await deferToThread(client), b"")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)

    async def test_server_shutdown_refuses_new_requests(self) -> None:
        service, addrs = await _start(
            self, sample_handlers.ShutdownAfterReply, ["tcp:0:interface=127.0.0.1"]
        )
        port = _port(addrs)

        def client() -> bytes:
            with socket.create_connection(("127.0.0.1", port)) as s:
                return _rx(s, 100)

        self.assertEqual(await deferToThread(client), b"bye\n")
        self.assertEqual(await deferToThread(client), b"")
        self.assertTrue(service.factory.refusing)

    async def test_slow_reader_blocks_sendall_with_bounded_buffer(self) -> None:
        """A peer that does not read: sendall blocks; the transport buffer stays small."""
        blocked: Deferred[tuple[int, int]] = Deferred()
        total = 64 * 1024 * 1024
        holder: dict[str, Any] = {}

        class Flood(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(1.0)
                chunk = b"f" * 65536
                sent = 0
                try:
                    while sent < total:
                        self.request.sendall(chunk)
                        sent += len(chunk)
                except TimeoutError:
                    reactor.callFromThread(blocked.callback, (sent, 0))
                    return
                reactor.callFromThread(blocked.callback, (sent, 1))

        service, addrs = await _start(self, Flood, ["tcp:0:interface=127.0.0.1"])
        port = _port(addrs)
        client = socket.create_connection(("127.0.0.1", port))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.addCleanup(client.close)

        sent, finished = await blocked
        self.assertEqual(finished, 0, "sendall never blocked")
        self.assertLess(sent, total)
        (protocol,) = service.factory.connections
        holder["buffered"] = _transport_buffered(protocol)
        self.assertLessEqual(holder["buffered"], 512 * 1024)

    async def test_fast_sender_to_idle_handler_pauses_reading(self) -> None:
        """A handler that does not read: the daemon stops reading; nothing is lost."""
        release = threading.Event()
        result: Deferred[int] = Deferred()

        class Lazy(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                release.wait(20)
                total = 0
                while data := self.request.recv(65536):
                    total += len(data)
                reactor.callFromThread(result.callback, total)

        service, addrs = await _start(self, Lazy, ["tcp:0:interface=127.0.0.1"])
        port = _port(addrs)
        client = socket.create_connection(("127.0.0.1", port))
        self.addCleanup(client.close)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)

        def flood() -> int:
            client.settimeout(1.0)
            sent = 0
            chunk = b"s" * 65536
            try:
                while sent < 256 * 1024 * 1024:
                    sent += client.send(chunk)
            except TimeoutError:
                return sent
            return -1

        sent = await deferToThread(flood)
        self.assertGreater(sent, 0, "the client was never blocked")
        (protocol,) = service.factory.connections
        sock = protocol.socket
        self.assertTrue(sock._read_paused)
        self.assertLessEqual(len(sock._rbuf), HIGH_WATER + 65536)
        release.set()
        client.shutdown(socket.SHUT_WR)
        self.assertEqual(await result, sent)


class DirectModeTests(TestCase):
    """Plain TCP without an idle timeout: the handler thread owns the socket outright."""

    timeout = 30

    async def _serve(self, handler: Any, **kw: Any) -> tuple[SockservService, int, Deferred[None]]:
        """Start a service; the Deferred fires when its first connection is lost."""
        service = make_sockserv_service(
            reactor, handler=handler, listen=["tcp:0:interface=127.0.0.1"], threads=4, **kw
        )
        lost: Deferred[None] = Deferred()
        forget = service.factory.connection_lost
        losses: list[Any] = []

        def connection_lost(protocol: Any) -> None:
            losses.append(protocol)
            forget(protocol)
            if not lost.called:
                lost.callback(None)

        service.factory.connection_lost = connection_lost  # type: ignore[method-assign]
        self.losses = losses
        service.startService()

        async def stop() -> None:
            if service.running:
                await service.stopService()

        self.addCleanup(lambda: Deferred.fromCoroutine(stop()))
        addrs = await service.when_listening()
        return service, _port(addrs), lost

    async def test_reactor_leaves_the_socket_alone_and_closes_it_once(self) -> None:
        service, port, lost = await self._serve(sample_handlers.LineEcho)
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(client.close)

        def exchange() -> bytes:
            client.sendall(b"hi\n")
            return _rx(client, 3)

        self.assertEqual(await deferToThread(exchange), b"hi\n")
        (protocol,) = service.factory.connections
        sock = protocol.socket
        raw = sock._raw
        own = sock._own
        self.assertTrue(sock._direct)
        self.assertIsNotNone(own)
        self.assertNotEqual(own.fileno(), raw.fileno())
        self.assertIsNone(own.gettimeout())  # blocking, as under socketserver
        self.assertNotIn(raw, reactor.getReaders())
        self.assertNotIn(raw, reactor.getWriters())
        self.assertIsNone(raw.producer)
        guard: Any = service.endpoints[0]._factory
        self.assertEqual(guard.connection_count, 1)

        client.shutdown(socket.SHUT_WR)
        await lost
        self.assertEqual(await deferToThread(_rx, client, 10), b"")
        self.assertEqual(self.losses, [protocol])
        self.assertIsNone(sock._own)
        self.assertEqual(own.fileno(), -1)
        self.assertEqual(sock._handle.fileno(), -1)  # the reactor closed its descriptor
        self.assertEqual(guard.connection_count, 0)
        self.assertEqual(service.factory.connections, set())

    async def test_stop_wakes_handlers_blocked_in_recv_and_sendall(self) -> None:
        seen: list[str] = []
        started = threading.Semaphore(0)

        class Blocked(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                mode = self.request.recv(1)
                try:
                    if mode == b"r":
                        started.release()
                        self.request.recv(10)
                    else:
                        # Fill the kernel's buffers first: the sendall below blocks for sure.
                        self.request.setblocking(False)
                        with contextlib.suppress(BlockingIOError):
                            while True:
                                self.request.send(b"x" * 65536)
                        self.request.setblocking(True)
                        started.release()
                        while True:
                            self.request.sendall(b"x" * 65536)
                except ConnectionAbortedError:
                    seen.append(mode.decode())
                    raise

        events: list[str] = []

        def log_format(event: dict[str, Any]) -> None:
            events.append(str(event.get("log_format")))

        observer = cast(ILogObserver, log_format)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        service, port, _ = await self._serve(Blocked)
        clients = []
        for mode in (b"r", b"s"):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.addCleanup(c.close)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.settimeout(10)
            c.connect(("127.0.0.1", port))
            c.sendall(mode)
            clients.append(c)

        def wait_started() -> None:
            for _ in clients:
                assert started.acquire(timeout=10)

        await deferToThread(wait_started)
        self.assertEqual(len(service.factory.connections), 2)
        await service.stopService()
        # The pool stop waited for both threads: each was woken, neither timed out;
        # the connections closed at once, without the guard's abort after its timeout.
        self.assertEqual(sorted(seen), ["r", "s"])
        self.assertFalse([e for e in events if "aborting connection" in e], events)
        self.assertFalse([e for e in events if "still busy" in e], events)
        self.assertEqual(len(set(self.losses)), 2)
        self.assertEqual(len(self.losses), 2)
        guard: Any = service.endpoints[0]._factory
        self.assertEqual(guard.connection_count, 0)
        self.assertEqual(self.flushLoggedErrors(), [])

    async def test_abort_wakes_a_blocked_recv(self) -> None:
        woken: Deferred[str] = Deferred()

        class Waits(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.sendall(b"ready\n")
                try:
                    self.request.recv(10)
                except ConnectionAbortedError as e:
                    reactor.callFromThread(woken.callback, type(e).__name__)
                    raise

        service, port, lost = await self._serve(Waits)
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(client.close)
        self.assertEqual(await deferToThread(_rx, client, 6), b"ready\n")
        service.factory.abort_all()
        self.assertEqual(await woken, "ConnectionAbortedError")
        await lost
        self.assertEqual(len(self.losses), 1)
        self.assertEqual(self.flushLoggedErrors(), [])

    async def test_timeouts_and_send_errors_on_the_owned_socket(self) -> None:
        outcome: Deferred[list[str]] = Deferred()

        class Timed(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                seen = [f"direct={self.request._direct}"]
                self.request.settimeout(0.05)
                try:
                    while True:  # the peer does not read: sendall times out
                        self.request.sendall(b"y" * 65536)
                except TimeoutError:
                    seen.append("send timed out")
                buf = bytearray(4)
                try:
                    self.request.recv_into(buf)
                except TimeoutError:
                    seen.append("recv_into timed out")
                self.request.shutdown(socket.SHUT_WR)
                try:
                    self.request.sendall(b"late")
                except BrokenPipeError:
                    seen.append("broken pipe")
                reactor.callFromThread(outcome.callback, seen)

        _, port, lost = await self._serve(Timed)
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.addCleanup(client.close)
        self.assertEqual(
            await outcome,
            ["direct=True", "send timed out", "recv_into timed out", "broken pipe"],
        )
        client.close()
        await lost

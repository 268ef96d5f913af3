"""The coroutine driver of reactor-run handlers: direct resumes, plain Deferreds, errors, leaks."""

from __future__ import annotations

import contextlib
import gc
import socket
import socketserver
import weakref
from typing import Any

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.sockserv.aio import AsyncSocket, AsyncStreamProtocol
from netproto_twisted.sockserv.builtins import EchoHandler
from netproto_twisted.sockserv.server import HandlerFactory
from tests.sockserv.test_threaded import _port, _rx, _start

__all__ = ["DriverLeakTests", "DriverLoopbackTests", "DriverTests"]


class _Connected:
    """One handler connection over a StringTransport, driven by hand."""

    def __init__(self, handler: type, clock: MemoryReactorClock | None = None) -> None:
        self.clock = clock if clock is not None else MemoryReactorClock()
        self.factory = HandlerFactory(handler, self.clock, ThreadPool())
        proto = self.factory.buildProtocol(None)
        assert isinstance(proto, AsyncStreamProtocol)
        self.proto = proto
        self.transport = StringTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 7),
            peerAddress=IPv4Address("TCP", "127.0.0.1", 50000),
        )
        proto.makeConnection(self.transport)

    @property
    def sock(self) -> AsyncSocket:
        assert self.proto.socket is not None
        return self.proto.socket

    @property
    def done(self) -> bool:
        assert self.proto.driver is not None
        return self.proto.driver.done

    def lose(self, reason: Failure | None = None) -> None:
        """End the connection as a TCP transport does: drop its producer, tell the protocol."""
        producer = self.transport.producer
        if producer is not None:
            self.transport.producer = None
            producer.stopProducing()
        self.proto.connectionLost(reason if reason is not None else Failure(ConnectionDone()))


class DriverTests(SynchronousTestCase):
    """What a handler coroutine sees when it awaits socket operations and other Deferreds."""

    def test_plain_deferred_result_comes_back(self) -> None:
        gate: Deferred[bytes] = Deferred()

        class Handler(socketserver.BaseRequestHandler):
            async def handle(self) -> None:  # type: ignore[override]
                first = await self.request.recv(100)
                extra = await gate
                await self.request.sendall(first + extra)
                await self.request.sendall(await self.request.recv(100))

        c = _Connected(Handler)
        c.proto.dataReceived(b"one ")
        self.assertEqual(c.transport.value(), b"")
        c.proto.dataReceived(b"buffered meanwhile")
        gate.callback(b"two\n")
        self.assertEqual(c.transport.value(), b"one two\nbuffered meanwhile")
        self.assertTrue(c.done)
        self.assertTrue(c.transport.disconnecting)

    def test_plain_deferred_failure_raises_at_await(self) -> None:
        gate: Deferred[None] = Deferred()
        seen: list[str] = []

        class Handler(socketserver.BaseRequestHandler):
            async def handle(self) -> None:  # type: ignore[override]
                try:
                    await gate
                except KeyError as e:
                    seen.append(f"caught {e.args[0]}")
                await self.request.sendall(b"after\n")

        c = _Connected(Handler)
        gate.errback(Failure(KeyError("k")))
        self.assertEqual(seen, ["caught k"])
        self.assertEqual(c.transport.value(), b"after\n")
        self.assertTrue(c.done)

    def test_already_fired_deferreds_and_non_deferred_yields(self) -> None:
        class Handler(socketserver.BaseRequestHandler):
            async def handle(self) -> None:  # type: ignore[override]
                value = await succeed(b"pre-fired ")
                await self.request.sendall(value + await self.request.recv(10))

        c = _Connected(Handler)
        c.proto.dataReceived(b"data")
        self.assertEqual(c.transport.value(), b"pre-fired data")

    def test_callbacks_on_a_pending_read_run_before_the_resume(self) -> None:
        class Handler(socketserver.BaseRequestHandler):
            async def handle(self) -> None:  # type: ignore[override]
                d = self.request.recv(100)
                d.addCallback(bytes.upper)
                await self.request.sendall(await d)

        c = _Connected(Handler)
        c.proto.dataReceived(b"shout")
        self.assertEqual(c.transport.value(), b"SHOUT")

    def test_buffered_data_does_not_suspend(self) -> None:
        class Handler(socketserver.BaseRequestHandler):
            rfile: Any

            async def handle(self) -> None:  # type: ignore[override]
                async for line in self.rfile:
                    await self.request.sendall(b"<" + line.rstrip(b"\n") + b">")

        c = _Connected(Handler)
        c.proto.dataReceived(b"a\nb\nc\npartial")
        self.assertEqual(c.transport.value(), b"<a><b><c>")
        # A buffered read hands back a Deferred that has already fired.
        sock = AsyncSocket(c.clock, c.transport)
        sock._on_data(b"xyz")
        self.assertEqual(self.successResultOf(sock.recv(2)), b"xy")

    def test_exception_after_suspension_logged_finish_runs_closed(self) -> None:
        calls: list[str] = []
        gate: Deferred[None] = Deferred()

        class Handler(socketserver.BaseRequestHandler):
            async def handle(self) -> None:  # type: ignore[override]
                await self.request.recv(10)
                await gate
                raise ValueError("late failure")

            def finish(self) -> None:
                calls.append("finish")

        c = _Connected(Handler)
        c.proto.dataReceived(b"x")
        self.assertEqual(calls, [])
        self.assertFalse(c.transport.disconnecting)
        gate.callback(None)
        self.assertEqual(calls, ["finish"])
        self.assertTrue(c.transport.disconnecting)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertTrue(c.done)

    def test_connection_loss_while_suspended_in_recv(self) -> None:
        seen: list[Any] = []

        class Handler(socketserver.BaseRequestHandler):
            async def handle(self) -> None:  # type: ignore[override]
                seen.append(await self.request.recv(10))
                try:
                    await self.request.sendall(b"too late")
                except ConnectionError as e:
                    seen.append(type(e))

        c = _Connected(Handler)
        c.lose(Failure(ConnectionLost()))
        self.assertEqual(seen, [b"", ConnectionResetError])
        self.assertTrue(c.done)
        self.assertEqual(c.transport.value(), b"")

    def test_connection_loss_while_suspended_in_drain(self) -> None:
        seen: list[Any] = []

        class Handler(socketserver.BaseRequestHandler):
            async def handle(self) -> None:  # type: ignore[override]
                self.request._on_write_paused(True)  # as the transport does when full
                await self.request.sendall(b"queued")
                seen.append("drained")  # the transport stops its producer: the wait ends
                seen.append(await self.request.recv(10))  # then tells the protocol
                try:
                    await self.request.sendall(b"more")
                except ConnectionError as e:
                    seen.append(type(e))

        c = _Connected(Handler)
        self.assertEqual(seen, [])
        c.lose()
        self.assertEqual(seen, ["drained", b"", BrokenPipeError])
        self.assertTrue(c.done)

    def test_read_timeout_while_suspended(self) -> None:
        seen: list[Any] = []

        class Handler(socketserver.BaseRequestHandler):
            async def handle(self) -> None:  # type: ignore[override]
                self.request.settimeout(5)
                try:
                    await self.request.recv(10)
                except TimeoutError:
                    seen.append("timeout")
                seen.append(await self.request.recv(10))

        c = _Connected(Handler)
        c.clock.advance(5)
        self.assertEqual(seen, ["timeout"])
        c.proto.dataReceived(b"then data")
        self.assertEqual(seen, ["timeout", b"then data"])

    def test_cancelling_a_pending_read(self) -> None:
        seen: list[Any] = []
        held: list[Deferred[bytes]] = []

        class Handler(socketserver.BaseRequestHandler):
            async def handle(self) -> None:  # type: ignore[override]
                d = self.request.recv(10)
                held.append(d)
                try:
                    await d
                except CancelledError:
                    seen.append("cancelled")
                seen.append(await self.request.recv(10))

        c = _Connected(Handler)
        held[0].cancel()
        self.assertEqual(seen, ["cancelled"])
        c.proto.dataReceived(b"next")
        self.assertEqual(seen, ["cancelled", b"next"])

    def test_cancellation_on_stop(self) -> None:
        """abort() cancels a plain Deferred the handler awaits; quietly, finish runs."""
        never: Deferred[None] = Deferred()
        calls: list[str] = []

        class Handler(socketserver.BaseRequestHandler):
            async def handle(self) -> None:  # type: ignore[override]
                await never

            def finish(self) -> None:
                calls.append("finish")

        c = _Connected(Handler)
        c.factory.abort_all()
        self.assertEqual(calls, ["finish"])
        self.assertTrue(c.done)
        self.assertTrue(never.called)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_stop_leaves_a_pending_read_to_the_connection_end(self) -> None:
        seen: list[Any] = []

        class Handler(socketserver.BaseRequestHandler):
            async def handle(self) -> None:  # type: ignore[override]
                seen.append(await self.request.recv(10))

        c = _Connected(Handler)
        c.factory.abort_all()
        self.assertEqual(seen, [])
        self.assertFalse(c.done)
        c.lose(Failure(ConnectionLost()))
        self.assertEqual(seen, [b""])
        self.assertTrue(c.done)

    def test_cancelled_error_not_from_stop_is_logged(self) -> None:
        class Handler(socketserver.BaseRequestHandler):
            async def handle(self) -> None:  # type: ignore[override]
                raise CancelledError()

        c = _Connected(Handler)
        self.assertTrue(c.done)
        self.assertEqual(len(self.flushLoggedErrors(CancelledError)), 1)

    def test_run_on_reactor_deferred_fired_later(self) -> None:
        gate: Deferred[None] = Deferred()

        class Handler(socketserver.BaseRequestHandler):
            run_on_reactor = True

            def handle(self) -> Deferred[None]:  # type: ignore[override]
                d: Deferred[bytes] = self.request.recv(10)
                d.addCallback(lambda data: gate.addCallback(lambda _: data))
                return d.addCallback(self.request.sendall)

        c = _Connected(Handler)
        c.proto.dataReceived(b"ping")
        self.assertFalse(c.done)
        gate.callback(None)
        self.assertEqual(c.transport.value(), b"ping")
        self.assertTrue(c.done)
        self.assertTrue(c.transport.disconnecting)


class DriverLeakTests(SynchronousTestCase):
    """Finished connections leave nothing behind."""

    def test_ten_thousand_connections(self) -> None:
        """Clean ends free everything by reference counting alone; errors need the collector.

        An exception raised at an ``await`` of a failed Deferred forms a cycle
        (traceback -> ``Deferred.__await__`` frame -> Deferred -> Failure ->
        exception) in Twisted itself; the collector frees those.
        """
        clock = MemoryReactorClock()
        gates: list[Deferred[None]] = []

        class Gated(socketserver.BaseRequestHandler):
            async def handle(self) -> None:  # type: ignore[override]
                data = await self.request.recv(100)
                d: Deferred[None] = Deferred()
                gates.append(d)
                await d
                await self.request.sendall(data)
                if not await self.request.recv(100):
                    return

        class WritesAfterLoss(socketserver.BaseRequestHandler):
            async def handle(self) -> None:  # type: ignore[override]
                await self.request.sendall(await self.request.recv(100))
                await self.request.recv(100)
                with contextlib.suppress(ConnectionError):
                    await self.request.sendall(b"after loss")

        handlers: list[type] = [EchoHandler, Gated, WritesAfterLoss]
        clean: list[weakref.ref[Any]] = []
        failed: list[weakref.ref[Any]] = []
        gc.collect()
        gc.disable()
        try:
            before = len(gc.get_objects())
            for i in range(10_000):
                kind = i % 3
                c = _Connected(handlers[kind], clock)
                c.proto.dataReceived(b"hello")
                if gates:
                    gates.pop().callback(None)
                self.assertEqual(c.transport.value(), b"hello")
                c.lose(Failure(ConnectionLost()) if i % 2 else None)
                self.assertTrue(c.done)
                refs = failed if kind == 2 else clean
                refs.extend([weakref.ref(c.sock), weakref.ref(c.proto)])
                del c
            clean_alive = sum(1 for r in clean if r() is not None)
            collected = gc.collect()
            failed_alive = sum(1 for r in failed if r() is not None)
            # Less the weak references themselves, which the collector tracks.
            grown = len(gc.get_objects()) - before - len(clean) - len(failed)
        finally:
            gc.enable()
        self.assertEqual(clean_alive, 0)
        self.assertEqual(failed_alive, 0)
        self.assertGreater(collected, 0)
        self.assertLess(grown, 1_000, f"{grown} objects left behind")


class DriverLoopbackTests(TestCase):
    """The driver under a real reactor: a plain timer Deferred, and the daemon's stop."""

    timeout = 30

    async def test_awaiting_a_timer_then_echo(self) -> None:
        class Delayed(socketserver.BaseRequestHandler):
            async def handle(self) -> None:  # type: ignore[override]
                while data := await self.request.recv(100):
                    await deferLater(reactor, 0.001, lambda: None)
                    await self.request.sendall(data)

        _, addrs = await _start(self, Delayed, ["tcp:0:interface=127.0.0.1"])
        port = _port(addrs)

        def client() -> list[bytes]:
            with socket.create_connection(("127.0.0.1", port)) as s:
                out = []
                for i in range(20):
                    msg = b"%02d" % i
                    s.sendall(msg)
                    out.append(_rx(s, 2))
                return out

        self.assertEqual(await deferToThread(client), [b"%02d" % i for i in range(20)])

    async def test_stop_cancels_a_handler_awaiting_a_deferred(self) -> None:
        started: Deferred[None] = Deferred()
        outcome: Deferred[str] = Deferred()

        class Waits(socketserver.BaseRequestHandler):
            async def handle(self) -> None:  # type: ignore[override]
                started.callback(None)
                try:
                    await Deferred()
                except CancelledError:
                    outcome.callback("cancelled")
                    raise

        service, addrs = await _start(self, Waits, ["tcp:0:interface=127.0.0.1"])
        client = socket.create_connection(("127.0.0.1", _port(addrs)))
        self.addCleanup(client.close)
        await started  # fired from inside the handler: let it reach its await
        await deferLater(reactor, 0, lambda: None)
        service.factory.abort_all()  # what stopService does once the ports are closed
        self.assertEqual(await outcome, "cancelled")
        self.assertEqual(self.flushLoggedErrors(), [])

"""Tests for netproto_twisted.core.client: the reply queue every line client shares."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from netproto_twisted.core.client import (
    PendingReply,
    ReplyQueueFactory,
    ReplyQueueProtocol,
    client_endpoint,
    client_target,
    open_client,
)
from netproto_twisted.core.errors import NetprotoError


class Lost(NetprotoError):
    """This test protocol's connection-lost error."""


class Echo(ReplyQueueProtocol[PendingReply, str]):
    """A toy protocol: greeting ``+HI``; each line ``+text`` answers the oldest request."""

    lost_error = Lost

    def ask(self, line: bytes) -> defer.Deferred[Any]:
        d = self.enqueue(PendingReply())
        self.send_raw(line + b"\r\n")
        return d

    def line_received(self, line: bytes) -> None:
        if not self.greeted:
            if line.startswith(b"+"):
                self.greet(line[1:].decode())
            else:
                self.refuse_greeting(ValueError(line.decode()))
            return
        pending = self.next_pending()
        if pending is None or not line.startswith(b"+"):
            self.protocol_error(ValueError(f"unexpected {line!r}"))
            return
        self.pop_pending().deferred.callback(line[1:].decode())


def connect(timeout: float | None = 30.0) -> tuple[Echo, StringTransport, MemoryReactorClock]:
    clock = MemoryReactorClock()
    protocol = Echo(clock, timeout)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport, clock


class ReplyQueueTests(unittest.SynchronousTestCase):
    def test_greeting_then_replies_in_order(self) -> None:
        p, transport, _ = connect()
        self.assertFalse(p.greeted)
        p.dataReceived(b"+HI\r\n")
        self.assertEqual(self.successResultOf(p.greeting), "HI")
        first, second = p.ask(b"ONE"), p.ask(b"TWO")
        self.assertEqual(transport.value(), b"ONE\r\nTWO\r\n")
        self.assertEqual(p.pending, 2)
        p.dataReceived(b"+1\r\n+2\r\n")
        self.assertEqual((self.successResultOf(first), self.successResultOf(second)), ("1", "2"))
        self.assertEqual(p.pending, 0)

    def test_refused_greeting_closes(self) -> None:
        p, transport, _ = connect()
        p.dataReceived(b"-NO\r\n")
        self.failureResultOf(p.greeting, ValueError)
        self.assertTrue(transport.disconnecting)

    def test_connection_lost_fails_greeting_and_pending(self) -> None:
        p, _, _ = connect()
        closed = p.when_closed()
        p.connectionLost(Failure(ConnectionLost("reset")))
        failure = self.failureResultOf(p.greeting, Lost)
        self.assertIn("reset", str(failure.value))
        self.successResultOf(closed)
        self.successResultOf(p.when_closed())  # also after the fact
        self.assertRaises(Lost, p.ask, b"LATE")

    def test_connection_lost_fails_every_pending_request(self) -> None:
        p, _, _ = connect()
        p.dataReceived(b"+HI\r\n")
        asked = [p.ask(b"A"), p.ask(b"B")]
        p.connectionLost(Failure(defer.CancelledError()))
        for d in asked:
            self.failureResultOf(d, Lost)
        self.assertEqual(p.pending, 0)

    def test_protocol_error_fails_all_and_closes(self) -> None:
        p, transport, _ = connect()
        p.dataReceived(b"+HI\r\n")
        asked = [p.ask(b"A"), p.ask(b"B")]
        p.dataReceived(b"junk\r\n")
        for d in asked:
            self.failureResultOf(d, ValueError)
        self.assertTrue(transport.disconnecting)

    def test_push_front_takes_the_next_reply(self) -> None:
        p, _, _ = connect()
        p.dataReceived(b"+HI\r\n")
        later = p.ask(b"A")
        first = PendingReply()
        p.push_front(first)
        p.dataReceived(b"+x\r\n+y\r\n")
        self.assertEqual(self.successResultOf(first.deferred), "x")
        self.assertEqual(self.successResultOf(later), "y")

    def test_reply_timeout(self) -> None:
        p, transport, clock = connect(timeout=5)
        p.dataReceived(b"+HI\r\n")
        clock.advance(6)  # idle with nothing pending: fine, and timed again
        clock.advance(6)
        self.assertFalse(transport.disconnecting)
        asked = p.ask(b"A")
        clock.advance(6)
        failure = self.failureResultOf(asked, Lost)
        self.assertIn("timed out", str(failure.value))
        self.assertTrue(transport.disconnecting)

    def test_greeting_timeout(self) -> None:
        p, transport, clock = connect(timeout=5)
        clock.advance(6)
        self.failureResultOf(p.greeting, Lost)
        self.assertTrue(transport.disconnecting)

    def test_closed_message(self) -> None:
        class Control(Echo):
            closed_message = "control connection closed"

        p = Control(MemoryReactorClock())
        p.makeConnection(StringTransport())
        p.connectionLost(Failure(defer.CancelledError()))
        failure = self.failureResultOf(p.greeting, Lost)
        self.assertTrue(str(failure.value).startswith("control connection closed: "))

    def test_lose_once_closed_is_harmless(self) -> None:
        p, transport, _ = connect()
        p.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(p.greeting, Lost)
        transport.disconnecting = False
        p.lose()
        self.assertFalse(transport.disconnecting)


class FakeEndpoint:
    """Connects a factory's protocol to a StringTransport, or fails."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.transport = StringTransport()
        self.protocol: Any = None

    def connect(self, factory: Any) -> defer.Deferred[Any]:
        if self.error is not None:
            return defer.fail(self.error)
        self.protocol = factory.buildProtocol(None)
        self.protocol.makeConnection(self.transport)
        return defer.succeed(self.protocol)


def factory(clock: MemoryReactorClock) -> ReplyQueueFactory[Echo]:
    return ReplyQueueFactory(Echo, clock, 7)


class OpenClientTests(unittest.SynchronousTestCase):
    def test_set_up_result(self) -> None:
        clock = MemoryReactorClock()
        endpoint = FakeEndpoint()

        async def set_up(p: Echo) -> str:
            self.assertIs(p.clock, clock)
            self.assertEqual(p.idle_timeout, 7)
            return await p.greeting

        d = defer.ensureDeferred(
            open_client(endpoint, factory(clock), set_up, where="h:1")  # type: ignore[arg-type]
        )
        self.assertNoResult(d)
        protocol = endpoint.protocol
        protocol.dataReceived(b"+HELLO\r\n")
        self.assertEqual(self.successResultOf(d), "HELLO")

    def test_cannot_connect(self) -> None:
        endpoint = FakeEndpoint(ConnectionRefusedError())
        clock = MemoryReactorClock()

        async def set_up(p: Echo) -> None:
            raise AssertionError("not reached")

        d = defer.ensureDeferred(
            open_client(endpoint, factory(clock), set_up, where="h:1")  # type: ignore[arg-type]
        )
        failure = self.failureResultOf(d, Lost)
        self.assertIn("cannot connect to h:1", str(failure.value))

    def test_failed_set_up_closes(self) -> None:
        endpoint = FakeEndpoint()
        clock = MemoryReactorClock()

        async def set_up(p: Echo) -> str:
            return await p.greeting

        d = defer.ensureDeferred(
            open_client(endpoint, factory(clock), set_up, where="h:1")  # type: ignore[arg-type]
        )
        protocol = endpoint.protocol
        protocol.dataReceived(b"-GO AWAY\r\n")
        self.assertTrue(endpoint.transport.disconnecting)
        self.assertNoResult(d)  # waits for the close
        protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(d, ValueError)

    def test_client_endpoint(self) -> None:
        given = FakeEndpoint()
        self.assertIs(
            client_endpoint(None, "h", 1, timeout=1, endpoint=given), given  # type: ignore[arg-type]
        )
        from twisted.internet.ssl import optionsForClientTLS

        tls = optionsForClientTLS("localhost")
        clock = MemoryReactorClock()
        wrapped = client_endpoint(clock, "localhost", 1, timeout=1, implicit_tls=tls)
        self.assertIsNot(wrapped, given)
        self.assertEqual(type(wrapped).__name__, "_WrapperEndpoint")

    def test_ip_address_connects_directly(self) -> None:
        from twisted.internet.endpoints import (
            HostnameEndpoint,
            TCP4ClientEndpoint,
            TCP6ClientEndpoint,
        )

        clock = MemoryReactorClock()
        for host, kind in (
            ("127.0.0.1", TCP4ClientEndpoint),
            ("::1", TCP6ClientEndpoint),
            ("localhost", HostnameEndpoint),
        ):
            self.assertIsInstance(client_endpoint(clock, host, 1, timeout=1), kind)


class ClientTargetTests(unittest.SynchronousTestCase):
    modes = ("none", "starttls", "implicit")

    def target(self, tls: str, port: int | None = None) -> Any:
        return client_target(
            MemoryReactorClock(),
            "localhost",
            port,
            tls=tls,
            modes=self.modes,
            default_ports=(110, 995),
            tls_options=None,
            timeout=1,
        )

    def test_default_ports(self) -> None:
        self.assertEqual(self.target("none").port, 110)
        self.assertEqual(self.target("starttls").port, 110)
        self.assertEqual(self.target("implicit").port, 995)
        self.assertEqual(self.target("implicit", 1995).where, "localhost:1995")

    def test_options_unless_none(self) -> None:
        self.assertIsNone(self.target("none").tls_options)
        self.assertIsNotNone(self.target("starttls").tls_options)
        implicit = self.target("implicit")
        self.assertIsNotNone(implicit.tls_options)
        self.assertEqual(type(implicit.endpoint).__name__, "_WrapperEndpoint")

    def test_unknown_mode(self) -> None:
        with self.assertRaises(ValueError) as caught:
            self.target("bogus")
        self.assertIn("'bogus'", str(caught.exception))

"""netproto_twisted.testing.memory and smtp_memory: client/server pairs in memory."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.smtp import connect_smtp
from netproto_twisted.smtp.errors import SMTPAuthenticationError, SMTPSenderRefused
from netproto_twisted.testing import (
    MemoryEndpoint,
    NotSettled,
    connected_pair,
    memory_smtp_capture,
)
from netproto_twisted.testing.memory import CLIENT_ADDRESS, MAX_ROUNDS, SERVER_ADDRESS


class Echo(LineReceiver):
    """Greets with its peer's address, echoes lines, closes on ``bye``."""

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.sendLine(f"hello {peer.host}".encode())

    def lineReceived(self, line: bytes) -> None:
        if line == b"bye":
            self.transport.loseConnection()
        else:
            self.sendLine(line)


class Recorder(Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.reason = reason


class PingPong(Protocol):
    """Answers every byte with a byte: two of them never go quiet."""

    def connectionMade(self) -> None:
        self.transport.write(b"!")

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class PairTests(SynchronousTestCase):
    def test_greeting_delivered_and_addresses_loopback(self) -> None:
        pair = connected_pair(Factory.forProtocol(Echo), Recorder())
        self.assertEqual(pair.client.received, b"hello 127.0.0.1\r\n")
        self.assertEqual(pair.server_transport.getPeer(), CLIENT_ADDRESS)
        self.assertEqual(pair.client_transport.getPeer(), SERVER_ADDRESS)

    def test_nothing_moves_until_pumped(self) -> None:
        pair = connected_pair(Factory.forProtocol(Echo), Recorder(), greet=False)
        self.assertEqual(pair.client.received, b"")
        self.assertTrue(pair.pump())
        self.assertEqual(pair.client.received, b"hello 127.0.0.1\r\n")
        pair.client.transport.write(b"one\r\ntwo\r\n")
        self.assertFalse(pair.server.transport.stream)  # nothing answered yet
        self.assertTrue(pair.flush())
        self.assertEqual(pair.client.received, b"hello 127.0.0.1\r\none\r\ntwo\r\n")
        self.assertFalse(pair.flush())

    def test_server_closes(self) -> None:
        pair = connected_pair(Factory.forProtocol(Echo), Recorder())
        pair.client.transport.write(b"bye\r\n")
        pair.flush()
        self.assertIsNotNone(pair.client.reason)
        self.assertTrue(pair.disconnected)

    def test_client_closes(self) -> None:
        pair = connected_pair(Factory.forProtocol(Echo), Recorder())
        pair.close()
        self.assertTrue(pair.disconnected)
        self.assertIsNotNone(pair.client.reason)

    def test_client_factory_and_custom_addresses(self) -> None:
        seen: list[Any] = []

        class ClientFactory(Factory):
            protocol = Recorder

            def buildProtocol(self, addr: Any) -> Protocol | None:
                seen.append(addr)
                return super().buildProtocol(addr)

        client_address = IPv4Address("TCP", "192.0.2.7", 4000)
        pair = connected_pair(
            Factory.forProtocol(Echo), ClientFactory(), client_address=client_address
        )
        self.assertEqual(seen, [SERVER_ADDRESS])
        self.assertEqual(pair.client.received, b"hello 192.0.2.7\r\n")

    def test_advance_runs_timers_on_the_clock(self) -> None:
        clock = MemoryReactorClock()
        pair = connected_pair(Factory.forProtocol(Echo), Recorder(), clock=clock)
        clock.callLater(5, pair.server.transport.loseConnection)
        pair.advance(4)
        self.assertIsNone(pair.client.reason)
        pair.advance(1)
        self.assertIsNotNone(pair.client.reason)

    def test_refusals_and_bad_arguments(self) -> None:
        class Refusing(Factory):
            def buildProtocol(self, addr: Any) -> None:
                return None

        with self.assertRaises(ValueError):
            connected_pair(Refusing(), Recorder())
        with self.assertRaises(ValueError):
            connected_pair(Factory.forProtocol(Echo), Refusing())
        with self.assertRaises(TypeError):
            connected_pair(Factory.forProtocol(Echo), object())  # type: ignore[arg-type]

    def test_endless_exchange_is_reported(self) -> None:
        pair = connected_pair(Factory.forProtocol(PingPong), PingPong(), greet=False)
        with self.assertRaises(AssertionError) as caught:
            pair.flush()
        self.assertIn(str(MAX_ROUNDS), str(caught.exception))


class EndpointTests(SynchronousTestCase):
    def connect(self, endpoint: MemoryEndpoint) -> Deferred[Any]:
        return endpoint.connect(Factory.forProtocol(Recorder))

    def test_each_connection_is_a_pair(self) -> None:
        endpoint = MemoryEndpoint(Factory.forProtocol(Echo))
        first = endpoint.result_of(self.connect(endpoint))
        second = endpoint.result_of(self.connect(endpoint))
        self.assertEqual([p.client for p in endpoint.pairs], [first, second])
        self.assertIs(endpoint.pair.client, second)
        first.transport.write(b"a\r\n")
        second.transport.write(b"b\r\n")
        self.assertTrue(endpoint.flush())
        self.assertTrue(first.received.endswith(b"a\r\n"))
        self.assertTrue(second.received.endswith(b"b\r\n"))
        self.assertFalse(endpoint.flush())

    def test_no_pair_yet(self) -> None:
        with self.assertRaises(LookupError):
            _ = MemoryEndpoint(Factory.forProtocol(Echo)).pair

    def test_result_of_raises_the_failure(self) -> None:
        endpoint = MemoryEndpoint(Factory.forProtocol(Echo))
        failed: Deferred[None] = Deferred()
        failed.errback(KeyError("k"))
        with self.assertRaises(KeyError):
            endpoint.result_of(failed)

    def test_result_of_a_deferred_that_never_fires(self) -> None:
        endpoint = MemoryEndpoint(Factory.forProtocol(Echo))
        with self.assertRaises(NotSettled):
            endpoint.result_of(Deferred())

    def test_result_of_a_timer(self) -> None:
        endpoint = MemoryEndpoint(Factory.forProtocol(Echo))
        d: Deferred[str] = Deferred()
        endpoint.clock.callLater(0, d.callback, "now")
        self.assertEqual(endpoint.result_of(d), "now")
        later: Deferred[str] = Deferred()
        endpoint.clock.callLater(10, later.callback, "later")
        with self.assertRaises(NotSettled):
            endpoint.result_of(later)
        endpoint.advance(10)


class MemorySMTPCaptureTests(SynchronousTestCase):
    """Our SMTP client and our SMTP server, joined in memory."""

    def test_send_and_capture(self) -> None:
        capture = memory_smtp_capture()
        refused = capture.send_mail(
            "a@example.com",
            ["b@example.org", "c@example.org"],
            b"Subject: in memory\r\n\r\n.leading dot\r\n",
        )
        self.assertEqual(refused, {})
        [mail] = capture.messages
        self.assertEqual(
            (mail.mail_from, mail.rcpt_to), ("a@example.com", ["b@example.org", "c@example.org"])
        )
        self.assertEqual(mail.raw, b"Subject: in memory\r\n\r\n.leading dot\r\n")
        self.assertEqual(mail.message["Subject"], "in memory")
        self.assertTrue(mail.received.startswith("Received: from [127.0.0.1]"), mail.received)
        self.assertTrue(capture.endpoint.pair.disconnected)  # the client said QUIT
        self.assertEqual(capture.clock.getDelayedCalls(), [])

    def test_waits_fire_on_the_clock(self) -> None:
        capture = memory_smtp_capture()
        d = capture.wait_for_messages(1)
        self.assertNoResult(d)
        capture.send_mail("a@example.com", ["b@example.org"], b"Subject: x\r\n\r\ny\r\n")
        [message] = self.successResultOf(d)
        self.assertEqual(message["Subject"], "x")

    def test_auth_in_memory(self) -> None:
        capture = memory_smtp_capture(auth_users={"ann": "s3cret"})
        with self.assertRaises(SMTPSenderRefused):
            capture.send_mail("a@example.com", ["b@example.org"], b"x\r\n")  # 530 before AUTH
        with self.assertRaises(SMTPAuthenticationError):
            capture.send_mail(
                "a@example.com", ["b@example.org"], b"x\r\n", username="ann", password="wrong"
            )
        capture.send_mail(
            "a@example.com", ["b@example.org"], b"x\r\n", username="ann", password="s3cret"
        )
        self.assertEqual(capture.messages[0].envelope.authenticated_as, "ann")

    def test_a_session_with_our_client(self) -> None:
        capture = memory_smtp_capture(max_size=1000)
        client = capture.endpoint.result_of(
            connect_smtp(
                capture.clock, capture.host, capture.port, tls="none", endpoint=capture.endpoint
            )
        )
        self.assertEqual(client.extensions.max_size, 1000)
        self.assertNotIn("STARTTLS", str(client.extensions))
        with self.assertRaises(SMTPSenderRefused):
            capture.endpoint.result_of(
                client.send_message("a@example.com", ["b@example.org"], b"x" * 2000)
            )
        for n in range(3):
            capture.endpoint.result_of(
                client.send_message("a@example.com", ["b@example.org"], b"n%d\r\n" % n)
            )
        capture.endpoint.result_of(client.quit())
        self.assertEqual([m.raw for m in capture.messages], [b"n0\r\n", b"n1\r\n", b"n2\r\n"])

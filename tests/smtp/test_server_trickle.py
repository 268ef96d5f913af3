"""A client trickling one byte every 10 s is closed with ``421 4.4.2``, in a command or in DATA.

The idle timeout restarts on every byte, so it never catches such a client;
the plumbing's deadlines do: a command line must be complete ``line_timeout``
seconds after its first byte, and a message transfer must average
``min_transfer_rate`` bytes a second (``transfer_timeout`` ahead at most).
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core.limits import DEFAULT_LIMITS, Limits
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.smtp import tap as smtp_tap
from netproto_twisted.smtp.delivery import CaptureTarget, DefaultPolicy
from netproto_twisted.smtp.server import ServerSettings, SMTPServerFactory, SMTPServerProtocol
from netproto_twisted.smtp.tap import Config

reactor: Any = _reactor

TIMEOUT_REPLY = "421 4.4.2 Error: timeout exceeded"


class Client:
    """One SMTP server connection on a StringTransport, driven by a MemoryReactorClock."""

    def __init__(self, limits: Limits | None = None, idle_timeout: float = 300.0) -> None:
        self.clock = MemoryReactorClock()
        self.local = CaptureTarget()
        policy = DefaultPolicy(
            ["example.org"], self.local, CaptureTarget(), user_exists=lambda user: True
        )
        settings = ServerSettings(hostname="mx.example.org", idle_timeout=idle_timeout)
        self.factory = SMTPServerFactory(self.clock, policy, settings)
        if limits is not None:
            self.factory.apply_limits(limits)
        address = IPv4Address("TCP", "192.0.2.10", 40000)
        proto = self.factory.buildProtocol(address)
        assert isinstance(proto, SMTPServerProtocol)
        self.proto = proto
        self.transport = StringTransport(peerAddress=address)
        self._seen = 0
        proto.makeConnection(self.transport)

    def output(self) -> list[str]:
        data = self.transport.value()
        new, self._seen = data[self._seen :], len(data)
        return [line for line in new.decode("utf-8").split("\r\n") if line]

    def send(self, data: bytes) -> list[str]:
        self.proto.dataReceived(data)
        return self.output()

    def trickle(self, data: bytes, every: float = 10.0) -> tuple[int, list[str]]:
        """Send ``data`` one byte every ``every`` seconds until the server closes.

        Returns how many bytes were sent and the replies seen.
        """
        replies: list[str] = []
        for i in range(len(data)):
            if self.transport.disconnecting:
                return i, replies
            self.proto.dataReceived(data[i : i + 1])
            self.clock.advance(every)
            replies += self.output()
        return len(data), replies


class TrickleTests(SynchronousTestCase):
    """The 1-byte-per-10-s trickle against the SMTP server with its default limits."""

    def test_defaults(self) -> None:
        """The shared defaults: 300 s per command line, 300 s + 500 B/s per transfer."""
        self.assertEqual(DEFAULT_LIMITS.line_timeout, 300.0)
        self.assertEqual(DEFAULT_LIMITS.transfer_timeout, 300.0)
        self.assertEqual(DEFAULT_LIMITS.min_transfer_rate, 500.0)
        c = Client()
        self.assertEqual(c.proto.line_timeout, 300.0)
        self.assertEqual(c.proto.transfer_timeout, 300.0)

    def test_trickled_command_line(self) -> None:
        c = Client()
        c.output()
        sent, replies = c.trickle(b"EHLO " + b"x" * 100 + b"\r\n")
        self.assertEqual(replies, [TIMEOUT_REPLY])
        self.assertTrue(c.transport.disconnecting)
        # 300 s after the first byte, with a byte every 10 s: 30 bytes went in.
        self.assertEqual(sent, 30)
        self.assertEqual(c.clock.seconds(), 300.0)

    def test_trickled_data(self) -> None:
        c = Client()
        c.output()
        c.send(b"EHLO client.example\r\n")
        replies = c.send(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
        self.assertEqual([r[:3] for r in replies], ["250", "250", "354"])
        start = c.clock.seconds()
        body = b"Subject: slow\r\n\r\n" + b"y" * 1000 + b"\r\n.\r\n"
        sent, replies = c.trickle(body)
        self.assertEqual(replies, [TIMEOUT_REPLY])
        self.assertTrue(c.transport.disconnecting)
        self.assertEqual(c.local.messages, [])
        # Each byte buys 1/500 s: the transfer ends at ~300 s, not at the end of the body.
        elapsed = c.clock.seconds() - start
        self.assertTrue(300.0 <= elapsed <= 310.0, elapsed)
        self.assertEqual(sent, 31)

    def test_trickled_bdat(self) -> None:
        c = Client()
        c.output()
        c.send(b"EHLO client.example\r\n")
        c.send(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<bob@example.org>\r\n")
        command = b"BDAT 1000 LAST\r\n"
        sent, replies = c.trickle(command + b"z" * 1000)
        self.assertEqual(replies, [TIMEOUT_REPLY])
        self.assertEqual(c.local.messages, [])
        # The command line took 160 s (under its 300 s); then the chunk got ~300 s.
        self.assertEqual(sent, len(command) + 30)
        self.assertTrue(450.0 <= c.clock.seconds() <= 470.0, c.clock.seconds())

    def test_idle_timeout_alone_never_fires(self) -> None:
        """What the defect was: with the deadlines off, the trickle goes on for ever."""
        c = Client()
        c.proto.line_timeout = None
        c.output()
        sent, replies = c.trickle(b"NOOP " + b"x" * 200 + b"\r\n")
        self.assertEqual(sent, 207)
        self.assertEqual(replies, ["250 2.0.0 Ok"])
        self.assertFalse(c.transport.disconnecting)

    def test_normal_sessions_unaffected(self) -> None:
        """A client that sends whole lines, however slowly between them, is not cut off."""
        c = Client()
        c.output()
        for _ in range(5):
            c.clock.advance(250)
            self.assertEqual(c.send(b"NOOP\r\n"), ["250 2.0.0 Ok"])
        c.send(b"EHLO client.example\r\n")
        c.send(b"MAIL FROM:<a@client.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
        # A 1 MB message at 50 kB/s (20 s) goes through.
        for _ in range(20):
            c.send(b"x" * 49_998 + b"\r\n")
            c.clock.advance(1)
        replies = c.send(b".\r\n")
        self.assertTrue(replies[0].startswith("250 "), replies)
        self.assertEqual(len(c.local.messages), 1)

    def test_limits_from_the_factory(self) -> None:
        """The daemon's limits reach the protocol through the factory (smtp/tap.py does this)."""
        c = Client(Limits(line_timeout=30.0, transfer_timeout=60.0, min_transfer_rate=10.0))
        c.output()
        sent, replies = c.trickle(b"HELO " + b"h" * 50 + b"\r\n", every=5.0)
        self.assertEqual(replies, [TIMEOUT_REPLY])
        self.assertEqual(sent, 6)


class TapWiringTests(TestCase):
    """The deadline limits and ``backlog`` reach the SMTP server from its tap."""

    def test_limits_reach_factories_and_listeners(self) -> None:
        limits = Limits(
            line_timeout=42.0, transfer_timeout=43.0, min_transfer_rate=44.0, backlog=77
        )
        config = Config(submission=("tcp:0:interface=127.0.0.1",))
        root = smtp_tap.build_service(
            config, reactor, data_dir=Path(self.mktemp()), tls=None,
            complete_endpoint=lambda text: text, limits=limits,
        )  # fmt: skip
        listeners = [s for s in root if isinstance(s, EndpointsService)]
        self.assertEqual(len(listeners), 2)
        for listener in listeners:
            self.assertEqual(listener.backlog, 77)
            guard: Any = listener._factory
            factory = guard.wrappedFactory
            self.assertIsInstance(factory, SMTPServerFactory)
            proto = factory.buildProtocol(IPv4Address("TCP", "192.0.2.1", 1))
            self.assertEqual(
                (proto.line_timeout, proto.transfer_timeout, proto.min_transfer_rate),
                (42.0, 43.0, 44.0),
            )

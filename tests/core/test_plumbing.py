"""Tests for core.plumbing: a protocol without line framing, decoders, pause/resume, deadlines."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.limits import Limits
from netproto_twisted.core.lineproto import LineFactory, LineProtocol
from netproto_twisted.core.plumbing import (
    DEADLINE_LINE,
    DEADLINE_TRANSFER,
    ConnectionPlumbing,
    IdentityDecoder,
)

IAC, DO, DONT, WILL, WONT, SB, SE = 255, 253, 254, 251, 252, 250, 240


class StripIAC:
    """A toy Telnet decoder: drops IAC commands and negotiations, unescapes IAC IAC, CR NUL -> CR.

    Keeps an incomplete sequence across calls (a chunk may end inside one).
    """

    def __init__(self) -> None:
        self.pending = b""
        self.commands: list[bytes] = []

    def decode(self, data: bytes) -> bytes:
        data = self.pending + data
        self.pending = b""
        out = bytearray()
        i = 0
        while i < len(data):
            b = data[i]
            if b == 0x0D and i + 1 < len(data) and data[i + 1] == 0:
                out.append(0x0D)
                i += 2
                continue
            if b == 0x0D and i + 1 == len(data):
                self.pending = data[i:]
                break
            if b != IAC:
                out.append(b)
                i += 1
                continue
            if i + 1 >= len(data):
                self.pending = data[i:]
                break
            cmd = data[i + 1]
            if cmd == IAC:
                out.append(IAC)
                i += 2
            elif cmd in (DO, DONT, WILL, WONT):
                if i + 2 >= len(data):
                    self.pending = data[i:]
                    break
                self.commands.append(data[i : i + 3])
                i += 3
            elif cmd == SB:
                end = data.find(bytes([IAC, SE]), i + 2)
                if end < 0:
                    self.pending = data[i:]
                    break
                self.commands.append(data[i : end + 2])
                i = end + 2
            else:
                self.commands.append(data[i : i + 2])
                i += 2
        return bytes(out)


class RawRecorder(ConnectionPlumbing):
    """A protocol without lines: records what it receives and the timeouts it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[bytes] = []
        self.timeouts = 0
        self.pause_on: bytes | None = None

    def bytes_received(self, data: bytes) -> None:
        self.received.append(data)
        if self.pause_on is not None and self.pause_on in data:
            self.pause_input()

    def timeout_expired(self) -> None:
        self.timeouts += 1
        self.transport.loseConnection()

    def data(self) -> bytes:
        return b"".join(self.received)


def connect(
    proto: ConnectionPlumbing, transport: StringTransport | None = None
) -> tuple[StringTransport, MemoryReactorClock]:
    clock = MemoryReactorClock()
    proto.clock = clock
    transport = transport if transport is not None else StringTransport()
    proto.makeConnection(transport)
    return transport, clock


class RawProtocolTests(SynchronousTestCase):
    """A protocol on the plumbing alone gets bytes as they come, decoded first."""

    def test_bytes_as_they_come(self) -> None:
        p = RawRecorder()
        connect(p)
        p.dataReceived(b"no\r\nframing")
        p.dataReceived(b" here")
        self.assertEqual(p.received, [b"no\r\nframing", b" here"])

    def test_not_overridden_raises(self) -> None:
        p = ConnectionPlumbing()
        connect(p)
        self.assertRaises(NotImplementedError, p.dataReceived, b"x")

    def test_telnet_decoder_strips_iac(self) -> None:
        p = RawRecorder()
        decoder = StripIAC()
        p.decoder = decoder
        connect(p)
        stream = (
            bytes([IAC, DO, 1]) + b"log"
            + bytes([IAC, SB, 24, 1, IAC, SE]) + b"in\r\0"
            + bytes([IAC, IAC]) + b"x\r\n"
        )
        # Byte by byte: sequences are cut everywhere and kept across calls.
        for i in range(len(stream)):
            p.dataReceived(stream[i : i + 1])
        self.assertEqual(p.data(), b"login\r\xffx\r\n")
        self.assertEqual(
            decoder.commands, [bytes([IAC, DO, 1]), bytes([IAC, SB, 24, 1, IAC, SE])]
        )
        # A chunk that decodes to nothing reaches no handler.
        count = len(p.received)
        p.dataReceived(bytes([IAC, WILL, 3]))
        self.assertEqual(len(p.received), count)

    def test_identity_decoder(self) -> None:
        p = RawRecorder()
        p.decoder = IdentityDecoder()
        connect(p)
        p.dataReceived(b"\xff\xfd\x01")
        self.assertEqual(p.data(), b"\xff\xfd\x01")

    def test_decoder_before_line_framing(self) -> None:
        """LineProtocol runs the decoder before framing: IAC between CR and LF is gone."""

        class Lines(LineProtocol):
            def __init__(self) -> None:
                super().__init__()
                self.lines: list[bytes] = []

            def line_received(self, line: bytes) -> None:
                self.lines.append(line)

        p = Lines()
        p.decoder = StripIAC()
        connect(p)
        p.dataReceived(b"HELLO\r" + bytes([IAC, NOP := 241]) + b"\nBYE\r\n")
        self.assertEqual(NOP, 241)
        self.assertEqual(p.lines, [b"HELLO", b"BYE"])

    def test_send_raw_writes(self) -> None:
        p = RawRecorder()
        transport, _ = connect(p)
        p.send_raw(b"\xff\xfb\x01")
        self.assertEqual(transport.value(), b"\xff\xfb\x01")


class RawPauseTests(SynchronousTestCase):
    """pause_input on the plumbing: nothing delivered while paused, order kept, socket stopped."""

    def test_pause_holds_then_delivers_in_order(self) -> None:
        p = RawRecorder()
        transport, _ = connect(p)
        p.pause_on = b"STOP"
        p.dataReceived(b"a STOP")
        self.assertTrue(p.input_paused)
        p.dataReceived(b"b")
        p.dataReceived(b"c")
        self.assertEqual(p.received, [b"a STOP"])
        self.assertEqual(transport.producerState, "paused")
        p.pause_on = None
        p.resume_input()
        self.assertEqual(p.data(), b"a STOPbc")
        self.assertEqual(transport.producerState, "producing")

    def test_pause_without_input_leaves_socket_alone(self) -> None:
        p = RawRecorder()
        transport, _ = connect(p)
        p.pause_input()
        self.assertEqual(transport.producerState, "producing")
        p.resume_input()
        self.assertFalse(p.input_paused)

    def test_pause_in_handler_stops_held_delivery(self) -> None:
        p = RawRecorder()
        connect(p)
        p.pause_input()
        p.dataReceived(b"one")
        p.dataReceived(b" STOP two")
        p.pause_on = b"STOP"
        p.resume_input()
        # Held input is delivered as one chunk; the handler paused again.
        self.assertEqual(p.received, [b"one STOP two"])
        self.assertTrue(p.input_paused)
        p.pause_on = None
        p.dataReceived(b"three")
        p.resume_input()
        self.assertEqual(p.data(), b"one STOP twothree")

    def test_starttls_discards_held_plaintext(self) -> None:
        class TLSTransport(StringTransport):
            def startTLS(self, context: object, normal: bool = True) -> None:
                self.started = (context, normal)

        p = RawRecorder()
        transport = TLSTransport()
        connect(p, transport)
        p.pause_input()
        p.dataReceived(b"injected")
        p.start_tls(object())  # type: ignore[arg-type]
        p.resume_input()
        self.assertEqual(p.received, [])
        self.assertTrue(p.is_secure)


class RawTimerTests(SynchronousTestCase):
    """Idle timeout and the transfer deadline on a raw protocol (no STARTTLS involved)."""

    def test_idle_timeout(self) -> None:
        p = RawRecorder()
        p.idle_timeout = 10.0
        transport, clock = connect(p)
        clock.advance(9)
        p.dataReceived(b"x")
        clock.advance(9)
        self.assertEqual(p.timeouts, 0)
        clock.advance(1.5)
        self.assertEqual(p.timeouts, 1)
        self.assertTrue(transport.disconnecting)

    def test_idle_timer_waits_while_paused(self) -> None:
        p = RawRecorder()
        p.idle_timeout = 10.0
        _, clock = connect(p)
        p.pause_input()
        clock.advance(25)
        self.assertEqual(p.timeouts, 0)
        p.resume_input()
        clock.pump([5, 5, 5])
        self.assertEqual(p.timeouts, 1)

    def test_transfer_deadline_catches_trickle(self) -> None:
        """One byte every 10 s keeps the idle timer happy; the transfer deadline does not."""
        p = RawRecorder()
        p.idle_timeout = 60.0
        p.transfer_timeout = 100.0
        p.min_transfer_rate = 50.0
        transport, clock = connect(p)
        p.begin_transfer()
        self.assertEqual(p.deadline_kind, DEADLINE_TRANSFER)
        for _ in range(9):
            p.dataReceived(b"x")
            clock.advance(10)
        self.assertEqual(p.timeouts, 0)
        for _ in range(3):
            p.dataReceived(b"x")
            clock.advance(10)
        # 9 bytes at 50 B/s bought 0.2 s: expired at ~100.2 s, not at the idle timeout.
        self.assertEqual(p.timeouts, 1)
        self.assertTrue(transport.disconnecting)

    def test_transfer_at_rate_never_expires(self) -> None:
        p = RawRecorder()
        p.transfer_timeout = 30.0
        p.min_transfer_rate = 100.0
        _, clock = connect(p)
        p.begin_transfer()
        for _ in range(200):  # 200 s at 100 B/s exactly
            p.dataReceived(b"y" * 100)
            clock.advance(1)
        self.assertEqual(p.timeouts, 0)
        p.end_transfer()
        self.assertIsNone(p.deadline_kind)
        clock.advance(1000)
        self.assertEqual(p.timeouts, 0)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_fast_burst_does_not_bank_more_than_the_span(self) -> None:
        """A burst then silence: the deadline is never more than transfer_timeout ahead."""
        p = RawRecorder()
        p.transfer_timeout = 30.0
        p.min_transfer_rate = 1.0
        _, clock = connect(p)
        p.begin_transfer()
        p.dataReceived(b"z" * 100_000)  # would buy 100,000 s uncapped
        clock.advance(29)
        self.assertEqual(p.timeouts, 0)
        clock.advance(2)
        self.assertEqual(p.timeouts, 1)

    def test_shorter_deadline_moves_the_watchdog_earlier(self) -> None:
        p = RawRecorder()
        p.idle_timeout = 100.0
        p.transfer_timeout = 10.0
        _, clock = connect(p)
        p.begin_transfer()
        clock.advance(10.5)
        self.assertEqual(p.timeouts, 1)

    def test_paused_pipelined_lines_start_no_deadline(self) -> None:
        """Complete lines waiting while input is paused are our delay, not the peer's."""

        class Pausing(Lines):
            def line_received(self, line: bytes) -> None:
                super().line_received(line)
                self.pause_input()

        p = Pausing()
        p.line_timeout = 5.0
        _, clock = connect(p)
        p.dataReceived(b"ONE\r\nTWO\r\n")
        self.assertIsNone(p.deadline_kind)
        self.assertEqual(clock.getDelayedCalls(), [])
        p.resume_input()
        self.assertEqual(p.lines, [b"ONE", b"TWO"])

    def test_deadline_waits_while_paused(self) -> None:
        p = RawRecorder()
        p.transfer_timeout = 10.0
        _, clock = connect(p)
        p.begin_transfer()
        p.pause_input()
        clock.advance(50)
        self.assertEqual(p.timeouts, 0)
        p.resume_input()
        clock.advance(11)
        self.assertEqual(p.timeouts, 1)

    def test_no_deadline_without_clock(self) -> None:
        p = RawRecorder()
        p.makeConnection(StringTransport())
        p.begin_transfer()
        self.assertIsNone(p.deadline_kind)

    def test_connection_lost_cancels_everything(self) -> None:
        p = RawRecorder()
        p.idle_timeout = 5.0
        _, clock = connect(p)
        p.begin_transfer()
        # The idle timer is the deadline's watchdog too: one timer.
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        p.connectionLost()
        self.assertEqual(clock.getDelayedCalls(), [])


class Lines(LineProtocol):
    """Records lines, raw bytes and timeouts."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[bytes] = []
        self.raw: list[bytes] = []
        self.timeouts = 0

    def line_received(self, line: bytes) -> None:
        self.lines.append(line)
        if line == b"DATA":
            self.set_raw_mode()
        elif line.startswith(b"BDAT "):
            self.set_raw_mode(int(line[5:]))

    def raw_data_received(self, data: bytes) -> None:
        self.raw.append(data)
        if data.endswith(b".\r\n") and self._raw_remaining is None:
            self.set_line_mode()

    def timeout_expired(self) -> None:
        self.timeouts += 1
        self.transport.loseConnection()


class LineDeadlineTests(SynchronousTestCase):
    """The line layer: a line must be complete in time; raw mode is a transfer."""

    def test_trickled_line_expires(self) -> None:
        p = Lines()
        p.idle_timeout = 60.0
        p.line_timeout = 45.0
        transport, clock = connect(p)
        for c in b"NOOP":
            p.dataReceived(bytes([c]))
            self.assertEqual(p.deadline_kind, DEADLINE_LINE)
            clock.advance(10)
        self.assertEqual(p.timeouts, 0)
        clock.advance(6)
        self.assertEqual(p.timeouts, 1)
        self.assertEqual(p.lines, [])
        self.assertTrue(transport.disconnecting)

    def test_complete_lines_clear_the_deadline(self) -> None:
        p = Lines()
        p.line_timeout = 5.0
        _, clock = connect(p)
        for _ in range(20):
            p.dataReceived(b"NO")
            clock.advance(4)
            p.dataReceived(b"OP\r\n")
            self.assertIsNone(p.deadline_kind)
        self.assertEqual(p.timeouts, 0)
        self.assertEqual(len(p.lines), 20)
        # The one watchdog timer was armed once, not per line; it then finds nothing due.
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(10)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(p.timeouts, 0)

    def test_partial_after_lines_starts_fresh(self) -> None:
        p = Lines()
        p.line_timeout = 5.0
        _, clock = connect(p)
        p.dataReceived(b"A")
        clock.advance(4)
        p.dataReceived(b"\r\nB")  # A ends; B's deadline starts now
        clock.advance(4)
        self.assertEqual(p.timeouts, 0)
        clock.advance(2)
        self.assertEqual(p.timeouts, 1)

    def test_fast_path_needs_no_timer(self) -> None:
        p = Lines()
        _, clock = connect(p)
        p.dataReceived(b"NOOP\r\n")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_open_raw_mode_is_a_transfer(self) -> None:
        p = Lines()
        p.idle_timeout = 300.0
        p.transfer_timeout = 120.0
        p.min_transfer_rate = 500.0
        transport, clock = connect(p)
        p.dataReceived(b"DATA\r\n")
        self.assertEqual(p.deadline_kind, DEADLINE_TRANSFER)
        for _ in range(12):
            p.dataReceived(b"x")
            clock.advance(10)
        self.assertEqual(p.timeouts, 0)
        clock.advance(1)
        self.assertEqual(p.timeouts, 1)
        self.assertTrue(transport.disconnecting)

    def test_transfer_ends_with_line_mode(self) -> None:
        p = Lines()
        p.transfer_timeout = 10.0
        _, clock = connect(p)
        p.dataReceived(b"DATA\r\nbody\r\n.\r\n")
        self.assertEqual(p.lines, [b"DATA"])
        self.assertIsNone(p.deadline_kind)
        clock.advance(100)
        self.assertEqual(p.timeouts, 0)

    def test_counted_raw_mode_is_a_transfer(self) -> None:
        p = Lines()
        p.transfer_timeout = 20.0
        p.min_transfer_rate = 1.0
        _, clock = connect(p)
        p.dataReceived(b"BDAT 10\r\n0123")
        self.assertEqual(p.deadline_kind, DEADLINE_TRANSFER)
        clock.advance(19)
        p.dataReceived(b"456789NOOP\r\n")
        self.assertEqual(p.raw, [b"0123", b"456789"])
        self.assertEqual(p.lines, [b"BDAT 10", b"NOOP"])
        self.assertIsNone(p.deadline_kind)
        clock.advance(100)
        self.assertEqual(p.timeouts, 0)

    def test_transfer_timeout_none_means_no_transfer_deadline(self) -> None:
        p = Lines()
        p.transfer_timeout = None
        p.line_timeout = 5.0
        _, clock = connect(p)
        p.dataReceived(b"DAT")
        p.dataReceived(b"A\r\n")
        self.assertIsNone(p.deadline_kind)
        clock.advance(1000)
        self.assertEqual(p.timeouts, 0)

    def test_factory_applies_limits(self) -> None:
        clock = MemoryReactorClock()
        factory: LineFactory[Lines] = LineFactory(clock)
        factory.protocol = Lines
        factory.apply_limits(Limits(line_timeout=7.0, transfer_timeout=8.0, min_transfer_rate=9.0))
        p = factory.buildProtocol(None)
        assert p is not None
        self.assertEqual(
            (p.line_timeout, p.transfer_timeout, p.min_transfer_rate), (7.0, 8.0, 9.0)
        )
        self.assertIs(p.clock, clock)
        # Without apply_limits, the protocol's own defaults stay.
        plain: LineFactory[Lines] = LineFactory(clock)
        plain.protocol = Lines
        q = plain.buildProtocol(None)
        assert q is not None
        self.assertEqual((q.line_timeout, q.transfer_timeout), (300.0, 300.0))

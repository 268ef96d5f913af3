"""Tests for netproto_twisted.core.lineproto (LineProtocol) and netproto_twisted.core.net."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import alsoProvides

from netproto_twisted.core import plumbing
from netproto_twisted.core.errors import LocalProtocolError
from netproto_twisted.core.framing import LineEndings
from netproto_twisted.core.lineproto import LineFactory, LineProtocol
from netproto_twisted.core.net import is_loopback, normalize_host, peer_host, set_nodelay


class Recorder(LineProtocol):
    """A LineProtocol that records every event; per-test behaviour through ``on_line``."""

    def __init__(self, on_line: Callable[[Recorder, bytes], None] | None = None) -> None:
        super().__init__()
        self.events: list[tuple[str, bytes]] = []
        self.on_line = on_line
        self.on_raw: Callable[[Recorder, bytes], None] | None = None
        self.resets = 0
        self.established = 0

    def line_received(self, line: bytes) -> None:
        self.events.append(("line", line))
        if self.on_line is not None:
            self.on_line(self, line)

    def raw_data_received(self, data: bytes) -> None:
        if not data:
            raise AssertionError("raw_data_received called with no bytes")
        self.events.append(("raw", data))
        if self.on_raw is not None:
            self.on_raw(self, data)

    def raw_data_complete(self) -> None:
        self.events.append(("raw-end", b""))

    def reset_session(self) -> None:
        self.resets += 1

    def tls_established(self) -> None:
        self.established += 1

    def lines(self) -> list[bytes]:
        return [data for kind, data in self.events if kind == "line"]

    def raw(self) -> bytes:
        return b"".join(data for kind, data in self.events if kind == "raw")


class TLSStringTransport(StringTransport):
    """A StringTransport that records startTLS calls."""

    def __init__(self) -> None:
        super().__init__()
        self.tls_calls: list[tuple[object, bool]] = []
        self.aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()

    def startTLS(self, context: object, normal: bool = True) -> None:
        self.tls_calls.append((context, normal))


def connect(
    proto: LineProtocol, transport: StringTransport | None = None
) -> tuple[StringTransport, MemoryReactorClock]:
    """Connect ``proto`` to a StringTransport with a MemoryReactorClock as its clock."""
    clock = MemoryReactorClock()
    proto.clock = clock
    transport = transport if transport is not None else StringTransport()
    proto.makeConnection(transport)
    return transport, clock


def bdat_handler(proto: Recorder, line: bytes) -> None:
    """``BDAT n`` switches to a counted raw mode of n bytes."""
    if line.startswith(b"BDAT "):
        proto.set_raw_mode(int(line[5:]))


class LineDeliveryTests(SynchronousTestCase):
    """Lines come out one at a time, in order, however the bytes are chunked."""

    def test_pipelined_lines_in_one_chunk(self) -> None:
        p = Recorder()
        connect(p)
        p.dataReceived(b"EHLO a\r\nMAIL FROM:<x>\r\nRCPT TO:<y>\r\nDATA\r\npartial")
        self.assertEqual(p.lines(), [b"EHLO a", b"MAIL FROM:<x>", b"RCPT TO:<y>", b"DATA"])
        p.dataReceived(b"\r\n")
        self.assertEqual(p.lines()[-1], b"partial")

    def test_byte_by_byte(self) -> None:
        p = Recorder()
        connect(p)
        for byte in b"ONE\r\nTWO\r\n":
            p.dataReceived(bytes([byte]))
        self.assertEqual(p.lines(), [b"ONE", b"TWO"])

    def test_no_delivery_after_lose_connection(self) -> None:
        """A handler that closes the connection sees no further pipelined lines."""

        def on_line(proto: Recorder, line: bytes) -> None:
            if line == b"QUIT":
                proto.transport.loseConnection()

        p = Recorder(on_line)
        connect(p)
        p.dataReceived(b"NOOP\r\nQUIT\r\nRSET\r\n")
        self.assertEqual(p.lines(), [b"NOOP", b"QUIT"])

    def test_data_after_connection_lost_ignored(self) -> None:
        p = Recorder()
        connect(p)
        p.dataReceived(b"HALF")
        p.connectionLost()
        p.dataReceived(b"\r\nMORE\r\n")
        self.assertEqual(p.lines(), [])

    def test_line_too_long_default_closes(self) -> None:
        p = Recorder()
        p.max_line_length = 10
        transport, _ = connect(p)
        p.dataReceived(b"x" * 11 + b"\r\nNEXT\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(p.lines(), [])

    def test_line_too_long_override_continues(self) -> None:
        class Tolerant(Recorder):
            max_line_length = 10

            def line_too_long(self) -> None:
                self.send_line(b"500 line too long")

        p = Tolerant()
        transport, _ = connect(p)
        p.dataReceived(b"x" * 50)
        p.dataReceived(b"y" * 50 + b"\r\nNEXT\r\n")
        self.assertEqual(transport.value(), b"500 line too long\r\n")
        self.assertEqual(p.lines(), [b"NEXT"])
        self.assertFalse(transport.disconnecting)

    def test_max_line_length_change_takes_effect(self) -> None:
        def on_line(proto: Recorder, line: bytes) -> None:
            proto.max_line_length = 100

        p = Recorder(on_line)
        p.max_line_length = 4
        transport, _ = connect(p)
        p.dataReceived(b"AUTH\r\n" + b"z" * 80 + b"\r\n")
        self.assertEqual(p.lines(), [b"AUTH", b"z" * 80])
        self.assertFalse(transport.disconnecting)

    def test_bare_lf_strict_default_closes(self) -> None:
        p = Recorder()
        transport, _ = connect(p)
        p.dataReceived(b"OK\r\nBAD\nLATER\r\n")
        self.assertEqual(p.lines(), [b"OK"])
        self.assertTrue(transport.disconnecting)

    def test_bad_line_ending_hook_gets_line(self) -> None:
        class Reporting(Recorder):
            def bad_line_ending(self, line: bytes) -> None:
                self.events.append(("bad", line))

        p = Reporting()
        connect(p)
        p.dataReceived(b"BAD\nGOOD\r\n")
        self.assertEqual(p.events, [("bad", b"BAD"), ("line", b"GOOD")])

    def test_accept_lf(self) -> None:
        p = Recorder()
        p.line_endings = LineEndings.ACCEPT_LF
        connect(p)
        p.dataReceived(b"A\nB\r\n")
        self.assertEqual(p.lines(), [b"A", b"B"])

    def test_default_line_received_is_abstract(self) -> None:
        p = LineProtocol()
        connect(p)
        self.assertRaises(NotImplementedError, p.dataReceived, b"X\r\n")


class Tolerant(Recorder):
    """Records over-long lines and bad endings and carries on; PAUSE pauses, QUIT closes."""

    def line_received(self, line: bytes) -> None:
        super().line_received(line)
        if line.startswith(b"BDAT ") and line[5:].isdigit():
            self.set_raw_mode(int(line[5:]))
        elif line == b"PAUSE":
            self.pause_input()
        elif line == b"QUIT":
            self.transport.loseConnection()

    def line_too_long(self) -> None:
        self.events.append(("too-long", b""))

    def bad_line_ending(self, line: bytes) -> None:
        self.events.append(("bad", line))


def run_chunks(
    chunks: list[bytes], endings: LineEndings, max_length: int
) -> tuple[list[tuple[str, bytes]], int]:
    """Feed ``chunks`` to a Tolerant protocol; return its events (raw runs merged) and feeds."""
    p = Tolerant()
    p.line_endings = endings
    p.max_line_length = max_length
    p._buffer.endings = endings
    connect(p)
    feeds = 0
    real_feed = p._buffer.feed

    def counting_feed(data: bytes) -> None:
        nonlocal feeds
        feeds += 1
        real_feed(data)

    p._buffer.feed = counting_feed  # type: ignore[method-assign]
    for chunk in chunks:
        p.dataReceived(chunk)
        while p.input_paused:  # each resume delivers at least the PAUSE that paused again
            p.resume_input()
    merged: list[tuple[str, bytes]] = []
    for event, got in p.events:
        if event == "raw" and merged and merged[-1][0] == "raw":
            merged[-1] = ("raw", merged[-1][1] + got)
        else:
            merged.append((event, got))
    return merged, feeds


#: Pieces of a command stream: good lines, BDAT sections, PAUSE, QUIT, and anything at all.
_pieces = st.one_of(
    st.binary(max_size=20)
    .filter(lambda b: b"\r" not in b and b"\n" not in b)
    .map(lambda b: b + b"\r\n"),
    st.binary(max_size=12).map(lambda b: b"BDAT %d\r\n" % len(b) + b),
    st.sampled_from([b"PAUSE\r\n", b"QUIT\r\n", b"\r\n", b"a\rb\r\n", b"a\n", b"\r\r\n"]),
    st.lists(st.sampled_from([b"x", b"\r", b"\n", b"\r\n", b"yz"]), max_size=6).map(b"".join),
)


class FastPathTests(SynchronousTestCase):
    """A read that is exactly one line skips the buffer; nothing else changes."""

    def test_one_line_read_skips_the_buffer(self) -> None:
        events, feeds = run_chunks([b"EHLO a\r\n", b"NOOP\r\n"], LineEndings.STRICT, 2048)
        self.assertEqual(events, [("line", b"EHLO a"), ("line", b"NOOP")])
        self.assertEqual(feeds, 0)

    def test_other_reads_use_the_buffer(self) -> None:
        for chunk, endings in [
            (b"A\r\nB\r\n", LineEndings.STRICT),  # two lines
            (b"A\n", LineEndings.ACCEPT_LF),  # bare LF
            (b"A\rB\r\n", LineEndings.NORMALIZE),  # a CR inside
            (b"A\r", LineEndings.STRICT),  # incomplete
            (b"ABCDEFGH\r\n", LineEndings.STRICT),  # over max_length (4)
        ]:
            _, feeds = run_chunks([chunk], endings, 4)
            self.assertEqual(feeds, 1, chunk)

    def test_longest_line_takes_the_fast_path(self) -> None:
        events, feeds = run_chunks([b"ABCD\r\n", b"ABCDE\r\n"], LineEndings.STRICT, 4)
        self.assertEqual(events, [("line", b"ABCD"), ("too-long", b"")])
        self.assertEqual(feeds, 1)

    def test_not_while_disconnecting(self) -> None:
        events, feeds = run_chunks([b"QUIT\r\n", b"NOOP\r\n"], LineEndings.STRICT, 2048)
        self.assertEqual(events, [("line", b"QUIT")])
        self.assertEqual(feeds, 1)

    def test_handler_switching_to_raw_mode(self) -> None:
        """``BDAT 0`` read alone: the counted raw mode ends at once, as on the slow path."""
        events, feeds = run_chunks([b"BDAT 0\r\n", b"NEXT\r\n"], LineEndings.STRICT, 2048)
        self.assertEqual(events, [("line", b"BDAT 0"), ("raw-end", b""), ("line", b"NEXT")])
        self.assertEqual(feeds, 0)

    def test_handler_putting_bytes_back(self) -> None:
        def handler(proto: Recorder, line: bytes) -> None:
            if line == b"PUSH":
                proto.set_line_mode(b"PUSHED\r\n")

        p = Recorder(handler)
        connect(p)
        p.dataReceived(b"PUSH\r\n")
        self.assertEqual(p.lines(), [b"PUSH", b"PUSHED"])

    def test_while_paused_waits(self) -> None:
        p = Recorder()
        connect(p)
        p.pause_input()
        p.dataReceived(b"LATER\r\n")
        self.assertEqual(p.lines(), [])
        p.resume_input()
        self.assertEqual(p.lines(), [b"LATER"])

    def test_handler_exception_leaves_delivery_usable(self) -> None:
        def handler(proto: Recorder, line: bytes) -> None:
            if line == b"BOOM":
                raise ValueError(line)

        p = Recorder(handler)
        connect(p)
        self.assertRaises(ValueError, p.dataReceived, b"BOOM\r\n")
        p.dataReceived(b"AFTER\r\n")
        self.assertEqual(p.lines(), [b"BOOM", b"AFTER"])

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(_pieces, max_size=14),
        st.sampled_from(list(LineEndings)),
        st.sampled_from([3, 8, 2048]),
        st.data(),
    )
    def test_same_events_as_byte_by_byte(
        self,
        pieces: list[bytes],
        endings: LineEndings,
        max_length: int,
        data: st.DataObject,
    ) -> None:
        """Property: reads cut at piece boundaries (mostly one line each) and elsewhere give
        the events that reading one byte at a time gives (which never takes the fast path)."""
        stream = b"".join(pieces)
        bounds: list[int] = []
        at = 0
        for piece in pieces:
            at += len(piece)
            bounds.append(at)
        keep = data.draw(st.lists(st.booleans(), min_size=len(bounds), max_size=len(bounds)))
        extra = data.draw(st.sets(st.integers(0, len(stream)), max_size=4))
        cuts = sorted({b for b, k in zip(bounds, keep, strict=True) if k} | extra | {len(stream)})
        chunks = []
        start = 0
        for cut in cuts:
            if cut > start:
                chunks.append(stream[start:cut])
                start = cut
        slow, _ = run_chunks([bytes([b]) for b in stream], endings, max_length)
        fast, _ = run_chunks(chunks, endings, max_length)
        self.assertEqual(fast, slow)


class RawModeTests(SynchronousTestCase):
    """Raw mode takes over at the byte after the current line and gives back the rest."""

    def test_counted_raw_mid_chunk(self) -> None:
        p = Recorder(bdat_handler)
        connect(p)
        p.dataReceived(b"BDAT 5\r\nhelloNOOP\r\nQUIT\r\n")
        self.assertEqual(
            p.events,
            [
                ("line", b"BDAT 5"),
                ("raw", b"hello"),
                ("raw-end", b""),
                ("line", b"NOOP"),
                ("line", b"QUIT"),
            ],
        )
        self.assertFalse(p.raw_mode)

    def test_counted_raw_fast_path_split(self) -> None:
        """Raw bytes arriving on their own skip the buffer; the excess is parsed as lines."""
        p = Recorder(bdat_handler)
        connect(p)
        p.dataReceived(b"BDAT 10\r\n")
        self.assertTrue(p.raw_mode)
        p.dataReceived(b"0123")
        p.dataReceived(b"456789NOOP\r\n")
        self.assertEqual(p.raw(), b"0123456789")
        self.assertEqual(p.lines(), [b"BDAT 10", b"NOOP"])

    def test_raw_bytes_that_look_like_lines(self) -> None:
        """CR/LF and over-long content in raw data is data, not framing."""
        p = Recorder(bdat_handler)
        p.max_line_length = 8
        transport, _ = connect(p)
        payload = b"a\nb\rc" + b"z" * 100 + b"\r\n"
        p.dataReceived(b"BDAT %d\r\n" % len(payload) + payload + b"NEXT\r\n")
        self.assertEqual(p.raw(), payload)
        self.assertEqual(p.lines()[-1], b"NEXT")
        self.assertFalse(transport.disconnecting)

    def test_zero_length_raw(self) -> None:
        p = Recorder(bdat_handler)
        connect(p)
        p.dataReceived(b"BDAT 0\r\nNOOP\r\n")
        self.assertEqual(p.events, [("line", b"BDAT 0"), ("raw-end", b""), ("line", b"NOOP")])

    def test_open_raw_and_set_line_mode_with_extra(self) -> None:
        """An open-ended raw handler gives back the bytes after its terminator."""

        def on_line(proto: Recorder, line: bytes) -> None:
            if line == b"RAW":
                proto.set_raw_mode()

        collected = bytearray()

        def on_raw(proto: Recorder, data: bytes) -> None:
            collected.extend(data)
            end = collected.find(b".\r\n")
            if end >= 0:
                extra = bytes(collected[end + 3 :])
                del collected[end:]
                proto.set_line_mode(extra)

        p = Recorder(on_line)
        p.on_raw = on_raw
        connect(p)
        p.dataReceived(b"RAW\r\nabc")
        p.dataReceived(b"def.\r\nNOOP\r\nQU")
        p.dataReceived(b"IT\r\n")
        self.assertEqual(bytes(collected), b"abcdef")
        self.assertEqual(p.lines(), [b"RAW", b"NOOP", b"QUIT"])

    def test_set_raw_mode_outside_handler_delivers_buffered(self) -> None:
        """A server paused after a command can switch to raw mode later."""

        def on_line(proto: Recorder, line: bytes) -> None:
            if line == b"LITERAL":
                proto.pause_input()

        p = Recorder(on_line)
        connect(p)
        p.dataReceived(b"LITERAL\r\nxyzNEXT\r\n")
        self.assertEqual(p.lines(), [b"LITERAL"])
        p.set_raw_mode(3)
        self.assertEqual(p.raw(), b"")  # still paused
        p.resume_input()
        self.assertEqual(p.raw(), b"xyz")
        self.assertEqual(p.lines(), [b"LITERAL", b"NEXT"])

    def test_negative_length_rejected(self) -> None:
        p = Recorder()
        connect(p)
        self.assertRaises(ValueError, p.set_raw_mode, -1)

    def test_raw_after_over_long_line(self) -> None:
        """Raw mode right after an over-long line does not eat the raw bytes."""

        class Tolerant(Recorder):
            max_line_length = 4

            def line_too_long(self) -> None:
                self.set_raw_mode(3)

        p = Tolerant()
        connect(p)
        p.dataReceived(b"toolong")  # no LF yet: the buffer is discarding
        p.dataReceived(b"abc")
        self.assertEqual(p.raw(), b"abc")

    @settings(max_examples=150, deadline=None)
    @given(st.data())
    def test_any_chunking_gives_the_same_events(self, data: st.DataObject) -> None:
        """Property: lines and counted raw sections come out the same however chunked."""
        items = data.draw(
            st.lists(
                st.one_of(
                    st.binary(max_size=20)
                    .filter(lambda b: b"\r" not in b and b"\n" not in b)
                    .map(lambda b: (b"L", b)),
                    st.binary(max_size=30).map(lambda b: (b"R", b)),
                ),
                max_size=12,
            )
        )
        stream = b""
        expected: list[tuple[str, bytes]] = []
        for kind, payload in items:
            if kind == b"L":
                line = b"L" + payload
                stream += line + b"\r\n"
                expected.append(("line", line))
            else:
                stream += b"BDAT %d\r\n" % len(payload) + payload
                expected.append(("line", b"BDAT %d" % len(payload)))
                expected.append(("raw", payload))
                expected.append(("raw-end", b""))
        cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=10)))
        p = Recorder(bdat_handler)
        connect(p)
        start = 0
        for cut in [*cuts, len(stream)]:
            if cut > start:
                p.dataReceived(stream[start:cut])
                start = cut
        merged: list[tuple[str, bytes]] = []
        for event, got in p.events:
            if event == "raw" and merged and merged[-1][0] == "raw":
                merged[-1] = ("raw", merged[-1][1] + got)
            elif event == "raw-end" and (not merged or merged[-1][0] != "raw"):
                merged.append(("raw", b""))
                merged.append((event, got))
            else:
                merged.append((event, got))
        self.assertEqual(merged, expected)


class PauseTests(SynchronousTestCase):
    """pause_input / resume_input: strictly one command at a time, with backpressure."""

    def test_paused_delivers_nothing_and_pauses_transport(self) -> None:
        def on_line(proto: Recorder, line: bytes) -> None:
            proto.pause_input()

        p = Recorder(on_line)
        transport, _ = connect(p)
        p.dataReceived(b"ONE\r\nTWO\r\n")
        self.assertEqual(p.lines(), [b"ONE"])
        self.assertEqual(transport.producerState, "paused")
        self.assertTrue(p.input_paused)
        p.dataReceived(b"THREE\r\n")
        self.assertEqual(p.lines(), [b"ONE"])
        p.on_line = None
        p.resume_input()
        self.assertEqual(transport.producerState, "producing")
        self.assertEqual(p.lines(), [b"ONE", b"TWO", b"THREE"])

    def test_buffered_line_that_closes_the_connection_leaves_the_socket_paused(self) -> None:
        def on_line(proto: Recorder, line: bytes) -> None:
            if line == b"QUIT":
                proto.transport.loseConnection()
            else:
                proto.pause_input()

        p = Recorder(on_line)
        transport, _ = connect(p)
        p.dataReceived(b"WORK\r\nQUIT\r\n")
        self.assertEqual(transport.producerState, "paused")
        p.resume_input()  # delivers QUIT, which closes: no resumeProducing after that
        self.assertEqual(p.lines(), [b"WORK", b"QUIT"])
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.producerState, "paused")

    def test_pause_with_nothing_buffered_leaves_socket_alone(self) -> None:
        """A peer waiting for the reply: no transport pause/resume at all."""
        calls: list[str] = []

        class CountingTransport(StringTransport):
            def pauseProducing(self) -> None:
                calls.append("pause")
                super().pauseProducing()

            def resumeProducing(self) -> None:
                calls.append("resume")
                super().resumeProducing()

        p = Recorder(lambda proto, line: proto.pause_input())
        transport, _ = connect(p, CountingTransport())
        p.dataReceived(b"ONE\r\n")
        self.assertTrue(p.input_paused)
        self.assertEqual(calls, [])
        p.resume_input()
        self.assertEqual(calls, [])
        # The peer pipelines while the command's work is pending: reading stops now.
        p.dataReceived(b"TWO\r\n")
        self.assertEqual(p.lines(), [b"ONE", b"TWO"])
        self.assertEqual(calls, [])
        p.dataReceived(b"THREE\r\nFOUR\r\n")
        self.assertEqual(calls, ["pause"])
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual(p.lines(), [b"ONE", b"TWO"])
        # Resuming delivers THREE, which pauses again with FOUR buffered: the
        # socket stays paused (no resume/pause churn).
        p.resume_input()
        self.assertEqual(p.lines(), [b"ONE", b"TWO", b"THREE"])
        self.assertEqual(calls, ["pause"])
        p.resume_input()
        self.assertEqual(p.lines(), [b"ONE", b"TWO", b"THREE", b"FOUR"])
        self.assertEqual(calls, ["pause"])
        p.resume_input()  # nothing buffered any more: reading resumes
        self.assertEqual(calls, ["pause", "resume"])
        self.assertEqual(transport.producerState, "producing")

    def test_ten_thousand_pipelined_async(self) -> None:
        """Each command finishes (later, on the clock) before the next is looked at."""
        in_progress: list[bytes] = []

        def on_line(proto: Recorder, line: bytes) -> None:
            self.assertEqual(in_progress, [])
            in_progress.append(line)
            proto.pause_input()

            def done() -> None:
                in_progress.pop()
                proto.resume_input()

            clock.callLater(0, done)

        p = Recorder(on_line)
        transport, clock = connect(p)
        count = 10_000
        p.dataReceived(b"".join(b"CMD %d\r\n" % i for i in range(count)))
        self.assertEqual(len(p.lines()), 1)
        for _ in range(count):
            clock.advance(0)
        self.assertEqual(p.lines(), [b"CMD %d" % i for i in range(count)])
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(transport.producerState, "producing")

    def test_ten_thousand_pipelined_sync_resume(self) -> None:
        """Work that completes synchronously (a fired Deferred) does not recurse."""

        def on_line(proto: Recorder, line: bytes) -> None:
            proto.pause_input()
            d: Deferred[None] = Deferred()
            d.addCallback(lambda _: proto.resume_input())
            d.callback(None)

        p = Recorder(on_line)
        connect(p)
        count = 10_000
        p.dataReceived(b"".join(b"CMD %d\r\n" % i for i in range(count)))
        self.assertEqual(len(p.lines()), count)
        self.assertFalse(p.input_paused)

    def test_ten_thousand_resumed_from_outside(self) -> None:
        """Resuming from a callback outside delivery, many times, stays flat."""
        pending: list[Deferred[None]] = []

        def on_line(proto: Recorder, line: bytes) -> None:
            proto.pause_input()
            d: Deferred[None] = Deferred()
            d.addCallback(lambda _: proto.resume_input())
            pending.append(d)

        p = Recorder(on_line)
        connect(p)
        count = 10_000
        p.dataReceived(b"".join(b"C%d\r\n" % i for i in range(count)))
        while pending:
            pending.pop(0).callback(None)
        self.assertEqual(p.lines(), [b"C%d" % i for i in range(count)])

    def test_resume_when_not_paused_is_noop(self) -> None:
        p = Recorder()
        transport, _ = connect(p)
        p.resume_input()
        self.assertEqual(transport.producerState, "producing")

    def test_pause_after_connection_lost(self) -> None:
        p = Recorder()
        transport, _ = connect(p)
        p.connectionLost()
        p.pause_input()
        p.resume_input()
        self.assertEqual(transport.producerState, "producing")


class OutputTests(SynchronousTestCase):
    def test_send_line_and_lines(self) -> None:
        p = Recorder()
        transport, _ = connect(p)
        p.send_line(b"220 ready")
        p.send_line("250 ok é")
        self.assertEqual(transport.value(), b"220 ready\r\n250 ok \xc3\xa9\r\n")
        transport.clear()
        writes: list[bytes] = []
        transport.write = writes.append  # type: ignore[method-assign]
        p.send_lines([b"250-a", "250-b", b"250 c"])
        self.assertEqual(writes, [b"250-a\r\n250-b\r\n250 c\r\n"])
        p.send_lines([])
        self.assertEqual(len(writes), 1)

    def test_send_line_refuses_injection(self) -> None:
        p = Recorder()
        transport, _ = connect(p)
        self.assertRaises(LocalProtocolError, p.send_line, b"RCPT TO:<a>\r\nDATA")
        self.assertRaises(LocalProtocolError, p.send_lines, [b"ok", b"bad\n"])
        self.assertEqual(transport.value(), b"")


class StartTLSTests(SynchronousTestCase):
    """STARTTLS: buffered plaintext is discarded, the session reset, the handshake timed."""

    def starttls_server(self) -> tuple[Recorder, TLSStringTransport, MemoryReactorClock]:
        context = object()

        def on_line(proto: Recorder, line: bytes) -> None:
            if line == b"STARTTLS":
                proto.send_line(b"220 go ahead")
                proto.start_tls(context)  # type: ignore[arg-type]

        p = Recorder(on_line)
        transport = TLSStringTransport()
        _, clock = connect(p, transport)
        self.context = context
        return p, transport, clock

    def test_injection_discarded(self) -> None:
        logged: list[LogEvent] = []
        observer = cast(ILogObserver, logged.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        p, transport, clock = self.starttls_server()
        self.assertFalse(p.is_secure)
        p.dataReceived(b"STARTTLS\r\nRSET\r\nMAIL FROM:<evil>\r\n")
        self.assertEqual(p.lines(), [b"STARTTLS"])
        self.assertEqual(transport.tls_calls, [(self.context, True)])
        self.assertEqual(p.resets, 1)
        self.assertTrue(p.is_secure)
        self.assertEqual(transport.value(), b"220 go ahead\r\n")
        counts = [e.get("count") for e in logged if "discarded" in e.get("log_format", "")]
        self.assertEqual(counts, [len(b"RSET\r\nMAIL FROM:<evil>\r\n")])
        # What arrives after the upgrade (decrypted by the TLS layer) is handled.
        p.handshakeCompleted()
        p.dataReceived(b"EHLO again\r\n")
        self.assertEqual(p.lines(), [b"STARTTLS", b"EHLO again"])
        self.assertEqual(p.established, 1)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_starttls_twice_refused(self) -> None:
        p, _, _ = self.starttls_server()
        p.dataReceived(b"STARTTLS\r\n")
        self.assertRaises(LocalProtocolError, p.start_tls, object())

    def test_transport_without_tls_refused(self) -> None:
        p = Recorder()
        connect(p)
        self.assertRaises(LocalProtocolError, p.start_tls, object())

    def test_handshake_timeout_aborts(self) -> None:
        p, transport, clock = self.starttls_server()
        p.dataReceived(b"STARTTLS\r\n")
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        clock.advance(29)
        self.assertFalse(transport.aborted)
        clock.advance(1)
        self.assertTrue(transport.aborted)
        p.connectionLost()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_connection_lost_cancels_handshake_timer(self) -> None:
        p, _, clock = self.starttls_server()
        p.dataReceived(b"STARTTLS\r\n")
        p.connectionLost()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_raw_mode_ends_on_starttls(self) -> None:
        p, _, _ = self.starttls_server()
        p.set_raw_mode()
        p.start_tls(object(), server=True)  # type: ignore[arg-type]
        self.assertFalse(p.raw_mode)
        p.dataReceived(b"LINE\r\n")
        self.assertEqual(p.lines(), [b"LINE"])

    def test_is_secure_looks_through_wrappers(self) -> None:
        """TLS started beneath a protocol wrapper (an access guard) still counts."""
        inner = StringTransport()
        wrapper = ProtocolWrapper(WrappingFactory(Factory()), Protocol())
        wrapper.makeConnection(inner)
        p = Recorder()
        p.makeConnection(wrapper)
        self.assertFalse(p.is_secure)
        alsoProvides(inner, ISSLTransport)
        self.assertTrue(p.is_secure)

    def test_is_secure_looks_once(self) -> None:
        """A plain transport is looked at when the connection is made, not at each call."""
        calls: list[object] = []
        real = plumbing._is_tls_transport

        def counting(transport: object) -> bool:
            calls.append(transport)
            return real(transport)

        self.patch(plumbing, "_is_tls_transport", counting)
        p = Recorder()
        transport, _ = connect(p)
        for _ in range(10):
            self.assertFalse(p.is_secure)
        self.assertEqual(calls, [transport])

    def test_implicit_tls_transport(self) -> None:
        """A transport that is TLS when the connection is made: secure from the start."""
        transport = TLSStringTransport()
        alsoProvides(transport, ISSLTransport)
        p = Recorder()
        _, clock = connect(p, transport)
        self.assertTrue(p.is_secure)
        self.assertEqual(len(clock.getDelayedCalls()), 1)  # the handshake timer
        p.handshakeCompleted()
        self.assertTrue(p.is_secure)
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertRaises(LocalProtocolError, p.start_tls, object())

    def test_handshake_makes_secure(self) -> None:
        """TLS started beneath the protocol by someone else: the handshake tells it."""
        transport = TLSStringTransport()
        p = Recorder()
        connect(p, transport)
        self.assertFalse(p.is_secure)
        alsoProvides(transport, ISSLTransport)
        p.handshakeCompleted()
        self.assertTrue(p.is_secure)
        self.assertEqual(p.established, 1)

    def test_new_transport_is_looked_at(self) -> None:
        p = Recorder()
        connect(p)
        self.assertFalse(p.is_secure)
        secure = StringTransport()
        alsoProvides(secure, ISSLTransport)
        p.transport = secure
        self.assertTrue(p.is_secure)
        p.transport = StringTransport()
        self.assertFalse(p.is_secure)

    def test_direction_flag(self) -> None:
        """``normal`` follows the transport's role: client TLS on a client socket is normal."""
        cases = [(False, True, True), (True, False, True), (False, False, False)]
        for tls_client_default, server, normal in cases:
            p = Recorder()
            transport = TLSStringTransport()
            transport._tlsClientDefault = tls_client_default  # type: ignore[attr-defined]
            connect(p, transport)
            p.start_tls(object(), server=server)  # type: ignore[arg-type]
            self.assertEqual(transport.tls_calls[0][1], normal, (tls_client_default, server))
            p.connectionLost()


class IdleTimeoutTests(SynchronousTestCase):
    def idle(self, timeout: float = 10) -> tuple[Recorder, StringTransport, MemoryReactorClock]:
        p = Recorder()
        p.idle_timeout = timeout
        transport, clock = connect(p)
        return p, transport, clock

    def test_expires_without_data(self) -> None:
        _, transport, clock = self.idle()
        clock.advance(9.9)
        self.assertFalse(transport.disconnecting)
        clock.advance(0.1)
        self.assertTrue(transport.disconnecting)

    def test_data_resets(self) -> None:
        p, transport, clock = self.idle()
        clock.advance(9)
        p.dataReceived(b"NO")
        clock.advance(9)
        p.dataReceived(b"OP\r\n")
        clock.advance(9)
        self.assertFalse(transport.disconnecting)
        clock.advance(1)
        self.assertTrue(transport.disconnecting)
        p.connectionLost()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_hook_overridden(self) -> None:
        class Polite(Recorder):
            idle_timeout = 5.0

            def timeout_expired(self) -> None:
                self.send_line(b"421 idle too long")
                self.transport.loseConnection()

        p = Polite()
        transport, clock = connect(p)
        clock.advance(5)
        self.assertEqual(transport.value(), b"421 idle too long\r\n")
        self.assertTrue(transport.disconnecting)

    def test_paused_counts_as_busy(self) -> None:
        p, transport, clock = self.idle()
        p.pause_input()
        clock.advance(30)
        self.assertFalse(transport.disconnecting)
        p.resume_input()
        clock.advance(10)
        self.assertTrue(transport.disconnecting)

    def test_set_idle_timeout(self) -> None:
        p, transport, clock = self.idle()
        p.set_idle_timeout(60)
        clock.advance(59)
        self.assertFalse(transport.disconnecting)
        p.set_idle_timeout(None)
        self.assertEqual(clock.getDelayedCalls(), [])
        clock.advance(1000)
        self.assertFalse(transport.disconnecting)

    def test_reset_idle_timer(self) -> None:
        p, transport, clock = self.idle()
        clock.advance(8)
        p.reset_idle_timer()
        clock.advance(8)
        self.assertFalse(transport.disconnecting)
        clock.advance(2)
        self.assertTrue(transport.disconnecting)

    def test_connection_lost_cancels(self) -> None:
        p, _, clock = self.idle()
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        p.connectionLost()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_no_clock_is_a_clear_error(self) -> None:
        p = Recorder()
        p.idle_timeout = 5
        with self.assertRaises(RuntimeError) as caught:
            p.makeConnection(StringTransport())
        self.assertIn("clock", str(caught.exception))

    def test_factory_supplies_clock(self) -> None:
        class Timed(Recorder):
            idle_timeout = 3.0

        clock = MemoryReactorClock()
        factory: LineFactory[Timed] = LineFactory(clock)
        factory.protocol = Timed
        p = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        assert p is not None
        self.assertIs(p.clock, clock)
        transport = StringTransport()
        p.makeConnection(transport)
        clock.advance(3)
        self.assertTrue(transport.disconnecting)

    def test_plain_factory_reactor_attribute(self) -> None:
        """A factory that is not a LineFactory still lends its ``reactor``."""
        clock = MemoryReactorClock()
        factory: Factory[Recorder] = Factory.forProtocol(Recorder)
        factory.reactor = clock  # type: ignore[attr-defined]
        p = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        assert p is not None
        p.idle_timeout = 1
        p.makeConnection(StringTransport())
        self.assertIs(p.clock, clock)
        self.assertEqual(len(clock.getDelayedCalls()), 1)


class IOSimTests(SynchronousTestCase):
    """A client and a server LineProtocol talking through twisted.test.iosim."""

    def test_request_response(self) -> None:
        class Server(LineProtocol):
            def line_received(self, line: bytes) -> None:
                if line == b"QUIT":
                    self.send_line(b"221 bye")
                    self.transport.loseConnection()
                else:
                    self.send_line(b"250 " + line)

        class Client(Recorder):
            def connectionMade(self) -> None:
                super().connectionMade()
                self.transport.write(b"A\r\nB\r\nQUIT\r\n")

        client, _, pump = iosim.connectedServerAndClient(Server, Client)
        pump.flush()
        self.assertEqual(client.lines(), [b"250 A", b"250 B", b"221 bye"])


class NodelayTransport(StringTransport):
    def __init__(self, host: Any) -> None:
        super().__init__(hostAddress=host)
        self.nodelay: list[bool] = []

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.nodelay.append(enabled)


class NetTests(SynchronousTestCase):
    """netproto_twisted.core.net helpers."""

    def test_set_nodelay_tcp(self) -> None:
        for host in (IPv4Address("TCP", "127.0.0.1", 1), IPv6Address("TCP", "::1", 1)):
            transport = NodelayTransport(host)
            set_nodelay(transport)
            self.assertEqual(transport.nodelay, [True])

    def test_set_nodelay_unix_left_alone(self) -> None:
        transport = NodelayTransport(UNIXAddress(b"/tmp/sock"))
        set_nodelay(transport)
        self.assertEqual(transport.nodelay, [])

    def test_set_nodelay_without_support(self) -> None:
        set_nodelay(StringTransport())  # no setTcpNoDelay: nothing happens

    def test_set_nodelay_oserror_ignored(self) -> None:
        class Closed(NodelayTransport):
            def setTcpNoDelay(self, enabled: bool) -> None:
                raise OSError(9, "Bad file descriptor")

        set_nodelay(Closed(IPv4Address("TCP", "127.0.0.1", 1)))

    def test_connection_made_sets_nodelay(self) -> None:
        transport = NodelayTransport(IPv4Address("TCP", "127.0.0.1", 1))
        Recorder().makeConnection(transport)
        self.assertEqual(transport.nodelay, [True])

    def test_peer_host(self) -> None:
        cases: list[tuple[Any, str | None]] = [
            (IPv4Address("TCP", "192.0.2.1", 1), "192.0.2.1"),
            (IPv6Address("TCP", "2001:db8::1", 1), "2001:db8::1"),
            (IPv6Address("TCP", "2001:DB8:0::1", 1), "2001:db8::1"),
            (IPv6Address("TCP", "::ffff:192.0.2.7", 1), "192.0.2.7"),
            (UNIXAddress(b"/tmp/s"), None),
        ]
        for address, expected in cases:
            self.assertEqual(peer_host(StringTransport(peerAddress=address)), expected)

    def test_is_loopback(self) -> None:
        for host in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
            self.assertTrue(is_loopback(host), host)
        for other in (None, "10.0.0.1", "::2", "localhost", "", "::ffff:10.0.0.1", "nonsense"):
            self.assertFalse(is_loopback(other), other)

    def test_normalize_host(self) -> None:
        self.assertEqual(normalize_host("::FFFF:10.1.2.3"), "10.1.2.3")
        self.assertEqual(normalize_host("mail.example"), "mail.example")

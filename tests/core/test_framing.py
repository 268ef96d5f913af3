"""Tests for netproto_twisted.core.framing: LineBuffer and serialize_line."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core import framing
from netproto_twisted.core.errors import (
    LineTooLong,
    LocalProtocolError,
    RemoteProtocolError,
)
from netproto_twisted.core.framing import (
    CRLF,
    BareLineEnding,
    LineBuffer,
    LineEndings,
    serialize_line,
)

Event = tuple[str, bytes]


def drain(buffer: LineBuffer) -> list[Event]:
    """Call next_line until it returns None; record each line or error."""
    events: list[Event] = []
    while True:
        try:
            line = buffer.next_line()
        except LineTooLong:
            events.append(("too-long", b""))
            continue
        except BareLineEnding as e:
            events.append(("bare", e.line))
            continue
        if line is None:
            return events
        events.append(("line", line))


def split(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    """Cut ``data`` at the given offsets (any order, duplicates allowed)."""
    start = 0
    for cut in sorted(set(cuts)):
        yield data[start:cut]
        start = cut
    yield data[start:]


def model(data: bytes, max_length: int, endings: LineEndings) -> list[Event]:
    """A slow, obviously correct reference: the events of ``data`` fed at once."""
    events: list[Event] = []
    *lines, last = data.split(b"\n")
    for raw in lines:
        has_cr = raw.endswith(b"\r")
        line = raw[:-1] if has_cr else raw
        if len(line) > max_length:
            events.append(("too-long", b""))
        elif (endings is not LineEndings.NORMALIZE and b"\r" in line) or (
            endings is LineEndings.STRICT and not has_cr
        ):
            events.append(("bare", line))
        else:
            events.append(("line", line.replace(b"\r", b"")))
    if len(last) > max_length and not (len(last) == max_length + 1 and last.endswith(b"\r")):
        events.append(("too-long", b""))
    return events


class LineBufferTests(SynchronousTestCase):
    """Unit tests of LineBuffer's rules."""

    def test_pipelined_lines_in_order(self) -> None:
        """Several lines in one feed come out one at a time, in order."""
        buffer = LineBuffer(100)
        buffer.feed(b"EHLO a\r\nMAIL FROM:<x>\r\nRCPT TO:<y>\r\nDA")
        self.assertEqual(buffer.next_line(), b"EHLO a")
        self.assertEqual(buffer.next_line(), b"MAIL FROM:<x>")
        self.assertEqual(buffer.next_line(), b"RCPT TO:<y>")
        self.assertIsNone(buffer.next_line())
        self.assertEqual(len(buffer), 2)
        buffer.feed(b"TA\r\n")
        self.assertEqual(buffer.next_line(), b"DATA")
        self.assertEqual(len(buffer), 0)

    def test_byte_by_byte(self) -> None:
        """A line fed one byte at a time appears only once its CRLF is complete."""
        buffer = LineBuffer(100)
        results = []
        for byte in b"NOOP\r\n":
            buffer.feed(bytes([byte]))
            results.append(buffer.next_line())
        self.assertEqual(results, [None] * 5 + [b"NOOP"])

    def test_empty_line(self) -> None:
        """An empty line is returned as b''."""
        buffer = LineBuffer(10)
        buffer.feed(b"\r\n\r\n")
        self.assertEqual([buffer.next_line(), buffer.next_line()], [b"", b""])
        self.assertIsNone(buffer.next_line())

    def test_max_length_exact(self) -> None:
        """A line of exactly max_length bytes is accepted; the terminator does not count."""
        buffer = LineBuffer(5)
        buffer.feed(b"abcde\r")
        self.assertIsNone(buffer.next_line())
        buffer.feed(b"\n")
        self.assertEqual(buffer.next_line(), b"abcde")

    def test_too_long_complete_line(self) -> None:
        """A complete over-long line raises once and is consumed; the next line follows."""
        buffer = LineBuffer(5)
        buffer.feed(b"abcdef\r\nok\r\n")
        error = self.assertRaises(LineTooLong, buffer.next_line)
        self.assertEqual(error.limit, 5)
        self.assertEqual(buffer.next_line(), b"ok")
        self.assertIsNone(buffer.next_line())

    def test_too_long_before_terminator(self) -> None:
        """An over-long line raises before its LF arrives; its rest is discarded later."""
        buffer = LineBuffer(5)
        buffer.feed(b"abcdefg")
        self.assertRaises(LineTooLong, buffer.next_line)
        self.assertTrue(buffer.discarding)
        self.assertEqual(len(buffer), 0)
        self.assertIsNone(buffer.next_line())
        buffer.feed(b"more junk")
        self.assertIsNone(buffer.next_line())
        buffer.feed(b" still\r\nQUIT\r\n")
        self.assertFalse(buffer.discarding)
        self.assertEqual(buffer.next_line(), b"QUIT")

    def test_too_long_pending_cr(self) -> None:
        """max_length bytes plus a CR is not yet too long; plus any other byte is."""
        buffer = LineBuffer(3)
        buffer.feed(b"abc\r")
        self.assertIsNone(buffer.next_line())
        buffer.feed(b"x")
        self.assertRaises(LineTooLong, buffer.next_line)

    def test_memory_bounded_without_terminator(self) -> None:
        """A peer that never sends LF cannot make the buffer grow."""
        buffer = LineBuffer(100)
        chunk = b"x" * 4096
        raised = 0
        for _ in range(256):
            buffer.feed(chunk)
            try:
                buffer.next_line()
            except LineTooLong:
                raised += 1
            self.assertEqual(len(buffer), 0)
        self.assertEqual(raised, 1)
        buffer.feed(b"\r\nNOOP\r\n")
        self.assertEqual(buffer.next_line(), b"NOOP")

    def test_strict_bare_lf(self) -> None:
        """STRICT: a line ending in a bare LF raises BareLineEnding at once and is consumed."""
        buffer = LineBuffer(100)
        buffer.feed(b"HELO x\nNOOP\r\n")
        error = self.assertRaises(BareLineEnding, buffer.next_line)
        self.assertEqual(error.line, b"HELO x")
        self.assertIsInstance(error, RemoteProtocolError)
        self.assertEqual(buffer.next_line(), b"NOOP")

    def test_strict_bare_cr(self) -> None:
        """STRICT: a CR inside a line raises BareLineEnding naming the line."""
        buffer = LineBuffer(100)
        buffer.feed(b"MAIL\rFROM\r\nNOOP\r\n")
        error = self.assertRaises(BareLineEnding, buffer.next_line)
        self.assertEqual(error.line, b"MAIL\rFROM")
        self.assertEqual(buffer.next_line(), b"NOOP")

    def test_strict_cr_cr_lf(self) -> None:
        """STRICT: CR CR LF is a bare CR followed by CRLF."""
        buffer = LineBuffer(100)
        buffer.feed(b"x\r\r\n")
        self.assertEqual(self.assertRaises(BareLineEnding, buffer.next_line).line, b"x\r")

    def test_bare_cr_never_ends_a_line(self) -> None:
        """In every mode a bare CR alone does not end a line."""
        for endings in LineEndings:
            buffer = LineBuffer(100, endings=endings)
            buffer.feed(b"a\rb")
            self.assertIsNone(buffer.next_line())

    def test_accept_lf(self) -> None:
        """ACCEPT_LF: LF and CRLF end lines; a bare CR raises."""
        buffer = LineBuffer(100, endings=LineEndings.ACCEPT_LF)
        buffer.feed(b"one\ntwo\r\nth\rree\r\nfour\n")
        self.assertEqual(buffer.next_line(), b"one")
        self.assertEqual(buffer.next_line(), b"two")
        self.assertEqual(self.assertRaises(BareLineEnding, buffer.next_line).line, b"th\rree")
        self.assertEqual(buffer.next_line(), b"four")

    def test_normalize(self) -> None:
        """NORMALIZE: LF and CRLF end lines; bare CRs are removed."""
        buffer = LineBuffer(100, endings=LineEndings.NORMALIZE)
        buffer.feed(b"one\ntw\ro\r\n\r\r\n")
        self.assertEqual(buffer.next_line(), b"one")
        self.assertEqual(buffer.next_line(), b"two")
        self.assertEqual(buffer.next_line(), b"")

    def test_settable(self) -> None:
        """max_length and endings may change between lines."""
        buffer = LineBuffer(3)
        buffer.feed(b"abcdef\r\nabcdef\r\nx\n")
        self.assertRaises(LineTooLong, buffer.next_line)
        buffer.max_length = 10
        self.assertEqual(buffer.next_line(), b"abcdef")
        buffer.endings = LineEndings.ACCEPT_LF
        self.assertEqual(buffer.next_line(), b"x")

    def test_take_raw_between_lines(self) -> None:
        """Raw mode between two lines takes exactly the bytes asked for (a literal)."""
        buffer = LineBuffer(100)
        buffer.feed(b"A1 APPEND x {5}\r\nhel")
        self.assertEqual(buffer.next_line(), b"A1 APPEND x {5}")
        self.assertEqual(buffer.take_raw(5), b"hel")
        buffer.feed(b"lo\r\nA2 NOOP\r\n")
        self.assertEqual(buffer.take_raw(2), b"lo")
        self.assertEqual(buffer.next_line(), b"")
        self.assertEqual(buffer.next_line(), b"A2 NOOP")

    def test_take_raw_all(self) -> None:
        """take_raw() with no count takes everything; take_raw(0) nothing."""
        buffer = LineBuffer(100)
        buffer.feed(b"line\r\nraw\r\nbytes")
        self.assertEqual(buffer.next_line(), b"line")
        self.assertEqual(buffer.take_raw(0), b"")
        self.assertEqual(buffer.take_raw(), b"raw\r\nbytes")
        self.assertEqual(len(buffer), 0)
        self.assertEqual(buffer.take_raw(), b"")

    def test_take_raw_after_partial_scan(self) -> None:
        """A partial line already scanned may be taken raw; scanning restarts correctly."""
        buffer = LineBuffer(100)
        buffer.feed(b"abc")
        self.assertIsNone(buffer.next_line())
        self.assertEqual(buffer.take_raw(2), b"ab")
        buffer.feed(b"\r\nxy\r\n")
        self.assertEqual(buffer.next_line(), b"c")
        self.assertEqual(buffer.next_line(), b"xy")

    def test_take_raw_between_cr_and_lf(self) -> None:
        """Raw bytes taken up to a CR leave its LF as a bare LF ending an empty line."""
        buffer = LineBuffer(100)
        buffer.feed(b"ab\r\ncd\r\nef\r\n")
        self.assertEqual(buffer.next_line(), b"ab")
        self.assertEqual(buffer.take_raw(3), b"cd\r")
        self.assertEqual(self.assertRaises(BareLineEnding, buffer.next_line).line, b"")
        self.assertEqual(buffer.next_line(), b"ef")
        self.assertIsNone(buffer.next_line())

    def test_take_raw_negative(self) -> None:
        """A negative count is refused."""
        buffer = LineBuffer(100)
        buffer.feed(b"abc")
        self.assertRaises(ValueError, buffer.take_raw, -1)

    def test_negative_max_length(self) -> None:
        """A negative max_length is refused."""
        self.assertRaises(ValueError, LineBuffer, -1)

    def test_clear(self) -> None:
        """clear() drops the buffer, returns its size, and ends a discard."""
        buffer = LineBuffer(3)
        buffer.feed(b"ab\r\ncd")
        self.assertEqual(buffer.clear(), 6)
        self.assertEqual(len(buffer), 0)
        self.assertIsNone(buffer.next_line())
        buffer.feed(b"toolong")
        self.assertRaises(LineTooLong, buffer.next_line)
        self.assertEqual(buffer.clear(), 0)
        self.assertFalse(buffer.discarding)
        buffer.feed(b"ok\r\n")
        self.assertEqual(buffer.next_line(), b"ok")

    def test_idle(self) -> None:
        """idle: nothing buffered and nothing being discarded."""
        buffer = LineBuffer(3)
        self.assertTrue(buffer.idle)
        buffer.feed(b"ab\r\ncd")
        self.assertFalse(buffer.idle)
        self.assertEqual(buffer.next_line(), b"ab")
        self.assertFalse(buffer.idle)
        self.assertEqual(buffer.take_raw(2), b"cd")
        self.assertTrue(buffer.idle)
        buffer.feed(b"toolong")
        self.assertRaises(LineTooLong, buffer.next_line)
        self.assertEqual(len(buffer), 0)
        self.assertFalse(buffer.idle)  # the rest of the line is still to be dropped
        buffer.feed(b"more\n")
        self.assertTrue(buffer.idle)

    def test_compaction(self) -> None:
        """Lines far past the compaction threshold, mixed with raw reads, stay intact."""
        buffer = LineBuffer(100)
        lines = [b"line %06d" % i for i in range(30000)]
        buffer.feed(b"".join(line + CRLF for line in lines))
        got: list[bytes | None] = []
        for i in range(len(lines)):
            if i % 1000 == 999:
                got.append(buffer.take_raw(len(lines[i]) + 2)[:-2])
            else:
                got.append(buffer.next_line())
            if i % 7000 == 0:
                buffer.feed(b"")
        self.assertEqual(got, lines)
        self.assertIsNone(buffer.next_line())

    def test_compaction_after_partial_scan(self) -> None:
        """A partial line scanned before the buffer is compacted still splits correctly."""
        buffer = LineBuffer(100)
        lines = [b"%07d" % i for i in range(20000)]
        wire = b"".join(line + CRLF for line in lines)
        got: list[bytes] = []
        for start in range(0, len(wire), 70001):
            buffer.feed(wire[start : start + 70001])
            while (line := buffer.next_line()) is not None:
                got.append(line)
        self.assertEqual(got, lines)


class SerializeLineTests(SynchronousTestCase):
    """serialize_line."""

    def test_bytes(self) -> None:
        """Bytes get CRLF appended."""
        self.assertEqual(serialize_line(b"NOOP"), b"NOOP\r\n")

    def test_str_utf8(self) -> None:
        """A str is encoded as UTF-8."""
        self.assertEqual(serialize_line("RCPT TO:<jö@x>"), "RCPT TO:<jö@x>\r\n".encode())

    def test_injection_refused(self) -> None:
        """CR, LF and NUL are refused: they would inject a command."""
        for bad in (b"RCPT TO:<a>\r\nDATA", b"a\nb", b"a\rb", b"a\x00b", "x\ny"):
            self.assertRaises(LocalProtocolError, serialize_line, bad)


line_bytes = st.binary(max_size=12).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
wire_bytes = st.lists(
    st.sampled_from([b"a", b"b", b"\r", b"\n", b"\r\n", b".", b"xyz"]), max_size=40
).map(b"".join)


class LineBufferPropertyTests(SynchronousTestCase):
    """Hypothesis properties: output does not depend on how the input is chunked."""

    @settings(max_examples=300, deadline=None)
    @given(st.lists(line_bytes, max_size=20), st.data())
    def test_lines_any_chunking(self, lines: list[bytes], data: st.DataObject) -> None:
        """Well-formed lines come out unchanged, in order, whatever the chunking."""
        wire = b"".join(line + CRLF for line in lines)
        cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=10))
        buffer = LineBuffer(12)
        events: list[Event] = []
        for chunk in split(wire, cuts):
            buffer.feed(chunk)
            events.extend(drain(buffer))
        self.assertEqual(events, [("line", line) for line in lines])
        self.assertEqual(len(buffer), 0)

    @settings(max_examples=500, deadline=None)
    @given(
        wire_bytes,
        st.integers(0, 8),
        st.sampled_from(list(LineEndings)),
        st.lists(st.integers(0, 200), max_size=12),
    )
    def test_matches_model(
        self, wire: bytes, max_length: int, endings: LineEndings, cuts: list[int]
    ) -> None:
        """Arbitrary bytes, any chunking: the same events as the reference model."""
        buffer = LineBuffer(max_length, endings=endings)
        events: list[Event] = []
        for chunk in split(wire, [c for c in cuts if c <= len(wire)]):
            buffer.feed(chunk)
            events.extend(drain(buffer))
        self.assertEqual(events, model(wire, max_length, endings))

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(st.one_of(line_bytes, st.binary(max_size=20).map(bytearray)), max_size=10),
        st.data(),
    )
    def test_raw_interleaving(self, items: list[bytes | bytearray], data: st.DataObject) -> None:
        """Lines announcing literals ({n}) and the literals' raw bytes interleave correctly."""
        wire = b""
        for item in items:
            if isinstance(item, bytearray):
                wire += b"{%d}\r\n" % len(item) + bytes(item)
            else:
                wire += b"L" + item + CRLF
        cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=10))
        buffer = LineBuffer(30)
        got: list[bytes | bytearray] = []
        literal: bytearray | None = None
        need = 0
        for chunk in split(wire, cuts):
            buffer.feed(chunk)
            while True:
                if literal is not None:
                    piece = buffer.take_raw(need)
                    literal += piece
                    need -= len(piece)
                    if need:
                        break
                    got.append(literal)
                    literal = None
                    continue
                line = buffer.next_line()
                if line is None:
                    break
                if line.startswith(b"{"):
                    literal = bytearray()
                    need = int(line[1:-1])
                else:
                    got.append(line[1:])
        if literal is not None and need == 0:
            got.append(literal)
        self.assertEqual(got, items)
        self.assertEqual(len(buffer), 0)


class NaiveLineBuffer:
    """A slow reference LineBuffer: one bytes object, re-scanned at every call."""

    def __init__(self, max_length: int, endings: LineEndings) -> None:
        self.max_length = max_length
        self.endings = endings
        self.data = b""
        self.discarding = False

    def feed(self, data: bytes) -> None:
        if self.discarding:
            if b"\n" not in data:
                return
            self.discarding = False
            data = data[data.index(b"\n") + 1 :]
        self.data += data

    def next_event(self) -> Event | None:
        if b"\n" not in self.data:
            pending = len(self.data)
            if pending > self.max_length and not (
                pending == self.max_length + 1 and self.data.endswith(b"\r")
            ):
                self.data = b""
                self.discarding = True
                return ("too-long", b"")
            return None
        raw, self.data = self.data.split(b"\n", 1)
        events = model(raw + b"\n", self.max_length, self.endings)
        return events[0]

    def take_raw(self, n: int) -> bytes:
        taken, self.data = self.data[:n], self.data[n:]
        return taken


operations = st.lists(
    st.one_of(
        st.tuples(st.just("feed"), wire_bytes),
        st.tuples(st.just("line"), st.just(0)),
        st.tuples(st.just("raw"), st.integers(0, 12)),
        st.tuples(st.just("endings"), st.sampled_from(list(LineEndings))),
    ),
    max_size=40,
)


class LineBufferModelTests(SynchronousTestCase):
    """Hypothesis: any sequence of feed / next_line / take_raw matches the naive reference."""

    @settings(max_examples=1000, deadline=None)
    @given(operations, st.integers(0, 8), st.sampled_from([(65536, 65536), (1, 1), (5, 9)]))
    def test_operations(
        self, ops: list[tuple[str, object]], max_length: int, sizes: tuple[int, int]
    ) -> None:
        """Events, raw bytes and buffered length agree with NaiveLineBuffer after each step.

        Tiny batch and compaction sizes exercise those code paths too.
        """
        saved = framing._SPLIT_WINDOW, framing._COMPACT_AT
        framing._SPLIT_WINDOW, framing._COMPACT_AT = sizes
        try:
            self.check_operations(ops, max_length)
        finally:
            framing._SPLIT_WINDOW, framing._COMPACT_AT = saved

    def check_operations(self, ops: list[tuple[str, object]], max_length: int) -> None:
        """Run ``ops`` on a LineBuffer and a NaiveLineBuffer side by side."""
        buffer = LineBuffer(max_length)
        naive = NaiveLineBuffer(max_length, LineEndings.STRICT)
        for op, arg in ops:
            if op == "feed":
                assert isinstance(arg, bytes)
                buffer.feed(arg)
                naive.feed(arg)
            elif op == "line":
                got = drain_one(buffer)
                self.assertEqual(got, naive.next_event())
            elif op == "raw":
                assert isinstance(arg, int)
                self.assertEqual(buffer.take_raw(arg), naive.take_raw(arg))
            else:
                assert isinstance(arg, LineEndings)
                buffer.endings = naive.endings = arg
            self.assertEqual(len(buffer), len(naive.data))
            self.assertEqual(buffer.discarding, naive.discarding)


def drain_one(buffer: LineBuffer) -> Event | None:
    """Call next_line once; return its line or error as an event."""
    try:
        line = buffer.next_line()
    except LineTooLong:
        return ("too-long", b"")
    except BareLineEnding as e:
        return ("bare", e.line)
    return None if line is None else ("line", line)

"""The Telnet byte codec: IAC, commands, subnegotiation bounds, CR NUL; properties."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.telnet._wire import (
    AYT,
    DO,
    IAC,
    NAWS,
    NOP,
    SB,
    SE,
    TTYPE,
    WILL,
    TelnetParser,
    encode_text,
    escape,
    subnegotiation,
)


class Sink:
    """Records what the parser reports."""

    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def negotiation_received(self, verb: int, option: int) -> None:
        self.events.append(("neg", verb, option))

    def command_received(self, command: int) -> None:
        self.events.append(("cmd", command))

    def subnegotiation_received(self, option: int, payload: bytes) -> None:
        self.events.append(("sb", option, payload))

    def subnegotiation_overflow(self, option: int) -> None:
        self.events.append(("overflow", option))


def feed(parser: TelnetParser, data: bytes, step: int) -> bytes:
    return b"".join(parser.decode(data[i : i + step]) for i in range(0, len(data), step))


STREAM = (
    b"hello"
    + bytes([IAC, DO, 1])
    + b" wor"
    + bytes([IAC, IAC])
    + b"ld\r\0x\r\n"
    + bytes([IAC, SB, NAWS, 0, 80, 0, IAC, IAC, IAC, SE])
    + bytes([IAC, AYT])
    + b"end"
)
EVENTS = [("neg", DO, 1), ("sb", NAWS, bytes([0, 80, 0, IAC])), ("cmd", AYT)]


class ParserTests(SynchronousTestCase):
    def test_whole_and_split(self) -> None:
        """Every chunking of the stream decodes the same, events included."""
        for step in (1, 2, 3, 5, 7, len(STREAM)):
            sink = Sink()
            data = feed(TelnetParser(sink), STREAM, step)
            self.assertEqual(data, b"hello wor\xffld\rx\r\nend", step)
            self.assertEqual(sink.events, EVENTS, step)

    def test_plain_data_is_returned_as_is(self) -> None:
        data = b"x" * 100_000
        self.assertIs(TelnetParser(Sink()).decode(data), data)

    def test_binary_keeps_cr_nul(self) -> None:
        parser = TelnetParser(Sink())
        parser.binary = True
        self.assertEqual(parser.decode(b"a\r\0b"), b"a\r\0b")

    def test_cr_nul_split_across_chunks(self) -> None:
        parser = TelnetParser(Sink())
        self.assertEqual(parser.decode(b"a\r") + parser.decode(b"\0b"), b"a\rb")

    def test_never_ending_subnegotiation_is_bounded(self) -> None:
        sink = Sink()
        parser = TelnetParser(sink, max_subnegotiation=1024)
        parser.decode(bytes([IAC, SB, TTYPE]))
        for _ in range(1000):
            self.assertEqual(parser.decode(b"z" * 1000), b"")
        self.assertEqual(sink.events, [("overflow", TTYPE)])
        self.assertTrue(parser.in_subnegotiation)
        self.assertEqual(len(parser._sub), 0)
        # It ends: data flows again, and the dropped payload is not reported.
        self.assertEqual(parser.decode(bytes([IAC, SE]) + b"ok"), b"ok")
        self.assertFalse(parser.in_subnegotiation)

    def test_command_inside_subnegotiation_ends_it(self) -> None:
        sink = Sink()
        out = TelnetParser(sink).decode(bytes([IAC, SB, TTYPE, 1, IAC, WILL, 3]) + b"x")
        self.assertEqual(out, b"x")
        self.assertEqual(sink.events, [("neg", WILL, 3)])

    def test_megabyte_of_iacs(self) -> None:
        """1 MB of IAC IAC decodes to 0.5 MB of 0xff; of IAC NOP to nothing."""
        parser = TelnetParser(Sink())
        self.assertEqual(parser.decode(b"\xff" * 1_000_000), b"\xff" * 500_000)
        sink = Sink()
        self.assertEqual(TelnetParser(sink).decode(bytes([IAC, NOP]) * 500_000), b"")
        self.assertEqual(len(sink.events), 500_000)

    def test_escape_and_encode(self) -> None:
        self.assertEqual(escape(b"a\xffb"), b"a\xff\xffb")
        self.assertEqual(encode_text(b"a\nb\rc\r\n\xff"), b"a\r\nb\r\0c\r\n\xff\xff")
        self.assertEqual(encode_text(b"a\nb\r", binary=True), b"a\nb\r")
        self.assertEqual(subnegotiation(NAWS, b"\xff"), bytes([IAC, SB, NAWS, IAC, IAC, IAC, SE]))


class ParserProperties(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=400), st.integers(1, 50))
    def test_random_bytes_never_crash_and_chunking_is_invisible(
        self, data: bytes, step: int
    ) -> None:
        a, b = Sink(), Sink()
        pa, pb = TelnetParser(a, max_subnegotiation=64), TelnetParser(b, max_subnegotiation=64)
        whole = pa.decode(data)
        self.assertEqual(feed(pb, data, step), whole)
        self.assertEqual(a.events, b.events)
        self.assertLessEqual(len(pa._sub), 64)
        for event in a.events:
            if event[0] == "sb":
                self.assertLessEqual(len(event[2]), 64)  # type: ignore[arg-type]

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=300))
    def test_escaped_data_round_trips(self, data: bytes) -> None:
        parser = TelnetParser(Sink())
        parser.binary = True
        self.assertEqual(feed(parser, escape(data), 3), data)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=300))
    def test_nvt_text_round_trips(self, data: bytes) -> None:
        """encode_text then decode gives the text with lone LF as CR LF."""
        parser = TelnetParser(Sink())
        expected = encode_text(data).replace(b"\r\0", b"\r").replace(b"\xff\xff", b"\xff")
        self.assertEqual(feed(parser, encode_text(data), 4), expected)

"""Tests for the bulk path of netproto_twisted.core.dotstuff: the same result as line by line."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.dotstuff import DotStuffer, DotUnstuffer, dot_stuff
from netproto_twisted.core.errors import LineTooLong, RemoteProtocolError
from netproto_twisted.core.framing import BareLineEnding, LineEndings
from tests.core.test_dotstuff import decode, model, normalize, split

STRICT = LineEndings.STRICT
CRLF = b"\r\n"


class LineByLine(DotUnstuffer):
    """The decoder with its bulk path turned off: the reference for the bulk path."""

    def _decode_bulk(self, buf: bytes) -> bytes | None:
        return None


def feeds(
    decoder: DotUnstuffer, chunks: Iterable[bytes]
) -> tuple[list[bytes], list[str], bytes | None]:
    """Feed every chunk; return each feed's payload, each feed's error name, and rest()."""
    out: list[bytes] = []
    errors: list[str] = []
    for chunk in chunks:
        try:
            out.append(decoder.feed(chunk))
            errors.append("")
        except RemoteProtocolError as e:
            out.append(b"")
            errors.append(type(e).__name__)
    return out, errors, decoder.rest() if decoder.done else None


def bulk_calls(decoder: DotUnstuffer, chunks: Iterable[bytes]) -> tuple[int, int]:
    """Feed the chunks; return how many feeds the bulk path took and how many it declined."""
    taken = declined = 0
    bulk = decoder._decode_bulk

    def counting(buf: bytes) -> bytes | None:
        nonlocal taken, declined
        result = bulk(buf)
        if result is None:
            declined += 1
        else:
            taken += 1
        return result

    decoder._decode_bulk = counting  # type: ignore[method-assign]
    for chunk in chunks:
        decoder.feed(chunk)
    return taken, declined


# Clean CRLF lines, many starting with dots, then anything (the next commands).
clean_lines = st.lists(
    st.sampled_from([b"", b".", b"..", b"...", b".a", b"a", b"a.", b"a.b", b"xyz", b"\x00\xff"]),
    max_size=30,
)
tails = st.sampled_from(
    [b"", b"\r", b".", b".\r", b"\r\n.", b"\r\n.\r", b"\r\n.\r\n", b"\r\n.\r\n.\r\n", b"\n", b"x"]
)
cut_lists = st.lists(st.integers(0, 400), max_size=12)
limits = st.sampled_from([None, 1, 2, 3, 5, 80])


@st.composite
def clean_wires(draw: st.DrawFn) -> bytes:
    """Clean CRLF lines, a tail that may end or nearly end the block, then more bytes."""
    body = CRLF.join(draw(clean_lines))
    return body + draw(tails) + draw(st.binary(max_size=6)) + CRLF.join(draw(clean_lines))


@st.composite
def dense_wires(draw: st.DrawFn) -> bytes:
    """Thousands of short lines (the count check), with a terminator somewhere or not."""
    unit = CRLF.join(draw(st.lists(st.sampled_from([b"", b".", b"..", b"a", b".b"]), max_size=6)))
    body = (unit + CRLF) * draw(st.integers(300, 1500))
    at = draw(st.integers(0, len(body)))
    return body[:at] + draw(tails) + body[at:] + draw(st.sampled_from([b"", b".\r\nQUIT\r\n"]))


class BulkMatchesLineByLineTests(SynchronousTestCase):
    """Whatever the input and its chunking, the bulk path changes nothing but speed."""

    def check(self, wire: bytes, cuts: list[int], endings: LineEndings, limit: int | None) -> None:
        """Every feed's payload and error, and the rest, as line by line; the model's end."""
        chunks = list(split(wire, cuts))
        fast = DotUnstuffer(endings=endings, max_line_length=limit)
        slow = LineByLine(endings=endings, max_line_length=limit)
        self.assertEqual(feeds(fast, chunks), feeds(slow, chunks))
        self.assertEqual(fast.done, slow.done)
        self.assertEqual(type(fast.error), type(slow.error))
        got = decode(chunks, endings, limit)
        expected = model(wire, endings, limit)
        self.assertEqual(got.done, expected.done)
        self.assertEqual(got.rest, expected.rest)
        if got.done and not got.failed:
            self.assertEqual(got.payload, expected.payload)

    @settings(max_examples=1500, deadline=None)
    @given(clean_wires(), cut_lists, st.sampled_from(list(LineEndings)), limits)
    def test_clean_lines(
        self, wire: bytes, cuts: list[int], endings: LineEndings, limit: int | None
    ) -> None:
        """Clean CRLF data with dot lines, terminators and near-terminators anywhere."""
        self.check(wire, cuts, endings, limit)

    @settings(max_examples=150, deadline=None)
    @given(dense_wires(), st.lists(st.integers(0, 12000), max_size=6), limits)
    def test_dense_lines(self, wire: bytes, cuts: list[int], limit: int | None) -> None:
        """Many short lines per chunk: the same result through the count check."""
        self.check(wire, cuts, STRICT, limit)

    def test_bulk_path_is_taken(self) -> None:
        """Clean chunks of any size, split anywhere, go through the bulk path, not line by line."""
        lines = [b"..x" if i % 7 == 0 else b"line %d" % i for i in range(3000)]
        wire = CRLF.join(lines) + b"\r\n.\r\nQUIT\r\n"
        chunks = list(split(wire, range(0, len(wire), 4093)))
        taken, declined = bulk_calls(DotUnstuffer(), chunks)
        self.assertEqual((taken, declined), (len(chunks), 0))
        dense = b"a\r\n" * 5000 + b".\r\n"
        taken, declined = bulk_calls(DotUnstuffer(), list(split(dense, [4097, 9001])))
        self.assertEqual((taken, declined), (3, 0))

    def test_bulk_declines_what_it_cannot_decode(self) -> None:
        """A bare LF, an over-long line, or a block ending at the start: line by line."""
        for wire, limit in (
            (b"a\r\nb\nc\r\n", None),
            (b"a\r\n" + b"b" * 10 + b"\r\n", 5),
            (b".\r\nQUIT\r\n", None),
            (b"a\r\n.\r\nQUIT\n", None),
        ):
            self.assertEqual(bulk_calls(DotUnstuffer(max_line_length=limit), [wire]), (0, 1))

    def test_few_and_many_dot_lines(self) -> None:
        """Around the number of dots looked at one by one, with the end anywhere among them."""
        for count in (1, 7, 8, 9, 20):
            lines = [b"..%d" % i if i % 3 == 0 else b"x.%d" % i for i in range(3 * count)]
            body = CRLF.join(lines) + CRLF
            for end in (b"", b".", b".\r", b".\r\n", b".\r\nQUIT\r\n"):
                wire = body + end
                self.check(wire, [], STRICT, None)
                self.check(wire, [len(wire) // 2], STRICT, 4)

    def test_terminator_then_dot_line(self) -> None:
        """A terminator right before a line starting with a dot is still the end."""
        for wire in (b"a\r\n.\r\n.x", b"a\r\n..\r\n.\r\n.\r\n", b"\r\n.\r\n.\r\n."):
            self.check(wire, [], STRICT, None)
        self.assertEqual(decode([b"a\r\n.\r\n.\x00"]).rest, b".\x00")

    def test_limit_counts_carried_line(self) -> None:
        """A line split over feeds is measured whole, stuffing dot included."""
        decoder = DotUnstuffer(max_line_length=6)
        self.assertEqual(decoder.feed(b"ab\r\n..cd"), b"ab\r\n.cd")
        self.assertEqual(decoder.feed(b"ef"), b"ef")
        self.assertIsNone(decoder.error)
        decoder.feed(b"g")
        self.assertIsInstance(decoder.error, LineTooLong)

    def test_bare_cr_split_from_its_lf(self) -> None:
        """A CR ending a feed is held back: with the LF it is a CRLF, without it an error."""
        decoder = DotUnstuffer()
        self.assertEqual(decoder.feed(b"a\r"), b"a")
        self.assertEqual(decoder.feed(b"\n.."), b"\r\n.")
        self.assertEqual(decoder.feed(b"b\r"), b"b")
        decoder.feed(b"c")
        self.assertIsInstance(decoder.error, BareLineEnding)


class DotStufferChunkTests(SynchronousTestCase):
    """The encoder's checks: a CR ending a chunk, many short lines."""

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"xy"]), max_size=8),
        st.integers(200, 900),
        st.lists(st.integers(0, 6000), max_size=6),
    )
    def test_dense_roundtrip(self, unit: list[bytes], times: int, cuts: list[int]) -> None:
        """Many short lines, any chunking: as one call; decoded, the normalised message."""
        message = b"".join(unit) * times
        stuffer = DotStuffer()
        encoded = b"".join(stuffer.encode(c) for c in split(message, cuts)) + stuffer.finish()
        self.assertEqual(encoded, dot_stuff(message))
        self.assertEqual(decode([encoded]).payload, normalize(message))

    def test_lf_chunk_after_cr(self) -> None:
        """A CR ending a chunk pairs with one LF only, even when that LF is a chunk alone."""
        for chunks in ([b"aa\r", b"\n", b"\n"], [b"aa\r", b"", b"\n", b"\n"], [b"a\r", b"\n\n"]):
            stuffer = DotStuffer()
            encoded = b"".join(stuffer.encode(c) for c in chunks) + stuffer.finish()
            self.assertEqual(encoded, dot_stuff(b"".join(chunks)), chunks)

    def test_cr_ending_chunk(self) -> None:
        """A CR ending a clean chunk becomes CRLF; a LF starting the next chunk is dropped."""
        stuffer = DotStuffer()
        self.assertEqual(stuffer.encode(b"a\r\nb\r"), b"a\r\nb\r\n")
        self.assertEqual(stuffer.encode(b"\n.c\r"), b"..c\r\n")
        self.assertEqual(stuffer.encode(b"d"), b"d")
        self.assertEqual(stuffer.finish(), b"\r\n.\r\n")

"""Tests for netproto_twisted.core.dotstuff: DotStuffer, DotUnstuffer and helpers."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.dotstuff import (
    TERMINATOR,
    DotStuffer,
    DotUnstuffer,
    dot_stuff,
    dot_unstuff,
)
from netproto_twisted.core.errors import (
    LineTooLong,
    LocalProtocolError,
    RemoteProtocolError,
)
from netproto_twisted.core.framing import BareLineEnding, LineEndings

STRICT = LineEndings.STRICT
ACCEPT_LF = LineEndings.ACCEPT_LF
NORMALIZE = LineEndings.NORMALIZE


def split(data: bytes, cuts: Iterable[int]) -> Iterator[bytes]:
    """Cut ``data`` at the given offsets (any order, duplicates, out of range ignored)."""
    start = 0
    for cut in sorted({c for c in cuts if 0 <= c <= len(data)}):
        yield data[start:cut]
        start = cut
    yield data[start:]


@dataclass
class Outcome:
    """What a decoder made of a whole input."""

    payload: bytes
    done: bool
    raised: RemoteProtocolError | None
    rest: bytes | None
    failed: bool = False


def decode(
    chunks: Iterable[bytes],
    endings: LineEndings = STRICT,
    max_line_length: int | None = None,
) -> Outcome:
    """Feed every chunk to a new decoder; collect payload, the raised error and the rest."""
    decoder = DotUnstuffer(endings=endings, max_line_length=max_line_length)
    payload = b""
    raised = None
    for chunk in chunks:
        try:
            payload += decoder.feed(chunk)
        except RemoteProtocolError as e:
            if raised is not None:
                raise AssertionError("raised twice") from e
            raised = e
            if not decoder.done or decoder.error is not e:
                raise AssertionError("raised before the end, or not its error") from e
    rest = decoder.rest() if decoder.done else None
    return Outcome(payload, decoder.done, raised, rest, decoder.error is not None)


def model(wire: bytes, endings: LineEndings, limit: int | None) -> Outcome:
    """A slow line-by-line reference decoder working on the whole input (payload only if done)."""
    strict = endings is STRICT
    payload = b""
    error: RemoteProtocolError | None = None
    previous_crlf = True  # The data starts at a line start.
    *lines, _ = wire.split(b"\n")
    consumed = 0
    for raw in lines:
        consumed += len(raw) + 1
        has_cr = raw.endswith(b"\r")
        content = raw[:-1] if has_cr else raw
        if content == b"." and (has_cr or not strict) and previous_crlf:
            if error is not None:
                return Outcome(b"", True, error, wire[consumed:], True)
            return Outcome(payload, True, None, wire[consumed:], False)
        previous_crlf = has_cr or not strict
        if error is not None:
            continue
        if limit is not None and len(content) > limit:
            error = LineTooLong(limit)
        elif (strict and not has_cr) or (endings is not NORMALIZE and b"\r" in content):
            error = BareLineEnding(content)
        else:
            payload += content.replace(b"\r", b"")[1 if content[:1] == b"." else 0 :] + b"\r\n"
    return Outcome(b"", False, None, None, error is not None)


def normalize(message: bytes) -> bytes:
    """What DotStuffer promises to deliver: smtplib's CRLF normalisation, ending in CRLF."""
    message = re.sub(rb"\r\n|\r|\n", b"\r\n", message)
    if message and not message.endswith(b"\r\n"):
        message += b"\r\n"
    return message


class DotStufferTests(SynchronousTestCase):
    """The encoder."""

    def encode(self, *chunks: bytes) -> bytes:
        """Encode the chunks and finish."""
        stuffer = DotStuffer()
        return b"".join(stuffer.encode(c) for c in chunks) + stuffer.finish()

    def test_plain(self) -> None:
        """A message without dots passes unchanged, then the terminator."""
        self.assertEqual(
            self.encode(b"Subject: x\r\n\r\nhi\r\n"), b"Subject: x\r\n\r\nhi\r\n.\r\n"
        )

    def test_leading_dot(self) -> None:
        """A dot at the very start and after each CRLF is doubled; one mid-line is not."""
        self.assertEqual(
            self.encode(b".a\r\nb.c\r\n..\r\n.\r\n"), b"..a\r\nb.c\r\n...\r\n..\r\n.\r\n"
        )

    def test_dot_across_chunks(self) -> None:
        """A dot starting a chunk after a chunk ending in CRLF is stuffed."""
        self.assertEqual(self.encode(b"a\r\n", b".", b"\r\n"), b"a\r\n..\r\n.\r\n")
        self.assertEqual(self.encode(b"a\r", b"\n.b\r\n"), b"a\r\n..b\r\n.\r\n")

    def test_bare_lf_and_cr(self) -> None:
        """A bare LF and a bare CR each become CRLF (as smtplib does)."""
        self.assertEqual(self.encode(b"a\nb\rc\r\n"), b"a\r\nb\r\nc\r\n.\r\n")

    def test_cr_lf_split(self) -> None:
        """A CR ending one chunk and a LF starting the next make one CRLF, even with gaps."""
        self.assertEqual(self.encode(b"a\r", b"", b"\nb"), b"a\r\nb\r\n.\r\n")
        self.assertEqual(self.encode(b"a\r", b"\n"), b"a\r\n.\r\n")
        self.assertEqual(self.encode(b"a\r", b"\r", b"\n"), b"a\r\n\r\n.\r\n")

    def test_smuggling_input_is_neutralised(self) -> None:
        """Smuggling sequences in a message never end the block early."""
        for evil in (b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n"):
            message = b"x" + evil + b"MAIL FROM:<a>\r\n"
            encoded = self.encode(message)
            self.assertEqual(encoded.count(TERMINATOR), 1)
            self.assertTrue(encoded.endswith(TERMINATOR))
            for endings in LineEndings:
                outcome = decode([encoded + b"NEXT"], endings)
                self.assertEqual(outcome.payload, normalize(message))
                self.assertEqual(outcome.rest, b"NEXT")

    def test_finish_adds_crlf(self) -> None:
        """finish() adds CRLF only if the data did not end with one."""
        self.assertEqual(self.encode(b"abc"), b"abc\r\n.\r\n")
        self.assertEqual(self.encode(b"abc\r\n"), b"abc\r\n.\r\n")
        self.assertEqual(self.encode(b"."), b"..\r\n.\r\n")

    def test_empty(self) -> None:
        """An empty message is just the terminating line."""
        self.assertEqual(self.encode(), b".\r\n")
        self.assertEqual(self.encode(b"", b""), b".\r\n")

    def test_binary_passes(self) -> None:
        """NUL and 8-bit bytes pass unchanged."""
        self.assertEqual(self.encode(b"\x00\xff\xe9\r\n"), b"\x00\xff\xe9\r\n.\r\n")

    def test_use_after_finish(self) -> None:
        """encode() or finish() after finish() is a LocalProtocolError."""
        stuffer = DotStuffer()
        stuffer.finish()
        self.assertRaises(LocalProtocolError, stuffer.encode, b"x")
        self.assertRaises(LocalProtocolError, stuffer.finish)

    def test_dot_stuff(self) -> None:
        """dot_stuff() encodes a whole message in one call."""
        self.assertEqual(dot_stuff(b".x\ny"), b"..x\r\ny\r\n.\r\n")


class DotUnstufferTests(SynchronousTestCase):
    """The decoder's rules."""

    def test_plain(self) -> None:
        """Payload comes out with CRLF kept; rest holds what follows the terminator."""
        outcome = decode([b"a\r\nb\r\n.\r\nQUIT\r\n"])
        self.assertEqual(outcome, Outcome(b"a\r\nb\r\n", True, None, b"QUIT\r\n"))

    def test_empty_block(self) -> None:
        """The data starts at a line start: '.CRLF' first is the terminator."""
        self.assertEqual(decode([b".\r\nX"]), Outcome(b"", True, None, b"X"))

    def test_unstuffing(self) -> None:
        """The first dot of a line is removed: '..x' gives '.x', '.x' gives 'x', '..' gives '.'."""
        outcome = decode([b"..x\r\n.y\r\n..\r\na.b\r\n.\r\n"])
        self.assertEqual(outcome.payload, b".x\r\ny\r\n.\r\na.b\r\n")

    def test_terminator_byte_by_byte(self) -> None:
        """A terminator split over many feeds is found; nothing is returned early."""
        decoder = DotUnstuffer()
        pieces = [decoder.feed(bytes([b])) for b in b"ab\r\n.\r\nNEXT"]
        self.assertTrue(decoder.done)
        self.assertEqual(b"".join(pieces), b"ab\r\n")
        self.assertEqual(decoder.rest(), b"NEXT")
        decoder2 = DotUnstuffer()
        for b in b"ab\r\n.\r\n":
            self.assertFalse(decoder2.done)
            decoder2.feed(bytes([b]))
        self.assertTrue(decoder2.done)

    def test_feed_after_done(self) -> None:
        """Bytes fed after the terminator are appended to rest()."""
        decoder = DotUnstuffer()
        self.assertEqual(decoder.feed(b".\r\nA"), b"")
        self.assertEqual(decoder.feed(b"B"), b"")
        self.assertEqual(decoder.rest(), b"AB")

    def test_rest_before_done(self) -> None:
        """rest() before the terminator is a LocalProtocolError."""
        decoder = DotUnstuffer()
        decoder.feed(b"abc\r\n")
        self.assertRaises(LocalProtocolError, decoder.rest)

    def test_dot_then_other_across_feeds(self) -> None:
        """A line-start dot held back over a feed boundary is resolved correctly."""
        self.assertEqual(decode([b"a\r\n.", b".\r\n.", b"\r", b"\n"]).payload, b"a\r\n.\r\n")
        self.assertEqual(decode([b".", b"x\r\n.\r\n"]).payload, b"x\r\n")

    def test_strict_smuggling_sequences(self) -> None:
        """STRICT: no smuggling sequence ends the data; the error comes at the real end."""
        for evil in (b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\n.", b"\r\n.\r"):
            wire = b"x" + evil + b"MAIL FROM:<evil@x>\r\nDATA\r\n.\r\nQUIT\r\n"
            outcome = decode([wire])
            self.assertTrue(outcome.done, evil)
            self.assertIsInstance(outcome.raised, BareLineEnding)
            self.assertEqual(outcome.rest, b"QUIT\r\n", evil)

    def test_strict_smuggling_byte_by_byte(self) -> None:
        """STRICT: the same holds when every byte comes in its own feed."""
        wire = b"x\n.\r\nMAIL FROM:<evil@x>\r\n.\r\nQUIT\r\n"
        outcome = decode([bytes([b]) for b in wire])
        self.assertIsInstance(outcome.raised, BareLineEnding)
        self.assertEqual(outcome.rest, b"QUIT\r\n")

    def test_error_set_early_raised_at_end(self) -> None:
        """error is set when seen; feed returns nothing more; the terminator's feed raises."""
        decoder = DotUnstuffer()
        self.assertEqual(decoder.feed(b"good\r\nbad\n"), b"good\r\n")
        self.assertIsInstance(decoder.error, BareLineEnding)
        self.assertFalse(decoder.done)
        self.assertEqual(decoder.feed(b"more\r\n"), b"")
        error = self.assertRaises(BareLineEnding, decoder.feed, b".\r\nRSET\r\n")
        self.assertIs(error, decoder.error)
        self.assertTrue(decoder.done)
        self.assertEqual(decoder.rest(), b"RSET\r\n")

    def test_bare_lf_before_dot_is_not_a_line_start(self) -> None:
        """STRICT, after a bare-LF error: '<LF>.<CRLF>' still does not end the data."""
        decoder = DotUnstuffer()
        decoder.feed(b"a\n")
        self.assertFalse(decoder.done)
        decoder.feed(b".\r\n")
        self.assertFalse(decoder.done)
        self.assertRaises(BareLineEnding, decoder.feed, b"\r\n.\r\n")

    def test_accept_lf(self) -> None:
        """ACCEPT_LF: LF ends lines (written as CRLF) and '<LF>.<LF>' ends the data."""
        self.assertEqual(
            decode([b"a\nb\r\n.\nX"], ACCEPT_LF), Outcome(b"a\r\nb\r\n", True, None, b"X")
        )
        outcome = decode([b"a\rb\r\n.\r\nX"], ACCEPT_LF)
        self.assertIsInstance(outcome.raised, BareLineEnding)
        self.assertEqual(outcome.rest, b"X")

    def test_normalize_endings(self) -> None:
        """NORMALIZE: every LF/CRLF combination around the dot ends the data."""
        for end in (b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r\n.\r\n"):
            outcome = decode([b"a" + end + b"X"], NORMALIZE)
            self.assertEqual(outcome, Outcome(b"a\r\n", True, None, b"X"), end)

    def test_normalize_bare_cr(self) -> None:
        """NORMALIZE: a bare CR is removed and never ends a line or the data."""
        outcome = decode([b"a\rb\r.\r\r\n.\r\nX"], NORMALIZE)
        self.assertEqual(outcome, Outcome(b"ab.\r\n", True, None, b"X"))
        outcome = decode([b"a\r", b"b\r\n.\r\n"], NORMALIZE)
        self.assertEqual(outcome.payload, b"ab\r\n")

    def test_max_line_length(self) -> None:
        """A line of max_line_length bytes is accepted; the stuffing dot counts, CRLF not."""
        self.assertEqual(
            decode([b"abc\r\n..b\r\n.\r\n"], max_line_length=3).payload, b"abc\r\n.b\r\n"
        )
        outcome = decode([b"abcd\r\n.\r\nX"], max_line_length=3)
        self.assertIsInstance(outcome.raised, LineTooLong)
        self.assertEqual(outcome.rest, b"X")
        outcome = decode([b"...c\r\n.\r\nX"], max_line_length=3)
        self.assertIsInstance(outcome.raised, LineTooLong)

    def test_max_line_length_before_lf(self) -> None:
        """An over-long line is noticed before its end; memory does not grow meanwhile."""
        decoder = DotUnstuffer(max_line_length=10)
        decoder.feed(b"x" * 11)
        self.assertIsInstance(decoder.error, LineTooLong)
        for _ in range(100):
            self.assertEqual(decoder.feed(b"y" * 1000), b"")
        self.assertLessEqual(len(decoder._tail), 4)
        self.assertRaises(LineTooLong, decoder.feed, b"\r\n.\r\n")
        self.assertEqual(decoder.rest(), b"")

    def test_big_chunks(self) -> None:
        """Many lines per feed (the bulk path): stuffing, limits and the terminator mid-chunk."""
        lines = [b"..line %d" % i if i % 3 == 0 else b"line %d" % i for i in range(5000)]
        body = b"".join(line + b"\r\n" for line in lines)
        expected = b"".join(
            line[1:] + b"\r\n" if i % 3 == 0 else line + b"\r\n" for i, line in enumerate(lines)
        )
        wire = body + b".\r\nQUIT\r\n"
        for cuts in ([], [len(wire) // 2], list(range(0, len(wire), 4096))):
            outcome = decode(split(wire, cuts), max_line_length=20)
            self.assertEqual(outcome, Outcome(expected, True, None, b"QUIT\r\n"))
        long_line = wire.replace(b"line 2500\r\n", b"line 2500" + b"x" * 20 + b"\r\n")
        outcome = decode([long_line], max_line_length=20)
        self.assertIsInstance(outcome.raised, LineTooLong)
        self.assertEqual(outcome.rest, b"QUIT\r\n")
        bare = wire.replace(b"line 4000\r\n", b"line 4000\n")
        outcome = decode([bare])
        self.assertIsInstance(outcome.raised, BareLineEnding)
        self.assertEqual(outcome.rest, b"QUIT\r\n")

    def test_only_first_error_kept(self) -> None:
        """With several faults, the first one is raised."""
        outcome = decode([b"a\rb\r\nxxxxxxxxxxxxxx\r\n.\r\n"], max_line_length=5)
        self.assertIsInstance(outcome.raised, BareLineEnding)

    def test_bad_max_line_length(self) -> None:
        """max_line_length below 1 is refused."""
        self.assertRaises(ValueError, DotUnstuffer, max_line_length=0)

    def test_dot_unstuff(self) -> None:
        """dot_unstuff() decodes a whole block; a missing terminator is an error."""
        self.assertEqual(dot_unstuff(b"..a\r\n.\r\nX"), (b".a\r\n", b"X"))
        self.assertRaises(RemoteProtocolError, dot_unstuff, b"a\r\n")
        self.assertRaises(BareLineEnding, dot_unstuff, b"a\n.\n\r\n.\r\n")


messages = st.lists(
    st.sampled_from([b"a", b"b", b".", b"..", b"\r", b"\n", b"\r\n", b"\x00", b"\xff", b"xyz"]),
    max_size=40,
).map(b"".join)
wire_bytes = st.lists(
    st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"\r\n.\r\n", b"\n.\n", b"xyz"]),
    max_size=30,
).map(b"".join)
cut_lists = st.lists(st.integers(0, 300), max_size=12)


class DotStuffPropertyTests(SynchronousTestCase):
    """Hypothesis properties of the pair."""

    @settings(max_examples=500, deadline=None)
    @given(
        messages, cut_lists, cut_lists, st.sampled_from(list(LineEndings)), st.binary(max_size=8)
    )
    def test_roundtrip(
        self,
        message: bytes,
        encode_cuts: list[int],
        decode_cuts: list[int],
        endings: LineEndings,
        after: bytes,
    ) -> None:
        """Encode then decode, each under any chunking and any mode: the normalised message."""
        stuffer = DotStuffer()
        encoded = b"".join(stuffer.encode(c) for c in split(message, encode_cuts))
        encoded += stuffer.finish()
        self.assertEqual(encoded, dot_stuff(message))
        self.assertNotRegex(encoded, rb"\r(?!\n)|(?<!\r)\n")
        outcome = decode(split(encoded + after, decode_cuts), endings)
        self.assertEqual(outcome, Outcome(normalize(message), True, None, after))

    @settings(max_examples=1000, deadline=None)
    @given(
        wire_bytes,
        cut_lists,
        st.sampled_from(list(LineEndings)),
        st.sampled_from([None, 1, 3, 6]),
    )
    def test_chunking_independent(
        self, wire: bytes, cuts: list[int], endings: LineEndings, limit: int | None
    ) -> None:
        """Arbitrary input: chunked decoding agrees with one-shot decoding."""
        whole = decode([wire], endings, limit)
        chunked = decode(split(wire, cuts), endings, limit)
        self.assertEqual(chunked.done, whole.done)
        self.assertEqual(chunked.rest, whole.rest)
        self.assertEqual(chunked.raised is None, whole.raised is None)
        self.assertEqual(chunked.failed, whole.failed)
        if not whole.failed:
            self.assertEqual(chunked.payload, whole.payload)
        if endings is STRICT and whole.done and whole.raised is None:
            # Strict success means the input was well formed up to the terminator.
            consumed = wire[: len(wire) - len(whole.rest or b"")]
            self.assertNotRegex(consumed, rb"\r(?!\n)|(?<!\r)\n")
            self.assertTrue(consumed == b".\r\n" or consumed.endswith(TERMINATOR))

    @settings(max_examples=1000, deadline=None)
    @given(
        wire_bytes,
        cut_lists,
        st.sampled_from(list(LineEndings)),
        st.sampled_from([None, 1, 3, 6]),
    )
    def test_matches_model(
        self, wire: bytes, cuts: list[int], endings: LineEndings, limit: int | None
    ) -> None:
        """Arbitrary input, any chunking: the reference model's end, rest, error and payload."""
        got = decode(split(wire, cuts), endings, limit)
        expected = model(wire, endings, limit)
        self.assertEqual(got.done, expected.done)
        self.assertEqual(got.rest, expected.rest)
        self.assertEqual(got.raised is None, expected.raised is None)
        if got.done:
            self.assertEqual(got.failed, expected.failed)
            if not got.failed:
                self.assertEqual(got.payload, expected.payload)

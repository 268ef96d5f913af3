"""Line endings of stored messages: LF on disk, CRLF read back, sizes, offsets."""

from __future__ import annotations

import io
import os
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.mailstore import eol
from netproto_twisted.mailstore.eol import (
    CrlfCounter,
    CrlfReader,
    LfEncoder,
    crlf_size,
    to_crlf,
)

# Bytes rich in CR, LF and dots, with 8-bit and NUL bytes.
_BYTES = st.lists(
    st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b".", b"\x00", b"\xff", b"Subject: x"]),
    max_size=60,
).map(b"".join)
_CUTS = st.lists(st.integers(min_value=0, max_value=80), max_size=6)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    out, last = [], 0
    for point in points:
        out.append(data[last:point])
        last = point
    out.append(data[last:])
    return out


def _store(data: bytes, cuts: list[int] | None = None) -> tuple[bytes, LfEncoder]:
    encoder = LfEncoder()
    stored = b"".join(encoder.encode(part) for part in _split(data, cuts or []))
    return stored + encoder.finish(), encoder


def _without_bare_lf(data: bytes) -> bytes:
    """What a message is after SMTP: every LF preceded by a CR."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


class StoreTests(SynchronousTestCase):
    def test_crlf_becomes_lf(self) -> None:
        stored, encoder = _store(b"Subject: hi\r\n\r\nbody\r\nline 2\r\n")
        self.assertEqual(stored, b"Subject: hi\n\nbody\nline 2\n")
        self.assertEqual((encoder.stored, encoder.virtual), (len(stored), len(stored) + 4))

    def test_lone_cr_kept_and_cr_before_a_crlf_kept(self) -> None:
        self.assertEqual(_store(b"a\rb\r\n")[0], b"a\rb\n")
        self.assertEqual(_store(b"x\r\r\n")[0], b"x\r\r\n")
        self.assertEqual(_store(b"x\r")[0], b"x\r")  # a final lone CR
        self.assertEqual(_store(b"x\r", [1])[0], b"x\r")

    def test_crlf_split_across_chunks(self) -> None:
        self.assertEqual(_store(b"a\r\nb", [2])[0], b"a\nb")
        self.assertEqual(_store(b"a\r\r\nb", [2])[0], b"a\r\r\nb")
        self.assertEqual(_store(b"a\r\r\nb", [3])[0], b"a\r\r\nb")
        self.assertEqual(_store(b"a\r\r\r\nb", [2, 3])[0], b"a\r\r\r\nb")

    def test_no_final_newline(self) -> None:
        stored, encoder = _store(b"Subject: x\r\n\r\nno newline")
        self.assertEqual(stored, b"Subject: x\n\nno newline")
        self.assertEqual(encoder.virtual, len(b"Subject: x\r\n\r\nno newline"))

    @settings(max_examples=200)
    @given(_BYTES, _CUTS, _CUTS)
    def test_round_trip(self, message: bytes, cuts: list[int], read_cuts: list[int]) -> None:
        """Read back with CRLF, any message comes back as SMTP carried it (bare LF as CRLF)."""
        stored, encoder = _store(message, cuts)
        expected = _without_bare_lf(message)
        self.assertEqual(to_crlf(stored), expected)
        self.assertEqual(encoder.stored, len(stored))
        self.assertEqual(encoder.virtual, len(expected))
        # Chunked conversion and counting agree with the whole.
        counter = CrlfCounter()
        parts = _split(stored, read_cuts)
        out, after_cr = [], False
        for part in parts:
            counter.feed(part)
            out.append(to_crlf(part, after_cr))
            after_cr = after_cr if not part else part[-1:] == b"\r"
        self.assertEqual(b"".join(out), expected)
        self.assertEqual(counter.size, len(expected))
        if b"\n" in message and b"\r\r\n" not in message:
            self.assertNotIn(b"\r\n", stored)

    @given(_BYTES)
    def test_reading_is_idempotent(self, data: bytes) -> None:
        """A file with CRLF already (an old one) reads unchanged: never CR CR LF."""
        once = to_crlf(data)
        self.assertEqual(to_crlf(once), once)
        self.assertEqual(once.count(b"\r\r\n"), data.count(b"\r\r\n"))


class ReaderTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.patch(eol, "READ_BLOCK", 7)  # many blocks, CRLFs split between them

    def reader(self, stored: bytes, plain: bool = False) -> CrlfReader:
        return CrlfReader(io.BytesIO(stored), plain=plain)  # type: ignore[arg-type]

    def test_read_all_and_in_pieces(self) -> None:
        stored = b"Subject: a\n\nline\r\nold\r\nnew\n"
        expected = b"Subject: a\r\n\r\nline\r\nold\r\nnew\r\n"
        self.assertEqual(self.reader(stored).read(), expected)
        f = self.reader(stored)
        pieces = []
        while piece := f.read(3):
            pieces.append(piece)
        self.assertEqual(b"".join(pieces), expected)
        self.assertEqual(f.tell(), len(expected))

    def test_file_api(self) -> None:
        f = self.reader(b"one\ntwo\r\nthree")
        self.assertEqual(f.readline(), b"one\r\n")
        self.assertEqual(list(f), [b"two\r\n", b"three"])
        f.seek(0)
        self.assertEqual(f.read1(2), b"on")
        buffer = bytearray(4)
        self.assertEqual(f.readinto(buffer), 4)
        self.assertEqual(bytes(buffer), b"e\r\ntw"[:4])
        self.assertEqual(f.seek(2, 1), 8)
        self.assertEqual(f.read(), b"\r\nthree")

    def test_old_crlf_file_unchanged(self) -> None:
        stored = b"Subject: old\r\n\r\nbody\r\n"
        self.assertEqual(self.reader(stored).read(), stored)
        self.assertEqual(crlf_size(io.BytesIO(stored)), len(stored))  # type: ignore[arg-type]

    @settings(max_examples=150)
    @given(_BYTES, st.integers(0, 120), st.integers(0, 120), st.integers(0, 40))
    def test_seek_counts_crlf_offsets(
        self, stored: bytes, first: int, start: int, count: int
    ) -> None:
        expected = to_crlf(stored)
        f = self.reader(stored)
        f.read(first)
        self.assertEqual(f.seek(start), min(start, len(expected)))
        self.assertEqual(f.read(count), expected[start : start + count])
        self.assertEqual(crlf_size(io.BytesIO(stored)), len(expected))  # type: ignore[arg-type]

    def test_plain_file_seeks_directly(self) -> None:
        stored = b"a\r\nb\r\nc"
        f = self.reader(stored, plain=True)
        f.seek(3)
        self.assertEqual(f.read(), b"b\r\nc")

    def test_close_closes_the_file(self) -> None:
        raw = io.BytesIO(b"x\n")
        with CrlfReader(raw) as f:  # type: ignore[arg-type]
            self.assertEqual(f.read(), b"x\r\n")
        self.assertTrue(raw.closed)
        self.assertRaises(ValueError, f.read)


class ReadHeadTests(SynchronousTestCase):
    """:func:`eol.read_head` converts only the header: the same result as converting all."""

    def read(self, stored: bytes, known: int | None) -> tuple[bytes, int]:
        r, w = os.pipe()
        try:
            os.write(w, stored)
            os.close(w)
            w = -1
            return eol.read_head(r, known)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)

    @staticmethod
    def whole(stored: bytes) -> tuple[bytes, int]:
        text = to_crlf(stored)
        if text.startswith(b"\r\n"):
            return b"\r\n", len(text)
        end = text.find(b"\r\n\r\n")
        return (text if end < 0 else text[: end + 4]), len(text)

    @given(_BYTES, _BYTES)
    @settings(max_examples=300)
    def test_header_as_if_all_converted(self, head: bytes, body: bytes) -> None:
        stored = head + body
        expected = self.whole(stored)
        self.assertEqual(self.read(stored, None), expected)
        self.assertEqual(self.read(stored, 12345), (expected[0], 12345))

    def test_to_crlf_lf_only_fast_path(self) -> None:
        self.assertEqual(to_crlf(b"a\nb\n\n"), b"a\r\nb\r\n\r\n")
        self.assertEqual(to_crlf(b"\nb", after_cr=True), b"\nb")
        self.assertEqual(to_crlf(b"a\r\nb\nc\r"), b"a\r\nb\r\nc\r")

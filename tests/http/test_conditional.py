"""The sans-I/O pieces: Range parsing, preconditions, Accept-Encoding, path segments."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.http.server._conditional import (
    MAX_RANGES,
    ByteRange,
    RangeNotSatisfiable,
    accepted_encodings,
    evaluate_preconditions,
    http_date,
    parse_http_date,
    parse_range,
)
from netproto_twisted.http.server.paths import safe_segments

ETAG = b'"abc-14"'
MTIME = 1_700_000_000


class RangeTests(SynchronousTestCase):
    def test_forms(self) -> None:
        self.assertEqual(parse_range(b"bytes=0-4", 10), [ByteRange(0, 4)])
        self.assertEqual(parse_range(b"bytes=5-", 10), [ByteRange(5, 9)])
        self.assertEqual(parse_range(b"bytes=-3", 10), [ByteRange(7, 9)])
        self.assertEqual(parse_range(b"bytes=-30", 10), [ByteRange(0, 9)])
        self.assertEqual(parse_range(b"bytes=8-100", 10), [ByteRange(8, 9)])
        self.assertEqual(parse_range(b"bytes= 0-1 , 3-4", 10), [ByteRange(0, 1), ByteRange(3, 4)])
        self.assertEqual(ByteRange(2, 4).content_range(10), b"bytes 2-4/10")

    def test_ignored(self) -> None:
        for value in (b"items=0-1", b"bytes=4-2", b"bytes=a-b", b"bytes=-", b"bytes=1", b"0-1"):
            self.assertIsNone(parse_range(value, 10), value)
        many = b"bytes=" + b",".join(b"%d-%d" % (i, i) for i in range(MAX_RANGES + 1))
        self.assertIsNone(parse_range(many, 1000))

    def test_unsatisfiable(self) -> None:
        for value in (b"bytes=10-20", b"bytes=-0", b"bytes=0-0"):
            self.assertRaises(
                RangeNotSatisfiable, parse_range, value, 10 if value != b"bytes=0-0" else 0
            )

    @given(st.binary(max_size=60), st.integers(min_value=0, max_value=10**12))
    def test_any_header_is_safe(self, value: bytes, size: int) -> None:
        try:
            ranges = parse_range(value, size)
        except RangeNotSatisfiable:
            return
        for one in ranges or []:
            self.assertTrue(0 <= one.start <= one.end < size)

    @given(st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 2000)), min_size=1, max_size=8),
           st.integers(1, 1500))  # fmt: skip
    def test_ranges_within_the_body(self, pairs: list[tuple[int, int]], size: int) -> None:
        spec = b"bytes=" + b",".join(b"%d-%d" % (min(a, b), max(a, b)) for a, b in pairs)
        try:
            ranges = parse_range(spec, size)
        except RangeNotSatisfiable:
            self.assertTrue(all(min(a, b) >= size for a, b in pairs))
            return
        assert ranges is not None
        self.assertEqual(len(ranges), sum(1 for a, b in pairs if min(a, b) < size))
        for one in ranges:
            self.assertTrue(0 <= one.start <= one.end < size)


class PreconditionTests(SynchronousTestCase):
    def check(self, **headers: bytes) -> tuple[int, bool]:
        outcome = evaluate_preconditions(etag=ETAG, mtime=MTIME, **headers)
        return outcome.status, outcome.use_range

    def test_if_none_match(self) -> None:
        self.assertEqual(self.check(if_none_match=ETAG), (304, False))
        self.assertEqual(self.check(if_none_match=b'W/"abc-14"'), (304, False))
        self.assertEqual(self.check(if_none_match=b'"x", ' + ETAG), (304, False))
        self.assertEqual(self.check(if_none_match=b"*"), (304, False))
        self.assertEqual(self.check(if_none_match=b'"x"'), (0, True))

    def test_if_modified_since(self) -> None:
        self.assertEqual(self.check(if_modified_since=http_date(MTIME)), (304, False))
        self.assertEqual(self.check(if_modified_since=http_date(MTIME - 1)), (0, True))
        self.assertEqual(self.check(if_modified_since=b"garbage"), (0, True))
        # If-None-Match wins over If-Modified-Since
        both = self.check(if_none_match=b'"x"', if_modified_since=http_date(MTIME))
        self.assertEqual(both, (0, True))

    def test_if_match_and_unmodified_since(self) -> None:
        self.assertEqual(self.check(if_match=b'"x"'), (412, False))
        self.assertEqual(self.check(if_match=b"W/" + ETAG), (412, False))
        self.assertEqual(self.check(if_match=ETAG), (0, True))
        self.assertEqual(self.check(if_unmodified_since=http_date(MTIME - 5)), (412, False))

    def test_if_range(self) -> None:
        self.assertEqual(self.check(if_range=ETAG), (0, True))
        self.assertEqual(self.check(if_range=b'"old"'), (0, False))
        self.assertEqual(self.check(if_range=b"W/" + ETAG), (0, False))
        self.assertEqual(self.check(if_range=http_date(MTIME)), (0, True))
        self.assertEqual(self.check(if_range=http_date(MTIME - 1)), (0, False))

    def test_dates(self) -> None:
        self.assertEqual(parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"), 784111777)
        self.assertEqual(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), 784111777)
        self.assertEqual(parse_http_date(b"Sun Nov  6 08:49:37 1994"), 784111777)
        self.assertIsNone(parse_http_date(b"\xff"))


class EncodingTests(SynchronousTestCase):
    def test_accept_encoding(self) -> None:
        self.assertEqual(accepted_encodings(b"gzip, deflate, br"), {b"gzip", b"deflate", b"br"})
        self.assertEqual(accepted_encodings(b"gzip;q=0, br"), {b"br"})
        self.assertEqual(accepted_encodings(b"*"), {b"br", b"gzip"})
        self.assertEqual(accepted_encodings(b"*, br;q=0"), {b"gzip"})
        self.assertEqual(accepted_encodings(b"x-gzip"), {b"x-gzip", b"gzip"})
        self.assertEqual(accepted_encodings(b"br;q=bad"), set())
        self.assertEqual(accepted_encodings(None), set())


class SegmentTests(SynchronousTestCase):
    def test_safe(self) -> None:
        self.assertEqual(safe_segments([b""]), [])
        self.assertEqual(safe_segments([b"a", b"b"]), ["a", "b"])
        self.assertEqual(safe_segments([b"a", b""]), ["a", ""])
        self.assertEqual(safe_segments([b"a", b"", b"b"]), ["a", "b"])
        self.assertEqual(safe_segments([b"caf\xc3\xa9"]), ["café"])

    def test_unsafe(self) -> None:
        for segment in (b"..", b".", b"a/b", b"..\\x", b"a\x00", b"\xc0\xae", b"\\"):
            self.assertIsNone(safe_segments([b"ok", segment]), segment)

    @given(st.lists(st.binary(max_size=12), max_size=6))
    def test_never_a_dot_segment_or_separator(self, postpath: list[bytes]) -> None:
        segments = safe_segments(postpath)
        for segment in segments or []:
            self.assertNotIn(segment, (".", ".."))
            self.assertFalse(set(segment) & {"/", "\\", "\x00"})

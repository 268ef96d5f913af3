"""The NNTP wire format: responses, blocks, ranges, wildmats, overview and headers."""

from __future__ import annotations

import fnmatch
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.dotstuff import dot_unstuff
from netproto_twisted.nntp._wire import (
    OVERVIEW_FIELDS,
    ArticleFormatError,
    CommandSyntaxError,
    WildmatError,
    block,
    format_datetime,
    header_value,
    is_message_id,
    overview_line,
    parse_command,
    parse_datetime,
    parse_headers,
    parse_overview_block,
    parse_overview_line,
    parse_range,
    parse_status,
    sanitize_field,
    split_article,
    status,
    stuffed,
    wildmat,
)

#: Machines shared with other work generate slowly: no health check on speed, no deadline.
_SETTINGS = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=60)
_line = st.binary(max_size=80).filter(lambda b: b"\r" not in b and b"\n" not in b)
_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyz.+-0123456789", min_size=1, max_size=20)


class StatusTests(SynchronousTestCase):
    @_SETTINGS
    @given(st.integers(100, 599), _text)
    def test_round_trip(self, code: int, text: str) -> None:
        line = status(code, text)
        self.assertTrue(line.endswith(b"\r\n"))
        self.assertEqual(parse_status(line), (code, text))

    @_SETTINGS
    @given(st.binary(max_size=40))
    def test_junk_is_value_error_or_parses(self, data: bytes) -> None:
        try:
            code, _ = parse_status(data)
        except ValueError:
            return
        self.assertTrue(100 <= code <= 999)

    def test_refuses_line_break_in_text(self) -> None:
        self.assertRaises(ValueError, status, 200, "a\r\nb")

    def test_not_a_status(self) -> None:
        for line in (b"", b"20", b"2000 x", b"abc", b"+OK"):
            self.assertRaises(ValueError, parse_status, line)


class BlockTests(SynchronousTestCase):
    @_SETTINGS
    @given(st.lists(_line, max_size=20))
    def test_block_unstuffs_to_the_lines(self, lines: list[bytes]) -> None:
        data = block(b"215 list\r\n", lines)
        head, _, rest = data.partition(b"\r\n")
        self.assertEqual(head, b"215 list")
        payload, after = dot_unstuff(rest)
        self.assertEqual(after, b"")
        self.assertEqual(payload, b"".join(line + b"\r\n" for line in lines))

    def test_lone_dot_is_stuffed(self) -> None:
        self.assertEqual(block(b"1\r\n", [b".", b"a"]), b"1\r\n..\r\na\r\n.\r\n")

    @_SETTINGS
    @given(st.lists(_line, max_size=20))
    def test_stuffed_article_round_trips(self, lines: list[bytes]) -> None:
        article = b"".join(line + b"\r\n" for line in lines)
        payload, _ = dot_unstuff(stuffed(article))
        self.assertEqual(payload, article)


class CommandTests(SynchronousTestCase):
    def test_verb_and_argument(self) -> None:
        self.assertEqual(parse_command(b"list   active  comp.*"), ("LIST", "active comp.*"))
        self.assertEqual(parse_command(b"QUIT"), ("QUIT", ""))

    def test_bad(self) -> None:
        for line in (b"", b"   ", b"\xff\xfe", b"1234", b"X-Y"):
            self.assertRaises(CommandSyntaxError, parse_command, line)

    @_SETTINGS
    @given(st.binary(max_size=60))
    def test_never_crashes(self, data: bytes) -> None:
        try:
            verb, _ = parse_command(data)
        except CommandSyntaxError:
            return
        self.assertTrue(verb.isalpha() and verb.isupper())


class RangeTests(SynchronousTestCase):
    @_SETTINGS
    @given(st.integers(0, 2**40), st.integers(0, 2**40))
    def test_forms(self, a: int, b: int) -> None:
        self.assertEqual(parse_range(str(a)), (a, a))
        self.assertEqual(parse_range(f"{a}-"), (a, None))
        self.assertEqual(parse_range(f"{a}-{b}"), (a, b))

    def test_bad(self) -> None:
        for text in ("", "-", "-5", "a-b", "1-2-3", "1 - 2", "١٢"):
            self.assertRaises(ValueError, parse_range, text)


class MessageIdTests(SynchronousTestCase):
    def test_ids(self) -> None:
        self.assertTrue(is_message_id("<a@b>"))
        self.assertTrue(is_message_id("<a.b.c@example.net>", strict=True))
        self.assertTrue(is_message_id("<nohost>"))
        self.assertFalse(is_message_id("<nohost>", strict=True))
        for bad in ("a@b", "<a b@c>", "<>", "<a@b", "<a>b>", "<" + "x" * 250 + ">"):
            self.assertFalse(is_message_id(bad), bad)


class WildmatTests(SynchronousTestCase):
    @settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(st.text(alphabet="ab*?.", min_size=1, max_size=8), _name)
    def test_simple_patterns_agree_with_fnmatch(self, pattern: str, name: str) -> None:
        self.assertEqual(wildmat(pattern)(name), fnmatch.fnmatchcase(name, pattern))

    def test_last_match_wins(self) -> None:
        match = wildmat("comp.*,!comp.lang.*,comp.lang.python")
        self.assertTrue(match("comp.os"))
        self.assertFalse(match("comp.lang.c"))
        self.assertTrue(match("comp.lang.python"))
        self.assertFalse(match("alt.test"))

    def test_classes(self) -> None:
        self.assertTrue(wildmat("a[bc]d")("acd"))
        self.assertFalse(wildmat("a[^bc]d")("acd"))
        self.assertTrue(wildmat("a[]]")("a]"))

    def test_bad(self) -> None:
        for pattern in ("", "a,,b", "!", "a[bc"):
            self.assertRaises(WildmatError, wildmat, pattern)


class DateTests(SynchronousTestCase):
    def test_forms(self) -> None:
        self.assertEqual(parse_datetime("20240102", "030405", "GMT"), 1704164645.0)
        now = time.mktime((2026, 1, 1, 0, 0, 0, 0, 0, 0))
        self.assertEqual(parse_datetime("240102", "030405", now=now), 1704164645.0)
        self.assertEqual(parse_datetime("990102", "000000", now=now), 915235200.0)

    @_SETTINGS
    @given(st.floats(0, 4e9))
    def test_round_trip(self, when: float) -> None:
        self.assertEqual(parse_datetime(*format_datetime(when), "GMT"), float(int(when)))

    def test_bad(self) -> None:
        for args in (("2024010", "000000"), ("20241301", "000000"), ("20240101", "250000"),
                     ("20240101", "000000", "UTC")):  # fmt: skip
            self.assertRaises(ValueError, parse_datetime, *args)


class ArticleTests(SynchronousTestCase):
    def test_split_and_parse(self) -> None:
        head, body = split_article(b"Subject: hi\r\n there\r\nFrom: a@b\r\n\r\nbody\r\n")
        self.assertEqual(body, b"body\r\n")
        headers = parse_headers(head)
        self.assertEqual(header_value(headers, "subject"), "hi there")
        self.assertEqual(header_value(headers, "FROM"), "a@b")
        self.assertIsNone(header_value(headers, "Date"))

    def test_no_blank_line(self) -> None:
        self.assertRaises(ArticleFormatError, split_article, b"Subject: x\r\nbody\r\n")
        self.assertRaises(ArticleFormatError, split_article, b"\r\nbody\r\n")

    def test_bad_header_lines(self) -> None:
        for head in (b" lead\r\n", b"No colon here\r\n", b"Bad Name: x\r\n"):
            self.assertRaises(ArticleFormatError, parse_headers, head)

    @_SETTINGS
    @given(
        st.lists(
            st.tuples(
                st.text(alphabet="abcdefghijXYZ-0123", min_size=1, max_size=12).map(
                    lambda n: "H" + n
                ),
                st.text(alphabet="abc xyz<>@.,;:!?()[]=+-_0189\"'", max_size=40),
            ),
            max_size=8,
        )
    )
    def test_headers_round_trip(self, pairs: list[tuple[str, str]]) -> None:
        head = b"".join(f"{n}: {v}\r\n".encode() for n, v in pairs)
        parsed = parse_headers(head)
        self.assertEqual([(h.name, h.value) for h in parsed], [(n, v.strip()) for n, v in pairs])


class OverviewTests(SynchronousTestCase):
    @_SETTINGS
    @given(st.integers(1, 2**40), st.lists(_text, min_size=7, max_size=7), _text)
    def test_round_trip(self, number: int, values: list[str], xref: str) -> None:
        fields = [sanitize_field(v) for v in values] + ["Xref: " + sanitize_field(xref).lstrip()]
        n, parsed = parse_overview_line(overview_line(number, fields))
        self.assertEqual(n, number)
        for name, value in zip(OVERVIEW_FIELDS, fields, strict=False):
            self.assertEqual(parsed[name.lower()], value)
        self.assertEqual(parsed["xref"], sanitize_field(xref).lstrip())

    @settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=50)
    @given(st.lists(st.tuples(st.integers(0, 2**40), st.lists(_text, min_size=7, max_size=9)),
                    max_size=5))  # fmt: skip
    def test_block_parses_as_lines_do(self, rows: list[tuple[int, list[str]]]) -> None:
        lines = [overview_line(n, [sanitize_field(v) for v in values]) for n, values in rows]
        block = b"".join(line + b"\r\n" for line in lines)
        self.assertEqual(parse_overview_block(block), [parse_overview_line(x) for x in lines])

    def test_sanitize(self) -> None:
        self.assertEqual(sanitize_field("a\tb\r\nc\0"), "a b  c ")

    def test_short_line(self) -> None:
        self.assertRaises(ValueError, parse_overview_line, b"1\ta\tb")
        self.assertRaises(ValueError, parse_overview_line, b"x\t\t\t\t\t\t\t")
        self.assertRaises(ValueError, parse_overview_block, b"1\ta\r\n")
        self.assertRaises(ValueError, parse_overview_block, b"x\t\t\t\t\t\t\t\r\n")

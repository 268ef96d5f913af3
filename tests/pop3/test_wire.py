"""The POP3 wire format: parsing never crashes on random bytes, and replies round-trip."""

from __future__ import annotations

import contextlib
import re

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.errors import LocalProtocolError
from netproto_twisted.pop3 import POP3ProtocolError, POP3ReplyError
from netproto_twisted.pop3._wire import (
    CommandSyntaxError,
    err,
    format_command,
    multiline,
    ok,
    parse_capabilities,
    parse_command,
    parse_listing,
    parse_message_number,
    parse_status,
    parse_unique_id,
    unstuff_line,
)

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=60).map(
    str.strip
)
_code = st.sampled_from(["IN-USE", "AUTH", "SYS/TEMP", "SYS/PERM", "LOGIN-DELAY", None])


class ParseCommandTests(SynchronousTestCase):
    def test_verb_upper_cased_argument_kept(self) -> None:
        self.assertEqual(parse_command(b"retr 12"), ("RETR", "12"))
        self.assertEqual(parse_command(b"PASS two words "), ("PASS", "two words"))
        self.assertEqual(parse_command(b"STAT"), ("STAT", ""))
        self.assertEqual(parse_command(b"utf8"), ("UTF8", ""))

    def test_junk_refused(self) -> None:
        for line in (b"", b"\x00\xff", b"12 34", b"RE\x00TR 1", b" STAT", b"\xc3("):
            self.assertRaises(CommandSyntaxError, parse_command, line)

    @given(st.binary(max_size=200))
    def test_random_bytes_never_crash(self, line: bytes) -> None:
        try:
            verb, argument = parse_command(line)
        except CommandSyntaxError:
            return
        self.assertTrue(verb.isalnum() and verb[0].isalpha() and verb == verb.upper())
        self.assertIsInstance(argument, str)

    @given(st.sampled_from(["USER", "RETR", "top", "Capa"]), _text)
    def test_round_trip(self, verb: str, argument: str) -> None:
        line = format_command(verb, argument).rstrip(b"\r\n") if argument else verb.encode()
        self.assertEqual(parse_command(line), (verb.upper(), argument.rstrip(" ")))

    def test_message_numbers(self) -> None:
        self.assertEqual(parse_message_number("7"), 7)
        for bad in ("0", "-1", "x", "", "1" * 11, "٣"):
            self.assertRaises(ValueError, parse_message_number, bad)


class StatusTests(SynchronousTestCase):
    @given(_text)
    def test_ok_round_trip(self, text: str) -> None:
        self.assertEqual(parse_status(ok(text).rstrip(b"\r\n")).text, text)

    @given(_text.filter(bool), _code)
    def test_err_round_trip(self, text: str, code: str | None) -> None:
        # Without a code, a text that starts with "[word]" reads as one (RFC 2449).
        assume(code is not None or re.match(r"\[[^\]]+\]", text) is None)
        line = err(text, code).rstrip(b"\r\n")
        with self.assertRaises(POP3ReplyError) as caught:
            parse_status(line)
        self.assertEqual(caught.exception.response_code, code)
        self.assertEqual(caught.exception.text, text)

    def test_empty_brackets_are_text(self) -> None:
        with self.assertRaises(POP3ReplyError) as caught:
            parse_status(b"-ERR [] nothing")
        self.assertIsNone(caught.exception.response_code)
        self.assertEqual(caught.exception.text, "[] nothing")

    @given(st.binary(max_size=120))
    def test_random_status_lines(self, line: bytes) -> None:
        with contextlib.suppress(POP3ReplyError, POP3ProtocolError):
            parse_status(line)

    def test_not_pop3(self) -> None:
        for line in (b"220 smtp", b"+OKAY", b"", b"-ERRx"):
            self.assertRaises(POP3ProtocolError, parse_status, line)

    def test_reply_lines_refuse_line_breaks(self) -> None:
        self.assertRaises(LocalProtocolError, ok, "a\r\nb")
        self.assertRaises(LocalProtocolError, format_command, "USER", "x\r\nDELE 1")


class ListingTests(SynchronousTestCase):
    @settings(suppress_health_check=[HealthCheck.too_slow], max_examples=50)
    @given(st.lists(st.tuples(st.integers(1, 10**6), st.integers(0, 10**9)), max_size=20))
    def test_listing_round_trip(self, rows: list[tuple[int, int]]) -> None:
        data = multiline(ok(), [f"{n} {s}" for n, s in rows])
        lines = data.split(b"\r\n")[1:-2]
        self.assertEqual([parse_listing(unstuff_line(line)) for line in lines], rows)

    def test_unique_ids_and_dots(self) -> None:
        data = multiline(ok(), ["1 abc", ".hidden"])
        self.assertEqual(data, b"+OK\r\n1 abc\r\n..hidden\r\n.\r\n")
        self.assertEqual(parse_unique_id(b"1 abc"), (1, "abc"))
        self.assertRaises(POP3ProtocolError, parse_listing, b"one two")
        self.assertRaises(POP3ProtocolError, parse_unique_id, b"1")

    def test_capabilities(self) -> None:
        self.assertEqual(
            parse_capabilities([b"TOP", b"sasl PLAIN LOGIN", b""]),
            {"TOP": [], "SASL": ["PLAIN", "LOGIN"]},
        )

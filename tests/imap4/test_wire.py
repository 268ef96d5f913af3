"""The IMAP wire format: command parser, serialiser, response parser (with Hypothesis)."""

from __future__ import annotations

import contextlib
import datetime

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.imap4.wire import (
    CommandSyntaxError,
    ResponseSyntaxError,
    append_literal_expected,
    encode,
    literal_marker,
    mutf7_decode,
    mutf7_encode,
    parse_command,
    parse_response,
    parse_sequence_set,
    parse_values,
    quote,
)


class CommandTests(SynchronousTestCase):
    def test_fetch_items(self) -> None:
        r = parse_command(
            [b"a1 UID FETCH 1:*,5 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (SUBJECT)]<0.100>)"]
        )
        self.assertTrue(r.uid)
        self.assertEqual(r.verb, "FETCH")
        self.assertEqual(str(r.sequence), "1:*,5")
        body = r.fetch[1]
        self.assertEqual((body.name, body.peek, body.partial), ("BODY", True, (0, 100)))
        self.assertEqual(body.response_name(), "BODY[1.2.HEADER.FIELDS (SUBJECT)]<0>")
        self.assertEqual(len(parse_command([b"a FETCH 1 FULL"]).fetch), 5)

    def test_literals_in_arguments(self) -> None:
        r = parse_command([b"a LOGIN {3}", b"bob", b" {4+}", b'p w"', b""])
        self.assertEqual(r.strings, [b"bob", b'p w"'])

    def test_append_with_date(self) -> None:
        r = parse_command(
            [b'a APPEND Sent (\\Seen) "17-Jul-1996 02:44:25 -0700" {5}', b"hello", b""]
        )
        (message,) = r.messages
        self.assertEqual(message.flags, ("\\Seen",))
        self.assertEqual(
            message.internal_date,
            datetime.datetime(1996, 7, 17, 9, 44, 25, tzinfo=datetime.timezone.utc),
        )
        self.assertTrue(append_literal_expected([b"a APPEND INBOX {5}"], object()))
        self.assertFalse(append_literal_expected([b"a APPEND {5}"], object()))
        self.assertFalse(append_literal_expected([b"a LOGIN {5}"], object()))

    def test_search(self) -> None:
        r = parse_command(
            [
                b"t SEARCH RETURN (MIN COUNT) CHARSET UTF-8 OR SUBJECT {3}",
                "hé".encode(),
                b" UNSEEN",
            ]
        )
        assert r.search is not None
        self.assertEqual(r.search_return, ["MIN", "COUNT"])
        self.assertEqual(r.search.name, "OR")
        self.assertEqual(r.search.args[0].args, ("hé",))  # type: ignore[union-attr]
        with self.assertRaises(CommandSyntaxError) as e:
            parse_command([b"t SEARCH CHARSET KOI8-R ALL"])
        self.assertIn("BADCHARSET", e.exception.text)

    def test_store(self) -> None:
        r = parse_command([b"t STORE 1:3 -FLAGS.SILENT (\\Deleted $Junk)"])
        self.assertEqual((r.store_mode, r.silent, r.flags), ("-", True, ["\\Deleted", "$Junk"]))

    def test_errors_carry_the_tag(self) -> None:
        for line in [
            b"x7 FETCH",
            b"x7 NOSUCH",
            b"x7 FETCH 0 FLAGS",
            b"x7 FETCH 1 (FLAGS",
            b"x7 UID LOGIN",
        ]:
            with self.assertRaises(CommandSyntaxError) as e:
                parse_command([line])
            self.assertEqual(e.exception.tag, "x7", line)

    def test_deep_nesting_bounded(self) -> None:
        with self.assertRaises(CommandSyntaxError) as e:
            parse_command([b"a SEARCH " + b"(" * 10_000 + b"ALL" + b")" * 10_000])
        self.assertIn("nested", e.exception.text)
        with self.assertRaises(CommandSyntaxError):
            parse_command([b"a SEARCH " + b"NOT " * 10_000 + b"ALL"])

    def test_literal_markers(self) -> None:
        self.assertEqual(literal_marker(b"a APPEND x {12}").size, 12)  # type: ignore[union-attr]
        self.assertFalse(literal_marker(b"a APPEND x {12+}").synchronizing)  # type: ignore[union-attr]
        self.assertIsNone(literal_marker(b"a NOOP"))
        for bad in [b"a APPEND x {-1}", b"a APPEND x {99999999999999999999999}"]:
            self.assertRaises(CommandSyntaxError, literal_marker, bad)

    def test_huge_sequence_sets(self) -> None:
        text = ",".join(str(i) for i in range(1, 100_001))
        s = parse_sequence_set(text)
        self.assertEqual(s.select([5, 100_000, 100_001]), [5, 100_000])
        self.assertRaises(CommandSyntaxError, parse_sequence_set, text + ",1")
        self.assertEqual(list(parse_sequence_set("4294967295:1").numbers(3)), [1, 2, 3])
        self.assertRaises(CommandSyntaxError, parse_sequence_set, "4294967296")

    @given(st.binary(max_size=300))
    def test_random_bytes_never_crash(self, data: bytes) -> None:
        with contextlib.suppress(CommandSyntaxError):
            parse_command([data.replace(b"\r", b"").replace(b"\n", b"")])

    @given(st.lists(st.binary(max_size=60), min_size=1, max_size=5))
    def test_random_segments_never_crash(self, parts: list[bytes]) -> None:
        with contextlib.suppress(CommandSyntaxError):
            parse_command([b"a APPEND x {1}", *parts])
        with contextlib.suppress(ResponseSyntaxError):
            parse_response([b"* 1 FETCH (BODY[] {3}", *parts])


_values = st.recursive(
    st.none() | st.integers(0, 2**32) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=20,
)


class SerialiseTests(SynchronousTestCase):
    @given(st.binary(max_size=200))
    def test_quote_round_trip(self, data: bytes) -> None:
        wire = b"* X " + quote(data)
        if wire.count(b"\r\n"):
            _head, _, payload = wire.partition(b"\r\n")
            self.assertEqual(payload, data)
        else:
            self.assertEqual(parse_values(wire[4:]), [data])

    @given(_values)
    def test_values_round_trip(self, value: object) -> None:
        wire = encode(value)
        if b"\r\n" in wire:
            return  # literals: covered by the segment test below
        self.assertEqual(parse_values(wire), [value])

    def test_literal_round_trip(self) -> None:
        r = parse_response([b"* 1 FETCH (BODY[] {4}", b"a\r\nb", b" UID 7)"])
        self.assertEqual(r.data, {"BODY[]": b"a\r\nb", "UID": 7})  # type: ignore[union-attr]

    @given(st.text(max_size=30))
    def test_mutf7_round_trip(self, text: str) -> None:
        self.assertEqual(mutf7_decode(mutf7_encode(text)), text)

    def test_mutf7_known(self) -> None:
        self.assertEqual(mutf7_encode("Entwürfe"), "Entw&APw-rfe")
        self.assertEqual(
            mutf7_encode("~peter/mail/台北/日本語"), "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        )


class ResponseTests(SynchronousTestCase):
    def test_status_and_codes(self) -> None:
        r = parse_response([b"* OK [UIDVALIDITY 3857529045] UIDs valid"])
        self.assertEqual((r.kind, r.code, r.code_data), ("OK", "UIDVALIDITY", "3857529045"))  # type: ignore[union-attr]
        t = parse_response([b"a1 NO [TRYCREATE] no such mailbox"])
        self.assertEqual((t.status, t.code, t.text), ("NO", "TRYCREATE", "no such mailbox"))  # type: ignore[union-attr]

    def test_list_status_esearch(self) -> None:
        r = parse_response([b'* LIST (\\HasNoChildren \\Sent) "." Sent'])
        self.assertEqual(r.data[:3], (("\\HasNoChildren", "\\Sent"), ".", b"Sent"))  # type: ignore[union-attr]
        s = parse_response([b"* STATUS INBOX (MESSAGES 2 UIDNEXT 9)"])
        self.assertEqual(s.data, (b"INBOX", {"MESSAGES": 2, "UIDNEXT": 9}))  # type: ignore[union-attr]
        e = parse_response([b'* ESEARCH (TAG "a") UID MIN 2 COUNT 5 ALL 2:4,9'])
        self.assertEqual(e.data, {"tag": "a", "uid": True, "min": 2, "count": 5, "all": "2:4,9"})  # type: ignore[union-attr]

    def test_bodystructure(self) -> None:
        r = parse_response(
            [
                b'* 1 FETCH (BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL'
                b' "7BIT" 3 1 NIL NIL NIL NIL)'
                b'("APPLICATION" "OCTET-STREAM" ("NAME" "a.bin") NIL NIL "BASE64" 8'
                b' NIL NIL NIL NIL) "MIXED" ("BOUNDARY" "x") NIL NIL NIL))'
            ]
        )
        body = r.data["BODYSTRUCTURE"]  # type: ignore[union-attr]
        self.assertTrue(body.is_multipart)
        self.assertEqual(body.subtype, "mixed")
        self.assertEqual(body.parts[0].lines, 1)
        self.assertEqual(body.parts[1].params, {"name": "a.bin"})

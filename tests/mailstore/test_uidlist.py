"""dovecot-uidlist parsing and serialisation, including a file written by Dovecot 2.3."""

from __future__ import annotations

import contextlib

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.mailstore.uidlist import (
    UidList,
    UidListError,
    UidRecord,
    parse_uidlist,
    serialize_uidlist,
)

# Written by Dovecot 2.3.19 (doveadm fetch on a fresh Maildir): note that the
# header's N lags behind the records, because Dovecot appended them.
DOVECOT_GOLDEN = (
    b"3 V1795244433 N1 G808d472a9141016ba636000083ecc375\n"
    b"1 :1700000001.M1P1.host,S=19\n"
    b"2 :1700000002.M2P2.host,S=20\n"
)


class GoldenTests(SynchronousTestCase):
    def test_dovecot_file(self) -> None:
        parsed = parse_uidlist(DOVECOT_GOLDEN)
        self.assertEqual(parsed.uid_validity, 1795244433)
        self.assertEqual(parsed.guid, "808d472a9141016ba636000083ecc375")
        self.assertEqual(parsed.next_uid, 3)
        self.assertEqual(
            [(r.uid, r.base) for r in parsed.records],
            [(1, "1700000001.M1P1.host,S=19"), (2, "1700000002.M2P2.host,S=20")],
        )

    def test_serialises_like_dovecot(self) -> None:
        parsed = parse_uidlist(DOVECOT_GOLDEN)
        self.assertEqual(
            serialize_uidlist(parsed),
            DOVECOT_GOLDEN.replace(b" N1 ", b" N3 "),
        )

    def test_extensions_kept(self) -> None:
        data = (
            b"3 V7 N10 G00112233445566778899aabbccddeeff X1\n"
            b"3 W2291 :a.M1P1.h,S=2250\n"
            b"9 G0f0f W12 :b.M2P2.h\n"
        )
        parsed = parse_uidlist(data)
        self.assertEqual(parsed.records[0].extensions, ["W2291"])
        self.assertEqual(parsed.records[1].extensions, ["G0f0f", "W12"])
        self.assertEqual(parsed.header_extensions, ["X1"])
        self.assertEqual(serialize_uidlist(parsed), data)

    def test_version1(self) -> None:
        parsed = parse_uidlist(b"1 1234 5\n1 a.b.c:2,S\n4 d.e.f\n")
        self.assertEqual(parsed.uid_validity, 1234)
        self.assertEqual(parsed.next_uid, 5)
        self.assertEqual([(r.uid, r.base) for r in parsed.records], [(1, "a.b.c"), (4, "d.e.f")])
        self.assertTrue(serialize_uidlist(parsed).startswith(b"3 V1234 N5 G"))

    def test_duplicate_base_first_uid_wins(self) -> None:
        parsed = parse_uidlist(b"3 V1 N1\n1 :x\n2 :x\n3 :y\n")
        self.assertEqual([(r.uid, r.base) for r in parsed.records], [(1, "x"), (3, "y")])
        self.assertEqual(parsed.next_uid, 4)

    def test_missing_guid_generated_on_write(self) -> None:
        uidlist = UidList(uid_validity=5)
        first = serialize_uidlist(uidlist)
        self.assertRegex(first.decode(), r"^3 V5 N1 G[0-9a-f]{32}\n$")
        self.assertEqual(serialize_uidlist(uidlist), first)

    def test_corrupt(self) -> None:
        for data in (
            b"",
            b"\n",
            b"2 V1 N1\n",
            b"3 N5\n",
            b"3 V0 N1\n",
            b"3 Vx N1\n",
            b"3 V1 N1 Gzz\n",
            b"3 V1 N1\n1 x\n",
            b"3 V1 N1\n2 :a\n1 :b\n",
            b"3 V1 N1\n1 :a\n1 :b\n",
            b"3 V1 N1\n1 w1 :a\n",
            b"3 V1 N1\n1 :\n",
            b"3 V1 N1\n1 :a/b\n",
            b"3 V1 N1\n99999999999 :a\n",
            b"\xff\xfe",
            b"1 5\n",
        ):
            with self.assertRaises(UidListError, msg=repr(data)):
                parse_uidlist(data)


_base = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x00/:"),
    min_size=1,
    max_size=20,
)
_ext = st.from_regex(r"[A-Z][A-Za-z0-9]{0,6}", fullmatch=True)


@st.composite
def uidlists(draw: st.DrawFn) -> UidList:
    bases = draw(st.lists(_base, max_size=8, unique=True))
    uids = sorted(draw(st.lists(st.integers(1, 2**31), min_size=len(bases),
                                max_size=len(bases), unique=True)))
    records = [UidRecord(uid, base, draw(st.lists(_ext, max_size=2)))
               for uid, base in zip(uids, bases, strict=True)]
    return UidList(
        uid_validity=draw(st.integers(1, 2**32 - 1)),
        next_uid=draw(st.integers(1, 2**31)),
        guid=draw(st.from_regex(r"[0-9a-f]{32}", fullmatch=True)),
        records=records,
    )


class PropertyTests(SynchronousTestCase):
    @given(uidlists())
    def test_roundtrip(self, uidlist: UidList) -> None:
        parsed = parse_uidlist(serialize_uidlist(uidlist))
        self.assertEqual(parsed.uid_validity, uidlist.uid_validity)
        self.assertEqual(parsed.guid, uidlist.guid)
        self.assertEqual(
            [(r.uid, r.base, r.extensions) for r in parsed.records],
            [(r.uid, r.base, r.extensions) for r in uidlist.records],
        )
        last = uidlist.records[-1].uid if uidlist.records else 0
        self.assertEqual(parsed.next_uid, max(uidlist.next_uid, last + 1))

    @given(st.binary(max_size=200))
    def test_arbitrary_bytes_only_uidlisterror(self, data: bytes) -> None:
        try:
            parsed = parse_uidlist(data)
        except UidListError:
            return
        uids = [r.uid for r in parsed.records]
        self.assertEqual(uids, sorted(set(uids)))
        self.assertTrue(all(uid < parsed.next_uid for uid in uids))

    @given(uidlists(), st.integers(0, 300))
    def test_truncated_or_mutated_never_crashes(self, uidlist: UidList, cut: int) -> None:
        data = serialize_uidlist(uidlist)
        for variant in (data[:cut], data[:cut] + b"\x00" + data[cut:]):
            with contextlib.suppress(UidListError):
                parse_uidlist(variant)

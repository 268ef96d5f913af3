"""CONDSTORE and QRESYNC (RFC 7162) in the IMAP server, driven with bytes over the real store."""

from __future__ import annotations

import contextlib
import os
import re

from hypothesis import given
from hypothesis import strategies as st

from netproto_twisted.core.connection import ConnectionDriver
from netproto_twisted.imap4.server.selected import missing_uids
from netproto_twisted.imap4.wire.commands import QresyncParams, parse_command
from netproto_twisted.imap4.wire.responses import (
    ResponseSyntaxError,
    Untagged,
    Vanished,
    parse_response,
)
from netproto_twisted.imap4.wire.tokens import CommandSyntaxError
from tests.imap4.test_server_commands import Base

_MODSEQ = re.compile(rb"HIGHESTMODSEQ (\d+)")


def _is_first_message(path: str) -> bool:
    """Whether ``path`` holds INBOX's first message (the file names need not sort so)."""
    with open(path, "rb") as f:
        return f.readline().rstrip(b"\r\n") == b"Subject: one"


def highest(out: bytes) -> int:
    match = _MODSEQ.search(out)
    assert match is not None, out
    return int(match.group(1))


class ParseTests(Base):
    def test_select_parameters(self) -> None:
        req = parse_command([b"a SELECT INBOX (CONDSTORE)"])
        self.assertEqual(req.params, {"CONDSTORE": True})
        req = parse_command(
            [b"a EXAMINE INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 "
             b"(1:10,15 41:50,100)))"]
        )  # fmt: skip
        q = req.params["QRESYNC"]
        assert isinstance(q, QresyncParams)
        self.assertEqual((q.uid_validity, q.modseq), (67890007, 20050715194045000))
        self.assertEqual(str(q.known_uids), "41,43:211,214:541")
        assert q.seq_match is not None
        self.assertEqual([str(s) for s in q.seq_match], ["1:10,15", "41:50,100"])
        req = parse_command([b"a SELECT INBOX (QRESYNC (1 2))"])
        self.assertEqual(req.params["QRESYNC"], QresyncParams(1, 2))
        for bad in (
            b"a SELECT INBOX (FOO)",
            b"a SELECT INBOX (QRESYNC (0 2))",
            b"a SELECT INBOX (QRESYNC (1 99999999999999999999))",
            b"a SELECT INBOX (CONDSTORE CONDSTORE)",
            b"a FETCH 1 FLAGS (VANISHED)",
            b"a FETCH 1 FLAGS (CHANGEDSINCE 0)",
            b"a FETCH 1 FLAGS (CHANGEDSINCE x)",
            b"a STORE 1 (UNCHANGEDSINCE 99999999999999999999) FLAGS (\\Seen)",
            b'a SEARCH MODSEQ "/flags/\\\\seen" nobody 5',
        ):
            with self.assertRaises(CommandSyntaxError, msg=bad):
                parse_command([bad])
        req = parse_command([b"a UID FETCH 1:* FLAGS (VANISHED CHANGEDSINCE 7)"])
        self.assertEqual(req.params, {"CHANGEDSINCE": 7, "VANISHED": True})
        req = parse_command([b'a SEARCH MODSEQ "/flags/\\\\draft" all 620162338'])
        assert req.search is not None
        self.assertEqual((req.search.name, req.search.args), ("MODSEQ", (620162338,)))


class CondstoreTests(Base):
    def selected(self, line: bytes = b"s SELECT INBOX") -> tuple[ConnectionDriver, int]:
        d = self.session()
        self.login(d)
        return d, highest(self.cmd(d, line))

    def test_capabilities_and_enable(self) -> None:
        d = self.session()
        self.login(d)
        caps = self.cmd(d, b"c CAPABILITY")
        self.assertIn(b" CONDSTORE QRESYNC", caps)
        self.assertEqual(
            self.cmd(d, b"e ENABLE CONDSTORE QRESYNC CONDSTORE X-UNKNOWN"),
            b"* ENABLED CONDSTORE QRESYNC\r\ne OK ENABLE completed\r\n",
        )

    def test_fetch_modseq_store_and_changedsince(self) -> None:
        d, top = self.selected()
        self.assertGreater(top, 1)
        out = self.cmd(d, b"f FETCH 1:* (UID MODSEQ)")
        self.assertEqual(
            out,
            b"".join(b"* %d FETCH (UID %d MODSEQ (%d))\r\n" % (n, n, top) for n in (1, 2, 3))
            + b"f OK FETCH completed\r\n",
        )
        # CONDSTORE is on now: STORE answers with MODSEQ, one new modseq for the batch.
        self.assertEqual(
            self.cmd(d, b"st STORE 2:3 +FLAGS (\\Flagged)"),
            b"* 2 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ (%d))\r\n"
            b"* 3 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ (%d))\r\n"
            b"st OK STORE completed\r\n" % (top + 1, top + 1),
        )
        self.assertEqual(
            self.cmd(d, b"ch UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % top),
            b"* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent) MODSEQ (%d))\r\n"
            b"* 3 FETCH (UID 3 FLAGS (\\Flagged \\Recent) MODSEQ (%d))\r\n"
            b"ch OK FETCH completed\r\n" % (top + 1, top + 1),
        )
        self.assertEqual(
            self.cmd(d, b"none FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % (top + 1)),
            b"none OK FETCH completed\r\n",
        )
        # A store that changes nothing keeps the modseq; .SILENT still reports MODSEQ.
        self.assertEqual(
            self.cmd(d, b"si UID STORE 2 +FLAGS.SILENT (\\Flagged)"),
            b"* 2 FETCH (UID 2 MODSEQ (%d))\r\nsi OK STORE completed\r\n" % (top + 1),
        )
        status = self.cmd(d, b"stat STATUS INBOX (HIGHESTMODSEQ MESSAGES)")
        self.assertEqual(
            status,
            b'* STATUS "INBOX" (HIGHESTMODSEQ %d MESSAGES 3)\r\nstat OK STATUS completed\r\n'
            % (top + 1),
        )

    def test_store_unchangedsince_reports_modified(self) -> None:
        d, top = self.selected(b"s SELECT INBOX (CONDSTORE)")
        self.cmd(d, b"a STORE 1 +FLAGS.SILENT (\\Seen)")
        self.assertEqual(
            self.cmd(d, b"b STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\\Answered)" % top),
            b"* 2 FETCH (FLAGS (\\Answered \\Recent) MODSEQ (%d))\r\n"
            b"* 3 FETCH (FLAGS (\\Answered \\Recent) MODSEQ (%d))\r\n"
            b"b OK [MODIFIED 1] conditional STORE failed\r\n" % (top + 2, top + 2),
        )
        self.assertEqual(
            self.cmd(d, b"c UID STORE 2:3 (UNCHANGEDSINCE 0) FLAGS (\\Deleted)"),
            b"c OK [MODIFIED 2:3] conditional STORE failed\r\n",
        )
        self.assertEqual(
            self.cmd(d, b"f FETCH 1:3 (FLAGS)"),
            b"* 1 FETCH (FLAGS (\\Seen \\Recent) MODSEQ (%d))\r\n"
            b"* 2 FETCH (FLAGS (\\Answered \\Recent) MODSEQ (%d))\r\n"
            b"* 3 FETCH (FLAGS (\\Answered \\Recent) MODSEQ (%d))\r\n"
            b"f OK FETCH completed\r\n" % (top + 1, top + 2, top + 2),
        )

    def test_search_modseq(self) -> None:
        d, top = self.selected()
        self.cmd(d, b"a STORE 3 +FLAGS (\\Seen)")
        self.assertEqual(
            self.cmd(d, b"s1 SEARCH MODSEQ %d" % (top + 1)),
            b"* SEARCH 3 (MODSEQ %d)\r\ns1 OK SEARCH completed\r\n" % (top + 1),
        )
        self.assertEqual(
            self.cmd(d, b"""s2 UID SEARCH RETURN (ALL) MODSEQ "/flags/\\\\seen" all 1"""),
            b'* ESEARCH (TAG "s2") UID ALL 1:3 MODSEQ %d\r\ns2 OK SEARCH completed\r\n'
            % (top + 1),
        )
        self.assertEqual(
            self.cmd(d, b"s5 SEARCH RETURN (MIN) MODSEQ 1"),
            b'* ESEARCH (TAG "s5") MIN 1 MODSEQ %d\r\ns5 OK SEARCH completed\r\n' % top,
        )
        self.assertEqual(
            self.cmd(d, b"s3 SEARCH MODSEQ %d" % (top + 2)),
            b"* SEARCH\r\ns3 OK SEARCH completed\r\n",
        )
        # Without MODSEQ in the search the result has none.
        self.assertEqual(
            self.cmd(d, b"s4 SEARCH SEEN"), b"* SEARCH 3\r\ns4 OK SEARCH completed\r\n"
        )

    def test_other_sessions_and_programs_changes_carry_modseq(self) -> None:
        a, top = self.selected(b"s SELECT INBOX (CONDSTORE)")
        b, _ = self.selected()
        self.cmd(b, b"x STORE 2 +FLAGS (\\Flagged)")
        self.assertEqual(
            self.cmd(a, b"n NOOP"),
            b"* 2 FETCH (UID 2 FLAGS (\\Flagged \\Recent) MODSEQ (%d))\r\nn OK NOOP completed\r\n"
            % (top + 1),
        )
        # Another program renames the file to change its flags: the index notices.
        cur = os.path.join(self.base, "alice", "cur")
        name = next(n for n in os.listdir(cur) if _is_first_message(os.path.join(cur, n)))
        os.rename(os.path.join(cur, name), os.path.join(cur, name.split(":")[0] + ":2,S"))
        self.assertEqual(
            self.cmd(a, b"c CHECK"),
            b"* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent) MODSEQ (%d))\r\nc OK CHECK completed\r\n"
            % (top + 2),
        )
        # A session that never enabled CONDSTORE sees no MODSEQ.
        self.assertEqual(
            self.cmd(b, b"c CHECK"),
            b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\nc OK CHECK completed\r\n",
        )

    def test_expunge_reports_highestmodseq_and_vanished_once_qresync(self) -> None:
        d = self.session()
        self.login(d)
        self.cmd(d, b"e ENABLE QRESYNC")
        top = highest(self.cmd(d, b"s SELECT INBOX"))
        other, _ = self.selected()
        self.cmd(d, b"a STORE 1:2 +FLAGS.SILENT (\\Deleted)")
        self.assertEqual(
            self.cmd(d, b"x EXPUNGE"),
            b"* VANISHED 1:2\r\nx OK [HIGHESTMODSEQ %d] EXPUNGE completed\r\n" % (top + 2),
        )
        self.assertEqual(
            self.cmd(other, b"n NOOP"), b"* 1 EXPUNGE\r\n* 1 EXPUNGE\r\nn OK NOOP completed\r\n"
        )


class QresyncTests(Base):
    """A client comes back with its cached UIDVALIDITY and HIGHESTMODSEQ."""

    def setUp(self) -> None:
        super().setUp()
        for n in range(4, 7):
            writer = self.store.deliver("alice")
            writer.write(b"Subject: %d\r\n\r\nbody\r\n" % n)
            writer.commit()
        d = self.session()
        self.login(d)
        out = self.cmd(d, b"s SELECT INBOX")
        self.validity = int(re.search(rb"UIDVALIDITY (\d+)", out).group(1))  # type: ignore[union-attr]
        self.top = highest(out)
        # Meanwhile: message 5 gets \Seen, messages 2 and 3 are expunged.
        self.cmd(d, b"a UID STORE 5 +FLAGS (\\Seen)")
        self.cmd(d, b"b UID STORE 2:3 +FLAGS (\\Deleted)")
        self.cmd(d, b"c EXPUNGE")
        self.cmd(d, b"z LOGOUT")

    def resync(self, params: bytes, enable: bool = True) -> bytes:
        d = self.session()
        self.login(d)
        if enable:
            self.cmd(d, b"e ENABLE QRESYNC")
        return self.cmd(d, b"s SELECT INBOX (QRESYNC (%d %s))" % (self.validity, params))

    def test_vanished_earlier_then_changed_flags(self) -> None:
        out = self.resync(b"%d" % self.top)
        self.assertIn(b"* OK [HIGHESTMODSEQ %d]" % (self.top + 3), out)
        self.assertTrue(
            out.endswith(
                b"* VANISHED (EARLIER) 2:3\r\n"
                b"* 3 FETCH (UID 5 FLAGS (\\Seen) MODSEQ (%d))\r\n"
                b"s OK [READ-WRITE] SELECT completed\r\n" % (self.top + 1)
            ),
            out,
        )

    def test_known_uids_limit_the_answer(self) -> None:
        out = self.resync(b"%d 3:4" % self.top)
        self.assertTrue(
            out.endswith(b"* VANISHED (EARLIER) 3\r\ns OK [READ-WRITE] SELECT completed\r\n"), out
        )

    def test_up_to_date_client_gets_nothing_more(self) -> None:
        out = self.resync(b"%d" % (self.top + 3))
        self.assertNotIn(b"VANISHED", out)
        self.assertNotIn(b"FETCH", out)

    def test_forgotten_expunges_are_inferred_from_what_is_missing(self) -> None:
        # A modseq older than the index: every known UID not here is reported.
        out = self.resync(b"5 1:6")
        self.assertIn(b"* VANISHED (EARLIER) 2:3\r\n", out)
        self.assertEqual(out.count(b" FETCH "), 4)
        # seq-match pairs (sequence number -> UID as the client saw it): UIDs 1, 4, 5, 6
        # remain, so 1 -> 1 still holds but 4 -> 4 does not (seq 4 is UID 6 now).
        out = self.resync(b"5 1:6 (1,4 1,4)")
        self.assertIn(b"* VANISHED (EARLIER) 2:3\r\n", out)
        # 2 -> 4 holds: nothing below UID 4 vanished since the client last looked.
        out = self.resync(b"5 1:6 (1:2 1,4)")
        self.assertNotIn(b"VANISHED", out)

    def test_uidvalidity_mismatch_is_a_plain_select(self) -> None:
        d = self.session()
        self.login(d)
        self.cmd(d, b"e ENABLE QRESYNC")
        out = self.cmd(d, b"s SELECT INBOX (QRESYNC (%d 1))" % (self.validity + 1))
        self.assertNotIn(b"VANISHED", out)
        self.assertTrue(out.endswith(b"s OK [READ-WRITE] SELECT completed\r\n"))

    def test_qresync_needs_enable_and_vanished_needs_uid(self) -> None:
        out = self.resync(b"1", enable=False)
        self.assertEqual(out, b"s BAD QRESYNC needs ENABLE QRESYNC first\r\n")
        d = self.session()
        self.login(d)
        self.cmd(d, b"s SELECT INBOX")
        self.assertEqual(
            self.cmd(d, b"f UID FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)"),
            b"f BAD VANISHED needs UID FETCH and ENABLE QRESYNC\r\n",
        )
        self.cmd(d, b"e ENABLE QRESYNC")
        self.assertEqual(
            self.cmd(d, b"f FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)"),
            b"f BAD VANISHED needs UID FETCH and ENABLE QRESYNC\r\n",
        )

    def test_uid_fetch_vanished(self) -> None:
        d = self.session()
        self.login(d)
        self.cmd(d, b"e ENABLE QRESYNC")
        self.cmd(d, b"s SELECT INBOX")
        self.assertEqual(
            self.cmd(d, b"f UID FETCH 3:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % self.top),
            b"* VANISHED (EARLIER) 3\r\n"
            b"* 3 FETCH (UID 5 FLAGS (\\Seen) MODSEQ (%d))\r\nf OK FETCH completed\r\n"
            % (self.top + 1),
        )
        self.assertEqual(
            self.cmd(d, b"g UID FETCH 1:* (FLAGS) (CHANGEDSINCE 5 VANISHED)"),
            b"* VANISHED (EARLIER) 2:3\r\n"
            + b"".join(
                b"* %d FETCH (UID %d FLAGS (%s) MODSEQ (%d))\r\n" % row
                for row in (
                    (1, 1, b"", self.top),
                    (2, 4, b"", self.top),
                    (3, 5, b"\\Seen", self.top + 1),
                    (4, 6, b"", self.top),
                )
            )
            + b"g OK FETCH completed\r\n",
        )


class HelperTests(Base):
    def test_missing_uids_work_by_present_uids_not_span_width(self) -> None:
        self.assertEqual(
            missing_uids([(1, 4_294_967_295)], [1, 4, 5, 9]),
            [(2, 3), (6, 8), (10, 4_294_967_295)],
        )
        self.assertEqual(missing_uids([(1, 3), (7, 9)], [2, 8], above=2), [(3, 3), (7, 7), (9, 9)])
        self.assertEqual(missing_uids([(5, 6)], [5, 6]), [])

    def test_vanished_responses_parse_into_ranges(self) -> None:
        earlier = parse_response([b"* VANISHED (EARLIER) 41,43:116,118"])
        assert isinstance(earlier, Untagged)
        self.assertEqual(earlier.data, Vanished(True, ((41, 41), (43, 116), (118, 118))))
        self.assertIn(50, earlier.data)
        self.assertNotIn(42, earlier.data)
        self.assertEqual(len(earlier.data.uids()), 76)
        now = parse_response([b"* VANISHED 7:5"])
        assert isinstance(now, Untagged)
        self.assertEqual(now.data, Vanished(False, ((5, 7),)))
        with self.assertRaises(ValueError):
            parse_response([b"* VANISHED 1:4000000000"]).data.uids()  # type: ignore[union-attr]
        with self.assertRaises(ResponseSyntaxError):
            parse_response([b"* VANISHED 1:*"])


_UID_RANGES = st.lists(
    st.tuples(st.integers(1, 2**32 - 1), st.integers(1, 2**32 - 1)), min_size=1, max_size=8
)


class PropertyTests(Base):
    @given(st.integers(1, 2**32 - 1), st.integers(0, 2**63 - 1), st.none() | _UID_RANGES)
    def test_qresync_parameters_round_trip(
        self, validity: int, modseq: int, known: list[tuple[int, int]] | None
    ) -> None:
        text = b"%d %d" % (validity, modseq)
        if known is not None:
            text += b" " + ",".join(f"{a}:{b}" for a, b in known).encode()
        req = parse_command([b"t SELECT INBOX (QRESYNC (" + text + b"))"])
        q = req.params["QRESYNC"]
        assert isinstance(q, QresyncParams)
        self.assertEqual((q.uid_validity, q.modseq), (validity, modseq))
        self.assertEqual(q.known_uids.ranges if q.known_uids else None, known and tuple(known))

    @given(st.binary(max_size=80))
    def test_random_modifiers_never_crash(self, junk: bytes) -> None:
        junk = junk.replace(b"\r", b"").replace(b"\n", b"")
        for template in (
            b"t SELECT INBOX (%s)",
            b"t UID FETCH 1 FLAGS (%s)",
            b"t STORE 1 (%s) FLAGS x",
        ):
            with contextlib.suppress(CommandSyntaxError):
                parse_command([template % junk])

    @given(_UID_RANGES)
    def test_vanished_ranges_round_trip(self, ranges: list[tuple[int, int]]) -> None:
        text = ",".join(f"{a}:{b}" for a, b in ranges).encode()
        parsed = parse_response([b"* VANISHED (EARLIER) " + text])
        assert isinstance(parsed, Untagged)
        self.assertEqual(parsed.data.ranges, tuple((min(a, b), max(a, b)) for a, b in ranges))

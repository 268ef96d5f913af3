"""IMAP server mailbox, selected-state, FETCH and MIME commands driven with bytes alone."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.connection import ConnectionDriver
from netproto_twisted.core.passwords import PasswordFile
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.imap4.server import (
    ChangeHub,
    IMAPConnection,
    IMAPSettings,
    MessageCache,
    mime,
)
from netproto_twisted.mailstore import MaildirStore
from netproto_twisted.mailstore.fsops import FsOps
from tests.mailstore.helpers import sync_runner

MULTIPART = (
    b"From: a@example.com\r\n"
    b"Subject: multi\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XX"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
    b"hello part one\r\n"
    b"--XX\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: inner\r\n"
    b"From: b@example.com\r\n"
    b"\r\n"
    b"inner body\r\n"
    b"--XX\r\n"
    b'Content-Type: multipart/alternative; boundary="YY"\r\n'
    b"\r\n"
    b"--YY\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"alt plain\r\n"
    b"--YY\r\n"
    b"Content-Type: text/html\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: inline; filename=a.html\r\n"
    b"\r\n"
    b"PGI+aGk8L2I+\r\n"
    b"--YY--\r\n"
    b"--XX--\r\n"
)


class Base(SynchronousTestCase):
    """A store with alice's INBOX of three messages and a session driver."""

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.base = os.path.join(self.dir, "mail")
        self.store = MaildirStore(self.base, fs=FsOps(), runner=sync_runner, sync="file")
        users = PasswordFile(Path(self.dir) / "users", iterations=4096)
        users.add("alice", "pw")
        self.clock = MemoryReactorClock()
        self.auth = Authenticator.for_password_file(
            users, sync_runner, LoginDelay(self.clock), allow_insecure=True
        )
        self.hub = ChangeHub(self.clock, watch_files=False)
        self.cache = MessageCache()
        for raw in (
            b"Subject: one\r\nFrom: x@example.com\r\n\r\nbody one\r\n",
            b"Subject: two\r\nFrom: y@example.com\r\nTo: Zed <z@example.com>\r\n"
            b"Cc: c@example.com\r\n"
            b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n\r\nsecond body\r\n",
            MULTIPART,
        ):
            writer = self.store.deliver("alice")
            writer.write(raw)
            writer.commit()

    def session(self) -> ConnectionDriver:
        conn = IMAPConnection(
            IMAPSettings(allow_insecure_auth=True), self.store, self.hub, self.cache,
            peer="127.0.0.1", peer_is_loopback=True, authenticator=self.auth,
        )  # fmt: skip
        driver = ConnectionDriver(conn, max_line_length=65536)
        self.assertTrue(driver.take_output().startswith(b"* OK [CAPABILITY IMAP4rev1 "))
        return driver

    def login(self, driver: ConnectionDriver) -> None:
        self.assertIn(b"a OK [CAPABILITY ", driver.feed(b"a LOGIN alice pw\r\n"))

    def cmd(self, driver: ConnectionDriver, line: bytes) -> bytes:
        return driver.feed(line + b"\r\n")


class MailboxCommandTests(Base):
    def test_create_delete_rename_and_inbox_rules(self) -> None:
        d = self.session()
        self.login(d)
        self.assertEqual(self.cmd(d, b"c1 CREATE Work."), b"c1 OK CREATE completed\r\n")
        self.assertEqual(
            self.cmd(d, b"c2 CREATE INBOX"), b"c2 NO [ALREADYEXISTS] INBOX always exists\r\n"
        )
        self.assertEqual(
            self.cmd(d, b"c3 CREATE Work"), b"c3 NO [ALREADYEXISTS] mailbox exists\r\n"
        )
        self.assertEqual(self.cmd(d, b"c4 CREATE Sent/a"), b"c4 NO [CANNOT] bad mailbox name\r\n")
        self.assertEqual(self.cmd(d, b"c5 CREATE Work.Sub"), b"c5 OK CREATE completed\r\n")
        self.assertEqual(
            self.cmd(d, b"d1 DELETE INBOX"), b"d1 NO [CANNOT] INBOX cannot be deleted\r\n"
        )
        self.assertEqual(
            self.cmd(d, b"d2 DELETE Nope"), b"d2 NO [NONEXISTENT] no such mailbox\r\n"
        )
        self.assertEqual(self.cmd(d, b"r1 RENAME Work Jobs"), b"r1 OK RENAME completed\r\n")
        self.assertEqual(
            self.cmd(d, b"r2 RENAME Jobs INBOX"), b"r2 NO [ALREADYEXISTS] INBOX exists\r\n"
        )
        # Renaming INBOX moves its messages; INBOX stays, empty.
        self.assertEqual(self.cmd(d, b"r3 RENAME INBOX Old"), b"r3 OK RENAME completed\r\n")
        out = self.cmd(d, b"st STATUS Old (MESSAGES RECENT UIDNEXT UNSEEN DELETED)")
        self.assertEqual(
            out,
            b'* STATUS "Old" (MESSAGES 3 RECENT 0 UIDNEXT 4 UNSEEN 3 DELETED 0)\r\n'
            b"st OK STATUS completed\r\n",
        )
        self.assertIn(b'* STATUS "INBOX" (MESSAGES 0)', self.cmd(d, b"s2 STATUS INBOX (MESSAGES)"))
        self.assertEqual(
            self.cmd(d, b'l LIST "" *'),
            b'* LIST (\\HasNoChildren) "." "INBOX"\r\n'
            b'* LIST (\\HasChildren) "." "Jobs"\r\n'
            b'* LIST (\\HasNoChildren) "." "Jobs.Sub"\r\n'
            b'* LIST (\\HasNoChildren) "." "Old"\r\n'
            b"l OK LIST completed\r\n",
        )

    def test_delete_the_selected_mailbox_leaves_selected_state(self) -> None:
        d = self.session()
        self.login(d)
        self.cmd(d, b"c CREATE Sent")
        self.assertIn(b"x OK [READ-WRITE]", self.cmd(d, b"x SELECT Sent"))
        self.assertEqual(self.cmd(d, b"d DELETE Sent"), b"d OK DELETE completed\r\n")
        self.assertEqual(
            self.cmd(d, b"f FETCH 1 FLAGS"), b"f BAD command not valid in this state\r\n"
        )
        self.assertEqual(self.cmd(d, b'l LIST "" Sent'), b"l OK LIST completed\r\n")

    def test_subscriptions_lsub_and_list_selection_options(self) -> None:
        d = self.session()
        self.login(d)
        self.cmd(d, b"c1 CREATE Deep.Leaf")
        self.cmd(d, b"c2 CREATE Sent")
        self.assertEqual(self.cmd(d, b"s1 SUBSCRIBE Ghost"), b"s1 OK SUBSCRIBE completed\r\n")
        self.assertEqual(self.cmd(d, b"s2 SUBSCRIBE Gone"), b"s2 OK SUBSCRIBE completed\r\n")
        self.assertEqual(self.cmd(d, b"u1 UNSUBSCRIBE Gone"), b"u1 OK UNSUBSCRIBE completed\r\n")
        self.assertEqual(
            self.cmd(d, b'l1 LIST "" %'),
            b'* LIST (\\HasNoChildren) "." "INBOX"\r\n'
            b'* LIST (\\HasNoChildren \\Sent) "." "Sent"\r\n'
            b'* LIST (\\Noselect \\HasChildren) "." "Deep"\r\n'
            b"l1 OK LIST completed\r\n",
        )
        self.assertEqual(
            self.cmd(d, b'l2 LIST (SUBSCRIBED) "" *'),
            b'* LIST (\\NonExistent \\HasNoChildren \\Subscribed) "." "Ghost"\r\n'
            b'* LIST (\\Noselect \\HasChildren) "." "Deep"\r\n'
            b"l2 OK LIST completed\r\n",
        )
        self.assertEqual(
            self.cmd(d, b'l3 LIST (SPECIAL-USE) "" *'),
            b'* LIST (\\HasNoChildren \\Sent) "." "Sent"\r\nl3 OK LIST completed\r\n',
        )
        self.assertEqual(
            self.cmd(d, b'l4 LSUB "" %'),
            b'* LSUB (\\Noselect) "." "Ghost"\r\n* LSUB (\\Noselect) "." "Deep"\r\n'
            b"l4 OK LSUB completed\r\n",
        )
        self.assertEqual(
            self.cmd(d, b'l5 LIST "Deep." %'),
            b'* LIST (\\HasNoChildren) "." "Deep.Leaf"\r\nl5 OK LIST completed\r\n',
        )
        self.assertEqual(
            self.cmd(d, b'l6 LIST "" inbox'),
            b'* LIST (\\HasNoChildren) "." "INBOX"\r\nl6 OK LIST completed\r\n',
        )

    def test_list_return_status_and_subscribed(self) -> None:
        d = self.session()
        self.login(d)
        self.cmd(d, b"c CREATE Jobs")
        self.cmd(d, b"s SUBSCRIBE INBOX")
        self.assertEqual(
            self.cmd(d, b'l1 LIST (SUBSCRIBED) "" * RETURN (STATUS (MESSAGES UNSEEN))'),
            b'* LIST (\\HasNoChildren \\Subscribed) "." "INBOX"\r\n'
            b'* STATUS "INBOX" (MESSAGES 3 UNSEEN 3)\r\n'
            b"l1 OK LIST completed\r\n",
        )
        self.assertEqual(
            self.cmd(d, b'l2 LIST "" * RETURN (SUBSCRIBED)'),
            b'* LIST (\\HasNoChildren \\Subscribed) "." "INBOX"\r\n'
            b'* LIST (\\HasNoChildren) "." "Jobs"\r\n'
            b"l2 OK LIST completed\r\n",
        )

    def test_list_empty_pattern_namespace_and_status_errors(self) -> None:
        d = self.session()
        self.login(d)
        self.assertEqual(
            self.cmd(d, b'l LIST "" ""'),
            b'* LIST (\\Noselect) "." ""\r\nl OK LIST completed\r\n',
        )
        self.assertEqual(
            self.cmd(d, b"n NAMESPACE"),
            b'* NAMESPACE (("" ".")) NIL NIL\r\nn OK NAMESPACE completed\r\n',
        )
        self.assertEqual(
            self.cmd(d, b"s1 STATUS Nope (MESSAGES)"), b"s1 NO [NONEXISTENT] no such mailbox\r\n"
        )
        self.assertEqual(
            self.cmd(d, b"s2 STATUS INBOX (BOGUS)"), b"s2 BAD unknown STATUS item BOGUS\r\n"
        )
        out = self.cmd(d, b"s3 STATUS INBOX (SIZE UIDVALIDITY)")
        self.assertRegex(out, rb'^\* STATUS "INBOX" \(SIZE \d+ UIDVALIDITY \d+\)\r\ns3 OK')


class SelectedCommandTests(Base):
    def selected(self) -> ConnectionDriver:
        d = self.session()
        self.login(d)
        self.assertIn(b"x OK [READ-WRITE] SELECT completed", self.cmd(d, b"x SELECT INBOX"))
        return d

    def test_examine_is_read_only(self) -> None:
        d = self.session()
        self.login(d)
        out = self.cmd(d, b"e EXAMINE INBOX")
        self.assertIn(b"* OK [PERMANENTFLAGS ()] flags permitted\r\n", out)
        self.assertTrue(out.endswith(b"e OK [READ-ONLY] EXAMINE completed\r\n"))
        self.assertEqual(
            self.cmd(d, b"s STORE 1 +FLAGS (\\Seen)"), b"s NO [READ-ONLY] mailbox is read-only\r\n"
        )
        self.assertRegex(self.cmd(d, b"c COPY 1 INBOX"), rb"^c OK \[COPYUID \d+ 1 4\] COPY")
        out = self.cmd(d, b"x SELECT INBOX")
        self.assertTrue(out.startswith(b"* OK [CLOSED] previous mailbox closed\r\n"))
        self.assertIn(b"* 4 EXISTS\r\n", out)

    def test_store_variants(self) -> None:
        d = self.selected()
        self.assertEqual(self.cmd(d, b"c CHECK"), b"c OK CHECK completed\r\n")
        self.assertEqual(
            self.cmd(d, b"s1 STORE 1 +FLAGS (\\Flagged \\Seen)"),
            b"* 1 FETCH (FLAGS (\\Flagged \\Seen \\Recent))\r\ns1 OK STORE completed\r\n",
        )
        self.assertEqual(
            self.cmd(d, b"s2 STORE 1:2 -FLAGS.SILENT (\\Seen)"), b"s2 OK STORE completed\r\n"
        )
        self.assertEqual(
            self.cmd(d, b"s3 STORE 2 FLAGS ($Work)"),
            b"* 2 FETCH (FLAGS ($Work \\Recent))\r\ns3 OK STORE completed\r\n",
        )
        self.assertEqual(
            self.cmd(d, b"s4 UID STORE 1:* +FLAGS (\\Answered)"),
            b"* 1 FETCH (UID 1 FLAGS (\\Answered \\Flagged \\Recent))\r\n"
            b"* 2 FETCH (UID 2 FLAGS ($Work \\Answered \\Recent))\r\n"
            b"* 3 FETCH (UID 3 FLAGS (\\Answered \\Recent))\r\n"
            b"s4 OK STORE completed\r\n",
        )
        self.assertEqual(
            self.cmd(d, b"s5 STORE 9 +FLAGS (\\Seen)"),
            b"s5 BAD invalid message sequence number\r\n",
        )
        self.assertTrue(self.cmd(d, b"s6 STORE 1 +FLAGS (\\Bogus").startswith(b"s6 BAD "))
        self.assertEqual(
            self.cmd(d, b"f FETCH 1:3 FLAGS"),
            b"* 1 FETCH (FLAGS (\\Answered \\Flagged \\Recent))\r\n"
            b"* 2 FETCH (FLAGS ($Work \\Answered \\Recent))\r\n"
            b"* 3 FETCH (FLAGS (\\Answered \\Recent))\r\n"
            b"f OK FETCH completed\r\n",
        )

    def test_search_keys(self) -> None:
        d = self.selected()
        self.cmd(d, b"s1 STORE 1 +FLAGS.SILENT (\\Flagged \\Seen)")
        self.cmd(d, b"s2 STORE 2 +FLAGS.SILENT ($Work \\Answered)")
        cases = [
            (b"FLAGGED", b"1"),
            (b"OR SUBJECT two FROM x@example", b"1 2"),
            (b"NOT ANSWERED", b"1 3"),
            (b"2:3 LARGER 10 BODY second", b"2"),
            (b"KEYWORD $Work UNKEYWORD $x SINCE 1-Jan-2000", b"2"),
            (b"HEADER Subject multi TEXT inner", b"3"),
            (b"SEEN", b"1"),
            (b"UNSEEN UNFLAGGED", b"2 3"),
            (b"RECENT NEW", b"2 3"),
            (b"OLD", b""),
            (b"SMALLER 5", b""),
            (b"DRAFT", b""),
            (b"UNDRAFT UNDELETED UNANSWERED", b"1 3"),
            (b"CHARSET UTF-8 SUBJECT one", b"1"),
            (b"BEFORE 1-Jan-2000", b""),
            (b"SENTSINCE 1-Jan-2000 SENTBEFORE 1-Jan-2000", b""),
            (b"CC nobody", b""),
            (b"(UID 1:2) ANSWERED", b"2"),
            (b"DELETED", b""),
        ]
        for key, expected in cases:
            out = self.cmd(d, b"q SEARCH " + key)
            sep = b" " if expected else b""
            self.assertEqual(
                out, b"* SEARCH" + sep + expected + b"\r\nq OK SEARCH completed\r\n", key
            )
        self.assertEqual(
            self.cmd(d, b"u UID SEARCH 2:3 BODY second"),
            b"* SEARCH 2\r\nu OK SEARCH completed\r\n",
        )
        self.assertEqual(
            self.cmd(d, b"e1 SEARCH RETURN (MIN MAX COUNT ALL) ALL"),
            b'* ESEARCH (TAG "e1") MIN 1 MAX 3 ALL 1:3 COUNT 3\r\ne1 OK SEARCH completed\r\n',
        )
        self.assertEqual(
            self.cmd(d, b"e2 SEARCH RETURN () 1:*"),
            b'* ESEARCH (TAG "e2") ALL 1:3\r\ne2 OK SEARCH completed\r\n',
        )
        self.assertTrue(self.cmd(d, b"b SEARCH BOGUS").startswith(b"b BAD "))

    def test_copy_move_expunge_close(self) -> None:
        d = self.selected()
        self.assertEqual(
            self.cmd(d, b"c1 COPY 1:2 Nope"), b"c1 NO [TRYCREATE] no such mailbox\r\n"
        )
        self.cmd(d, b"c2 CREATE Arch")
        self.assertRegex(self.cmd(d, b"c3 COPY 1:2 Arch"), rb"^c3 OK \[COPYUID \d+ 1:2 1:2\] ")
        self.assertRegex(self.cmd(d, b"c4 UID COPY 3 Arch"), rb"^c4 OK \[COPYUID \d+ 3 3\] ")
        self.assertRegex(
            self.cmd(d, b"m1 MOVE 1 Arch"),
            rb"^\* OK \[COPYUID \d+ 1 4\] moved\r\n\* 1 EXPUNGE\r\nm1 OK MOVE completed\r\n$",
        )
        self.assertRegex(
            self.cmd(d, b"m2 UID MOVE 3 Arch"),
            rb"^\* OK \[COPYUID \d+ 3 5\] moved\r\n\* 2 EXPUNGE\r\nm2 OK MOVE completed\r\n$",
        )
        # Only UID 2 is left in INBOX, as message 1.
        self.assertEqual(
            self.cmd(d, b"f UID FETCH 1:* FLAGS"),
            b"* 1 FETCH (UID 2 FLAGS (\\Recent))\r\nf OK FETCH completed\r\n",
        )
        self.cmd(d, b"s STORE 1 +FLAGS.SILENT (\\Deleted)")
        self.assertEqual(self.cmd(d, b"e1 UID EXPUNGE 999"), b"e1 OK EXPUNGE completed\r\n")
        self.assertEqual(
            self.cmd(d, b"e2 UID EXPUNGE 1:*"), b"* 1 EXPUNGE\r\ne2 OK EXPUNGE completed\r\n"
        )
        self.assertEqual(self.cmd(d, b"e3 EXPUNGE"), b"e3 OK EXPUNGE completed\r\n")
        self.assertEqual(self.cmd(d, b"u UNSELECT"), b"u OK UNSELECT completed\r\n")
        self.assertIn(b"* 5 EXISTS\r\n", self.cmd(d, b"x SELECT Arch"))
        self.cmd(d, b"s2 STORE 1 +FLAGS.SILENT (\\Deleted)")
        self.assertEqual(self.cmd(d, b"cl CLOSE"), b"cl OK CLOSE completed\r\n")
        self.assertEqual(
            self.cmd(d, b"st STATUS Arch (MESSAGES)"),
            b'* STATUS "Arch" (MESSAGES 4)\r\nst OK STATUS completed\r\n',
        )


class FetchAndMimeTests(Base):
    def selected(self) -> ConnectionDriver:
        d = self.session()
        self.login(d)
        self.assertIn(b"x OK [READ-WRITE] SELECT completed", self.cmd(d, b"x SELECT INBOX"))
        return d

    def test_search_sent_dates_and_address_headers(self) -> None:
        d = self.selected()
        for key, expected in [
            (b"SENTON 1-Jan-2024 TO zed CC c@ex", b" 2"),
            (b"SENTSINCE 1-Jan-2025", b""),
            (b'HEADER Date ""', b" 2"),
            (b"NOT SENTBEFORE 1-Jan-2024", b" 1 2 3"),  # no Date: never SENTBEFORE
        ]:
            self.assertEqual(
                self.cmd(d, b"q SEARCH " + key),
                b"* SEARCH" + expected + b"\r\nq OK SEARCH completed\r\n",
                key,
            )

    def test_bodystructure_of_nested_multipart_and_message_rfc822(self) -> None:
        d = self.selected()
        text1 = b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 14 0'
        inner_env = (
            b'(NIL "inner" ((NIL NIL "b" "example.com")) ((NIL NIL "b" "example.com")) '
            b'((NIL NIL "b" "example.com")) NIL NIL NIL NIL NIL)'
        )
        inner_body = b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 0'
        self.assertEqual(
            self.cmd(d, b"f1 FETCH 3 (BODYSTRUCTURE)"),
            b"* 3 FETCH (BODYSTRUCTURE ("
            + text1
            + b' NIL NIL NIL NIL) ("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 49 '
            + inner_env
            + b" "
            + inner_body
            + b' NIL NIL NIL NIL) 3 NIL NIL NIL NIL) (("TEXT" "PLAIN" NIL NIL NIL "7BIT" 9 0 '
            b'NIL NIL NIL NIL) ("TEXT" "HTML" NIL NIL NIL "BASE64" 12 0 NIL '
            b'("inline" ("FILENAME" "a.html")) NIL NIL) "ALTERNATIVE" ("BOUNDARY" "YY") NIL NIL'
            b' NIL) "MIXED" ("BOUNDARY" "XX") NIL NIL NIL))\r\nf1 OK FETCH completed\r\n',
        )
        self.assertEqual(
            self.cmd(d, b"f2 FETCH 3 (BODY)"),
            b"* 3 FETCH (BODY ("
            + text1
            + b') ("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 49 '
            + inner_env
            + b" "
            + inner_body
            + b') 3) (("TEXT" "PLAIN" NIL NIL NIL "7BIT" 9 0) ("TEXT" "HTML" NIL NIL NIL '
            b'"BASE64" 12 0) "ALTERNATIVE") "MIXED"))\r\nf2 OK FETCH completed\r\n',
        )

    def test_body_sections_mime_and_partials(self) -> None:
        d = self.selected()
        self.assertEqual(
            self.cmd(
                d,
                b"f FETCH 3 (BODY.PEEK[1] BODY.PEEK[1.MIME] BODY.PEEK[2.HEADER] "
                b"BODY.PEEK[2.TEXT] BODY.PEEK[3.2] BODY.PEEK[3.2.MIME])",
            ),
            b"* 3 FETCH (BODY[1] {14}\r\nhello part one"
            b" BODY[1.MIME] {46}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            b" BODY[2.HEADER] {39}\r\nSubject: inner\r\nFrom: b@example.com\r\n\r\n"
            b" BODY[2.TEXT] {10}\r\ninner body"
            b" BODY[3.2] {12}\r\nPGI+aGk8L2I+"
            b" BODY[3.2.MIME] {108}\r\nContent-Type: text/html\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: inline; filename=a.html\r\n\r\n)\r\n"
            b"f OK FETCH completed\r\n",
        )
        self.assertEqual(
            self.cmd(
                d,
                b"p FETCH 3 (BODY.PEEK[]<0.10> BODY.PEEK[TEXT]<5.8> "
                b"BODY.PEEK[HEADER.FIELDS.NOT (From Subject)])",
            ),
            b"* 3 FETCH (BODY[]<0> {10}\r\nFrom: a@ex BODY[TEXT]<5> {8}\r\nble\r\n--X"
            b" BODY[HEADER.FIELDS.NOT (FROM SUBJECT)] {67}\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="XX"\r\n\r\n)\r\np OK FETCH completed\r\n',
        )
        self.assertEqual(
            self.cmd(d, b"q FETCH 1 BODY.PEEK[]<100.5>"),
            b"* 1 FETCH (BODY[]<100> {0}\r\n)\r\nq OK FETCH completed\r\n",
        )
        self.assertEqual(
            self.cmd(d, b"r FETCH 3 (BODY.PEEK[9] BODY.PEEK[2.1])"),
            b'* 3 FETCH (BODY[9] "" BODY[2.1] {10}\r\ninner body)\r\nr OK FETCH completed\r\n',
        )
        self.assertEqual(
            self.cmd(d, b"s FETCH 3 BODY.PEEK[2.HEADER.FIELDS (Subject)]"),
            b"* 3 FETCH (BODY[2.HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: inner\r\n\r\n)\r\n"
            b"s OK FETCH completed\r\n",
        )
        self.assertEqual(
            self.cmd(d, b"b FETCH 3 (BINARY.PEEK[3.2] BINARY.SIZE[3.2])"),
            b"* 3 FETCH (BINARY[3.2] {9}\r\n<b>hi</b> BINARY.SIZE[3.2] 9)\r\n"
            b"b OK FETCH completed\r\n",
        )
        # Nothing above was a non-PEEK fetch: no message became \Seen.
        self.assertEqual(self.cmd(d, b"u SEARCH SEEN"), b"* SEARCH\r\nu OK SEARCH completed\r\n")

    def test_rfc822_items_macros_and_envelope(self) -> None:
        d = self.selected()
        self.assertEqual(
            self.cmd(d, b"h FETCH 1 (RFC822.HEADER RFC822.TEXT)"),
            b"* 1 FETCH (RFC822.HEADER {37}\r\nSubject: one\r\nFrom: x@example.com\r\n\r\n"
            b" RFC822.TEXT {10}\r\nbody one\r\n FLAGS (\\Seen \\Recent))\r\n"
            b"h OK FETCH completed\r\n",
        )
        out = self.cmd(d, b"r FETCH 2 RFC822")
        self.assertTrue(out.startswith(b"* 2 FETCH (RFC822 {133}\r\nSubject: two\r\n"))
        self.assertTrue(
            out.endswith(b"second body\r\n FLAGS (\\Seen \\Recent))\r\nr OK FETCH completed\r\n")
        )
        self.assertRegex(
            self.cmd(d, b"e FETCH 2 (ENVELOPE INTERNALDATE RFC822.SIZE)"),
            rb'^\* 2 FETCH \(ENVELOPE \("Mon, 01 Jan 2024 10:00:00 \+0000" "two" '
            rb'\(\(NIL NIL "y" "example.com"\)\) \(\(NIL NIL "y" "example.com"\)\) '
            rb'\(\(NIL NIL "y" "example.com"\)\) \(\("Zed" NIL "z" "example.com"\)\) '
            rb'\(\(NIL NIL "c" "example.com"\)\) NIL NIL NIL\) '
            rb'INTERNALDATE "[ \d]\d-\w{3}-\d{4} \d\d:\d\d:\d\d \+0000" RFC822.SIZE 133\)\r\n'
            rb"e OK FETCH completed\r\n$",
        )
        self.assertEqual(
            self.cmd(d, b"m FETCH 1:2 (FAST)"), b"m BAD unknown fetch attribute FAST\r\n"
        )
        out = self.cmd(d, b"a FETCH 1 ALL")
        self.assertRegex(
            out,
            rb"^\* 1 FETCH \(FLAGS \(\\Seen \\Recent\) INTERNALDATE .* "
            rb'RFC822.SIZE 47 ENVELOPE \(NIL "one"',
        )
        out = self.cmd(d, b"u FETCH 1 FULL")
        self.assertIn(
            b'BODY ("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 10 1))\r\n', out
        )


class MimeUnitTests(SynchronousTestCase):
    """The MIME helpers on odd input: bare LF, folding, no boundary, digests, encodings."""

    def test_crlf_and_split_header(self) -> None:
        self.assertEqual(mime.crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n")
        self.assertEqual(mime.crlf(b"abc"), b"abc")
        self.assertEqual(mime.crlf(b"a\r\n"), b"a\r\n")
        self.assertEqual(mime.split_header(b"\r\nbody"), (b"\r\n", b"body"))
        self.assertEqual(mime.split_header(b"Subject: x\r\n"), (b"Subject: x\r\n", b""))

    def test_parse_headers_folding_and_junk(self) -> None:
        self.assertEqual(
            mime.parse_headers(b" lead\r\nSubject: a\r\n  folded\r\nnocolon\r\nX: y\r\n\r\n"),
            [("subject", b"a folded"), ("x", b"y")],
        )

    def test_multipart_without_boundary_and_digest(self) -> None:
        p = mime.parse_message(b"Content-Type: multipart/mixed\r\n\r\nno boundary")
        self.assertEqual(
            [(c.type, c.subtype, c.params) for c in p.children],
            [("text", "plain", [("charset", "us-ascii")])],
        )
        p = mime.parse_message(
            b"Content-Type: multipart/digest; boundary=B\r\n\r\n"
            b"--B\r\n\r\nSubject: d\r\n\r\ndig\r\n--B--\r\n"
        )
        child = p.children[0]
        self.assertEqual((child.type, child.subtype), ("message", "rfc822"))
        assert child.message is not None
        self.assertEqual(child.message.get("subject"), b"d")
        p = mime.parse_message(b"Content-Type: foo\r\n\r\nxx")
        self.assertEqual((p.type, p.subtype), ("text", "plain"))

    def test_transfer_encodings_charsets_and_encoded_words(self) -> None:
        p = mime.parse_message(
            b"Content-Type: text/plain; charset=iso-8859-1\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9\r\n"
        )
        self.assertEqual(mime.decode_body(p), b"caf\xe9\r\n")
        self.assertEqual(mime.body_text(p), "caf\xe9\r\n")
        p = mime.parse_message(
            b"Content-Type: text/plain; charset=x-bogus\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n!!!notb64\r\n"
        )
        self.assertEqual(mime.body_text(p), "!!!notb64\r\n")  # undecodable: kept raw
        self.assertEqual(
            mime.body_text(mime.parse_message(b"Content-Type: image/png\r\n\r\nxx")), ""
        )
        self.assertEqual(mime.decoded_header(b"=?utf-8?q?caf=C3=A9?="), "caf\xe9")
        self.assertEqual(mime.decoded_header(b"=?bogus?q?x?="), "=?bogus?q?x?=")
        self.assertEqual(mime.decoded_header(b"plain"), "plain")

    def test_envelope_addresses_and_disposition(self) -> None:
        p = mime.parse_message(
            b'From: undisclosed-recipients:;\r\nTo: "Q, R" <q@x>, local\r\nCc: <>\r\n'
            b"Content-Disposition: \r\nContent-Type: text/plain\r\n\r\nx"
        )
        env = mime.envelope(p)
        self.assertEqual(env[5], [[b"Q, R", None, b"q", b"x"], [None, None, b"local", None]])
        self.assertIsNone(env[6])
        self.assertEqual(
            mime.body_structure(p),
            [b"TEXT", b"PLAIN", None, None, None, b"7BIT", 1, 0, None, None, None, None],
        )
        p = mime.parse_message(
            b"Content-Disposition: attachment\r\n"
            b"Content-Type: application/octet-stream; name*=utf-8''a%20b\r\n\r\nxx"
        )
        self.assertEqual(
            mime.body_structure(p),
            [b"APPLICATION", b"OCTET-STREAM", [b"NAME", b"a b"], None, None, b"7BIT", 2, None,
             [b"attachment", None], None, None],
        )  # fmt: skip


class SessionInteractionTests(Base):
    def test_read_only_refusals_empty_sets_and_bad_names(self) -> None:
        d = self.session()
        self.login(d)
        self.assertIn(b"e OK [READ-ONLY] EXAMINE completed", self.cmd(d, b"e EXAMINE INBOX"))
        self.assertEqual(self.cmd(d, b"x1 EXPUNGE"), b"x1 NO [READ-ONLY] mailbox is read-only\r\n")
        self.assertEqual(
            self.cmd(d, b"x2 MOVE 1 INBOX"), b"x2 NO [READ-ONLY] mailbox is read-only\r\n"
        )
        self.assertEqual(self.cmd(d, b"x3 UID COPY 99 INBOX"), b"x3 OK COPY completed\r\n")
        self.assertEqual(
            self.cmd(d, b"x4 COPY 1 Bad/Name"), b"x4 NO [CANNOT] bad mailbox name\r\n"
        )
        self.assertEqual(self.cmd(d, b"x5 CLOSE"), b"x5 OK CLOSE completed\r\n")
        self.assertEqual(
            self.cmd(d, b"s STATUS INBOX (MESSAGES)"),
            b'* STATUS "INBOX" (MESSAGES 3)\r\ns OK STATUS completed\r\n',
        )  # a read-only CLOSE expunges nothing
        self.assertEqual(self.cmd(d, b"i IDLE"), b"+ idling\r\n")
        self.assertEqual(self.cmd(d, b"NOPE"), b"i BAD expected DONE\r\n")
        self.assertIn(b"x OK [READ-WRITE]", self.cmd(d, b"x SELECT INBOX"))
        self.assertEqual(
            self.cmd(d, b"u UID STORE 99 +FLAGS (\\Seen)"), b"u OK STORE completed\r\n"
        )
        self.assertEqual(self.cmd(d, b"m UID MOVE 99 INBOX"), b"m OK MOVE completed\r\n")

    def test_other_sessions_changes_are_reported(self) -> None:
        a, b = self.session(), self.session()
        self.login(a)
        self.login(b)
        self.assertIn(b"* 3 RECENT\r\n", self.cmd(b, b"s SELECT INBOX"))
        self.assertIn(b"* 0 RECENT\r\n", self.cmd(a, b"s SELECT INBOX"))
        self.cmd(b, b"st STORE 2 +FLAGS.SILENT (\\Deleted)")
        self.assertEqual(self.cmd(b, b"ex EXPUNGE"), b"* 2 EXPUNGE\r\nex OK EXPUNGE completed\r\n")
        self.assertEqual(self.cmd(a, b"n NOOP"), b"* 2 EXPUNGE\r\nn OK NOOP completed\r\n")
        self.cmd(b, b"f STORE 1 +FLAGS.SILENT (\\Flagged)")
        self.assertEqual(
            self.cmd(a, b"n2 NOOP"),
            b"* 1 FETCH (UID 1 FLAGS (\\Flagged))\r\nn2 OK NOOP completed\r\n",
        )
        self.assertEqual(b.feed(b"ap APPEND INBOX {3}\r\n"), b"+ Ready for literal data\r\n")
        self.assertRegex(b.feed(b"abc\r\n"), rb"ap OK \[APPENDUID \d+ 4\]")
        self.assertEqual(
            self.cmd(a, b"c CHECK"), b"* 3 EXISTS\r\n* 0 RECENT\r\nc OK CHECK completed\r\n"
        )
        self.assertEqual(
            self.cmd(a, b"g FETCH 1 BODY[]"),
            b"* 1 FETCH (BODY[] {47}\r\nSubject: one\r\nFrom: x@example.com\r\n\r\nbody one\r\n"
            b" FLAGS (\\Flagged \\Seen))\r\ng OK FETCH completed\r\n",
        )

    def test_bad_names_missing_mailboxes_and_imap4rev2_select(self) -> None:
        d = self.session()
        self.login(d)
        for line, reply in [
            (b"s1 SELECT Nope", b"s1 NO [NONEXISTENT] no such mailbox\r\n"),
            (b"s2 SELECT &Jjo", b"s2 BAD bad mailbox name\r\n"),
            (b"s3 SELECT Bad/Name", b"s3 NO [CANNOT] bad mailbox name\r\n"),
            (b"c1 CREATE &Jjo", b"c1 BAD bad mailbox name\r\n"),
            (b"l1 LIST &Jjo *", b"l1 BAD bad mailbox pattern\r\n"),
            (b"st STATUS Bad/Name (MESSAGES)", b"st NO [CANNOT] bad mailbox name\r\n"),
        ]:
            self.assertEqual(self.cmd(d, line), reply, line)
        self.assertEqual(
            self.cmd(d, b"en ENABLE IMAP4rev2"),
            b"* ENABLED IMAP4rev2\r\nen OK ENABLE completed\r\n",
        )
        out = self.cmd(d, b"x SELECT INBOX")
        self.assertNotIn(b"RECENT", out)
        self.assertNotIn(b"[UNSEEN", out)
        self.assertTrue(
            out.endswith(b'* LIST () "." "INBOX"\r\nx OK [READ-WRITE] SELECT completed\r\n')
        )

    def test_multiappend_into_the_selected_mailbox(self) -> None:
        d = self.session()
        self.login(d)
        self.assertIn(b"* 3 EXISTS\r\n", self.cmd(d, b"x SELECT INBOX"))
        self.assertEqual(d.feed(b"a APPEND INBOX {3}\r\n"), b"+ Ready for literal data\r\n")
        self.assertEqual(d.feed(b"abc (\\Seen) {2}\r\n"), b"+ Ready for literal data\r\n")
        out = d.feed(b"de\r\n")
        self.assertRegex(
            out,
            rb"^\* 5 EXISTS\r\n\* 3 RECENT\r\na OK \[APPENDUID \d+ 4,5\] APPEND completed\r\n$",
        )
        self.assertEqual(
            self.cmd(d, b"f FETCH 4:5 (FLAGS RFC822.SIZE)"),
            b"* 4 FETCH (FLAGS () RFC822.SIZE 3)\r\n"
            b"* 5 FETCH (FLAGS (\\Seen) RFC822.SIZE 2)\r\nf OK FETCH completed\r\n",
        )

    def test_esearch_forms_modseq_and_a_vanished_message_file(self) -> None:
        d = self.session()
        self.login(d)
        self.cmd(d, b"x SELECT INBOX")
        self.assertRegex(
            self.cmd(d, b"f FETCH 1 (BODY.PEEK[HEADER] MODSEQ)"),
            rb"^\* 1 FETCH \(BODY\[HEADER\] \{37\}\r\nSubject: one\r\nFrom: x@example.com\r\n\r\n"
            rb" MODSEQ \([1-9]\d*\)\)\r\nf OK FETCH completed\r\n$",
        )
        self.assertEqual(
            self.cmd(d, b"q1 UID SEARCH RETURN (COUNT MIN) DELETED"),
            b'* ESEARCH (TAG "q1") UID COUNT 0\r\nq1 OK SEARCH completed\r\n',
        )
        self.assertEqual(
            self.cmd(d, b"q2 UID SEARCH RETURN (MIN) 2:3"),
            b'* ESEARCH (TAG "q2") UID MIN 2\r\nq2 OK SEARCH completed\r\n',
        )
        # A file removed behind the server's back is skipped, not an error.
        for sub in ("new", "cur"):
            folder = os.path.join(self.base, "alice", sub)
            for name in os.listdir(folder):
                with open(os.path.join(folder, name), "rb") as f:
                    if b"Subject: two" in f.read():
                        os.unlink(os.path.join(folder, name))
        self.assertEqual(
            self.cmd(d, b"t FETCH 1:2 BODY.PEEK[TEXT]"),
            b"* 1 FETCH (BODY[TEXT] {10}\r\nbody one\r\n)\r\nt OK FETCH completed\r\n",
        )
        self.assertEqual(
            self.cmd(d, b"en ENABLE IMAP4rev2"),
            b"* ENABLED IMAP4rev2\r\nen OK ENABLE completed\r\n",
        )
        self.assertEqual(
            self.cmd(d, b"q3 SEARCH TEXT two"),  # the vanished message 2 is skipped
            b'* ESEARCH (TAG "q3")\r\nq3 OK SEARCH completed\r\n',
        )

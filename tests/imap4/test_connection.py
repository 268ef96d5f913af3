"""The IMAP session object driven with bytes alone (ConnectionDriver), no transport."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.connection import ConnectionDriver
from netproto_twisted.core.passwords import PasswordFile
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.imap4.server import ChangeHub, IMAPConnection, IMAPSettings, MessageCache
from netproto_twisted.mailstore import MaildirStore
from netproto_twisted.mailstore.fsops import FsOps
from tests.mailstore.helpers import sync_runner


class ConnectionTests(SynchronousTestCase):
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
        writer = self.store.deliver("alice")
        writer.write(b"Subject: one\r\n\r\nbody\r\n")
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
        self.assertEqual(driver.feed(b"a LOGIN alice {2}\r\n"), b"+ Ready for literal data\r\n")
        self.assertIn(b"a OK [CAPABILITY ", driver.feed(b"pw\r\n"))

    def test_literal_split_across_feeds_and_bad_then_continue(self) -> None:
        d = self.session()
        self.assertEqual(
            d.feed(b"x1 FETCH 1 FLAGS\r\n"), b"x1 BAD command not valid in this state\r\n"
        )
        self.assertEqual(d.feed(b"x2 BOGUS (((\r\n"), b"x2 BAD unknown command\r\n")
        self.login(d)
        out = d.feed(b"s SELECT INBOX\r\n")
        self.assertIn(b"* 1 EXISTS\r\n", out)
        self.assertIn(b"s OK [READ-WRITE] SELECT completed\r\n", out)
        d.feed(b"f FETCH 1 (BODY.PEEK[HEADER.FIELDS ({7}\r\n")
        out = d.feed(b"SUBJECT")
        self.assertEqual(out, b"")
        out = d.feed(b")])\r\n")
        self.assertEqual(
            out,
            b"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {16}\r\nSubject: one\r\n\r\n)\r\n"
            b"f OK FETCH completed\r\n",
        )

    def test_append_streams_to_tmp_and_commits_at_the_end(self) -> None:
        d = self.session()
        self.login(d)
        tmp = os.path.join(self.base, "alice", "tmp")
        self.assertEqual(
            d.feed(b"a APPEND INBOX (\\Flagged) {20}\r\n"), b"+ Ready for literal data\r\n"
        )
        d.feed(b"Subject: two\r\n")
        cur = os.listdir(os.path.join(self.base, "alice", "cur"))
        self.assertEqual(cur, [])  # given to the writer as it comes; nothing published
        out = d.feed(b"\r\nxy\r\n")
        self.assertEqual(out, b"")  # the literal is done; the command line is not
        out = d.feed(b"\r\n")
        self.assertRegex(out, rb"^a OK \[APPENDUID \d+ \d+\] APPEND completed\r\n$")
        self.assertEqual(os.listdir(tmp), [])

    def test_append_aborted_by_a_bad_rest_of_line(self) -> None:
        d = self.session()
        self.login(d)
        d.feed(b"a APPEND INBOX {4}\r\n")
        out = d.feed(b"abcd junk\r\n")
        self.assertEqual(out, b"a BAD APPEND extension JUNK not supported\r\n")
        self.assertEqual(os.listdir(os.path.join(self.base, "alice", "tmp")), [])
        self.assertEqual(os.listdir(os.path.join(self.base, "alice", "cur")), [])

    def test_idle_reports_another_sessions_append(self) -> None:
        a, b = self.session(), self.session()
        self.login(a)
        self.login(b)
        a.feed(b"s SELECT INBOX\r\n")
        self.assertEqual(a.feed(b"i IDLE\r\n"), b"+ idling\r\n")
        b.feed(b"x APPEND INBOX {3}\r\n")
        self.assertRegex(b.feed(b"abc\r\n"), rb"x OK \[APPENDUID")
        self.assertEqual(a.feed(b""), b"* 2 EXISTS\r\n* 1 RECENT\r\n")
        self.assertEqual(a.feed(b"DONE\r\n"), b"i OK IDLE terminated\r\n")

    def test_idle_sessions_on_one_folder_all_told_one_gets_recent(self) -> None:
        idle = [self.session() for _ in range(3)]
        writer = self.session()
        for d in [*idle, writer]:
            self.login(d)
        for d in idle:
            d.feed(b"s SELECT INBOX\r\n")
            self.assertEqual(d.feed(b"i IDLE\r\n"), b"+ idling\r\n")
        writer.feed(b"x APPEND INBOX {3}\r\n")
        self.assertRegex(writer.feed(b"abc\r\n"), rb"x OK \[APPENDUID")
        told = [d.feed(b"") for d in idle]
        for out in told:
            self.assertTrue(out.startswith(b"* 2 EXISTS\r\n"), out)
        self.assertEqual(sum(b"* 1 RECENT" in out for out in told), 1, told)

    def test_literal_limits(self) -> None:
        d = self.session()
        self.assertEqual(d.feed(b"a LOGIN {5000}\r\n"), b"a BAD [TOOBIG] literal too large\r\n")
        self.assertEqual(d.feed(b"b LOGIN {-3}\r\n"), b"b BAD negative literal size\r\n")
        out = d.feed(b"c LOGIN {2000+}\r\n" + b"z" * 2000)  # read and dropped
        self.assertEqual(out, b"c BAD [TOOBIG] literal too large\r\n")
        self.assertEqual(d.feed(b" rest\r\nd NOOP\r\n"), b"d OK NOOP completed\r\n")

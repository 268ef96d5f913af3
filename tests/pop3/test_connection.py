"""The POP3 session object driven with bytes (ConnectionDriver): no transport, no reactor."""

from __future__ import annotations

import base64
import io
import os
import re
from typing import BinaryIO

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.connection import ConnectionDriver, StartTLS
from netproto_twisted.mailstore.folder import MaildirFolder, MessageInfo
from netproto_twisted.mailstore.maildrop_lock import SESSION_LOCK_NAME
from netproto_twisted.pop3 import MaildirMaildrops, POP3Settings, State
from netproto_twisted.pop3.maildrop import read_cached
from tests.mailstore.helpers import ManualRunner

from .helpers import (
    MESSAGES,
    PASSWORD,
    USER,
    authenticator,
    driven,
    inline,
    maildir_files,
    make_maildir,
    password_file,
)

LOGIN = b"USER alice\r\nPASS correct horse\r\n"


class SessionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.base = os.path.join(self.dir, "mail")
        make_maildir(self.base)
        self.users = password_file(self.dir)
        self.clock = MemoryReactorClock()

    def session(self, **kwargs: object) -> tuple[object, ConnectionDriver]:
        conn, driver = driven(self.base, self.users, self.clock, **kwargs)  # type: ignore[arg-type]
        self.assertEqual(driver.take_output(), b"+OK pop.test POP3 server ready\r\n")
        return conn, driver

    def logged_in(self) -> tuple[object, ConnectionDriver]:
        conn, driver = self.session()
        out = driver.feed(LOGIN)
        self.assertEqual(out, b"+OK send PASS\r\n+OK maildrop has 3 messages (168 octets)\r\n")
        return conn, driver

    def test_greeting_has_no_apop_timestamp_and_apop_is_refused(self) -> None:
        _, driver = self.session()
        self.assertEqual(driver.feed(b"APOP alice 0123\r\n"), b"-ERR APOP not available\r\n")

    def test_capa_in_authorization_is_honest(self) -> None:
        _, driver = self.session()
        lines = driver.feed(b"CAPA\r\n").split(b"\r\n")
        self.assertEqual(lines[0], b"+OK Capability list follows")
        self.assertEqual(lines[-2:], [b".", b""])
        caps = set(lines[1:-2])
        for keyword in (
            b"TOP",
            b"UIDL",
            b"RESP-CODES",
            b"AUTH-RESP-CODE",
            b"PIPELINING",
            b"UTF8",
            b"EXPIRE NEVER",
            b"LOGIN-DELAY 0",
            b"USER",
        ):
            self.assertIn(keyword, caps)
        self.assertIn(b"SASL SCRAM-SHA-256 PLAIN LOGIN", caps)  # no CRAM-MD5 secret stored
        self.assertNotIn(b"STLS", caps)  # no TLS configured
        self.assertTrue(any(c.startswith(b"IMPLEMENTATION ") for c in caps))

    def test_no_plaintext_before_tls_for_remote_peers(self) -> None:
        _, driver = self.session(loopback=False, tls=object())
        caps = driver.feed(b"CAPA\r\n")
        self.assertIn(b"STLS\r\n", caps)
        self.assertNotIn(b"USER\r\n", caps)
        self.assertNotIn(b"SASL", caps)
        self.assertEqual(
            driver.feed(b"USER alice\r\n"), b"-ERR plaintext login needs TLS first (STLS)\r\n"
        )
        self.assertEqual(
            driver.feed(b"AUTH PLAIN\r\n"), b"-ERR authentication needs TLS first (STLS)\r\n"
        )
        self.assertEqual(driver.feed(b"STLS\r\n"), b"+OK Begin TLS negotiation\r\n")
        self.assertIsInstance(driver.actions[-1], StartTLS)
        caps = driver.feed(b"CAPA\r\n")
        self.assertIn(b"USER\r\n", caps)
        self.assertNotIn(b"STLS", caps)
        self.assertEqual(driver.feed(b"STLS\r\n"), b"-ERR TLS already active\r\n")
        self.assertIn(b"+OK maildrop has 3", driver.feed(LOGIN))

    def test_plaintext_pipelined_after_stls_is_discarded(self) -> None:
        _, driver = self.session(loopback=False, tls=object())
        out = driver.feed(b"STLS\r\nUSER alice\r\nPASS correct horse\r\n")
        self.assertEqual(out, b"+OK Begin TLS negotiation\r\n")  # nothing answered in clear
        self.assertIsInstance(driver.actions[-1], StartTLS)
        self.assertIn(b"+OK maildrop has 3", driver.feed(LOGIN))  # what comes under TLS

    def test_loopback_without_allow_insecure_is_refused_too(self) -> None:
        _, driver = self.session(allow_insecure=False, settings=POP3Settings(hostname="pop.test"))
        self.assertIn(b"-ERR plaintext login needs TLS", driver.feed(b"USER alice\r\n"))

    def test_transaction_commands(self) -> None:
        _, driver = self.logged_in()
        self.assertEqual(driver.feed(b"STAT\r\n"), b"+OK 3 168\r\n")
        self.assertEqual(
            driver.feed(b"LIST\r\n"),
            b"+OK maildrop has 3 messages (168 octets)\r\n1 51\r\n2 71\r\n3 46\r\n.\r\n",
        )
        self.assertEqual(driver.feed(b"LIST 3\r\n"), b"+OK 3 46\r\n")
        self.assertEqual(driver.feed(b"LIST 4\r\n"), b"-ERR no message 4\r\n")
        self.assertEqual(driver.feed(b"LIST x\r\n"), b"-ERR invalid message number\r\n")
        uidl = driver.feed(b"UIDL\r\n").split(b"\r\n")
        self.assertEqual(len(uidl), 6)
        self.assertRegex(uidl[1].decode(), r"^1 00000001[0-9a-f]{8}$")
        self.assertEqual(driver.feed(b"NOOP\r\n"), b"+OK\r\n")

    def test_retr_is_dot_stuffed_crlf_and_sized_as_sent(self) -> None:
        _, driver = self.logged_in()
        out = driver.feed(b"RETR 3\r\n")  # stored with LF endings
        self.assertEqual(
            out,
            b"+OK 46 octets\r\nSubject: three\r\n\r\nstored with LF\r\n..dot\r\nlast\r\n.\r\n",
        )
        body = out.split(b"\r\n", 1)[1][: -len(b".\r\n")].replace(b"\r\n..", b"\r\n.")
        self.assertEqual(len(body), 46)
        self.assertEqual(
            driver.feed(b"RETR 2\r\n").split(b"\r\n", 1)[1],
            MESSAGES[1].replace(b"\r\n.", b"\r\n..") + b".\r\n",
        )

    def test_top(self) -> None:
        _, driver = self.logged_in()
        self.assertEqual(
            driver.feed(b"TOP 2 1\r\n"),
            b"+OK top of message follows\r\nFrom: carol@example.org\r\nSubject: two\r\n\r\n"
            b"..leading dot\r\n.\r\n",
        )
        self.assertEqual(
            driver.feed(b"TOP 2\r\n"), b"-ERR TOP needs a message number and a line count\r\n"
        )

    def test_deletion_only_after_quit(self) -> None:
        conn, driver = self.logged_in()
        before = maildir_files(self.base)
        self.assertEqual(
            driver.feed(b"DELE 1\r\nDELE 1\r\n"),
            b"+OK message 1 deleted\r\n-ERR message 1 already deleted\r\n",
        )
        self.assertEqual(driver.feed(b"RETR 1\r\n"), b"-ERR message 1 already deleted\r\n")
        self.assertEqual(driver.feed(b"STAT\r\n"), b"+OK 2 117\r\n")
        self.assertNotIn(b"\r\n1 ", driver.feed(b"LIST\r\n"))
        self.assertEqual(maildir_files(self.base), before)
        self.assertEqual(driver.feed(b"RSET\r\n"), b"+OK maildrop has 3 messages (168 octets)\r\n")
        driver.feed(b"DELE 2\r\n")
        self.assertEqual(maildir_files(self.base), before)
        self.assertEqual(
            driver.feed(b"QUIT\r\n"), b"+OK signing off (1 messages deleted, 2 left)\r\n"
        )
        self.assertTrue(driver.closed)
        self.assertEqual(len(maildir_files(self.base)), 2)
        self.assertIs(conn.state, State.UPDATE)  # type: ignore[attr-defined]
        self.assertFalse(os.path.exists(os.path.join(self.base, USER, SESSION_LOCK_NAME)))

    def test_dropped_connection_deletes_nothing_and_unlocks(self) -> None:
        conn, driver = self.logged_in()
        lock = os.path.join(self.base, USER, SESSION_LOCK_NAME)
        self.assertTrue(os.path.exists(lock))
        driver.feed(b"DELE 1\r\nDELE 2\r\n")
        conn.connection_lost()  # type: ignore[attr-defined]
        self.assertEqual(len(maildir_files(self.base)), 3)
        self.assertFalse(os.path.exists(lock))

    def test_autologout_deletes_nothing(self) -> None:
        conn, driver = self.logged_in()
        driver.feed(b"DELE 1\r\n")
        conn.timeout()  # type: ignore[attr-defined]
        driver.feed(b"")  # the driver collects the reply and the close
        self.assertTrue(driver.closed)
        conn.connection_lost()  # type: ignore[attr-defined]
        self.assertEqual(len(maildir_files(self.base)), 3)

    def test_second_session_gets_in_use(self) -> None:
        _, first = self.logged_in()
        _, second = self.session()
        self.assertEqual(
            second.feed(LOGIN),
            b"+OK send PASS\r\n-ERR [IN-USE] maildrop already locked by another session\r\n",
        )
        first.feed(b"QUIT\r\n")
        self.assertIn(b"+OK maildrop has 3", second.feed(LOGIN))

    def test_snapshot_at_login(self) -> None:
        _, driver = self.logged_in()
        make_maildir(self.base, [b"Subject: late\r\n\r\nx\r\n"])
        self.assertEqual(driver.feed(b"STAT\r\n"), b"+OK 3 168\r\n")
        driver.feed(b"QUIT\r\n")
        _, again = self.session()
        self.assertIn(b"+OK maildrop has 4 messages", again.feed(LOGIN))

    def test_wrong_password_gets_auth_code_after_the_penalty(self) -> None:
        _, driver = self.session()
        self.assertEqual(driver.feed(b"USER alice\r\nPASS nope\r\n"), b"+OK send PASS\r\n")
        self.clock.advance(1.0)
        self.assertEqual(driver.take_output(), b"-ERR [AUTH] authentication failed\r\n")
        self.assertEqual(driver.feed(b"PASS correct horse\r\n"), b"-ERR USER first\r\n")

    def test_too_many_failures_disconnect(self) -> None:
        _, driver = self.session()
        for _ in range(5):
            driver.feed(b"USER alice\r\nPASS nope\r\n")
            self.clock.advance(60)
        self.assertTrue(driver.closed)
        self.assertTrue(
            driver.take_output().endswith(
                b"-ERR [AUTH] authentication failed\r\n-ERR too many failed logins, closing\r\n"
            )
        )

    def test_auth_plain_with_initial_response(self) -> None:
        _, driver = self.session()
        token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())
        self.assertEqual(
            driver.feed(b"AUTH PLAIN " + token + b"\r\n"),
            b"+OK maildrop has 3 messages (168 octets)\r\n",
        )

    def test_auth_plain_with_challenge_and_cancel(self) -> None:
        _, driver = self.session()
        self.assertEqual(driver.feed(b"AUTH PLAIN\r\n"), b"+ \r\n")
        self.assertEqual(driver.feed(b"*\r\n"), b"-ERR authentication cancelled\r\n")
        self.assertEqual(driver.feed(b"AUTH PLAIN\r\n"), b"+ \r\n")
        token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())
        self.assertIn(b"+OK maildrop has 3", driver.feed(token + b"\r\n"))

    def test_auth_lists_mechanisms_and_refuses_unknown(self) -> None:
        _, driver = self.session()
        self.assertEqual(
            driver.feed(b"AUTH\r\n"),
            b"+OK SASL mechanisms follow\r\nSCRAM-SHA-256\r\nPLAIN\r\nLOGIN\r\n.\r\n",
        )
        self.assertEqual(driver.feed(b"AUTH CRAM-MD5\r\n"), b"-ERR mechanism not available\r\n")

    def test_bad_input_gets_err_and_the_session_goes_on(self) -> None:
        _, driver = self.session()
        junk = b"\x00\x01\xfe\xff junk\r\n"
        self.assertEqual(driver.feed(junk), b"-ERR command is not UTF-8\r\n")
        self.assertEqual(driver.feed(b"XYZZY\r\n"), b"-ERR unknown command\r\n")
        self.assertEqual(driver.feed(b"STAT\r\n"), b"-ERR command not valid in this state\r\n")
        self.assertEqual(driver.feed(b"\r\n"), b"-ERR empty command\r\n")
        self.assertEqual(driver.feed(b"A" * 3000 + b"\r\n"), b"-ERR line too long\r\n")
        self.assertEqual(driver.feed(b"NOOP\r\n"), b"-ERR command not valid in this state\r\n")
        self.assertIn(b"+OK maildrop has 3", driver.feed(LOGIN))
        self.assertFalse(driver.closed)

    def test_too_many_errors_close(self) -> None:
        _, driver = self.session()
        out = driver.feed(b"BAD\r\n" * 25)
        self.assertTrue(out.endswith(b"-ERR too many errors, closing\r\n"))
        self.assertEqual(out.count(b"-ERR unknown command"), 19)
        self.assertTrue(driver.closed)

    def test_pipelined_commands_answered_in_order(self) -> None:
        _, driver = self.session()
        out = driver.feed(LOGIN + b"STAT\r\nRETR 1\r\nDELE 1\r\nLIST 1\r\nQUIT\r\n")
        self.assertEqual(
            out,
            b"+OK send PASS\r\n+OK maildrop has 3 messages (168 octets)\r\n+OK 3 168\r\n"
            b"+OK 51 octets\r\n" + MESSAGES[0] + b".\r\n+OK message 1 deleted\r\n"
            b"-ERR message 1 already deleted\r\n+OK signing off (1 messages deleted, 2 left)\r\n",
        )

    def test_empty_maildrop_of_a_new_user(self) -> None:
        _, driver = self.session()
        out = driver.feed(b"USER bob\r\nPASS bob's password\r\nSTAT\r\nLIST\r\n")
        self.assertEqual(
            out,
            b"+OK send PASS\r\n+OK maildrop has 0 messages (0 octets)\r\n"
            b"+OK 0 0\r\n+OK maildrop has 0 messages (0 octets)\r\n.\r\n",
        )

    def test_connection_lost_while_the_maildrop_opens_releases_its_lock(self) -> None:
        runner = ManualRunner()
        conn, driver = self.session(maildrop_runner=runner)
        self.assertEqual(driver.feed(LOGIN), b"+OK send PASS\r\n")  # the open is queued
        conn.connection_lost()  # type: ignore[attr-defined]
        runner.run_all()  # the open locks, then sees nobody is left and unlocks
        self.assertFalse(os.path.exists(os.path.join(self.base, USER, SESSION_LOCK_NAME)))
        _, again = self.session()
        self.assertIn(b"+OK maildrop has 3", again.feed(LOGIN))

    def test_connection_lost_while_retr_opens_the_file(self) -> None:
        runner = ManualRunner()
        conn, driver = self.session(maildrop_runner=runner)
        driver.feed(LOGIN)
        runner.run_next()  # the open and snapshot
        self.assertIn(b"+OK maildrop has 3", driver.take_output())
        driver.feed(b"RETR 1\r\n")
        conn.connection_lost()  # type: ignore[attr-defined]
        runner.run_all()  # the file opened late is closed; the lock released
        self.assertFalse(os.path.exists(os.path.join(self.base, USER, SESSION_LOCK_NAME)))
        self.assertEqual(len(maildir_files(self.base)), 3)

    def test_a_check_waiting_its_turn_leaves_the_queue_when_the_connection_goes(self) -> None:
        shared = authenticator(self.users, self.clock)  # one per listener, as in production
        _, first = self.session(shared=shared)
        first.feed(b"USER alice\r\nPASS nope\r\n")  # refused, held for its 1 s penalty
        second, driver = self.session(shared=shared)
        driver.feed(b"USER alice\r\nPASS correct horse\r\n")  # waits its turn
        delay = second.authenticator.login_delay  # type: ignore[attr-defined]
        self.assertEqual(delay.busy_addresses, 1)  # its check is due when the penalty ends
        second.connection_lost()  # type: ignore[attr-defined]
        self.assertEqual(delay.busy_addresses, 0)
        self.clock.advance(1.0)
        self.assertEqual(first.take_output(), b"-ERR [AUTH] authentication failed\r\n")


class MaildropTests(SynchronousTestCase):
    def test_sizes_counted_once_and_from_the_virtual_size_field(self) -> None:
        base = self.mktemp()
        make_maildir(base)
        new = os.path.join(base, USER, "new")
        for name in os.listdir(new):  # as another program (or an older version) names them
            os.rename(os.path.join(new, name), os.path.join(new, re.sub(r",W=\d+", "", name)))
        opened: list[str] = []
        maildrops = MaildirMaildrops(base, inline)
        original = MaildirFolder.open_stored

        def counting(folder: MaildirFolder, info: MessageInfo) -> BinaryIO:
            opened.append(info.base)
            return original(folder, info)

        self.patch(MaildirFolder, "open_stored", counting)
        drop = self.successResultOf(maildrops.open(USER))
        self.assertEqual([m.size for m in drop.messages], [51, 71, 46])
        self.assertEqual(len(opened), 3)
        self.successResultOf(drop.release())
        os.rename(os.path.join(new, os.listdir(new)[0]), os.path.join(new, "1.M1P1.host,W=99"))
        again = self.successResultOf(maildrops.open(USER))
        self.assertEqual(len(opened), 3)  # nothing read again
        self.assertIn(99, [m.size for m in again.messages])
        self.successResultOf(again.release())

    def test_small_messages_read_from_the_page_cache_large_ones_streamed(self) -> None:
        base = self.mktemp()
        big = b"Subject: big\r\n\r\n" + b".x" * 100_000 + b"\r\n"
        make_maildir(base, [MESSAGES[0], big])
        maildrops = MaildirMaildrops(base, inline)
        drop = self.successResultOf(maildrops.open(USER))
        small, large = drop.messages
        with self.successResultOf(drop.open_message(small)) as f:
            self.assertIsInstance(f, io.BytesIO)
            self.assertEqual(f.read(), MESSAGES[0])
        with self.successResultOf(drop.open_message(large)) as f:
            self.assertNotIsInstance(f, io.BytesIO)  # a real file, read block by block
            self.assertEqual(f.read(), big)
        self.successResultOf(drop.release())

    def test_read_cached_never_waits_for_the_disk(self) -> None:
        path = os.path.join(self.mktemp())
        with open(path, "wb") as f:
            f.write(b"cached")
        if getattr(os, "RWF_NOWAIT", None) is None:
            raise self.skipTest("no RWF_NOWAIT on this platform")
        self.assertEqual(read_cached(path), b"cached")
        self.assertIsNone(read_cached(path, limit=6))  # not smaller than the limit
        self.assertIsNone(read_cached(path + ".gone"))

        def not_cached(*args: object) -> int:
            raise BlockingIOError("would block")

        self.patch(os, "preadv", not_cached)
        self.assertIsNone(read_cached(path))
        # The maildrop then reads in the thread pool (inline here), with the same result.
        base = self.mktemp()
        make_maildir(base, [MESSAGES[1]])
        drop = self.successResultOf(MaildirMaildrops(base, inline).open(USER))
        with self.successResultOf(drop.open_message(drop.messages[0])) as f:
            self.assertEqual(f.read(), MESSAGES[1])
        self.successResultOf(drop.release())


class LargeMessageTests(SynchronousTestCase):
    def test_retr_and_top_of_a_message_larger_than_a_block(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        base = os.path.join(directory, "mail")
        lines = [b"line %d" % i for i in range(20_000)] + [b".dot", b"..two"]
        big = b"Subject: big\n\n" + b"\n".join(lines) + b"\n"  # stored with LF
        make_maildir(base, [big])
        _, driver = driven(base, password_file(directory), MemoryReactorClock())
        driver.feed(LOGIN)
        driver.take_output()
        out = driver.feed(b"LIST 1\r\nRETR 1\r\nTOP 1 2\r\nNOOP\r\n")
        expected = big.replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..")
        size = len(big.replace(b"\n", b"\r\n"))
        self.assertEqual(
            out,
            b"+OK 1 %d\r\n+OK %d octets\r\n" % (size, size)
            + expected
            + b".\r\n+OK top of message follows\r\nSubject: big\r\n\r\nline 0\r\nline 1\r\n.\r\n"
            b"+OK\r\n",
        )

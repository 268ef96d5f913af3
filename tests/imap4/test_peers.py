"""Real peers against our IMAP server over loopback: imaplib and imapclient (in threads), curl."""

from __future__ import annotations

import imaplib
import os
import shutil
import ssl
import subprocess
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from .loopback import PASSWORD, USER, LoopbackServer, deliver, password_file

try:
    import imapclient
except ImportError:  # pragma: no cover
    imapclient = None

CURL = shutil.which("curl")
MESSAGE = (
    b"From: Bob Example <bob@example.org>\r\nTo: alice@example.org\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?= report\r\nMessage-ID: <m1@example.org>\r\n"
    b"Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\nhello world\r\n"
)
MULTIPART = (
    b"From: carol@example.org\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="xx"\r\n\r\npreamble\r\n--xx\r\n'
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nfirst part\r\n--xx\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"AAECAw==\r\n--xx--\r\n"
)


class Base(TestCase):
    implicit = False

    def setUp(self) -> Any:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.base = os.path.join(self.dir, "mail")
        self.server = LoopbackServer(
            self.dir, self.base, password_file(self.dir), implicit=self.implicit
        )
        self.addCleanup(self.server.stop)
        return deliver(self.server.store, USER, MESSAGE).addCallback(
            lambda _: deliver(self.server.store, USER, MULTIPART)
        )

    def imap(self) -> imaplib.IMAP4:
        c = imaplib.IMAP4("127.0.0.1", self.server.number, timeout=30)
        c.login(USER, PASSWORD)
        return c


class ImaplibTests(Base):
    async def test_full_session(self) -> None:
        def session() -> dict[str, Any]:
            c = self.imap()
            seen: dict[str, Any] = {}
            seen["select"] = c.select("INBOX")
            seen["fetch"] = c.fetch("1:*", "(UID FLAGS RFC822.SIZE ENVELOPE)")
            seen["structure"] = c.fetch(
                "2", "(BODYSTRUCTURE BODY.PEEK[1] BINARY.PEEK[2] BODY.PEEK[2.MIME])"
            )
            seen["partial"] = c.fetch("1", "(BODY.PEEK[TEXT]<0.5>)")
            seen["flags_untouched"] = c.fetch("1:2", "(FLAGS)")
            seen["body_sets_seen"] = c.fetch("1", "(BODY[TEXT])")
            seen["search"] = c.search("UTF-8", "SUBJECT", '"café"'.encode())
            seen["search_or"] = c.search(None, "OR", "FROM", "carol", "LARGER", "100000")
            seen["uid_search"] = c.uid("SEARCH", "HEADER", "Message-ID", "m1@")
            seen["store"] = c.store("2", "+FLAGS", "(\\Flagged $Label1)")
            seen["create"] = c.create("Archive.2026")
            seen["copy"] = c.copy("1:2", "Archive.2026")
            seen["move"] = c.uid("MOVE", "1", "Archive.2026")
            seen["list"] = c.list()
            seen["status"] = c.status("Archive.2026", "(MESSAGES UIDNEXT UNSEEN)")
            seen["append"] = c.append(
                "Archive.2026", "(\\Draft)", None, b"Subject: x\r\n\r\ny\r\n"
            )
            seen["rename"] = c.rename("Archive.2026", "Old")
            seen["lsub"] = (c.subscribe("Old"), c.lsub())
            seen["delete_inbox"] = c.delete("INBOX")
            seen["expunge"] = (c.store("1", "+FLAGS", "\\Deleted"), c.expunge())
            seen["close"] = c.close()
            seen["logout"] = c.logout()
            return seen

        seen = await deferToThread(session)
        self.assertEqual(seen["select"], ("OK", [b"2"]))
        typ, data = seen["fetch"]
        self.assertEqual(typ, "OK")
        first = data[0]
        self.assertIn(b"UID 1 FLAGS (\\Recent) RFC822.SIZE %d" % len(MESSAGE), first)
        self.assertIn(
            b'"=?utf-8?q?caf=C3=A9?= report" (("Bob Example" NIL "bob" "example.org"))', first
        )
        structure = seen["structure"][1]
        self.assertIn(b'("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 10 0', structure[0][0])
        self.assertIn(b'"MIXED" ("BOUNDARY" "xx")', structure[0][0])
        self.assertEqual(structure[0][1], b"first part")
        self.assertEqual(structure[1][1], b"\x00\x01\x02\x03")
        self.assertIn(b"Content-Transfer-Encoding: base64", structure[2][1])
        self.assertEqual(seen["partial"][1][0][1], b"hello")
        self.assertEqual(
            seen["flags_untouched"][1], [b"1 (FLAGS (\\Recent))", b"2 (FLAGS (\\Recent))"]
        )
        self.assertIn(b"FLAGS (\\Seen \\Recent)", seen["body_sets_seen"][1][1])
        self.assertEqual(seen["search"], ("OK", [b"1"]))
        self.assertEqual(seen["search_or"], ("OK", [b"2"]))
        self.assertEqual(seen["uid_search"], ("OK", [b"1"]))
        self.assertEqual(seen["store"], ("OK", [b"2 (FLAGS ($Label1 \\Flagged \\Recent))"]))
        self.assertIn(b"[COPYUID", seen["copy"][1][0])
        self.assertEqual(seen["move"][0], "OK")
        self.assertIn(b'(\\HasNoChildren) "." "Archive.2026"', seen["list"][1])
        self.assertIn(b'(\\Noselect \\HasChildren) "." "Archive"', seen["list"][1])
        self.assertEqual(
            seen["status"], ("OK", [b'"Archive.2026" (MESSAGES 3 UIDNEXT 4 UNSEEN 1)'])
        )
        self.assertIn(b"[APPENDUID ", seen["append"][1][0])
        self.assertEqual(seen["rename"][0], "OK")
        self.assertEqual(seen["lsub"][1], ("OK", [b'() "." "Old"']))
        self.assertEqual(seen["delete_inbox"][0], "NO")
        self.assertEqual(seen["expunge"][1], ("OK", [b"1", b"1"]))  # MOVE's EXPUNGE, then this one
        self.assertEqual(seen["logout"][0], "BYE")

    async def test_starttls_then_login(self) -> None:
        server = LoopbackServer(self.dir, self.base, password_file(self.dir), allow_insecure=False)
        self.addCleanup(server.stop)

        def session() -> tuple[Any, ...]:
            c = imaplib.IMAP4("127.0.0.1", server.number, timeout=30)
            before = c.capabilities
            try:
                c.login(USER, PASSWORD)
                refused = None
            except imaplib.IMAP4.error as e:
                refused = str(e)
            context = ssl.create_default_context(cafile=str(server.cert))
            c.starttls(context)
            after = c._get_capabilities() or c.capabilities
            ok = c.login(USER, PASSWORD)
            c.logout()
            return before, refused, after, ok

        before, refused, after, ok = await deferToThread(session)
        self.assertIn("LOGINDISABLED", before)
        self.assertIn("STARTTLS", before)
        self.assertNotIn("AUTH=PLAIN", before)
        self.assertIn("PRIVACYREQUIRED", refused)
        self.assertIn("AUTH=PLAIN", after)
        self.assertEqual(ok[0], "OK")

    async def test_authenticate_plain_sasl_ir(self) -> None:
        def session() -> Any:
            c = imaplib.IMAP4("127.0.0.1", self.server.number, timeout=30)
            typ, data = c.authenticate("PLAIN", lambda _: f"\0{USER}\0{PASSWORD}".encode())
            c.logout()
            return typ, data

        typ, _data = await deferToThread(session)
        self.assertEqual(typ, "OK")


class ImplicitTLSTests(Base):
    implicit = True

    async def test_imap4_ssl(self) -> None:
        def session() -> Any:
            context = ssl.create_default_context(cafile=str(self.server.cert))
            c = imaplib.IMAP4_SSL("127.0.0.1", self.server.number, ssl_context=context, timeout=30)
            c.login(USER, PASSWORD)
            result = c.select("INBOX", readonly=True)
            c.logout()
            return result

        self.assertEqual(await deferToThread(session), ("OK", [b"2"]))


class ImapclientTests(Base):
    def setUp(self) -> Any:
        if imapclient is None:
            raise self.skipTest("imapclient is not installed (pip install imapclient)")
        return super().setUp()

    def client(self) -> Any:
        c = imapclient.IMAPClient("127.0.0.1", port=self.server.number, ssl=False, timeout=30)
        c.login(USER, PASSWORD)
        return c

    async def test_fetch_parsed_and_folders(self) -> None:
        def session() -> dict[str, Any]:
            c = self.client()
            seen: dict[str, Any] = {"caps": c.capabilities()}
            seen["select"] = c.select_folder("INBOX")
            seen["fetch"] = c.fetch([1, 2], ["ENVELOPE", "FLAGS", "RFC822.SIZE", "BODYSTRUCTURE"])
            seen["search"] = c.search(["FROM", "bob"])
            c.add_flags([1], [b"\\Answered"])
            seen["flags"] = c.get_flags([1])
            c.create_folder("Entwürfe")
            seen["folders"] = c.list_folders()
            seen["ns"] = c.namespace()
            seen["id"] = c.id_({"name": "imapclient"})
            c.logout()
            return seen

        seen = await deferToThread(session)
        self.assertIn(b"IDLE", seen["caps"])
        self.assertEqual(seen["select"][b"UIDVALIDITY"] > 0, True)
        env = seen["fetch"][1][b"ENVELOPE"]
        self.assertEqual(env.from_[0].mailbox, b"bob")
        self.assertEqual(env.message_id, b"<m1@example.org>")
        self.assertEqual(seen["fetch"][1][b"RFC822.SIZE"], len(MESSAGE))
        self.assertTrue(seen["fetch"][2][b"BODYSTRUCTURE"].is_multipart)
        self.assertEqual(seen["search"], [1])
        self.assertEqual(seen["flags"], {1: (b"\\Answered", b"\\Recent")})
        self.assertIn("Entwürfe", [f[2] for f in seen["folders"]])
        self.assertEqual(seen["ns"].personal, (("", "."),))
        self.assertIn(b"netproto_twisted", repr(seen["id"]).encode())

    async def test_idle_wakes_on_delivery(self) -> None:
        store = self.server.store
        from twisted.internet import reactor

        def session() -> Any:
            c = self.client()
            c.select_folder("INBOX")
            c.idle()
            reactor.callFromThread(deliver, store, USER, b"Subject: new\r\n\r\nnew mail\r\n")
            responses = c.idle_check(timeout=10)
            c.idle_done()
            c.logout()
            return responses

        responses = await deferToThread(session)
        self.assertIn((3, b"EXISTS"), responses)

    async def test_two_sessions_see_each_other(self) -> None:
        def session() -> Any:
            a, b = self.client(), self.client()
            a.select_folder("INBOX")
            b.select_folder("INBOX")
            a.add_flags([2], [b"\\Flagged"])
            a.delete_messages([1])
            a.expunge()
            b.idle()
            changes = b.idle_check(timeout=1)
            changes += b.idle_done()[1]
            noop = b.noop()
            a.logout()
            b.logout()
            return changes, noop

        changes, noop = await deferToThread(session)
        seen = changes + noop[1]
        self.assertIn((1, b"EXPUNGE"), seen)
        self.assertTrue(any(r[1] == b"FETCH" and "Flagged" in repr(r[2]) for r in seen), seen)


class CurlTests(Base):
    async def test_curl_imap_url(self) -> None:
        if CURL is None:
            raise self.skipTest("curl is not installed (apt-get install curl)")
        url = f"imap://127.0.0.1:{self.server.number}/INBOX;UID=1"

        def run() -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(
                [CURL, "-s", "-S", "--max-time", "20", "--user", f"{USER}:{PASSWORD}", url],
                capture_output=True, check=False,
            )  # fmt: skip

        result = await deferToThread(run)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, MESSAGE)

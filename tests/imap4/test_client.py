"""Our IMAP client against our server and against Dovecot; one Maildir served by both."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from netproto_twisted.imap4.client import IMAPClient, connect_imap
from netproto_twisted.imap4.errors import IMAPReplyError
from netproto_twisted.imap4.wire import BodyStructure, Envelope
from tests.dovecot import Dovecot, missing

from .loopback import PASSWORD, USER, LoopbackServer, deliver, password_file
from .test_peers import MESSAGE, MULTIPART


def _trust(cert: Any) -> Any:
    from twisted.internet.ssl import Certificate, optionsForClientTLS

    with open(cert, "rb") as f:
        authority = Certificate.loadPEM(f.read())
    return optionsForClientTLS("localhost", trustRoot=authority)


class ClientAgainstOurServerTests(TestCase):
    def setUp(self) -> Deferred[Any]:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.base = os.path.join(self.dir, "mail")
        self.server = LoopbackServer(
            self.dir, self.base, password_file(self.dir), allow_insecure=False
        )
        self.addCleanup(self.server.stop)
        d = deliver(self.server.store, USER, MESSAGE)
        return d.addCallback(lambda _: deliver(self.server.store, USER, MULTIPART))

    async def connect(self, **kw: Any) -> IMAPClient:
        client = await connect_imap(
            reactor, "127.0.0.1", self.server.number, tls_options=_trust(self.server.cert),
            username=USER, password=PASSWORD, **kw,
        )  # fmt: skip
        self.addCleanup(lambda: client.protocol.lose())
        return client

    async def test_every_command_parsed(self) -> None:
        c = await self.connect()
        self.assertTrue(c.is_secure)
        self.assertIn("IDLE", c.capabilities)
        info = await c.select("INBOX")
        self.assertEqual((info.exists, info.recent, info.read_only), (2, 2, False))
        fetched = await c.fetch(
            "1:*", ["UID", "FLAGS", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "INTERNALDATE"]
        )
        env = fetched[1]["ENVELOPE"]
        self.assertIsInstance(env, Envelope)
        self.assertEqual(str(env.from_[0]), "bob@example.org")
        self.assertEqual(fetched[1]["RFC822.SIZE"], len(MESSAGE))
        body = fetched[2]["BODYSTRUCTURE"]
        self.assertIsInstance(body, BodyStructure)
        self.assertEqual([p.type for p in body.parts], ["text", "application"])
        whole = await c.fetch(2, ["BODY.PEEK[]"])
        self.assertEqual(whole[2]["BODY[]"], MULTIPART)
        self.assertEqual(await c.search("FROM", "carol"), [2])
        self.assertEqual(await c.search("SUBJECT", "café", charset="UTF-8"), [1])
        es = await c.search("ALL", uid=True, returns=["MIN", "MAX", "COUNT"])
        self.assertEqual((es["min"], es["max"], es["count"], es["uid"]), (1, 2, 2, True))
        stored = await c.store([1], ["\\Flagged", "$Work"], uid=True)
        self.assertEqual(set(stored[1]["FLAGS"]), {"\\Flagged", "$Work", "\\Recent"})
        await c.create("Projekte.Ärger")
        appended = await c.append(
            "Projekte.Ärger", b"Subject: lit\r\n\r\n{5}\r\nx\r\n", ["\\Seen"]
        )
        assert appended is not None
        names = [e.name for e in await c.list()]
        self.assertIn("Projekte.Ärger", names)
        self.assertEqual((await c.status("Projekte.Ärger"))["MESSAGES"], 1)
        copied = await c.copy([1, 2], "Projekte.Ärger")
        self.assertEqual(copied[2], "2:3")
        moved = await c.move([2], "Projekte.Ärger", uid=True)
        self.assertIsNotNone(moved)
        self.assertEqual((await c.select("INBOX")).exists, 1)
        await c.store(1, ["\\Deleted"])
        self.assertEqual(await c.expunge(), [1])
        with self.assertRaises(IMAPReplyError) as e:
            await c.select("Nowhere")
        self.assertEqual(e.exception.status, "NO")
        self.assertEqual((await c.id({"name": "test"}))["name"], "netproto_twisted")
        await c.logout()

    async def test_idle_stream(self) -> None:
        c = await self.connect()
        await c.select("INBOX")
        session = c.idle()
        await deliver(self.server.store, USER, b"Subject: three\r\n\r\nx\r\n")
        update = await session.next()
        self.assertEqual((update.kind, update.number), ("EXISTS", 3))
        await session.done()
        await c.logout()

    async def test_scram_over_implicit_tls(self) -> None:
        server = LoopbackServer(self.dir, self.base, password_file(self.dir), implicit=True)
        self.addCleanup(server.stop)
        c = await connect_imap(
            reactor, "127.0.0.1", server.number, tls="implicit", tls_options=_trust(server.cert),
            username=USER, password=PASSWORD, mechanism="SCRAM-SHA-256",
        )  # fmt: skip
        self.addCleanup(lambda: c.protocol.lose())
        self.assertEqual((await c.examine()).exists, 2)
        await c.logout()

    async def test_refused_login(self) -> None:
        with self.assertRaises(IMAPReplyError) as e:
            await connect_imap(
                reactor, "127.0.0.1", self.server.number, tls_options=_trust(self.server.cert),
                username=USER, password="wrong",
            )  # fmt: skip
        self.assertEqual(e.exception.response_code, "AUTHENTICATIONFAILED")


class DovecotTests(TestCase):
    skip = missing("imap")

    def setUp(self) -> Deferred[Any]:
        self.dir = tempfile.mkdtemp(prefix="dvi")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.base = os.path.join(self.dir, "mail")
        self.ours = LoopbackServer(self.dir, self.base, password_file(self.dir))
        self.addCleanup(self.ours.stop)
        d = deliver(self.ours.store, USER, MESSAGE)
        return d.addCallback(lambda _: deliver(self.ours.store, USER, MULTIPART))

    def dovecot(self) -> Dovecot:
        dovecot = Dovecot(self.base, {USER: PASSWORD}, ("imap",))
        self.addCleanup(dovecot.cleanup)
        dovecot.start()
        return dovecot

    async def open(self, port: int) -> IMAPClient:
        c = await connect_imap(
            reactor, "127.0.0.1", port, tls="none", username=USER, password=PASSWORD
        )
        self.addCleanup(lambda: c.protocol.lose())
        return c

    async def test_our_client_against_dovecot(self) -> None:
        dovecot = self.dovecot()
        c = await self.open(dovecot.ports["imap"])
        info = await c.select("INBOX")
        self.assertEqual(info.exists, 2)
        fetched = await c.fetch(
            "1:*", ["UID", "FLAGS", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "BODY.PEEK[]"]
        )
        self.assertEqual(fetched[1]["BODY[]"], MESSAGE)
        self.assertEqual(fetched[1]["ENVELOPE"].subject, b"=?utf-8?q?caf=C3=A9?= report")
        self.assertTrue(fetched[2]["BODYSTRUCTURE"].is_multipart)
        self.assertEqual(await c.search("FROM", "carol"), [2])
        await c.create("Work")
        self.assertEqual(
            await c.append("Work", b"Subject: w\r\n\r\nw\r\n", ["\\Seen"]) is not None, True
        )
        session = c.idle()
        other = await self.open(dovecot.ports["imap"])
        await other.append("INBOX", b"Subject: 3\r\n\r\n3\r\n")
        update = await session.next()
        self.assertEqual((update.kind, update.number), ("EXISTS", 3))
        await session.done()
        await c.logout()

    async def test_same_maildir_both_ways(self) -> None:
        # Ours first: flags and a keyword set through our server.
        ours = await self.open(self.ours.number)
        ours_info = await ours.select("INBOX")
        await ours.store([1], ["\\Answered", "$Project"], uid=True)
        await ours.logout()
        self.ours.factory.hub.stop()
        dovecot = self.dovecot()
        theirs = await self.open(dovecot.ports["imap"])
        their_info = await theirs.select("INBOX")
        self.assertEqual(their_info.uid_validity, ours_info.uid_validity)
        seen = await theirs.fetch("1:*", ["UID", "FLAGS"])
        self.assertEqual(seen[1]["UID"], 1)
        self.assertTrue({"\\Answered", "$Project"} <= set(seen[1]["FLAGS"]), seen)
        # Then Dovecot changes flags and adds a message; we must see the same.
        await theirs.store([2], ["\\Flagged", "$Later"], uid=True)
        await theirs.append("INBOX", b"Subject: from dovecot\r\n\r\nhi\r\n", ["\\Seen"])
        after = await theirs.fetch("1:*", ["UID", "FLAGS", "RFC822.SIZE"])
        await theirs.logout()
        dovecot.stop()
        dovecot.share_tree()
        ours = await self.open(self.ours.number)
        again = await ours.select("INBOX")
        self.assertEqual(again.uid_validity, ours_info.uid_validity)
        mine = await ours.fetch("1:*", ["UID", "FLAGS", "RFC822.SIZE"])

        def strip(d):
            return {
                k: (v["UID"], set(v["FLAGS"]) - {"\\Recent"}, v["RFC822.SIZE"])
                for k, v in d.items()
            }

        self.assertEqual(strip(mine), strip(after))
        await ours.logout()

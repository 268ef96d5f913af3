"""CONDSTORE/QRESYNC with real peers: imaplib and imapclient against our server; our client
against our server and against Dovecot (the same scenario for both)."""

from __future__ import annotations

import imaplib
import os
import shutil
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from netproto_twisted.imap4.client import IMAPClient, connect_imap
from tests.dovecot import Dovecot, missing

from .loopback import PASSWORD, USER, LoopbackServer, deliver, password_file
from .test_peers import MESSAGE, MULTIPART

try:
    import imapclient
except ImportError:  # pragma: no cover
    imapclient = None


class Base(TestCase):
    def setUp(self) -> Deferred[Any]:
        self.dir = tempfile.mkdtemp(prefix="dvq")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.base = os.path.join(self.dir, "mail")
        self.server = LoopbackServer(self.dir, self.base, password_file(self.dir))
        self.addCleanup(self.server.stop)
        d = deliver(self.server.store, USER, MESSAGE)
        d.addCallback(lambda _: deliver(self.server.store, USER, MULTIPART))
        return d.addCallback(
            lambda _: deliver(self.server.store, USER, b"Subject: 3\r\n\r\n3\r\n")
        )

    def imap(self) -> imaplib.IMAP4:
        c = imaplib.IMAP4("127.0.0.1", self.server.number, timeout=30)
        c.login(USER, PASSWORD)
        return c


class ImaplibTests(Base):
    async def test_condstore_with_imaplib(self) -> None:
        def session() -> dict[str, Any]:
            c = self.imap()
            seen: dict[str, Any] = {"enable": c.enable("CONDSTORE")}
            c.select("INBOX")
            seen["highest"] = int(c.response("HIGHESTMODSEQ")[1][0])
            top = seen["highest"]
            seen["store"] = c.store("2", "+FLAGS", "(\\Answered)")
            seen["changed"] = c.fetch("1:*", f"(FLAGS) (CHANGEDSINCE {top})")
            seen["conditional"] = c.store("1:2", f"(UNCHANGEDSINCE {top}) +FLAGS", "(\\Seen)")
            seen["search"] = c.search(None, "MODSEQ", str(top + 1))
            seen["status"] = c.status("INBOX", "(HIGHESTMODSEQ)")
            c.logout()
            return seen

        seen = await deferToThread(session)
        top = seen["highest"]
        self.assertEqual(seen["enable"], ("OK", [b"ENABLE completed"]))
        self.assertEqual(
            seen["store"], ("OK", [b"2 (FLAGS (\\Answered \\Recent) MODSEQ (%d))" % (top + 1)])
        )
        self.assertEqual(
            seen["changed"], ("OK", [b"2 (FLAGS (\\Answered \\Recent) MODSEQ (%d))" % (top + 1)])
        )
        typ, data = seen["conditional"]
        self.assertEqual(typ, "OK")
        self.assertEqual(data, [b"1 (FLAGS (\\Seen \\Recent) MODSEQ (%d))" % (top + 2)])
        # imaplib keeps the tagged text; the MODIFIED code names message 2.
        self.assertEqual(seen["search"], ("OK", [b"1 2 (MODSEQ %d)" % (top + 2)]))
        self.assertEqual(seen["status"], ("OK", [b'"INBOX" (HIGHESTMODSEQ %d)' % (top + 2)]))

    async def test_modified_code_with_imaplib(self) -> None:
        def session() -> Any:
            c = self.imap()
            c.select("INBOX")
            typ, data = c._simple_command(  # type: ignore[attr-defined]
                "STORE", "1:3", "(UNCHANGEDSINCE 0)", "+FLAGS", "(\\Seen)"
            )
            c.logout()
            return typ, data

        typ, data = await deferToThread(session)
        self.assertEqual(typ, "OK")
        self.assertEqual(data, [b"[MODIFIED 1:3] conditional STORE failed"])


class ImapclientTests(Base):
    skip = None if imapclient is not None else "imapclient is not installed"

    async def test_condstore_with_imapclient(self) -> None:
        def session() -> dict[str, Any]:
            c = imapclient.IMAPClient("127.0.0.1", port=self.server.number, ssl=False, timeout=30)
            c.login(USER, PASSWORD)
            seen: dict[str, Any] = {"caps": c.capabilities()}
            seen["enable"] = c.enable("CONDSTORE")
            info = c.select_folder("INBOX")
            seen["info"] = info
            top = info[b"HIGHESTMODSEQ"]
            c.add_flags([3], [b"$Work"])
            seen["changed"] = c.fetch([1, 2, 3], ["FLAGS"], modifiers=[f"CHANGEDSINCE {top}"])
            seen["search"] = c.search(["MODSEQ", top + 1])
            seen["readonly"] = c.select_folder("INBOX", readonly=True)
            c.logout()
            return seen

        seen = await deferToThread(session)
        self.assertIn(b"CONDSTORE", seen["caps"])
        self.assertIn(b"QRESYNC", seen["caps"])
        self.assertEqual(seen["enable"], [b"CONDSTORE"])
        top = seen["info"][b"HIGHESTMODSEQ"]
        self.assertEqual(list(seen["changed"]), [3])
        self.assertEqual(seen["changed"][3][b"MODSEQ"], (top + 1,))
        self.assertIn(b"$Work", seen["changed"][3][b"FLAGS"])
        self.assertEqual(list(seen["search"]), [3])
        self.assertEqual(seen["search"].modseq, top + 1)
        self.assertEqual(seen["readonly"][b"HIGHESTMODSEQ"], top + 1)


async def scenario(test: TestCase, port: int) -> dict[str, Any]:
    """CONDSTORE and QRESYNC as a client uses them; the same steps against any server."""

    async def connect() -> IMAPClient:
        c = await connect_imap(
            reactor, "127.0.0.1", port, tls="none", username=USER, password=PASSWORD
        )
        test.addCleanup(lambda: c.protocol.lose())
        return c

    out: dict[str, Any] = {}
    c = await connect()
    out["enabled"] = await c.enable("QRESYNC")
    info = await c.select("INBOX", condstore=True)
    assert info.highest_modseq is not None
    top = info.highest_modseq
    out["validity"] = info.uid_validity
    stored = await c.store_conditional([1], ["\\Seen"], top, uid=True)
    out["stored_modseq_grew"] = stored.fetched[1]["MODSEQ"] > top
    out["stored_modified"] = stored.modified
    refused = await c.store_conditional([1, 2], ["\\Flagged"], top, uid=True)
    out["refused"] = (refused.modified, sorted(refused.fetched))
    out["changed_since"] = sorted(await c.fetch("1:*", ["FLAGS"], uid=True, changed_since=top))
    # Another session expunges message 2 while this one is away.
    other = await connect()
    await other.select("INBOX")
    await other.store([2], ["\\Deleted"], uid=True)
    await other.expunge()
    await other.logout()
    changes = await c.fetch_changes("1:*", ["FLAGS"], top)
    # A server may still show a message expunged meanwhile (Dovecot does) or not (we do not).
    gone = {uid for a, b in changes.vanished for uid in range(a, b + 1)}
    out["fetch_changes"] = (changes.vanished, sorted(set(changes.fetched) - gone))
    await c.logout()
    again = await connect()
    await again.enable("QRESYNC")
    resync = await again.select("INBOX", qresync=(out["validity"], top))
    out["resync"] = (resync.vanished, sorted(resync.changed))
    out["resync_flags"] = "\\Seen" in resync.changed[1]["FLAGS"]
    known = await again.select("INBOX", qresync=(out["validity"], top), known_uids=[3])
    out["resync_known"] = known.vanished
    await again.logout()
    return out


EXPECTED = {
    "enabled": ("QRESYNC",),
    "stored_modseq_grew": True,
    "stored_modified": [],
    "refused": ([1], [2]),
    "changed_since": [1, 2],
    "fetch_changes": (((2, 2),), [1]),
    "resync": (((2, 2),), [1]),
    "resync_flags": True,
    "resync_known": (),
}


class OurClientTests(Base):
    async def test_scenario_against_our_server(self) -> None:
        out = await scenario(self, self.server.number)
        out.pop("validity")
        self.assertEqual(out, EXPECTED)


class DovecotTests(Base):
    skip = missing("imap")

    async def test_scenario_against_dovecot(self) -> None:
        self.server.factory.hub.stop()
        index = os.path.join(self.dir, "index")
        os.makedirs(index)
        dovecot = Dovecot(self.base, {USER: PASSWORD}, ("imap",), index=index + "/%u")
        if os.getuid() == 0:
            os.chown(index, dovecot.uid, dovecot.gid)
        self.addCleanup(dovecot.cleanup)
        dovecot.share_tree()
        dovecot.start()
        out = await scenario(self, dovecot.ports["imap"])
        out.pop("validity")
        self.assertEqual(out, EXPECTED)

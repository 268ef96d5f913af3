"""One Maildir served by Dovecot and by us: LF files, ``W=`` sizes and CRLF octets agree both ways.

We deliver (files stored with LF, named ``,S=<size>,W=<CRLF size>``);
Dovecot's IMAP server must report the sizes we named and serve the bytes we
serve, partial fetches and body structure line counts included.  Then
Dovecot appends (it stores LF too, with its own ``W=``) and we must serve
its messages as it does.  Our IMAP client reads both servers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from netproto_twisted.imap4.client import IMAPClient, connect_imap
from netproto_twisted.mailstore.filenames import parse_filename
from tests.dovecot import Dovecot, missing

from .loopback import PASSWORD, USER, LoopbackServer, deliver, password_file
from .test_peers import MULTIPART

OURS = [
    b"Subject: plain\r\n\r\nline\r\n.dot\r\n\r\nend\r\n",
    b"Subject: caf\xc3\xa9\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\xc3\xa9t\xc3\xa9\r\n",
    b"Subject: unfinished\r\n\r\nno final newline",
    MULTIPART,
    b"Subject: nested\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n--o\r\n'
    b"Content-Type: text/plain\r\n\r\nfirst\r\nsecond\r\n--o\r\n"
    b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\nlast"
    b"\r\n--o--\r\n",
    b"Subject: long\r\n\r\n" + b"".join(b"line %d\r\n" % i for i in range(20000)),
]
THEIRS = [
    b"Subject: from dovecot\r\n\r\nhello\r\nworld\r\n",
    b"Subject: parts\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n--b\r\n'
    b"Content-Type: text/plain\r\n\r\none\r\ntwo\r\n--b--\r\n",
]
ITEMS = ["UID", "RFC822.SIZE", "BODY.PEEK[]", "BODY.PEEK[]<100.60>", "BODYSTRUCTURE"]


def _leaf_sizes(structure: Any) -> list[tuple[int | None, int | None]]:
    """(size, lines) of every leaf part of a body structure."""
    if structure.parts:
        return [pair for part in structure.parts for pair in _leaf_sizes(part)]
    return [(structure.size, structure.lines)]


def _view(fetched: dict[int, dict[str, Any]]) -> dict[int, tuple[Any, ...]]:
    """What must agree: UID, sizes, octets, and the body parts' sizes and line counts.

    Line counts included where the last line has no line ending (a message
    without a final newline, and every part of a multipart, whose last CRLF
    belongs to the boundary): Dovecot counts line feeds, and so do we.
    """
    return {
        n: (
            r["UID"],
            r["RFC822.SIZE"],
            r["BODY[]"],
            r["BODY[]<100>"],
            _leaf_sizes(r["BODYSTRUCTURE"]),
        )
        for n, r in fetched.items()
    }


class DovecotLineEndingTests(TestCase):
    skip = missing("imap")

    def setUp(self) -> Deferred[Any]:
        self.dir = tempfile.mkdtemp(prefix="dvl")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.base = os.path.join(self.dir, "mail")
        self.ours = LoopbackServer(self.dir, self.base, password_file(self.dir))
        self.addCleanup(self.ours.stop)
        d: Deferred[Any] = Deferred()
        d.callback(None)
        for message in OURS:
            d.addCallback(lambda _, m=message: deliver(self.ours.store, USER, m))
        return d

    def files(self) -> dict[str, bytes]:
        out = {}
        for sub in ("new", "cur"):
            directory = os.path.join(self.base, USER, sub)
            for name in os.listdir(directory):
                with open(os.path.join(directory, name), "rb") as f:
                    out[name] = f.read()
        return out

    async def open(self, port: int) -> IMAPClient:
        c = await connect_imap(
            reactor, "127.0.0.1", port, tls="none", username=USER, password=PASSWORD
        )
        self.addCleanup(lambda: c.protocol.lose())
        return c

    async def test_sizes_and_octets_agree_both_ways(self) -> None:
        our_files = self.files()
        for name, content in our_files.items():
            self.assertNotIn(b"\r", content)
            parsed = parse_filename(name)
            self.assertEqual(parsed.size, len(content))
            self.assertEqual(parsed.virtual_size, len(content) + content.count(b"\n"))

        ours = await self.open(self.ours.number)
        await ours.select("INBOX")
        mine = _view(await ours.fetch("1:*", ITEMS))
        await ours.logout()
        self.assertEqual([v[2] for v in mine.values()], OURS)  # CRLF, as delivered
        self.ours.factory.hub.stop()

        dovecot = Dovecot(self.base, {USER: PASSWORD}, ("imap",))
        self.addCleanup(dovecot.cleanup)
        dovecot.start()
        theirs = await self.open(dovecot.ports["imap"])
        await theirs.select("INBOX")
        self.assertEqual(_view(await theirs.fetch("1:*", ITEMS)), mine)
        for message in THEIRS:
            await theirs.append("INBOX", message)
        after = _view(await theirs.fetch("1:*", ITEMS))
        await theirs.logout()
        dovecot.stop()
        dovecot.share_tree()

        our_bases = {parse_filename(name).base for name in our_files}
        theirs_files = {
            name: content
            for name, content in self.files().items()
            if parse_filename(name).base not in our_bases
        }
        self.assertEqual(len(theirs_files), len(THEIRS))
        self.assertEqual(len(after), len(OURS) + len(THEIRS))
        for name, content in theirs_files.items():
            self.assertNotIn(b"\r", content)  # Dovecot stores LF too
            self.assertEqual(
                parse_filename(name).virtual_size, len(content) + content.count(b"\n")
            )

        ours = await self.open(self.ours.number)
        await ours.select("INBOX")
        self.assertEqual(_view(await ours.fetch("1:*", ITEMS)), after)
        await ours.logout()

"""Our POP3 client against Dovecot's POP3 server, over the Maildir our SMTP server delivered into.

Needs Debian's ``dovecot-pop3d`` (``apt-get install dovecot-pop3d``); skipped
without it.  Dovecot runs in the foreground from a private configuration in a
temporary directory, listening on a free loopback port, with a passwd-file
user and Dovecot's default UIDL format; the same Maildir is then served by
our server, and the two must agree on sizes, UIDLs and contents.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.trial.unittest import TestCase

from netproto_twisted.pop3 import POP3ReplyError, connect_pop3
from tests.dovecot import Dovecot, missing

from .helpers import MESSAGES, PASSWORD, USER, deliver_by_smtp, maildir_files, password_file
from .loopback import LoopbackServer, reactor

#: What is sent through SMTP (which refuses bare LF, so all CRLF here).
SENT = [*MESSAGES[:2], MESSAGES[2].replace(b"\n", b"\r\n")]


class DovecotPOP3Tests(TestCase):
    skip = missing("pop3")

    def setUp(self) -> None:
        # Outside _trial_temp: Dovecot runs as another user (needs +x on every parent).
        self.dir = tempfile.mkdtemp(prefix="dvp")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.base = os.path.join(self.dir, "mail")
        deliver_by_smtp(self.base, SENT)
        self.dovecot = Dovecot(
            self.base,
            {USER: PASSWORD},
            ("pop3",),
            extra="pop3_uidl_format = %08Xu%08Xv\npop3_lock_session = yes\n",
        )
        self.addCleanup(self.dovecot.cleanup)
        self.dovecot.start()
        self.port = self.dovecot.ports["pop3"]

    def share_tree(self) -> None:
        """As root, hand the tree back to Dovecot's user (our server ran as root)."""
        self.dovecot.share_tree()

    async def connect(self, port: int, **kwargs: object):  # type: ignore[no-untyped-def]
        return await connect_pop3(
            reactor,
            "127.0.0.1",
            port,
            tls="none",
            username=USER,
            password=PASSWORD,
            timeout=20,
            **kwargs,  # type: ignore[arg-type]
        )

    async def test_our_client_reads_dovecot_and_both_servers_agree(self) -> None:
        theirs = await self.connect(self.port)
        capabilities = await theirs.capa()
        self.assertIn("UIDL", capabilities)
        stat = await theirs.stat()
        listing = await theirs.list()
        uids = await theirs.uidl()
        bodies = [await theirs.retr(n) for n, _ in listing]
        top = await theirs.top(2, 1)
        await theirs.quit()
        self.assertEqual(stat[0], 3)
        self.assertEqual(stat[1], sum(size for _, size in listing))
        for body, sent, (_, size) in zip(bodies, SENT, listing, strict=True):
            self.assertTrue(body.startswith(b"Received: "))  # our SMTP server's trace
            self.assertTrue(body.endswith(sent))
            self.assertEqual(len(body), size)
        self.assertTrue(top.endswith(b"Subject: two\r\n\r\n.leading dot\r\n"))

        users = password_file(self.dir)
        server = LoopbackServer(self.dir, self.base, users)
        self.addCleanup(server.stop)
        ours = await self.connect(server.number)
        self.assertEqual(await ours.stat(), stat)
        self.assertEqual(await ours.list(), listing)
        self.assertEqual(await ours.uidl(), uids)
        self.assertEqual([await ours.retr(n) for n, _ in listing], bodies)
        await ours.quit()

    async def test_dele_through_dovecot_then_sessions_lock_each_other(self) -> None:
        theirs = await self.connect(self.port)
        self.addCleanup(theirs.close)
        await theirs.dele(1)
        self.assertEqual(len(maildir_files(self.base)), 3)
        await theirs.quit()
        self.assertEqual(len(maildir_files(self.base)), 2)

        users = password_file(self.dir)
        server = LoopbackServer(self.dir, self.base, users)
        self.addCleanup(server.stop)
        ours = await self.connect(server.number)
        self.assertEqual((await ours.stat())[0], 2)
        # While we hold the maildrop, Dovecot (pop3_lock_session) refuses it too.
        with self.assertRaises(POP3ReplyError) as caught:
            await self.connect(self.port)
        self.assertEqual(caught.exception.response_code, "IN-USE")
        await ours.quit()
        self.share_tree()  # our server ran as root in a root run
        again = await self.connect(self.port)
        self.assertEqual((await again.stat())[0], 2)
        await again.quit()

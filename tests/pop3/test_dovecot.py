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
import socket
import subprocess
import tempfile

from twisted.trial.unittest import TestCase

from netproto_twisted.pop3 import POP3ReplyError, connect_pop3
from tests.waiting import wait_for_files

from .helpers import MESSAGES, PASSWORD, USER, deliver_by_smtp, maildir_files, password_file
from .loopback import LoopbackServer, reactor

DOVECOT = shutil.which("dovecot") or (
    "/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None
)
POP3_BINARY = "/usr/lib/dovecot/pop3"
#: What is sent through SMTP (which refuses bare LF, so all CRLF here).
SENT = [*MESSAGES[:2], MESSAGES[2].replace(b"\n", b"\r\n")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class DovecotPOP3Tests(TestCase):
    if DOVECOT is None or not os.path.exists(POP3_BINARY):
        skip = "Dovecot's POP3 server is not installed (apt-get install dovecot-pop3d)"

    def setUp(self) -> None:
        # Outside _trial_temp: Dovecot runs as another user (needs +x on every parent).
        self.dir = tempfile.mkdtemp(prefix="dvp")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.base = os.path.join(self.dir, "mail")
        deliver_by_smtp(self.base, SENT)
        if os.getuid() == 0:  # Dovecot refuses mail access as root
            self.uid = self.gid = 65534
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
        self.port = _free_port()
        self.run_dir = os.path.join(self.dir, "r")
        passwd = os.path.join(self.dir, "passwd")
        with open(passwd, "w") as f:
            f.write(f"{USER}:{{PLAIN}}{PASSWORD}:{self.uid}:{self.gid}::{self.base}/{USER}\n")
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(
                f"base_dir = {self.run_dir}\n"
                f"state_dir = {self.dir}/state\n"
                f"log_path = {self.dir}/dovecot.log\n"
                f"first_valid_uid = {min(self.uid, 500)}\n"
                f"first_valid_gid = {min(self.gid, 500)}\n"
                "protocols = pop3\n"
                "ssl = no\n"
                "disable_plaintext_auth = no\n"
                "auth_mechanisms = plain login\n"
                "pop3_uidl_format = %08Xu%08Xv\n"
                "pop3_lock_session = yes\n"
                f"mail_location = maildir:{self.base}/%u:INDEX=MEMORY\n"
                f"service pop3-login {{\n  inet_listener pop3 {{\n"
                f"    address = 127.0.0.1\n    port = {self.port}\n  }}\n"
                "  inet_listener pop3s {\n    port = 0\n  }\n}\n"
                f"passdb {{\n  driver = passwd-file\n  args = {passwd}\n}}\n"
                f"userdb {{\n  driver = passwd-file\n  args = {passwd}\n}}\n"
            )
        self.share_tree()
        os.makedirs(self.run_dir, 0o755, exist_ok=True)
        assert DOVECOT is not None
        self.dovecot = subprocess.Popen(
            [DOVECOT, "-F", "-c", self.conf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        self.addCleanup(self.stop_dovecot)
        login = os.path.join(self.run_dir, "login")
        try:
            wait_for_files([self.run_dir], lambda: os.path.isdir(login), 15, process=self.dovecot)
            wait_for_files(
                [login],
                lambda: os.path.exists(os.path.join(login, "pop3")),
                15,
                process=self.dovecot,
            )
        except (AssertionError, RuntimeError):
            raise AssertionError(f"dovecot did not start: {self.log()}") from None

    def log(self) -> str:
        path = os.path.join(self.dir, "dovecot.log")
        if not os.path.exists(path):
            return ""
        with open(path) as f:
            return f.read()

    def stop_dovecot(self) -> None:
        self.dovecot.terminate()
        self.dovecot.wait(10)
        if self.dovecot.stderr is not None:
            self.dovecot.stderr.close()

    def share_tree(self) -> None:
        """As root, hand the tree to Dovecot's user (in production both run as one user)."""
        if os.getuid() == 0:
            for root, dirs, files in os.walk(self.base):
                for name in [*dirs, *files]:
                    os.chown(os.path.join(root, name), self.uid, self.gid)
            os.chown(self.base, self.uid, self.gid)

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

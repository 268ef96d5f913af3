"""Interop with Dovecot: it must see the UIDs, flags and folders we wrote, and we its.

Needs Debian's ``dovecot-core`` (``apt-get install dovecot-imapd``); skipped
without it.  Dovecot runs in the foreground from a private config in a temp
directory (no listeners, static userdb, in-memory index so that only the
Maildir files and ``dovecot-uidlist`` carry state); ``doveadm`` talks to it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.mailstore import SEEN, FlagMode, MaildirStore
from netproto_twisted.mailstore.fsops import FsOps
from tests.waiting import wait_for_files

from .helpers import sync_runner

DOVECOT = shutil.which("dovecot") or (
    "/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None
)
DOVEADM = shutil.which("doveadm") or (
    "/usr/bin/doveadm" if os.path.exists("/usr/bin/doveadm") else None
)
USER = "interop"


class DovecotInteropTests(SynchronousTestCase):
    if DOVECOT is None or DOVEADM is None:
        skip = "Dovecot not installed (apt-get install dovecot-imapd)"

    def setUp(self) -> None:
        # Outside _trial_temp: Dovecot runs as another user (needs +x on every
        # parent) and Unix socket paths are limited to ~107 bytes.
        self.dir = tempfile.mkdtemp(prefix="dvc")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.run_dir = os.path.join(self.dir, "r")
        self.base = os.path.join(self.dir, "mail")
        os.makedirs(self.base)
        if os.getuid() == 0:  # Dovecot refuses mail access as root
            self.uid = self.gid = 65534
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(
                f"base_dir = {self.run_dir}\n"
                f"state_dir = {self.dir}/state\n"
                f"log_path = {self.dir}/dovecot.log\n"
                f"first_valid_uid = {min(self.uid, 500)}\n"
                f"first_valid_gid = {min(self.gid, 500)}\n"
                "protocols = none\n"
                "ssl = no\n"
                f"mail_location = maildir:{self.base}/%u:INDEX=MEMORY\n"
                "passdb {\n  driver = static\n  args = password=unused\n}\n"
                "userdb {\n  driver = static\n"
                f"  args = uid={self.uid} gid={self.gid} home={self.base}/%u\n}}\n"
            )
        self.store = MaildirStore(self.base, fs=FsOps(), runner=sync_runner)
        self.dovecot: subprocess.Popen[bytes] | None = None

    def tearDown(self) -> None:
        if self.dovecot is not None:
            self.dovecot.terminate()
            self.dovecot.wait(10)

    def share_tree(self) -> None:
        """As root, hand the tree to Dovecot's user (in production both run as one user)."""
        if os.getuid() == 0:
            for root, dirs, files in os.walk(self.base):
                for name in [*dirs, *files]:
                    os.chown(os.path.join(root, name), self.uid, self.gid)
            os.chown(self.base, self.uid, self.gid)

    def start_dovecot(self) -> None:
        assert DOVECOT is not None
        os.makedirs(self.run_dir, 0o755, exist_ok=True)  # watched for its socket below
        self.dovecot = subprocess.Popen(
            [DOVECOT, "-F", "-c", self.conf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        socket_path = os.path.join(self.run_dir, "auth-userdb")
        try:  # woken by each change in the run directory or dovecot's exit, bounded
            wait_for_files([self.run_dir], lambda: os.path.exists(socket_path), 15,
                           process=self.dovecot)
        except (AssertionError, RuntimeError):
            self.dovecot.kill()
            _, err = self.dovecot.communicate()
            log = ""
            if os.path.exists(os.path.join(self.dir, "dovecot.log")):
                with open(os.path.join(self.dir, "dovecot.log")) as f:
                    log = f.read()
            raise AssertionError(f"dovecot did not start: {err!r} {log}") from None

    def doveadm(self, *args: str, stdin: bytes | None = None) -> str:
        assert DOVEADM is not None
        self.share_tree()
        proc = subprocess.run(
            [DOVEADM, "-c", self.conf, *args], input=stdin, capture_output=True, timeout=30
        )
        self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace"))
        return proc.stdout.decode()

    def dovecot_messages(self, folder: str = "INBOX") -> dict[int, set[str]]:
        out = self.doveadm("fetch", "-u", USER, "uid flags", "mailbox", folder, "ALL")
        pairs = re.findall(r"uid: (\d+)\nflags:([^\n]*)", out)
        return {int(uid): set(flags.split()) - {"\\Recent"} for uid, flags in pairs}

    def deliver(self, body: bytes, folder: str = "INBOX") -> None:
        writer = self.store.deliver(USER, folder)
        writer.write(body)
        self.successResultOf(writer.commit())

    def test_dovecot_sees_our_uids_flags_and_folders(self) -> None:
        for i in range(3):
            self.deliver(b"Subject: m%d\r\n\r\nbody\r\n" % i)
        box = self.successResultOf(self.store.open_mailbox(USER))
        self.assertEqual([m.uid for m in box.messages], [1, 2, 3])
        self.successResultOf(box.store_flags([2], [SEEN, "Work"], FlagMode.ADD))
        self.successResultOf(box.expunge([1]))
        self.successResultOf(box.refresh())
        self.successResultOf(self.store.create_folder(USER, "Archive.2024"))
        self.deliver(b"Subject: archived\r\n\r\nx\r\n", "Archive.2024")
        archive = self.successResultOf(
            self.store.open_mailbox(USER, "Archive.2024", move_new=False)  # POP3 style
        )
        self.assertEqual([(m.uid, m.subdir) for m in archive.messages], [(1, "new")])
        self.successResultOf(self.store.subscribe(USER, "Archive.2024"))

        self.start_dovecot()
        self.assertEqual(self.dovecot_messages(), {2: {SEEN, "Work"}, 3: set()})
        status = self.doveadm("mailbox", "status", "-u", USER, "uidvalidity uidnext", "INBOX")
        self.assertEqual(
            set(status.split()), {"INBOX", f"uidvalidity={box.uid_validity}", "uidnext=4"}
        )
        self.assertEqual(self.dovecot_messages("Archive.2024"), {1: set()})
        listed = self.doveadm("mailbox", "list", "-u", USER).split()
        self.assertEqual(sorted(listed), ["Archive", "Archive.2024", "INBOX"])
        subscribed = self.doveadm("mailbox", "list", "-s", "-u", USER).split()
        self.assertEqual(subscribed, ["Archive.2024"])

    def test_we_see_dovecots_uids_and_flags(self) -> None:
        self.deliver(b"Subject: ours\r\n\r\nbody\r\n")
        ours = self.successResultOf(self.store.open_mailbox(USER))
        self.start_dovecot()
        for i in range(2):
            self.doveadm("save", "-u", USER, stdin=b"Subject: theirs %d\r\n\r\nbody\r\n" % i)
        self.doveadm(
            "flags", "add", "-u", USER, "\\Flagged $Label1", "mailbox", "INBOX", "uid", "3"
        )
        self.doveadm("mailbox", "create", "-u", USER, "Projects")
        theirs = self.dovecot_messages()
        self.assertEqual(sorted(theirs), [1, 2, 3])

        box = self.successResultOf(self.store.open_mailbox(USER))
        self.assertEqual(box.uid_validity, ours.uid_validity)
        self.assertEqual({m.uid: set(m.flags) for m in box.messages}, theirs)
        self.assertEqual(box.get(3).flags, {"\\Flagged", "$Label1"})
        with self.successResultOf(box.open_message(2)) as f:
            self.assertIn(b"theirs 0", f.read())
        self.assertEqual(self.successResultOf(self.store.list_folders(USER)),
                         ["INBOX", "Projects"])
        # And a message we add now continues Dovecot's numbering.
        self.deliver(b"Subject: after\r\n\r\nbody\r\n")
        box2 = self.successResultOf(self.store.open_mailbox(USER))
        self.assertEqual([m.uid for m in box2.messages], [1, 2, 3, 4])
        self.assertEqual(sorted(self.dovecot_messages()), [1, 2, 3, 4])

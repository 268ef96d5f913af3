"""A mail reader working on the files: neomutt opens a Maildir we delivered into.

neomutt needs a terminal: it runs under ``script`` (util-linux) with a
pseudo-terminal, reads the folder read-only and pipes the message to a
file, once as it is (``pipe_decode=no``: the bytes of our file, which must
hold no CR) and once as it shows it (the subject without a CR).  Skipped
without neomutt or ``script``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.mailstore import MaildirStore
from netproto_twisted.mailstore.fsops import FsOps

from .helpers import sync_runner

NEOMUTT = shutil.which("neomutt")
SCRIPT = shutil.which("script")
MESSAGE = (
    b"From: Bob <bob@example.org>\r\nTo: alice@example.org\r\n"
    b"Subject: quarterly report\r\nMessage-ID: <r1@example.org>\r\n\r\n"
    b"first line\r\nsecond line\r\n"
)


class NeomuttTests(SynchronousTestCase):
    if NEOMUTT is None or SCRIPT is None:
        skip = "neomutt and script (util-linux) are needed (apt-get install neomutt)"

    def pipe(self, folder: str, decode: bool) -> bytes:
        """What neomutt pipes of the folder's first message."""
        out = os.path.abspath(self.mktemp())
        rc = os.path.abspath(self.mktemp())
        with open(rc, "w") as f:
            f.write(
                f"set wait_key=no\nset pipe_decode={'yes' if decode else 'no'}\n"
                # With these, a fresh HOME asks nothing (no "create ~/Mail?").
                f"set folder={folder}\nset spoolfile={folder}\n"
                'set header_cache=""\nset message_cachedir=""\n'
            )
        push = f"push '<pipe-message>cat > {out}<enter><quit>'"
        command = shlex.join([NEOMUTT or "", "-n", "-F", rc, "-R", "-f", folder, "-e", push])
        env = {**os.environ, "TERM": "xterm", "HOME": os.path.dirname(rc)}
        subprocess.run(
            [SCRIPT or "", "-qec", command, "/dev/null"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            timeout=20,
            check=False,
        )
        with open(out, "rb") as f:
            return f.read()

    def test_neomutt_reads_our_files_without_cr(self) -> None:
        base = os.path.abspath(self.mktemp())
        store = MaildirStore(base, fs=FsOps(), runner=sync_runner)
        writer = store.deliver("alice")
        writer.write(MESSAGE)
        self.successResultOf(writer.commit())
        folder = os.path.join(base, "alice")

        raw = self.pipe(folder, decode=False)
        self.assertIn(b"Subject: quarterly report\n", raw)
        self.assertNotIn(b"\r", raw)
        self.assertTrue(raw.endswith(b"\n\nfirst line\nsecond line\n"), raw)

        shown = self.pipe(folder, decode=True)
        self.assertIn(b"\nSubject: quarterly report\n", shown)
        self.assertNotIn(b"\r", shown)

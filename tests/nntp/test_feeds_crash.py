"""The feed queue across a crash: ``twistd netproto-nntp`` killed with SIGKILL after it
acknowledged articles for a peer that was down, then restarted: the peer gets all, in order."""

from __future__ import annotations

import contextlib
import io
import signal
import sqlite3
import warnings
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted import cli
from tests.nntp.inn import free_port
from tests.twistd import Daemon

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import nntplib


def make_group(database: Path) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        status = cli.main(["news", "group", "add", "--db", str(database), "comp.test"])
    assert status == 0


def connect(port: int) -> nntplib.NNTP:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return nntplib.NNTP("127.0.0.1", port, readermode=False, timeout=30)


class CrashTests(SynchronousTestCase):
    def test_acknowledged_articles_survive_sigkill(self) -> None:
        cwd = Path(self.mktemp()).absolute()
        cwd.mkdir(parents=True)
        ours_db = cwd / "ours" / "news" / "news.db"
        make_group(ours_db)
        make_group(cwd / "peer" / "news" / "news.db")
        peer_port = free_port()
        ours_argv = ["netproto-nntp", "--data-dir", "ours", "--open-posting",
                     "--listen", "tcp:0:interface=127.0.0.1", "--path-host", "ours.test",
                     "--feed", f"peer=127.0.0.1:{peer_port},path=peer.test,retry=60,idle=0",
                     ]  # fmt: skip
        ours = Daemon(ours_argv, cwd)
        self.addCleanup(ours.stop, signal.SIGKILL)
        port = int(ours.wait_for(r"nntp listening on tcp \S+:(\d+)").group(1))
        s = connect(port)
        for i in range(5):
            text = f"From: a@b.test\nNewsgroups: comp.test\nSubject: n{i}\n\nhi\n"
            s.post(io.BytesIO(text.encode()))
        s.quit()
        ours.stop(signal.SIGKILL)
        db = sqlite3.connect(ours_db)
        try:
            rows = db.execute("SELECT peer FROM feed_queue ORDER BY id").fetchall()
        finally:
            db.close()
        self.assertEqual(rows, [("peer",)] * 5)

        peer = Daemon(["netproto-nntp", "--data-dir", "peer", "--path-host", "peer.test",
                       "--listen", f"tcp:{peer_port}:interface=127.0.0.1"], cwd)  # fmt: skip
        self.addCleanup(peer.stop, signal.SIGKILL)
        peer.wait_for(r"nntp listening on tcp ")
        again = Daemon(ours_argv, cwd)
        self.addCleanup(again.stop, signal.SIGKILL)
        again.wait_for(r"feed peer: session ended; in all accepted 5,")
        r = connect(peer_port)
        _, count, first, last, _ = r.group("comp.test")
        self.assertEqual(count, 5)
        subjects = [fields["subject"] for _, fields in r.over((first, last))[1]]
        self.assertEqual(subjects, [f"n{i}" for i in range(5)])
        r.quit()
        self.assertIn(again.stop(signal.SIGTERM), (0, -signal.SIGTERM))
        self.assertNotIn("Traceback", again.output())

"""SIGKILL a process committing messages and rewriting their state: nothing committed is lost.

The child (this module run as a script) keeps eight commits in flight and
rewrites the state of committed entries in between; it prints ``C <id>
<seq>`` once a commit has fired.  After the kill, recovery must leave every
printed entry intact (its message byte for byte, a parseable state) and no
entry half-visible.
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.smtp.relay.queue import QueueEntry, SpoolDirectory

ROOT = Path(__file__).resolve().parent.parent.parent


def body(seq: int) -> bytes:
    """The message numbered ``seq`` (about 90 KiB: more than one write buffer)."""
    return f"Subject: crash test {seq}\r\n\r\n".encode() + f"{seq:08d}\r\n".encode() * 9000


class CrashTests(SynchronousTestCase):
    def kill_after(self, commits: int) -> tuple[Path, dict[str, int]]:
        queue = Path(tempfile.mkdtemp()) / "queue"
        self.addCleanup(shutil.rmtree, queue.parent, True)
        child = subprocess.Popen(
            [sys.executable, __file__, "child", str(queue)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        assert child.stdout is not None and child.stderr is not None
        committed: dict[str, int] = {}
        deadline = time.monotonic() + 60
        while len(committed) < commits:
            line = child.stdout.readline()
            if not line:
                self.fail(f"child ended early: {child.stderr.read().decode()}")
            _, entry_id, seq = line.decode().split()
            committed[entry_id] = int(seq)
            self.assertLess(time.monotonic(), deadline)
        child.send_signal(signal.SIGKILL)
        child.wait()
        committed.update(
            (entry_id, int(seq))
            for _, entry_id, seq in (
                line.decode().split() for line in child.stdout.read().splitlines()
            )
        )
        child.stdout.close()
        child.stderr.close()
        return queue, committed

    def check(self, commits: int) -> None:
        queue, committed = self.kill_after(commits)
        directory = SpoolDirectory(queue)
        for name in os.listdir(directory.entries):  # every state file is whole: never torn
            if name.endswith(".env"):
                QueueEntry.from_json((directory.entries / name).read_bytes())
        directory.recover()
        entries = {e.id: e for e in directory.load_all()}
        self.assertEqual(sorted(set(committed) - set(entries)), [])  # nothing committed lost
        for entry_id, entry in entries.items():
            data = directory.message_path(entry_id).read_bytes()
            seq = int(data.split(b"crash test ", 1)[1].split(b"\r\n", 1)[0])
            self.assertEqual(data, body(seq))  # visible means complete
            self.assertEqual(entry.size, len(data))
            if entry_id in committed:
                self.assertEqual(seq, committed[entry_id])
        names = os.listdir(directory.entries)
        for name in names:  # after recovery: no message without its envelope, or vice versa
            base, ext = os.path.splitext(name)
            partner = base + (".env" if ext == ".msg" else ".msg")
            self.assertIn(partner, names)
        self.assertEqual(os.listdir(directory.tmp), [])

    def test_kill_early(self) -> None:
        self.check(3)

    def test_kill_later(self) -> None:
        self.check(25)


def _child(queue: str) -> None:
    """Commit messages forever (eight at a time) and rewrite states in between."""
    from twisted.internet import defer, reactor

    from netproto_twisted.smtp import MailFrom, RcptTo
    from netproto_twisted.smtp.interfaces import Envelope
    from netproto_twisted.smtp.relay.queue import Spool

    spool = Spool(Path(queue), reactor)
    done: list[QueueEntry] = []

    async def one(seq: int) -> None:
        rcpts = (RcptTo(f"r{seq}@remote.example"),)
        sink = spool.open(Envelope(MailFrom("a@example.org"), rcpts), rcpts)
        data = body(seq)
        for i in range(0, len(data), 16384):
            sink.write(data[i : i + 16384])
        entry_id = await sink.commit()
        sys.stdout.write(f"C {entry_id} {seq}\n")
        sys.stdout.flush()
        done.append(sink.entry)
        for entry in done[-3:]:
            entry.recipients[0].attempts += 1
            await spool.save(entry)

    async def run() -> None:
        seq = 0
        while True:
            batch = [defer.ensureDeferred(one(seq + i)) for i in range(8)]
            seq += 8
            await defer.gatherResults(batch)

    reactor.callWhenRunning(lambda: defer.ensureDeferred(run()))
    reactor.run()


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "child":
    _child(sys.argv[2])

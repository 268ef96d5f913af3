"""``twistd netproto-smtp`` relaying to smtp-sink, killed with SIGKILL in the middle of a load.

Every message that got a ``250`` from the daemon must reach the sink after
a restart on the same queue; a message reaches it twice only if it was in
flight at the kill (the sink said ``250`` but the daemon died before saving
that): at most one per relay connection.
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import shutil
import signal
import smtplib
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.interop.test_smtp_relay_sink import Sink, message, spool_empty
from tests.twistd import Daemon
from tests.waiting import wait_for_files

TIMEOUT = 30.0
#: The relay's default per-destination connection limit.
PARALLEL = 5


class RelayDaemonTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cwd = Path(self.mktemp()).absolute()
        self.cwd.mkdir(parents=True)

    def sink(self, *extra: str) -> Sink:
        # smtp-sink runs as nobody when we are root: its dumps go where nobody may write.
        dumps = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, dumps, True)
        sink = Sink(dumps / "dumps", *extra)
        self.addCleanup(sink.stop)
        return sink

    def daemon(self, sink: Sink) -> tuple[Daemon, int]:
        daemon = Daemon(
            [
                "netproto-smtp",
                "--listen", "tcp:0:interface=127.0.0.1",
                "--submission", "tcp:0:interface=127.0.0.1",
                "--domain", "example.org", "--hostname", "mx.example.org",
                "--relay-network", "127.0.0.1/32",
                "--queue", "queue", "--data-dir", "data",
                "--smarthost", f"127.0.0.1:{sink.port}", "--smarthost-tls", "none",
            ],
            self.cwd,
        )  # fmt: skip
        self.addCleanup(daemon.stop)
        port = int(daemon.wait_for(r"smtp listening on tcp 127\.0\.0\.1:(\d+)", TIMEOUT).group(1))
        return daemon, port

    def test_sigkill_in_the_middle_of_a_load(self) -> None:
        total = 25
        slow = self.sink("-w", "1")  # one second before each DATA reply
        daemon, port = self.daemon(slow)
        accepted = []
        with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as client:
            for seq in range(total):
                refused = client.sendmail("a@client.example", ["x@far.example"], message(seq))
                self.assertEqual(refused, {})
                accepted.append(seq)  # the daemon said 250: the message is ours now
        wait_for_files([slow.directory], lambda: len(slow.complete()) >= 2, TIMEOUT)
        daemon.stop(signal.SIGKILL)
        before = slow.complete()
        self.assertLess(len(before), total, "the kill came too late to test anything")
        slow.stop()

        fast = self.sink()
        restarted, _ = self.daemon(fast)
        entries = self.cwd / "queue" / "entries"
        wait_for_files([entries], lambda: spool_empty(self.cwd / "queue"), TIMEOUT)
        counts = fast.complete()
        for seq, n in before.items():
            counts[seq] = counts.get(seq, 0) + n
        self.assertEqual([seq for seq in accepted if seq not in counts], [])
        duplicates = [seq for seq, n in counts.items() if n > 1]
        self.assertLessEqual(len(duplicates), PARALLEL, f"sent twice: {duplicates}")
        dump = next(p.read_bytes() for p in fast.directory.iterdir())
        self.assertIn(b"by mx.example.org", dump)  # our server's Received header travelled
        self.assertIn(restarted.stop(), (0, -signal.SIGTERM))
        self.assertNotIn("Traceback", restarted.output())

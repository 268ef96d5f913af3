"""The admin console's queues: the SMTP relay's spool seen from the console's namespace."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
import time
from pathlib import Path

from twisted.application.service import MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.limits import Limits
from netproto_twisted.mailstore.fsops import FsOps
from netproto_twisted.smtp.relay import Relay, RelaySettings
from netproto_twisted.smtp.relay.queue import Spool, synchronous_runner
from netproto_twisted.telnet.console import (
    ConsoleText,
    console_namespace,
    describe_queues,
    describe_services,
)
from netproto_twisted.telnet.interfaces import TerminalInfo
from tests.smtp.test_relay_memory import UnusedResolver, fill


class QueueTests(SynchronousTestCase):
    """``queues()`` and ``status()`` report the relay's spool: counts and the oldest entry."""

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.now = time.time()
        self.clock = MemoryReactorClock()
        self.clock.advance(self.now)
        self.root = MultiService()

    def start_relay(self, count: int) -> Relay:
        # Entries received 600 s ago, tried once, deferred for another 100 s and more.
        fill(self.dir / "queue", count, self.now, due_in=100)
        spool = Spool(
            self.dir / "queue", self.clock, runner=synchronous_runner, fs=FsOps(fsync=False)
        )
        settings = RelaySettings(hostname="relay.example.net", poll_interval=0)
        relay = Relay(spool, self.clock, settings, resolver=UnusedResolver())
        relay.setName("smtp-relay")
        relay.setServiceParent(self.root)
        self.root.startService()
        self.addCleanup(self.root.stopService)
        self.successResultOf(relay.ready)
        return relay

    def namespace(self) -> dict[str, object]:
        console = MultiService()
        console.setServiceParent(self.root)
        return console_namespace(console, Limits())(TerminalInfo(user="admin"))

    def test_queues_counts_and_oldest_age(self) -> None:
        relay = self.start_relay(5)
        self.successResultOf(relay.spool.hold(sorted(relay.index)[0]))
        relay.index.get(sorted(relay.index)[0]).held = True  # (what a rescan would pick up)
        queues = self.namespace()["queues"]
        assert callable(queues)
        text = self.successResultOf(queues())
        self.assertIsInstance(text, ConsoleText)
        self.assertEqual(
            text, "queue smtp-relay: queued 5 active 0 deferred 5 held 1 oldest 10m"
        )
        self.assertEqual(repr(text), "\n" + text)
        self.assertEqual(
            relay.queue_status(), {"queued": 5, "active": 0, "deferred": 5, "held": 1}
        )

    def test_active_entries(self) -> None:
        relay = self.start_relay(3)
        relay.stopService()  # nothing is dispatched: mark two entries as being worked on
        for entry_id in sorted(relay.index)[:2]:
            relay.index.schedule(entry_id, None)
            relay._busy[entry_id] = 1
        self.assertEqual(
            relay.queue_status(), {"queued": 3, "active": 2, "deferred": 1, "held": 0}
        )

    def test_status_shows_the_counts(self) -> None:
        self.start_relay(2)
        self.assertIn("queue smtp-relay: queued 2 active 0 deferred 2 held 0",
                      describe_services(self.root))
        status = self.namespace()["status"]
        assert callable(status)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status()
        self.assertIn("queue smtp-relay: queued 2", out.getvalue())

    def test_empty_spool_and_no_queue(self) -> None:
        self.start_relay(0)
        self.assertEqual(
            self.successResultOf(describe_queues(self.root)),
            "queue smtp-relay: queued 0 active 0 deferred 0 held 0",
        )
        self.assertEqual(self.successResultOf(describe_queues(MultiService())), "no queues")

    def test_group_commits(self) -> None:
        """A spool committing in groups (the daemon's) shows its commits and rounds."""
        relay = self.start_relay(1)

        class Counting:
            committed = 7
            rounds = 3

        relay.spool.committer = Counting()  # type: ignore[assignment]
        self.assertEqual(
            self.successResultOf(describe_queues(self.root)),
            "queue smtp-relay: queued 1 active 0 deferred 1 held 0 oldest 10m"
            " (commits 7 in 3 rounds)",
        )

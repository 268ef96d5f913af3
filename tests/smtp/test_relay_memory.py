"""The relay's memory with a large backlog: a compact index in memory, entries read when due.

Run as a script to measure the resident set size of a relay process that
starts on a spool of deferred entries::

    python -m tests.smtp.test_relay_memory 20000
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import gc
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.mailstore.fsops import FsOps
from netproto_twisted.smtp import MailFrom
from netproto_twisted.smtp.relay import Relay, RelaySettings
from netproto_twisted.smtp.relay._index import DueIndex
from netproto_twisted.smtp.relay.queue import (
    DELIVERED,
    QueueEntry,
    RecipientState,
    Spool,
    SpoolDirectory,
    synchronous_runner,
)
from tests.smtp.test_relay import RelayTestsBase, accept_all

BODY = b"From: a@example.org\r\nSubject: deferred\r\n\r\n" + b"x" * 2000 + b"\r\n"


def fill(directory: Path, count: int, now: float, due_in: float = 3600.0) -> list[str]:
    """Write ``count`` entries tried once and deferred (1-3 recipients each), without fsync."""
    spool = SpoolDirectory(directory, FsOps(fsync=False))
    spool.create()
    ids = []
    for i in range(count):
        recipients = [
            RecipientState(
                f"user{i}.{k}@dest{i % 500}.example",
                {"NOTIFY": "FAILURE,DELAY", "ORCPT": f"rfc822;user{i}.{k}@dest{i % 500}.example"},
                attempts=1,
                next_try=now + due_in + i % 600,
                reply=(451, "4.4.1", f"no next hop answered for dest{i % 500}.example (timeout)"),
                remote=f"mx.dest{i % 500}.example",
            )
            for k in range(1 + i % 3)
        ]
        entry = QueueEntry(
            id=f"{i:032x}",
            mail_from=MailFrom(f"sender{i % 50}@example.org", {"BODY": "8BITMIME"}),
            recipients=recipients,
            helo="client.example.org",
            peer="192.0.2.10",
            authenticated_as=f"sender{i % 50}",
            tls=True,
            received_at=now - 600,
            size=len(BODY),
        )
        entry_id, fd = spool.new_tmp(entry.id)
        spool.append(fd, BODY)
        spool.finish(entry, fd)
        ids.append(entry_id)
    return ids


class UnusedResolver:
    """Fails the test if the relay looks anything up."""

    def lookupMailExchange(self, name: str) -> Any:
        raise AssertionError(f"unexpected MX lookup for {name}")


def start_relay(directory: Path, clock: Clock) -> Relay:
    spool = Spool(directory, clock, runner=synchronous_runner, fs=FsOps(fsync=False))
    settings = RelaySettings(hostname="relay.example.net", poll_interval=0)
    relay = Relay(spool, clock, settings, resolver=UnusedResolver())
    relay.startService()
    return relay


class IndexTests(RelayTestsBase):
    """The relay keeps an index, reads entries when due, and bounds how many it holds."""

    def test_deferred_entries_stay_on_disk_until_due(self) -> None:
        now = self.reactor.seconds()
        ids = fill(self.dir / "queue", 30, now, due_in=100)
        relay = self.make_relay()
        gc.collect()
        self.assertEqual(sum(1 for o in gc.get_objects() if isinstance(o, QueueEntry)), 0)
        self.assertEqual(sorted(relay.index), sorted(ids))
        self.assertEqual(self.net.connects, [])
        self.resolver.table.update(
            {f"dest{i}.example": [(10, f"mx.dest{i}.example")] for i in range(30)}
        )
        self.reactor.advance(100)  # the first one is due (the others follow, a second apart)
        self.assertEqual(len(self.net.sent), 1)
        self.reactor.advance(29)
        self.assertEqual(len(self.net.sent), 30)
        self.assertEqual(len(relay.index), 0)
        self.assertEqual(self.entries(), [])

    def test_entries_in_memory_are_bounded(self) -> None:
        self.net.manual = True
        relay = self.make_relay(max_active_entries=3, per_destination=10)
        for i in range(10):
            self.store(f"u{i}@remote.example")
        self.assertEqual(len(self.net.waiting), 3)
        self.assertEqual(len(relay.index), 10)
        while self.net.waiting:
            self.assertLessEqual(len(self.net.waiting), 3)
            d, record = self.net.waiting.pop(0)
            d.callback(accept_all(record[0], record[1], [a for a, _ in record[2]]))
        self.assertEqual(len(self.net.sent), 10)
        self.assertEqual(self.entries(), [])
        self.assertRaises(ValueError, RelaySettings, hostname="x", max_active_entries=0)

    def test_state_is_read_afresh_when_due(self) -> None:
        """What another process saved meanwhile (a recipient done) is what the relay uses."""
        self.net.down.add("mx1.remote.example")
        entry_id = self.store("b@remote.example", "c@remote.example")
        self.make_relay(min_backoff=300)
        entry = self.spool.directory.load(entry_id)
        entry.recipients[0].status, entry.recipients[0].notified = DELIVERED, True
        self.successResultOf(self.spool.save(entry))
        self.net.down.clear()
        self.reactor.advance(300)
        [(_, _, rcpts, _, _)] = self.net.sent
        self.assertEqual(rcpts, [("c@remote.example", {})])

    def test_ids_seen_during_a_scan_are_forgotten(self) -> None:
        """The ids kept for a rescan's sake do not pile up with every message ever spooled."""
        self.net.down.add("mx1.remote.example")
        relay = self.make_relay(poll_interval=5)
        for i in range(3):
            self.store(f"u{i}@remote.example")
        self.assertEqual(len(relay._recent), 3)
        self.reactor.advance(5)  # a poll (no trigger file: no scan)
        self.assertEqual(relay._recent, set())
        self.assertEqual(len(relay.index), 3)
        relay.stopService()
        quiet = self.make_relay(poll_interval=0)  # never scans: keeps nothing
        self.store("v@remote.example")
        self.assertEqual(quiet._recent, set())

    def test_index_memory_per_entry(self) -> None:
        """A few hundred bytes per indexed entry (a QueueEntry takes several KiB)."""
        count = 1000
        fill(self.dir / "queue", count, self.reactor.seconds())
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            relay = self.make_relay()
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        # Blocks of 256 KiB and more are process-wide tables growing (the interned
        # strings), not the relay's.
        used = sum(
            stat.size_diff
            for stat in after.compare_to(before, "lineno")
            if stat.size_diff > 0 and stat.size_diff < 256 * 1024 * max(1, stat.count_diff)
        )
        self.assertEqual(len(relay.index), count)
        self.assertLess(used / count, 600)


class DueIndexTests(SynchronousTestCase):
    def test_order_supersede_hold_and_flush(self) -> None:
        index = DueIndex()
        index.add("a", 30.0, False)
        index.add("b", 10.0, False)
        index.add("c", 20.0, True)
        index.schedule("b", 40.0)  # supersedes 10
        self.assertEqual(index.next_due(), 30.0)
        self.assertIsNone(index.pop_due(29.0))
        self.assertEqual(index.pop_due(100.0), "a")
        self.assertEqual(index.pop_due(100.0), "b")
        self.assertIsNone(index.pop_due(100.0))  # c is held
        slot = index.get("c")
        assert slot is not None
        self.assertIsNone(slot.due)
        slot.held = False
        index.schedule("c", 20.0)  # released: due again at the same time as before
        self.assertEqual(index.pop_due(100.0), "c")
        index.schedule("a", 500.0)
        index.discard("b")
        index.flush(100.0)
        self.assertEqual(index.pop_due(100.0), "a")
        self.assertTrue(all(index.get(i).flushed for i in index))  # type: ignore[union-attr]
        self.assertEqual((len(index), "b" in index), (2, False))

    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["add", "schedule", "unschedule", "discard", "hold", "pop"]),
                st.sampled_from("abcdef"),
                st.integers(0, 20),
            ),
            max_size=60,
        )
    )
    def test_against_a_model(self, ops: list[tuple[str, str, int]]) -> None:
        """pop_due hands out exactly the due, unheld entries, earliest first, once each."""
        index = DueIndex()
        model: dict[str, tuple[float | None, bool]] = {}
        for op, entry_id, value in ops:
            due, held = model.get(entry_id, (None, False))
            if op == "add":
                index.add(entry_id, float(value), False)
                model[entry_id] = (float(value), False)
            elif entry_id not in model:
                continue
            elif op == "schedule":
                index.schedule(entry_id, float(value))
                model[entry_id] = (float(value), held)
            elif op == "unschedule":
                index.schedule(entry_id, None)
                model[entry_id] = (None, held)
            elif op == "discard":
                index.discard(entry_id)
                del model[entry_id]
            elif op == "hold":  # hold, or release (which reschedules, as the relay does)
                slot = index.get(entry_id)
                assert slot is not None
                slot.held = not held
                if held:
                    index.schedule(entry_id, float(value))
                model[entry_id] = (float(value) if held else due, not held)
            else:
                now = float(value)
                got = index.pop_due(now)
                ready = {
                    i: d for i, (d, h) in model.items() if d is not None and not h and d <= now
                }
                if not ready:
                    self.assertIsNone(got)
                    continue
                assert got is not None
                self.assertIn(got, ready)
                self.assertEqual(ready[got], min(ready.values()))
                model[got] = (None, model[got][1])
        self.assertEqual(len(index), len(model))

    def test_merge_a_rescan(self) -> None:
        index = DueIndex()
        index.add("gone", 50.0, False)
        index.add("busy", None, False)
        index.add("recent", 0.0, False)
        index.add("held", 70.0, True)
        index.add("kept", 80.0, False)
        scan = [("held", 70.0, False), ("kept", 10.0, False), ("new", 5.0, False)]
        index.merge(scan, 100.0, busy={"busy"}, recent={"recent"})
        self.assertEqual(sorted(index), ["busy", "held", "kept", "new", "recent"])
        due = {i: index.get(i).due for i in index}  # type: ignore[union-attr]
        # released: due now; a known entry keeps its own due time (the scan may be stale)
        self.assertEqual((due["held"], due["kept"], due["new"]), (100.0, 80.0, 5.0))


def rss_kib() -> tuple[int, int]:
    """Return (VmRSS, VmHWM) of this process in KiB (Linux)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def main(count: int) -> None:
    """Fill a spool in a temporary directory, start a relay on it, print its memory."""
    base = Path(tempfile.mkdtemp())
    try:
        now = time.time()
        started = time.perf_counter()
        fill(base / "queue", count, now)
        filled = time.perf_counter() - started
        gc.collect()
        before, _ = rss_kib()
        clock = Clock()
        clock.advance(now)
        started = time.perf_counter()
        relay = start_relay(base / "queue", clock)
        relay.ready.addErrback(lambda f: sys.stderr.write(f.getTraceback()))
        loaded = time.perf_counter() - started
        gc.collect()
        after, peak = rss_kib()
        entries = sum(1 for o in gc.get_objects() if isinstance(o, QueueEntry))
        sys.stdout.write(
            f"{count} deferred entries (written in {filled:.1f} s, read in {loaded:.1f} s)\n"
            f"RSS before the relay {before / 1024:.1f} MiB, with it {after / 1024:.1f} MiB "
            f"(+{(after - before) / 1024:.1f} MiB, {(after - before) * 1024 / count:.0f} B "
            f"per entry); peak {peak / 1024:.1f} MiB; QueueEntry objects alive: {entries}\n"
        )
        relay.stopService()
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000)

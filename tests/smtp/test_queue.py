"""Tests for the durable relay spool (netproto_twisted.smtp.relay.queue) and ``netproto queue``."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core.durable import GroupCommitter
from netproto_twisted.mailstore.fsops import FsOps
from netproto_twisted.smtp import MailFrom, RcptTo
from netproto_twisted.smtp.interfaces import Envelope, IDeliveryTarget, IMessageSink
from netproto_twisted.smtp.relay import queue_cli
from netproto_twisted.smtp.relay.queue import (
    DELIVERED,
    PENDING,
    EntryNotFound,
    QueueEntry,
    Spool,
    SpoolDirectory,
    synchronous_runner,
)


def envelope(*rcpts: str, sender: str = "a@example.org", **params: str | None) -> Envelope:
    return Envelope(
        mail_from=MailFrom(sender, dict(params)),
        recipients=tuple(RcptTo(r, {"NOTIFY": "FAILURE,DELAY"}) for r in rcpts),
        helo="client.example.org",
        peer="192.0.2.1",
        received_at=1_700_000_000.0,
    )


class RecordingFs(FsOps):
    """FsOps that records the order of durability operations."""

    def __init__(self, log: list[str], fail_fsync: bool = False) -> None:
        super().__init__(fsync=True)
        self.log = log
        self.fail_fsync = fail_fsync

    def fsync(self, fd: int) -> None:
        if self.fail_fsync:
            raise OSError(5, "I/O error")
        self.log.append("fsync " + os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        super().fsync(fd)

    def fsync_dir(self, path: str) -> None:
        self.log.append("fsync_dir " + os.path.basename(path))
        super().fsync_dir(path)

    def rename(self, src: str, dst: str) -> None:
        self.log.append(f"rename {os.path.basename(src)} -> {os.path.basename(dst)}")
        super().rename(src, dst)


class ManualRunner:
    """A Runner that runs work only when the test says so (one call at a time)."""

    def __init__(self) -> None:
        self.queue: list[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]] = []

    def __call__(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.queue.append((f, args, d))
        return d

    def run_one(self) -> None:
        f, args, d = self.queue.pop(0)
        maybeDeferred(f, *args).chainDeferred(d)

    def run_all(self) -> None:
        while self.queue:
            self.run_one()


class SpoolTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(lambda: __import__("shutil").rmtree(self.dir, ignore_errors=True))
        self.reactor = MemoryReactorClock()
        self.log: list[str] = []
        self.spool = Spool(
            self.dir / "q", self.reactor, runner=synchronous_runner, fs=RecordingFs(self.log)
        )

    def store(self, data: bytes, *rcpts: str) -> str:
        env = envelope(*(rcpts or ("b@remote.example",)))
        sink = self.spool.open(env, env.recipients)
        for i in range(0, len(data), 1000):
            sink.write(data[i : i + 1000])
        return self.successResultOf(sink.commit())

    def test_interfaces(self) -> None:
        self.assertTrue(IDeliveryTarget.providedBy(self.spool))
        env = envelope("b@remote.example")
        self.assertTrue(IMessageSink.providedBy(self.spool.open(env, env.recipients)))

    def test_commit_stores_message_and_envelope(self) -> None:
        data = b"Subject: hi\r\n\r\n" + b"x" * 200_000 + b"\r\n"
        entry_id = self.store(data, "b@remote.example", "c@other.example")
        d = self.spool.directory
        self.assertEqual(d.message_path(entry_id).read_bytes(), data)
        entry = self.successResultOf(self.spool.get(entry_id))
        self.assertEqual(entry.mail_from.address, "a@example.org")
        self.assertEqual(
            [r.address for r in entry.recipients], ["b@remote.example", "c@other.example"]
        )
        self.assertEqual(entry.recipients[0].params, {"NOTIFY": "FAILURE,DELAY"})
        self.assertEqual(entry.recipients[0].status, PENDING)
        self.assertEqual(
            (entry.helo, entry.peer, entry.size), ("client.example.org", "192.0.2.1", len(data))
        )
        self.assertEqual(entry.received_at, 1_700_000_000.0)
        self.assertEqual(os.listdir(d.tmp), [])

    def test_durability_order(self) -> None:
        """Message fsync, envelope fsync, renames (message first), then the directory fsync."""
        del self.log[:]  # creating the directories
        entry_id = self.store(b"Subject: x\r\n\r\nbody\r\n")
        self.assertEqual(
            self.log,
            [
                f"fsync {entry_id}.msg",
                f"fsync {entry_id}.env",
                f"rename {entry_id}.msg -> {entry_id}.msg",
                f"rename {entry_id}.env -> {entry_id}.env",
                "fsync_dir entries",
            ],
        )

    def test_commit_fires_only_after_files_and_directory_fsync(self) -> None:
        runner = ManualRunner()
        spool = Spool(self.dir / "q2", self.reactor, runner=runner, fs=RecordingFs(self.log))
        del self.log[:]  # (creating the spool's directories)
        env = envelope("b@remote.example")
        sink = spool.open(env, env.recipients)
        sink.write(b"Subject: x\r\n\r\nbody\r\n")
        results: list[str] = []
        sink.commit().addCallback(results.append)
        self.assertEqual((results, self.log), ([], []))
        runner.run_one()  # the whole commit, through the committer
        self.assertEqual(results, [sink.entry.id])
        kinds = [line.split()[0] for line in self.log]
        self.assertEqual(kinds, ["fsync", "fsync", "rename", "rename", "fsync_dir"])
        self.assertEqual(self.log[-1], "fsync_dir entries")
        self.assertEqual(spool.directory.ids(), [sink.entry.id])

    def test_write_asks_to_wait_while_two_blocks_are_on_their_way(self) -> None:
        runner = ManualRunner()
        spool = Spool(self.dir / "q4", self.reactor, runner=runner)
        env = envelope("b@remote.example")
        sink = spool.open(env, env.recipients)
        block = b"x" * (64 * 1024)
        self.assertIsNone(sink.write(block))  # one block on its way: go on
        wait = sink.write(block)  # a second one: wait for the disk
        self.assertIsNotNone(wait)
        self.assertNoResult(wait)
        runner.run_one()  # the first block is written
        self.successResultOf(wait)
        runner.run_all()
        d = sink.commit()
        runner.run_all()
        entry_id = self.successResultOf(d)
        self.assertEqual(spool.directory.message_path(entry_id).stat().st_size, 2 * len(block))

    def test_abort_removes_temporary_file(self) -> None:
        env = envelope("b@remote.example")
        sink = self.spool.open(env, env.recipients)
        sink.write(b"x" * 100_000)  # past the buffer: the tmp file exists
        self.assertEqual(len(os.listdir(self.spool.directory.tmp)), 1)
        sink.abort()
        sink.abort()
        self.assertEqual(os.listdir(self.spool.directory.tmp), [])
        self.assertEqual(self.spool.directory.ids(), [])
        self.assertRaises(ValueError, sink.write, b"more")

    def test_failed_fsync_fails_commit_and_leaves_nothing(self) -> None:
        spool = Spool(
            self.dir / "q3", self.reactor, runner=synchronous_runner, fs=RecordingFs([], True)
        )
        env = envelope("b@remote.example")
        sink = spool.open(env, env.recipients)
        sink.write(b"x" * 70_000)
        failure = self.failureResultOf(sink.commit(), OSError)
        self.assertEqual(failure.value.errno, 5)
        self.assertEqual(os.listdir(spool.directory.tmp), [])
        self.assertEqual(os.listdir(spool.directory.entries), [])

    def test_listener_sees_committed_entries(self) -> None:
        seen: list[QueueEntry] = []
        self.spool.add_listener(seen.append)
        entry_id = self.store(b"Subject: x\r\n\r\nbody\r\n")
        self.assertEqual([e.id for e in seen], [entry_id])
        self.spool.remove_listener(seen.append)
        self.store(b"Subject: y\r\n\r\nbody\r\n")
        self.assertEqual(len(seen), 1)

    def test_envelope_id_is_used_when_free(self) -> None:
        env = Envelope(MailFrom("a@b.example"), (RcptTo("c@d.example"),), id="0190abcdef")
        for expected_same in (True, False):
            sink = self.spool.open(env, env.recipients)
            sink.write(b"x\r\n")
            entry_id = self.successResultOf(sink.commit())
            self.assertEqual(entry_id == "0190abcdef", expected_same)

    def test_recover_removes_unfinished_commits(self) -> None:
        d = self.spool.directory
        kept = self.store(b"Subject: x\r\n\r\nbody\r\n")
        (d.tmp / "junk.msg").write_bytes(b"partial")
        (d.entries / "0190aa.msg").write_bytes(b"no envelope")
        (d.entries / "0190bb.env").write_bytes(b"{}")
        (d.entries / "0190cc.hold").write_bytes(b"")
        for path in (d.tmp / "junk.msg", *d.entries.iterdir()):
            os.utime(path, (self.spool.created_at - 60, self.spool.created_at - 60))
        self.assertEqual(self.successResultOf(self.spool.recover()), 4)
        self.assertEqual(sorted(os.listdir(d.entries)), [kept + ".env", kept + ".msg"])
        self.assertEqual(os.listdir(d.tmp), [])

    def test_recover_spares_commits_in_progress(self) -> None:
        """Files younger than the Spool belong to commits running now (the server's)."""
        d = self.spool.directory
        env = envelope("b@remote.example")
        sink = self.spool.open(env, env.recipients)
        sink.write(b"x" * 100_000)  # its tmp file exists now
        old = d.tmp / "old.msg"
        old.write_bytes(b"partial")
        os.utime(old, (self.spool.created_at - 10, self.spool.created_at - 10))
        self.assertEqual(self.successResultOf(self.spool.recover()), 1)
        self.assertFalse(old.exists())
        entry_id = self.successResultOf(sink.commit())
        self.assertEqual(d.message_path(entry_id).read_bytes(), b"x" * 100_000)

    def test_save_is_atomic_and_never_resurrects(self) -> None:
        entry_id = self.store(b"Subject: x\r\n\r\nbody\r\n")
        entry = self.successResultOf(self.spool.get(entry_id))
        entry.recipients[0].status = DELIVERED
        entry.recipients[0].reply = (250, "2.0.0", "ok")
        self.assertTrue(self.successResultOf(self.spool.save(entry)))
        again = self.successResultOf(self.spool.get(entry_id))
        self.assertEqual(again.recipients[0].status, DELIVERED)
        self.assertEqual(again.recipients[0].reply, (250, "2.0.0", "ok"))
        self.successResultOf(self.spool.delete(entry_id))
        self.assertFalse(self.successResultOf(self.spool.save(entry)))
        self.failureResultOf(self.spool.get(entry_id), EntryNotFound)
        self.assertEqual(os.listdir(self.spool.directory.entries), [])
        self.assertEqual(os.listdir(self.spool.directory.tmp), [])

    def test_remove(self) -> None:
        entry_id = self.store(b"Subject: x\r\n\r\nbody\r\n")
        entry = self.successResultOf(self.spool.get(entry_id))
        self.assertTrue(self.successResultOf(self.spool.remove(entry)))
        self.assertFalse(self.successResultOf(self.spool.remove(entry)))
        self.assertEqual(os.listdir(self.spool.directory.entries), [])

    def test_hold_release(self) -> None:
        d = self.spool.directory
        entry_id = self.store(b"Subject: x\r\n\r\nbody\r\n")
        self.successResultOf(self.spool.hold(entry_id))
        self.assertTrue(self.successResultOf(self.spool.get(entry_id)).held)
        self.assertIsNone(self.successResultOf(self.spool.open_message(entry_id)))
        self.assertTrue(d.take_trigger(d.rescan_file))
        self.successResultOf(self.spool.release(entry_id))
        self.assertFalse(self.successResultOf(self.spool.get(entry_id)).held)
        f = self.successResultOf(self.spool.open_message(entry_id))
        self.addCleanup(f.close)
        self.assertEqual(f.read(), b"Subject: x\r\n\r\nbody\r\n")
        self.assertTrue(d.take_trigger(d.rescan_file))
        self.assertFalse(d.take_trigger(d.rescan_file))

    def test_unknown_ids(self) -> None:
        for bad in ("0190ffff", "../etc/passwd", ""):
            self.failureResultOf(self.spool.get(bad), EntryNotFound)
            self.failureResultOf(self.spool.hold(bad), EntryNotFound)
            self.failureResultOf(self.spool.release(bad), EntryNotFound)
            self.failureResultOf(self.spool.delete(bad), EntryNotFound)

    def test_list_oldest_first_and_skips_unreadable(self) -> None:
        ids = [self.store(b"m%d\r\n" % i) for i in range(3)]
        (self.spool.directory.entries / "0000aa.env").write_bytes(b"not json")
        (self.spool.directory.entries / "0000aa.msg").write_bytes(b"")
        entries = self.successResultOf(self.spool.list())
        self.assertEqual([e.id for e in entries], ids)

    def test_flush_trigger(self) -> None:
        d = self.spool.directory
        self.successResultOf(self.spool.flush())
        self.assertTrue(d.take_trigger(d.flush_file))
        self.assertFalse(d.take_trigger(d.flush_file))

    def test_json_roundtrip_and_errors(self) -> None:
        entry_id = self.store(b"x\r\n", "b@remote.example")
        entry = self.successResultOf(self.spool.get(entry_id))
        entry.recipients[0].reply = (451, None, "later")
        entry.recipients[0].attempts = 3
        self.assertEqual(QueueEntry.from_json(entry.to_json()), entry)
        self.assertIs(entry.eight_bit, False)
        entry.eight_bit = True
        self.assertIs(QueueEntry.from_json(entry.to_json()).eight_bit, True)
        older = json.loads(entry.to_json())
        del older["eight_bit"]  # written before the relay recorded it
        self.assertIsNone(QueueEntry.from_json(json.dumps(older).encode()).eight_bit)
        self.assertRaises(ValueError, QueueEntry.from_json, b'{"format": 99}')
        self.assertRaises(ValueError, QueueEntry.from_json, b'{"format": 1}')


class QueueCommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(lambda: __import__("shutil").rmtree(self.dir, ignore_errors=True))
        self.queue = self.dir / "queue"
        spool = Spool(self.queue, MemoryReactorClock(), runner=synchronous_runner)
        env = envelope("b@remote.example", sender="")
        sink = spool.open(env, env.recipients)
        sink.write(b"Subject: x\r\n\r\nbody\r\n")
        self.entry_id = self.successResultOf(sink.commit())
        self.directory = SpoolDirectory(self.queue)

    def run_cli(self, *argv: str) -> tuple[int, str, str]:
        from netproto_twisted import cli

        parser = argparse.ArgumentParser(prog="netproto")
        sub = parser.add_subparsers(dest="command", required=True)
        queue_cli.add_parser(sub)
        self.patch(cli, "build_parser", lambda: parser)
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        code = cli.main(["queue", *argv, "--queue", str(self.queue)])
        return code, out.getvalue(), err.getvalue()

    def test_list(self) -> None:
        code, out, _ = self.run_cli("list")
        self.assertEqual(code, 0)
        self.assertIn(self.entry_id, out)
        self.assertIn("<>", out)
        self.assertIn("b@remote.example  (pending, not tried yet)", out)
        self.assertIn("1 entries, 1 with pending recipients", out)

    def test_hold_release_delete(self) -> None:
        self.assertEqual(self.run_cli("hold", self.entry_id)[0], 0)
        self.assertIn("HELD", self.run_cli("list")[1])
        self.assertEqual(self.run_cli("release", self.entry_id)[0], 0)
        self.assertNotIn("HELD", self.run_cli("list")[1])
        self.assertEqual(self.run_cli("delete", self.entry_id)[0], 0)
        self.assertEqual(self.directory.ids(), [])
        code, _, err = self.run_cli("delete", self.entry_id)
        self.assertEqual(code, 2)
        self.assertIn("no queue entry", err)

    def test_flush(self) -> None:
        self.assertEqual(self.run_cli("flush")[0], 0)
        self.assertTrue(self.directory.take_trigger(self.directory.flush_file))

    def test_not_a_queue(self) -> None:
        self.queue = self.dir / "nothing"
        code, _, err = self.run_cli("list")
        self.assertEqual(code, 2)
        self.assertIn("not a queue directory", err)

    def test_format_entry_times(self) -> None:
        entry = self.directory.load(self.entry_id)
        entry.recipients[0].attempts = 2
        entry.recipients[0].next_try = entry.received_at + 600
        entry.recipients[0].reply = (451, "4.3.0", "try later")
        text = queue_cli.format_entry(entry, now=entry.received_at + 30)
        self.assertIn("attempt 2, next in 10m", text)
        self.assertIn("[451 try later]", text)
        self.assertIn("30s ago", text)


class GroupCommitSpoolTests(TestCase):
    """New entries through the real committer thread share their directory fsyncs."""

    timeout = 30

    def test_group_commit_shares_syncs_between_messages(self) -> Deferred[Any]:
        self.log: list[str] = []
        self.dir = Path(self.mktemp())
        committer = GroupCommitter(reactor, "file", RecordingFs(self.log))
        self.addCleanup(committer.stop)
        spool = Spool(self.dir / "q3", MemoryReactorClock(), runner=ManualRunner(),
                      committer=committer)
        env = envelope("b@remote.example")
        sinks = [spool.open(env, env.recipients) for _ in range(10)]
        commits = []
        for sink in sinks:
            sink.write(b"Subject: x\r\n\r\nbody\r\n")
            commits.append(sink.commit())
        return DeferredList(commits, fireOnOneErrback=True).addCallback(
            lambda _: (
                self.assertEqual(len(spool.directory.ids()), 10),
                self.assertLess(self.log.count("fsync_dir entries"), 10),
            )
        )

"""Group commit: pipelined syncfs rounds, per-directory fsync rounds, failures, stop."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core import durable
from netproto_twisted.core.durable import (
    GroupCommitter,
    RunnerCommitter,
    commit_now,
    resolve_mode,
    syncfs_supported,
)


class Log:
    """One ordered record of every job step and sync, shared by the fakes (thread-safe)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def add(self, kind: str, what: str) -> None:
        with self.lock:
            self.events.append((kind, what))

    def kinds(self, what: str) -> list[str]:
        return [kind for kind, w in self.events if w == what]


class FakeJob:
    def __init__(self, log: Log, name: str, path: str = "/fs1", fail: str = "") -> None:
        self.log, self.name, self.path, self.fail = log, name, path, fail

    def _step(self, kind: str) -> None:
        self.log.add(kind, self.name)
        if self.fail == kind:
            raise OSError(f"{kind} failed")

    def stage(self, sync_files: bool) -> None:
        self._step("stage+fsync" if sync_files else "stage")

    def publish(self) -> Sequence[str]:
        self._step("publish")
        return [self.path + "/new"]

    def discard(self) -> None:
        self._step("discard")

    def unpublish(self) -> None:
        self._step("unpublish")

    def sync_paths(self) -> Sequence[str]:
        return [self.path]


class FakeOps:
    """Records syncs; ``gate`` (when set) blocks a sync until the test releases it."""

    def __init__(self, log: Log, fail: set[str] | None = None) -> None:
        self.log = log
        self.fail = fail or set()
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def _sync(self, kind: str, path: str) -> None:
        self.log.add(kind, path)
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if path in self.fail:
            raise OSError(5, "Input/output error", path)

    def syncfs(self, path: str) -> None:
        self._sync("syncfs", path)

    def fsync_dir(self, path: str) -> None:
        self._sync("fsync_dir", path)


class ModeTests(SynchronousTestCase):
    def test_resolve(self) -> None:
        self.assertEqual(resolve_mode("file"), "file")
        self.assertEqual(resolve_mode("fs"), "fs")
        self.assertEqual(resolve_mode("auto"), "fs" if syncfs_supported() else "file")
        with self.assertRaises(ValueError):
            resolve_mode("sometimes")

    def test_syncfs_and_fsync_dir_on_a_real_directory(self) -> None:
        path = self.mktemp()
        os.makedirs(path)
        durable.fsync_dir(path)
        if sys.platform.startswith("linux"):
            durable.syncfs(path)
        with self.assertRaises(OSError):
            durable.syncfs(os.path.join(path, "missing"))


class CommitNowTests(SynchronousTestCase):
    def test_fs_mode_syncs_before_and_after_publishing(self) -> None:
        log = Log()
        commit_now(FakeJob(log, "a"), "fs", FakeOps(log))  # type: ignore[arg-type]
        self.assertEqual([k for k, _ in log.events], ["stage", "syncfs", "publish", "syncfs"])

    def test_file_mode_fsyncs_files_then_directories(self) -> None:
        log = Log()
        commit_now(FakeJob(log, "a"), "file", FakeOps(log))  # type: ignore[arg-type]
        self.assertEqual(log.events, [("stage+fsync", "a"), ("publish", "a"),
                                      ("fsync_dir", "/fs1/new")])

    def test_failed_sync_after_publishing_unpublishes(self) -> None:
        log = Log()
        with self.assertRaises(OSError):
            commit_now(FakeJob(log, "a"), "file",
                       FakeOps(log, fail={"/fs1/new"}))  # type: ignore[arg-type]
        self.assertEqual(log.kinds("a"), ["stage+fsync", "publish", "unpublish"])

    def test_failed_publish_discards(self) -> None:
        log = Log()
        with self.assertRaises(OSError):
            commit_now(FakeJob(log, "a", fail="publish"), "fs", FakeOps(log))  # type: ignore[arg-type]
        self.assertEqual(log.kinds("a"), ["stage", "publish", "discard"])

    def test_runner_committer_goes_through_the_runner(self) -> None:
        ran: list[object] = []

        def run(f: object, *args: object) -> Deferred[None]:
            ran.append(f)
            d: Deferred[None] = Deferred()
            d.callback(f(*args))  # type: ignore[operator]
            return d

        log = Log()
        committer = RunnerCommitter(run, "file", FakeOps(log))  # type: ignore[arg-type]
        self.successResultOf(committer.commit(FakeJob(log, "a")))  # type: ignore[arg-type]
        self.assertEqual(ran, [commit_now])
        self.assertIn(("publish", "a"), log.events)


class GroupCommitterTests(TestCase):
    timeout = 30

    def committer(self, mode: str, ops: FakeOps) -> GroupCommitter:
        committer = GroupCommitter(reactor, mode, ops)  # type: ignore[arg-type]
        self.addCleanup(committer.stop)
        return committer

    @inlineCallbacks
    def test_fs_rounds_share_one_syncfs_and_publish_only_after_it(self):  # type: ignore[no-untyped-def]
        log = Log()
        ops = FakeOps(log)
        ops.gate = threading.Event()
        committer = self.committer("fs", ops)
        first = committer.commit(FakeJob(log, "j0"))  # type: ignore[arg-type]
        # The thread stages j0 and blocks in its syncfs; these ten queue up meanwhile.
        yield _wait_in_thread(ops.entered)
        rest = [committer.commit(FakeJob(log, f"j{i}")) for i in range(1, 11)]  # type: ignore[arg-type]
        ops.gate.set()
        yield DeferredList([first, *rest], fireOnOneErrback=True)
        syncs = [i for i, (kind, _) in enumerate(log.events) if kind == "syncfs"]
        self.assertLessEqual(len(syncs), 4)  # 11 jobs, 2 syncs each if alone
        for i in range(11):
            name = f"j{i}"
            staged = log.events.index(("stage", name))
            published = log.events.index(("publish", name))
            # a syncfs lies between staging and publishing, and another one after publishing
            self.assertTrue(any(staged < s < published for s in syncs), name)
            self.assertTrue(any(s > published for s in syncs), name)
        self.assertEqual(committer.committed, 11)
        self.assertLess(committer.rounds, 11)

    @inlineCallbacks
    def test_file_mode_one_fsync_per_directory_per_round(self):  # type: ignore[no-untyped-def]
        log = Log()
        ops = FakeOps(log)
        ops.gate = threading.Event()
        committer = self.committer("file", ops)
        first = committer.commit(FakeJob(log, "j0"))  # type: ignore[arg-type]
        yield _wait_in_thread(ops.entered)
        rest = [committer.commit(FakeJob(log, f"j{i}", path=f"/fs{i % 2}"))  # type: ignore[arg-type]
                for i in range(1, 9)]
        ops.gate.set()
        yield DeferredList([first, *rest], fireOnOneErrback=True)
        dir_syncs = [w for kind, w in log.events if kind == "fsync_dir"]
        self.assertEqual(dir_syncs, ["/fs1/new", "/fs1/new", "/fs0/new"])
        for i in range(9):
            self.assertEqual(log.kinds(f"j{i}"), ["stage+fsync", "publish"])

    @inlineCallbacks
    def test_failures_stay_with_their_job(self):  # type: ignore[no-untyped-def]
        log = Log()
        ops = FakeOps(log)
        ops.gate = threading.Event()
        committer = self.committer("fs", ops)
        blocker = committer.commit(FakeJob(log, "first"))  # type: ignore[arg-type]
        yield _wait_in_thread(ops.entered)
        good = committer.commit(FakeJob(log, "good"))  # type: ignore[arg-type]
        bad_stage = committer.commit(FakeJob(log, "s", fail="stage"))  # type: ignore[arg-type]
        bad_publish = committer.commit(FakeJob(log, "p", fail="publish"))  # type: ignore[arg-type]
        ops.gate.set()
        yield blocker
        yield good
        yield self.assertFailure(bad_stage, OSError)
        yield self.assertFailure(bad_publish, OSError)
        self.assertEqual(log.kinds("s"), ["stage", "discard"])
        self.assertEqual(log.kinds("p"), ["stage", "publish", "discard"])

    @inlineCallbacks
    def test_failed_syncfs_fails_its_file_system_only(self):  # type: ignore[no-untyped-def]
        log = Log()
        committer = self.committer("fs", FakeOps(log, fail={"/broken"}))
        broken = committer.commit(FakeJob(log, "b", path="/broken"))  # type: ignore[arg-type]
        fine = committer.commit(FakeJob(log, "f", path="/fine"))  # type: ignore[arg-type]
        yield self.assertFailure(broken, OSError)
        yield fine
        self.assertEqual(log.kinds("b"), ["stage", "discard"])
        self.assertEqual(log.kinds("f"), ["stage", "publish"])

    @inlineCallbacks
    def test_several_threads_share_one_queue(self):  # type: ignore[no-untyped-def]
        log = Log()
        committer = GroupCommitter(reactor, "fs", FakeOps(log), threads=3)  # type: ignore[arg-type]
        jobs = [committer.commit(FakeJob(log, f"j{i}")) for i in range(60)]  # type: ignore[arg-type]
        yield DeferredList(jobs, fireOnOneErrback=True)
        yield committer.stop()
        self.assertEqual(committer.committed, 60)
        for i in range(60):
            self.assertEqual(log.kinds(f"j{i}"), ["stage", "publish"])
        with self.assertRaises(ValueError):
            GroupCommitter(reactor, "fs", threads=0)

    @inlineCallbacks
    def test_stop_finishes_held_jobs_then_refuses(self):  # type: ignore[no-untyped-def]
        log = Log()
        committer = GroupCommitter(reactor, "fs", FakeOps(log))  # type: ignore[arg-type]
        jobs = [committer.commit(FakeJob(log, f"j{i}")) for i in range(5)]  # type: ignore[arg-type]
        stopped = committer.stop()
        yield DeferredList(jobs, fireOnOneErrback=True)
        yield stopped
        self.assertEqual(committer.committed, 5)
        late = committer.commit(FakeJob(log, "late"))  # type: ignore[arg-type]
        yield self.assertFailure(late, RuntimeError)
        self.assertEqual(log.kinds("late"), [])


def _wait_in_thread(event: threading.Event) -> Deferred[bool]:
    from twisted.internet.threads import deferToThread

    d: Deferred[bool] = deferToThread(event.wait, 10)
    return d

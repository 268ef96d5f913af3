"""Group commit: make many new files durable with few sync calls, from one thread.

A *job* is one unit of durable work, say one message for three Maildirs:
it writes temporary files (:meth:`IDurableJob.stage`), then moves them into
place (:meth:`IDurableJob.publish`).  Its Deferred fires only once the data
*and* the new directory entries are on stable storage.

Two ways to get there (``mode``):

``"fs"`` (Linux)
    Jobs are staged without per-file fsyncs; one ``syncfs(2)`` of the file
    system then makes every staged file durable at once, and the next round's
    ``syncfs`` makes their renames durable.  Rounds are pipelined: round *k*
    publishes what round *k-1* staged and stages what arrived meanwhile, so a
    busy committer needs one ``syncfs`` per round however many jobs it holds.
    Linux documents ``syncfs`` as giving "the same guarantees as fsync()
    called on every file in the file system" and reports write-back errors
    from it since 5.8, so ``"auto"`` picks this mode only there.  Its cost is
    the file system's other dirty data, which the call writes too.
``"file"`` (everywhere)
    ``fsync`` of every file while staging, then one ``fsync`` per distinct
    directory after publishing, shared by every job of the round.

Either way the work runs on one thread by default (``threads``): on the
development machine a second one cost the SMTP server more CPU per message
and throughput.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.core.reactors import ICoreThreadsReactor

__all__ = [
    "MODES",
    "Committer",
    "GroupCommitter",
    "IDurableJob",
    "RunnerCommitter",
    "SyncOps",
    "commit_now",
    "fsync_dir",
    "resolve_mode",
    "syncfs",
    "syncfs_supported",
]

MODES = ("auto", "fs", "file")
"""Accepted values of ``mode``: ``auto`` resolves to ``fs`` or ``file``."""

_log = Logger(namespace="netproto.durable")


class IDurableJob(Protocol):
    """What a committer needs of a job; every method runs on the committer's thread."""

    def stage(self, sync_files: bool) -> None:
        """Write and close the temporary files; ``fsync`` each when ``sync_files``."""

    def publish(self) -> Sequence[str]:
        """Move the files into place, all or none; return the directories changed."""

    def discard(self) -> None:
        """Remove the temporary files (the job failed before or while publishing)."""

    def unpublish(self) -> None:
        """Remove the published files (the sync that should have covered them failed)."""

    def sync_paths(self) -> Sequence[str]:
        """Directories whose file systems hold the job's files (staged and published)."""


class Committer(Protocol):
    """What users of a committer need: :class:`GroupCommitter` and :class:`RunnerCommitter`."""

    def commit(self, job: IDurableJob) -> Deferred[None]:
        """Fire once ``job`` is durable."""


class SyncOps(Protocol):
    """The sync primitives a committer calls (tests record or fake them)."""

    def fsync_dir(self, path: str) -> None:
        """Flush a directory's entries to stable storage."""

    def syncfs(self, path: str) -> None:
        """Flush the whole file system holding ``path`` to stable storage."""


def fsync_dir(path: str) -> None:
    """Flush a directory (its entries) to stable storage."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        function: Callable[[int], int] = libc.syncfs
    except (OSError, AttributeError):
        return None
    return function


_SYNCFS = _load_syncfs()


def _kernel_at_least(major: int, minor: int) -> bool:
    release = os.uname().release.split("-")[0].split(".")
    try:
        return (int(release[0]), int(release[1])) >= (major, minor)
    except (ValueError, IndexError):
        return False


def syncfs_supported() -> bool:
    """Tell whether ``syncfs(2)`` exists here and reports write-back errors (Linux >= 5.8)."""
    return _SYNCFS is not None and _kernel_at_least(5, 8)


def syncfs(path: str) -> None:
    """``syncfs(2)`` the file system holding ``path``; raise :class:`OSError` on failure."""
    if _SYNCFS is None:
        raise OSError(f"syncfs is not available on {sys.platform}")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        if _SYNCFS(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


def resolve_mode(mode: str) -> str:
    """Return ``"fs"`` or ``"file"`` for a configured mode; reject unknown ones."""
    if mode not in MODES:
        raise ValueError(f"sync mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "auto":
        return "fs" if syncfs_supported() else "file"
    return mode


class _DefaultOps:
    def fsync_dir(self, path: str) -> None:
        fsync_dir(path)

    def syncfs(self, path: str) -> None:
        syncfs(path)


_Result = tuple["Deferred[None]", Failure | None]


def _safely(action: Callable[[], object], what: str) -> None:
    try:
        action()
    except Exception:
        _log.failure("cleanup after a failed commit: {what}", what=what)


def _sync_all(
    jobs: Sequence[Any], paths_of: Callable[[Any], Sequence[str]], sync: Callable[[str], None],
    key: Callable[[str], object],
) -> dict[int, Failure]:
    """Sync each distinct key of the jobs' paths once; return failures by job index."""
    by_key: dict[object, tuple[str, list[int]]] = {}
    failed: dict[int, Failure] = {}
    for index, job in enumerate(jobs):
        try:
            for path in paths_of(job):
                by_key.setdefault(key(path), (path, []))[1].append(index)
        except Exception:
            failed[index] = Failure()
    for path, indexes in by_key.values():
        try:
            sync(path)
        except Exception:
            failure = Failure()
            for index in indexes:
                failed.setdefault(index, failure)
    return failed


def _device(path: str) -> object:
    try:
        return os.stat(path).st_dev
    except OSError:
        return path


def commit_now(job: IDurableJob, mode: str, ops: SyncOps | None = None) -> None:
    """Make one job durable in the calling thread (``mode`` already resolved); raise on failure."""
    ops = ops if ops is not None else _DefaultOps()
    try:
        job.stage(mode == "file")
        if mode == "fs":
            for path in _distinct(job.sync_paths(), _device):
                ops.syncfs(path)
        changed = job.publish()
    except BaseException:
        _safely(job.discard, "discard")
        raise
    try:
        if mode == "fs":
            for path in _distinct(job.sync_paths(), _device):
                ops.syncfs(path)
        else:
            for path in _distinct(changed, lambda p: p):
                ops.fsync_dir(path)
    except BaseException:
        _safely(job.unpublish, "unpublish")
        raise


def _distinct(paths: Sequence[str], key: Callable[[str], object]) -> list[str]:
    seen: dict[object, str] = {}
    for path in paths:
        seen.setdefault(key(path), path)
    return list(seen.values())


class RunnerCommitter:
    """A committer that commits each job alone through ``run`` (tools and tests; no batching)."""

    def __init__(
        self, run: Callable[..., Deferred[Any]], mode: str = "file", ops: SyncOps | None = None
    ) -> None:
        self.mode = resolve_mode(mode)
        self._run = run
        self._ops = ops

    def commit(self, job: IDurableJob) -> Deferred[None]:
        """Fire once ``job`` is durable (or with its failure)."""
        d: Deferred[None] = self._run(commit_now, job, self.mode, self._ops)
        return d


class GroupCommitter:
    """Threads that commit jobs in rounds; every job of a round shares the round's syncs.

    ``threads`` threads (1 by default) take jobs from one queue, each
    running its own rounds; with more than one, one thread's sync overlaps
    another's.  (On the development machine a second thread cost the SMTP
    server 13 % more CPU per message and 11 % of its throughput.)  ``reactor`` must provide
    ``callFromThread`` and system event triggers; the threads start with
    the first :meth:`commit` and end at reactor shutdown (after the jobs
    they hold) or on :meth:`stop`.
    """

    def __init__(
        self,
        reactor: ICoreThreadsReactor,
        mode: str = "auto",
        ops: SyncOps | None = None,
        name: str = "netproto-commit",
        threads: int = 1,
    ) -> None:
        if threads < 1:
            raise ValueError(f"a committer needs at least one thread, not {threads}")
        self._thread_count = threads
        self._running_threads = 0
        self.mode = resolve_mode(mode)
        self._reactor = reactor
        self._ops: SyncOps = ops if ops is not None else _DefaultOps()
        self._name = name
        self._cond = threading.Condition()
        self._queue: list[tuple[IDurableJob, Deferred[None]]] = []
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._devices: dict[str, object] = {}
        self._stopped: Deferred[None] | None = None
        self.rounds = 0
        """Rounds run so far (each with at most one sync per file system or directory)."""
        self.committed = 0
        """Jobs that became durable."""

    def commit(self, job: IDurableJob) -> Deferred[None]:
        """Queue ``job``; fire once it is durable (or with its failure).  Reactor thread only."""
        d: Deferred[None] = Deferred()
        if self._stopping:
            d.errback(Failure(RuntimeError("the committer is stopped")))
            return d
        if not self._threads:
            self._start()
        with self._cond:
            self._queue.append((job, d))
            self._cond.notify()
        return d

    def stop(self) -> Deferred[None]:
        """Finish the queued jobs, end the threads; fire when they have ended."""
        if self._stopped is None:
            self._stopped = Deferred()
            with self._cond:
                self._stopping = True
                self._cond.notify_all()
            if not self._threads:
                self._stopped.callback(None)
        return self._stopped

    def _start(self) -> None:
        self._running_threads = self._thread_count
        for number in range(self._thread_count):
            thread = threading.Thread(
                target=self._main, name=f"{self._name}-{number}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        self._reactor.addSystemEventTrigger("before", "shutdown", self.stop)

    # -- the committer thread --------------------------------------------------

    def _take(self, block: bool) -> list[tuple[IDurableJob, Deferred[None]]] | None:
        """Return the queued jobs (waiting for some if ``block``); None once stopped and empty."""
        with self._cond:
            while block and not self._queue and not self._stopping:
                self._cond.wait()
            if not self._queue and self._stopping and block:
                return None
            batch, self._queue = self._queue, []
            return batch

    def _main(self) -> None:
        staged: list[tuple[IDurableJob, Deferred[None]]] = []
        try:
            while True:
                new = self._take(block=not staged)
                if new is None:
                    break
                results: list[_Result] = []
                if self.mode == "fs":
                    staged = self._fs_round(staged, new, results)
                else:
                    self._file_round(new, results)
                with self._cond:
                    self.rounds += 1
                if results:
                    self._reactor.callFromThread(self._report, results)
                del new, results  # hold no finished job (nor its data) while waiting
        except Exception:  # a bug: fail what is held rather than leave it hanging
            failure = Failure()
            _log.failure("the committer thread failed", failure)
            for job, _ in staged:
                _safely(job.discard, "discard")
            self._reactor.callFromThread(self._report, [(d, failure) for _, d in staged])
        finally:
            self._reactor.callFromThread(self._ended)

    def _stage(
        self, jobs: list[tuple[IDurableJob, Deferred[None]]], sync_files: bool,
        results: list[_Result],
    ) -> list[tuple[IDurableJob, Deferred[None]]]:
        ok = []
        for job, d in jobs:
            try:
                job.stage(sync_files)
            except Exception:
                results.append((d, Failure()))
                _safely(job.discard, "discard")
            else:
                ok.append((job, d))
        return ok

    def _publish(
        self, jobs: list[tuple[IDurableJob, Deferred[None]]], results: list[_Result]
    ) -> tuple[list[tuple[IDurableJob, Deferred[None]]], list[Sequence[str]]]:
        ok, changed = [], []
        for job, d in jobs:
            try:
                dirs = job.publish()
            except Exception:
                results.append((d, Failure()))
                _safely(job.discard, "discard")
            else:
                ok.append((job, d))
                changed.append(dirs)
        return ok, changed

    def _fs_round(
        self,
        staged: list[tuple[IDurableJob, Deferred[None]]],
        new: list[tuple[IDurableJob, Deferred[None]]],
        results: list[_Result],
    ) -> list[tuple[IDurableJob, Deferred[None]]]:
        """Publish what the last round made durable, stage ``new``, one syncfs per device."""
        published, _ = self._publish(staged, results)
        written = self._stage(new, False, results)
        jobs = published + written
        failed = _sync_all([job for job, _ in jobs], lambda j: j.sync_paths(), self._ops.syncfs,
                           self._device)
        still_staged = []
        for index, (job, d) in enumerate(jobs):
            failure = failed.get(index)
            is_published = index < len(published)
            if failure is not None:
                _safely(job.unpublish if is_published else job.discard, "undo")
                results.append((d, failure))
            elif is_published:
                results.append((d, None))
            else:
                still_staged.append((job, d))
        return still_staged

    def _file_round(
        self, new: list[tuple[IDurableJob, Deferred[None]]], results: list[_Result]
    ) -> None:
        """fsync every file, publish, then one fsync per changed directory."""
        written = self._stage(new, True, results)
        published, changed = self._publish(written, results)
        failed = _sync_all(list(range(len(published))), lambda i: changed[i],
                           self._ops.fsync_dir, lambda p: p)
        for index, (job, d) in enumerate(published):
            failure = failed.get(index)
            if failure is not None:
                _safely(job.unpublish, "unpublish")
            results.append((d, failure))

    def _device(self, path: str) -> object:
        """The file system of ``path`` (remembered: one ``stat`` per directory, not per job)."""
        device = self._devices.get(path)
        if device is None:
            device = _device(path)
            if len(self._devices) < 10_000:
                self._devices[path] = device
        return device

    # -- back on the reactor thread ----------------------------------------------

    def _report(self, results: list[_Result]) -> None:
        for d, failure in results:
            if failure is None:
                self.committed += 1
                d.callback(None)
            else:
                d.errback(failure)

    def _ended(self) -> None:
        self._running_threads -= 1
        if self._running_threads > 0:
            return
        with self._cond:
            leftover, self._queue = self._queue, []
        for _, d in leftover:
            d.errback(Failure(RuntimeError("the committer stopped before this job")))
        if self._stopped is None:
            self._stopped = Deferred()
        with contextlib.suppress(Exception):
            self._stopped.callback(None)

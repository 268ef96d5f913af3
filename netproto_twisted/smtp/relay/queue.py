"""The durable relay spool: messages waiting for remote delivery, with per-recipient state.

Layout of a spool directory::

    DIR/tmp/            files being written (removed at start-up)
    DIR/entries/ID.msg  the message, exactly as received
    DIR/entries/ID.env  the envelope and the per-recipient state (JSON)
    DIR/entries/ID.hold present while the entry is on hold
    DIR/lock            flock()ed around every change of an ``.env`` file
    DIR/flush           touched by ``netproto queue flush``: retry everything now
    DIR/rescan          touched by ``delete``/``hold``/``release``: re-read the spool

A message is committed in a worker thread: its ``tmp/`` file is fsync'd,
then the envelope file is written and fsync'd, both are renamed into
``entries/`` (message first) and the directory is fsync'd (one fsync shared
by every commit that renamed meanwhile).  Only then does
:meth:`SpoolSink.commit` fire.  An ``.env`` file is what makes an entry
exist: at start-up a ``.msg`` without one (or the reverse) is a commit that
never finished, and is removed.

State changes (:meth:`Spool.save`) rewrite the ``.env`` file atomically
(temporary file, fsync, rename, directory fsync) under the lock, and never
resurrect an entry deleted meanwhile.  :class:`SpoolDirectory` is the
blocking implementation (used by the command line); :class:`Spool` runs it
in a thread pool and implements
:class:`~netproto_twisted.smtp.interfaces.IDeliveryTarget`.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, DeferredLock, succeed
from twisted.internet.interfaces import IReactorFromThreads, IReactorThreads
from twisted.logger import Logger
from zope.interface import implementer

from netproto_twisted.core.durable import Committer, GroupCommitter, RunnerCommitter
from netproto_twisted.core.reactors import IStoreReactor
from netproto_twisted.core.threads import Runner, synchronous_runner, thread_runner
from netproto_twisted.mailstore.delivery import DirSyncer
from netproto_twisted.mailstore.fsops import FsOps
from netproto_twisted.smtp.interfaces import Envelope, IDeliveryTarget, IMessageSink
from netproto_twisted.smtp.relay import _queue_entry
from netproto_twisted.smtp.relay._queue_dir import SpoolDirectory
from netproto_twisted.smtp.relay._queue_entry import EntryNotFound, QueueEntry, RecipientState
from netproto_twisted.smtp.wire._params import RcptTo

__all__ = [
    "DELIVERED",
    "FAILED",
    "PENDING",
    "EntryNotFound",
    "QueueEntry",
    "RecipientState",
    "Spool",
    "SpoolDirectory",
    "SpoolSink",
    "synchronous_runner",
]

# The entry and directory classes live in private modules; this is their public home.
for _cls in (EntryNotFound, QueueEntry, RecipientState, SpoolDirectory):
    _cls.__module__ = __name__
del _cls

#: Recipient state: not delivered yet (will be tried at ``next_try``).
PENDING = _queue_entry.PENDING
#: Recipient state: the next hop accepted the message.
DELIVERED = _queue_entry.DELIVERED
#: Recipient state: permanently refused, or the lifetime ran out.
FAILED = _queue_entry.FAILED

_CHUNK = 64 * 1024
_T = TypeVar("_T")
_HIGH = re.compile(rb"[\x80-\xff]")


def _is_ascii(data: bytes | bytearray | memoryview) -> bool:
    if isinstance(data, (bytes, bytearray)):
        return data.isascii()
    return _HIGH.search(data) is None


_log = Logger(namespace="netproto.smtp.queue")


@implementer(IMessageSink)
class SpoolSink:
    """One message being written into the spool; :meth:`commit` fires once it is durable.

    Blocks of 64 KiB go to the ``tmp/`` file through the thread pool as they
    fill; :meth:`write` returns a Deferred while more than one is on its
    way (the SMTP server then stops reading).  :meth:`commit` hands the
    sink to the spool's committer (:mod:`netproto_twisted.core.durable`),
    which finishes the files, makes them durable and renames them into
    place, many messages sharing each sync.
    """

    def __init__(self, spool: Spool, entry: QueueEntry) -> None:
        self._spool = spool
        self.entry = entry
        self._fd: int | None = None
        self._buffer = bytearray()
        self._last = b""
        self._chain: Deferred[None] | None = None
        self._pending = 0
        self._drain_waiters: list[Deferred[None]] = []
        self._failure: BaseException | None = None
        self._done = False

    def write(self, data: bytes) -> Deferred[None] | None:
        """Append message bytes; a Deferred means: two blocks are on their way, wait."""
        if self._done:
            raise ValueError("sink already committed or aborted")
        self.entry.size += len(data)
        if not self.entry.eight_bit and not _is_ascii(data):
            self.entry.eight_bit = True  # (so the relay need not scan the file for BODY=)
        self._buffer += data
        if len(self._buffer) < _CHUNK:
            return None
        chunk, self._buffer = bytes(self._buffer), bytearray()
        self._pending += 1
        self._then(lambda: self._write_chunk(chunk)).addBoth(self._chunk_written)
        if self._pending < 2:
            return None
        waiter: Deferred[None] = Deferred()
        self._drain_waiters.append(waiter)
        return waiter

    def _chunk_written(self, result: object) -> None:
        self._pending -= 1
        if self._pending < 2 or self._failure is not None:
            waiters, self._drain_waiters = self._drain_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def _then(self, work: Callable[[], None]) -> Deferred[None]:
        """Run ``work`` in the thread pool after every earlier piece of work."""
        run = self._spool.run

        def step(_: object) -> Deferred[None]:
            d: Deferred[None] = run(work)
            return d

        if self._chain is None:
            self._chain = step(None)
        else:
            self._chain = self._chain.addCallback(step)
        self._chain.addErrback(self._remember)
        return self._chain

    def _remember(self, failure: Any) -> None:
        if self._failure is None:
            self._failure = failure.value
        # later steps are skipped: commit() reports the first failure

    def _ensure_open(self) -> int:
        if self._failure is not None:
            raise self._failure
        if self._fd is None:
            entry_id, self._fd = self._spool.directory.new_tmp(self.entry.id)
            self.entry.id = entry_id
        return self._fd

    def _write_chunk(self, chunk: bytes) -> None:
        fd = self._ensure_open()
        self._spool.directory.append(fd, chunk)

    # -- IDurableJob (the committer's thread) --------------------------------------------

    def stage(self, sync_files: bool) -> None:
        """Write the last bytes, close the message, write the envelope (fsync'd if asked)."""
        fd = self._ensure_open()
        self._fd = None
        directory = self._spool.directory
        try:
            directory.append(fd, self._last)
        except BaseException:
            os.close(fd)
            raise
        directory.stage(self.entry, fd, sync=sync_files)

    def publish(self) -> list[str]:
        """Rename the message and its envelope into the queue."""
        self._spool.directory.publish(self.entry.id)
        return [str(self._spool.directory.entries)]

    def discard(self) -> None:
        """Remove the temporary files of a failed commit."""
        self._spool.directory.discard_tmp(self.entry.id, self._fd)
        self._fd = None

    def unpublish(self) -> None:
        """Remove the entry again (its sync failed)."""
        self._spool.directory.unpublish(self.entry.id)

    def sync_paths(self) -> list[str]:
        """The queue's entries directory."""
        return [str(self._spool.directory.entries)]

    # -- IMessageSink ----------------------------------------------------------------------

    def commit(self) -> Deferred[str]:
        """Make the message and its envelope durable; fire with the queue id."""
        if self._done:
            raise ValueError("sink already committed or aborted")
        self._done = True
        self._last, self._buffer = bytes(self._buffer), bytearray()
        written: Deferred[None] = self._chain if self._chain is not None else succeed(None)

        def handoff(_: object) -> Deferred[None]:
            if self._failure is not None:
                failure = self._failure
                self._spool.run(self.discard).addErrback(lambda f: None)
                raise failure
            return self._spool.committer.commit(self)

        def done(_: object) -> str:
            self._spool.committed(self.entry)
            return self.entry.id

        return written.addCallback(handoff).addCallback(done)

    def abort(self) -> None:
        """Discard the message (idempotent; a no-op once commit() was called)."""
        if self._done:
            return  # aborted already, or committing (a failed commit cleans up itself)
        self._done = True
        self._buffer = bytearray()
        if self._chain is not None:
            directory = self._spool.directory

            def discard() -> None:
                directory.discard_tmp(self.entry.id, self._fd)
                self._fd = None

            self._then(discard).addErrback(lambda f: None)


@implementer(IDeliveryTarget)
class Spool:
    """The durable relay queue under ``directory``: a delivery target and the relay's store.

    Blocking disk work runs through ``runner`` (default: the reactor's thread
    pool); new entries are made durable by ``committer`` (default: a
    :class:`~netproto_twisted.core.durable.GroupCommitter` in mode ``sync``,
    or, with an explicit ``runner``, each commit alone through it).  Every
    method returning a Deferred is called from the reactor thread.
    """

    def __init__(
        self,
        directory: Path | str,
        reactor: IStoreReactor,
        *,
        runner: Runner | None = None,
        fs: FsOps | None = None,
        clock: Callable[[], float] | None = None,
        sync: str = "auto",
        committer: Committer | None = None,
    ) -> None:
        self.directory = SpoolDirectory(directory, fs)
        self.directory.create()
        self.reactor = reactor
        if committer is None:
            if runner is not None:
                mode = "file" if sync == "auto" else sync
                committer = RunnerCommitter(runner, mode, self.directory.fs)
            else:
                committer = GroupCommitter(reactor, sync, self.directory.fs,
                                           name="netproto-queue-commit")
        self.committer: Committer = committer
        """Makes new entries durable (:mod:`netproto_twisted.core.durable`)."""
        if runner is None:
            assert IReactorThreads.providedBy(reactor) and IReactorFromThreads.providedBy(reactor)
            runner = thread_runner(reactor, reactor.getThreadPool())
        self.run: Runner = runner
        self.syncer = DirSyncer(str(self.directory.entries), self.directory.fs, runner)
        self._clock = clock if clock is not None else time.time
        self.created_at = time.time()
        """When this Spool was made: :meth:`recover` leaves younger files alone."""
        self._listeners: list[Callable[[QueueEntry], None]] = []
        self._locks: dict[str, DeferredLock] = {}

    # --- IDeliveryTarget ----------------------------------------------------------------

    def open(self, envelope: Envelope, recipients: Sequence[RcptTo]) -> SpoolSink:
        """Start spooling one message for ``recipients`` (one entry for all of them)."""
        entry = QueueEntry(
            id=envelope.id,
            mail_from=envelope.mail_from,
            recipients=[RecipientState(r.address, dict(r.params)) for r in recipients],
            helo=envelope.helo,
            peer=envelope.peer,
            authenticated_as=envelope.authenticated_as,
            tls=envelope.tls,
            received_at=envelope.received_at or self._clock(),
            eight_bit=False,
        )
        return SpoolSink(self, entry)

    # --- listeners ----------------------------------------------------------------------

    def add_listener(self, listener: Callable[[QueueEntry], None]) -> None:
        """Call ``listener(entry)`` for each newly committed entry (the relay does)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[QueueEntry], None]) -> None:
        """Stop calling ``listener``."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def committed(self, entry: QueueEntry) -> None:
        """Tell the listeners about a newly durable entry."""
        for listener in list(self._listeners):
            try:
                listener(entry)
            except Exception:
                _log.failure("spool listener failed")

    # --- entries ------------------------------------------------------------------------

    def recover(self) -> Deferred[int]:
        """Clean up after a crash (what predates this Spool only); fire with how many files."""
        # File times come from a coarse clock: a margin keeps this process's files safe.
        d: Deferred[int] = self.run(self.directory.recover, self.created_at - 2.0)
        return d

    def list(self) -> Deferred[list[QueueEntry]]:
        """Fire with every entry, oldest first."""
        d: Deferred[list[QueueEntry]] = self.run(self.directory.load_all)
        return d

    def scan(self, summarise: Callable[[QueueEntry], _T]) -> Deferred[builtins.list[_T]]:
        """Fire with ``summarise(entry)`` of every entry, oldest first (one entry read at a time).

        ``summarise`` runs in the spool's thread pool: it must only read the entry.
        """
        d: Deferred[builtins.list[_T]] = self.run(self.directory.scan, summarise)
        return d

    def get(self, entry_id: str) -> Deferred[QueueEntry]:
        """Fire with one entry, or fail with :class:`EntryNotFound`."""
        d: Deferred[QueueEntry] = self.run(self.directory.load, entry_id)
        return d

    def get_many(self, ids: builtins.list[str]) -> Deferred[builtins.list[QueueEntry | None]]:
        """Fire with the entries ``ids`` read in one go (None for those gone or unreadable)."""
        d: Deferred[builtins.list[QueueEntry | None]] = self.run(self.directory.load_many, ids)
        return d

    def hold(self, entry_id: str) -> Deferred[None]:
        """Put an entry on hold."""
        d: Deferred[None] = self.run(self.directory.hold, entry_id)
        return d

    def release(self, entry_id: str) -> Deferred[None]:
        """Release a held entry (due at once)."""
        d: Deferred[None] = self.run(self.directory.release, entry_id)
        return d

    def delete(self, entry_id: str) -> Deferred[None]:
        """Delete an entry."""
        d: Deferred[None] = self.run(self.directory.delete, entry_id)
        return d

    def flush(self) -> Deferred[None]:
        """Ask the relay watching this spool to retry everything now."""
        d: Deferred[None] = self.run(self.directory.request_flush)
        return d

    def open_message(self, entry_id: str) -> Deferred[Any]:
        """Fire with the message file opened for reading (binary), or None if held or gone."""

        def opener() -> Any:
            if not self.directory.is_deliverable(entry_id):
                return None
            try:
                return open(self.directory.message_path(entry_id), "rb")
            except FileNotFoundError:
                return None

        d: Deferred[Any] = self.run(opener)
        return d

    def _lock(self, entry_id: str) -> DeferredLock:
        lock = self._locks.get(entry_id)
        if lock is None:
            lock = self._locks[entry_id] = DeferredLock()
        return lock

    def save(self, entry: QueueEntry) -> Deferred[bool]:
        """Persist the entry's state durably; fire False if it was deleted meanwhile.

        Saves of one entry run one at a time, each writing the state as it is
        when its turn comes, so the newest state is always the last written.
        """
        lock = self._lock(entry.id)

        def write() -> Deferred[bool]:
            data = entry.to_json()
            d: Deferred[bool] = self.run(self.directory.save, entry.id, data)

            def synced(saved: bool) -> Deferred[bool]:
                return self.syncer.sync().addCallback(lambda _: saved)

            return d.addCallback(synced)

        return lock.run(write).addBoth(self._unlock_done, entry.id)

    def remove(self, entry: QueueEntry) -> Deferred[bool]:
        """Remove a finished entry durably; fire False if it was already gone."""
        lock = self._lock(entry.id)

        def work() -> Deferred[bool]:
            d: Deferred[bool] = self.run(self.directory.remove, entry.id)
            return d.addCallback(lambda gone: self.syncer.sync().addCallback(lambda _: gone))

        return lock.run(work).addBoth(self._unlock_done, entry.id)

    def _unlock_done(self, result: Any, entry_id: str) -> Any:
        lock = self._locks.get(entry_id)
        if lock is not None and not lock.locked and not lock.waiting:
            del self._locks[entry_id]
        return result

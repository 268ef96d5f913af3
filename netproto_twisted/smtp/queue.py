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

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, DeferredLock, maybeDeferred
from twisted.internet.interfaces import IReactorFromThreads, IReactorThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from zope.interface import implementer

from netproto_twisted.core.errors import NetprotoError
from netproto_twisted.core.ids import uuid7
from netproto_twisted.mailstore.delivery import DirSyncer, Runner
from netproto_twisted.mailstore.fsops import FsOps
from netproto_twisted.smtp._params import MailFrom, RcptTo
from netproto_twisted.smtp.interfaces import Envelope, IDeliveryTarget, IMessageSink

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

#: Recipient state: not delivered yet (will be tried at ``next_try``).
PENDING = "pending"
#: Recipient state: the next hop accepted the message.
DELIVERED = "delivered"
#: Recipient state: permanently refused, or the lifetime ran out.
FAILED = "failed"

_FORMAT = 1
_CHUNK = 64 * 1024
_ENV = ".env"
_MSG = ".msg"
_HOLD = ".hold"

_log = Logger(namespace="netproto.smtp.queue")


class EntryNotFound(NetprotoError):
    """No queue entry has this id (never had, or it was delivered or deleted)."""


@dataclass
class RecipientState:
    """One recipient of a queue entry and how its delivery stands."""

    address: str
    params: dict[str, str | None] = field(default_factory=dict)
    status: str = PENDING
    attempts: int = 0
    next_try: float = 0.0
    #: The last reply for this recipient: ``(code, enhanced status or None, text)``.
    reply: tuple[int, str | None, str] | None = None
    #: The host that gave the last reply (``dns; mx.example.org`` style host name).
    remote: str = ""
    #: Whether the final outcome needs no (further) DSN: reported, or not asked for.
    notified: bool = False
    #: Whether a delay DSN was sent.
    delay_notified: bool = False

    @property
    def rcpt(self) -> RcptTo:
        """The recipient as a :class:`~netproto_twisted.smtp.RcptTo`."""
        return RcptTo(self.address, dict(self.params))

    @property
    def domain(self) -> str:
        """The domain part of the address, lower case (``""`` if there is none)."""
        return self.address.rpartition("@")[2].lower() if "@" in self.address else ""


@dataclass
class QueueEntry:
    """One spooled message: its envelope and the state of each recipient."""

    id: str
    mail_from: MailFrom
    recipients: list[RecipientState]
    helo: str = ""
    peer: str = ""
    authenticated_as: str | None = None
    tls: bool = False
    received_at: float = 0.0
    size: int = 0
    held: bool = False

    @property
    def pending(self) -> list[RecipientState]:
        """The recipients still to be delivered."""
        return [r for r in self.recipients if r.status == PENDING]

    @property
    def finished(self) -> bool:
        """Whether nothing remains to be done: every recipient final and reported."""
        return all(r.status != PENDING and r.notified for r in self.recipients)

    def to_json(self) -> bytes:
        """Serialise the entry (the ``.env`` file's content)."""
        data: dict[str, Any] = {
            "format": _FORMAT,
            "id": self.id,
            "mail_from": {"address": self.mail_from.address, "params": self.mail_from.params},
            "helo": self.helo,
            "peer": self.peer,
            "authenticated_as": self.authenticated_as,
            "tls": self.tls,
            "received_at": self.received_at,
            "size": self.size,
            "recipients": [
                {
                    "address": r.address,
                    "params": r.params,
                    "status": r.status,
                    "attempts": r.attempts,
                    "next_try": r.next_try,
                    "reply": list(r.reply) if r.reply is not None else None,
                    "remote": r.remote,
                    "notified": r.notified,
                    "delay_notified": r.delay_notified,
                }
                for r in self.recipients
            ],
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, *, held: bool = False) -> QueueEntry:
        """Parse an ``.env`` file's content; raise ValueError if it is not one."""
        try:
            obj = json.loads(data.decode("utf-8"))
            if obj.get("format") != _FORMAT:
                raise ValueError(f"unknown spool format {obj.get('format')!r}")
            recipients = [
                RecipientState(
                    address=r["address"],
                    params=dict(r["params"]),
                    status=r["status"],
                    attempts=int(r["attempts"]),
                    next_try=float(r["next_try"]),
                    reply=(
                        (int(r["reply"][0]), r["reply"][1], str(r["reply"][2]))
                        if r["reply"] is not None
                        else None
                    ),
                    remote=r.get("remote", ""),
                    notified=bool(r["notified"]),
                    delay_notified=bool(r.get("delay_notified", False)),
                )
                for r in obj["recipients"]
            ]
            return cls(
                id=str(obj["id"]),
                mail_from=MailFrom(obj["mail_from"]["address"], dict(obj["mail_from"]["params"])),
                recipients=recipients,
                helo=obj.get("helo", ""),
                peer=obj.get("peer", ""),
                authenticated_as=obj.get("authenticated_as"),
                tls=bool(obj.get("tls", False)),
                received_at=float(obj.get("received_at", 0.0)),
                size=int(obj.get("size", 0)),
                held=held,
            )
        except (KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
            raise ValueError(f"not a spool entry: {e}") from e


def _valid_id(entry_id: str) -> bool:
    return bool(entry_id) and all(c in "0123456789abcdefABCDEF-" for c in entry_id)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class SpoolDirectory:
    """The blocking operations on a spool directory (call them from a worker thread or a CLI)."""

    def __init__(self, directory: Path | str, fs: FsOps | None = None) -> None:
        self.path = Path(directory)
        self.tmp = self.path / "tmp"
        self.entries = self.path / "entries"
        self.flush_file = self.path / "flush"
        self.rescan_file = self.path / "rescan"
        self.fs = fs if fs is not None else FsOps()

    # --- layout and locking ---------------------------------------------------------

    def create(self) -> None:
        """Create the directories (durably) if they are missing."""
        for d in (self.path, self.tmp, self.entries):
            if not d.is_dir():
                d.mkdir(mode=0o700, parents=True, exist_ok=True)
                self.fs.fsync_dir(str(d.parent))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the spool's lock (``flock`` on ``DIR/lock``; across threads and processes)."""
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    def env_path(self, entry_id: str) -> Path:
        """Return the path of an entry's envelope file."""
        return self.entries / (entry_id + _ENV)

    def message_path(self, entry_id: str) -> Path:
        """Return the path of an entry's message file."""
        return self.entries / (entry_id + _MSG)

    def hold_path(self, entry_id: str) -> Path:
        """Return the path of an entry's hold marker."""
        return self.entries / (entry_id + _HOLD)

    # --- start-up ---------------------------------------------------------------------

    def recover(self, older_than: float | None = None) -> int:
        """Remove what unfinished commits and deletions left behind; return how many files.

        With ``older_than`` (a ``time.time()`` value), only files last
        modified before then go: commits running in this process meanwhile
        (a server accepting mail while the relay starts) are left alone.
        """
        self.create()
        removed = 0

        def stale(path: Path) -> bool:
            if older_than is None:
                return True
            try:
                return path.stat().st_mtime < older_than
            except FileNotFoundError:
                return False

        with self.locked():
            for name in os.listdir(self.tmp):
                if stale(self.tmp / name):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.tmp / name)
                        removed += 1
            names = set(os.listdir(self.entries))
            for name in names:
                base, ext = os.path.splitext(name)
                partner = {_ENV: base + _MSG, _MSG: base + _ENV, _HOLD: base + _ENV}.get(ext)
                if partner is not None and partner not in names and stale(self.entries / name):
                    _log.warn("spool: removing {name} (unfinished commit)", name=name)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.entries / name)
                        removed += 1
            if removed:
                self.fs.fsync_dir(str(self.entries))
        return removed

    # --- commit -------------------------------------------------------------------------

    def new_tmp(self, preferred: str) -> tuple[str, int]:
        """Create ``tmp/ID.msg`` exclusively; return the id and the open descriptor."""
        entry_id = preferred if _valid_id(preferred) else uuid7().hex
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        while True:
            if not self.env_path(entry_id).exists():
                try:
                    return entry_id, os.open(self.tmp / (entry_id + _MSG), flags, 0o600)
                except FileExistsError:
                    pass
            entry_id = uuid7().hex

    def append(self, fd: int, data: bytes) -> None:
        """Append bytes to an open ``tmp/`` message file."""
        _write_all(fd, data)

    def finish(self, entry: QueueEntry, fd: int) -> None:
        """Fsync the message and its envelope and rename both into place (dir fsync not done)."""
        try:
            self.fs.fsync(fd)
        finally:
            os.close(fd)
        tmp_env = self.tmp / (entry.id + _ENV)
        efd = os.open(tmp_env, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            _write_all(efd, entry.to_json())
            self.fs.fsync(efd)
        finally:
            os.close(efd)
        self.fs.rename(str(self.tmp / (entry.id + _MSG)), str(self.message_path(entry.id)))
        self.fs.rename(str(tmp_env), str(self.env_path(entry.id)))

    def discard_tmp(self, entry_id: str, fd: int | None) -> None:
        """Close and remove an unfinished message's temporary files."""
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        for ext in (_MSG, _ENV):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp / (entry_id + ext))

    # --- reading ------------------------------------------------------------------------

    def ids(self) -> list[str]:
        """Return the ids of every entry, oldest first (uuid7 ids sort by time)."""
        return sorted(n[: -len(_ENV)] for n in os.listdir(self.entries) if n.endswith(_ENV))

    def load(self, entry_id: str) -> QueueEntry:
        """Read one entry; raise :class:`EntryNotFound` if there is none."""
        if not _valid_id(entry_id):
            raise EntryNotFound(f"no queue entry {entry_id!r}")
        try:
            data = self.env_path(entry_id).read_bytes()
        except FileNotFoundError:
            raise EntryNotFound(f"no queue entry {entry_id!r}") from None
        return QueueEntry.from_json(data, held=self.hold_path(entry_id).exists())

    def load_all(self) -> list[QueueEntry]:
        """Read every entry (unreadable ones are logged and skipped)."""
        entries = []
        for entry_id in self.ids():
            try:
                entries.append(self.load(entry_id))
            except EntryNotFound:
                continue  # removed meanwhile
            except (ValueError, OSError) as e:
                _log.error("spool: unreadable entry {id}: {error}", id=entry_id, error=str(e))
        return entries

    def is_deliverable(self, entry_id: str) -> bool:
        """Tell whether the entry still exists and is not on hold."""
        return self.env_path(entry_id).exists() and not self.hold_path(entry_id).exists()

    # --- changes ------------------------------------------------------------------------

    def save(self, entry_id: str, data: bytes) -> bool:
        """Replace an entry's state atomically (dir fsync not done); False if it was deleted."""
        tmp_env = self.tmp / f"{entry_id}{_ENV}.{uuid7().hex}"
        fd = os.open(tmp_env, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, data)
            self.fs.fsync(fd)
        finally:
            os.close(fd)
        with self.locked():
            if not self.env_path(entry_id).exists():
                os.unlink(tmp_env)
                return False
            self.fs.rename(str(tmp_env), str(self.env_path(entry_id)))
        return True

    def remove(self, entry_id: str) -> bool:
        """Remove an entry (envelope first, so it never half-exists); dir fsync not done."""
        with self.locked():
            try:
                os.unlink(self.env_path(entry_id))
            except FileNotFoundError:
                return False
            for path in (self.message_path(entry_id), self.hold_path(entry_id)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        return True

    def delete(self, entry_id: str) -> None:
        """Delete an entry durably and tell a running relay; raise :class:`EntryNotFound`."""
        if not _valid_id(entry_id) or not self.remove(entry_id):
            raise EntryNotFound(f"no queue entry {entry_id!r}")
        self.fs.fsync_dir(str(self.entries))
        self.touch(self.rescan_file)

    def hold(self, entry_id: str) -> None:
        """Put an entry on hold (no delivery attempts until released)."""
        self.load(entry_id)
        with self.locked():
            if not self.env_path(entry_id).exists():
                raise EntryNotFound(f"no queue entry {entry_id!r}")
            fd = os.open(self.hold_path(entry_id), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.close(fd)
        self.fs.fsync_dir(str(self.entries))
        self.touch(self.rescan_file)

    def release(self, entry_id: str) -> None:
        """Release a held entry and make it due at once."""
        entry = self.load(entry_id)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.hold_path(entry_id))
        entry.held = False
        for r in entry.pending:
            r.next_try = 0.0
        self.save(entry_id, entry.to_json())
        self.fs.fsync_dir(str(self.entries))
        self.touch(self.rescan_file)

    def request_flush(self) -> None:
        """Ask a running relay to retry every pending recipient now."""
        self.touch(self.flush_file)

    def touch(self, path: Path) -> None:
        """Create or update a trigger file."""
        path.touch()

    def take_trigger(self, path: Path) -> bool:
        """Remove a trigger file; tell whether it was there."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True


@implementer(IMessageSink)
class SpoolSink:
    """One message being written into the spool; :meth:`commit` fires once it is durable."""

    def __init__(self, spool: Spool, entry: QueueEntry) -> None:
        self._spool = spool
        self.entry = entry
        self._fd: int | None = None
        self._buffer = bytearray()
        self._chain: Deferred[None] | None = None
        self._failure: BaseException | None = None
        self._done = False

    def write(self, data: bytes) -> None:
        """Append message bytes; every 64 KiB are written to disk in the thread pool."""
        if self._done:
            raise ValueError("sink already committed or aborted")
        self.entry.size += len(data)
        self._buffer += data
        if len(self._buffer) >= _CHUNK:
            chunk, self._buffer = bytes(self._buffer), bytearray()
            self._then(lambda: self._write_chunk(chunk))

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

    def commit(self) -> Deferred[str]:
        """Fsync the message and the envelope; fire with the queue id once both are durable."""
        if self._done:
            raise ValueError("sink already committed or aborted")
        self._done = True
        chunk, self._buffer = bytes(self._buffer), bytearray()
        directory = self._spool.directory

        def finish() -> None:
            fd = self._ensure_open()
            self._fd = None
            try:
                directory.append(fd, chunk)
            except BaseException:
                os.close(fd)
                raise
            directory.finish(self.entry, fd)

        d: Deferred[Any] = self._then(finish)

        def check(_: object) -> Deferred[None]:
            if self._failure is not None:
                raise self._failure
            return self._spool.syncer.sync()

        def cleanup(failure: Any) -> Any:
            self._spool.run(directory.discard_tmp, self.entry.id, self._fd)
            self._fd = None
            return failure

        def done(_: object) -> str:
            self._spool.committed(self.entry)
            return self.entry.id

        return d.addCallback(check).addErrback(cleanup).addCallback(done)

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


def _thread_runner(reactor: Any) -> Runner:
    pool = reactor.getThreadPool()

    def run(f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return deferToThreadPool(reactor, pool, f, *args)

    return run


def _sync_runner(f: Callable[..., Any], *args: Any) -> Deferred[Any]:
    return maybeDeferred(f, *args)


#: A Runner that runs the work at once in the calling thread (tests and tools only).
synchronous_runner: Runner = _sync_runner


@implementer(IDeliveryTarget)
class Spool:
    """The durable relay queue under ``directory``: a delivery target and the relay's store.

    Blocking disk work runs through ``runner`` (default: the reactor's thread
    pool).  Every method returning a Deferred is called from the reactor thread.
    """

    def __init__(
        self,
        directory: Path | str,
        reactor: IReactorTime,
        *,
        runner: Runner | None = None,
        fs: FsOps | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.directory = SpoolDirectory(directory, fs)
        self.directory.create()
        self.reactor = reactor
        if runner is None:
            assert IReactorThreads.providedBy(reactor) and IReactorFromThreads.providedBy(reactor)
            runner = _thread_runner(reactor)
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

    def get(self, entry_id: str) -> Deferred[QueueEntry]:
        """Fire with one entry, or fail with :class:`EntryNotFound`."""
        d: Deferred[QueueEntry] = self.run(self.directory.load, entry_id)
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

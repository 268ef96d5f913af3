"""The blocking file operations on a spool directory (its layout: :mod:`.queue`).

:class:`SpoolDirectory` is used from the relay's thread pool (through
:class:`~netproto_twisted.smtp.relay.queue.Spool`) and directly by the
``netproto queue`` command line.  Its public home is
:mod:`netproto_twisted.smtp.relay.queue`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from twisted.logger import Logger

from netproto_twisted.core.ids import uuid7
from netproto_twisted.mailstore.fsops import FsOps
from netproto_twisted.smtp.relay._queue_entry import EntryNotFound, QueueEntry

__all__ = ["SpoolDirectory", "valid_id", "write_all"]

_ENV = ".env"
_MSG = ".msg"
_HOLD = ".hold"

_log = Logger(namespace="netproto.smtp.queue")
_T = TypeVar("_T")


def valid_id(entry_id: str) -> bool:
    """Tell whether ``entry_id`` looks like a queue id (hex digits and dashes)."""
    return bool(entry_id) and all(c in "0123456789abcdefABCDEF-" for c in entry_id)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """Write every byte of ``data`` to ``fd``."""
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
        entry_id = preferred if valid_id(preferred) else uuid7().hex
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
        write_all(fd, data)

    def finish(self, entry: QueueEntry, fd: int) -> None:
        """Fsync the message and its envelope and rename both into place (dir fsync not done)."""
        self.stage(entry, fd, sync=True)
        self.publish(entry.id)

    def stage(self, entry: QueueEntry, fd: int, *, sync: bool) -> None:
        """Close the ``tmp/`` message and write its ``tmp/`` envelope; fsync both if ``sync``."""
        try:
            if sync:
                self.fs.fsync(fd)
        finally:
            os.close(fd)
        tmp_env = self.tmp / (entry.id + _ENV)
        efd = os.open(tmp_env, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            write_all(efd, entry.to_json())
            if sync:
                self.fs.fsync(efd)
        finally:
            os.close(efd)

    def publish(self, entry_id: str) -> None:
        """Rename a staged message, then its envelope (which makes the entry), into place."""
        message = self.message_path(entry_id)
        self.fs.rename(str(self.tmp / (entry_id + _MSG)), str(message))
        try:
            self.fs.rename(str(self.tmp / (entry_id + _ENV)), str(self.env_path(entry_id)))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(message)
            raise

    def unpublish(self, entry_id: str) -> None:
        """Remove a just-published entry again (the sync meant to cover it failed)."""
        for path in (self.env_path(entry_id), self.message_path(entry_id)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

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
        if not valid_id(entry_id):
            raise EntryNotFound(f"no queue entry {entry_id!r}")
        try:
            data = self.env_path(entry_id).read_bytes()
        except FileNotFoundError:
            raise EntryNotFound(f"no queue entry {entry_id!r}") from None
        return QueueEntry.from_json(data, held=self.hold_path(entry_id).exists())

    def load_many(self, ids: list[str]) -> list[QueueEntry | None]:
        """Read several entries; None for one that is gone or unreadable (that is logged)."""
        found: list[QueueEntry | None] = []
        for entry_id in ids:
            try:
                found.append(self.load(entry_id))
            except EntryNotFound:
                found.append(None)
            except ValueError as e:
                _log.error("spool: unreadable entry {id}: {error}", id=entry_id, error=str(e))
                found.append(None)
        return found

    def load_all(self) -> list[QueueEntry]:
        """Read every entry (unreadable ones are logged and skipped)."""
        return self.scan(lambda entry: entry)

    def scan(self, summarise: Callable[[QueueEntry], _T]) -> list[_T]:
        """Read every entry, oldest first, keeping only ``summarise(entry)`` of each.

        One entry is in memory at a time (a relay indexes a large spool this
        way); unreadable entries are logged and skipped.
        """
        found = []
        for entry_id in self.ids():
            try:
                found.append(summarise(self.load(entry_id)))
            except EntryNotFound:
                continue  # removed meanwhile
            except (ValueError, OSError) as e:
                _log.error("spool: unreadable entry {id}: {error}", id=entry_id, error=str(e))
        return found

    def is_deliverable(self, entry_id: str) -> bool:
        """Tell whether the entry still exists and is not on hold."""
        return self.env_path(entry_id).exists() and not self.hold_path(entry_id).exists()

    # --- changes ------------------------------------------------------------------------

    def save(self, entry_id: str, data: bytes) -> bool:
        """Replace an entry's state atomically (dir fsync not done); False if it was deleted."""
        tmp_env = self.tmp / f"{entry_id}{_ENV}.{uuid7().hex}"
        fd = os.open(tmp_env, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            write_all(fd, data)
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
        if not valid_id(entry_id) or not self.remove(entry_id):
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

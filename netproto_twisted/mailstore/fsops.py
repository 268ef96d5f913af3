"""The file-system operations the store relies on for durability, and the dot-lock.

:class:`FsOps` is the one place that calls ``fsync``, ``link`` and
``rename``; tests substitute a recording subclass to check the order of
operations.  It also remembers the directories into which hard links do not
work (file systems without them: vfat, some FUSE and network file systems),
so that a file goes there by a no-replace rename without a failed ``link``
per file.  :class:`DotLock` is Dovecot's ``<file>.lock`` protocol: created
with ``O_EXCL``, holding ``<pid>:<host>``, overridden when stale.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import time
from collections.abc import Callable
from types import TracebackType

from twisted.logger import Logger

from netproto_twisted.core import durable
from netproto_twisted.mailstore.errors import MailboxLocked

__all__ = [
    "LOCK_STALE_SECONDS",
    "LOCK_TIMEOUT_SECONDS",
    "NO_LINK_ERRNOS",
    "DotLock",
    "FsOps",
    "atomic_write",
]

LOCK_STALE_SECONDS = 120.0
"""A lock file not modified for this long is overridden (Dovecot's uidlist value)."""
LOCK_TIMEOUT_SECONDS = 30.0
"""How long :meth:`DotLock.acquire` waits before raising :class:`MailboxLocked`."""

NO_LINK_ERRNOS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV})
"""Errors of ``link(2)`` that mean "no hard link possible here" (no data was lost)."""

_MAX_REMEMBERED = 10_000
"""How many directories :class:`FsOps` remembers the hard-link answer of."""

_COPY_BLOCK = 256 * 1024

_log = Logger(namespace="netproto.mailstore")


class FsOps:
    """Durability-relevant file-system calls; subclass to instrument or to disable fsync."""

    def __init__(self, fsync: bool = True) -> None:
        self.fsync_enabled = fsync
        # Directory (or file system, by device number) -> whether hard links into it
        # work (True once seen working from another directory); one not here is
        # assumed to take them.
        self._links: dict[str | int, bool] = {}

    def fsync(self, fd: int) -> None:
        """Flush a file's data and metadata to stable storage."""
        if self.fsync_enabled:
            os.fsync(fd)

    def fsync_dir(self, path: str) -> None:
        """Flush a directory (its entries) to stable storage."""
        if self.fsync_enabled:
            durable.fsync_dir(path)

    def syncfs(self, path: str) -> None:
        """Flush the whole file system holding ``path`` (``syncfs(2)``) to stable storage."""
        if self.fsync_enabled:
            durable.syncfs(path)

    def link(self, src: str, dst: str) -> None:
        """Hard-link ``src`` to ``dst``; fails if ``dst`` exists."""
        os.link(src, dst)

    def rename(self, src: str, dst: str) -> None:
        """Rename ``src`` over ``dst``."""
        os.rename(src, dst)

    def unlink(self, path: str) -> None:
        """Remove a file."""
        os.unlink(path)

    def rename_new(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst``, refusing (:class:`FileExistsError`) if ``dst`` exists.

        For file systems without hard links; file names made unique by their
        writer make the gap between the check and the rename harmless.
        """
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst)
        self.rename(src, dst)

    def copy(self, src: str, dst: str, sync: bool) -> None:
        """Copy ``src`` into a new file ``dst`` (never replacing one); ``fsync`` it if ``sync``.

        A copy that fails half-way is removed.
        """
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        source = os.open(src, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            fd = os.open(dst, flags, 0o600)
            try:
                _copy_data(source, fd)
                if sync:
                    self.fsync(fd)
            except BaseException:
                os.close(fd)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(dst)
                raise
            os.close(fd)
        finally:
            os.close(source)

    def links_into(self, place: str | int) -> bool | None:
        """What is remembered of hard links into a directory (or a device): work, fail, None.

        ``place`` is a directory path or a file system's ``st_dev``; None
        means nothing is known (try a link).
        """
        return self._links.get(place)

    def remember_links(self, place: str | int, work: bool) -> None:
        """Remember whether hard links into a directory (or a device) work; a bounded memory."""
        if self._links.get(place) is work:
            return
        if len(self._links) >= _MAX_REMEMBERED:
            self._links.clear()
        self._links[place] = work
        if not work:
            _log.info("no hard links into {place}: files are renamed into place", place=place)

    def publish(self, src: str, dst: str, directory: str | None = None) -> None:
        """Move a finished file into place without ever replacing an existing one.

        ``link`` + ``unlink`` (the qmail way).  Where ``link`` fails with one
        of :data:`NO_LINK_ERRNOS` it falls back to :meth:`rename_new`, and
        remembers the directory (``dst``'s, which a caller that knows it may
        pass), whose later files are renamed at once.
        """
        if directory is None:
            directory = os.path.dirname(dst)
        if self._links.get(directory) is False:
            self.rename_new(src, dst)
            return
        try:
            self.link(src, dst)
        except OSError as exc:
            if exc.errno not in NO_LINK_ERRNOS:
                raise
            self.remember_links(directory, False)
            if os.path.lexists(dst):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), dst) from exc
            self.rename(src, dst)
            return
        self.unlink(src)


def _copy_data(source: int, target: int) -> None:
    """Copy everything from one file descriptor to another, a block at a time."""
    block = bytearray(_COPY_BLOCK)
    view = memoryview(block)
    while True:
        count = os.readv(source, [block])
        if count == 0:
            return
        chunk = view[:count]
        while chunk:
            chunk = chunk[os.write(target, chunk) :]


def atomic_write(
    path: str, data: bytes, fs: FsOps, *, tmp_suffix: str = ".tmp", durable: bool = True
) -> None:
    """Replace ``path`` with ``data``: write a temporary file, fsync, rename, fsync the dir.

    ``durable=False`` leaves out the directory's ``fsync``, for a change that
    may be lost in a crash (the old file then comes back whole): the new
    file is still flushed before the rename, so ``path`` is never seen
    half-written.
    """
    tmp = path + tmp_suffix
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        fs.fsync(fd)
    finally:
        os.close(fd)
    fs.rename(tmp, path)
    if durable:
        fs.fsync_dir(os.path.dirname(path) or ".")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DotLock:
    """An ``O_EXCL`` lock file next to the file it protects (Dovecot's dotlock).

    Stale when its owner is a dead process on this host, or when it has not
    been modified for ``stale_seconds``.  Usable as a context manager.
    Waiting sleeps in the calling thread: call it from a worker thread.
    """

    def __init__(
        self,
        path: str,
        *,
        stale_seconds: float = LOCK_STALE_SECONDS,
        timeout: float = LOCK_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = path
        self.stale_seconds = stale_seconds
        self.timeout = timeout
        self._clock = clock
        self._sleep = sleep
        self._held = False
        self._ident = f"{os.getpid()}:{socket.gethostname()}"

    @property
    def held(self) -> bool:
        """Tell whether this object holds the lock."""
        return self._held

    def try_acquire(self) -> bool:
        """Take the lock if it is free (or stale); never waits."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if self._break_if_stale():
                return self.try_acquire()
            return False
        try:
            os.write(fd, self._ident.encode())
        finally:
            os.close(fd)
        self._held = True
        return True

    def acquire(self) -> None:
        """Take the lock, waiting up to ``timeout`` seconds; raise :class:`MailboxLocked`."""
        deadline = self._clock() + self.timeout
        delay = 0.001
        while not self.try_acquire():
            if self._clock() >= deadline:
                raise MailboxLocked(f"{self.path} is locked")
            self._sleep(delay)
            delay = min(delay * 2, 0.05)

    def touch(self) -> None:
        """Refresh the lock's mtime during long work, so nobody thinks it stale."""
        if self._held:
            with contextlib.suppress(FileNotFoundError):
                os.utime(self.path)

    def release(self) -> None:
        """Remove the lock file."""
        if self._held:
            self._held = False
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                _log.warn("lock {path} vanished while held (overridden?)", path=self.path)

    def _break_if_stale(self) -> bool:
        try:
            st = os.stat(self.path)
            with open(self.path, "rb") as f:
                content = f.read(300).decode("utf-8", "replace")
        except FileNotFoundError:
            return True  # released meanwhile: try again
        pid_text, _, host = content.partition(":")
        dead_owner = (
            host == socket.gethostname()
            and pid_text.isdigit()
            and int(pid_text) != os.getpid()
            and not _pid_alive(int(pid_text))
        )
        too_old = self._clock() - st.st_mtime > self.stale_seconds
        if not (dead_owner or too_old):
            return False
        try:
            again = os.stat(self.path)
        except FileNotFoundError:
            return True
        if (again.st_ino, again.st_mtime_ns) != (st.st_ino, st.st_mtime_ns):
            return False  # someone else replaced it meanwhile
        _log.warn("overriding stale lock {path} ({owner})", path=self.path, owner=content)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        return True

    def __enter__(self) -> DotLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

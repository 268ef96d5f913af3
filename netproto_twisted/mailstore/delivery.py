"""Streamed, durable writes of new messages: delivery (SMTP) and append (IMAP).

A writer holds up to 64 KiB in memory; a message that fits is written to
``tmp/`` entirely in the thread pool at ``commit()``.  A longer one gets its
``tmp/`` file on the first 64 KiB and is streamed into it (page-cache writes
from the caller's thread, memory stays bounded).  ``commit()`` then, in the
thread pool, flushes and fsyncs the file and links it into ``new/`` (or
``cur/``), and only after the directory itself has been fsynced does the
Deferred fire.  Directory fsyncs are grouped by :class:`DirSyncer`: every
commit whose rename finished while one fsync was running shares the next one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from netproto_twisted.mailstore.filenames import format_info
from netproto_twisted.mailstore.folder import MaildirFolder
from netproto_twisted.mailstore.fsops import FsOps
from netproto_twisted.mailstore.interfaces import IAppendWriter, IMessageWriter

__all__ = [
    "WRITE_BUFFER_SIZE",
    "AppendWriter",
    "Appended",
    "DirSyncer",
    "MessageWriter",
    "Runner",
]

WRITE_BUFFER_SIZE = 64 * 1024
"""Bytes a writer buffers before writing them to its ``tmp/`` file."""

_T = TypeVar("_T")
Runner = Callable[..., "Deferred[Any]"]
"""``run(f, *args)``: call ``f(*args)`` in a worker thread, fire with its result."""

_log = Logger(namespace="netproto.mailstore")


class DirSyncer:
    """Group fsyncs of one directory: concurrent requests share one ``fsync``.

    A request made while an fsync runs is served by the next fsync, which
    starts after the current one ends, so every waiter's rename precedes the
    fsync that releases it.  Call from the reactor thread only.
    """

    def __init__(self, path: str, fs: FsOps, run: Runner) -> None:
        self.path = path
        self._fs = fs
        self._run = run
        self._waiting: list[Deferred[None]] = []
        self._running = False
        self.requests = 0
        """How many syncs were requested."""
        self.fsyncs = 0
        """How many directory fsyncs were run (at most ``requests``)."""

    def sync(self) -> Deferred[None]:
        """Return a Deferred that fires once an fsync of the directory begun after now ends."""
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        self.requests += 1
        if not self._running:
            self._start()
        return d

    def _start(self) -> None:
        batch, self._waiting = self._waiting, []
        self._running = True
        self.fsyncs += 1

        def finished(result: object) -> None:
            self._running = False
            for waiter in batch:
                if isinstance(result, Failure):
                    waiter.errback(result)
                else:
                    waiter.callback(None)
            if self._waiting:
                self._start()

        self._run(self._fs.fsync_dir, self.path).addBoth(finished)


class _TmpWriter:
    """Shared part of the writers: a file in ``tmp/`` written through a bounded buffer."""

    def __init__(
        self, folder: MaildirFolder, base: str, run: Runner, create_dirs: bool = False
    ) -> None:
        self._folder = folder
        self._create_dirs = create_dirs
        self._fs = folder.fs
        self._run = run
        self.base = base
        self.tmp_path = os.path.join(folder.tmp, base)
        self._fd: int | None = None
        self._created = False
        self._buffer = bytearray()
        self._done = False
        self.size = 0
        """Bytes written so far."""

    def write(self, data: bytes) -> None:
        """Append bytes to the message (buffered; at most 64 KiB are held in memory)."""
        if self._done:
            raise ValueError("writer already committed or aborted")
        self.size += len(data)
        self._buffer += data
        if len(self._buffer) >= WRITE_BUFFER_SIZE:
            self._flush()

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            self._fd = os.open(self.tmp_path, flags, 0o600)
        except FileNotFoundError:
            if not self._create_dirs:
                raise
            self._make_folder()
            self._fd = os.open(self.tmp_path, flags, 0o600)
        self._created = True
        return self._fd

    def _make_folder(self) -> None:
        """Create the folder's directories durably (first delivery to a new user)."""
        root = self._folder.path
        for directory in (self._folder.tmp, self._folder.new, self._folder.cur):
            os.makedirs(directory, mode=0o700, exist_ok=True)
        self._fs.fsync_dir(root)
        self._fs.fsync_dir(os.path.dirname(root))

    def _flush(self) -> None:
        if self._fd is None:
            self._open()
        assert self._fd is not None
        view = memoryview(self._buffer)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        view.release()
        self._buffer.clear()

    def _close_durably(self, mtime: float | None = None) -> None:
        """Worker thread: (create,) flush, fsync and close the tmp file."""
        fd = self._fd if self._fd is not None else self._open()
        try:
            self._flush()
            if mtime is not None:
                os.utime(fd, (mtime, mtime))
            self._fs.fsync(fd)
        finally:
            os.close(fd)
            self._fd = None

    def _discard(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._created:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp_path)

    def abort(self) -> None:
        """Drop the message: close and remove the ``tmp/`` file."""
        if self._done:
            return
        self._done = True
        self._buffer.clear()
        self._discard()

    def _begin_commit(self) -> None:
        if self._done:
            raise ValueError("writer already committed or aborted")
        self._done = True

    def _failed(self, failure: Failure) -> Failure:
        self._run(self._discard).addErrback(lambda f: None)
        return failure


@implementer(IMessageWriter)
class MessageWriter(_TmpWriter):
    """A message being delivered into ``new/``; ``commit()`` fires with the file name."""

    def __init__(
        self,
        folder: MaildirFolder,
        base: str,
        run: Runner,
        syncer: DirSyncer,
        create_dirs: bool = False,
    ) -> None:
        super().__init__(folder, base, run, create_dirs)
        self._syncer = syncer

    def _finish(self) -> str:
        self._close_durably()
        name = f"{self.base},S={self.size}"
        self._fs.publish(self.tmp_path, os.path.join(self._folder.new, name))
        return name

    def commit(self) -> Deferred[str]:
        """Make the message durable in ``new/``; fire with its file name only after fsyncs."""
        self._begin_commit()
        d: Deferred[str] = self._run(self._finish)

        def synced(name: str) -> Deferred[str]:
            return self._syncer.sync().addCallback(lambda _: name)

        return d.addCallbacks(synced, self._failed)


@dataclass(frozen=True)
class Appended:
    """The result of an IMAP APPEND: UIDVALIDITY, UID and file name of the new message."""

    uid_validity: int
    uid: int
    filename: str


@implementer(IAppendWriter)
class AppendWriter(_TmpWriter):
    """A message being appended into ``cur/`` with flags and an internal date."""

    def __init__(
        self,
        folder: MaildirFolder,
        base: str,
        run: Runner,
        syncer: DirSyncer,
        flags: frozenset[str],
        internal_date: float | None,
    ) -> None:
        super().__init__(folder, base, run)
        self._syncer = syncer
        self._flags = flags
        self._internal_date = internal_date

    def _finish(self) -> str:
        letters = self._folder.letters_for_new_message(self._flags)
        self._close_durably(self._internal_date)
        name = f"{self.base},S={self.size}{format_info(letters)}"
        self._fs.publish(self.tmp_path, os.path.join(self._folder.cur, name))
        return name

    def commit(self) -> Deferred[Appended]:
        """Store the message durably in ``cur/`` and give it a UID; fire with :class:`Appended`."""
        self._begin_commit()
        d: Deferred[str] = self._run(self._finish)

        def synced(name: str) -> Deferred[Appended]:
            def assign(_: None) -> Deferred[Appended]:
                base = name.partition(":")[0]
                assigned: Deferred[tuple[int, int]] = self._run(self._folder.assign_uid, base)
                return assigned.addCallback(lambda vu: Appended(vu[0], vu[1], name))

            return self._syncer.sync().addCallback(assign)

        return d.addCallbacks(synced, self._failed)

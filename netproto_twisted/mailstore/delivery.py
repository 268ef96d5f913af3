"""Streamed, durable writes of new messages: delivery (SMTP) and append (IMAP).

Messages are written with LF line endings (:class:`~netproto_twisted.mailstore.eol.LfEncoder`,
the Maildir convention, as Dovecot stores them) and named
``<base>,S=<file size>,W=<size with CRLF>``; readers get CRLF back
(:meth:`MaildirFolder.open_message`).

A writer holds up to 64 KiB in memory; a message that fits is written to
``tmp/`` entirely by the committer at ``commit()``.  A longer one gets its
``tmp/`` file on the first 64 KiB and is streamed into it, one 64 KiB block
at a time, by a worker thread; ``write()`` returns a Deferred when the
caller should wait for the disk (the SMTP server then stops reading the
socket), so memory stays bounded and the event loop never writes files.  ``commit()`` hands the
writer to a committer (:mod:`netproto_twisted.core.durable`): it finishes
the file, makes it durable, links it into ``new/`` (or ``cur/``) and makes
the directory entry durable before the Deferred fires, many messages sharing
each sync.

One delivery may go to several Maildirs (one message for three local
users): the file is written once and hard-linked into every ``new/``, all or
none, so a failed commit never leaves a copy behind that a retry would
duplicate.  Where a folder cannot take the link (another file system, or one
without hard links, remembered by :class:`FsOps` after the first try), it
gets a durable copy while staging, renamed into its ``new/`` at publishing.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Sequence

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from netproto_twisted.core.durable import Committer, IDurableJob
from netproto_twisted.core.threads import Runner
from netproto_twisted.mailstore.eol import LfEncoder
from netproto_twisted.mailstore.filenames import format_base, format_info
from netproto_twisted.mailstore.folder import MaildirFolder
from netproto_twisted.mailstore.fsops import NO_LINK_ERRNOS, FsOps
from netproto_twisted.mailstore.interfaces import Appended, IAppendWriter, IMessageWriter

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
        self,
        folder: MaildirFolder,
        base: str,
        committer: Committer,
        run: Runner,
        create_dirs: bool = False,
    ) -> None:
        self._folder = folder
        self._create_dirs = create_dirs
        self._fs = folder.fs
        self._committer = committer
        self._run = run
        self.base = base
        self.tmp_path = os.path.join(folder.tmp, base)
        self._fd: int | None = None
        self._created = False
        self._buffer = bytearray()
        self._flushing: Deferred[None] | None = None
        self._drain_waiters: list[Deferred[None]] = []
        self._error: BaseException | None = None
        self._done = False
        self._encoder = LfEncoder()
        self.size = 0
        """Bytes written so far (as given, before the line endings become LF)."""

    def write(self, data: bytes) -> Deferred[None] | None:
        """Append bytes; every 64 KiB go to the ``tmp/`` file in a worker thread.

        Returns None, or a Deferred when one 64 KiB block is on its way to
        disk and another is waiting: the caller should send no more until it
        fires (more writes are still accepted, and held in memory).  A failed
        disk write is raised by the next call, or by :meth:`commit`.
        """
        if self._done:
            raise ValueError("writer already committed or aborted")
        if self._error is not None:
            raise self._error
        self.size += len(data)
        self._buffer += self._encoder.encode(data)
        if len(self._buffer) < WRITE_BUFFER_SIZE:
            return None
        if self._flushing is None:
            self._start_flush()
            return None
        waiter: Deferred[None] = Deferred()
        self._drain_waiters.append(waiter)
        return waiter

    def _start_flush(self) -> None:
        chunk, self._buffer = self._buffer, bytearray()
        d: Deferred[None] = self._run(self._write_chunk, chunk)
        self._flushing = d
        d.addBoth(self._flushed)

    def _write_chunk(self, chunk: bytearray) -> None:
        """Worker thread: append one block to the ``tmp/`` file (opened on the first)."""
        fd = self._fd if self._fd is not None else self._open()
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]

    def _flushed(self, result: object) -> None:
        self._flushing = None
        if isinstance(result, Failure):
            self._error = result.value
        elif not self._done and len(self._buffer) >= WRITE_BUFFER_SIZE:
            self._start_flush()
        if self._flushing is None or self._error is not None:
            waiters, self._drain_waiters = self._drain_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def _then_commit(self, job: IDurableJob) -> Deferred[None]:
        """After the block on its way to disk (if any), hand ``job`` to the committer."""

        def go(_: object) -> Deferred[None]:
            if self._error is not None:
                self._discard_later()
                raise self._error
            return self._committer.commit(job)

        if self._flushing is None:
            try:
                return go(None)
            except BaseException:
                return fail()
        waiting: Deferred[None] = Deferred()
        self._drain_waiters.append(waiting)
        return waiting.addCallback(go)

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            self._fd = os.open(self.tmp_path, flags, 0o600)
        except FileNotFoundError:
            if not self._create_dirs:
                raise
            self._make_folder(self._folder)
            self._fd = os.open(self.tmp_path, flags, 0o600)
        self._created = True
        return self._fd

    def _make_folder(self, folder: MaildirFolder) -> None:
        """Create a folder's directories durably (first delivery to a new user).

        ``tmp/`` comes last: a writer in another thread or process that can
        create its file in ``tmp/`` then finds ``new/`` and ``cur/`` there too.
        """
        root = folder.path
        for directory in (folder.new, folder.cur, folder.tmp):
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

    def _close_file(self, sync: bool, mtime: float | None = None) -> None:
        """Committer thread: (create,) flush, maybe fsync, and close the tmp file."""
        fd = self._fd if self._fd is not None else self._open()
        try:
            self._flush()
            if mtime is not None:
                os.utime(fd, (mtime, mtime))
            if sync:
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
        self._buffer = bytearray()
        if self._flushing is None:
            self._discard_later()
        else:  # the worker thread still writes to the file: remove it afterwards
            self._flushing.addBoth(lambda _: self._discard_later())

    def _discard_later(self) -> None:
        """Remove the ``tmp/`` file (if one was made) in a worker thread."""
        if self._fd is None and not self._created:
            return
        d: Deferred[None] = self._run(self._discard)
        d.addErrback(lambda f: _log.failure("removing an abandoned message failed", f))

    def _begin_commit(self) -> None:
        if self._done:
            raise ValueError("writer already committed or aborted")
        self._done = True
        self._buffer += self._encoder.finish()

    @property
    def stored_size(self) -> int:
        """The size of the file (``S=``): the bytes written with LF line endings."""
        return self._encoder.stored

    @property
    def virtual_size(self) -> int:
        """The size of the message read with CRLF line endings (``W=``)."""
        return self._encoder.virtual

    def _name_base(self) -> str:
        return format_base(self.base, self._encoder.stored, self._encoder.virtual)

    def discard(self) -> None:
        """Committer thread: remove the ``tmp/`` file of a failed commit."""
        self._discard()


@implementer(IMessageWriter)
class MessageWriter(_TmpWriter):
    """A message being delivered into the ``new/`` of one or more folders.

    ``commit()`` fires with the file name (the same in every folder).  The
    file is written once, in the first folder's ``tmp/``, and hard-linked
    into each ``new/``.  A folder that cannot take that link (on another
    file system, or on one without hard links) gets its own copy in its
    ``tmp/``, made and made durable while staging; publishing then only
    moves names into place: a link, or a no-replace rename where links fail.
    """

    def __init__(
        self,
        folders: Sequence[MaildirFolder],
        base: str,
        committer: Committer,
        run: Runner,
        create_dirs: bool = False,
    ) -> None:
        if not folders:
            raise ValueError("a delivery needs at least one folder")
        super().__init__(folders[0], base, committer, run, create_dirs)
        self._folders = list(folders)
        self._sources: list[str] = []
        self._copies: list[str] = []
        self._shared = False
        self._published: list[str] = []
        self.name = ""
        """The file name in ``new/``, set when the message is published."""

    # -- IDurableJob (committer thread) ----------------------------------------

    def stage(self, sync_files: bool) -> None:
        """Finish the ``tmp/`` file, and the copies for folders it cannot be linked into."""
        self._close_file(sync_files)
        if len(self._folders) == 1:
            self._sources = [self.tmp_path]
            return
        fs = self._fs
        first = self._folders[0].new
        device = os.stat(self.tmp_path).st_dev
        sources = [self.tmp_path]
        for folder in self._folders[1:]:
            if self._create_dirs and not os.path.isdir(folder.tmp):
                self._make_folder(folder)
            folder_device = os.stat(folder.tmp).st_dev
            if (
                folder_device == device
                and fs.links_into(device) is not False
                and fs.links_into(first) is not False
                and self._can_link(folder, device)
            ):
                sources.append(self.tmp_path)
                continue
            if fs.links_into(folder_device) is False:
                fs.remember_links(folder.new, False)  # its copy is renamed in, not linked
            copy = os.path.join(folder.tmp, self.base)
            fs.copy(self.tmp_path, copy, sync_files)
            self._copies.append(copy)
            sources.append(copy)
        self._sources = sources
        self._shared = sources.count(self.tmp_path) > 1

    def _can_link(self, folder: MaildirFolder, device: int) -> bool:
        """Tell whether the ``tmp/`` file can be linked into ``folder`` (asked once per folder).

        The first time, a hard link into the folder's ``tmp/`` tries it.  A
        failure for want of hard links is remembered for the folder; unless
        it was EXDEV (another mount of the file system), for the first folder
        and the whole file system (``device``) too.
        """
        fs = self._fs
        known = fs.links_into(folder.new)
        if known is not None:
            return known
        probe = os.path.join(folder.tmp, self.base)
        try:
            fs.link(self.tmp_path, probe)
        except OSError as exc:
            if exc.errno not in NO_LINK_ERRNOS:
                raise
            fs.remember_links(folder.new, False)
            if exc.errno != errno.EXDEV:
                fs.remember_links(self._folders[0].new, False)
                fs.remember_links(device, False)
            return False
        self._copies.append(probe)  # removed by discard() if the unlink fails
        fs.unlink(probe)
        self._copies.pop()
        fs.remember_links(folder.new, True)
        return True

    def publish(self) -> list[str]:
        """Put the message into every folder's ``new/``, all or none; no ``tmp/`` file stays.

        The shared ``tmp/`` file is linked into each folder that takes it
        and then unlinked; a file with one destination (the only folder's,
        or a copy) is published with :meth:`FsOps.publish`: a link and an
        unlink, or a no-replace rename where links fail.
        """
        name = self._name_base()
        try:
            for folder, source in zip(self._folders, self._sources, strict=True):
                target = os.path.join(folder.new, name)
                if source is self.tmp_path and self._shared:
                    self._link_shared(folder, target)
                    self._published.append(target)
                else:
                    self._publish_one(source, target, folder.new)
            if self._shared:
                self._fs.unlink(self.tmp_path)
        except BaseException:
            self.unpublish()
            raise
        self.name = name
        return [folder.new for folder in self._folders]

    def _publish_one(self, source: str, target: str, directory: str) -> None:
        """Move a file with one destination into place (:meth:`FsOps.publish`)."""
        try:
            self._fs.publish(source, target, directory)
        except FileExistsError:
            raise  # not our file: never removed
        except BaseException:
            self._published.append(target)  # linked before the source's unlink failed?
            raise
        self._published.append(target)

    def _link_shared(self, folder: MaildirFolder, target: str) -> None:
        """Link the shared ``tmp/`` file to ``target``; a failure for want of links is remembered.

        The delivery then fails (a copy made now would not be durable before
        its name): its retry gets a copy for that folder.
        """
        try:
            self._fs.link(self.tmp_path, target)
        except OSError as exc:
            if exc.errno in NO_LINK_ERRNOS:
                self._fs.remember_links(folder.new, False)
            raise

    def unpublish(self) -> None:
        """Remove the files put into ``new/`` by :meth:`publish`."""
        for path in self._published:
            with contextlib.suppress(FileNotFoundError):
                self._fs.unlink(path)
        self._published = []

    def revoke(self) -> Deferred[None]:
        """Remove a committed message from every ``new/`` again (its transaction failed).

        A copy a reader already moved on (to ``cur/``) stays.
        """
        return self._run(self.unpublish)

    def discard(self) -> None:
        """Remove the ``tmp/`` file and its copies."""
        self._discard()
        for copy in self._copies:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(copy)

    def sync_paths(self) -> list[str]:
        """The ``new/`` directories (each on its folder's file system)."""
        return [folder.new for folder in self._folders]

    # -- IMessageWriter -----------------------------------------------------------

    def commit(self) -> Deferred[str]:
        """Make the message durable in every ``new/``; fire with its file name."""
        self._begin_commit()
        return self._then_commit(self).addCallback(lambda _: self.name)


@implementer(IAppendWriter)
class AppendWriter(_TmpWriter):
    """A message being appended into ``cur/`` with flags and an internal date."""

    def __init__(
        self,
        folder: MaildirFolder,
        base: str,
        committer: Committer,
        run: Runner,
        flags: frozenset[str],
        internal_date: float | None,
    ) -> None:
        super().__init__(folder, base, committer, run)
        self._flags = flags
        self._internal_date = internal_date
        self._target = ""
        self.name = ""
        """The file name in ``cur/``, set when the message is published."""

    # -- IDurableJob (committer thread) ----------------------------------------

    def stage(self, sync_files: bool) -> None:
        """Finish the ``tmp/`` file with the internal date as its mtime."""
        self._close_file(sync_files, self._internal_date)

    def publish(self) -> list[str]:
        """Move the message into ``cur/`` with its flag letters (assigning keywords)."""
        letters = self._folder.letters_for_new_message(self._flags)
        name = self._name_base() + format_info(letters)
        target = os.path.join(self._folder.cur, name)
        try:
            self._fs.publish(self.tmp_path, target, self._folder.cur)
        except FileExistsError:
            raise  # not our file: never removed
        except BaseException:
            with contextlib.suppress(FileNotFoundError):  # linked before the unlink failed?
                self._fs.unlink(target)
            raise
        self._target, self.name = target, name
        return [self._folder.cur]

    def unpublish(self) -> None:
        """Remove the file published into ``cur/``."""
        if self._target:
            with contextlib.suppress(FileNotFoundError):
                self._fs.unlink(self._target)

    def sync_paths(self) -> list[str]:
        """The ``cur/`` directory."""
        return [self._folder.cur]

    # -- IAppendWriter -------------------------------------------------------------

    def commit(self) -> Deferred[Appended]:
        """Store the message durably in ``cur/`` and give it a UID; fire with :class:`Appended`."""
        self._begin_commit()

        def assign(_: None) -> Deferred[Appended]:
            base = self.name.partition(":")[0]
            assigned: Deferred[tuple[int, int]] = self._run(self._folder.assign_uid, base)
            return assigned.addCallback(lambda vu: Appended(vu[0], vu[1], self.name))

        return self._then_commit(self).addCallback(assign)

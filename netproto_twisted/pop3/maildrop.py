"""POP3 maildrops over the Maildir++ store SMTP delivers into (Dovecot-compatible).

:class:`MaildirMaildrops` opens ``<base>/<user>/`` (creating an empty Maildir
for a user who never received mail), takes the session lock
(:class:`~netproto_twisted.mailstore.maildrop_lock.MaildropLock`, Dovecot's
``dovecot-pop3-session.lock``), and snapshots INBOX through
:class:`~netproto_twisted.mailstore.folder.MaildirFolder` (UIDs from
``dovecot-uidlist``; files in ``new/`` stay there, as IMAP's ``\\Recent``
needs).  Each message's UIDL is Dovecot's default ``%08Xu%08Xv`` (UID and
UIDVALIDITY in hex, lower case as Dovecot writes them), so a client sees the
same UIDLs from Dovecot and from us on one Maildir.  Sizes are the octets
``RETR`` sends: taken from a ``,W=`` field in the file name when there is
one, otherwise counted from the file with its line endings as CRLF (files
may be stored with LF) and remembered, so that the next login reads only
the new messages.  What a login saw of each maildrop is remembered for the
next one (:class:`~netproto_twisted.mailstore.folder.FolderMemo`, for a
bounded number of messages): the next login of an unchanged folder neither
parses the uidlist again nor ``stat``-s its files, and writes nothing.

All disk work runs through ``runner`` (the reactor's thread pool in
production), never on the reactor thread.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Sequence
from typing import Any, BinaryIO

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from netproto_twisted.core.dotstuff import EolNormalizer
from netproto_twisted.core.streaming import CHUNK_SIZE, BlockRunner
from netproto_twisted.mailstore.eol import to_crlf
from netproto_twisted.mailstore.folder import FolderMemo, MaildirFolder, MessageInfo
from netproto_twisted.mailstore.fsops import FsOps
from netproto_twisted.mailstore.maildrop_lock import SESSION_LOCK_REFRESH_SECONDS, MaildropLock
from netproto_twisted.mailstore.tree import UserTree
from netproto_twisted.pop3.errors import MaildropInUse
from netproto_twisted.pop3.interfaces import DropMessage, IMaildrop, IMaildropStore

__all__ = ["MaildirMaildrop", "MaildirMaildrops", "read_cached", "wire_size"]

_log = Logger(namespace="netproto.pop3.maildrop")
_READ_SIZE = 256 * 1024
#: Sizes counted from files, remembered per message (a Maildir file never changes
#: content, only its name's flags): a user who checks mail every few minutes has
#: only the new messages read at login.
_MAX_KNOWN_SIZES = 200_000
#: Messages remembered in the folder memos of recent logins (the least recently
#: opened maildrops are forgotten first; one larger than this is not remembered).
_MAX_MEMO_MESSAGES = 200_000
_RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


def wire_size(f: BinaryIO) -> int:
    """Return the octets of the file's content with every line ending as CRLF (blocking)."""
    encoder = EolNormalizer()
    total = 0
    while True:
        chunk = f.read(_READ_SIZE)
        if not chunk:
            break
        total += len(encoder.encode(chunk))
    return total + len(encoder.finish())


def read_cached(path: str, limit: int = CHUNK_SIZE) -> bytes | None:
    """Return the file's content if it is smaller than ``limit`` and all in the page cache.

    Never waits for the disk: the read is ``preadv`` with ``RWF_NOWAIT``
    (Linux), which fails rather than block; ``None`` means "read it in a
    thread" (not cached, too large, gone, or no ``RWF_NOWAIT`` here).  The
    caller has just listed the directory, so opening the file finds its
    inode in memory.
    """
    if _RWF_NOWAIT is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size >= limit:
            return None
        buffer = bytearray(size + 1)  # one more: a file that grew is not taken as complete
        got = os.preadv(fd, [buffer], 0, _RWF_NOWAIT)
    except OSError:  # BlockingIOError (not cached), EOPNOTSUPP (a filesystem without it)
        return None
    finally:
        os.close(fd)
    if got != size:
        return None
    return bytes(buffer[:got])


def _size_of(folder: MaildirFolder, info: MessageInfo, known: dict[str, int]) -> int:
    """The wire size of a message whose name carries none: counted once, then remembered."""
    key = os.path.join(folder.path, info.base)
    size = known.get(key)
    if size is None:
        with folder.open_stored(info) as f:
            size = wire_size(f)
        if len(known) >= _MAX_KNOWN_SIZES:
            known.clear()
        known[key] = size
    return size


@implementer(IMaildrop)
class MaildirMaildrop:
    """A locked Maildir INBOX and its snapshot (see the module docstring)."""

    def __init__(
        self,
        folder: MaildirFolder,
        lock: MaildropLock,
        messages: Sequence[DropMessage],
        runner: BlockRunner,
        clock: IReactorTime | None,
    ) -> None:
        self.folder = folder
        self.messages: tuple[DropMessage, ...] = tuple(messages)
        self._lock = lock
        self._run = runner
        self._clock = clock
        self._refresh: IDelayedCall | None = None
        self._released = False
        self._schedule()

    def _schedule(self) -> None:
        if self._clock is not None and not self._released:
            self._refresh = self._clock.callLater(SESSION_LOCK_REFRESH_SECONDS, self._touch)

    def _touch(self) -> None:
        self._refresh = None
        if self._released:
            return
        d = self._run(self._lock.touch)
        d.addErrback(lambda f: _log.failure("cannot refresh the POP3 session lock", f))
        self._schedule()

    def open_message(self, message: DropMessage) -> Deferred[BinaryIO]:
        """Fire with the message opened for binary reading, with CRLF line endings.

        Files are stored with LF (or CRLF, by older versions and other
        programs); both read the same (:mod:`netproto_twisted.mailstore.eol`).
        A message smaller than :data:`~netproto_twisted.core.streaming.CHUNK_SIZE`
        (most mail) is read whole and given as :class:`io.BytesIO`: at once
        when the page cache holds it (:func:`read_cached`, which never waits
        for the disk), else in one trip to the thread pool.  A larger one is
        given as its open file, read block by block in the thread pool.
        """
        info: Any = message.key
        folder = self.folder
        cached = read_cached(os.path.join(folder.path, info.subdir, info.filename))
        if cached is not None:
            return succeed(io.BytesIO(to_crlf(cached)))

        def open_and_peek() -> BinaryIO:
            f = folder.open_message(info)
            try:
                head = f.read(CHUNK_SIZE)
                if len(head) < CHUNK_SIZE:
                    f.close()
                    return io.BytesIO(head)
                f.seek(0)
            except BaseException:
                f.close()
                raise
            return f

        d: Deferred[BinaryIO] = self._run(open_and_peek)
        return d

    def delete(self, messages: Sequence[DropMessage]) -> Deferred[int]:
        """Unlink the messages' files; fire with how many."""
        infos: list[Any] = [m.key for m in messages]
        if not infos:
            return succeed(0)
        d: Deferred[list[int]] = self._run(lambda: self.folder.expunge(infos))
        return d.addCallback(len)

    def release(self) -> Deferred[None]:
        """Stop refreshing the lock and remove it; idempotent."""
        if self._released:
            return succeed(None)
        self._released = True
        if self._refresh is not None and self._refresh.active():
            self._refresh.cancel()
        self._refresh = None
        d: Deferred[None] = self._run(self._lock.release)
        return d


@implementer(IMaildropStore)
class MaildirMaildrops:
    """Opens users' Maildir INBOXes under ``base`` as POP3 maildrops.

    :param base: the Maildir++ base (user ``u`` is ``<base>/u``), as SMTP delivers.
    :param runner: runs blocking work (``thread_block_runner(reactor)``).
    :param clock: schedules the lock refresh (``None``: no refresh, for tests).
    :param fs: the filesystem operations (tests may record them).
    """

    def __init__(
        self,
        base: str,
        runner: BlockRunner,
        *,
        clock: IReactorTime | None = None,
        fs: FsOps | None = None,
    ) -> None:
        self.base = os.path.abspath(base)
        self._run = runner
        self._clock = clock
        self._fs = fs if fs is not None else FsOps()
        self._known_sizes: dict[str, int] = {}
        # Folder path -> (what the last login saw there, its message count), least
        # recently used first, and the sum of those counts.
        self._memos: dict[str, tuple[FolderMemo, int]] = {}
        self._memo_messages = 0
        self._memos_lock = threading.Lock()

    def _memo(self, path: str) -> FolderMemo:
        """The memo of the folder at ``path`` (taken out: the caller puts it back)."""
        with self._memos_lock:
            entry = self._memos.pop(path, None)
            if entry is None:
                return FolderMemo()
            self._memo_messages -= entry[1]
            return entry[0]

    def _remember(self, path: str, memo: FolderMemo) -> None:
        """Keep ``memo`` as the most recent, forgetting the oldest beyond the bound."""
        size = len(memo.messages)
        if size > _MAX_MEMO_MESSAGES:
            return
        with self._memos_lock:
            old = self._memos.pop(path, None)
            if old is not None:
                self._memo_messages -= old[1]
            while self._memos and self._memo_messages + size > _MAX_MEMO_MESSAGES:
                self._memo_messages -= self._memos.pop(next(iter(self._memos)))[1]
            self._memos[path] = (memo, size)
            self._memo_messages += size

    def open(self, user: str) -> Deferred[IMaildrop]:
        """Lock ``user``'s INBOX and snapshot it (MaildropInUse if another session holds it)."""
        d: Deferred[IMaildrop] = self._run(lambda: self._open(user))
        return d

    def _open(self, user: str) -> IMaildrop:
        tree = UserTree(self.base, user, self._fs)
        tree.ensure_root()
        lock = MaildropLock(tree.root)
        if not lock.try_acquire():
            raise MaildropInUse(f"the maildrop of {user} is in use")
        try:
            # Taken under the session lock: one sync at a time uses a folder's memo.
            folder = MaildirFolder(tree.root, self._fs, memo=self._memo(tree.root))
            snapshot = folder.sync(move_new=False, modseqs=False)  # POP3 has no use for them
            self._remember(tree.root, folder.memo)
            messages: list[DropMessage] = []
            validity = f"{snapshot.uid_validity:08x}"
            known = self._known_sizes
            for info in snapshot.messages:
                size = info.crlf_size
                if size is None:
                    try:
                        size = _size_of(folder, info, known)
                    except OSError:
                        continue  # removed meanwhile (another client, Dovecot): not shown
                messages.append(DropMessage(size, f"{info.uid:08x}{validity}", info))
        except BaseException:
            lock.release()
            raise
        return MaildirMaildrop(folder, lock, messages, self._run, self._clock)

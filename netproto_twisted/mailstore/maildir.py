"""The Maildir++ store: Deferred facade over the blocking folder code, run in a thread pool.

Use::

    store = MaildirStore.create("/var/mail", reactor)   # sync="auto": syncfs on Linux
    writer = store.deliver("alice")
    writer.write(b"Subject: hi\\r\\n\\r\\nbody\\r\\n")
    name = await writer.commit()          # durable once this fires
    box = await store.open_mailbox("alice")
    for info in box.messages: ...
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, BinaryIO, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from netproto_twisted.core.coalesce import Coalescer
from netproto_twisted.core.durable import Committer, GroupCommitter, RunnerCommitter
from netproto_twisted.core.reactors import ICoreThreadsReactor
from netproto_twisted.core.threads import Runner, thread_runner
from netproto_twisted.mailstore.delivery import AppendWriter, MessageWriter
from netproto_twisted.mailstore.errors import NoSuchMailbox, NoSuchMessage
from netproto_twisted.mailstore.filenames import DELETED, UniqueNames
from netproto_twisted.mailstore.folder import (
    TMP_MAX_AGE_SECONDS,
    FlagMode,
    FolderMemo,
    MaildirFolder,
    MessageInfo,
    Snapshot,
    StoreResult,
)
from netproto_twisted.mailstore.fsops import LOCK_TIMEOUT_SECONDS, FsOps
from netproto_twisted.mailstore.index import FolderIndex
from netproto_twisted.mailstore.interfaces import IMailbox, IMailStore
from netproto_twisted.mailstore.names import INBOX, validate_folder
from netproto_twisted.mailstore.seqmap import Changes
from netproto_twisted.mailstore.tree import UserTree

__all__ = ["TMP_CLEANUP_INTERVAL", "MaildirMailbox", "MaildirStore"]

TMP_CLEANUP_INTERVAL = 3600.0
"""A folder's ``tmp/`` is checked for crash leftovers at most this often (seconds)."""

#: How many INBOX folder objects a store remembers (see ``MaildirStore._inbox``).
_MAX_INBOXES = 10_000
#: How many folder indexes a store keeps (each an open SQLite file: three descriptors).
_MAX_INDEXES = 64

_T = TypeVar("_T")


@implementer(IMailStore)
class MaildirStore:
    """Maildir++ trees under ``base``: one ``<base>/<user>/`` per user, shared with Dovecot.

    Blocking disk work runs in ``threadpool`` (results delivered through
    ``reactor``); new messages are made durable by one committer thread
    (:class:`~netproto_twisted.core.durable.GroupCommitter`, ``sync`` is
    its mode: ``auto``, ``fs`` or ``file``).  Tests may pass ``runner``
    instead, a callable ``run(f, *args) -> Deferred`` that decides where
    ``f`` runs; each commit then runs alone through it, in ``file`` mode
    unless ``sync`` says otherwise.  ``committer`` overrides both.
    """

    def __init__(
        self,
        base: str,
        reactor: ICoreThreadsReactor | None = None,
        threadpool: ThreadPool | None = None,
        *,
        fs: FsOps | None = None,
        hostname: str | None = None,
        clock: Callable[[], float] = time.time,
        runner: Runner | None = None,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
        tmp_max_age: float = TMP_MAX_AGE_SECONDS,
        sync: str = "auto",
        committer: Committer | None = None,
    ) -> None:
        self.base = os.path.abspath(base)
        self.fs = fs if fs is not None else FsOps()
        self._clock = clock
        self._names = UniqueNames(hostname)
        self._lock_timeout = lock_timeout
        self._tmp_max_age = tmp_max_age
        self._tmp_checked: dict[str, float] = {}
        self._tmp_lock = threading.Lock()
        #: Folder rescans in flight, shared by the mailboxes of one folder (a delivery
        #: wakes every IDLE session on it at once: one scan serves them all).
        self._syncs: Coalescer[tuple[str, bool], Snapshot] = Coalescer()
        # Each user's INBOX folder object, made once (paths only, no I/O): a delivery
        # is then a dictionary look-up, not a path computation.
        self._inboxes: dict[str, MaildirFolder] = {}
        # One index (one SQLite connection) and one memo of the last scan per folder
        # directory, shared by its sessions.
        self._indexes: dict[str, tuple[FolderIndex, FolderMemo]] = {}
        self._indexes_lock = threading.Lock()
        if runner is None:
            if reactor is None or threadpool is None:
                raise TypeError("MaildirStore needs a reactor and a thread pool (or a runner)")
            runner = thread_runner(reactor, threadpool)
        self._run: Runner = runner
        if committer is None:
            if reactor is None:
                committer = RunnerCommitter(runner, "file" if sync == "auto" else sync, self.fs)
            else:
                committer = GroupCommitter(reactor, sync, self.fs, name="netproto-maildir-commit")
        self.committer = committer

    @classmethod
    def create(
        cls, base: str, reactor: IReactorCore, max_threads: int = 8, **kwargs: Any
    ) -> MaildirStore:
        """Return a store with its own thread pool, started now and stopped at shutdown."""
        pool = ThreadPool(minthreads=0, maxthreads=max_threads, name="netproto-mailstore")
        pool.start()
        reactor.addSystemEventTrigger("during", "shutdown", pool.stop)
        return cls(base, reactor, pool, **kwargs)  # type: ignore[arg-type]

    # -- helpers ------------------------------------------------------------

    def _tree(self, user: str) -> UserTree:
        return UserTree(self.base, user, self.fs)

    def _folder(self, tree: UserTree, folder: str) -> MaildirFolder:
        path = tree.folder_path(folder)
        index, memo = self._folder_state(path)
        return MaildirFolder(
            path,
            self.fs,
            clock=self._clock,
            lock_timeout=self._lock_timeout,
            index=index,
            memo=memo,
        )

    def folder_index(self, path: str) -> FolderIndex:
        """The shared :class:`FolderIndex` of the folder directory ``path`` (no I/O)."""
        return self._folder_state(path)[0]

    def _folder_state(self, path: str) -> tuple[FolderIndex, FolderMemo]:
        """The shared index and memo of the folder directory ``path`` (no I/O)."""
        with self._indexes_lock:
            # Taken out and put back at the end: the least recently used go first.
            state = self._indexes.pop(path, None)
            if state is None:
                if len(self._indexes) >= _MAX_INDEXES:
                    # Forget the oldest and close its file; a session still using it
                    # reopens it when needed (not closed now if a thread is using it).
                    self._indexes.pop(next(iter(self._indexes)))[0].close(wait=False)
                state = (FolderIndex(path, clock=self._clock), FolderMemo())
            self._indexes[path] = state
            return state

    def _inbox(self, user: str) -> MaildirFolder:
        """``user``'s INBOX folder object, remembered (at most ``_MAX_INBOXES`` of them)."""
        folder = self._inboxes.get(user)
        if folder is None:
            folder = self._folder(self._tree(user), INBOX)
            if len(self._inboxes) >= _MAX_INBOXES:
                self._inboxes.clear()
            self._inboxes[user] = folder
        return folder

    def _sync_folder(
        self,
        folder: MaildirFolder,
        move_new: bool,
        previous: dict[str, MessageInfo] | None = None,
    ) -> Snapshot:
        now = self._clock()
        with self._tmp_lock:
            due = now - self._tmp_checked.get(folder.path, float("-inf")) >= TMP_CLEANUP_INTERVAL
            if due:
                self._tmp_checked[folder.path] = now
        if due:
            folder.cleanup_tmp(self._tmp_max_age)
        return folder.sync(move_new, previous)

    # -- IDeliveryTarget ----------------------------------------------------

    def user_exists(self, user: str) -> Deferred[bool]:
        """Fire with whether ``user`` has an INBOX here."""
        return self._run(self._tree(user).exists)

    def deliver(self, user: str, folder: str = INBOX) -> MessageWriter:
        """Return a writer for a new message to ``user``'s ``folder``.

        A missing INBOX is created (durably) by the first commit; other
        folders must exist (:class:`NoSuchMailbox`).
        """
        tree = self._tree(user)
        folder = validate_folder(folder)
        if folder != INBOX and not tree.folder_exists(folder):
            raise NoSuchMailbox(folder)
        target = self._folder(tree, folder)
        base = self._names.new_base(self._clock())
        return MessageWriter(
            [target], base, self.committer, self._run, create_dirs=folder == INBOX
        )

    def deliver_all(self, users: Sequence[str]) -> MessageWriter:
        """Return one writer for a new message to every user's INBOX (created if missing).

        The message is written once and linked into each ``new/``; the
        commit succeeds or fails for all of them together.
        """
        folders = [self._inbox(user) for user in dict.fromkeys(users)]
        base = self._names.new_base(self._clock())
        return MessageWriter(folders, base, self.committer, self._run, create_dirs=True)

    # -- IMailStore ---------------------------------------------------------

    def open_mailbox(
        self, user: str, folder: str = INBOX, move_new: bool = True
    ) -> Deferred[IMailbox]:
        """Sync a folder and fire with a :class:`MaildirMailbox` holding its snapshot."""
        tree = self._tree(user)
        folder = validate_folder(folder)
        target = self._folder(tree, folder)

        def opened(snapshot: Snapshot) -> IMailbox:
            return MaildirMailbox(self, tree.user, folder, target, snapshot)

        d: Deferred[Snapshot] = self._run(self._sync_folder, target, move_new)
        return d.addCallback(opened)

    def list_folders(self, user: str) -> Deferred[list[str]]:
        """Fire with every folder name of ``user``, INBOX first."""
        return self._run(self._tree(user).list_folders)

    def create_folder(self, user: str, folder: str) -> Deferred[None]:
        """Create a folder (Maildir++ ``.Name`` directory)."""
        return self._run(self._tree(user).create_folder, folder)

    def delete_folder(self, user: str, folder: str) -> Deferred[None]:
        """Delete a folder and its messages."""
        return self._run(self._tree(user).delete_folder, folder)

    def rename_folder(self, user: str, old: str, new: str) -> Deferred[None]:
        """Rename a folder and its sub-folders."""
        return self._run(self._tree(user).rename_folder, old, new)

    def subscriptions(self, user: str) -> Deferred[list[str]]:
        """Fire with the subscribed folder names."""
        return self._run(self._tree(user).subscriptions)

    def subscribe(self, user: str, folder: str) -> Deferred[None]:
        """Add a folder to ``subscriptions``."""
        return self._run(self._tree(user).set_subscribed, folder, True)

    def unsubscribe(self, user: str, folder: str) -> Deferred[None]:
        """Remove a folder from ``subscriptions``."""
        return self._run(self._tree(user).set_subscribed, folder, False)

    def folder_path(self, user: str, folder: str) -> str:
        """The directory of ``user``'s ``folder`` (no I/O)."""
        return self._tree(user).folder_path(validate_folder(folder))

    def ensure_inbox(self, user: str) -> Deferred[None]:
        """Create ``user``'s INBOX if it does not exist yet (IMAP logins see an empty one)."""
        return self._run(self._tree(user).ensure_root)

    def folder_exists(self, user: str, folder: str) -> bool:
        """Whether ``user``'s ``folder`` exists (a few ``stat`` calls, on the caller's thread)."""
        return self._tree(user).folder_exists(validate_folder(folder))

    def append_message(
        self,
        user: str,
        folder: str,
        flags: Iterable[str] = (),
        internal_date: float | None = None,
    ) -> AppendWriter:
        """Return a writer for a message appended to an existing folder (IMAP APPEND, COPY).

        Raises :class:`NoSuchMailbox` when the folder does not exist (one
        ``stat`` per directory, on the caller's thread).
        """
        tree = self._tree(user)
        folder = validate_folder(folder)
        if not tree.folder_exists(folder):
            raise NoSuchMailbox(folder)
        return self._append(self._folder(tree, folder), flags, internal_date)

    # -- used by MaildirMailbox ---------------------------------------------

    def _append(
        self, target: MaildirFolder, flags: Iterable[str], internal_date: float | None
    ) -> AppendWriter:
        base = self._names.new_base(self._clock())
        return AppendWriter(
            target, base, self.committer, self._run, frozenset(flags), internal_date
        )


@implementer(IMailbox)
class MaildirMailbox:
    """An open Maildir folder: the last snapshot and the operations on its messages.

    Call from the reactor thread; disk work runs in the store's thread pool.
    If :attr:`uid_validity` changes on :meth:`refresh`, every UID a client
    cached is void (an IMAP server must tell the client to resync).
    """

    def __init__(
        self,
        store: MaildirStore,
        user: str,
        folder: str,
        target: MaildirFolder,
        snapshot: Snapshot,
    ) -> None:
        self.user = user
        self.folder = folder
        self._store = store
        self._target = target
        self._by_uid: dict[int, MessageInfo] = {}
        self.uid_validity = 0
        self.uid_next = 1
        self.guid = ""
        self.highest_modseq = 0
        self._apply(snapshot)

    def _apply(self, snapshot: Snapshot) -> tuple[MessageInfo, ...]:
        self.uid_validity = snapshot.uid_validity
        self.uid_next = snapshot.uid_next
        self.guid = snapshot.guid
        self.highest_modseq = snapshot.highest_modseq
        self._by_uid = {info.uid: info for info in snapshot.messages}
        return snapshot.messages

    @property
    def messages(self) -> tuple[MessageInfo, ...]:
        """The messages of the snapshot, sorted by UID."""
        return tuple(self._by_uid[uid] for uid in sorted(self._by_uid))

    def get(self, uid: int) -> MessageInfo:
        """Return the :class:`MessageInfo` of a UID; raise :class:`NoSuchMessage`."""
        try:
            return self._by_uid[uid]
        except KeyError:
            raise NoSuchMessage(uid) from None

    def refresh(self, move_new: bool = True) -> Deferred[tuple[MessageInfo, ...]]:
        """Rescan the folder and fire with the new message list."""
        store, target = self._store, self._target
        previous = {info.base: info for info in self._by_uid.values()}
        d = store._syncs.run(
            (target.path, move_new),
            lambda: store._run(store._sync_folder, target, move_new, previous),
        )
        return d.addCallback(self._apply_shared)

    def _apply_shared(self, outcome: tuple[Snapshot, bool]) -> tuple[MessageInfo, ...]:
        """Apply a rescan that other mailboxes of the folder may share; ``\\Recent`` is one's."""
        snapshot, first = outcome
        if not first and any(info.recent for info in snapshot.messages):
            messages = tuple(
                dataclasses.replace(info, recent=False) if info.recent else info
                for info in snapshot.messages
            )
            snapshot = dataclasses.replace(snapshot, messages=messages)
        return self._apply(snapshot)

    def refresh_changes(self, move_new: bool = True) -> Deferred[Changes]:
        """Rescan the folder; fire with what changed since the last snapshot (:class:`Changes`)."""
        before = {uid: (info.flags, info.modseq) for uid, info in self._by_uid.items()}
        validity = self.uid_validity

        def diff(messages: tuple[MessageInfo, ...]) -> Changes:
            if self.uid_validity != validity:
                return Changes(uid_validity_changed=True)
            now = {info.uid: (info.flags, info.modseq) for info in messages}
            return Changes(
                added=tuple(sorted(uid for uid in now if uid not in before)),
                expunged=tuple(sorted(uid for uid in before if uid not in now)),
                flags_changed=tuple(
                    sorted(uid for uid, f in now.items() if uid in before and before[uid] != f)
                ),
            )

        return self.refresh(move_new).addCallback(diff)

    @property
    def target(self) -> MaildirFolder:
        """The folder's blocking operations (run them in the store's thread pool)."""
        return self._target

    def run(self, f: Callable[..., _T], *args: Any) -> Deferred[_T]:
        """Run blocking ``f(*args)`` where the store runs its disk work."""
        return self._store._run(f, *args)

    def open_message(self, uid: int) -> Deferred[BinaryIO]:
        """Fire with the message opened for binary reading; the caller closes it."""
        info = self.get(uid)
        return self._store._run(self._target.open_message, info)

    def store_flags(
        self, uids: Iterable[int], flags: Iterable[str], mode: FlagMode = FlagMode.REPLACE
    ) -> Deferred[list[MessageInfo]]:
        """Replace, add or remove flags of messages; fire with their new infos."""
        return self.store_flags_conditional(uids, flags, mode).addCallback(
            lambda result: result.updated
        )

    def store_flags_conditional(
        self,
        uids: Iterable[int],
        flags: Iterable[str],
        mode: FlagMode = FlagMode.REPLACE,
        unchanged_since: int | None = None,
    ) -> Deferred[StoreResult]:
        """Store flags, sparing messages whose modseq is above ``unchanged_since`` (CONDSTORE).

        Fires with a :class:`StoreResult` (new infos, the UIDs spared, HIGHESTMODSEQ).
        """
        infos = [self.get(uid) for uid in uids]
        wanted = list(flags)

        def work() -> StoreResult:
            return self._target.store_flags_conditional(infos, wanted, mode, unchanged_since)

        def update(result: StoreResult) -> StoreResult:
            for info in result.updated:
                if info.uid in self._by_uid:
                    self._by_uid[info.uid] = info
            self.highest_modseq = max(self.highest_modseq, result.highest_modseq)
            return result

        d: Deferred[StoreResult] = self._store._run(work)
        return d.addCallback(update)

    def vanished_since(self, modseq: int) -> Deferred[list[int] | None]:
        """Fire with the UIDs expunged after ``modseq`` (QRESYNC), or ``None`` if forgotten."""
        return self._store._run(self._target.index.vanished_since, modseq)

    def expunge(self, uids: Iterable[int] | None = None) -> Deferred[list[int]]:
        """Remove the given messages (default: those flagged ``\\Deleted``); fire with UIDs."""
        if uids is None:
            infos = [info for info in self.messages if DELETED in info.flags]
        else:
            infos = [self.get(uid) for uid in uids]

        def update(removed: list[int]) -> list[int]:
            for uid in removed:
                self._by_uid.pop(uid, None)
            if removed:
                self.highest_modseq = max(self.highest_modseq, self._target.index.highest_modseq)
            return removed

        d: Deferred[list[int]] = self._store._run(self._target.expunge, infos)
        return d.addCallback(update)

    def append(
        self, flags: Iterable[str] = (), internal_date: float | None = None
    ) -> AppendWriter:
        """Return a writer for a message appended to this folder; ``commit()`` gives its UID."""
        return self._store._append(self._target, flags, internal_date)

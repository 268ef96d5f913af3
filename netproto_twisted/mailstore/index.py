"""A folder's persistent index: per-UID mod-sequence, flags and size, HIGHESTMODSEQ, expunges.

IMAP CONDSTORE/QRESYNC (RFC 7162) needs, per folder, a mod-sequence
(``modseq``) for every message that grows whenever the message's flags
change, a per-folder HIGHESTMODSEQ, and the UIDs expunged with the modseq
of their expunge (``VANISHED (EARLIER)``).  Maildir has no place for that,
so it is kept beside the folder, as Dovecot keeps its own private files,
in ``netproto-index.sqlite`` (SQLite in WAL mode: readers never wait,
writers of several processes take turns, a crash leaves it consistent).

The index is a cache of what the directory says: :meth:`FolderIndex.reconcile`
compares it with a fresh scan and, where they disagree (another program
renamed a file to change its flags, delivered or deleted a message), the
scan wins and the message gets a new modseq.  A lost or corrupt index is
rebuilt; the modseqs of a new index start at the clock in milliseconds, so
that they stay above anything a client may have cached from a lost one.

Every change made in one :meth:`FolderIndex.writing` transaction shares one
new modseq (one STORE command is one transaction).  Each process keeps a
mirror of the rows in memory, brought up to date from the rows whose
modseq is above the one it last saw, so a warm check is one small query.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from twisted.logger import Logger

__all__ = ["INDEX_NAME", "MAX_VANISHED", "FolderIndex", "IndexTransaction", "Reconciled"]

INDEX_NAME = "netproto-index.sqlite"
"""The index file's name inside the folder directory (with ``-wal`` and ``-shm`` beside it)."""

MAX_VANISHED = 100_000
"""Expunged UIDs remembered per folder; older ones are forgotten (see :meth:`vanished_since`)."""

_log = Logger(namespace="netproto.mailstore.index")
_BUSY_TIMEOUT = 30.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS msg (
    uid INTEGER PRIMARY KEY, modseq INTEGER NOT NULL, flags TEXT NOT NULL,
    size INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS msg_modseq ON msg (modseq);
CREATE TABLE IF NOT EXISTS vanished (uid INTEGER PRIMARY KEY, modseq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS vanished_modseq ON vanished (modseq);
"""


_BUSY = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED"})
_CORRUPT = frozenset({"SQLITE_NOTADB", "SQLITE_CORRUPT"})


def _error_name(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None)  # Python 3.11+
    if isinstance(name, str):
        return name
    text = str(exc)
    if "locked" in text or "busy" in text:
        return "SQLITE_BUSY"
    if "not a database" in text or "malformed" in text:
        return "SQLITE_NOTADB"
    return "SQLITE_ERROR"


def _key(flags: Iterable[str]) -> str:
    if isinstance(flags, frozenset):
        return _frozen_key(flags)
    return "\n".join(sorted(flags))


@functools.lru_cache(maxsize=4096)
def _frozen_key(flags: frozenset[str]) -> str:
    """A flag set's key; a folder has few distinct flag sets, so this is nearly always a hit."""
    return "\n".join(sorted(flags))


@dataclass(frozen=True)
class Reconciled:
    """What :meth:`FolderIndex.reconcile` found and recorded.

    :ivar modseqs: every message's modseq, by UID.
    :ivar highest_modseq: the folder's HIGHESTMODSEQ.
    :ivar added: UIDs new to the index.
    :ivar changed: UIDs whose flags differed from the index.
    :ivar expunged: UIDs the index had that the folder no longer has.
    """

    modseqs: dict[int, int]
    highest_modseq: int
    added: tuple[int, ...] = ()
    changed: tuple[int, ...] = ()
    expunged: tuple[int, ...] = ()


class IndexTransaction:
    """Changes to the index inside :meth:`FolderIndex.writing`; they share one new modseq."""

    def __init__(self, index: FolderIndex, db: sqlite3.Connection) -> None:
        self._index = index
        self._db = db
        self._new: int | None = None
        self.pruned = False
        self._upserts: list[tuple[int, int, str, int]] = []
        self._expunged: list[tuple[int, int]] = []

    def _next(self) -> int:
        if self._new is None:
            self._new = self._index.highest_modseq + 1
        return self._new

    @property
    def changed(self) -> bool:
        """Whether anything was recorded."""
        return self._new is not None

    def modseq(self, uid: int) -> int | None:
        """The message's modseq, or ``None`` if the index does not know it."""
        row = self._index._rows.get(uid)
        return row[0] if row is not None else None

    def flags(self, uid: int) -> str | None:
        """The message's flags as last recorded (a sorted, newline-joined key), or ``None``."""
        row = self._index._rows.get(uid)
        return row[1] if row is not None else None

    def set_flags(self, uid: int, flags: Iterable[str], size: int) -> int:
        """Record a message's flags; return its modseq (a new one only if they changed)."""
        return self.set_key(uid, _key(flags), size)

    def set_key(self, uid: int, key: str, size: int) -> int:
        """:meth:`set_flags` with the flags as their key (sorted, newline-joined)."""
        row = self._index._rows.get(uid)
        if row is not None and row[1] == key:
            return row[0]
        modseq = self._next()
        self._upserts.append((uid, modseq, key, size))
        self._index._rows[uid] = (modseq, key)
        return modseq

    def expunge(self, uid: int) -> None:
        """Forget a message, remembering its UID as expunged now."""
        if self._index._rows.pop(uid, None) is None:
            return
        self._expunged.append((uid, self._next()))
        self.pruned = True

    def flush(self) -> None:
        """Write what was recorded (in two statements however many messages)."""
        db = self._db
        if self._expunged:
            db.executemany("DELETE FROM msg WHERE uid = ?", [(u,) for u, _m in self._expunged])
            db.executemany(
                "INSERT OR REPLACE INTO vanished (uid, modseq) VALUES (?, ?)", self._expunged
            )
        if self._upserts:
            db.executemany(
                "INSERT OR REPLACE INTO msg (uid, modseq, flags, size) VALUES (?, ?, ?, ?)",
                self._upserts,
            )
            # A UID expunged and back (a rebuilt uidlist) is no longer vanished.
            if db.execute("SELECT EXISTS (SELECT 1 FROM vanished)").fetchone()[0]:
                db.executemany(
                    "DELETE FROM vanished WHERE uid = ?", [(u[0],) for u in self._upserts]
                )
        self._upserts = []
        self._expunged = []


class FolderIndex:
    """The index of one folder directory (see the module docstring); thread-safe.

    :param path: the folder directory (with ``cur/ new/ tmp/``).
    :param clock: the time, for the modseq floor of a rebuilt index.
    :param max_vanished: expunged UIDs remembered.
    """

    def __init__(
        self,
        path: str,
        *,
        clock: Callable[[], float] = time.time,
        max_vanished: int = MAX_VANISHED,
    ) -> None:
        self.path = path
        self.file = os.path.join(path, INDEX_NAME)
        self._clock = clock
        self.max_vanished = max_vanished
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._memory = False
        self._inode: int | None = None
        self._rows: dict[int, tuple[int, str]] = {}
        self._generation = ""
        self.highest_modseq = 0
        """The folder's HIGHESTMODSEQ as last seen."""
        self.uid_validity = 0
        self.vanished_floor = 0
        """Expunges at or below this modseq are forgotten."""

    # -- the database -------------------------------------------------------------------

    def close(self, wait: bool = True) -> bool:
        """Close the database connection (it is reopened when needed).

        ``wait=False``: only if no other thread is using it now; return whether closed.
        """
        if not self._lock.acquire(blocking=wait):
            return False
        try:
            if self._db is not None and not self._memory:
                self._db.close()
                self._db = None
                self._generation = ""
            return True
        finally:
            self._lock.release()

    def _connect(self) -> sqlite3.Connection:
        try:
            inode: int | None = os.stat(self.file).st_ino
        except OSError:
            inode = None
        if self._db is not None and (self._memory or (inode == self._inode and inode is not None)):
            return self._db
        self.close()
        try:
            db = self._open()
        except sqlite3.DatabaseError as exc:
            if _error_name(exc) in _BUSY:
                raise  # another writer held it past the timeout: try again later
            if _error_name(exc) in _CORRUPT:
                _log.warn(
                    "{file}: corrupt index ({reason}); rebuilding it",
                    file=self.file,
                    reason=str(exc),
                )
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(OSError):
                        os.unlink(self.file + suffix)
            try:
                db = self._open()
            except sqlite3.DatabaseError as exc2:
                if _error_name(exc2) in _BUSY:
                    raise
                _log.warn(
                    "{file}: cannot keep an index ({reason}); modseqs last this process only",
                    file=self.file,
                    reason=str(exc2),
                )
                db = self._open(memory=True)
                self._memory = True
        self._db = db
        try:
            self._inode = os.stat(self.file).st_ino
        except OSError:
            self._inode = None
        return db

    def _open(self, memory: bool = False) -> sqlite3.Connection:
        db = sqlite3.connect(
            ":memory:" if memory else self.file,
            timeout=_BUSY_TIMEOUT,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            if not memory:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            if db.execute("SELECT value FROM meta WHERE key = 'highest'").fetchone() is None:
                # A new index.  If the folder was in use before, a client may have cached
                # modseqs of a lost index (or of Dovecot's): start above them.
                floor = int(self._clock() * 1000)
                db.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("highest", str(floor)),
                        ("generation", os.urandom(8).hex()),
                        ("uidvalidity", "0"),
                        ("vanished_floor", str(floor)),
                    ],
                )
            db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        return db

    def _meta(self, db: sqlite3.Connection) -> dict[str, str]:
        return dict(db.execute("SELECT key, value FROM meta").fetchall())

    def _refresh_mirror(self, db: sqlite3.Connection) -> None:
        """Bring the in-memory rows up to date with the database."""
        meta = self._meta(db)
        highest = int(meta.get("highest", "0"))
        generation = meta.get("generation", "")
        self.uid_validity = int(meta.get("uidvalidity", "0"))
        self.vanished_floor = int(meta.get("vanished_floor", "0"))
        if generation != self._generation:
            self._rows = {
                uid: (modseq, flags)
                for uid, modseq, flags in db.execute("SELECT uid, modseq, flags FROM msg")
            }
        elif highest != self.highest_modseq:
            since = self.highest_modseq
            for uid, modseq, flags in db.execute(
                "SELECT uid, modseq, flags FROM msg WHERE modseq > ?", (since,)
            ):
                self._rows[uid] = (modseq, flags)
            for (uid,) in db.execute("SELECT uid FROM vanished WHERE modseq > ?", (since,)):
                self._rows.pop(uid, None)
        self._generation = generation
        self.highest_modseq = highest

    @contextlib.contextmanager
    def writing(self) -> Iterator[IndexTransaction]:
        """A write transaction (the other processes' writers wait); committed on exit."""
        with self._lock:
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")
            try:
                self._refresh_mirror(db)
                tx = IndexTransaction(self, db)
                yield tx
                tx.flush()
                if tx.changed:
                    assert tx._new is not None
                    self.highest_modseq = tx._new
                    db.execute("UPDATE meta SET value = ? WHERE key = 'highest'", (str(tx._new),))
                    if tx.pruned:
                        self._prune(db)
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                self._generation = ""  # the mirror may hold what was rolled back
                raise

    def _prune(self, db: sqlite3.Connection) -> None:
        (count,) = db.execute("SELECT COUNT(*) FROM vanished").fetchone()
        excess = count - self.max_vanished
        if excess <= 0:
            return
        (floor,) = db.execute(
            "SELECT MAX(modseq) FROM (SELECT modseq FROM vanished ORDER BY modseq LIMIT ?)",
            (excess,),
        ).fetchone()
        db.execute("DELETE FROM vanished WHERE modseq <= ?", (floor,))
        db.execute("UPDATE meta SET value = ? WHERE key = 'vanished_floor'", (str(floor),))
        self.vanished_floor = floor

    # -- operations ---------------------------------------------------------------------

    def reconcile(
        self, uid_validity: int, messages: Iterable[tuple[int, frozenset[str], int]]
    ) -> Reconciled:
        """Compare the index with a scan (``(uid, flags, size)`` of every message); fix it.

        A changed UIDVALIDITY voids every row.  Nothing is written when the
        index agrees with the scan (the common case: one query).
        """
        scanned = {uid: (_key(flags), size) for uid, flags, size in messages}
        with self._lock:
            db = self._connect()
            self._refresh_mirror(db)
            if self._agrees(uid_validity, scanned):
                return Reconciled(
                    {uid: self._rows[uid][0] for uid in scanned}, self.highest_modseq
                )
            with self.writing() as tx:
                if self.uid_validity != uid_validity:
                    db.execute("DELETE FROM msg")
                    db.execute("DELETE FROM vanished")
                    db.execute(
                        "UPDATE meta SET value = ? WHERE key = 'uidvalidity'", (str(uid_validity),)
                    )
                    db.execute(
                        "UPDATE meta SET value = ? WHERE key = 'vanished_floor'",
                        (str(self.highest_modseq),),
                    )
                    # Other processes' mirrors must reload, not read what is new.
                    self._generation = os.urandom(8).hex()
                    db.execute(
                        "UPDATE meta SET value = ? WHERE key = 'generation'", (self._generation,)
                    )
                    self.vanished_floor = self.highest_modseq
                    self.uid_validity = uid_validity
                    self._rows = {}
                added: list[int] = []
                changed: list[int] = []
                expunged = sorted(uid for uid in self._rows if uid not in scanned)
                for uid in expunged:
                    tx.expunge(uid)
                modseqs: dict[int, int] = {}
                for uid, (key, size) in scanned.items():
                    row = self._rows.get(uid)
                    if row is None:
                        added.append(uid)
                    elif row[1] != key:
                        changed.append(uid)
                    modseqs[uid] = tx.set_key(uid, key, size)
            if changed:
                _log.debug(
                    "{path}: flags of {n} messages changed outside the index",
                    path=self.path,
                    n=len(changed),
                )
            return Reconciled(
                modseqs, self.highest_modseq, tuple(added), tuple(changed), tuple(expunged)
            )

    def _agrees(self, uid_validity: int, scanned: dict[int, tuple[str, int]]) -> bool:
        if self.uid_validity != uid_validity or len(scanned) != len(self._rows):
            return False
        rows = self._rows
        for uid, (key, _size) in scanned.items():
            row = rows.get(uid)
            if row is None or row[1] != key:
                return False
        return True

    def vanished_since(self, modseq: int) -> list[int] | None:
        """UIDs expunged with a modseq above ``modseq``, ascending; ``None`` if forgotten."""
        with self._lock:
            db = self._connect()
            self._refresh_mirror(db)
            if modseq < self.vanished_floor:
                return None
            return [
                uid
                for (uid,) in db.execute(
                    "SELECT uid FROM vanished WHERE modseq > ? ORDER BY uid", (modseq,)
                )
            ]

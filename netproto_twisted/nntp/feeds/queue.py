"""The durable feed queue: one row per (peer, article) to send, in the news database.

:class:`FeedRouter` is the store's filing hook: in the store's writer
thread, inside the transaction that files an article, it decides which
peers get it (:meth:`~netproto_twisted.nntp.feeds.peers.FeedPeer.wants`)
and inserts their rows -- so an article acknowledged to its sender is in
every queue it belongs to, committed by the same fsync, and a crash loses
neither.  After the commit it tells the sender which peers have new work.

:class:`FeedQueue` is the sender's view: the due rows of a peer in queue
order (``id``, which only grows), and the batched updates -- rows removed
once the peer answered for good, ``attempts``/``next_try`` raised on "try
later", old rows purged.  Its commits are not fsynced: a removal lost in a
crash only sends an article again, which the peer refuses as a duplicate.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from netproto_twisted.nntp.feeds.peers import FeedPeer, path_entries
from netproto_twisted.nntp.interfaces import Incoming

__all__ = ["FeedQueue", "FeedRouter", "QueueEntry", "article_path"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS feed_queue(
    id INTEGER PRIMARY KEY AUTOINCREMENT, peer TEXT NOT NULL, message_id TEXT NOT NULL,
    queued REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS feed_queue_peer ON feed_queue(peer, id);
"""

_PATH = re.compile(rb"(?:\A|\r\n)path:[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", re.IGNORECASE)


def article_path(data: bytes) -> list[str]:
    """The Path names of a stored article (CRLF lines), ``[]`` without a Path."""
    end = data.find(b"\r\n\r\n")
    head = data[: end + 2] if end >= 0 else data
    found = _PATH.search(head)
    if found is None:
        return []
    return path_entries(found.group(1).decode("utf-8", "replace"))


@dataclass(frozen=True)
class QueueEntry:
    """One queued article for one peer."""

    id: int
    peer: str
    message_id: str
    queued: float
    attempts: int
    next_try: float


class FeedRouter:
    """The store's filing hook: queue each stored article for the peers that want it.

    :param peers: the outgoing feeds.
    :param on_committed: called on the reactor thread with the names of the
        peers that got new rows, once their transaction is committed.
    """

    def __init__(
        self,
        peers: Sequence[FeedPeer],
        on_committed: Callable[[set[str]], object] | None = None,
    ) -> None:
        self.peers = tuple(peers)
        self.on_committed = on_committed

    def filed(self, db: sqlite3.Connection, article: Incoming) -> Sequence[str]:
        """Insert the rows for ``article`` in the open transaction (the store's writer thread)."""
        if not self.peers:
            return ()
        path = article_path(article.data)
        names = [p.name for p in self.peers if p.wants(article.groups, path)]
        if names:
            db.executemany(
                "INSERT INTO feed_queue(peer, message_id, queued) VALUES(?,?,?)",
                [(name, article.message_id, article.arrived) for name in names],
            )
        return names

    def committed(self, names: set[str]) -> None:
        """The rows for ``names`` are on disk now (reactor thread)."""
        if names and self.on_committed is not None:
            self.on_committed(names)


def create_schema(db: sqlite3.Connection) -> None:
    """Create the queue table in a news database if it is missing."""
    db.executescript(SCHEMA)


class FeedQueue:
    """The sender's connection to the queue (quick indexed reads; batched writes).

    :param path: the news database.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        create_schema(self.db)
        #: The connection of the writes (one at a time, in a thread: :meth:`apply`, :meth:`purge`).
        self.writer = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=30
        )
        self.writer.execute("PRAGMA synchronous=NORMAL")

    def close(self) -> None:
        """Close the connections."""
        self.db.close()
        self.writer.close()

    def due(self, peer: str, after: int, now: float, limit: int) -> list[QueueEntry]:
        """Rows of ``peer`` with ``id > after`` that are due at ``now``, in queue order."""
        rows = self.db.execute(
            "SELECT id, peer, message_id, queued, attempts, next_try FROM feed_queue "
            "WHERE peer=? AND id>? AND next_try<=? ORDER BY id LIMIT ?",
            (peer, after, now, limit),
        )
        return [QueueEntry(*row) for row in rows]

    def next_due(self, peer: str) -> float | None:
        """When the earliest row of ``peer`` is due (``None``: its queue is empty)."""
        row = self.db.execute("SELECT min(next_try) FROM feed_queue WHERE peer=?", (peer,))
        value = row.fetchone()[0]
        return None if value is None else float(value)

    def count(self, peer: str | None = None) -> int:
        """Rows queued (for one peer, or all)."""
        if peer is None:
            return int(self.db.execute("SELECT count(*) FROM feed_queue").fetchone()[0])
        cur = self.db.execute("SELECT count(*) FROM feed_queue WHERE peer=?", (peer,))
        return int(cur.fetchone()[0])

    def peers(self) -> dict[str, int]:
        """Rows queued per peer name."""
        rows = self.db.execute("SELECT peer, count(*) FROM feed_queue GROUP BY peer")
        return {name: int(n) for name, n in rows}

    def apply(self, done: Iterable[int], later: Iterable[tuple[int, float]]) -> None:
        """Remove the ``done`` rows; count an attempt on the ``later`` ones, due again then."""
        done = list(done)
        later = list(later)
        if not done and not later:
            return
        db = self.writer
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("DELETE FROM feed_queue WHERE id=?", [(i,) for i in done])
            db.executemany(
                "UPDATE feed_queue SET attempts=attempts+1, next_try=? WHERE id=?",
                [(when, i) for i, when in later],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def purge(self, peer: str, queued_before: float) -> int:
        """Remove the rows of ``peer`` queued before ``queued_before``; return how many."""
        cur = self.writer.execute(
            "DELETE FROM feed_queue WHERE peer=? AND queued<?", (peer, queued_before)
        )
        return int(cur.rowcount)

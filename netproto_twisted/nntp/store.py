"""The embedded article store: one SQLite database with groups, articles, overview and history.

:class:`NewsDatabase` is the synchronous layer (schema, queries, admin: the
``netproto news`` command uses it directly).  :class:`SQLiteNewsStore` is the
:class:`~netproto_twisted.nntp.interfaces.INewsStore` the server uses:

- **Reads** run on the calling (reactor) thread on their own connection:
  each is one indexed query (microseconds; WAL readers never wait for the
  writer).  Long reads -- an ``OVER`` of a whole group -- go through
  :meth:`~SQLiteNewsStore.open_overview`, a cursor read a block at a time in
  the thread pool on a connection of its own, so memory stays bounded.
- **Writes** go to one writer thread that commits them in groups: it takes
  every article waiting, files them all in one transaction, commits (in WAL
  mode with ``synchronous=FULL``: one fsync of the log for the whole group),
  and only then fires their Deferreds.  An article is acknowledged only once
  it is on disk, and a feed of many articles in flight pays one fsync per
  group rather than per article.
- **History**: every Message-ID stored is kept in ``history``; expiry drops
  the article and its overview, marks the history row expired and keeps it
  ``history_days`` more, so an expired article offered again is refused.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from zope.interface import implementer

from netproto_twisted.core.reactors import ICoreThreadsReactor
from netproto_twisted.nntp._wire import (
    OVERVIEW_FIELDS,
    ArticleFormatError,
    header_value,
    parse_headers,
    sanitize_field,
)
from netproto_twisted.nntp.article_blobs import (
    IArticleStreams,
    LocatedArticle,
    SQLiteArticleReader,
    locate,
    locate_by_id,
)
from netproto_twisted.nntp.errors import NoSuchGroup, StoreError
from netproto_twisted.nntp.interfaces import (
    Article,
    GroupInfo,
    History,
    Incoming,
    INewsStore,
    IOverviewCursor,
    StoreOutcome,
    StoreResult,
)
from netproto_twisted.nntp.lists import is_group_status

__all__ = [
    "DEFAULT_EXPIRE_DAYS",
    "FilingHook",
    "NewsDatabase",
    "OverviewCursor",
    "SQLiteNewsStore",
]

_log = Logger(namespace="netproto.nntp.store")
_T = TypeVar("_T")

#: Articles older than this many days are expired unless the group says otherwise (0: never).
DEFAULT_EXPIRE_DAYS = 0.0
#: How long an expired Message-ID stays in the history (days).
DEFAULT_HISTORY_DAYS = 10.0
#: Most articles committed in one group.
_MAX_GROUP = 1000
_DAY = 86400.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups(
    name TEXT PRIMARY KEY, low INTEGER NOT NULL DEFAULT 1, high INTEGER NOT NULL DEFAULT 0,
    count INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'y',
    created REAL NOT NULL, creator TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '', expire_days REAL);
CREATE TABLE IF NOT EXISTS articles(
    id INTEGER PRIMARY KEY, message_id TEXT NOT NULL UNIQUE, arrived REAL NOT NULL,
    groups TEXT NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS articles_arrived ON articles(arrived);
CREATE TABLE IF NOT EXISTS overview(
    grp TEXT NOT NULL, number INTEGER NOT NULL, article INTEGER NOT NULL,
    arrived REAL NOT NULL, fields TEXT NOT NULL, PRIMARY KEY(grp, number)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS overview_article ON overview(article);
CREATE TABLE IF NOT EXISTS history(
    message_id TEXT PRIMARY KEY, arrived REAL NOT NULL, expired REAL) WITHOUT ROWID;
"""

#: Header name (lower case) -> index of the field in the stored overview text.
_OVERVIEW_INDEX = {name.lower(): i for i, name in enumerate(OVERVIEW_FIELDS)}
_OVERVIEW_INDEX["bytes"] = _OVERVIEW_INDEX[":bytes"]
_OVERVIEW_INDEX["lines"] = _OVERVIEW_INDEX[":lines"]


def _connect(path: str, *, durable: bool = True) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
    return db


def _group_info(row: Sequence[Any]) -> GroupInfo:
    return GroupInfo(*row)


_GROUP_COLUMNS = "name, low, high, count, status, created, creator, description, expire_days"


class NewsDatabase:
    """The synchronous store: schema, queries and administration (one thread per object).

    :param path: the SQLite file (created with its schema if missing).
    :param durable: fsync every commit (``False``: for throwaway test stores only).
    """

    def __init__(self, path: str, *, durable: bool = True) -> None:
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        self.path = path
        self.durable = durable
        self.db = _connect(path, durable=durable)
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    # -- groups -------------------------------------------------------------------------

    def add_group(
        self,
        name: str,
        *,
        status: str = "y",
        description: str = "",
        creator: str = "",
        expire_days: float | None = None,
        now: float | None = None,
    ) -> bool:
        """Create a group (``False`` if it exists: then its settings are updated)."""
        if not is_group_status(status):
            raise StoreError(f"group status is y, n, m, x, j or =group, not {status!r}")
        if not name or any(c in name for c in " \t\r\n,*?[]!\\") or not name.isprintable():
            raise StoreError(f"bad group name {name!r}")
        created = time.time() if now is None else now
        cur = self.db.execute(
            "INSERT OR IGNORE INTO groups(name, status, created, creator, description, "
            "expire_days) VALUES(?,?,?,?,?,?)",
            (name, status, created, creator, description, expire_days),
        )
        if cur.rowcount:
            return True
        self.db.execute(
            "UPDATE groups SET status=?, description=?, expire_days=? WHERE name=?",
            (status, description, expire_days, name),
        )
        return False

    def remove_group(self, name: str) -> int:
        """Remove a group and its overview; articles left in no group go too.  Returns them."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("DELETE FROM groups WHERE name=?", (name,)).rowcount == 0:
                raise NoSuchGroup(name)
            ids = [r[0] for r in db.execute("SELECT article FROM overview WHERE grp=?", (name,))]
            db.execute("DELETE FROM overview WHERE grp=?", (name,))
            gone = self._drop_orphans(ids, time.time())
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return gone

    def _drop_orphans(self, ids: Iterable[int], now: float) -> int:
        gone = 0
        for article in set(ids):
            if self.db.execute("SELECT 1 FROM overview WHERE article=?", (article,)).fetchone():
                continue
            row = self.db.execute(
                "DELETE FROM articles WHERE id=? RETURNING message_id", (article,)
            ).fetchone()
            if row:
                gone += 1
                self.db.execute("UPDATE history SET expired=? WHERE message_id=?", (now, row[0]))
        return gone

    def groups(self) -> list[GroupInfo]:
        """Every group, by name."""
        rows = self.db.execute(f"SELECT {_GROUP_COLUMNS} FROM groups ORDER BY name")  # noqa: S608
        return [_group_info(r) for r in rows]

    def group(self, name: str) -> GroupInfo | None:
        """One group, or ``None``."""
        row = self.db.execute(
            f"SELECT {_GROUP_COLUMNS} FROM groups WHERE name=?",  # noqa: S608
            (name,),
        ).fetchone()
        return None if row is None else _group_info(row)

    def new_groups(self, since: float) -> list[GroupInfo]:
        """Groups created at or after ``since``."""
        rows = self.db.execute(
            f"SELECT {_GROUP_COLUMNS} FROM groups WHERE created >= ? ORDER BY name",  # noqa: S608
            (since,),
        )
        return [_group_info(r) for r in rows]

    # -- reads ----------------------------------------------------------------------------

    def numbers(self, group: str, low: int, high: int | None) -> list[int]:
        """Article numbers present in a range."""
        top = high if high is not None else 2**62
        rows = self.db.execute(
            "SELECT number FROM overview WHERE grp=? AND number BETWEEN ? AND ? ORDER BY number",
            (group, low, top),
        )
        return [r[0] for r in rows]

    def neighbour(self, group: str, number: int, forward: bool) -> int | None:
        """The next or previous number present."""
        sql = (
            "SELECT min(number) FROM overview WHERE grp=? AND number>?"
            if forward
            else "SELECT max(number) FROM overview WHERE grp=? AND number<?"
        )
        row = self.db.execute(sql, (group, number)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def article(self, group: str, number: int) -> Article | None:
        """Article ``number`` of ``group``."""
        row = self.db.execute(
            "SELECT a.message_id, a.data FROM overview o JOIN articles a ON a.id=o.article "
            "WHERE o.grp=? AND o.number=?",
            (group, number),
        ).fetchone()
        return None if row is None else Article(row[0], number, bytes(row[1]))

    def article_by_id(self, message_id: str) -> Article | None:
        """The article with this Message-ID."""
        row = self.db.execute(
            "SELECT message_id, data FROM articles WHERE message_id=?", (message_id,)
        ).fetchone()
        return None if row is None else Article(row[0], 0, bytes(row[1]))

    def header_values(
        self, group: str, low: int, high: int | None, header: str, limit: int
    ) -> list[tuple[int, str]]:
        """``(number, value)`` of one header over a range (overview fields from the index)."""
        top = high if high is not None else 2**62
        name = header.lower()
        index = _OVERVIEW_INDEX.get(name)
        if name == "xref" or index is not None:
            rows = self.db.execute(
                "SELECT number, fields FROM overview WHERE grp=? AND number BETWEEN ? AND ? "
                "ORDER BY number LIMIT ?",
                (group, low, top, limit),
            )
            out = []
            for number, fields in rows:
                parts = fields.split("\t")
                value = parts[index] if index is not None else parts[-1].partition(": ")[2]
                out.append((number, value))
            return out
        rows = self.db.execute(
            "SELECT o.number, a.data FROM overview o JOIN articles a ON a.id=o.article "
            "WHERE o.grp=? AND o.number BETWEEN ? AND ? ORDER BY o.number LIMIT ?",
            (group, low, top, limit),
        )
        out = []
        for number, data in rows:
            head = bytes(data).partition(b"\r\n\r\n")[0] + b"\r\n"
            try:
                value = header_value(parse_headers(head), header)
            except ArticleFormatError:
                value = None
            out.append((number, sanitize_field(value) if value is not None else ""))
        return out

    def history(self, message_id: str) -> History:
        """What the history knows."""
        row = self.db.execute(
            "SELECT expired FROM history WHERE message_id=?", (message_id,)
        ).fetchone()
        if row is None:
            return History.UNKNOWN
        return History.STORED if row[0] is None else History.EXPIRED

    def new_news(self, since: float) -> list[tuple[str, list[str]]]:
        """Articles arrived at or after ``since``: ``(Message-ID, groups)``."""
        rows = self.db.execute(
            "SELECT message_id, groups FROM articles WHERE arrived >= ? ORDER BY arrived",
            (since,),
        )
        return [(mid, groups.split(",")) for mid, groups in rows]

    # -- writes (inside a transaction the caller holds) ---------------------------------------

    def file(self, article: Incoming, path_host: str) -> StoreResult:
        """File one article in the open transaction (the caller commits)."""
        db = self.db
        if db.execute(
            "SELECT 1 FROM history WHERE message_id=?", (article.message_id,)
        ).fetchone():
            return StoreResult(StoreOutcome.DUPLICATE)
        numbers: list[tuple[str, int]] = []
        for name in dict.fromkeys(article.groups):
            row = db.execute(
                "UPDATE groups SET high=high+1, count=count+1, "
                "low=CASE WHEN count=0 THEN high+1 ELSE low END WHERE name=? RETURNING high",
                (name,),
            ).fetchone()
            if row is not None:
                numbers.append((name, row[0]))
        if not numbers:
            return StoreResult(StoreOutcome.NO_GROUPS)
        cur = db.execute(
            "INSERT INTO articles(message_id, arrived, groups, data) VALUES(?,?,?,?)",
            (article.message_id, article.arrived, ",".join(n for n, _ in numbers), article.data),
        )
        article_id = cur.lastrowid
        xref = "Xref: " + " ".join([path_host] + [f"{g}:{n}" for g, n in numbers])
        fields = "\t".join([*article.overview, xref])
        db.executemany(
            "INSERT INTO overview(grp, number, article, arrived, fields) VALUES(?,?,?,?,?)",
            [(g, n, article_id, article.arrived, fields) for g, n in numbers],
        )
        db.execute(
            "INSERT INTO history(message_id, arrived) VALUES(?,?)",
            (article.message_id, article.arrived),
        )
        return StoreResult(StoreOutcome.STORED, tuple(numbers))

    def expire(
        self,
        now: float | None = None,
        *,
        default_days: float = DEFAULT_EXPIRE_DAYS,
        history_days: float = DEFAULT_HISTORY_DAYS,
    ) -> int:
        """Expire by age, group by group; forget old expired history.  Returns articles removed."""
        now = time.time() if now is None else now
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            ids: list[int] = []
            for info in self.groups():
                days = info.expire_days if info.expire_days is not None else default_days
                if not days:
                    continue
                cutoff = now - days * _DAY
                rows = db.execute(
                    "DELETE FROM overview WHERE grp=? AND arrived < ? RETURNING article",
                    (info.name, cutoff),
                ).fetchall()
                if rows:
                    ids.extend(r[0] for r in rows)
                    db.execute(
                        "UPDATE groups SET count=(SELECT count(*) FROM overview WHERE grp=?1), "
                        "low=coalesce((SELECT min(number) FROM overview WHERE grp=?1), high+1) "
                        "WHERE name=?1",
                        (info.name,),
                    )
            gone = self._drop_orphans(ids, now)
            db.execute(
                "DELETE FROM history WHERE expired IS NOT NULL AND expired < ?",
                (now - history_days * _DAY,),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return gone


@implementer(IOverviewCursor)
class OverviewCursor:
    """Overview lines of a range from a connection of its own (``read`` blocks: use a thread)."""

    def __init__(self, path: str, group: str, low: int, high: int | None) -> None:
        self._args = (group, low, high if high is not None else 2**62)
        self._path = path
        self._db: sqlite3.Connection | None = None
        self._rows: sqlite3.Cursor | None = None
        self._done = False

    def read(self, size: int) -> bytes:
        """About ``size`` bytes of ``number TAB fields CRLF`` lines; ``b""`` at the end."""
        if self._done:
            return b""
        if self._rows is None:
            self._db = sqlite3.connect(self._path, check_same_thread=False)
            self._rows = self._db.execute(
                "SELECT number, fields FROM overview WHERE grp=? AND number BETWEEN ? AND ? "
                "ORDER BY number",
                self._args,
            )
        out: list[str] = []
        total = 0
        rows = self._rows
        while total < size:
            batch = rows.fetchmany(min(256, (size - total) // 64 + 1))
            if not batch:
                self._done = True
                break
            for number, fields in batch:
                line = f"{number}\t{fields}\r\n"
                out.append(line)
                total += len(line)
        return "".join(out).encode("utf-8", "surrogateescape")

    def close(self) -> None:
        """Close the cursor's connection."""
        self._done = True
        db, self._db = self._db, None
        if db is not None:
            db.close()


class FilingHook(Protocol):
    """Work done in the transaction that files an article (the outgoing feed queue)."""

    def filed(self, db: sqlite3.Connection, article: Incoming) -> Sequence[str]:
        """In the writer thread, inside the transaction: return names to report."""

    def committed(self, names: set[str]) -> None:
        """On the reactor thread, after a commit: the names :meth:`filed` returned."""


class _Job:
    __slots__ = ("article", "deferred", "hooked", "result")

    def __init__(self, article: Incoming, deferred: Deferred[StoreResult]) -> None:
        self.article = article
        self.deferred = deferred
        self.result: StoreResult | BaseException | None = None
        self.hooked: Sequence[str] = ()


_STOP = object()


@implementer(INewsStore, IArticleStreams)
class SQLiteNewsStore:
    """The :class:`INewsStore` on one SQLite file, with a group-committing writer thread.

    :param reactor: fires the writer's results on the reactor thread.
    :param path: the database file.
    :param path_host: this server's name in Path and Xref headers.
    :param durable: fsync each group commit (``False`` for throwaway stores only).
    :param filing_hook: called for every article stored, in the same transaction.
    """

    def __init__(
        self,
        reactor: ICoreThreadsReactor,
        path: str,
        *,
        path_host: str = "localhost",
        durable: bool = True,
        filing_hook: FilingHook | None = None,
    ) -> None:
        self.reactor = reactor
        self.path = path
        self.path_host = path_host
        self.durable = durable
        self.filing_hook = filing_hook
        self._reader = NewsDatabase(path, durable=durable)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._in_flight: set[str] = set()
        self._stopped: Deferred[None] | None = None
        self._thread: threading.Thread | None = None  # started by the first store()

    # -- reads -----------------------------------------------------------------------------

    def _read(self, f: Callable[[], _T]) -> Deferred[_T]:
        try:
            return succeed(f())
        except Exception:
            return fail()

    def groups(self) -> Deferred[list[GroupInfo]]:
        """Every group."""
        return self._read(self._reader.groups)

    def group(self, name: str) -> Deferred[GroupInfo | None]:
        """One group."""
        return self._read(lambda: self._reader.group(name))

    def numbers(self, group: str, low: int, high: int | None) -> Deferred[list[int]]:
        """Numbers present in a range."""
        return self._read(lambda: self._reader.numbers(group, low, high))

    def neighbour(self, group: str, number: int, forward: bool) -> Deferred[int | None]:
        """The next or previous number present."""
        return self._read(lambda: self._reader.neighbour(group, number, forward))

    def article(self, group: str, number: int) -> Deferred[Article | None]:
        """Article by number."""
        return self._read(lambda: self._reader.article(group, number))

    def article_by_id(self, message_id: str) -> Deferred[Article | None]:
        """Article by Message-ID."""
        return self._read(lambda: self._reader.article_by_id(message_id))

    def locate(self, group: str, number: int) -> Deferred[LocatedArticle | None]:
        """Article by number, not read (to stream it)."""
        return self._read(lambda: locate(self._reader.db, group, number))

    def locate_by_id(self, message_id: str) -> Deferred[LocatedArticle | None]:
        """Article by Message-ID, not read (to stream it)."""
        return self._read(lambda: locate_by_id(self._reader.db, message_id))

    def open_article(self, article: LocatedArticle, part: str) -> SQLiteArticleReader:
        """A reader of (part of) a located article (``read`` blocks: run it in a thread)."""
        return SQLiteArticleReader(self.path, article.key, part=part)

    def open_overview(self, group: str, low: int, high: int | None) -> IOverviewCursor:
        """A cursor over a range's overview lines."""
        return OverviewCursor(self.path, group, low, high)

    def header_values(
        self, group: str, low: int, high: int | None, header: str, limit: int
    ) -> Deferred[list[tuple[int, str]]]:
        """One header's values over a range."""
        return self._read(lambda: self._reader.header_values(group, low, high, header, limit))

    def history(self, message_id: str) -> Deferred[History]:
        """What the history knows (``IN_FLIGHT`` while a copy is being stored)."""
        if message_id in self._in_flight:
            return succeed(History.IN_FLIGHT)
        return self._read(lambda: self._reader.history(message_id))

    def new_groups(self, since: float) -> Deferred[list[GroupInfo]]:
        """Groups created since."""
        return self._read(lambda: self._reader.new_groups(since))

    def new_news(self, since: float) -> Deferred[list[tuple[str, Sequence[str]]]]:
        """Articles arrived since."""
        return self._read(lambda: list(self._reader.new_news(since)))

    # -- writes ----------------------------------------------------------------------------

    def store(self, article: Incoming) -> Deferred[StoreResult]:
        """File an article; fires once its group is committed (on disk when durable)."""
        if self._stopped is not None:
            return fail(StoreError("the store is closed"))
        if article.message_id in self._in_flight:
            return succeed(StoreResult(StoreOutcome.DUPLICATE))
        if self._thread is None:
            self._thread = threading.Thread(target=self._writer, name="nntp-store", daemon=True)
            self._thread.start()
        d: Deferred[StoreResult] = Deferred()
        self._in_flight.add(article.message_id)
        self._queue.put(_Job(article, d))
        return d

    def close(self) -> Deferred[None]:
        """Commit what is queued, stop the writer thread and close the database."""
        if self._stopped is None:
            self._stopped = Deferred()
            if self._thread is None:
                self._ended()
            else:
                self._queue.put(_STOP)
        return self._stopped

    def _writer(self) -> None:
        db = NewsDatabase(self.path, durable=self.durable)
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                jobs = [first]
                stop = False
                while len(jobs) < _MAX_GROUP:
                    try:
                        job = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if job is _STOP:
                        stop = True
                        break
                    jobs.append(job)
                self._commit(db, jobs)
                self.reactor.callFromThread(self._report, jobs)
                if stop:
                    return
        finally:
            db.close()
            self.reactor.callFromThread(self._ended)

    def _commit(self, db: NewsDatabase, jobs: list[_Job]) -> None:
        try:
            db.db.execute("BEGIN IMMEDIATE")
            for job in jobs:
                db.db.execute("SAVEPOINT one")
                try:
                    job.result = db.file(job.article, self.path_host)
                    hook = self.filing_hook
                    if hook is not None and job.result.outcome is StoreOutcome.STORED:
                        job.hooked = hook.filed(db.db, job.article)
                    db.db.execute("RELEASE one")
                except Exception as e:  # a failed article (or hook) fails that article alone
                    job.hooked = ()
                    db.db.execute("ROLLBACK TO one")
                    db.db.execute("RELEASE one")
                    job.result = e
            db.db.execute("COMMIT")
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                db.db.execute("ROLLBACK")
            for job in jobs:
                job.result = e
                job.hooked = ()

    def _report(self, jobs: list[_Job]) -> None:
        hook = self.filing_hook
        if hook is not None:
            try:
                hook.committed({name for job in jobs for name in job.hooked})
            except Exception:
                _log.failure("the filing hook failed after a commit")
        for job in jobs:
            self._in_flight.discard(job.article.message_id)
            result = job.result
            if isinstance(result, StoreResult):
                job.deferred.callback(result)
            else:
                job.deferred.errback(StoreError(f"cannot store the article: {result}"))

    def _ended(self) -> None:
        self._reader.close()
        stopped = self._stopped
        if stopped is not None and not stopped.called:
            stopped.callback(None)

    # -- administration (blocking; call from a thread, or before the reactor runs) ------------

    def expire(self, now: float | None = None, **options: float) -> int:
        """Expire by age (blocking): see :meth:`NewsDatabase.expire`."""
        db = NewsDatabase(self.path, durable=self.durable)
        try:
            return db.expire(now, **options)
        finally:
            db.close()

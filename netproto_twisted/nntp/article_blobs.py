"""Large articles read from the store a block at a time: ARTICLE and BODY without holding them.

:class:`IArticleStreams` is what a store offers besides
:class:`~netproto_twisted.nntp.interfaces.INewsStore` to stream an article:
:meth:`~IArticleStreams.locate` / :meth:`~IArticleStreams.locate_by_id`
find it without reading it (a :class:`LocatedArticle`: Message-ID, number,
size) and :meth:`~IArticleStreams.open_article` returns a file-like reader
(``read(size)`` in a thread, ``close()``).  The server streams an article
this way when it is larger than ``NNTPSettings.stream_threshold``, dot-stuffed
by core's :class:`~netproto_twisted.core.streaming.StreamProducer` with
backpressure, so a 100 MB article costs the server a few blocks of memory.

:class:`SQLiteArticleReader` is the SQLite store's reader: its own
connection and SQLite's incremental BLOB I/O (``Connection.blobopen``,
Python 3.11); on Python 3.10 it reads the value whole.
"""

from __future__ import annotations

import io
import sqlite3
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import Interface

__all__ = [
    "IArticleStreams",
    "LocatedArticle",
    "SQLiteArticleReader",
    "locate",
    "locate_by_id",
]

#: Bytes read at a time while looking for the end of the header (BODY).
_SCAN = 64 * 1024


@dataclass(frozen=True)
class LocatedArticle:
    """An article found but not read: its Message-ID, its number (0 by Message-ID), its size.

    :ivar key: the store's handle for :meth:`IArticleStreams.open_article`.
    """

    message_id: str
    number: int
    size: int
    key: Any


class IArticleStreams(Interface):
    """A store that can stream an article instead of returning it whole."""

    def locate(group: str, number: int) -> Deferred[LocatedArticle | None]:  # noqa: N805
        """Article ``number`` of ``group``, not read."""

    def locate_by_id(message_id: str) -> Deferred[LocatedArticle | None]:  # noqa: N805
        """The article with this Message-ID, not read."""

    def open_article(article: LocatedArticle, part: str) -> Any:  # noqa: N805
        """A reader of the article: ``read(size)`` (blocking: call it in a thread), ``close()``.

        ``part``: ``"ARTICLE"`` (all of it), ``"HEAD"`` (up to the blank line,
        excluded) or ``"BODY"`` (after it).
        """


def locate(db: sqlite3.Connection, group: str, number: int) -> LocatedArticle | None:
    """Find article ``number`` of ``group`` in the SQLite store without reading it."""
    row = db.execute(
        "SELECT a.message_id, a.id, length(a.data) FROM overview o JOIN articles a "
        "ON a.id=o.article WHERE o.grp=? AND o.number=?",
        (group, number),
    ).fetchone()
    return None if row is None else LocatedArticle(row[0], number, row[2], row[1])


def locate_by_id(db: sqlite3.Connection, message_id: str) -> LocatedArticle | None:
    """Find the article with this Message-ID in the SQLite store without reading it."""
    row = db.execute(
        "SELECT message_id, id, length(data) FROM articles WHERE message_id=?", (message_id,)
    ).fetchone()
    return None if row is None else LocatedArticle(row[0], 0, row[2], row[1])


class SQLiteArticleReader:
    """One article's bytes from the SQLite store, a block per :meth:`read` (run it in a thread).

    :param path: the database file (a connection of its own is opened on the first read).
    :param rowid: the article's row.
    :param part: ``"ARTICLE"``, ``"HEAD"`` (up to the blank line, excluded)
        or ``"BODY"`` (after it).
    """

    def __init__(self, path: str, rowid: int, *, part: str = "ARTICLE") -> None:
        if part not in ("ARTICLE", "HEAD", "BODY"):
            raise ValueError(f"part is ARTICLE, HEAD or BODY, not {part!r}")
        self._path = path
        self._rowid = rowid
        self._part = part
        self._db: sqlite3.Connection | None = None
        self._blob: Any = None
        #: Bytes still to read (HEAD), or None: to the end.
        self._left: int | None = None

    def _open(self) -> Any:
        db = self._db = sqlite3.connect(self._path, check_same_thread=False)
        blobopen = getattr(db, "blobopen", None)
        if blobopen is not None:
            blob = blobopen("articles", "data", self._rowid, readonly=True)
        else:  # pragma: no cover - Python 3.10: no incremental BLOB I/O
            row = db.execute("SELECT data FROM articles WHERE id=?", (self._rowid,)).fetchone()
            blob = io.BytesIO(bytes(row[0]) if row else b"")
        if self._part != "ARTICLE":
            end = self._header_end(blob)
            if self._part == "BODY":
                blob.seek(end + 4 if end >= 0 else 0, io.SEEK_END if end < 0 else io.SEEK_SET)
            else:
                blob.seek(0)
                self._left = end + 2 if end >= 0 else None
        return blob

    @staticmethod
    def _header_end(blob: Any) -> int:
        """The offset of the first CRLF CRLF (-1: none), found a block at a time."""
        start = 0
        tail = b""
        while True:
            chunk: bytes = blob.read(_SCAN)
            if not chunk:
                return -1
            data = tail + chunk
            found = data.find(b"\r\n\r\n")
            if found >= 0:
                return start - len(tail) + found
            tail = data[-3:]
            start += len(chunk)

    def read(self, size: int) -> bytes:
        """The next ``size`` bytes at most; ``b""`` at the end."""
        blob = self._blob
        if blob is None:
            blob = self._blob = self._open()
        left = self._left
        if left is not None:
            size = min(size, left)
            if size <= 0:
                return b""
        data: bytes = blob.read(size)
        if left is not None:
            self._left = left - len(data)
        return data

    def close(self) -> None:
        """Release the BLOB handle and the connection."""
        blob, self._blob = self._blob, None
        if blob is not None:
            blob.close()
        db, self._db = self._db, None
        if db is not None:
            db.close()

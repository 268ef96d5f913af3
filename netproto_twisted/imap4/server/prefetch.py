"""A folder's headers and envelopes read ahead, in another process, when it is first opened.

The first ``FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE)`` of a large folder reads
every message's header and builds its ENVELOPE: in one process that is one
core's work after the folder's first scan.  When a session opens a folder
this process has not read ahead yet, :class:`Prefetcher` has a
:class:`~netproto_twisted.core.procpool.ProcessPool` worker list the folder
and read the headers (:func:`~.readahead.list_messages`, :func:`~.readahead.read_heads`: the
same bytes :meth:`~netproto_twisted.mailstore.folder.MaildirFolder.read_head`
and :func:`~netproto_twisted.imap4.server.mime.envelope_bytes` give) while
the session's own thread scans it, and puts them in the
:class:`~netproto_twisted.imap4.server.fetch.MessageCache`, a chunk at a
time in arrival (UID) order.  A FETCH that reaches a message whose chunk
a worker is reading waits for that chunk (if no chunk lands for
:data:`PATIENCE` seconds it stops waiting); a chunk no worker has started
yet it takes back and reads itself, as it does any other message (so a
worker starved of CPU on a busy machine holds a FETCH back by at most the
chunks it has started).  A failure only
means the work is done in process.

Bounded: at most :data:`MAX_PREFETCH` messages per folder, a folder at most
once per process (until the cache is cleared), only folders of at least
:data:`MIN_PREFETCH` messages not cached yet, one read-ahead per folder in
flight, tasks queued at most the pool's ``max_pending``; the worker skips
anything but regular files (never following a symbolic link) and headers
over :data:`~.readahead.MAX_HEADER`.
"""

from __future__ import annotations

from collections.abc import Sequence

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.core.procpool import PoolBusy, PoolUnavailable, ProcessPool, Withdrawn
from netproto_twisted.imap4.server.fetch import FetchEntry, MessageCache
from netproto_twisted.imap4.server.readahead import list_messages, read_heads
from netproto_twisted.mailstore.filenames import INFO_SEPARATOR

__all__ = [
    "CHUNK",
    "MAX_PREFETCH",
    "MIN_PREFETCH",
    "PATIENCE",
    "WORKER_MODULE",
    "Prefetcher",
]

_log = Logger(namespace="netproto.imap.prefetch")

#: Messages per task (the cache fills a chunk at a time).
CHUNK = 500
#: A folder with fewer messages not cached is not read ahead (the FETCH is quick anyway).
MIN_PREFETCH = 1000
#: Seconds without a chunk landing after which a FETCH stops waiting for the worker.
PATIENCE = 2.0
#: Messages read ahead per folder at most.
MAX_PREFETCH = 100_000
#: What a read-ahead worker imports (:class:`~netproto_twisted.core.procpool.ProcessPool`'s
#: ``preload``): the worker side alone, light to load.
WORKER_MODULE = "netproto_twisted.imap4.server.readahead"


class Prefetcher:
    """Reads folders ahead into a :class:`MessageCache` through a :class:`ProcessPool`.

    Call :meth:`folder_opened` from the reactor thread when a session
    opens a folder (before its scan: the two run side by side); a FETCH
    about to read a message that a chunk in flight will bring waits for
    it (:meth:`wait_for`) rather than read it twice.
    """

    def __init__(
        self,
        pool: ProcessPool,
        cache: MessageCache,
        clock: IReactorTime,
        patience: float = PATIENCE,
    ) -> None:
        self.pool = pool
        self.cache = cache
        self.clock = clock
        self.patience = patience
        #: Folders being read ahead: the bases of their chunks not delivered yet.
        self._pending: dict[str, set[str]] = {}
        #: Their chunks not delivered yet: (bases, the task's Deferred).
        self._chunks: dict[str, list[tuple[frozenset[str], Deferred[None]]]] = {}
        self._waiters: dict[str, list[Deferred[None]]] = {}
        self._timers: dict[str, IDelayedCall] = {}

    def folder_opened(self, path: str) -> None:
        """Read ``path`` ahead unless it was (or is being) read ahead already."""
        if not self.pool.available or path in self._pending or self.cache.prefetched(path):
            return
        self._pending[path] = set()
        self._timers[path] = self.clock.callLater(self.patience, self._done, path)
        d = self.pool.run(list_messages, path)
        d.addCallback(self._listed, path)
        d.addErrback(self._failed, path)

    def wait_for(self, path: str, entries: Sequence[FetchEntry]) -> Deferred[None] | None:
        """A Deferred that fires when the next chunk of ``path`` lands, if one in flight
        holds the first of ``entries``; else ``None`` (read them yourself)."""
        pending = self._pending.get(path)
        if not pending or not entries or entries[0].info.base not in pending:
            return None
        base = entries[0].info.base
        chunks = self._chunks.get(path, [])
        for n, (bases, task) in enumerate(chunks):
            if base in bases:
                if self.pool.withdraw(task):
                    # No worker started it (the machine is busy, or the FETCH caught
                    # up): the FETCH reads these messages itself.
                    if n < len(chunks) and chunks[n][1] is task:
                        del chunks[n]
                    pending.difference_update(bases)
                    return None
                break
        d: Deferred[None] = Deferred()
        self._waiters.setdefault(path, []).append(d)
        return d

    def _listed(self, files: list[tuple[str, str]], path: str) -> None:
        prefix = path + "\0"
        get = self.cache.entries_get
        files = [f for f in files if get(prefix + f[1].partition(INFO_SEPARATOR)[0]) is None]
        self.cache.mark_prefetched(path)
        if len(files) < MIN_PREFETCH:  # not worth it, now or later: new mail is read when fetched
            self._done(path)
            return
        files = files[:MAX_PREFETCH]
        pending = self._pending[path]
        chunks = self._chunks[path] = []
        for start in range(0, len(files), CHUNK):
            chunk = files[start : start + CHUNK]
            bases = frozenset(name.partition(INFO_SEPARATOR)[0] for _subdir, name in chunk)
            pending.update(bases)
            task = self.pool.run(read_heads, path, chunk)
            chunks.append((bases, task))
            task.addCallback(self.cache.put_heads, path)
            task.addBoth(self._landed, path, bases)

    def _landed(self, result: object, path: str, bases: frozenset[str]) -> None:
        """One chunk delivered (or failed): its messages are no longer waited for."""
        pending = self._pending.get(path)
        if pending is not None:
            pending.difference_update(bases)
            chunks = self._chunks.get(path, [])
            for n, chunk in enumerate(chunks):
                if chunk[0] is bases:
                    del chunks[n]
                    break
            if not pending:
                self._done(path)
            else:
                self._timers[path].reset(self.patience)
        for d in self._waiters.pop(path, []):
            d.callback(None)
        if isinstance(result, Failure):
            self._failed(result, path, finished=False)

    def _done(self, path: str) -> None:
        """Stop waiting for ``path``'s read-ahead (finished, failed, or too slow)."""
        self._pending.pop(path, None)
        self._chunks.pop(path, None)
        timer = self._timers.pop(path, None)
        if timer is not None and timer.active():
            timer.cancel()
        for d in self._waiters.pop(path, []):
            d.callback(None)

    def _failed(self, failure: Failure, path: str, finished: bool = True) -> None:
        if finished:
            self._done(path)
        if not failure.check(PoolUnavailable, PoolBusy, Withdrawn):
            _log.failure("reading {path} ahead failed", failure, path=path)

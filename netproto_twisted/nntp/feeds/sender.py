"""The feeder service: sends each peer's queue with the client's :class:`Feeder` or IHAVE.

One :class:`PeerFeed` per peer.  Woken when the store commits articles
for it (or by its timer), it connects, asks ``MODE STREAM`` (falling back
to ``IHAVE`` when the peer refuses it, or always in ``ihave`` mode), and
sends the due queue rows in queue order, ``window`` articles in flight.
What the peer answers decides each row (RFC 3977 6.3.2, RFC 4644 2.3-2.5):

=====================================  ===================================
reply                                  the row
=====================================  ===================================
``235``, ``239`` (transferred)         removed
``435``, ``438`` (not wanted)          removed
``437``, ``439`` (rejected)            removed
``436``, ``431`` (try later)           kept; due again after ``retry``
                                       doubled per attempt; dropped with a
                                       log line after ``max_attempts``
anything else, a lost connection       the session ends; reconnect after
                                       ``retry``, doubled per failure up to
                                       ``max_retry``
=====================================  ===================================

Rows older than ``max_age`` are dropped with a log line; an article no
longer in the store (expired, its group removed) is skipped.  With nothing
left to send the connection stays open ``idle`` seconds for new articles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, DeferredLock, DeferredSemaphore
from twisted.internet.error import ConnectError, ConnectionLost, TimeoutError
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.core.streaming import BlockRunner, thread_block_runner
from netproto_twisted.nntp._wire import Code
from netproto_twisted.nntp.client import Feeder, NNTPClient, connect_nntp
from netproto_twisted.nntp.errors import NNTPError, NNTPPermanentError, NNTPReplyError
from netproto_twisted.nntp.feeds.peers import FeedPeer
from netproto_twisted.nntp.feeds.queue import FeedQueue, FeedRouter, QueueEntry
from netproto_twisted.nntp.interfaces import INewsStore

__all__ = ["Connector", "FeedCounters", "OutgoingFeeds", "PeerFeed", "connect_peer"]

_log = Logger(namespace="netproto.nntp.feeds")

#: Opens a session to a peer (tests give a fake).
Connector = Callable[[FeedPeer], "Deferred[NNTPClient]"]

#: IHAVE replies that settle a row for good, and the one that means "later".
_IHAVE_DONE = frozenset({Code.NOT_WANTED, Code.TRANSFER_REJECTED})
_IHAVE_LATER = Code.TRANSFER_LATER
#: The wait for a peer's replies (and the connection), seconds.
PEER_TIMEOUT = 120.0
#: Rows read (and their outcomes written) at a time, in windows.
_BATCH_WINDOWS = 4
#: Failures logged as one line (others are bugs: logged with their traceback).
_EXPECTED = (NNTPError, ConnectError, ConnectionLost, TimeoutError, OSError)


def connect_peer(reactor: Any) -> Connector:
    """The connector of a real daemon: :func:`connect_nntp` with the peer's TLS and login."""

    def connect(peer: FeedPeer) -> Deferred[NNTPClient]:
        return connect_nntp(
            reactor,
            peer.host,
            peer.port,
            tls=peer.tls,
            timeout=PEER_TIMEOUT,
            user=peer.user or None,
            password=peer.password or None,
        )

    return connect


class FeedCounters:
    """What a feed did since the start (the log and tests read them)."""

    def __init__(self) -> None:
        self.sessions = 0
        self.failures = 0
        self.accepted = 0
        self.refused = 0
        self.deferred = 0
        self.dropped = 0

    def __repr__(self) -> str:
        return (
            f"<FeedCounters sessions={self.sessions} failures={self.failures} "
            f"accepted={self.accepted} refused={self.refused} deferred={self.deferred} "
            f"dropped={self.dropped}>"
        )


class _Batch:
    """The outcome of one batch of rows: removed, due again later."""

    def __init__(self) -> None:
        self.done: list[int] = []
        self.later: list[tuple[int, float]] = []


class PeerFeed:
    """Sends one peer's queue (see the module docstring); :meth:`wake` when there is work.

    :param peer: the peer.
    :param queue: the queue's reader and writer.
    :param store: where the articles are read.
    :param clock: timers for the retries and the idle connection.
    :param connect: opens a session to the peer.
    :param runner: runs the queue's writes (the thread pool; inline in tests).
    :param lock: serialises the writes of all peers on the queue's connection.
    """

    def __init__(
        self,
        peer: FeedPeer,
        queue: FeedQueue,
        store: INewsStore,
        clock: IReactorTime,
        connect: Connector,
        runner: BlockRunner,
        lock: DeferredLock | None = None,
    ) -> None:
        self.peer = peer
        self.queue = queue
        self.store = store
        self.clock = clock
        self.connect = connect
        self.runner = runner
        self.lock = lock if lock is not None else DeferredLock()
        self.counters = FeedCounters()
        #: Connection failures in a row (the backoff's exponent).
        self.failures = 0
        self._running: Deferred[None] | None = None
        self._timer: IDelayedCall | None = None
        self._backoff = False
        self._pending = False
        self._idle: Deferred[bool] | None = None
        self._client: NNTPClient | None = None
        self._connecting: Deferred[NNTPClient] | None = None
        self._stopped = False

    # -- scheduling --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether a session is under way."""
        return self._running is not None

    @property
    def backing_off(self) -> bool:
        """Whether the feed waits out a failure before it reconnects."""
        return self._backoff

    def wake(self) -> None:
        """New rows are queued: send them now (not before a failure's backoff has passed)."""
        if self._stopped:
            return
        if self._running is not None:
            self._pending = True
            idle, self._idle = self._idle, None
            if idle is not None:
                idle.callback(True)
            return
        if self._backoff:
            return
        self._cancel_timer()
        self._start()

    def _start(self) -> None:
        self._pending = False
        d = Deferred.fromCoroutine(self._run())
        self._running = d
        d.addBoth(self._ran)

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _schedule(self, delay: float, backoff: bool = False) -> None:
        self._cancel_timer()
        self._backoff = backoff
        self._timer = self.clock.callLater(max(0.0, delay), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._backoff = False
        if not self._stopped and self._running is None:
            self._start()

    def _ran(self, result: object) -> None:
        self._running = None
        self._client = None
        if self._stopped:
            return
        if isinstance(result, Failure):
            self.failures += 1
            self.counters.failures += 1
            delay = self.peer.delay(self.failures)
            if result.check(*_EXPECTED):
                _log.warn(
                    "feed {feed}: {error}; retrying in {delay:.0f} s",
                    feed=self.peer.describe(),
                    error=result.getErrorMessage() or repr(result.value),
                    delay=delay,
                )
            else:
                _log.failure("feed {feed} failed", result, feed=self.peer.describe())
            self._schedule(delay, backoff=True)
            return
        self.failures = 0
        if self._pending:
            self._schedule(0.0)
            return
        nxt = self.queue.next_due(self.peer.name)
        if nxt is not None:
            self._schedule(nxt - self.clock.seconds())

    def stop(self) -> Deferred[None]:
        """Stop: no new session; end the current one (rows not answered stay queued)."""
        self._stopped = True
        self._cancel_timer()
        idle, self._idle = self._idle, None
        if idle is not None:
            idle.callback(False)
        client = self._client
        if client is not None:
            client.protocol.lose()
        connecting = self._connecting
        if connecting is not None:
            connecting.cancel()
        running = self._running
        if running is None:
            return Deferred.fromCoroutine(_nothing())
        done: Deferred[None] = Deferred()

        def finished(_: object) -> None:
            done.callback(None)

        running.addBoth(finished)
        return done

    # -- one session -------------------------------------------------------------------------

    async def _run(self) -> None:
        peer = self.peer
        await self._write(lambda: self._purge_old())
        nxt = self.queue.next_due(peer.name)
        if nxt is None or nxt > self.clock.seconds():
            return
        connecting = self.connect(peer)
        self._connecting = connecting
        try:
            client = await connecting
        finally:
            self._connecting = None
        self._client = client
        self.counters.sessions += 1
        closed: list[bool] = []

        def gone(_: None) -> None:
            closed.append(True)
            idle, self._idle = self._idle, None
            if idle is not None:
                idle.callback(False)

        client.protocol.when_closed().addCallback(gone)
        try:
            streaming = peer.mode == "streaming"
            if streaming:
                try:
                    await client.mode_stream()
                except NNTPPermanentError as e:
                    _log.info(
                        "feed {feed}: MODE STREAM refused ({code}); using IHAVE",
                        feed=peer.describe(),
                        code=e.code,
                    )
                    streaming = False
            await self._session(client, streaming, closed)
            if not self._stopped and not closed:
                await client.quit()
            c = self.counters
            _log.info(
                "feed {feed}: session ended; in all accepted {accepted}, refused {refused}, "
                "deferred {deferred}, dropped {dropped}",
                feed=peer.name,
                accepted=c.accepted,
                refused=c.refused,
                deferred=c.deferred,
                dropped=c.dropped,
            )
        finally:
            client.protocol.lose()

    async def _session(self, client: NNTPClient, streaming: bool, closed: list[bool]) -> None:
        peer = self.peer
        while not self._stopped and not closed:
            self._pending = False
            await self._pass(client, streaming)
            if self._pending or self._stopped:
                continue
            now = self.clock.seconds()
            nxt = self.queue.next_due(peer.name)
            wait = peer.idle if nxt is None else min(peer.idle, nxt - now)
            if nxt is not None and nxt <= now:
                continue
            if wait <= 0:
                return
            woken = await self._wait_idle(wait)
            if closed:
                # The peer closed the idle connection: not a failure; the next wake reconnects.
                self._pending = self._pending or woken
                return
            if woken:
                continue
            nxt = self.queue.next_due(peer.name)
            if nxt is None or nxt > self.clock.seconds():
                return

    def _wait_idle(self, seconds: float) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        self._idle = d

        def timeout() -> None:
            if self._idle is d:
                self._idle = None
                d.callback(False)

        call = self.clock.callLater(seconds, timeout)

        def cancel(result: bool) -> bool:
            if call.active():
                call.cancel()
            return result

        return d.addCallback(cancel)

    async def _pass(self, client: NNTPClient, streaming: bool) -> None:
        """Send every due row once, in queue order, a window at a time."""
        cursor = 0
        while not self._stopped:
            # Several windows a batch: the pipeline drains only at a batch's end.
            batch = self.queue.due(
                self.peer.name, cursor, self.clock.seconds(), self.peer.window * _BATCH_WINDOWS
            )
            if not batch:
                return
            cursor = batch[-1].id
            outcome = _Batch()
            try:
                if streaming:
                    await self._stream(client, batch, outcome)
                else:
                    await self._ihave(client, batch, outcome)
            finally:
                if outcome.done or outcome.later:
                    await self._apply(outcome)

    async def _article(self, entry: QueueEntry, outcome: _Batch) -> bytes | None:
        """The article of a row, or ``None`` (the row is dropped: too old, or gone)."""
        peer = self.peer
        if entry.queued + peer.max_age < self.clock.seconds():
            _log.warn(
                "feed {feed}: dropped {mid}, queued more than {age:.0f} s ago",
                feed=peer.name,
                mid=entry.message_id,
                age=peer.max_age,
            )
            self.counters.dropped += 1
            outcome.done.append(entry.id)
            return None
        article = await self.store.article_by_id(entry.message_id)
        if article is None:
            self.counters.dropped += 1
            outcome.done.append(entry.id)
            return None
        return article.data

    def _later(self, entry: QueueEntry, outcome: _Batch, code: int) -> None:
        peer = self.peer
        attempts = entry.attempts + 1
        if attempts >= peer.max_attempts:
            _log.warn(
                "feed {feed}: dropped {mid} after {n} 'try later' answers (last {code})",
                feed=peer.name,
                mid=entry.message_id,
                n=attempts,
                code=code,
            )
            self.counters.dropped += 1
            outcome.done.append(entry.id)
            return
        self.counters.deferred += 1
        outcome.later.append((entry.id, self.clock.seconds() + peer.delay(attempts)))

    async def _ihave(
        self, client: NNTPClient, batch: Sequence[QueueEntry], outcome: _Batch
    ) -> None:
        for entry in batch:
            if self._stopped:
                return
            data = await self._article(entry, outcome)
            if data is None:
                continue
            try:
                await client.ihave(entry.message_id, data)
            except NNTPReplyError as e:
                if e.code in _IHAVE_DONE:
                    self.counters.refused += 1
                    outcome.done.append(entry.id)
                elif e.code == _IHAVE_LATER:
                    self._later(entry, outcome, e.code)
                else:
                    raise
            else:
                self.counters.accepted += 1
                outcome.done.append(entry.id)

    async def _stream(
        self, client: NNTPClient, batch: Sequence[QueueEntry], outcome: _Batch
    ) -> None:
        feeder = Feeder(client, window=self.peer.window, check=self.peer.check)
        room = DeferredSemaphore(self.peer.window)
        sent: list[Deferred[None]] = []
        for entry in batch:
            if self._stopped:
                break
            await room.acquire()
            data = await self._article(entry, outcome)
            if data is None:
                room.release()
                continue

            def answered(result: bool | None, entry: QueueEntry = entry) -> None:
                if result is True:
                    self.counters.accepted += 1
                    outcome.done.append(entry.id)
                elif result is False:
                    self.counters.refused += 1
                    outcome.done.append(entry.id)
                else:
                    self._later(entry, outcome, Code.CHECK_LATER)

            offered: Deferred[bool | None] = feeder.offer(entry.message_id, data)
            d: Deferred[None] = offered.addCallback(answered)
            d.addBoth(_release(room))
            sent.append(d)
        results = await DeferredList(sent, consumeErrors=True)
        for ok, value in results:
            if not ok:
                assert isinstance(value, Failure)
                value.raiseException()

    async def _apply(self, outcome: _Batch) -> None:
        await self._write(lambda: self.queue.apply(outcome.done, outcome.later))

    async def _write(self, work: Callable[[], object]) -> None:
        await self.lock.run(lambda: self.runner(work))

    def _purge_old(self) -> None:
        peer = self.peer
        gone = self.queue.purge(peer.name, self.clock.seconds() - peer.max_age)
        if gone:
            self.counters.dropped += gone
            _log.warn(
                "feed {feed}: dropped {n} articles queued more than {age:.0f} s ago",
                feed=peer.name,
                n=gone,
                age=peer.max_age,
            )


def _release(room: DeferredSemaphore) -> Callable[[object], object]:
    def release(result: object) -> object:
        room.release()
        return result

    return release


async def _nothing() -> None:
    return None


class OutgoingFeeds(Service):
    """The outgoing feeds of a server: one :class:`PeerFeed` per peer, woken by the store.

    Give :meth:`router` to the store as its ``filing_hook``.  At start every
    peer is woken, so what was queued before a restart is sent first, in order.

    :param reactor: the clock and the thread pool.
    :param store: the article store.
    :param database: the news database (the queue's table is created in it).
    :param peers: the outgoing feeds.
    :param connect: opens a session to a peer (default: :func:`connect_peer`).
    :param runner: runs the queue's writes (default: the thread pool).
    """

    name = "nntp-feeds"

    def __init__(
        self,
        reactor: Any,
        store: INewsStore,
        database: str,
        peers: Sequence[FeedPeer],
        *,
        connect: Connector | None = None,
        runner: BlockRunner | None = None,
    ) -> None:
        names = [p.name for p in peers]
        if len(set(names)) != len(names):
            raise ValueError("two feeds have the same name")
        self.queue = FeedQueue(database)
        lock = DeferredLock()
        self.feeds = {
            p.name: PeerFeed(
                p,
                self.queue,
                store,
                reactor,
                connect if connect is not None else connect_peer(reactor),
                runner if runner is not None else thread_block_runner(reactor),
                lock,
            )
            for p in peers
        }
        self.router = FeedRouter(tuple(peers), on_committed=self.wake)

    def wake(self, names: set[str]) -> None:
        """Rows for these peers were committed."""
        if not self.running:
            return
        for name in names:
            feed = self.feeds.get(name)
            if feed is not None:
                feed.wake()

    def startService(self) -> None:
        """Wake every feed (drain what was queued before); note rows of unknown peers."""
        Service.startService(self)
        for name, count in self.queue.peers().items():
            if name not in self.feeds:
                _log.warn(
                    "{n} articles queued for feed {feed}, which is not configured (kept)",
                    n=count,
                    feed=name,
                )
        for feed in self.feeds.values():
            feed.wake()

    async def _stop(self) -> None:
        await DeferredList([f.stop() for f in self.feeds.values()])
        self.queue.close()

    def stopService(self) -> Deferred[None]:
        """End the sessions (unanswered rows stay queued) and close the queue."""
        Service.stopService(self)
        return Deferred.fromCoroutine(self._stop())

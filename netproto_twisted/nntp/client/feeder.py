"""A streaming feeder (RFC 4644): many articles in flight on one connection, CHECK optional.

::

    client = await connect_nntp(reactor, "peer.example.net", 119)
    await client.mode_stream()
    stats = await Feeder(client, window=100).feed(articles)   # (Message-ID, bytes) pairs
    print(stats.accepted, stats.rejected, stats.deferred)

At most ``window`` articles wait for their reply at a time; the iterable is
read only as replies come, so a feed of any length uses bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore, ensureDeferred

from netproto_twisted.nntp.client.session import NNTPClient

__all__ = ["FeedStats", "Feeder"]


@dataclass
class FeedStats:
    """What became of the articles fed."""

    #: TAKETHIS answered 239.
    accepted: int = 0
    #: TAKETHIS answered 439, or CHECK 438.
    rejected: int = 0
    #: CHECK answered 431 (try later): not sent.
    deferred: int = 0


class Feeder:
    """Feed articles over one client connection with TAKETHIS (after CHECK if ``check``).

    :param client: a connected client; send ``MODE STREAM`` first if the peer wants it.
    :param window: articles whose reply is awaited at most at once.
    :param check: ask ``CHECK`` before each ``TAKETHIS`` (skip the unwanted).
    """

    def __init__(self, client: NNTPClient, window: int = 100, *, check: bool = False) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        self.client = client
        self.window = window
        self.check = check
        self._room = DeferredSemaphore(window)

    async def _send(self, message_id: str, article: bytes) -> bool | None:
        if self.check:
            wanted = await self.client.check(message_id)
            if not wanted:
                return None if wanted is None else False
        return await self.client.takethis(message_id, article)

    def offer(self, message_id: str, article: bytes) -> Deferred[bool | None]:
        """Send one article when the window has room: True 239, False refused, None later."""
        return self._room.run(lambda: ensureDeferred(self._send(message_id, article)))

    def feed(self, articles: Iterable[tuple[str, bytes]]) -> Deferred[FeedStats]:
        """Feed every ``(Message-ID, article)``; fires once every reply is in."""
        return ensureDeferred(self._feed(articles))

    async def _feed(self, articles: Iterable[tuple[str, bytes]]) -> FeedStats:
        stats = FeedStats()
        outstanding: set[Deferred[None]] = set()

        def count(result: bool | None) -> None:
            if result is True:
                stats.accepted += 1
            elif result is False:
                stats.rejected += 1
            else:
                stats.deferred += 1

        for message_id, article in articles:
            await self._room.acquire()
            d = ensureDeferred(self._send(message_id, article))
            done: Deferred[None] = d.addCallback(count)
            outstanding.add(done)

            def finished(result: object, done: Deferred[None] = done) -> object:
                outstanding.discard(done)
                self._room.release()
                return result

            done.addBoth(finished)
        if outstanding:
            await DeferredList(list(outstanding), fireOnOneErrback=True, consumeErrors=True)
        return stats

"""A polite fetcher: robots.txt obeyed, a cap and a delay per host, progress reported.

:class:`PoliteFetcher` queues URLs per host; at most ``per_host`` requests
to one host are in flight, and two requests to one host start at least
``delay`` seconds apart (or the host's robots.txt Crawl-delay, when
longer).  :meth:`PoliteFetcher.download` saves a body to a file with
resumption: a partial ``<path>.part`` is continued with a ``Range``
request, and renamed once complete.  ``progress`` callbacks get a
:class:`Progress` after each chunk.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater

from netproto_twisted.http.client.errors import HTTPError, RobotsDisallowed
from netproto_twisted.http.client.opener import Opener
from netproto_twisted.http.client.request import Request, origin_of
from netproto_twisted.http.client.response import Response
from netproto_twisted.http.client.robots import RobotsCache

__all__ = ["DownloadResult", "FetchStats", "PoliteFetcher", "Progress"]


@dataclass
class Progress:
    """Where a download stands: bytes so far (resumed bytes included) and the total if known."""

    url: str
    received: int
    total: int | None
    resumed_from: int = 0


@dataclass
class DownloadResult:
    """A finished download: where it went, its size, and whether it was resumed."""

    url: str
    path: str
    size: int
    status: int
    resumed_from: int = 0


@dataclass
class FetchStats:
    """Counters of a fetcher's work."""

    queued: int = 0
    active: int = 0
    done: int = 0
    failed: int = 0
    refused: int = 0
    bytes: int = 0
    per_host: dict[str, int] = field(default_factory=dict)


class PoliteFetcher:
    """Fetch URLs through ``opener`` with robots.txt, per-host concurrency and delay."""

    def __init__(
        self,
        opener: Opener,
        *,
        reactor: IReactorTime,
        per_host: int = 1,
        delay: float = 1.0,
        robots: RobotsCache | bool | None = True,
        user_agent: str = "netproto_twisted",
    ) -> None:
        self.opener = opener
        self.reactor = reactor
        self.per_host = per_host
        self.delay = delay
        self.user_agent = user_agent
        if robots is True:
            robots = RobotsCache(opener.open, reactor, user_agent=user_agent)
        self.robots: RobotsCache | None = robots or None
        self.stats = FetchStats()
        self._slots: dict[tuple[str, str, int | None], DeferredSemaphore] = {}
        self._next_start: dict[tuple[str, str, int | None], float] = {}

    def _slot(self, origin: tuple[str, str, int | None]) -> DeferredSemaphore:
        slot = self._slots.get(origin)
        if slot is None:
            slot = self._slots[origin] = DeferredSemaphore(self.per_host)
        return slot

    async def _wait_turn(self, url: str) -> float:
        origin = origin_of(url)
        delay = self.delay
        if self.robots is not None:
            policy = await self.robots.policy_for(url)
            if not policy.can_fetch(url, self.user_agent):
                self.stats.refused += 1
                raise RobotsDisallowed(url, self.user_agent)
            crawl = policy.crawl_delay(self.user_agent)
            if crawl is not None:
                delay = max(delay, crawl)
        now = self.reactor.seconds()
        start = max(now, self._next_start.get(origin, now))
        self._next_start[origin] = start + delay
        if start > now:
            await deferLater(self.reactor, start - now)
        return delay

    def fetch(self, url_or_request: str | Request, data: object = None) -> Deferred[Response]:
        """Open a URL politely; the host's slot is held until the response body ends."""
        return ensureDeferred(self._fetch(Request.coerce(url_or_request, data)))

    async def _fetch(self, req: Request) -> Response:
        if not req.has_header("User-agent"):
            req.add_header("User-agent", self.user_agent)
        slot = self._slot(req.origin)
        self.stats.queued += 1
        await slot.acquire()
        self.stats.queued -= 1
        self.stats.active += 1
        host = req.host
        self.stats.per_host[host] = self.stats.per_host.get(host, 0) + 1
        finished: list[bool] = []

        def done(ok: bool = True) -> None:
            if finished:
                return
            finished.append(ok)
            self.stats.active -= 1
            if ok:
                self.stats.done += 1
            else:
                self.stats.failed += 1
            slot.release()

        try:
            await self._wait_turn(req.full_url)
            response: Response = await self.opener.open(req)
        except BaseException:
            done(False)
            raise
        response.add_finished_callback(done)
        return response

    def download(
        self,
        url: str,
        path: str | os.PathLike[str],
        *,
        progress: Callable[[Progress], Any] | None = None,
        resume: bool = True,
    ) -> Deferred[DownloadResult]:
        """Save ``url`` to ``path`` (through ``<path>.part``), resuming with Range if possible."""
        return ensureDeferred(self._download(url, os.fspath(path), progress, resume))

    async def _download(
        self, url: str, path: str, progress: Callable[[Progress], Any] | None, resume: bool
    ) -> DownloadResult:
        part = path + ".part"
        have = os.path.getsize(part) if resume and os.path.exists(part) else 0
        req = Request(url, headers={"Accept-Encoding": "identity"})
        if have:
            req.add_header("Range", f"bytes={have}-")
        try:
            response = await self.fetch(req)
        except HTTPError as e:
            if e.code == 416 and have:  # the part file is already whole
                os.replace(part, path)
                return DownloadResult(url, path, have, 416, have)
            raise
        if response.status == 206 and have:
            mode, start = "ab", have
        else:
            mode, start = "wb", 0
        total = response.length + start if response.length is not None else None
        received = start
        report = Progress(url, received, total, start)

        with open(part, mode) as out:

            def write(data: bytes) -> None:
                nonlocal received
                out.write(data)
                received += len(data)
                self.stats.bytes += len(data)
                if progress is not None:
                    report.received = received
                    progress(report)

            await response.collect(write, None)
        os.replace(part, path)
        return DownloadResult(url, path, received, response.status, start)

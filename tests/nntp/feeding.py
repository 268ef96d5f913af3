"""Our news server as the daemon builds it (``tap.build_service``), with feeds, on loopback.

:func:`start_ours` creates the groups in ``<data>/news/news.db`` (kept across
a stop, so a test can restart the server on the same store), builds the
``[nntp]`` services from a :class:`~netproto_twisted.nntp.tap.Config` and
starts them; :func:`until` polls a condition a bounded number of times.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import reactor
from twisted.internet.task import deferLater

from netproto_twisted.core.daemon import DaemonContext, TLSFiles
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.nntp import tap
from netproto_twisted.nntp.feeds import FeedPeer, OutgoingFeeds
from netproto_twisted.nntp.store import NewsDatabase

__all__ = ["Ours", "start_ours", "until"]


@dataclass
class Ours:
    """A running ``[nntp]`` section: its services, port and database."""

    root: MultiService
    port: int
    database: str

    @property
    def feeds(self) -> OutgoingFeeds:
        """The outgoing feeds service."""
        return next(s for s in self.root if isinstance(s, OutgoingFeeds))

    async def stop(self) -> None:
        """Stop everything (the store is closed; the database stays)."""
        if self.root.running:
            await self.root.stopService()


async def start_ours(
    data: Path,
    feeds: Sequence[FeedPeer],
    *,
    groups: Sequence[str] = ("comp.test", "alt.test"),
    host: str = "a.test",
    **config: Any,
) -> Ours:
    """Start our server from ``data`` (groups created once) with ``feeds``."""
    database = data / "news" / "news.db"
    db = NewsDatabase(str(database), durable=False)
    try:
        for name in groups:
            db.add_group(name)
    finally:
        db.close()
    settings = tap.Config(
        listen=("tcp:0:interface=127.0.0.1",),
        hostname=host,
        durable=False,
        posting_requires_auth=False,
        feeds=tuple(feeds),
        **config,
    )
    context = DaemonContext(reactor, data, TLSFiles.resolve(data))  # type: ignore[arg-type]
    root = tap.build_service(settings, context)
    root.startService()
    listener = next(s for s in root if isinstance(s, EndpointsService))
    [(_kind, where)] = await listener.when_listening()
    return Ours(root, int(where.rpartition(":")[2]), str(database))


async def until(
    condition: Callable[[], Awaitable[bool]], what: str, tries: int = 200, step: float = 0.05
) -> None:
    """Return once ``condition()`` is true; fail after ``tries`` polls ``step`` seconds apart."""
    for _ in range(tries):
        if await condition():
            return
        await deferLater(reactor, step, lambda: None)
    raise AssertionError(f"timed out waiting for {what}")

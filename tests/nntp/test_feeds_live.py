"""Outgoing feeds over loopback: our daemon's ``[nntp]`` feeding a second instance, and the
queue surviving a restart while the peer was down."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from netproto_twisted.nntp import NNTPPermanentError, NNTPTemporaryError, connect_nntp
from netproto_twisted.nntp.feeds import parse_feed
from netproto_twisted.testing.nntp import NewsServer, start_news_server
from tests.nntp.feeding import start_ours, until
from tests.nntp.inn import free_port


def post(subject: str, group: str = "comp.test") -> bytes:
    head = f"From: p@example.test\r\nNewsgroups: {group}\r\nSubject: {subject}\r\n"
    return head.encode() + b"\r\nhi\r\n"


async def subjects(news: NewsServer, group: str = "comp.test") -> list[str]:
    info = await news.store.group(group)
    assert info is not None
    out = []
    for number in await news.store.numbers(group, 1, None):
        article = await news.store.article(group, number)
        assert article is not None
        head = article.data.partition(b"\r\n\r\n")[0].decode()
        out += [line[9:] for line in head.split("\r\n") if line.startswith("Subject: ")]
    return out


class LoopbackFeedTests(TestCase):
    async def test_we_feed_a_second_instance(self) -> None:
        b = await start_news_server(reactor, groups=["comp.test", "alt.test"])
        self.addCleanup(b.stop)
        peer = parse_feed(f"b=127.0.0.1:{b.port},path=news.test,groups=comp.*,idle=0,window=2")
        a = await start_ours(Path(self.mktemp()), [peer])
        self.addCleanup(a.stop)
        client = await connect_nntp(reactor, "127.0.0.1", a.port)
        for i in range(5):
            await client.post(post(f"post {i}"))
        await client.post(post("elsewhere", "alt.test"))  # not in the peer's patterns
        looped = (
            b"Path: news.test!poster\r\nFrom: p@x.test\r\nNewsgroups: comp.test\r\n"
            b"Subject: came from b\r\nMessage-ID: <looped@x.test>\r\n\r\nhi\r\n"
        )
        await client.ihave("<looped@x.test>", looped)  # b is in its Path: not sent back
        await client.quit()

        async def arrived() -> bool:
            info = await b.store.group("comp.test")
            return info is not None and info.count >= 5

        await until(arrived, "five articles at the peer")
        self.assertEqual(await subjects(b), [f"post {i}" for i in range(5)])
        first = await b.store.article("comp.test", 1)
        assert first is not None
        self.assertIn(b"Path: news.test!a.test!not-for-mail\r\n", first.data)
        self.assertEqual(await subjects(b, "alt.test"), [])
        self.assertIsNone(await b.store.article_by_id("<looped@x.test>"))

        async def drained() -> bool:  # b files the last article before a reads its 239
            return a.feeds.queue.count() == 0

        await until(drained, "the queue emptied by the peer's replies")
        self.assertEqual(a.feeds.feeds["b"].counters.accepted, 5)

    async def test_queue_survives_a_restart(self) -> None:
        port = free_port()
        peer = parse_feed(f"b=127.0.0.1:{port},path=news.test,idle=0,retry=30,nocheck")
        data = Path(self.mktemp())
        a = await start_ours(data, [peer])
        self.addCleanup(a.stop)
        client = await connect_nntp(reactor, "127.0.0.1", a.port)
        for i in range(4):
            await client.post(post(f"queued {i}"))  # 240: each is in the queue, on disk
        await client.quit()
        feed = a.feeds.feeds["b"]

        async def refused() -> bool:
            return feed.failures >= 1

        await until(refused, "the first connection to fail")
        self.assertTrue(feed.backing_off)
        await a.stop()
        db = sqlite3.connect(a.database)
        try:
            rows = db.execute("SELECT peer, attempts FROM feed_queue ORDER BY id").fetchall()
        finally:
            db.close()
        self.assertEqual(rows, [("b", 0)] * 4)

        b = await start_news_server(
            reactor, groups=["comp.test"], listen=f"tcp:{port}:interface=127.0.0.1"
        )
        self.addCleanup(b.stop)
        again = await start_ours(data, [peer])
        self.addCleanup(again.stop)

        async def drained() -> bool:
            return again.feeds.queue.count() == 0

        await until(drained, "the queue to drain after the restart")
        self.assertEqual(await subjects(b), [f"queued {i}" for i in range(4)])


class IncomingFeedTests(TestCase):
    async def test_only_feed_users_may_feed_from_elsewhere(self) -> None:
        news = await start_news_server(
            reactor,
            groups=["comp.test"],
            users={"peer": "pw", "reader": "pw"},
            feed_peers=(),
            feed_users=("peer",),
        )
        self.addCleanup(news.stop)
        looped = (
            b"Path: x.test!poster\r\nFrom: p@x.test\r\nNewsgroups: comp.test\r\n"
            b"Subject: s\r\nMessage-ID: <in@x.test>\r\n\r\nhi\r\n"
        )
        anonymous = await connect_nntp(reactor, news.host, news.port)
        with self.assertRaises(NNTPTemporaryError) as caught:
            await anonymous.ihave("<in@x.test>", looped)
        self.assertEqual(caught.exception.code, 480)
        await anonymous.quit()
        reader = await connect_nntp(reactor, news.host, news.port, user="reader", password="pw")
        with self.assertRaises(NNTPPermanentError) as refused:
            await reader.ihave("<in@x.test>", looped)
        self.assertEqual(refused.exception.code, 502)
        await reader.quit()
        peer = await connect_nntp(reactor, news.host, news.port, user="peer", password="pw")
        self.assertIn("transferred", await peer.ihave("<in@x.test>", looped))
        await peer.quit()

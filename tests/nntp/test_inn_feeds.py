"""Our outgoing feeds into a real peer: a private INN 2 (Debian's inn2) on loopback.

Articles posted to us reach INN through the feed queue, one feed streaming
(MODE STREAM, CHECK/TAKETHIS) and one with IHAVE.  Skipped like
``tests.nntp.test_inn`` when inn2 is missing or not run as root.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet import reactor, threads
from twisted.trial.unittest import TestCase

from netproto_twisted.nntp import connect_nntp
from netproto_twisted.nntp.feeds import parse_feed
from tests.nntp.feeding import start_ours, until
from tests.nntp.inn import PrivateINN, inn_missing


class FeedingINNTests(TestCase):
    skip = inn_missing()

    def setUp(self) -> None:
        self.inn = PrivateINN({"comp.test": "Tests", "alt.test": "Other"})
        self.addCleanup(self.inn.stop)
        return threads.deferToThread(self.inn.start)

    async def test_articles_posted_to_us_reach_inn(self) -> None:
        port = self.inn.port
        feeds = [
            parse_feed(f"inn-stream=127.0.0.1:{port},path=inn.test,groups=comp.*,idle=0"),
            parse_feed(f"inn-ihave=127.0.0.1:{port},ihave,path=inn.test,groups=alt.*,idle=0"),
        ]
        ours = await start_ours(Path(self.mktemp()), feeds)
        self.addCleanup(ours.stop)
        client = await connect_nntp(reactor, "127.0.0.1", ours.port)
        ids = []
        for i in range(6):
            group = "comp.test" if i % 2 == 0 else "alt.test"
            article = (
                f"From: p@example.test\r\nNewsgroups: {group}\r\nSubject: to INN {i}\r\n\r\n"
                f".dot line {i}\r\n"
            ).encode()
            ids.append((await client.post(article)).split()[-1])
        await client.quit()
        reader = await connect_nntp(reactor, "127.0.0.1", port, reader_mode=True)

        async def arrived() -> bool:
            counts = [(await reader.group(g)).count for g in ("comp.test", "alt.test")]
            return counts == [3, 3]

        await until(arrived, "six articles at INN")
        for i, mid in enumerate(ids):
            head = (await reader.head(mid)).lines
            self.assertIn(f"Subject: to INN {i}".encode(), head)
            self.assertTrue(any(h.startswith(b"Path: inn.test!a.test!") for h in head), head)
            self.assertEqual((await reader.body(mid)).lines, [f".dot line {i}".encode()])
        await reader.quit()
        counters = {name: feed.counters for name, feed in ours.feeds.feeds.items()}
        self.assertEqual((counters["inn-stream"].accepted, counters["inn-ihave"].accepted), (3, 3))
        self.assertEqual(ours.feeds.queue.count(), 0)

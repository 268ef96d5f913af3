"""Our NNTP client against our server on loopback: reading, streaming, posting, TLS, feeding."""

from __future__ import annotations

import io

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from netproto_twisted.core.tls import client_options
from netproto_twisted.nntp import (
    Feeder,
    NNTPClient,
    NNTPPermanentError,
    NNTPTemporaryError,
    connect_nntp,
)
from netproto_twisted.testing.nntp import NewsServer, start_news_server


class ClientTests(TestCase):
    async def start(self, **options: object) -> tuple[NewsServer, NNTPClient]:
        news = await start_news_server(reactor, groups={"comp.test": "Tests"}, **options)
        self.addCleanup(news.stop)
        client = await connect_nntp(reactor, news.host, news.port)
        self.addCleanup(client.close)
        return news, client

    async def test_reading(self) -> None:
        news, client = await self.start()
        for i in range(30):
            await news.add_article("comp.test", subject=f"s{i}", body=f"body {i}\n.dot\n")
        group = await client.group("comp.test")
        self.assertEqual((group.count, group.first, group.last), (30, 1, 30))
        self.assertEqual(await client.listgroup("comp.test", (5, 7)), [5, 6, 7])
        batches: list[int] = []
        count = await client.over((1, None), on_lines=lambda b: batches.append(len(b)))
        self.assertEqual((count, sum(batches)), (30, 30))
        over = await client.over((2, 3))
        self.assertEqual([(n, f["subject"]) for n, f in over], [(2, "s1"), (3, "s2")])
        sink = io.BytesIO()
        info = await client.article(4, file=sink)
        self.assertEqual(info.lines, [])
        self.assertTrue(sink.getvalue().endswith(b"\r\nbody 3\r\n.dot\r\n"))
        self.assertEqual((await client.body(info.message_id)).lines, [b"body 3", b".dot"])
        self.assertEqual(await client.hdr("Subject", (1, 2)), [(1, "s0"), (2, "s1")])
        self.assertEqual(await client.descriptions(), {"comp.test": "Tests"})
        self.assertEqual(len(await client.newnews("*", 0.0)), 30)
        self.assertEqual([g.group for g in await client.newgroups(0.0)], ["comp.test"])
        self.assertIn("OVERVIEW.FMT", " ".join(await client.help()))
        self.assertIn(":bytes", await client.list_lines("OVERVIEW.FMT"))
        with self.assertRaises(NNTPTemporaryError) as caught:
            await client.article(99)
        self.assertEqual(caught.exception.code, 423)
        with self.assertRaises(NNTPPermanentError):
            await client.protocol.command("FROB")
        self.assertEqual(await client.quit(), "bye")

    async def test_post_and_login(self) -> None:
        _, client = await self.start(users={"alice": "pw"}, posting_requires_auth=True)
        article = b"From: a@b.test\nNewsgroups: comp.test\nSubject: hi\n\ntext\n"
        with self.assertRaises(NNTPTemporaryError) as caught:
            await client.post(article)
        self.assertEqual(caught.exception.code, 480)
        with self.assertRaises(NNTPTemporaryError):
            await client.login("alice", "wrong")
        await client.login("alice", "pw")
        self.assertIn("article received", await client.post(article))

    async def test_sasl_and_starttls(self) -> None:
        _, client = await self.start(users={"alice": "pw"}, tls=True)
        await client.starttls(client_options("localhost", verify=False))
        self.assertTrue(client.is_secure)
        self.assertIn("accepted", await client.authenticate("alice", "pw"))

    async def test_feeder(self) -> None:
        _, client = await self.start()
        await client.mode_stream()

        def article(i: int) -> tuple[str, bytes]:
            mid = f"<{i}@feed.test>"
            return mid, (
                f"Path: feed.test!x\r\nFrom: a@b\r\nNewsgroups: comp.test\r\nSubject: {i}\r\n"
                f"Message-ID: {mid}\r\n\r\nbody\r\n"
            ).encode()

        stats = await Feeder(client, window=16).feed(article(i) for i in range(200))
        self.assertEqual((stats.accepted, stats.rejected), (200, 0))
        stats = await Feeder(client, window=16, check=True).feed(
            article(i) for i in range(195, 205)
        )
        self.assertEqual((stats.accepted, stats.rejected), (5, 5))
        self.assertEqual((await client.group("comp.test")).count, 205)

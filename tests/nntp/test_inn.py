"""Interop with a private INN 2 (Debian's inn2): our client reads, posts and feeds; INN feeds us.

Skipped with the reason when inn2 is missing (``apt-get install inn2``; see
``.ci/peers`` for the domain its postinst needs) or when not run as root.
"""

from __future__ import annotations

import io

from twisted.internet import reactor, threads
from twisted.trial.unittest import TestCase

from netproto_twisted.nntp import Feeder, NNTPTemporaryError, connect_nntp
from netproto_twisted.testing.nntp import start_news_server
from tests.nntp.inn import INN_BIN, PrivateINN, inn_missing


def article(mid: str, subject: str = "from netproto", group: str = "comp.test") -> bytes:
    return (
        f"Path: netproto.test!not-for-mail\r\nFrom: Feeder <feed@netproto.test>\r\n"
        f"Newsgroups: {group}\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n"
        f"Date: Mon, 07 Dec 2026 10:00:00 GMT\r\n\r\nbody of {mid}\r\n.leading dot\r\n"
    ).encode()


class INNTests(TestCase):
    skip = inn_missing()

    def setUp(self) -> None:
        self.inn = PrivateINN({"comp.test": "Tests", "alt.test": "Other"})
        self.addCleanup(self.inn.stop)
        return threads.deferToThread(self.inn.start)

    async def test_client_reads_and_posts(self) -> None:
        client = await connect_nntp(reactor, "127.0.0.1", self.inn.port, reader_mode=True)
        caps = await client.capabilities()
        self.assertIn("READER", caps)
        post = b"From: Poster <p@netproto.test>\nNewsgroups: comp.test\nSubject: hello INN\n\nhi\n"
        await client.post(post)
        for i in range(3):
            await client.post(post.replace(b"hello INN", f"more {i}".encode()))
        group = await client.group("comp.test")
        self.assertEqual((group.count, group.first, group.last), (4, 1, 4))
        overview = await client.over((1, 4))
        self.assertEqual([n for n, _ in overview], [1, 2, 3, 4])
        self.assertEqual(overview[0][1]["subject"], "hello INN")
        streamed: list[int] = []
        self.assertEqual(
            await client.over((1, None), on_lines=lambda b: streamed.extend(n for n, _ in b)), 4
        )
        self.assertEqual(streamed, [1, 2, 3, 4])
        info = await client.article(1)
        self.assertIn(b"hi", info.lines)
        self.assertIn(b"Subject: hello INN", (await client.head(info.message_id)).lines)
        sink = io.BytesIO()
        await client.body(2, file=sink)
        self.assertEqual(sink.getvalue(), b"hi\r\n")
        self.assertEqual(await client.stat(3), (3, (await client.stat(3))[1]))
        self.assertEqual((await client.next())[0], 4)
        names = sorted(g.group for g in await client.list())
        self.assertIn("comp.test", names)
        self.assertEqual(await client.description("comp.test"), "Tests")
        self.assertEqual(
            [s for _, s in await client.xhdr("subject", (1, 2))], ["hello INN", "more 0"]
        )
        self.assertGreater((await client.date()).year, 2000)
        with self.assertRaises(NNTPTemporaryError) as caught:
            await client.group("no.such.group")
        self.assertEqual(caught.exception.code, 411)
        await client.quit()

    async def test_we_feed_inn(self) -> None:
        feeder = await connect_nntp(reactor, "127.0.0.1", self.inn.port)
        await feeder.mode_stream()
        articles = [(f"<{i}@feed.test>", article(f"<{i}@feed.test>")) for i in range(40)]
        stats = await Feeder(feeder, window=10).feed(articles)
        self.assertEqual((stats.accepted, stats.rejected), (40, 0))
        again = await Feeder(feeder, window=10, check=True).feed(articles[:5])
        self.assertEqual((again.accepted, again.rejected), (0, 5))
        self.assertIn(
            "transferred", await feeder.ihave("<ihave@feed.test>", article("<ihave@feed.test>"))
        )
        await feeder.quit()
        reader = await connect_nntp(reactor, "127.0.0.1", self.inn.port, reader_mode=True)
        self.assertEqual((await reader.group("comp.test")).count, 41)
        body = (await reader.body("<3@feed.test>")).lines
        self.assertEqual(body, [b"body of <3@feed.test>", b".leading dot"])
        await reader.quit()

    async def test_inn_feeds_us(self) -> None:
        news = await start_news_server(reactor, groups=["comp.test"])
        self.addCleanup(news.stop)
        client = await connect_nntp(reactor, "127.0.0.1", self.inn.port)
        await client.mode_stream()
        await Feeder(client).feed(
            [(f"<{i}@inn.feed>", article(f"<{i}@inn.feed>")) for i in range(5)]
        )
        await client.quit()

        def push() -> None:
            self.inn.ctlinnd("flush", "ours")
            self.inn.as_news([str(INN_BIN / "innxmit"), "-P", str(news.port), "127.0.0.1",
                              str(self.inn.dir / "spool" / "outgoing" / "ours")])  # fmt: skip

        await threads.deferToThread(push)
        ours = await connect_nntp(reactor, news.host, news.port)
        group = await ours.group("comp.test")
        self.assertEqual(group.count, 5)
        head = (await ours.head("<2@inn.feed>")).lines
        self.assertIn(b"Path: news.test!inn.test!netproto.test!not-for-mail", head)
        await ours.quit()

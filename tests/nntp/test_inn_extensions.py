"""Our client's COMPRESS DEFLATE and RFC 6048 LIST calls against a private INN 2.7 (nnrpd).

INN's nnrpd implements RFC 8054 (built with zlib, as Debian's is): our
client compresses a reading session with it.  Skipped with the reason when
inn2 is missing or not run as root (see :mod:`tests.nntp.inn`).
"""

from __future__ import annotations

from twisted.internet import reactor, threads
from twisted.trial.unittest import TestCase

from netproto_twisted.nntp import NNTPPermanentError, connect_nntp
from netproto_twisted.nntp.lists import load_lists
from netproto_twisted.nntp.server.extensions import LIST_KEYWORDS
from tests.nntp.inn import PrivateINN, inn_missing


class INNExtensionTests(TestCase):
    skip = inn_missing()

    def setUp(self) -> None:
        self.inn = PrivateINN({"comp.test": "Tests", "alt.test": "Other"})
        self.addCleanup(self.inn.stop)
        return threads.deferToThread(self.inn.start)

    async def test_compressed_reading_session(self) -> None:
        client = await connect_nntp(reactor, "127.0.0.1", self.inn.port, reader_mode=True)
        self.addCleanup(client.close)
        caps = await client.capabilities()
        if caps.get("COMPRESS") != ["DEFLATE"]:
            self.skipTest(f"this INN does not offer COMPRESS DEFLATE: {sorted(caps)}")
        # INN answers the same LIST keywords as our server.
        self.assertEqual(sorted(caps["LIST"]), sorted(LIST_KEYWORDS.split()))
        self.assertIn("compression", (await client.compress()).lower())
        self.assertTrue(client.compressed)
        self.assertNotIn("COMPRESS", await client.capabilities())
        post = b"From: Poster <p@netproto.test>\nNewsgroups: comp.test\nSubject: zipped\n\n"
        for i in range(20):
            await client.post(post + f"body {i}\n.dot line\n".encode() * 50)
        group = await client.group("comp.test")
        self.assertEqual(group.count, 20)
        overview = await client.over((1, None))
        self.assertEqual([n for n, _ in overview], list(range(1, 21)))
        article = await client.article(7)
        self.assertEqual(article.lines[-2:], [b"body 6", b".dot line"])
        with self.assertRaises(NNTPPermanentError) as e:
            await client.protocol.command("COMPRESS DEFLATE")
        self.assertEqual(e.exception.code, 502)
        # Like ours, INN allows no login after COMPRESS (RFC 8054).
        with self.assertRaises(NNTPPermanentError) as e:
            await client.login("reader", "secret")
        self.assertEqual(e.exception.code, 502)
        await client.quit()

    async def test_list_variants(self) -> None:
        client = await connect_nntp(reactor, "127.0.0.1", self.inn.port, reader_mode=True)
        self.addCleanup(client.close)
        await client.post(b"From: p@netproto.test\nNewsgroups: alt.test\nSubject: s\n\nhi\n")
        counts = {c.group: c for c in await client.counts("*.test")}
        self.assertEqual((counts["alt.test"].count, counts["alt.test"].flag), (1, "y"))
        self.assertEqual(counts["comp.test"].count, 0)
        # INN serves its own files; our reader of INN-format files agrees with it.
        etc = self.inn.dir / "etc"
        files = load_lists(subscriptions=etc / "subscriptions", moderators=etc / "moderators")
        self.assertEqual(await client.subscriptions(), list(files.subscriptions or ()))
        self.assertEqual(await client.moderators(), list(files.moderators or ()))
        self.assertIn(":", await client.list_headers())  # INN: any header
        self.assertIn(":", await client.list_headers("RANGE"))
        self.assertIn("Subject:", await client.list_lines("OVERVIEW.FMT"))

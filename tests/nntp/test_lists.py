"""RFC 6048 LIST keywords: the server's answers, list files, group statuses, client calls."""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from netproto_twisted.core.errors import ConfigError
from netproto_twisted.nntp import NNTPPermanentError, NNTPTemporaryError, connect_nntp
from netproto_twisted.nntp.lists import NewsLists, is_group_status, load_lists
from netproto_twisted.nntp.store import NewsDatabase, SQLiteNewsStore
from netproto_twisted.testing.nntp import start_news_server
from tests.nntp.test_reader import NNTPSessionCase

LISTS = NewsLists(
    motd=("Welcome to the test server.", "Be nice."),
    subscriptions=("comp.test", "news.announce"),
    distributions=(("local", "this server only"), ("world", "everywhere")),
    moderators=(("comp.moderated", "mod@example.test"), ("*", "%s@moderators.test")),
    distrib_pats=("10:local.*:local",),
)


class ListTests(NNTPSessionCase):
    async def codes(self, d, data: bytes) -> list[str]:  # type: ignore[no-untyped-def]
        return [line[:3] for line in await self.talk(d, data)]

    def setUp(self) -> None:
        path = os.path.join(self.mktemp(), "news.db")
        db = NewsDatabase(path, durable=False)
        for name, status in (("comp.test", "y"), ("comp.moderated", "m"), ("comp.closed", "x"),
                             ("comp.junked", "j"), ("comp.alias", "=comp.test")):  # fmt: skip
            db.add_group(name, status=status)
        db.close()
        self.store = SQLiteNewsStore(reactor, path, path_host="us.test", durable=False)
        self.addCleanup(self.store.close)

    async def test_configured_lists(self) -> None:
        d = self.session(lists=LISTS)
        motd = await self.talk(d, b"LIST MOTD\r\n")
        self.assertEqual(motd, ["215 message of the day follows", "Welcome to the test server.",
                                "Be nice.", "."])  # fmt: skip
        self.assertEqual((await self.talk(d, b"LIST SUBSCRIPTIONS\r\n"))[1:],
                         ["comp.test", "news.announce", "."])  # fmt: skip
        self.assertEqual((await self.talk(d, b"LIST SUBSCRIPTIONS news.*\r\n"))[1:],
                         ["news.announce", "."])  # fmt: skip
        self.assertEqual((await self.talk(d, b"LIST DISTRIBUTIONS\r\n"))[1:],
                         ["local\tthis server only", "world\teverywhere", "."])  # fmt: skip
        moderators = ["comp.moderated:mod@example.test", "*:%s@moderators.test", "."]
        self.assertEqual((await self.talk(d, b"LIST MODERATORS\r\n"))[1:], moderators)
        self.assertEqual((await self.talk(d, b"LIST DISTRIB.PATS\r\n"))[1:],
                         ["10:local.*:local", "."])  # fmt: skip
        for which in (b"", b" MSGID", b" range"):
            lines = await self.talk(d, b"LIST HEADERS" + which + b"\r\n")
            self.assertEqual(lines[0][:3], "215")
            self.assertEqual(lines[1:], [":", ":bytes", ":lines", "."])

    async def test_refusals(self) -> None:
        d = self.session()
        for keyword in (b"MOTD", b"SUBSCRIPTIONS", b"DISTRIBUTIONS", b"MODERATORS"):
            self.assertEqual(await self.codes(d, b"LIST " + keyword + b"\r\n"), ["503"], keyword)
        d = self.session(lists=LISTS)
        for bad in (b"LIST HEADERS BOTH", b"LIST MOTD now", b"LIST DISTRIBUTIONS x",
                    b"LIST MODERATORS x", b"LIST SUBSCRIPTIONS [",
                    b"LIST DISTRIB.PATS x"):  # fmt: skip
            self.assertEqual(await self.codes(d, bad + b"\r\n"), ["501"], bad)

    async def test_capabilities_list_line(self) -> None:
        d = self.session()
        lines = await self.talk(d, b"CAPABILITIES\r\n")
        listing = next(line for line in lines if line.startswith("LIST "))
        for keyword in ("ACTIVE", "COUNTS", "DISTRIBUTIONS", "MODERATORS", "MOTD",
                        "SUBSCRIPTIONS", "HEADERS"):  # fmt: skip
            self.assertIn(keyword, listing.split())
        self.assertIn("COMPRESS DEFLATE", lines)

    async def test_active_statuses(self) -> None:
        """LIST ACTIVE shows every RFC 6048 status; posting to an ``x`` group is refused."""
        d = self.session()
        lines = await self.talk(d, b"LIST ACTIVE comp.*\r\n")
        statuses = {line.split()[0]: line.split()[3] for line in lines[1:-1]}
        self.assertEqual(statuses, {"comp.test": "y", "comp.moderated": "m", "comp.closed": "x",
                                    "comp.junked": "j", "comp.alias": "=comp.test"})  # fmt: skip
        counts = await self.talk(d, b"LIST COUNTS comp.closed\r\n")
        self.assertEqual(counts[1], "comp.closed 0 1 0 x")
        post = b"From: a@b.test\r\nNewsgroups: comp.closed\r\nSubject: s\r\n\r\nhi\r\n.\r\n"
        lines = await self.talk(d, b"POST\r\n" + post)
        self.assertEqual([line[:3] for line in lines], ["340", "441"])


class StatusAndFileTests(TestCase):
    def test_is_group_status(self) -> None:
        for good in ("y", "n", "m", "x", "j", "=comp.lang.python", "=a"):
            self.assertTrue(is_group_status(good), good)
        for bad in ("", "Y", "yn", "=", "=a b", "=a..b", "=a*", "q"):
            self.assertFalse(is_group_status(bad), bad)

    def test_load_lists(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)

        def write(name: str, text: str) -> str:
            path = os.path.join(directory, name)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            return path

        lists = load_lists(
            motd=write("motd.news", "Hello.\n\n# not a comment here\n"),
            subscriptions=write("subscriptions", "# defaults\ncomp.test\n\nnews.announce\n"),
            distributions=write("distributions", "local: this server only\nworld:everywhere\n"),
            moderators=write("moderators", "## x\ncomp.moderated:mod@example.test\n"),
            distrib_pats=write("distrib.pats", "10:local.*:local\n"),
        )
        self.assertEqual(lists.motd, ("Hello.", "", "# not a comment here"))
        self.assertEqual(lists.subscriptions, ("comp.test", "news.announce"))
        self.assertEqual(
            lists.distributions, (("local", "this server only"), ("world", "everywhere"))
        )
        self.assertEqual(lists.moderators, (("comp.moderated", "mod@example.test"),))
        self.assertEqual(lists.distrib_pats, ("10:local.*:local",))
        self.assertEqual(load_lists(), NewsLists())
        with self.assertRaises(ConfigError):
            load_lists(motd=os.path.join(directory, "missing"))
        with self.assertRaises(ConfigError):
            load_lists(distributions=write("bad", "no colon here\n"))
        with self.assertRaises(ConfigError):
            load_lists(subscriptions=write("bad2", "not a group\n"))
        with self.assertRaises(ConfigError):
            NewsLists(motd=("a\r\n.",))


class ClientListTests(TestCase):
    async def test_client_calls(self) -> None:
        news = await start_news_server(reactor, groups={"comp.test": "Tests"}, lists=LISTS)
        self.addCleanup(news.stop)
        await news.add_article("comp.test")
        client = await connect_nntp(reactor, news.host, news.port)
        self.addCleanup(client.close)
        self.assertEqual(await client.motd(), ["Welcome to the test server.", "Be nice."])
        self.assertEqual(await client.subscriptions(), ["comp.test", "news.announce"])
        self.assertEqual(await client.subscriptions("comp.*"), ["comp.test"])
        self.assertEqual(await client.distributions(),
                         {"local": "this server only", "world": "everywhere"})  # fmt: skip
        moderators = [("comp.moderated", "mod@example.test"), ("*", "%s@moderators.test")]
        self.assertEqual(await client.moderators(), moderators)
        self.assertEqual(await client.list_headers("MSGID"), [":", ":bytes", ":lines"])
        counts = await client.counts("comp.*")
        self.assertEqual([(c.group, c.last, c.first, c.count, c.flag) for c in counts],
                         [("comp.test", 1, 1, 1, "y")])  # fmt: skip

    async def test_client_sees_503(self) -> None:
        news = await start_news_server(reactor, groups=["comp.test"])
        self.addCleanup(news.stop)
        client = await connect_nntp(reactor, news.host, news.port)
        self.addCleanup(client.close)
        with self.assertRaises((NNTPPermanentError, NNTPTemporaryError)) as e:
            await client.motd()
        self.assertEqual(e.exception.code, 503)  # type: ignore[union-attr]

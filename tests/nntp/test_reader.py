"""The NNTP reader commands driven with bytes: navigation, retrieval, listings, refusals."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from netproto_twisted.core.connection import ConnectionDriver
from netproto_twisted.core.streaming import thread_block_runner
from netproto_twisted.nntp.server import NNTPConnection, NNTPSettings
from tests.nntp import test_server as base

fed = base.fed


class NNTPSessionCase(TestCase):
    """A store with ``comp.test`` and ``comp.moderated``; sessions over it driven with bytes."""

    setUp = base.ServerTests.setUp

    def session(
        self, *, feed_peer: bool = True, connection: dict[str, Any] | None = None, **settings: Any
    ) -> ConnectionDriver:
        options: dict[str, Any] = {"path_host": "us.test", "posting_requires_auth": False}
        options.update(settings)
        self.transport = StringTransport()
        conn = NNTPConnection(
            NNTPSettings(**options), self.store, self.transport, thread_block_runner(reactor),
            now=reactor.seconds, feed_peer=feed_peer, **(connection or {}),
        )  # fmt: skip
        driver = ConnectionDriver(conn)
        self.assertRegex(driver.take_output(), rb"^20[01] ")
        return driver

    async def talk(self, driver: ConnectionDriver, data: bytes) -> list[str]:
        """Feed *data*; the replies, including those streamed straight to the transport."""
        out = driver.feed(data)
        conn = driver.connection
        assert isinstance(conn, NNTPConnection)
        while driver.pending or conn.replies_pending:
            await defer.DeferredList([*driver.pending, conn.drained()])
            out += driver.take_output() + conn.data_to_send()
        out += self.transport.value()
        self.transport.clear()
        return out.decode().split("\r\n")[:-1]


class ReaderTests(NNTPSessionCase):
    async def seeded(self, count: int = 3):  # type: ignore[no-untyped-def]
        d = self.session()
        for i in range(1, count + 1):
            mid = f"<{i}@peer>"
            lines = await self.talk(d, f"IHAVE {mid}\r\n".encode() + fed(mid) + b".\r\n")
            self.assertEqual(lines[1][:3], "235", lines)
        return d

    async def codes(self, d, data: bytes) -> list[str]:  # type: ignore[no-untyped-def]
        return [line[:3] for line in await self.talk(d, data)]

    async def test_without_a_group(self) -> None:
        d = self.session()
        for command in (b"LAST", b"NEXT", b"ARTICLE", b"HEAD 1", b"OVER", b"HDR Subject 1-",
                        b"LISTGROUP"):  # fmt: skip
            self.assertEqual(await self.codes(d, command + b"\r\n"), ["412"], command)
        self.assertEqual(
            await self.talk(d, b"GROUP no.such\r\n"), ["411 no such newsgroup no.such"]
        )
        self.assertEqual(await self.codes(d, b"LISTGROUP no.such\r\n"), ["411"])

    async def test_empty_group_has_no_current_article(self) -> None:
        d = self.session()
        lines = await self.talk(d, b"GROUP comp.test\r\nNEXT\r\nLAST\r\nSTAT\r\nOVER\r\n")
        self.assertEqual(lines[0], "211 0 1 0 comp.test")
        self.assertEqual([x[:3] for x in lines[1:]], ["420"] * 4)

    async def test_group_listgroup_and_navigation(self) -> None:
        d = await self.seeded()
        self.assertEqual(await self.talk(d, b"GROUP comp.test\r\n"), ["211 3 1 3 comp.test"])
        lines = await self.talk(d, b"LISTGROUP\r\n")
        self.assertEqual(lines, ["211 3 1 3 comp.test list follows", "1", "2", "3", "."])
        lines = await self.talk(d, b"LISTGROUP comp.test 2-\r\n")
        self.assertEqual(lines[1:], ["2", "3", "."])
        self.assertEqual(await self.codes(d, b"LISTGROUP comp.test x-y\r\n"), ["501"])
        lines = await self.talk(d, b"LAST\r\nNEXT\r\nNEXT\r\nNEXT\r\nLAST\r\n")
        self.assertEqual(
            lines,
            ["422 no previous article", "223 2 <2@peer>", "223 3 <3@peer>",
             "421 no next article", "223 2 <2@peer>"],
        )  # fmt: skip
        self.assertEqual(await self.talk(d, b"STAT\r\n"), ["223 2 <2@peer>"])

    async def test_retrieval_by_number_and_id(self) -> None:
        d = await self.seeded()
        await self.talk(d, b"GROUP comp.test\r\n")
        lines = await self.talk(d, b"HEAD 2\r\n")
        self.assertEqual(lines[0], "221 2 <2@peer>")
        self.assertIn("Message-ID: <2@peer>", lines)
        self.assertEqual(lines[-1], ".")
        self.assertNotIn("text", lines)
        self.assertEqual(await self.talk(d, b"BODY\r\n"), ["222 2 <2@peer>", "text", "."])
        self.assertEqual(await self.talk(d, b"STAT <3@peer>\r\n"), ["223 0 <3@peer>"])
        lines = await self.talk(d, b"ARTICLE <1@peer>\r\n")
        self.assertEqual(lines[0], "220 0 <1@peer>")
        self.assertEqual(lines[-2:], ["text", "."])
        # Fetching by id leaves the current article alone.
        self.assertEqual(await self.talk(d, b"STAT\r\n"), ["223 2 <2@peer>"])
        self.assertEqual(await self.talk(d, b"BODY <9@peer>\r\n"), ["430 no such article"])
        self.assertEqual(await self.codes(d, b"HEAD <broken\r\n"), ["501"])
        self.assertEqual(await self.talk(d, b"ARTICLE 7\r\n"), ["423 no article with that number"])
        for bad in (b"STAT 1-2", b"STAT x", b"STAT -1"):
            self.assertEqual(await self.codes(d, bad + b"\r\n"), ["501"], bad)

    async def test_newgroups_and_newnews(self) -> None:
        d = await self.seeded(2)
        lines = await self.talk(d, b"NEWGROUPS 19700101 000000 GMT\r\n")
        self.assertEqual(lines[0][:3], "231")
        self.assertEqual(
            sorted(x.split()[0] for x in lines[1:-1]), ["comp.moderated", "comp.test"]
        )
        lines = await self.talk(d, b"NEWGROUPS 21000101 000000\r\n")
        self.assertEqual([lines[0][:3], *lines[1:]], ["231", "."])
        self.assertEqual(await self.codes(d, b"NEWGROUPS yesterday\r\n"), ["501"])
        lines = await self.talk(d, b"NEWNEWS comp.* 19700101 000000 GMT\r\n")
        self.assertEqual([lines[0][:3], *sorted(lines[1:-1]), lines[-1]],
                         ["230", "<1@peer>", "<2@peer>", "."])  # fmt: skip
        lines = await self.talk(d, b"NEWNEWS alt.* 19700101 000000 GMT\r\n")
        self.assertEqual([lines[0][:3], *lines[1:]], ["230", "."])
        self.assertEqual(await self.codes(d, b"NEWNEWS comp.* junk\r\n"), ["501"])
        self.assertEqual(await self.codes(d, b"NEWNEWS [ 19700101 000000\r\n"), ["501"])

    async def test_list_variants(self) -> None:
        d = await self.seeded(1)
        lines = await self.talk(d, b"LIST\r\n")
        self.assertEqual(lines[0][:3], "215")
        self.assertIn("comp.test 1 1 y", lines)
        lines = await self.talk(d, b"LIST ACTIVE comp.m*\r\n")
        self.assertEqual(len(lines), 3)
        self.assertTrue(lines[1].startswith("comp.moderated "), lines)
        lines = await self.talk(d, b"LIST COUNTS comp.test\r\n")
        self.assertEqual(lines[1:], ["comp.test 1 1 1 y", "."])
        lines = await self.talk(d, b"LIST ACTIVE.TIMES comp.test\r\n")
        self.assertEqual(lines[1].split()[0], "comp.test")
        self.assertEqual(len(lines[1].split()), 3)
        lines = await self.talk(d, b"LIST NEWSGROUPS comp.test\r\n")
        self.assertTrue(lines[1].startswith("comp.test\t"), lines)
        lines = await self.talk(d, b"LIST OVERVIEW.FMT\r\n")
        self.assertEqual(lines[1], "Subject:")
        self.assertEqual((await self.talk(d, b"LIST HEADERS\r\n"))[1:],
                         [":", ":bytes", ":lines", "."])  # fmt: skip
        self.assertEqual((await self.talk(d, b"LIST DISTRIB.PATS\r\n"))[1:], ["."])
        self.assertEqual(await self.codes(d, b"LIST MOTD\r\n"), ["503"])  # none kept
        self.assertEqual(await self.codes(d, b"LIST FROBS\r\n"), ["501"])
        self.assertEqual(await self.codes(d, b"LIST ACTIVE [\r\n"), ["501"])

    async def test_over_and_hdr(self) -> None:
        d = await self.seeded()
        await self.talk(d, b"GROUP comp.test\r\n")
        lines = await self.talk(d, b"OVER\r\n")
        self.assertEqual(lines[0][:3], "224")
        self.assertEqual(len(lines), 3)
        self.assertTrue(lines[1].startswith("1\ts\t"), lines)
        lines = await self.talk(d, b"OVER <2@peer>\r\n")
        self.assertTrue(lines[1].startswith("0\ts\t") or lines[1].startswith("2\ts\t"), lines)
        self.assertEqual(await self.codes(d, b"OVER <9@peer>\r\n"), ["430"])
        self.assertEqual(await self.codes(d, b"OVER 7-9\r\n"), ["423"])
        self.assertEqual(await self.codes(d, b"OVER 3-2\r\n"), ["423"])
        self.assertEqual(await self.codes(d, b"OVER z\r\n"), ["501"])
        lines = await self.talk(d, b"HDR Message-ID 2-\r\n")
        self.assertEqual(lines, ["225 headers follow", "2 <2@peer>", "3 <3@peer>", "."])
        lines = await self.talk(d, b"XHDR Subject <1@peer>\r\n")
        self.assertEqual(lines, ["221 headers follow", "0 s", "."])
        lines = await self.talk(d, b"HDR :lines <1@peer>\r\n")
        self.assertEqual(lines, ["225 headers follow", "0 1", "."])
        lines = await self.talk(d, b"HDR :bytes <1@peer>\r\n")
        self.assertTrue(int(lines[1].split()[1]) > 100, lines)
        self.assertEqual(await self.codes(d, b"HDR :nope 1-\r\n"), ["501"])
        self.assertEqual(await self.codes(d, b"HDR Subject <9@peer>\r\n"), ["430"])
        self.assertEqual(await self.codes(d, b"HDR Subject 9-\r\n"), ["423"])
        lines = await self.talk(d, b"XPAT Message-ID 1- *2@* *3@*\r\n")
        self.assertEqual(lines, ["221 headers follow", "2 <2@peer>", "3 <3@peer>", "."])
        self.assertEqual(await self.codes(d, b"XPAT Subject 1-\r\n"), ["501"])
        self.assertEqual(await self.codes(d, b"XPAT Subject 1- [\r\n"), ["501"])

    async def test_date(self) -> None:
        d = self.session()
        [line] = await self.talk(d, b"DATE\r\n")
        self.assertRegex(line, r"^111 \d{14}$")

"""The NNTP server session driven with bytes (no transport): feeds, posting checks, bad input."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from netproto_twisted.core.connection import ConnectionDriver
from netproto_twisted.core.streaming import thread_block_runner
from netproto_twisted.nntp.server import NNTPConnection, NNTPSettings
from netproto_twisted.nntp.store import NewsDatabase, SQLiteNewsStore


def fed(mid: str, path: str = "peer.test!poster", body: bytes = b"text\r\n") -> bytes:
    return (
        f"Path: {path}\r\nFrom: a@b.test\r\nNewsgroups: comp.test\r\nSubject: s\r\n"
        f"Message-ID: {mid}\r\nDate: Mon, 07 Dec 2026 10:00:00 GMT\r\n\r\n"
    ).encode() + body


def post(extra: bytes = b"", body: bytes = b"hello\r\n") -> bytes:
    return b"From: a@b.test\r\nNewsgroups: comp.test\r\nSubject: s\r\n" + extra + b"\r\n" + body


class ServerTests(TestCase):
    def setUp(self) -> None:
        path = os.path.join(self.mktemp(), "news.db")
        db = NewsDatabase(path, durable=False)
        db.add_group("comp.test")
        db.add_group("comp.moderated", status="m")
        db.close()
        self.store = SQLiteNewsStore(reactor, path, path_host="us.test", durable=False)
        self.addCleanup(self.store.close)

    def session(self, *, feed_peer: bool = True, **settings: Any) -> ConnectionDriver:
        options: dict[str, Any] = {"path_host": "us.test", "posting_requires_auth": False}
        options.update(settings)
        conn = NNTPConnection(
            NNTPSettings(**options), self.store, StringTransport(), thread_block_runner(reactor),
            now=reactor.seconds, feed_peer=feed_peer,
        )  # fmt: skip
        driver = ConnectionDriver(conn)
        self.assertTrue(driver.take_output().startswith(b"200 "))
        return driver

    async def talk(self, driver: ConnectionDriver, data: bytes) -> list[str]:
        out = driver.feed(data)
        conn = driver.connection
        assert isinstance(conn, NNTPConnection)
        while driver.pending or conn.replies_pending:
            await defer.DeferredList([*driver.pending, conn.drained()])
            out += driver.take_output() + conn.data_to_send()
        return out.decode().split("\r\n")[:-1]

    async def test_post_adds_headers(self) -> None:
        d = self.session()
        lines = (
            await self.talk(d, b"GROUP comp.test\r\nPOST\r\n" + post() + b".\r\nARTICLE 1\r\n")
        )[1:]
        self.assertTrue(lines[0].startswith("340"), lines)
        self.assertTrue(lines[1].startswith("240 article received <"))
        self.assertTrue(lines[2].startswith("220 1 <"))
        article = "\n".join(lines[3:])
        for header in ("Path: us.test!not-for-mail", "Date: ", "Message-ID: <",
                       "Injection-Date: ", "Injection-Info: us.test"):  # fmt: skip
            self.assertIn(header, article)

    async def test_post_refusals(self) -> None:
        d = self.session(max_article_size=2000)
        cases = [
            b"Subject: no blank line\r\nNewsgroups: comp.test\r\nbody\r\n",  # no blank line
            b"From: a@b\r\nNewsgroups: comp.test\r\nSubject: s\nNewsgroups: x\r\n\r\nb\r\n",
            post(b"X-Null: a\0b\r\n"),
            post(body=b"x" * 3000 + b"\r\n"),  # over the size limit (and line length)
            post(body=b"y\r\n" * 1000),  # over the size limit in short lines
            b"From: a@b\r\nSubject: s\r\n\r\nno groups\r\n",
            post(b"Message-ID: not-an-id\r\n"),
            post(b"Date: yesterday\r\n"),
            b"From: a@b\r\nNewsgroups: comp.moderated\r\nSubject: s\r\n\r\nm\r\n",
            b"From: a@b\r\nNewsgroups: no.such\r\nSubject: s\r\n\r\nm\r\n",
        ]
        for article in cases:
            lines = await self.talk(d, b"POST\r\n" + article + b".\r\n")
            self.assertEqual(lines[0][:3], "340")
            self.assertEqual(lines[1][:3], "441", (article[:60], lines))
        # The session goes on, in sync, and nothing was stored.
        self.assertEqual((await self.talk(d, b"GROUP comp.test\r\n"))[0], "211 0 1 0 comp.test")

    async def test_posting_needs_auth_by_default(self) -> None:
        d = self.session(posting_requires_auth=True)
        self.assertEqual((await self.talk(d, b"POST\r\n"))[0][:3], "480")

    async def test_lone_dot_inside_an_article(self) -> None:
        d = self.session()
        await self.talk(d, b"POST\r\n" + post(body=b"a\r\n..\r\n...x\r\nb\r\n") + b".\r\n")
        lines = await self.talk(d, b"GROUP comp.test\r\nBODY 1\r\n")
        self.assertEqual(lines[1:], ["222 1 " + lines[1].split()[2], "a", "..", "...x", "b", "."])

    async def test_ihave_and_duplicates(self) -> None:
        d = self.session()
        lines = await self.talk(d, b"IHAVE <1@peer>\r\n" + fed("<1@peer>") + b".\r\n")
        self.assertEqual([x[:3] for x in lines], ["335", "235"])
        lines = await self.talk(d, b"IHAVE <1@peer>\r\nCHECK <1@peer>\r\nCHECK <2@peer>\r\n")
        self.assertEqual([x[:3] for x in lines], ["435", "438", "238"])
        lines = await self.talk(d, b"ARTICLE <1@peer>\r\n")
        self.assertIn("Path: us.test!peer.test!poster", lines)

    async def test_feed_loop_refused(self) -> None:
        d = self.session()
        lines = await self.talk(
            d, b"IHAVE <l@peer>\r\n" + fed("<l@peer>", path="x!us.test!y") + b".\r\n"
        )
        self.assertEqual(lines[1][:3], "437")
        self.assertIn("loop", lines[1])
        lines = await self.talk(
            d, b"TAKETHIS <l@peer>\r\n" + fed("<l@peer>", "us.test") + b".\r\n"
        )
        self.assertEqual(lines[0][:3], "439")

    async def test_ihave_wrong_id(self) -> None:
        d = self.session()
        lines = await self.talk(d, b"IHAVE <a@peer>\r\n" + fed("<b@peer>") + b".\r\n")
        self.assertEqual(lines[1][:3], "437")

    async def test_takethis_pipelined_in_order(self) -> None:
        d = self.session()
        burst = b"".join(
            f"TAKETHIS <{i}@peer>\r\n".encode() + fed(f"<{i}@peer>") + b".\r\n" for i in range(60)
        )
        # A duplicate and a broken one in the middle, and a command after them all.
        burst += b"TAKETHIS <5@peer>\r\n" + fed("<5@peer>") + b".\r\n"
        burst += b"TAKETHIS <bad@peer>\r\nno header\r\n.\r\nDATE\r\n"
        lines = await self.talk(d, b"MODE STREAM\r\n" + burst)
        self.assertEqual(lines[0][:3], "203")
        self.assertEqual(lines[1:61], [f"239 <{i}@peer>" for i in range(60)])
        self.assertEqual(lines[61], "439 <5@peer> duplicate")
        self.assertEqual(lines[62][:3], "439")
        self.assertEqual(lines[63][:3], "111")
        group = await self.talk(d, b"GROUP comp.test\r\n")
        self.assertEqual(group, ["211 60 1 60 comp.test"])

    async def test_takethis_without_mode_stream_stays_in_sync(self) -> None:
        # Allowed (STREAMING is advertised), and a peer that may not feed has its
        # article read whole and refused; either way the next command is a command.
        d = self.session(feed_peer=False)
        lines = await self.talk(d, b"TAKETHIS <t@peer>\r\n" + fed("<t@peer>") + b".\r\nDATE\r\n")
        self.assertEqual(lines[0], "439 <t@peer> transfer permission denied")
        self.assertEqual(lines[1][:3], "111")
        lines = await self.talk(d, b"IHAVE <t@peer>\r\nCHECK <t@peer>\r\n")
        self.assertEqual([x[:3] for x in lines], ["502", "502"])

    async def test_reader_errors_and_help(self) -> None:
        d = self.session()
        lines = await self.talk(
            d,
            b"GROUP\r\nFROB\r\nNEXT\r\nLIST FOO\r\nOVER\r\nHDR Subject\r\nLISTGROUP x y\r\n"
            b"NEWGROUPS 2024 000000\r\nAUTHINFO USER a\r\nSTARTTLS\r\nMODE READER\r\n",
        )
        self.assertEqual([x[:3] for x in lines],
                         ["501", "500", "412", "501", "412", "412", "411", "501", "502", "502",
                          "200"])  # fmt: skip
        lines = await self.talk(d, b"HELP\r\nCAPABILITIES\r\nQUIT\r\n")
        self.assertEqual(lines[0][:3], "100")
        self.assertIn("VERSION 2", lines)
        self.assertIn("STREAMING", lines)
        self.assertEqual(lines[-1][:3], "205")
        self.assertTrue(d.closed)

    async def test_too_many_errors_close(self) -> None:
        d = self.session(max_errors=3)
        lines = await self.talk(d, b"X\r\nY\r\nZ\r\nDATE\r\n")
        self.assertEqual([x[:3] for x in lines], ["500", "500", "400"])
        self.assertTrue(d.closed)

    async def test_line_too_long(self) -> None:
        conn = NNTPConnection(
            NNTPSettings(), self.store, StringTransport(), thread_block_runner(reactor),
            now=reactor.seconds,
        )  # fmt: skip
        d = ConnectionDriver(conn, max_line_length=100)
        d.take_output()
        lines = await self.talk(d, b"GROUP " + b"x" * 500 + b"\r\nDATE\r\n")
        self.assertEqual([x[:3] for x in lines], ["501", "111"])

"""Our news server driven by the stdlib's nntplib (a real, independent client), in a thread."""

from __future__ import annotations

import io
import ssl
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet import reactor, threads
from twisted.trial.unittest import TestCase

from netproto_twisted.testing.nntp import NewsServer, start_news_server

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import nntplib

T = TypeVar("T")

ARTICLE = (
    b"From: Poster <poster@example.test>\r\n"
    b"Newsgroups: comp.test\r\n"
    b"Subject: posted through nntplib\r\n"
    b"\r\n"
    b"Hello.\r\n"
    b".leading dot\r\n"
)


class NNTPLibTests(TestCase):
    async def start(self, **options: Any) -> NewsServer:
        options.setdefault("groups", {"comp.test": "Testing", "alt.test": "Other"})
        news = await start_news_server(reactor, **options)
        self.addCleanup(news.stop)
        return news

    def in_thread(self, f: Callable[[], T]) -> Any:
        return threads.deferToThread(f)

    def connect(self, news: NewsServer) -> nntplib.NNTP:
        client = nntplib.NNTP(news.host, news.port, readermode=False, timeout=10)
        self.addCleanup(client.sock.close)
        return client

    async def test_reading(self) -> None:
        news = await self.start()
        for i in range(3):
            await news.add_article("comp.test", subject=f"subject {i}", body=f"body {i}\n")
        await news.add_article(["comp.test", "alt.test"], subject="cross", message_id="<x@t>")

        def read() -> dict[str, Any]:
            s = self.connect(news)
            caps = s.getcapabilities()
            resp, count, first, last, name = s.group("comp.test")
            _, overviews = s.over((first, last))
            _, info = s.article(2)
            _, head = s.head("<x@t>")
            _, body = s.body(1)
            stat = s.stat(3)
            _, active = s.list()
            _, descriptions = s.descriptions("*.test")
            _, xhdr = s.xhdr("subject", "1-4")
            last_resp = s.last()
            next_resp = s.next()
            date = s.date()
            s.quit()
            return locals()

        r = await self.in_thread(read)
        self.assertIn("OVER", r["caps"])
        self.assertEqual((r["count"], r["first"], r["last"], r["name"]), (4, 1, 4, "comp.test"))
        self.assertEqual([n for n, _ in r["overviews"]], [1, 2, 3, 4])
        self.assertEqual(r["overviews"][0][1]["subject"], "subject 0")
        self.assertEqual(r["overviews"][3][1]["message-id"], "<x@t>")
        self.assertIn("comp.test:4", r["overviews"][3][1]["xref"])
        self.assertIn(b"body 1", b"\n".join(r["info"].lines))
        self.assertIn(b"Subject: cross", r["head"].lines)
        self.assertEqual(r["body"].lines, [b"body 0"])
        self.assertEqual(r["stat"][1], 3)
        self.assertEqual(sorted(g.group for g in r["active"]), ["alt.test", "comp.test"])
        self.assertEqual(r["descriptions"], {"comp.test": "Testing", "alt.test": "Other"})
        self.assertEqual(
            [line[1] for line in r["xhdr"]], [f"subject {i}" for i in range(3)] + ["cross"]
        )
        self.assertEqual(r["last_resp"][1], 2)
        self.assertEqual(r["next_resp"][1], 3)
        self.assertGreaterEqual(r["date"][1].year, 2024)

    async def test_post_and_read_back(self) -> None:
        news = await self.start()

        def post() -> tuple[str, list[bytes], Any, Any]:
            s = self.connect(news)
            resp = s.post(io.BytesIO(ARTICLE))
            s.group("comp.test")
            _, info = s.article(1)
            _, new = s.newnews("comp.*", __import__("datetime").datetime(2000, 1, 1))
            _, groups = s.newgroups(__import__("datetime").datetime(2000, 1, 1))
            s.quit()
            return resp, info.lines, new, groups

        resp, lines, new, groups = await self.in_thread(post)
        self.assertTrue(resp.startswith("240"))
        self.assertIn(b"..leading dot"[1:], lines)
        names = {line.split(b":")[0] for line in lines if b": " in line}
        for header in (b"Path", b"Date", b"Message-ID", b"Injection-Date"):
            self.assertIn(header, names)
        self.assertIn(b"Path: news.test!not-for-mail", lines)
        self.assertEqual(len(new), 1)
        self.assertEqual(sorted(g.group for g in groups), ["alt.test", "comp.test"])

    async def test_posting_needs_login_by_default(self) -> None:
        news = await self.start(users={"alice": "secret"}, posting_requires_auth=True)

        def post() -> tuple[str, str]:
            s = self.connect(news)
            try:
                s.post(io.BytesIO(ARTICLE))
            except nntplib.NNTPTemporaryError as e:
                refused = str(e)
            else:  # pragma: no cover - the failure
                refused = ""
            s.login("alice", "secret", usenetrc=False)
            resp = s.post(io.BytesIO(ARTICLE))
            s.quit()
            return refused, resp

        refused, resp = await self.in_thread(post)
        self.assertTrue(refused.startswith("480"), refused)
        self.assertTrue(resp.startswith("240"), resp)

    async def test_bad_login(self) -> None:
        news = await self.start(users={"alice": "secret"})

        def login() -> str:
            s = self.connect(news)
            try:
                s.login("alice", "wrong", usenetrc=False)
            except nntplib.NNTPError as e:
                return str(e)
            return ""  # pragma: no cover

        self.assertTrue((await self.in_thread(login)).startswith("481"))

    async def test_starttls(self) -> None:
        news = await self.start(tls=True, users={"alice": "secret"})
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

        def secure() -> tuple[bool, list[str], int]:
            s = self.connect(news)
            s.starttls(context)
            caps = s.getcapabilities()
            s.login("alice", "secret", usenetrc=False)
            _, count, *_ = s.group("comp.test")
            s.quit()
            return s.tls_on, list(caps), count

        tls_on, caps, count = await self.in_thread(secure)
        self.assertTrue(tls_on)
        self.assertNotIn("STARTTLS", caps)
        self.assertEqual(count, 0)

    async def test_errors(self) -> None:
        news = await self.start()

        def errors() -> list[str]:
            s = self.connect(news)
            out = []
            for call in (lambda: s.group("no.such"), lambda: s.article(1),
                         lambda: s.article("<none@x>"), lambda: s._shortcmd("FROB")):  # fmt: skip
                try:
                    call()
                except nntplib.NNTPError as e:
                    out.append(str(e)[:3])
            s.group("comp.test")
            try:
                s.stat(5)
            except nntplib.NNTPError as e:
                out.append(str(e)[:3])
            s.quit()
            return out

        self.assertEqual(await self.in_thread(errors), ["411", "412", "430", "500", "423"])

    async def test_oversize_article_is_read_and_refused(self) -> None:
        # 8 MB against a 1 MB limit: read to its end without being kept, refused, and
        # the session goes on.
        news = await self.start()
        big = ARTICLE + (b"y" * 78 + b"\r\n") * 100_000

        def post() -> tuple[str, int]:
            s = self.connect(news)
            try:
                s.post(io.BytesIO(big))
            except nntplib.NNTPTemporaryError as e:
                refused = str(e)
            else:  # pragma: no cover - the failure
                refused = ""
            count = s.group("comp.test")[1]
            s.quit()
            return refused, count

        refused, count = await self.in_thread(post)
        self.assertTrue(refused.startswith("441 article larger than"), refused)
        self.assertEqual(count, 0)

"""Moderated groups: posts mailed to the moderator through our SMTP client, to our SMTP server
and to Postfix's smtp-sink; Approved posts from approvers filed, from others refused."""

from __future__ import annotations

import contextlib
import io
import sqlite3
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted import cli
from netproto_twisted.core.passwords import PasswordFile
from netproto_twisted.mailstore.eol import to_crlf
from netproto_twisted.nntp import NNTPTemporaryError, connect_nntp
from netproto_twisted.nntp.server.moderation import (
    ModeratorDirectory,
    pattern_address,
    set_moderator,
    submission,
)
from netproto_twisted.nntp.store import NewsDatabase
from netproto_twisted.testing import start_mail_servers
from tests.interop.test_smtp_client_helpers import SinkMixin, body_lines
from tests.nntp.feeding import Ours, start_ours
from tests.nntp.inn import free_port


def article(groups: str = "comp.mod", extra: str = "") -> bytes:
    return (
        f"From: Poster <poster@example.test>\r\nNewsgroups: {groups}\r\nSubject: please post\r\n"
        f"{extra}\r\nfirst line\r\n.leading dot\r\n"
    ).encode()


class DirectoryTests(SynchronousTestCase):
    def test_table_then_pattern(self) -> None:
        path = str(Path(self.mktemp()) / "news.db")
        db = NewsDatabase(path, durable=False)
        set_moderator(db.db, "comp.mod", "mod@example.org")
        set_moderator(db.db, "comp.mod", "other@example.org")  # replaced
        set_moderator(db.db, "comp.gone", "x@example.org")
        set_moderator(db.db, "comp.gone", None)
        for bad in ("", "no-at-sign", "a b@c", "<a@b>", "a@b\r\nRCPT TO:<c@d>"):
            self.assertRaises(ValueError, set_moderator, db.db, "comp.mod", bad)
        db.close()
        directory = ModeratorDirectory(path, "%s@moderators.example.org")
        self.addCleanup(directory.close)
        self.assertEqual(directory.address("comp.mod"), "other@example.org")
        self.assertEqual(directory.address("news.announce.important"),
                         "news-announce-important@moderators.example.org")  # fmt: skip
        self.assertIsNone(ModeratorDirectory(path).address("comp.gone"))
        self.assertEqual(pattern_address("mod+%s@x", "a.b"), "mod+a-b@x")
        # the moderators file (LIST MODERATORS) before the one pattern: first match wins
        files = ModeratorDirectory(
            path, "%s@fallback.example", [("alt.*", "%s@alt.example"), ("*", "all@example")]
        )
        self.addCleanup(files.close)
        self.assertEqual(files.address("comp.mod"), "other@example.org")  # the table first
        self.assertEqual(files.address("alt.test.x"), "alt-test-x@alt.example")
        self.assertEqual(files.address("misc.x"), "all@example")

    def test_submission_adds_to_only_when_missing(self) -> None:
        proto = b"From: a@b\r\nSubject: s\r\n\r\nbody\r\n"
        self.assertEqual(submission(proto, "m@x"), b"To: m@x\r\n" + proto)
        addressed = b"From: a@b\r\nTo: someone@y\r\n\r\nbody\r\n"
        self.assertEqual(submission(addressed, "m@x"), addressed)

    def test_cli_moderator(self) -> None:
        path = str(Path(self.mktemp()) / "news.db")
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            self.assertEqual(cli.main(["news", "group", "add", "--db", path, "--moderator",
                                       "mod@example.org", "comp.mod"]), 0)  # fmt: skip
            self.assertEqual(cli.main(["news", "group", "add", "--db", path, "--moderated",
                                       "comp.other"]), 0)  # fmt: skip
            self.assertEqual(cli.main(["news", "group", "add", "--db", path, "--moderator",
                                       "not an address", "comp.bad"]), cli.EXIT_ERROR)  # fmt: skip
        db = sqlite3.connect(path)
        self.addCleanup(db.close)
        self.assertEqual(db.execute("SELECT name, status FROM groups ORDER BY name").fetchall(),
                         [("comp.mod", "m"), ("comp.other", "m")])  # fmt: skip
        self.assertEqual(db.execute("SELECT grp, address FROM moderators").fetchall(),
                         [("comp.mod", "mod@example.org")])  # fmt: skip


class ModerationTests(TestCase):
    """Our server with ``comp.mod`` moderated by ``mod@example.org``; mail to our SMTP server."""

    async def start(self, relay: str, **config: object) -> Ours:
        data = Path(self.mktemp())
        database = data / "news" / "news.db"
        db = NewsDatabase(str(database), durable=False)
        db.add_group("comp.mod", status="m")
        db.add_group("comp.nomod", status="m")
        set_moderator(db.db, "comp.mod", "mod@example.org")
        db.close()
        users = PasswordFile(data / "users", iterations=4096)
        users.add("boss", "pw")
        users.add("joe", "pw")
        ours = await start_ours(data, [], moderation_relay=relay, allow_insecure_auth=True,
                                approvers=("boss",), **config)  # fmt: skip
        self.addCleanup(ours.stop)
        return ours

    async def mail_servers(self) -> tuple[str, Path]:
        servers = await start_mail_servers(reactor, self.mktemp(), {"mod": "pw"})
        self.addCleanup(servers.stop)
        return f"127.0.0.1:{servers.smtp_port}", Path(servers.base)

    def delivered(self, base: Path) -> list[bytes]:
        """The delivered messages as a reader gets them (files hold LF; readers get CRLF)."""
        return [to_crlf(p.read_bytes()) for p in sorted(base.rglob("new/*")) if p.is_file()]

    async def count(self, ours: Ours, group: str) -> int:
        client = await connect_nntp(reactor, "127.0.0.1", ours.port)
        try:
            return (await client.group(group)).count
        finally:
            await client.quit()

    async def test_post_without_approved_is_mailed_to_the_moderator(self) -> None:
        relay, base = await self.mail_servers()
        ours = await self.start(relay)
        client = await connect_nntp(reactor, "127.0.0.1", ours.port)
        text = await client.post(article("comp.test,comp.mod,comp.nomod"))
        self.assertIn("sent to the moderator of comp.mod <", text)
        mid = text.split()[-1]
        await client.quit()
        (mail,) = self.delivered(base)
        head, _, body = mail.partition(b"\r\n\r\n")
        fields = {line.split(b":")[0].lower() for line in head.split(b"\r\n")}
        self.assertIn(b"To: mod@example.org", head)
        self.assertIn(f"Message-ID: {mid}".encode(), head)
        self.assertIn(b"Newsgroups: comp.test,comp.mod,comp.nomod", head)
        self.assertIn(b"date", fields)
        for absent in (b"path", b"injection-info", b"injection-date", b"xref"):
            self.assertNotIn(absent, fields)
        self.assertEqual(body, b"first line\r\n.leading dot\r\n")
        # Nothing was filed, in the moderated group or the others.
        self.assertEqual(await self.count(ours, "comp.mod"), 0)
        self.assertEqual(await self.count(ours, "comp.test"), 0)

    async def test_approved_posts(self) -> None:
        relay, base = await self.mail_servers()
        ours = await self.start(relay)
        approved = article(extra="Approved: mod@example.org\r\n")
        anonymous = await connect_nntp(reactor, "127.0.0.1", ours.port)
        with self.assertRaises(NNTPTemporaryError) as caught:
            await anonymous.post(approved)
        self.assertEqual(caught.exception.code, 441)
        await anonymous.quit()
        joe = await connect_nntp(reactor, "127.0.0.1", ours.port, user="joe", password="pw")
        with self.assertRaises(NNTPTemporaryError) as caught:
            await joe.post(approved)
        self.assertIn("not allowed to approve", caught.exception.text)
        await joe.quit()
        boss = await connect_nntp(reactor, "127.0.0.1", ours.port, user="boss", password="pw")
        self.assertIn("article received", await boss.post(approved))
        await boss.quit()
        self.assertEqual(await self.count(ours, "comp.mod"), 1)
        self.assertEqual(self.delivered(base), [])

    async def test_relay_down_or_no_moderator_is_441(self) -> None:
        ours = await self.start(f"127.0.0.1:{free_port()}")
        client = await connect_nntp(reactor, "127.0.0.1", ours.port)
        with self.assertRaises(NNTPTemporaryError) as caught:
            await client.post(article())
        self.assertEqual(caught.exception.code, 441)
        self.assertIn("cannot reach the moderator of comp.mod now", caught.exception.text)
        with self.assertRaises(NNTPTemporaryError) as caught:
            await client.post(article("comp.nomod"))
        self.assertIn("no moderator known for comp.nomod", caught.exception.text)
        await client.quit()
        self.assertEqual(await self.count(ours, "comp.mod"), 0)

    async def test_recipient_refused_is_441(self) -> None:
        relay, base = await self.mail_servers()
        ours = await self.start(relay, moderator_pattern="%s@elsewhere.example")
        client = await connect_nntp(reactor, "127.0.0.1", ours.port)
        with self.assertRaises(NNTPTemporaryError) as caught:
            await client.post(article("comp.nomod"))  # our SMTP server refuses elsewhere.example
        self.assertEqual(caught.exception.code, 441)
        await client.quit()
        self.assertEqual(self.delivered(base), [])


class SmtpSinkModerationTests(SinkMixin, TestCase):
    async def test_mailed_through_postfix_smtp_sink(self) -> None:
        sink = self.sink()
        data = Path(self.mktemp())
        db = NewsDatabase(str(data / "news" / "news.db"), durable=False)
        db.add_group("comp.mod", status="m")
        db.close()
        ours = await start_ours(data, [], moderation_relay=f"127.0.0.1:{sink.port}",
                                moderator_pattern="%s@moderators.example.org")  # fmt: skip
        self.addCleanup(ours.stop)
        client = await connect_nntp(reactor, "127.0.0.1", ours.port)
        await client.post(article())
        await client.quit()
        (transaction,) = sink.transactions()
        self.assertIn("news@a.test", str(transaction["mail"]))
        self.assertEqual(transaction["rcpt"], ["<comp-mod@moderators.example.org>"])
        lines = body_lines(transaction)
        self.assertEqual(lines[0], b"To: comp-mod@moderators.example.org")
        self.assertIn(b"Subject: please post", lines)
        self.assertEqual(lines[-2:], [b"first line", b".leading dot"])


class FeedsCommandTests(SynchronousTestCase):
    def run_cli(self, *argv: str) -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            status = cli.main(list(argv))
        return status, out.getvalue()

    def test_news_feeds_lists_the_queues(self) -> None:
        path = str(Path(self.mktemp()) / "news.db")
        NewsDatabase(path, durable=False).close()
        self.assertEqual(self.run_cli("news", "feeds", "--db", path), (0, "no articles queued\n"))
        db = sqlite3.connect(path, isolation_level=None)
        rows = [("inn", "<1@x>", 0.0, 0), ("inn", "<2@x>", 0.0, 3), ("b", "<1@x>", 0.0, 0)]
        db.executemany(
            "INSERT INTO feed_queue(peer, message_id, queued, attempts) VALUES(?,?,?,?)", rows
        )
        db.close()
        status, out = self.run_cli("news", "feeds", "--db", path)
        self.assertEqual(status, 0)
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith("b 1 queued, oldest "), lines)
        self.assertTrue(lines[1].endswith(" s, most attempts 3"), lines)
        missing = str(Path(self.mktemp()) / "none.db")
        self.assertEqual(self.run_cli("news", "feeds", "--db", missing)[0], cli.EXIT_ERROR)

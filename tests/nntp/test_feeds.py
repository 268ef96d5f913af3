"""Outgoing feeds without a network: peer specifications, INN-style patterns, the queue, the
sender's replies, retries and backoff on a fake clock."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core.config import config_from_toml_text
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.nntp import tap
from netproto_twisted.nntp.errors import NNTPConnectionLost, StoreError, reply_error
from netproto_twisted.nntp.feeds import (
    FeedPeer,
    FeedQueue,
    FeedRouter,
    PeerFeed,
    article_path,
    parse_feed,
)
from netproto_twisted.nntp.feeds.queue import create_schema
from netproto_twisted.nntp.interfaces import Article, Incoming, StoreOutcome
from netproto_twisted.nntp.store import NewsDatabase, SQLiteNewsStore
from netproto_twisted.nntp.tap import Config


def text(mid: str, path: str = "us.test!poster", groups: str = "comp.test") -> bytes:
    return (
        f"Path: {path}\r\nFrom: a@b.test\r\nNewsgroups: {groups}\r\nSubject: s\r\n"
        f"Message-ID: {mid}\r\n\r\nbody\r\n"
    ).encode()


class PeerSpecTests(SynchronousTestCase):
    def test_minimal(self) -> None:
        peer = parse_feed("inn=news.example.net")
        self.assertEqual((peer.name, peer.host, peer.port), ("inn", "news.example.net", 119))
        self.assertEqual((peer.mode, peer.groups, peer.identity), ("streaming", ("*",), "inn"))
        self.assertEqual((peer.tls, peer.check), ("none", True))

    def test_options(self) -> None:
        peer = parse_feed(
            "b=[2001:db8::7]:563,tls=implicit,ihave,groups=comp.*,!comp.bin*,@alt.evil,"
            "path=b.example,window=5,retry=2,max-retry=8,max-attempts=3,max-age=60,idle=0,"
            "user=u,password=p,nocheck"
        )
        self.assertEqual((peer.host, peer.port), ("2001:db8::7", 563))
        self.assertEqual((peer.tls, peer.mode), ("implicit", "ihave"))
        self.assertEqual(peer.groups, ("comp.*", "!comp.bin*", "@alt.evil"))
        self.assertEqual((peer.identity, peer.window), ("b.example", 5))
        self.assertEqual((peer.retry, peer.max_retry), (2.0, 8.0))
        self.assertEqual((peer.max_attempts, peer.max_age, peer.idle), (3, 60.0, 0.0))
        self.assertEqual((peer.user, peer.password, peer.check), ("u", "p", False))
        self.assertEqual(parse_feed("a=h:1,tls").tls, "starttls")
        self.assertEqual(parse_feed("a=h:1,groups=x.*,streaming").groups, ("x.*",))

    def test_bad_specifications(self) -> None:
        for spec in ("nohost", "a=", "=h", "a b=h", "a=h:x", "a=::1:119", "a=h,bogus",
                     "a=h,window=0", "a=h,mode=carrier", "a=h,tls=maybe", "a=h,groups=",
                     "a=h,groups=a,,b", "a=h,retry=10,max-retry=5", "a=h,user=u",
                     "a=h,groups=[abc", "a=h,check=perhaps", "a=[::1"):  # fmt: skip
            with self.assertRaises(ValueError, msg=spec):
                parse_feed(spec)

    def test_backoff_doubles_to_the_cap(self) -> None:
        peer = parse_feed("a=h,retry=10,max-retry=45")
        self.assertEqual([peer.delay(n) for n in range(6)], [0.0, 10.0, 20.0, 40.0, 45.0, 45.0])
        self.assertEqual(peer.delay(10_000), 45.0)

    def test_toml_tables(self) -> None:
        sections = config_from_toml_text(
            '[nntp]\n[[nntp.feeds]]\nname = "inn"\nhost = "127.0.0.1"\nport = 1119\n'
            'groups = ["comp.*", "!comp.secret"]\nmode = "ihave"\n',
            {"nntp": Config},
        )
        (peer,) = sections["nntp"].feeds
        self.assertEqual((peer.name, peer.port, peer.mode), ("inn", 1119, "ihave"))
        self.assertTrue(peer.wants(["comp.test"], []))
        self.assertFalse(peer.wants(["comp.secret"], []))
        one = '[[nntp.feeds]]\nname = "a"\nhost = "h"\n'
        twice = "[nntp]\n" + one + one
        with self.assertRaises(ConfigError):
            config_from_toml_text(twice, {"nntp": Config})
        with self.assertRaises(ConfigError):
            config_from_toml_text('[nntp]\n[[nntp.feeds]]\nname = "a"\nhost = "h"\nmode = "x"\n',
                                  {"nntp": Config})  # fmt: skip


class PatternTests(SynchronousTestCase):
    def test_newsfeeds_rules(self) -> None:
        peer = parse_feed("p=h,groups=*,!junk,!control*,comp.*,!comp.secret.*,@alt.binaries.*")
        self.assertTrue(peer.wants(["comp.lang.python"], ["us.test"]))
        self.assertTrue(peer.wants(["misc.test"], []))
        self.assertFalse(peer.wants(["junk"], []))
        self.assertFalse(peer.wants(["control.cancel"], []))
        self.assertFalse(peer.wants(["comp.secret.x"], []))
        # One selected group is enough; a poisoned one stops the article whatever else.
        self.assertTrue(peer.wants(["comp.secret.x", "misc.test"], []))
        self.assertFalse(peer.wants(["misc.test", "alt.binaries.pictures"], []))
        # The last pattern that matches decides.
        narrow = parse_feed("p=h,groups=comp.*,!comp.lang.*,comp.lang.python")
        self.assertTrue(narrow.wants(["comp.lang.python"], []))
        self.assertFalse(narrow.wants(["comp.lang.c"], []))
        self.assertFalse(narrow.wants(["alt.test"], []))

    def test_path_identity(self) -> None:
        peer = parse_feed("p=h,path=peer.example")
        self.assertFalse(peer.wants(["comp.test"], ["us.test", "peer.example", "poster"]))
        self.assertTrue(peer.wants(["comp.test"], ["us.test", "p", "poster"]))
        self.assertFalse(parse_feed("p=h").wants(["comp.test"], ["us.test", "p"]))

    def test_article_path(self) -> None:
        self.assertEqual(article_path(text("<a@b>", "us.test!peer.example!x")),
                         ["us.test", "peer.example", "x"])  # fmt: skip
        folded = b"From: a\r\nPATH: us.test!\r\n peer.example!x\r\n\r\nPath: body!line\r\n"
        self.assertEqual(article_path(folded), ["us.test", "peer.example", "x"])
        self.assertEqual(article_path(b"From: a\r\nX-Path: no\r\n\r\nPath: in!body\r\n"), [])


class RouterTests(SynchronousTestCase):
    def test_rows_for_the_peers_that_want_it(self) -> None:
        path = os.path.join(self.mktemp(), "q.db")
        os.makedirs(os.path.dirname(path))
        db = sqlite3.connect(path, isolation_level=None)
        create_schema(db)
        woken: list[set[str]] = []
        router = FeedRouter(
            [parse_feed("a=h,groups=comp.*"), parse_feed("b=h,groups=alt.*,comp.test,path=b.x")],
            on_committed=woken.append,
        )
        for mid, groups, route in (("<1@x>", ["comp.test"], "us!poster"),
                                   ("<2@x>", ["alt.test"], "us!poster"),
                                   ("<3@x>", ["comp.test"], "us!b.x!poster"),
                                   ("<4@x>", ["misc.test"], "us!poster")):  # fmt: skip
            incoming = Incoming(mid, text(mid, route), groups, (), 5.0)
            router.filed(db, incoming)
        router.committed({"a"})
        router.committed(set())
        self.assertEqual(woken, [{"a"}])
        rows = db.execute("SELECT peer, message_id, queued FROM feed_queue ORDER BY id").fetchall()
        self.assertEqual(rows, [("a", "<1@x>", 5.0), ("b", "<1@x>", 5.0), ("b", "<2@x>", 5.0),
                                ("a", "<3@x>", 5.0)])  # fmt: skip
        db.close()


class FakeProtocol:
    def __init__(self) -> None:
        self.lost = False
        self.waiters: list[defer.Deferred[None]] = []

    def when_closed(self) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        if self.lost:
            d.callback(None)
        else:
            self.waiters.append(d)
        return d

    def lose(self) -> None:
        if not self.lost:
            self.lost = True
            for d in self.waiters:
                d.callback(None)


class FakeClient:
    """Answers from a table: ``codes[(verb, mid)]`` (default: the command succeeds)."""

    def __init__(self, codes: dict[tuple[str, str], int], streams: bool = True) -> None:
        self.codes = codes
        self.streams = streams
        self.protocol = FakeProtocol()
        self.sent: list[tuple[str, str]] = []

    def _answer(self, verb: str, mid: str, ok: int) -> defer.Deferred[Any]:
        if self.protocol.lost:
            return defer.fail(NNTPConnectionLost("closed"))
        self.sent.append((verb, mid))
        code = self.codes.get((verb, mid), ok)
        if code == ok:
            return defer.succeed(True)
        if (verb, code) in (("TAKETHIS", 439), ("CHECK", 438)):
            return defer.succeed(False)
        if (verb, code) == ("CHECK", 431):
            return defer.succeed(None)
        if code == 400:
            self.protocol.lose()
        return defer.fail(reply_error(code, "no"))

    def mode_stream(self) -> defer.Deferred[str]:
        if self.streams:
            return defer.succeed("streaming")
        return defer.fail(reply_error(501, "unknown mode"))

    def check(self, mid: str) -> defer.Deferred[Any]:
        return self._answer("CHECK", mid, 238)

    def takethis(self, mid: str, data: bytes) -> defer.Deferred[Any]:
        return self._answer("TAKETHIS", mid, 239)

    def ihave(self, mid: str, data: bytes) -> defer.Deferred[Any]:
        return self._answer("IHAVE", mid, 235)

    def quit(self) -> defer.Deferred[str]:
        self.protocol.lose()
        return defer.succeed("bye")


class FakeStore:
    def __init__(self) -> None:
        self.missing: set[str] = set()

    def article_by_id(self, mid: str) -> defer.Deferred[Article | None]:
        if mid in self.missing:
            return defer.succeed(None)
        return defer.succeed(Article(mid, 0, text(mid)))


class SenderTests(SynchronousTestCase):
    """A :class:`PeerFeed` on a real queue file, a fake peer and a fake clock."""

    def setUp(self) -> None:
        path = os.path.join(self.mktemp(), "news.db")
        os.makedirs(os.path.dirname(path))
        self.queue = FeedQueue(path)
        self.addCleanup(self.queue.close)
        self.clock = Clock()
        self.clock.advance(1000.0)
        self.store = FakeStore()
        self.refuse = False
        self.connects = 0
        self.codes: dict[tuple[str, str], int] = {}
        self.streams = True
        self.clients: list[FakeClient] = []
        self.events: list[str] = []
        observer = lambda event: self.events.append(formatEvent(event))  # noqa: E731
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def connect(self, peer: FeedPeer) -> defer.Deferred[Any]:
        self.connects += 1
        if self.refuse:
            return defer.fail(ConnectionRefusedError("refused"))
        client = FakeClient(self.codes, self.streams)
        self.clients.append(client)
        return defer.succeed(client)

    def feed(self, spec: str = "p=h,idle=0,nocheck,retry=10,max-retry=40") -> PeerFeed:
        feed = PeerFeed(parse_feed(spec), self.queue, self.store, self.clock, self.connect,
                        defer.maybeDeferred)  # fmt: skip
        self.addCleanup(feed.stop)
        return feed

    def queued(self, *mids: str, peer: str = "p", when: float | None = None) -> None:
        at = self.clock.seconds() if when is None else when
        self.queue.db.executemany(
            "INSERT INTO feed_queue(peer, message_id, queued) VALUES(?,?,?)",
            [(peer, mid, at) for mid in mids],
        )

    def left(self, peer: str = "p") -> list[tuple[str, int, float]]:
        return self.queue.db.execute(
            "SELECT message_id, attempts, next_try FROM feed_queue WHERE peer=? ORDER BY id",
            (peer,),
        ).fetchall()

    def sent(self) -> list[tuple[str, str]]:
        return [s for c in self.clients for s in c.sent]

    def test_streams_in_queue_order_and_removes_what_is_settled(self) -> None:
        self.queued("<1@x>", "<2@x>", "<3@x>", "<4@x>")
        self.codes[("TAKETHIS", "<2@x>")] = 439
        self.store.missing.add("<4@x>")  # expired meanwhile: skipped and removed
        feed = self.feed()
        feed.wake()
        self.assertEqual(self.sent(), [("TAKETHIS", "<1@x>"), ("TAKETHIS", "<2@x>"),
                                       ("TAKETHIS", "<3@x>")])  # fmt: skip
        self.assertEqual(self.left(), [])
        self.assertEqual((feed.counters.accepted, feed.counters.refused), (2, 1))
        self.assertTrue(self.clients[0].protocol.lost)  # QUIT with idle=0
        self.assertFalse(feed.running)

    def test_check_later_retries_then_drops(self) -> None:
        self.queued("<1@x>", "<2@x>", "<3@x>")
        self.codes[("CHECK", "<1@x>")] = 431
        self.codes[("CHECK", "<2@x>")] = 438
        feed = self.feed("p=h,idle=0,retry=10,max-retry=40,max-attempts=3")
        feed.wake()
        self.assertEqual(self.sent(), [("CHECK", "<1@x>"), ("CHECK", "<2@x>"), ("CHECK", "<3@x>"),
                                       ("TAKETHIS", "<3@x>")])  # fmt: skip
        self.assertEqual(self.left(), [("<1@x>", 1, 1010.0)])
        self.clock.advance(9.9)
        self.assertEqual(self.connects, 1)
        self.clock.advance(0.1)
        self.assertEqual((self.connects, self.left()), (2, [("<1@x>", 2, 1030.0)]))
        self.clock.advance(20.0)
        self.assertEqual((self.connects, self.left()), (3, []))
        self.assertEqual(feed.counters.dropped, 1)
        self.assertTrue(any("dropped <1@x> after 3" in e for e in self.events), self.events)
        self.clock.advance(3600.0)
        self.assertEqual(self.connects, 3)  # nothing left: no more sessions

    def test_connection_failures_back_off_exponentially(self) -> None:
        self.queued("<1@x>")
        self.refuse = True
        feed = self.feed()
        feed.wake()
        self.assertEqual((self.connects, feed.failures), (1, 1))
        self.assertTrue(feed.backing_off)
        feed.wake()  # new articles do not cut a backoff short
        self.assertEqual(self.connects, 1)
        for delay, connects in ((10.0, 2), (20.0, 3), (40.0, 4), (40.0, 5)):
            self.clock.advance(delay - 0.01)
            self.assertEqual(self.connects, connects - 1)
            self.clock.advance(0.01)
            self.assertEqual(self.connects, connects)
        self.assertTrue(any("retrying in 40 s" in e for e in self.events), self.events)
        self.refuse = False
        self.clock.advance(40.0)
        self.assertEqual((self.connects, self.left(), feed.failures), (6, [], 0))
        self.assertFalse(feed.backing_off)

    def test_a_4xx_ends_the_session_and_keeps_the_rows(self) -> None:
        self.queued("<1@x>", "<2@x>", "<3@x>")
        self.codes[("TAKETHIS", "<2@x>")] = 400
        feed = self.feed()
        feed.wake()
        self.assertEqual([m for _, m in self.left()[:0]] + [r[0] for r in self.left()],
                         ["<2@x>", "<3@x>"])  # fmt: skip
        self.assertEqual(feed.failures, 1)
        del self.codes[("TAKETHIS", "<2@x>")]
        self.clock.advance(10.0)
        self.assertEqual(self.left(), [])
        self.assertEqual(self.sent()[-2:], [("TAKETHIS", "<2@x>"), ("TAKETHIS", "<3@x>")])

    def test_ihave_when_the_peer_does_not_stream(self) -> None:
        self.streams = False
        self.queued("<1@x>", "<2@x>", "<3@x>", "<4@x>", "<5@x>")
        self.codes.update({("IHAVE", "<2@x>"): 435, ("IHAVE", "<3@x>"): 437,
                           ("IHAVE", "<4@x>"): 436})  # fmt: skip
        feed = self.feed()
        feed.wake()
        self.assertEqual([v for v, _ in self.sent()], ["IHAVE"] * 5)
        self.assertEqual(self.left(), [("<4@x>", 1, 1010.0)])
        self.assertTrue(any("MODE STREAM refused (501)" in e for e in self.events))
        self.codes[("IHAVE", "<4@x>")] = 502  # a permanent refusal of the session: back off
        self.clock.advance(10.0)
        self.assertEqual((self.left()[0][0], feed.failures), ("<4@x>", 1))

    def test_ihave_mode(self) -> None:
        self.queued("<1@x>")
        feed = self.feed("p=h,ihave,idle=0")
        feed.wake()
        self.assertEqual(self.sent(), [("IHAVE", "<1@x>")])

    def test_old_rows_are_dropped_with_a_log_line(self) -> None:
        self.queued("<old@x>", when=0.0)
        self.queued("<new@x>")
        self.refuse = True
        feed = self.feed("p=h,idle=0,max-age=100,retry=10,max-retry=40")
        feed.wake()
        self.assertEqual([r[0] for r in self.left()], ["<new@x>"])
        self.assertTrue(any("dropped 1 articles queued more than 100 s ago" in e
                            for e in self.events))  # fmt: skip
        self.clock.advance(200.0)  # the next attempt drops the other one too: nothing to send
        self.assertEqual(self.left(), [])
        connects = self.connects
        self.refuse = False
        self.clock.advance(100.0)
        self.assertEqual(self.connects, connects)

    def test_idle_connection_takes_new_articles(self) -> None:
        self.queued("<1@x>")
        feed = self.feed("p=h,idle=30,nocheck")
        feed.wake()
        self.assertTrue(feed.running)
        self.clock.advance(10.0)
        self.queued("<2@x>")
        feed.wake()
        self.assertEqual((self.connects, [m for _, m in self.sent()]), (1, ["<1@x>", "<2@x>"]))
        self.clock.advance(29.0)
        self.assertTrue(feed.running)
        self.clock.advance(1.0)
        self.assertFalse(feed.running)
        self.assertTrue(self.clients[0].protocol.lost)

    def test_peer_closing_an_idle_connection_is_no_failure(self) -> None:
        self.queued("<1@x>")
        feed = self.feed("p=h,idle=30,nocheck")
        feed.wake()
        self.clients[0].protocol.lose()
        self.queued("<2@x>")
        feed.wake()
        self.assertEqual(feed.failures, 0)
        self.assertEqual((self.connects, self.left()), (2, []))

    def test_stop_ends_the_session(self) -> None:
        self.queued("<1@x>")
        feed = self.feed("p=h,idle=30,nocheck")
        feed.wake()
        self.assertTrue(feed.running)
        done = feed.stop()
        self.assertIsNone(self.successResultOf(done))
        self.assertFalse(feed.running)
        self.queued("<2@x>")
        feed.wake()
        self.assertEqual(self.connects, 1)

    def test_empty_queue_connects_to_nobody(self) -> None:
        feed = self.feed()
        feed.wake()
        self.assertEqual(self.connects, 0)


class FilingHookTests(TestCase):
    """The store runs the hook in the article's own transaction and reports after the commit."""

    async def test_hook_rows_commit_with_the_article_or_not_at_all(self) -> None:
        path = os.path.join(self.mktemp(), "news.db")
        db = NewsDatabase(path, durable=False)
        db.add_group("comp.test")
        db.close()
        queue = FeedQueue(path)
        self.addCleanup(queue.close)
        woken: list[set[str]] = []
        router = FeedRouter([parse_feed("p=h")], on_committed=woken.append)
        filed = router.filed

        def hook(db: sqlite3.Connection, article: Incoming) -> Any:
            rows = filed(db, article)
            if article.message_id == "<bad@x>":
                raise sqlite3.OperationalError("disk full")
            return rows

        router.filed = hook  # type: ignore[method-assign]
        store = SQLiteNewsStore(reactor, path, path_host="us.test", durable=False,
                                filing_hook=router)  # fmt: skip
        self.addCleanup(store.close)

        def incoming(mid: str) -> Incoming:
            return Incoming(mid, text(mid), ["comp.test"], ("s",) * 7, 1.0)

        good = await store.store(incoming("<good@x>"))
        self.assertEqual(good.outcome, StoreOutcome.STORED)
        with self.assertRaises(StoreError):
            await store.store(incoming("<bad@x>"))
        duplicate = await store.store(incoming("<good@x>"))
        self.assertEqual(duplicate.outcome, StoreOutcome.DUPLICATE)
        self.assertEqual([e.message_id for e in queue.due("p", 0, 10.0, 10)], ["<good@x>"])
        self.assertIsNone(await store.article_by_id("<bad@x>"))  # rolled back with its rows
        self.assertEqual(woken, [{"p"}])


class OptionsTests(SynchronousTestCase):
    def test_feed_and_moderation_options(self) -> None:
        peers = Path(self.mktemp())
        peers.write_text("# peers\n\nc=127.0.0.1:1120,ihave\n")
        options = tap.Options()
        options.parseOptions(["--feed", "a=news.example:119,groups=comp.*,!comp.x", "--feed",
                              "b=[::1]:563,tls=implicit", "--feeds-file", str(peers),
                              "--feed-user", "peer", "--approver", "boss",
                              "--moderation-relay", "smtp.example:25",
                              "--moderation-sender", "news@example.org",
                              "--moderator-pattern", "%s@mod.example"])  # fmt: skip
        config = options.config
        self.assertEqual([p.name for p in config.feeds], ["a", "b", "c"])
        self.assertEqual(config.feeds[0].groups, ("comp.*", "!comp.x"))
        self.assertEqual(config.feeds[2].mode, "ihave")
        self.assertEqual((config.feed_users, config.approvers), (("peer",), ("boss",)))
        self.assertEqual((config.moderation_relay, config.moderation_sender),
                         ("smtp.example:25", "news@example.org"))  # fmt: skip
        self.assertEqual(config.moderator_pattern, "%s@mod.example")
        defaults = tap.Options()
        defaults.parseOptions([])
        self.assertEqual((defaults.config.feeds, defaults.config.feed_users), ((), ("*",)))
        self.assertEqual(defaults.config.moderation_relay, "localhost:2525")

    def test_bad_feed_options(self) -> None:
        bad_file = Path(self.mktemp())
        bad_file.write_text("a=h\nb=h,bogus\n")
        for argv in (["--feed", "nohost"], ["--feed", "a=h", "--feed", "a=i"],
                     ["--feeds-file", str(bad_file)],
                     ["--feeds-file", "/no/such/file"]):  # fmt: skip
            self.assertRaises(usage.UsageError, tap.Options().parseOptions, argv)


DOCS = Path(__file__).resolve().parents[2] / "docs" / "nntp.rst"


def literal_after(text: str, marker: str) -> str:
    """The indented literal block that follows ``marker`` in the docs."""
    rest = text[text.index(marker) + len(marker) :]
    lines = []
    for line in rest.split("\n")[1:]:
        if line and not line.startswith("    "):
            break
        lines.append(line[4:])
    return "\n".join(lines)


class DocsTests(SynchronousTestCase):
    """The configuration and ``--feed`` examples of docs/nntp.rst parse as written."""

    def test_examples_parse(self) -> None:
        text = DOCS.read_text(encoding="utf-8")
        section = literal_after(text, "section::\n")
        config = config_from_toml_text(section, {"nntp": Config})["nntp"]
        self.assertEqual([f.name for f in config.feeds], ["upstream"])
        feed = literal_after(text, "A feed in the configuration file::\n")
        (peer,) = config_from_toml_text("[nntp]\n" + feed, {"nntp": Config})["nntp"].feeds
        self.assertEqual((peer.name, peer.identity), ("inn", "news.example.net"))
        self.assertEqual(peer, parse_feed(
            "inn=news.example.net:119,path=news.example.net,groups=comp.*,!comp.secret.*,"
            "@alt.binaries.*"))  # fmt: skip
        specs = re.findall(r'--feed "([^"]+)"', text)
        self.assertEqual(len(specs), 2)
        for spec in specs:
            parse_feed(spec)


class StopWhileConnectingTests(SynchronousTestCase):
    def test_stop_cancels_a_connection_attempt(self) -> None:
        path = os.path.join(self.mktemp(), "news.db")
        os.makedirs(os.path.dirname(path))
        queue = FeedQueue(path)
        self.addCleanup(queue.close)
        queue.db.execute("INSERT INTO feed_queue(peer, message_id, queued) VALUES('p','<1@x>',0)")
        attempts: list[defer.Deferred[Any]] = []

        def connect(peer: FeedPeer) -> defer.Deferred[Any]:
            attempts.append(defer.Deferred())
            return attempts[-1]

        clock = Clock()
        feed = PeerFeed(parse_feed("p=h"), queue, FakeStore(), clock, connect,
                        defer.maybeDeferred)  # fmt: skip
        feed.wake()
        self.assertTrue(feed.running)
        stopped = feed.stop()
        self.assertIsNone(self.successResultOf(stopped))
        self.assertTrue(attempts[0].called)  # cancelled (its failure went to the session)
        self.assertEqual(queue.count("p"), 1)
        self.assertEqual(clock.getDelayedCalls(), [])

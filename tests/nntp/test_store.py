"""The SQLite article store: filing, overview, history, expiry, group commit, admin CLI."""

from __future__ import annotations

import contextlib
import io
import os

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from netproto_twisted import cli
from netproto_twisted.nntp.errors import NoSuchGroup, StoreError
from netproto_twisted.nntp.interfaces import History, Incoming, StoreOutcome
from netproto_twisted.nntp.store import NewsDatabase, SQLiteNewsStore


def incoming(n: int, groups: tuple[str, ...] = ("a.test",), arrived: float = 1000.0) -> Incoming:
    mid = f"<{n}@test>"
    data = f"Subject: s{n}\r\nMessage-ID: {mid}\r\n\r\nbody {n}\r\n".encode()
    return Incoming(mid, data, groups, [f"s{n}", "me", "date", mid, "", str(len(data)), "1"],
                    arrived)  # fmt: skip


class StoreTests(TestCase):
    def setUp(self) -> None:
        self.path = os.path.join(self.mktemp(), "news.db")
        db = NewsDatabase(self.path)
        db.add_group("a.test", description="group A", now=500.0)
        db.add_group("b.test", status="n", now=1500.0)
        db.close()
        self.store = SQLiteNewsStore(reactor, self.path, path_host="news.test")
        self.addCleanup(self.store.close)

    async def test_file_and_read(self) -> None:
        result = await self.store.store(incoming(1, ("a.test", "b.test", "nope.test")))
        self.assertEqual(result.outcome, StoreOutcome.STORED)
        self.assertEqual(list(result.numbers), [("a.test", 1), ("b.test", 1)])
        article = await self.store.article("b.test", 1)
        assert article is not None
        self.assertEqual(article.message_id, "<1@test>")
        self.assertIn(b"body 1", article.data)
        self.assertIsNotNone(await self.store.article_by_id("<1@test>"))
        self.assertIsNone(await self.store.article_by_id("<2@test>"))
        group = await self.store.group("a.test")
        assert group is not None
        self.assertEqual((group.low, group.high, group.count), (1, 1, 1))
        self.assertEqual(await self.store.history("<1@test>"), History.STORED)
        values = await self.store.header_values("a.test", 1, None, "Xref", 10)
        self.assertEqual(values, [(1, "news.test a.test:1 b.test:1")])
        values = await self.store.header_values("a.test", 1, None, "Message-ID", 10)
        self.assertEqual(values, [(1, "<1@test>")])
        self.assertEqual(await self.store.new_news(999.0), [("<1@test>", ["a.test", "b.test"])])
        self.assertEqual([g.name for g in await self.store.new_groups(1000.0)], ["b.test"])

    async def test_duplicates_and_unwanted(self) -> None:
        first = self.store.store(incoming(1))
        again = self.store.store(incoming(1))  # offered while the first is in flight
        self.assertEqual((await again).outcome, StoreOutcome.DUPLICATE)
        self.assertEqual((await first).outcome, StoreOutcome.STORED)
        self.assertEqual((await self.store.store(incoming(1))).outcome, StoreOutcome.DUPLICATE)
        unwanted = await self.store.store(incoming(2, ("x.test",)))
        self.assertEqual(unwanted.outcome, StoreOutcome.NO_GROUPS)
        self.assertEqual(await self.store.history("<2@test>"), History.UNKNOWN)

    async def test_group_commit_many_in_flight(self) -> None:
        results = await defer.gatherResults([self.store.store(incoming(i)) for i in range(300)])
        numbers = sorted(r.numbers[0][1] for r in results)
        self.assertEqual(numbers, list(range(1, 301)))
        # Acknowledged means committed: another connection sees every one.
        db = NewsDatabase(self.path)
        self.addCleanup(db.close)
        self.assertEqual(db.numbers("a.test", 1, None), list(range(1, 301)))
        self.assertEqual(db.neighbour("a.test", 5, True), 6)
        self.assertEqual(db.neighbour("a.test", 1, False), None)

    async def test_overview_cursor_reads_in_blocks(self) -> None:
        await defer.gatherResults([self.store.store(incoming(i)) for i in range(50)])
        cursor = self.store.open_overview("a.test", 10, 40)
        blocks = []
        while True:
            data = cursor.read(300)
            if not data:
                break
            blocks.append(data)
        cursor.close()
        lines = b"".join(blocks).split(b"\r\n")[:-1]
        self.assertEqual([int(line.split(b"\t")[0]) for line in lines], list(range(10, 41)))
        self.assertGreater(len(blocks), 3)
        self.assertTrue(all(line.count(b"\t") == 8 for line in lines))

    async def test_expiry_remembers_ids(self) -> None:
        await self.store.store(incoming(1, arrived=1000.0))
        await self.store.store(incoming(2, arrived=1000.0 + 5 * 86400))
        db = NewsDatabase(self.path)
        self.addCleanup(db.close)
        db.add_group("a.test", expire_days=3)
        self.assertEqual(db.expire(now=1000.0 + 6 * 86400), 1)
        self.assertEqual(db.numbers("a.test", 1, None), [2])
        info = db.group("a.test")
        assert info is not None
        self.assertEqual((info.low, info.high, info.count), (2, 2, 1))
        self.assertEqual(await self.store.history("<1@test>"), History.EXPIRED)
        again = await self.store.store(incoming(1, arrived=2000.0))
        self.assertEqual(again.outcome, StoreOutcome.DUPLICATE)
        # History of expired ids is forgotten after history_days.
        db.expire(now=1000.0 + 30 * 86400, history_days=10)
        self.assertEqual(db.history("<1@test>"), History.UNKNOWN)

    async def test_remove_group(self) -> None:
        await self.store.store(incoming(1, ("a.test", "b.test")))
        await self.store.store(incoming(2, ("b.test",)))
        db = NewsDatabase(self.path)
        self.addCleanup(db.close)
        self.assertEqual(db.remove_group("b.test"), 1)
        self.assertIsNone(db.article_by_id("<2@test>"))
        self.assertIsNotNone(db.article_by_id("<1@test>"))
        self.assertRaises(NoSuchGroup, db.remove_group, "b.test")

    async def test_closed_store_refuses(self) -> None:
        await self.store.close()
        with self.assertRaises(StoreError):
            await self.store.store(incoming(1))

    def test_bad_group_names(self) -> None:
        db = NewsDatabase(self.path)
        self.addCleanup(db.close)
        for name in ("", "a b", "a,b", "a*"):
            self.assertRaises(StoreError, db.add_group, name)
        for status in ("q", "=", "=a b", "yy", ""):
            self.assertRaises(StoreError, db.add_group, "ok.name", status=status)
        for status in ("y", "n", "m", "x", "j", "=comp.other"):
            db.add_group(f"ok.{status.strip('=').replace('.', '-')}", status=status)


class AdminTests(TestCase):
    def run_cli(self, *argv: str) -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            status = cli.main(list(argv))
        return status, out.getvalue()

    def test_group_add_list_remove(self) -> None:
        path = os.path.join(self.mktemp(), "news.db")
        self.assertEqual(self.run_cli("news", "group", "add", "--db", path, "--description",
                                      "Tests", "comp.test")[0], 0)  # fmt: skip
        self.assertEqual(self.run_cli("news", "group", "add", "--db", path, "--status", "m",
                                      "comp.mod")[0], 0)  # fmt: skip
        status, listing = self.run_cli("news", "group", "list", "--db", path)
        self.assertEqual(status, 0)
        self.assertEqual(listing, "comp.mod 0 1 m 0 \ncomp.test 0 1 y 0 Tests\n")
        self.assertEqual(self.run_cli("news", "group", "remove", "--db", path, "comp.mod")[0], 0)
        self.assertEqual(self.run_cli("news", "group", "remove", "--db", path, "comp.mod")[0],
                         cli.EXIT_ERROR)  # fmt: skip
        self.assertEqual(self.run_cli("news", "group", "add", "--db", path, "bad name")[0],
                         cli.EXIT_ERROR)  # fmt: skip
        self.assertEqual(self.run_cli("news", "expire", "--db", path)[1], "expired 0 articles\n")

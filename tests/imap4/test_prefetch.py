"""Reading a folder ahead (imap4.server.readahead / prefetch): same bytes, bounded, optional.

The worker side is tested in process (it is plain blocking code); the
:class:`Prefetcher` with a pool double whose tasks the test runs or fails
when it wants, so the interleaving of a FETCH and the chunks is exact.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.passwords import PasswordFile
from netproto_twisted.core.procpool import PoolUnavailable, Withdrawn
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.imap4.server import mime, prefetch
from netproto_twisted.imap4.server.fetch import FetchEntry, MessageCache, fetch_pieces
from netproto_twisted.imap4.server.notify import ChangeHub
from netproto_twisted.imap4.server.prefetch import Prefetcher
from netproto_twisted.imap4.server.protocol import IMAPServerFactory, IMAPServerProtocol
from netproto_twisted.imap4.server.readahead import MAX_HEADER, list_messages, read_heads
from netproto_twisted.imap4.server.settings import IMAPSettings
from netproto_twisted.imap4.wire.fetchspec import FetchAtt
from netproto_twisted.mailstore.folder import MaildirFolder, MessageInfo
from netproto_twisted.mailstore.fsops import FsOps
from netproto_twisted.mailstore.maildir import MaildirStore
from tests.mailstore.helpers import sync_runner

_ATTS = [FetchAtt("FLAGS"), FetchAtt("RFC822.SIZE"), FetchAtt("ENVELOPE")]


def _at(base: str) -> list[FetchEntry]:
    """A FETCH batch whose first message has this base."""
    info = MessageInfo(1, base, base + ":2,", "cur", 10, frozenset(), 0.0)
    return [FetchEntry(1, info)]


class ManualPool:
    """A :class:`ProcessPool` double: tasks wait until the test runs or fails them.

    The first task waiting counts as started (a worker has it): it cannot be withdrawn.
    """

    def __init__(self) -> None:
        self.available = True
        self.tasks: list[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]] = []

    def withdraw(self, d: Deferred[Any]) -> bool:
        for n, task in enumerate(self.tasks):
            if task[2] is d:
                if n == 0:
                    return False
                del self.tasks[n]
                d.errback(Withdrawn())
                return True
        return False

    def run(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.tasks.append((f, args, d))
        return d

    def run_next(self) -> None:
        f, args, d = self.tasks.pop(0)
        maybeDeferred(f, *args).chainDeferred(d)

    def fail_next(self, error: Exception) -> None:
        self.tasks.pop(0)[2].errback(error)

    def run_all(self) -> None:
        while self.tasks:
            self.run_next()


def _message(n: int, crlf: bool = False) -> bytes:
    text = (
        f"From: Sender {n % 3} <s{n % 3}@example.net>\n"
        f"To: a@example.org,\n b{n}@example.org\n"
        f"Subject: message {n}\n"
        f"Message-ID: <{n}@example.net>\n\nbody {n}\nmore\n"
    ).encode()
    return text.replace(b"\n", b"\r\n") if crlf else text


class Folder:
    """A Maildir folder on disk that a test fills."""

    def __init__(self, path: str) -> None:
        self.path = path
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(path, sub), exist_ok=True)
        self.count = 0

    def put(
        self, content: bytes, subdir: str = "cur", sizes: str = "both", info: str = ":2,S"
    ) -> str:
        self.count += 1
        n = self.count
        virtual = len(content) + content.count(b"\n") - content.count(b"\r\n")
        fields = {
            "both": f",S={len(content)},W={virtual}",
            "s": f",S={len(content)}",
            "none": "",
        }[sizes]
        name = f"{1_700_000_000 + n}.M{n}P1.host{fields}" + (info if subdir == "cur" else "")
        with open(os.path.join(self.path, subdir, name), "wb") as f:
            f.write(content)
        return name


def _fetch_lines(folder: MaildirFolder, cache: MessageCache) -> bytes:
    snapshot = folder.sync(move_new=False)
    entries = [FetchEntry(n, m) for n, m in enumerate(snapshot.messages, 1)]
    pieces, count = fetch_pieces(folder, entries, _ATTS, cache, False)
    assert count == len(entries)
    return b"".join(p for p in pieces if isinstance(p, bytes))


class ReadAheadTests(SynchronousTestCase):
    """The worker's functions give what the FETCH path would compute."""

    def setUp(self) -> None:
        self.folder = Folder(os.path.abspath(self.mktemp()))
        self.maildir = MaildirFolder(self.folder.path, FsOps(fsync=False))

    def test_same_as_the_fetch_path(self) -> None:
        put = self.folder.put
        put(_message(1))
        put(_message(2, crlf=True))
        put(_message(3), sizes="s")
        put(_message(4), sizes="none")
        put(b"Subject: no body and no blank line\nFrom: x@y.z\n")
        put(b"\nbody only\n")
        put(b"Subject: a\n folded\n  line\nFrom: \"Q, R\" <q@r.s>\n\nbody\n", subdir="new")
        put(b"Subject: " + b"x" * 20000 + b"\n\n" + b"y" * 40000)
        snapshot = self.maildir.sync(move_new=False)
        expected = {}
        for info in snapshot.messages:
            header, size = self.maildir.read_head(info)
            envelope = mime.envelope_bytes(mime.parse_headers(header))
            expected[info.base] = (size, header, envelope)
        files = list_messages(self.folder.path)
        got = {base: (size, header, env) for base, size, header, env in read_heads(
            self.folder.path, files
        )}  # fmt: skip
        self.assertEqual(got, expected)
        self.assertEqual(len(got), 8)

    def test_listing_in_arrival_order_regular_files_only(self) -> None:
        names = [self.folder.put(_message(n)) for n in range(3)]
        newer = self.folder.put(_message(3), subdir="new")
        # The same base in new/ and cur/: cur/ wins, as in the folder's scan.
        base = names[1].partition(":")[0]
        with open(os.path.join(self.folder.path, "new", base), "wb") as f:
            f.write(b"Subject: stale copy\n\n")
        os.symlink("/etc/passwd", os.path.join(self.folder.path, "cur", "1800000000.M9P1.h"))
        os.mkdir(os.path.join(self.folder.path, "cur", "1800000001.M9P1.dir"))
        Path(self.folder.path, "cur", ".hidden").write_bytes(b"Subject: x\n\n")
        Path(self.folder.path, "cur", "1800000002.M1P1.h\nx").write_bytes(b"Subject: x\n\n")
        self.assertEqual(
            list_messages(self.folder.path),
            [("cur", names[0]), ("cur", names[1]), ("cur", names[2]), ("new", newer)],
        )

    def test_missing_folder_lists_nothing(self) -> None:
        self.assertEqual(list_messages(os.path.join(self.folder.path, "nope")), [])

    def test_file_moved_since_the_listing_is_found(self) -> None:
        name = self.folder.put(_message(1), subdir="new")
        files = list_messages(self.folder.path)
        os.rename(
            os.path.join(self.folder.path, "new", name),
            os.path.join(self.folder.path, "cur", name + ":2,S"),
        )
        [(base, _size, header, _envelope)] = read_heads(self.folder.path, files)
        self.assertEqual(base, name)
        self.assertIn(b"Subject: message 1\r\n", header)

    def test_skips_what_it_must_not_read(self) -> None:
        path = self.folder.path
        gone = self.folder.put(_message(1))
        os.unlink(os.path.join(path, "cur", gone))
        os.symlink(os.path.join(path, "cur", "target"), os.path.join(path, "cur", "link"))
        Path(path, "cur", "target").write_bytes(b"Subject: secret\n\n")
        os.mkfifo(os.path.join(path, "cur", "fifo"))  # opening it must not block
        huge = self.folder.put(b"Subject: " + b"x" * MAX_HEADER + b"\n\nbody\n")
        ok = self.folder.put(_message(2))
        files = [("cur", gone), ("cur", "link"), ("cur", "fifo"), ("cur", huge), ("cur", ok)]
        self.assertEqual([r[0] for r in read_heads(path, files)], [ok.partition(":")[0]])


class PrefetcherTests(SynchronousTestCase):
    """Read-ahead through a pool: chunks into the cache, once, bounded, failures harmless."""

    def setUp(self) -> None:
        self.folder = Folder(os.path.abspath(self.mktemp()))
        self.maildir = MaildirFolder(self.folder.path, FsOps(fsync=False))
        self.pool = ManualPool()
        self.cache = MessageCache()
        self.clock = MemoryReactorClock()
        self.prefetcher = Prefetcher(self.pool, self.cache, self.clock)  # type: ignore[arg-type]
        self.patch(prefetch, "MIN_PREFETCH", 3)
        self.patch(prefetch, "CHUNK", 2)
        for n in range(5):
            self.folder.put(_message(n))

    def test_fills_the_cache_with_what_the_fetch_would_read(self) -> None:
        self.prefetcher.folder_opened(self.folder.path)
        self.pool.run_all()
        cold = _fetch_lines(self.maildir, MessageCache())
        # Every message is in the cache: the FETCH reads no file.
        for name in os.listdir(os.path.join(self.folder.path, "cur")):
            os.chmod(os.path.join(self.folder.path, "cur", name), 0)
        self.addCleanup(self._readable)
        if os.getuid() == 0:  # root reads anyway: check the entries instead
            self.assertEqual(len(self.cache._entries), 5)
        self.assertEqual(_fetch_lines(self.maildir, self.cache), cold)
        self.assertTrue(self.cache.prefetched(self.folder.path))

    def _readable(self) -> None:
        for name in os.listdir(os.path.join(self.folder.path, "cur")):
            os.chmod(os.path.join(self.folder.path, "cur", name), 0o600)

    def test_in_chunks_in_arrival_order(self) -> None:
        self.prefetcher.folder_opened(self.folder.path)
        self.pool.run_next()  # the listing
        self.assertEqual([len(args[1]) for _f, args, _d in self.pool.tasks], [2, 2, 1])
        self.pool.run_next()
        self.assertEqual(len(self.cache._entries), 2)

    def test_once_per_folder(self) -> None:
        self.prefetcher.folder_opened(self.folder.path)
        self.prefetcher.folder_opened(self.folder.path)  # in flight: not again
        self.assertEqual(len(self.pool.tasks), 1)
        self.pool.run_all()
        self.prefetcher.folder_opened(self.folder.path)  # done: not again
        self.assertEqual(self.pool.tasks, [])

    def test_at_most_max_prefetch_messages(self) -> None:
        self.patch(prefetch, "MAX_PREFETCH", 3)
        self.prefetcher.folder_opened(self.folder.path)
        self.pool.run_next()  # the listing
        self.assertEqual([len(args[1]) for _f, args, _d in self.pool.tasks], [2, 1])
        self.pool.run_all()
        self.assertEqual(len(self.cache._entries), 3)

    def test_small_or_cached_folder_not_read_ahead(self) -> None:
        self.patch(prefetch, "MIN_PREFETCH", 6)
        self.prefetcher.folder_opened(self.folder.path)
        self.pool.run_all()
        self.assertEqual(self.cache._entries, {})
        self.assertTrue(self.cache.prefetched(self.folder.path))

    def test_unavailable_pool_not_used(self) -> None:
        self.pool.available = False
        self.prefetcher.folder_opened(self.folder.path)
        self.assertEqual(self.pool.tasks, [])

    def test_a_fetch_waits_for_a_started_chunk_and_takes_back_the_others(self) -> None:
        self.prefetcher.folder_opened(self.folder.path)
        files = list_messages(self.folder.path)
        self.assertIsNone(self.prefetcher.wait_for(self.folder.path, _at("x")))  # listing
        self.pool.run_next()
        bases = [name.partition(":")[0] for _subdir, name in files]
        first = self.prefetcher.wait_for(self.folder.path, _at(bases[0]))  # started
        assert first is not None
        self.assertIsNone(self.prefetcher.wait_for(self.folder.path, _at("not-in-any-chunk")))
        # The last chunk was not started: taken back, the FETCH reads it.
        self.assertIsNone(self.prefetcher.wait_for(self.folder.path, _at(bases[4])))
        self.assertEqual(len(self.pool.tasks), 2)
        self.pool.run_next()
        self.successResultOf(first)
        self.assertIsNone(self.prefetcher.wait_for(self.folder.path, _at(bases[0])))
        second = self.prefetcher.wait_for(self.folder.path, _at(bases[2]))  # now started
        assert second is not None
        self.pool.run_all()
        self.successResultOf(second)
        self.assertEqual(len(self.cache._entries), 4)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_a_slow_worker_is_not_waited_for_long(self) -> None:
        self.prefetcher.folder_opened(self.folder.path)
        self.pool.run_next()
        base = list_messages(self.folder.path)[2][1].partition(":")[0]
        self.clock.advance(prefetch.PATIENCE - 0.1)
        self.pool.run_next()  # the first chunk lands: patience starts again; the second starts
        waiting = self.prefetcher.wait_for(self.folder.path, _at(base))
        assert waiting is not None
        self.clock.advance(prefetch.PATIENCE - 0.1)
        self.assertNoResult(waiting)
        self.clock.advance(0.1)
        self.successResultOf(waiting)
        self.assertIsNone(self.prefetcher.wait_for(self.folder.path, _at(base)))
        self.pool.run_all()  # landing late is harmless
        self.assertEqual(len(self.cache._entries), 5)

    def test_failures_only_mean_no_read_ahead(self) -> None:
        self.prefetcher.folder_opened(self.folder.path)
        self.pool.run_next()
        self.pool.fail_next(PoolUnavailable("a worker died"))  # quietly
        self.pool.fail_next(OSError("unexpected"))  # logged
        self.pool.run_next()
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertEqual(len(self.cache._entries), 1)
        self.assertIsNone(self.prefetcher.wait_for(self.folder.path, _at("anything")))
        self.assertEqual(len(_fetch_lines(self.maildir, self.cache).splitlines()), 5)

    def test_listing_failure(self) -> None:
        self.prefetcher.folder_opened(self.folder.path)
        self.pool.fail_next(PoolUnavailable("stopped"))
        self.assertFalse(self.cache.prefetched(self.folder.path))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_full_cache_not_filled(self) -> None:
        self.cache.max_entries = 2
        self.prefetcher.folder_opened(self.folder.path)
        self.pool.run_all()  # chunks of 2, 2 and 1: the first fills it, the others would not fit
        self.assertEqual(len(self.cache._entries), 2)
        self.assertTrue(self.cache.prefetched(self.folder.path))


class SessionTests(SynchronousTestCase):
    """A session's SELECT starts the read-ahead; its FETCH waits for chunks in flight."""

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        self.folder = Folder(os.path.join(self.dir, "mail", "alice"))
        for n in range(7):
            self.folder.put(_message(n))
        users = PasswordFile(Path(self.dir) / "users", iterations=4096)
        users.add("alice", "pw")
        self.clock = MemoryReactorClock()
        self.patch(prefetch, "MIN_PREFETCH", 3)
        self.patch(prefetch, "CHUNK", 2)
        self.users = users

    def session(self, pool: ManualPool | None) -> tuple[IMAPServerProtocol, StringTransport]:
        store = MaildirStore(
            os.path.join(self.dir, "mail"), fs=FsOps(fsync=False), runner=sync_runner,
            sync="file",
        )  # fmt: skip
        auth = Authenticator.for_password_file(
            self.users, sync_runner, LoginDelay(self.clock), allow_insecure=True
        )
        cache = MessageCache()
        factory = IMAPServerFactory(
            self.clock, store, auth, IMAPSettings(allow_insecure_auth=True, fetch_batch=2),
            hub=ChangeHub(self.clock, watch_files=False), cache=cache,
            prefetcher=Prefetcher(pool, cache, self.clock) if pool else None,  # type: ignore[arg-type]
        )  # fmt: skip
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4321))
        assert isinstance(proto, IMAPServerProtocol)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 4321))
        proto.makeConnection(transport)
        self.addCleanup(proto.connectionLost, None)  # type: ignore[arg-type]
        proto.dataReceived(b"a LOGIN alice pw\r\nb SELECT INBOX\r\n")
        self.assertIn(b"b OK [READ-WRITE]", transport.value())
        transport.clear()
        return proto, transport

    def fetch(self, proto: IMAPServerProtocol) -> None:
        proto.dataReceived(b"c FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE)\r\n")

    def test_fetch_waits_for_the_chunks_and_answers_the_same(self) -> None:
        proto, transport = self.session(None)
        self.fetch(proto)
        without = transport.value()
        self.assertIn(b"c OK", without)
        pool = ManualPool()
        proto, transport = self.session(pool)
        pool.run_next()  # the listing; four chunks wait
        self.fetch(proto)
        self.assertEqual(transport.value(), b"")  # its first message is in a chunk in flight
        pool.run_next()  # messages 1 and 2 land: their batch goes, the next one waits
        self.assertIn(b"* 2 FETCH", transport.value())
        self.assertNotIn(b"* 3 FETCH", transport.value())
        pool.run_all()
        self.assertEqual(
            hashlib.sha256(transport.value()).hexdigest(), hashlib.sha256(without).hexdigest()
        )

    def test_fetch_does_not_wait_for_a_failed_worker(self) -> None:
        pool = ManualPool()
        proto, transport = self.session(pool)
        pool.run_next()
        self.fetch(proto)
        while pool.tasks:
            pool.fail_next(PoolUnavailable("a worker died"))
        self.assertIn(b"c OK", transport.value())
        self.assertEqual(transport.value().count(b"ENVELOPE"), 7)

    def test_fetch_does_not_wait_for_a_slow_worker(self) -> None:
        pool = ManualPool()
        proto, transport = self.session(pool)
        pool.run_next()
        self.fetch(proto)
        self.clock.advance(prefetch.PATIENCE)
        self.assertIn(b"c OK", transport.value())
        pool.run_all()


"""Deliveries through the real group committer (a thread, syncfs or fsync rounds)."""

from __future__ import annotations

import os
from typing import cast

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import TestCase

from netproto_twisted.core.durable import GroupCommitter, syncfs_supported
from netproto_twisted.mailstore import MaildirStore
from netproto_twisted.mailstore.filenames import SEEN

from .helpers import RecordingFs


class GroupCommitDeliveryTests(TestCase):
    timeout = 60

    def store(self, mode: str) -> tuple[MaildirStore, RecordingFs, str]:
        pool = ThreadPool(minthreads=0, maxthreads=2)
        pool.start()
        self.addCleanup(pool.stop)
        base = os.path.abspath(self.mktemp())
        fs = RecordingFs()
        store = MaildirStore(base, cast(IReactorFromThreads, reactor), pool, fs=fs, sync=mode)
        assert isinstance(store.committer, GroupCommitter)
        self.addCleanup(store.committer.stop)
        return store, fs, base

    async def _many(self, mode: str) -> None:
        store, fs, base = self.store(mode)
        writers = []
        for i in range(40):
            writer = store.deliver_all(["alice", "bob"] if i % 2 else ["alice"])
            writer.write(b"Subject: %d\r\n\r\n" % i + b"x" * (i * 3000))  # some pass 64 KiB
            writers.append(writer)
        names = await gatherResults([Deferred.fromCoroutine(_commit(w)) for w in writers])
        self.assertEqual(len(set(names)), 40)
        alice = sorted(os.listdir(os.path.join(base, "alice", "new")))
        bob = sorted(os.listdir(os.path.join(base, "bob", "new")))
        self.assertEqual(alice, sorted(names))
        self.assertEqual(bob, sorted(names[1::2]))
        for i, name in enumerate(names):
            with open(os.path.join(base, "alice", "new", name), "rb") as f:
                self.assertEqual(f.read(), b"Subject: %d\n\n" % i + b"x" * (i * 3000))
        for user in ("alice", "bob"):
            self.assertEqual(os.listdir(os.path.join(base, user, "tmp")), [])
        committer = store.committer
        assert isinstance(committer, GroupCommitter)
        self.assertEqual(committer.committed, 40)
        self.assertLess(committer.rounds, 40)  # many messages shared each round's syncs
        kinds = [kind for kind, _ in fs.events]
        if mode == "fs":
            self.assertNotIn("fsync", kinds)  # no per-file fsync: syncfs covers them
        else:
            self.assertEqual(kinds.count("fsync"), 40)

    async def test_fs_mode(self) -> None:
        if not syncfs_supported():
            self.skipTest("syncfs needs Linux 5.8 or later")
        await self._many("fs")

    async def test_file_mode(self) -> None:
        await self._many("file")

    async def test_append_through_the_committer(self) -> None:
        store, _, _ = self.store("auto")
        await store.create_folder("carol", "INBOX")
        box = await store.open_mailbox("carol")
        writer = box.append([SEEN], internal_date=1_000_000_000.0)
        writer.write(b"appended")
        appended = await writer.commit()
        self.assertEqual(appended.uid, 1)
        messages = await box.refresh()
        self.assertEqual([m.flags for m in messages], [{SEEN}])
        self.assertEqual(messages[0].internal_date, 1_000_000_000.0)


async def _commit(writer: object) -> str:
    name: str = await writer.commit()  # type: ignore[attr-defined]
    return name

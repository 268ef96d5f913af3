"""MaildirStore's Deferred API on a real thread pool: the flow a POP3/IMAP server uses."""

from __future__ import annotations

import os
from typing import cast

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.testing import MemoryReactor
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from netproto_twisted.mailstore import (
    DELETED,
    SEEN,
    FlagMode,
    IAppendWriter,
    IDeliveryTarget,
    IMailbox,
    IMailStore,
    IMessageWriter,
    InvalidName,
    MailboxExists,
    MaildirStore,
    MailStoreError,
    NoSuchMailbox,
    NoSuchMessage,
)
from netproto_twisted.mailstore.fsops import FsOps

from .helpers import sync_runner


class ThreadPoolTests(TestCase):
    def setUp(self) -> None:
        self.pool = ThreadPool(minthreads=0, maxthreads=4)
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.base = os.path.abspath(self.mktemp())
        self.store = MaildirStore(self.base, cast(IReactorFromThreads, reactor), self.pool)

    async def _deliver(self, user: str, body: bytes, folder: str = "INBOX") -> str:
        writer = self.store.deliver(user, folder)
        writer.write(body)
        return await writer.commit()

    def test_interfaces(self) -> None:
        self.assertTrue(verifyObject(IMailStore, self.store))
        self.assertTrue(verifyObject(IDeliveryTarget, self.store))
        writer = self.store.deliver("alice")
        self.assertTrue(verifyObject(IMessageWriter, writer))
        writer.abort()

    async def test_deliver_open_flag_expunge(self) -> None:
        self.assertFalse(await self.store.user_exists("alice"))
        names = await gatherResults(
            [Deferred.fromCoroutine(self._deliver("alice", b"message %d\r\n" % i))
             for i in range(20)]
        )
        self.assertEqual(len(set(names)), 20)
        self.assertTrue(await self.store.user_exists("alice"))
        box = await self.store.open_mailbox("alice")
        self.assertTrue(verifyObject(IMailbox, box))
        self.assertEqual([m.uid for m in box.messages], list(range(1, 21)))
        self.assertTrue(all(m.recent for m in box.messages))
        with await box.open_message(3) as f:
            self.assertTrue(f.read().startswith(b"message "))
        updated = await box.store_flags([1, 2], [SEEN, DELETED], FlagMode.ADD)
        self.assertEqual([m.flags for m in updated], [{SEEN, DELETED}] * 2)
        self.assertEqual(box.get(1).flags, {SEEN, DELETED})
        self.assertEqual(await box.expunge(), [1, 2])
        self.assertRaises(NoSuchMessage, box.get, 1)
        await self._deliver("alice", b"late\r\n")
        messages = await box.refresh()
        self.assertEqual([m.uid for m in messages][-1], 21)
        self.assertEqual(len(messages), 19)
        self.assertEqual(box.uid_next, 22)
        writer = box.append([SEEN])
        self.assertTrue(verifyObject(IAppendWriter, writer))
        writer.write(b"appended\r\n")
        appended = await writer.commit()
        self.assertEqual(appended.uid, 22)

    async def test_pop3_style_open_keeps_new(self) -> None:
        await self._deliver("carol", b"hello\r\n")
        box = await self.store.open_mailbox("carol", move_new=False)
        self.assertEqual([m.subdir for m in box.messages], ["new"])
        again = await self.store.open_mailbox("carol", move_new=False)
        self.assertEqual([m.uid for m in again.messages], [1])

    async def test_folders_and_subscriptions(self) -> None:
        await self.store.create_folder("dave", "Sent")
        await self.store.create_folder("dave", "Archive.2024")
        await self.store.create_folder("dave", "Archive")
        with self.assertRaises(MailboxExists):
            await self.store.create_folder("dave", "Sent")
        self.assertTrue(os.path.isfile(os.path.join(self.base, "dave", ".Sent", "maildirfolder")))
        await self._deliver("dave", b"sent copy\r\n", "Sent")
        box = await self.store.open_mailbox("dave", "Sent")
        self.assertEqual(len(box.messages), 1)
        self.assertEqual(await self.store.list_folders("dave"),
                         ["INBOX", "Archive", "Archive.2024", "Sent"])
        await self.store.rename_folder("dave", "Archive", "Old")
        self.assertEqual(await self.store.list_folders("dave"),
                         ["INBOX", "Old", "Old.2024", "Sent"])
        await self.store.delete_folder("dave", "Old")
        self.assertEqual(await self.store.list_folders("dave"), ["INBOX", "Old.2024", "Sent"])
        self.assertEqual(sorted(os.listdir(os.path.join(self.base, "dave"))),
                         [".Old.2024", ".Sent", "cur", "new", "tmp"])
        with self.assertRaises(NoSuchMailbox):
            await self.store.open_mailbox("dave", "Old")
        with self.assertRaises(NoSuchMailbox):
            await self.store.delete_folder("dave", "Old")
        with self.assertRaises(MailStoreError):
            await self.store.delete_folder("dave", "inbox")
        with self.assertRaises(MailStoreError):
            await self.store.rename_folder("dave", "INBOX", "X")
        with self.assertRaises(MailboxExists):
            await self.store.rename_folder("dave", "Sent", "Old.2024")
        await self.store.subscribe("dave", "Sent")
        await self.store.subscribe("dave", "Entwürfe")
        await self.store.subscribe("dave", "Sent")
        self.assertEqual(await self.store.subscriptions("dave"), ["Sent", "Entwürfe"])
        with open(os.path.join(self.base, "dave", "subscriptions"), "rb") as f:
            self.assertEqual(f.read(), b"Sent\nEntw&APw-rfe\n")
        await self.store.unsubscribe("dave", "Sent")
        self.assertEqual(await self.store.subscriptions("dave"), ["Entwürfe"])

    async def test_traversal_refused_everywhere(self) -> None:
        for call in (
            lambda: self.store.open_mailbox("../etc"),
            lambda: self.store.open_mailbox("alice", "../../etc"),
            lambda: self.store.create_folder("alice", "a..b"),
            lambda: self.store.create_folder("alice", "x/y"),
            lambda: self.store.rename_folder("alice", "Sent", ".."),
            lambda: self.store.subscribe("alice\x00", "x"),
            lambda: self.store.list_folders("."),
        ):
            with self.assertRaises(InvalidName):
                await call()
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(self.base), "etc")))
        self.assertFalse(os.path.exists(self.base))


class CreateTests(SynchronousTestCase):
    def test_create_owns_a_pool_stopped_at_shutdown(self) -> None:
        fake = MemoryReactor()
        store = MaildirStore.create(self.mktemp(), fake, max_threads=2)
        self.assertEqual(len(fake.triggers["during"]["shutdown"]), 1)
        stop, args, kwargs = fake.triggers["during"]["shutdown"][0]
        self.assertIsInstance(store, MaildirStore)
        stop(*args, **kwargs)


class TmpCleanupThroughStoreTests(SynchronousTestCase):
    def test_open_removes_old_tmp_files_once_per_interval(self) -> None:
        base = os.path.abspath(self.mktemp())
        now = [1_800_000_000.0]
        store = MaildirStore(base, fs=FsOps(), runner=sync_runner, clock=lambda: now[0])
        self.successResultOf(store.create_folder("erin", "INBOX"))
        tmp = os.path.join(base, "erin", "tmp")
        for name, age in (("crash-old", 37 * 3600), ("in-progress", 60)):
            with open(os.path.join(tmp, name), "wb") as f:
                f.write(b"x")
            os.utime(os.path.join(tmp, name), (now[0] - age,) * 2)
        self.successResultOf(store.open_mailbox("erin"))
        self.assertEqual(os.listdir(tmp), ["in-progress"])
        os.utime(os.path.join(tmp, "in-progress"), (now[0] - 40 * 3600,) * 2)
        self.successResultOf(store.open_mailbox("erin"))
        self.assertEqual(os.listdir(tmp), ["in-progress"])  # checked at most hourly
        now[0] += 3601
        self.successResultOf(store.open_mailbox("erin"))
        self.assertEqual(os.listdir(tmp), [])

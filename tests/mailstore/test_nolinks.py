"""Delivery where hard links fail (vfat, some FUSE and network file systems) or cross mounts.

Every guarantee of the hard-link path holds: all or none, nothing left in
``tmp/``, data durable before its name, the commit only after both, and the
lack of links found once per folder rather than once per message.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from typing import cast

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core.durable import GroupCommitter, syncfs_supported
from netproto_twisted.mailstore import fsops
from netproto_twisted.mailstore.delivery import MessageWriter
from netproto_twisted.mailstore.fsops import FsOps
from netproto_twisted.mailstore.maildir import MaildirStore

from .helpers import ManualRunner, RecordingFs, sync_runner

USERS = ["alice", "bob", "carol"]



def _in_tmp(path: str) -> bool:
    """Whether ``path`` is a file in a Maildir's ``tmp/`` (not merely under some /tmp)."""
    return os.path.basename(os.path.dirname(path)) == "tmp"

class NoLinkFs(RecordingFs):
    """A file system without hard links: every ``link`` fails with ``err`` (EPERM: vfat)."""

    def __init__(self, err: int = errno.EPERM) -> None:
        super().__init__()
        self.err = err
        self.link_attempts = 0

    def link(self, src: str, dst: str) -> None:
        self.link_attempts += 1
        self.events.append(("link-failed", dst))
        raise OSError(self.err, os.strerror(self.err), dst)

    def copy(self, src: str, dst: str, sync: bool) -> None:
        self.events.append(("copy", dst))
        super().copy(src, dst, sync)

    def syncfs(self, path: str) -> None:
        self.events.append(("syncfs", path))
        if syncfs_supported():
            super().syncfs(path)


class CrossMountFs(NoLinkFs):
    """Each user's tree on its own mount of one file system: links between users fail EXDEV."""

    def __init__(self) -> None:
        super().__init__(errno.EXDEV)

    def link(self, src: str, dst: str) -> None:
        if _user_dir(src) != _user_dir(dst):
            super().link(src, dst)
        RecordingFs.link(self, src, dst)


def _user_dir(path: str) -> str:
    return os.path.dirname(os.path.dirname(path))


def _published(fs: RecordingFs) -> int:
    """How many names were put into a ``new/`` (by link or rename)."""
    return sum(
        1 for kind, path in fs.events
        if kind in ("link", "rename") and os.path.basename(os.path.dirname(path)) == "new"
    )


def _message(i: int, users: list[str]) -> bytes:
    return b"Subject: %d for %s\r\n\r\n" % (i, ",".join(users).encode()) + b"x" * (i * 997)


def _stored(message: bytes) -> bytes:
    """A message as the store writes it: LF line endings."""
    return message.replace(b"\r\n", b"\n")


class _Base(SynchronousTestCase):
    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())

    def listing(self, user: str, sub: str) -> list[str]:
        return sorted(os.listdir(os.path.join(self.base, user, sub)))

    def read(self, user: str, name: str) -> bytes:
        with open(os.path.join(self.base, user, "new", name), "rb") as f:
            return f.read()

    def assert_nothing_left(self, users: list[str]) -> None:
        for user in users:
            for sub in ("new", "tmp"):
                path = os.path.join(self.base, user, sub)
                if os.path.isdir(path):
                    self.assertEqual(os.listdir(path), [], (user, sub))


class NoHardLinksTests(_Base):
    """``deliver_all`` with 1, 2 and 3 users, both modes, links failing EPERM or EXDEV."""

    def deliver_several(self, fs: NoLinkFs, mode: str, count: int, attempts: int) -> None:
        store = MaildirStore(self.base, fs=fs, runner=sync_runner, sync=mode)
        names: list[str] = []
        for i in range(3):
            users = USERS[:count]
            writer = store.deliver_all(users)
            writer.write(_message(i, users))
            names.append(self.successResultOf(writer.commit()))
            if i == 0:
                first_attempts = fs.link_attempts
        for user in USERS[:count]:
            self.assertEqual(self.listing(user, "new"), sorted(names))
            self.assertEqual(self.listing(user, "tmp"), [])
            for i, name in enumerate(names):
                self.assertEqual(self.read(user, name), _stored(_message(i, USERS[:count])))
        # found out on the first message, remembered for the others
        self.assertEqual((first_attempts, fs.link_attempts), (attempts, attempts))
        self.assertEqual(_published(fs), 3 * count)
        kinds = [kind for kind, _ in fs.events]
        if mode == "file":
            self.assertNotIn("syncfs", kinds)
        else:
            self.assertNotIn("fsync", kinds)

    def test_eperm(self) -> None:
        for mode in ("file", "fs"):
            for count in (1, 2, 3):
                with self.subTest(mode=mode, users=count):
                    self.base = os.path.abspath(self.mktemp())
                    # one failed link per file system, not one per message
                    self.deliver_several(NoLinkFs(), mode, count, attempts=1)

    def test_enotsup(self) -> None:
        self.deliver_several(NoLinkFs(errno.EOPNOTSUPP), "file", 3, attempts=1)

    def test_exdev_between_user_trees(self) -> None:
        for mode in ("file", "fs"):
            for count in (1, 2, 3):
                with self.subTest(mode=mode, users=count):
                    self.base = os.path.abspath(self.mktemp())
                    # one probe per other user; the first user's file is linked
                    self.deliver_several(CrossMountFs(), mode, count, attempts=count - 1)

    def test_single_user_deliver_falls_back_once(self) -> None:
        fs = NoLinkFs()
        store = MaildirStore(self.base, fs=fs, runner=sync_runner)
        names = []
        for i in range(4):
            writer = store.deliver("alice")
            writer.write(_message(i, ["alice"]))
            names.append(self.successResultOf(writer.commit()))
        self.assertEqual(fs.link_attempts, 1)
        self.assertEqual(self.listing("alice", "new"), sorted(names))
        self.assertEqual(self.listing("alice", "tmp"), [])
        box = self.successResultOf(store.open_mailbox("alice"))
        self.assertEqual(len(box.messages), 4)

    def test_append_falls_back_once(self) -> None:
        fs = NoLinkFs()
        store = MaildirStore(self.base, fs=fs, runner=sync_runner)
        self.successResultOf(store.create_folder("bob", "INBOX"))
        box = self.successResultOf(store.open_mailbox("bob"))
        for i in range(3):
            writer = box.append()
            writer.write(b"appended %d" % i)
            self.assertEqual(self.successResultOf(writer.commit()).uid, i + 1)
        self.assertEqual(fs.link_attempts, 1)
        self.assertEqual(len(os.listdir(os.path.join(self.base, "bob", "cur"))), 3)


class DurabilityOrderTests(_Base):
    """Copies are durable before any name is published; names are durable before the commit."""

    def commit(self, fs: NoLinkFs, mode: str) -> MessageWriter:
        runner = ManualRunner()
        store = MaildirStore(self.base, fs=fs, runner=runner, sync=mode)
        writer = store.deliver_all(USERS)
        writer.write(b"Subject: order\r\n\r\nbody\r\n")
        d = writer.commit()
        self.assertNoResult(d)
        self.assertEqual(fs.events, [])
        runner.run_next()  # the whole commit_now job
        self.assertEqual(runner.jobs, [])
        name = self.successResultOf(d)
        for user in USERS:
            self.assertEqual(self.listing(user, "new"), [name])
            self.assertEqual(self.listing(user, "tmp"), [])
        return writer

    def test_file_mode(self) -> None:
        fs = NoLinkFs()
        writer = self.commit(fs, "file")
        events = fs.events
        renames = [i for i, (kind, _) in enumerate(events) if kind == "rename"]
        self.assertEqual(len(renames), 3)
        synced = {path for kind, path in events[: renames[0]] if kind == "fsync"}
        self.assertEqual(
            synced, {os.path.join(self.base, user, "tmp", writer.base) for user in USERS}
        )
        for user in USERS:
            new = os.path.join(self.base, user, "new")
            renamed = events.index(("rename", os.path.join(new, writer.name)))
            self.assertGreater(events.index(("fsync_dir", new)), renamed)
        self.assertEqual([kind for kind, _ in events[-3:]], ["fsync_dir"] * 3)

    def test_fs_mode(self) -> None:
        fs = NoLinkFs()
        writer = self.commit(fs, "fs")
        kinds = [kind for kind, _ in fs.events]
        self.assertNotIn("fsync", kinds)
        first_sync, last_sync = kinds.index("syncfs"), len(kinds) - 1
        self.assertEqual(kinds[last_sync], "syncfs")
        self.assertEqual(kinds.count("syncfs"), 2)  # one file system: one before, one after
        copies = [i for i, kind in enumerate(kinds) if kind == "copy"]
        renames = [i for i, kind in enumerate(kinds) if kind == "rename"]
        self.assertEqual((len(copies), len(renames)), (2, 3))
        self.assertLess(max(copies), first_sync)
        self.assertTrue(all(first_sync < i < last_sync for i in renames))
        self.assertEqual(
            sorted(path for kind, path in fs.events if kind == "rename"),
            sorted(os.path.join(self.base, user, "new", writer.name) for user in USERS),
        )

    def test_hard_link_path_adds_no_call_once_probed(self) -> None:
        fs = RecordingFs()
        store = MaildirStore(self.base, fs=fs, runner=sync_runner)
        writers = []
        for _ in range(2):
            after_first = len(fs.events)
            writer = store.deliver_all(USERS)
            writer.write(b"linked")
            self.successResultOf(writer.commit())
            writers.append(writer)
        second = fs.events[after_first:]
        news = [os.path.join(self.base, user, "new") for user in USERS]
        self.assertEqual(
            second,
            [("fsync", writers[1].tmp_path)]
            + [("link", os.path.join(new, writers[1].name)) for new in news]
            + [("unlink", writers[1].tmp_path)]
            + [("fsync_dir", new) for new in news],
        )
        probes = [path for kind, path in fs.events if kind == "link" and _in_tmp(path)]
        self.assertEqual(len(probes), 2)  # bob and carol, once each


class AllOrNoneTests(_Base):
    """A failure in the middle of publishing, or after it, leaves no copy anywhere."""

    def test_rename_fails_in_the_middle(self) -> None:
        class SecondRenameFails(NoLinkFs):
            renames = 0

            def rename(self, src: str, dst: str) -> None:
                self.renames += 1
                if self.renames == 2:
                    raise OSError(errno.EIO, "I/O error")
                super().rename(src, dst)

        for mode in ("file", "fs"):
            with self.subTest(mode=mode):
                self.base = os.path.abspath(self.mktemp())
                fs = SecondRenameFails()
                store = MaildirStore(self.base, fs=fs, runner=sync_runner, sync=mode)
                writer = store.deliver_all(USERS)
                writer.write(b"doomed")
                failure = self.failureResultOf(writer.commit(), OSError)
                self.assertEqual(failure.value.errno, errno.EIO)
                self.assert_nothing_left(USERS)
                retry = store.deliver_all(USERS)
                retry.write(b"again")
                name = self.successResultOf(retry.commit())
                for user in USERS:
                    self.assertEqual(self.listing(user, "new"), [name])
                    self.assertEqual(self.listing(user, "tmp"), [])

    def test_directory_sync_fails_after_publishing(self) -> None:
        class DirSyncFails(NoLinkFs):
            def fsync_dir(self, path: str) -> None:
                if path.endswith("/new"):
                    raise OSError(errno.EIO, "I/O error")
                super().fsync_dir(path)

        store = MaildirStore(self.base, fs=DirSyncFails(), runner=sync_runner, sync="file")
        writer = store.deliver_all(USERS)
        writer.write(b"not durable")
        self.failureResultOf(writer.commit(), OSError)
        self.assert_nothing_left(USERS)

    def test_copy_fails_while_staging(self) -> None:
        class ThirdUserFull(NoLinkFs):
            def copy(self, src: str, dst: str, sync: bool) -> None:
                if "/carol/" in dst:
                    raise OSError(errno.ENOSPC, "No space left on device")
                super().copy(src, dst, sync)

        store = MaildirStore(self.base, fs=ThirdUserFull(), runner=sync_runner)
        writer = store.deliver_all(USERS)
        writer.write(b"x" * 100_000)  # one block streamed before the commit
        self.failureResultOf(writer.commit(), OSError)
        self.assert_nothing_left(USERS)

    def test_unlinking_the_tmp_name_fails(self) -> None:
        """Linked into ``new/`` but the ``tmp/`` name cannot go: the link is taken back."""

        class TmpUnlinkFails(RecordingFs):
            def unlink(self, path: str) -> None:
                if _in_tmp(path) and path.endswith(writer.base):
                    raise OSError(errno.EIO, "I/O error")
                super().unlink(path)

        for users in (["alice"], USERS):
            with self.subTest(users=users):
                self.base = os.path.abspath(self.mktemp())
                store = MaildirStore(self.base, fs=TmpUnlinkFails(), runner=sync_runner)
                store.fs.remember_links(os.path.join(self.base, "bob", "new"), True)  # no probe
                store.fs.remember_links(os.path.join(self.base, "carol", "new"), True)
                writer = store.deliver_all(users)
                writer.write(b"half")
                failure = self.failureResultOf(writer.commit(), OSError)
                self.assertEqual(failure.value.errno, errno.EIO)
                for user in users:
                    self.assertEqual(self.listing(user, "new"), [], user)

    def test_append_unlinking_the_tmp_name_fails(self) -> None:
        class TmpUnlinkFails(FsOps):
            def unlink(self, path: str) -> None:
                if _in_tmp(path):
                    raise OSError(errno.EIO, "I/O error")
                super().unlink(path)

        store = MaildirStore(self.base, fs=TmpUnlinkFails(), runner=sync_runner)
        self.successResultOf(store.create_folder("bob", "INBOX"))
        box = self.successResultOf(store.open_mailbox("bob"))
        writer = box.append()
        writer.write(b"appended")
        self.failureResultOf(writer.commit(), OSError)
        self.assertEqual(self.listing("bob", "cur"), [])

    def test_links_that_fail_after_a_good_probe(self) -> None:
        """The probe said yes, the link into bob's new/ says EPERM: fail, remember, retry works."""

        class BobsNewRefuses(RecordingFs):
            def link(self, src: str, dst: str) -> None:
                if dst.startswith(bob_new):
                    raise OSError(errno.EPERM, "Operation not permitted", dst)
                super().link(src, dst)

        bob_new = os.path.join(self.base, "bob", "new")
        fs = BobsNewRefuses()
        store = MaildirStore(self.base, fs=fs, runner=sync_runner)
        writer = store.deliver_all(USERS)
        writer.write(b"first")
        failure = self.failureResultOf(writer.commit(), OSError)
        self.assertEqual(failure.value.errno, errno.EPERM)
        self.assert_nothing_left(USERS)
        self.assertIs(fs.links_into(bob_new), False)
        retry = store.deliver_all(USERS)
        retry.write(b"second")
        name = self.successResultOf(retry.commit())
        for user in USERS:
            self.assertEqual(self.listing(user, "new"), [name])
            self.assertEqual(self.read(user, name), b"second")
            self.assertEqual(self.listing(user, "tmp"), [])
        self.assertIn(("rename", os.path.join(bob_new, name)), fs.events)


class OtherFileSystemTests(_Base):
    """A user whose tree is on another file system (tmpfs) gets a copy made while staging."""

    def setUp(self) -> None:
        super().setUp()
        if not os.path.isdir("/dev/shm"):
            self.skipTest("no /dev/shm")
        other = tempfile.mkdtemp(dir="/dev/shm")
        self.addCleanup(shutil.rmtree, other, True)
        os.makedirs(self.base)
        if os.stat(other).st_dev == os.stat(self.base).st_dev:
            self.skipTest("/dev/shm is on the same file system as the test directory")
        os.makedirs(os.path.join(other, "bob"))
        os.symlink(os.path.join(other, "bob"), os.path.join(self.base, "bob"))

    def deliver(self, fs: RecordingFs) -> str:
        store = MaildirStore(self.base, fs=fs, runner=sync_runner)
        writer = store.deliver_all(["alice", "bob", "carol"])
        writer.write(b"across")
        name: str = self.successResultOf(writer.commit())
        for user in USERS:
            self.assertEqual(self.listing(user, "new"), [name])
            self.assertEqual(self.read(user, name), b"across")
            self.assertEqual(self.listing(user, "tmp"), [])
        fsynced = [path for kind, path in fs.events if kind == "fsync"]
        self.assertIn(os.path.realpath(os.path.join(self.base, "bob", "tmp")),
                      [os.path.dirname(path) for path in fsynced])
        return name

    def test_links_where_possible(self) -> None:
        fs = RecordingFs()
        name = self.deliver(fs)
        bob = os.path.join(self.base, "bob", "new", name)
        self.assertIn(("link", bob), fs.events)

    def test_renames_without_links(self) -> None:
        fs = NoLinkFs()
        name = self.deliver(fs)
        self.assertIn(("rename", os.path.join(self.base, "bob", "new", name)), fs.events)
        self.assertEqual(fs.link_attempts, 2)  # carol's probe; bob's tmpfs copy's link


class FsOpsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.mkdir(self.dir)

    def file(self, name: str, data: bytes) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_publish_remembers_a_directory_without_links(self) -> None:
        fs = NoLinkFs()
        for i in range(3):
            fs.publish(self.file(f"src{i}", b"%d" % i), os.path.join(self.dir, f"dst{i}"))
        self.assertEqual(fs.link_attempts, 1)
        self.assertIs(fs.links_into(self.dir), False)
        self.assertEqual(sorted(os.listdir(self.dir)), ["dst0", "dst1", "dst2"])
        existing = self.file("taken", b"keep")
        with self.assertRaises(FileExistsError):
            fs.publish(self.file("src", b"new"), existing)
        with open(existing, "rb") as f:
            self.assertEqual(f.read(), b"keep")

    def test_copy_is_new_and_complete(self) -> None:
        fs = RecordingFs()
        data = os.urandom(600_000)  # several copy blocks
        src = self.file("src", data)
        dst = os.path.join(self.dir, "dst")
        fs.copy(src, dst, sync=True)
        with open(dst, "rb") as f:
            self.assertEqual(f.read(), data)
        self.assertEqual(fs.events, [("fsync", dst)])
        with self.assertRaises(FileExistsError):
            fs.copy(src, dst, sync=False)
        self.assertEqual(os.path.getsize(dst), len(data))

    def test_failed_copy_leaves_nothing(self) -> None:
        class BrokenSync(FsOps):
            def fsync(self, fd: int) -> None:
                raise OSError(errno.EIO, "I/O error")

        dst = os.path.join(self.dir, "dst")
        with self.assertRaises(OSError):
            BrokenSync().copy(self.file("src", b"data"), dst, sync=True)
        self.assertFalse(os.path.exists(dst))

    def test_memory_is_bounded(self) -> None:
        fs = FsOps()
        self.patch(fsops, "_MAX_REMEMBERED", 3)
        for i in range(3):
            fs.remember_links(f"/d{i}", False)
        self.assertIs(fs.links_into("/d0"), False)
        fs.remember_links("/d3", True)
        self.assertIsNone(fs.links_into("/d0"))
        self.assertIs(fs.links_into("/d3"), True)


class GroupCommitNoLinksTests(TestCase):
    """The real committer thread with 1, 2 and 3 users per message, links failing."""

    timeout = 60

    async def _many(self, mode: str, fs: NoLinkFs) -> None:
        pool = ThreadPool(minthreads=0, maxthreads=2)
        pool.start()
        self.addCleanup(pool.stop)
        base = os.path.abspath(self.mktemp())
        store = MaildirStore(base, cast(IReactorFromThreads, reactor), pool, fs=fs, sync=mode)
        committer = store.committer
        assert isinstance(committer, GroupCommitter)
        self.addCleanup(committer.stop)
        recipients = [USERS[: 1 + i % 3] for i in range(30)]
        writers = []
        for i, users in enumerate(recipients):
            writer = store.deliver_all(users)
            writer.write(_message(i, users) * (1 + i % 7))  # some pass 64 KiB
            writers.append(writer)
        names = await gatherResults([Deferred.fromCoroutine(_commit(w)) for w in writers])
        pairs = list(zip(names, recipients, strict=True))
        for user in USERS:
            expected = sorted(name for name, users in pairs if user in users)
            self.assertEqual(sorted(os.listdir(os.path.join(base, user, "new"))), expected)
            self.assertEqual(os.listdir(os.path.join(base, user, "tmp")), [])
        for i, (name, users) in enumerate(pairs):
            for user in users:
                with open(os.path.join(base, user, "new", name), "rb") as f:
                    self.assertEqual(f.read(), _stored(_message(i, users) * (1 + i % 7)))
        self.assertEqual(committer.committed, 30)
        self.assertLessEqual(fs.link_attempts, 3)  # per folder at most, not per message
        self.assertEqual(_published(fs), sum(len(users) for users in recipients))
        kinds = [kind for kind, _ in fs.events]
        self.assertNotIn("fsync" if mode == "fs" else "syncfs", kinds)

    async def test_fs_mode(self) -> None:
        if not syncfs_supported():
            self.skipTest("syncfs needs Linux 5.8 or later")
        await self._many("fs", NoLinkFs())

    async def test_file_mode(self) -> None:
        await self._many("file", NoLinkFs())

    async def test_file_mode_exdev(self) -> None:
        await self._many("file", CrossMountFs())


async def _commit(writer: MessageWriter) -> str:
    return await writer.commit()

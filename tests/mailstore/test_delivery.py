"""Delivery: durability ordering, grouped directory fsyncs, abort, failure, constant memory."""

from __future__ import annotations

import errno
import os
import tracemalloc

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.mailstore.delivery import WRITE_BUFFER_SIZE, Appended, DirSyncer
from netproto_twisted.mailstore.errors import InvalidName, NoSuchMailbox
from netproto_twisted.mailstore.filenames import SEEN
from netproto_twisted.mailstore.fsops import FsOps
from netproto_twisted.mailstore.maildir import MaildirStore

from .helpers import ManualRunner, RecordingFs, sync_runner


class DurabilityOrderTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        self.runner = ManualRunner()
        self.fs = RecordingFs()
        self.store = MaildirStore(self.base, fs=self.fs, runner=self.runner)
        self.new = os.path.join(self.base, "alice", "new")

    def test_commit_fires_only_after_file_fsync_link_and_dir_fsync(self) -> None:
        writer = self.store.deliver("alice")
        writer.write(b"Subject: hi\r\n\r\n")
        writer.write(b"x" * 5000)
        self.assertFalse(os.path.exists(self.base))  # nothing touched the disk yet
        d = writer.commit()
        self.assertNoResult(d)
        self.assertEqual(self.fs.events, [])
        self.runner.run_next()  # create dirs + file, fsync, link into new/, fsync new/
        kinds = [kind for kind, _ in self.fs.events]
        self.assertEqual(kinds, ["fsync_dir", "fsync_dir", "fsync", "link", "unlink", "fsync_dir"])
        self.assertEqual(
            self.fs.events[:3],
            [("fsync_dir", os.path.join(self.base, "alice")), ("fsync_dir", self.base),
             ("fsync", writer.tmp_path)],
        )
        self.assertEqual(self.fs.events[-1], ("fsync_dir", self.new))
        name = self.successResultOf(d)
        self.assertEqual(os.listdir(self.new), [name])
        # Stored with LF (S=, the file's size); W= is the size with CRLF.
        self.assertTrue(name.endswith(",S=5013,W=5015"), name)
        with open(os.path.join(self.new, name), "rb") as f:
            self.assertEqual(f.read(), b"Subject: hi\n\n" + b"x" * 5000)
        self.assertEqual(os.listdir(os.path.join(self.base, "alice", "tmp")), [])

    def test_dir_syncer_each_waiter_released_by_a_later_fsync(self) -> None:
        os.makedirs(self.new)
        syncer = DirSyncer(self.new, self.fs, self.runner)
        first = syncer.sync()
        later = [syncer.sync() for _ in range(4)]  # asked while the first fsync is pending
        self.runner.run_next()
        self.successResultOf(first)
        for d in later:
            self.assertNoResult(d)
        self.runner.run_all()
        for d in later:
            self.successResultOf(d)
        self.assertEqual((syncer.requests, syncer.fsyncs), (5, 2))

    def test_deliver_all_is_all_or_nothing(self) -> None:
        class SecondLinkFails(FsOps):
            links = 0

            def link(self, src: str, dst: str) -> None:
                self.links += "/new/" in dst  # not the probe into bob's tmp/
                if self.links == 2:
                    raise OSError(errno.ENOSPC, "No space left on device")
                super().link(src, dst)

        store = MaildirStore(self.base, fs=SecondLinkFails(), runner=sync_runner)
        writer = store.deliver_all(["alice", "bob", "alice"])
        writer.write(b"Subject: hi\r\n\r\nbody\r\n")
        failure = self.failureResultOf(writer.commit(), OSError)
        self.assertEqual(failure.value.errno, errno.ENOSPC)
        for user in ("alice", "bob"):
            for sub in ("new", "tmp"):
                self.assertEqual(os.listdir(os.path.join(self.base, user, sub)), [], (user, sub))
        retry = store.deliver_all(["alice", "bob"])
        retry.write(b"again")
        name = self.successResultOf(retry.commit())
        for user in ("alice", "bob"):
            self.assertEqual(os.listdir(os.path.join(self.base, user, "new")), [name])

    def test_failed_fsync_fails_commit_and_leaves_nothing(self) -> None:
        class BrokenFs(FsOps):
            def fsync(self, fd: int) -> None:
                raise OSError(errno.EIO, "I/O error")

        store = MaildirStore(self.base, fs=BrokenFs(), runner=sync_runner)
        writer = store.deliver("alice")
        writer.write(b"data")
        failure = self.failureResultOf(writer.commit(), OSError)
        self.assertEqual(failure.value.errno, errno.EIO)
        self.assertEqual(os.listdir(self.new), [])
        self.assertEqual(os.listdir(os.path.join(self.base, "alice", "tmp")), [])

    def test_small_message_touches_disk_only_in_commit_job(self) -> None:
        writer = self.store.deliver("alice")
        writer.write(b"x" * 60000)
        writer.abort()
        self.assertFalse(os.path.exists(self.base))

    def test_abort_removes_tmp(self) -> None:
        writer = self.store.deliver("alice")
        writer.write(b"partial" * 10000)
        self.assertFalse(os.path.exists(writer.tmp_path))  # the block waits for a worker
        self.runner.run_all()
        self.assertTrue(os.path.exists(writer.tmp_path))
        writer.abort()
        self.assertTrue(os.path.exists(writer.tmp_path))  # removed in a worker, not here
        self.runner.run_all()
        self.assertFalse(os.path.exists(writer.tmp_path))
        with self.assertRaises(ValueError):
            writer.write(b"more")
        with self.assertRaises(ValueError):
            writer.commit()
        writer.abort()  # idempotent

    def test_delivery_names_validated(self) -> None:
        for user in ("../root", "a/b", ".x", ""):
            with self.assertRaises(InvalidName):
                self.store.deliver(user)
        with self.assertRaises(InvalidName):
            self.store.deliver("alice", "../../etc")
        with self.assertRaises(NoSuchMailbox):
            self.store.deliver("alice", "Nonexistent")
        self.assertFalse(os.path.exists(os.path.join(os.path.dirname(self.base), "root")))

    def test_store_needs_a_way_to_run_jobs(self) -> None:
        with self.assertRaises(TypeError):
            MaildirStore(self.base)


class BackpressureTests(SynchronousTestCase):
    """Blocks past 64 KiB go to disk in a worker; the writer says when to wait for it."""

    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        self.runner = ManualRunner()
        self.store = MaildirStore(self.base, runner=self.runner)
        self.block = b"y" * WRITE_BUFFER_SIZE

    def test_second_full_block_asks_to_wait_until_the_first_is_written(self) -> None:
        writer = self.store.deliver("alice")
        self.assertIsNone(writer.write(self.block))  # handed to a worker at once
        self.assertEqual(len(self.runner.jobs), 1)
        self.assertIsNone(writer.write(b"z" * 100))  # under 64 KiB waiting: go on
        wait = writer.write(self.block)
        self.assertIsNotNone(wait)
        self.assertNoResult(wait)
        self.runner.run_next()  # first block written; the second one starts
        self.assertNoResult(wait)
        self.assertEqual(len(self.runner.jobs), 1)
        self.runner.run_next()
        self.successResultOf(wait)
        self.assertEqual(os.path.getsize(writer.tmp_path), 2 * WRITE_BUFFER_SIZE + 100)
        d = writer.commit()
        self.runner.run_all()
        name = self.successResultOf(d)
        with open(os.path.join(self.base, "alice", "new", name), "rb") as f:
            self.assertEqual(f.read(), self.block + b"z" * 100 + self.block)

    def test_commit_waits_for_the_block_on_its_way(self) -> None:
        writer = self.store.deliver("alice")
        writer.write(self.block)
        writer.write(b"tail")
        d = writer.commit()
        self.assertEqual(len(self.runner.jobs), 1)  # only the block: the commit waits
        self.runner.run_next()
        self.assertEqual(len(self.runner.jobs), 1)  # now the commit itself
        self.runner.run_next()
        self.assertTrue(self.successResultOf(d).endswith(
            f",S={WRITE_BUFFER_SIZE + 4},W={WRITE_BUFFER_SIZE + 4}"
        ))

    def test_failed_block_write_fails_the_next_write_and_the_commit(self) -> None:
        writer = self.store.deliver("alice")
        writer.write(self.block)
        d = self.runner.jobs.pop(0)[3]
        d.errback(OSError(errno.ENOSPC, "No space left on device"))
        with self.assertRaises(OSError):
            writer.write(b"more")
        failure = self.failureResultOf(writer.commit(), OSError)
        self.assertEqual(failure.value.errno, errno.ENOSPC)

    def test_abort_while_a_block_is_written_removes_the_file_afterwards(self) -> None:
        writer = self.store.deliver("alice")
        writer.write(self.block)
        writer.abort()
        self.runner.run_all()
        self.assertFalse(os.path.exists(writer.tmp_path))
        self.assertEqual(os.listdir(os.path.join(self.base, "alice", "tmp")), [])


class InboxCacheTests(SynchronousTestCase):
    def test_remembered_folders_are_bounded(self) -> None:
        """The store's INBOX folder objects never exceed their limit; delivery goes on."""
        from netproto_twisted.mailstore import maildir

        self.patch(maildir, "_MAX_INBOXES", 3)
        base = os.path.abspath(self.mktemp())
        store = MaildirStore(base, fs=FsOps(), runner=sync_runner)
        users = [f"user{n}" for n in range(8)]
        for user in users * 2:
            writer = store.deliver_all([user])
            writer.write(b"Subject: x\r\n\r\nbody\r\n")
            self.successResultOf(writer.commit())
            self.assertLessEqual(len(store._inboxes), 3)
        for user in users:
            self.assertEqual(len(os.listdir(os.path.join(base, user, "new"))), 2)


class AppendTests(SynchronousTestCase):
    def test_append_with_flags_and_date_gets_uid(self) -> None:
        base = os.path.abspath(self.mktemp())
        store = MaildirStore(base, fs=FsOps(), runner=sync_runner, clock=lambda: 1_800_000_000.0)
        self.successResultOf(store.create_folder("bob", "INBOX"))
        box = self.successResultOf(store.open_mailbox("bob"))
        writer = box.append([SEEN, "Work"], internal_date=1_000_000_000.0)
        writer.write(b"appended body")
        result = self.successResultOf(writer.commit())
        self.assertIsInstance(result, Appended)
        self.assertEqual((result.uid_validity, result.uid), (box.uid_validity, 1))
        self.assertTrue(result.filename.endswith(",S=13,W=13:2,Sa"))
        messages = self.successResultOf(box.refresh())
        self.assertEqual(len(messages), 1)
        self.assertEqual(messages[0].flags, {SEEN, "Work"})
        self.assertEqual(messages[0].internal_date, 1_000_000_000.0)
        self.assertEqual(messages[0].subdir, "cur")


class StreamingMemoryTests(SynchronousTestCase):
    def test_25mb_delivery_constant_memory(self) -> None:
        base = os.path.abspath(self.mktemp())
        store = MaildirStore(base, fs=FsOps(), runner=sync_runner)
        chunk = b"0123456789abcdef" * 4096  # 64 KiB, reused
        total = 25 * 1024 * 1024
        tracemalloc.start()
        try:
            writer = store.deliver("big")
            for _ in range(total // len(chunk)):
                writer.write(chunk)
            name = self.successResultOf(writer.commit())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        self.assertLess(peak, 1024 * 1024, f"peak {peak} bytes traced for a 25 MiB message")
        path = os.path.join(base, "big", "new", name)
        self.assertEqual(os.path.getsize(path), total)
        self.assertTrue(name.endswith(f",S={total},W={total}"))


class FolderCreationOrderTests(SynchronousTestCase):
    """A new folder's tmp/ appears last, so whoever writes into it finds new/ and cur/."""

    def test_tmp_is_created_after_new_and_cur(self) -> None:
        from netproto_twisted.mailstore import delivery
        from netproto_twisted.mailstore.folder import MaildirFolder
        from netproto_twisted.mailstore.fsops import FsOps

        root = os.path.join(self.mktemp(), "bob")
        folder = MaildirFolder(root, FsOps())
        seen: list[tuple[str, bool]] = []
        real_makedirs = os.makedirs

        def makedirs(path: str, mode: int = 0o777, exist_ok: bool = False) -> None:
            if path == folder.tmp:
                seen.append((path, os.path.isdir(folder.new) and os.path.isdir(folder.cur)))
            real_makedirs(path, mode=mode, exist_ok=exist_ok)

        self.patch(delivery.os, "makedirs", makedirs)
        writer = object.__new__(delivery.MessageWriter)
        writer._fs = FsOps()
        writer._make_folder(folder)
        self.assertEqual(seen, [(folder.tmp, True)])
        self.assertTrue(all(os.path.isdir(d) for d in (folder.tmp, folder.new, folder.cur)))

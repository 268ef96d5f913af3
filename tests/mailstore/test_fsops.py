"""The uidlist dot-lock (O_EXCL, stale handling, timeout) and atomic writes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.mailstore.errors import MailboxLocked
from netproto_twisted.mailstore.fsops import DotLock, FsOps, atomic_write


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class DotLockTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.mkdir(self.dir)
        self.path = os.path.join(self.dir, "dovecot-uidlist.lock")

    def test_exclusive_and_released(self) -> None:
        first = DotLock(self.path)
        second = DotLock(self.path)
        self.assertTrue(first.try_acquire())
        with open(self.path) as f:
            self.assertEqual(f.read(), f"{os.getpid()}:{socket.gethostname()}")
        self.assertFalse(second.try_acquire())
        first.release()
        self.assertFalse(os.path.exists(self.path))
        self.assertTrue(second.try_acquire())
        second.release()

    def test_timeout_raises_without_real_sleep(self) -> None:
        holder = DotLock(self.path)
        holder.try_acquire()
        clock = FakeClock(os.stat(self.path).st_mtime)
        waiter = DotLock(self.path, timeout=1.0, clock=clock, sleep=clock.sleep)
        with self.assertRaises(MailboxLocked):
            waiter.acquire()
        self.assertGreater(len(clock.slept), 3)
        self.assertTrue(os.path.exists(self.path))
        holder.release()

    def test_stale_by_age_is_overridden(self) -> None:
        with open(self.path, "w") as f:
            f.write("1:some-other-host")
        old = os.stat(self.path).st_mtime
        clock = FakeClock(old + 121)
        lock = DotLock(self.path, clock=clock, sleep=clock.sleep)
        lock.acquire()
        self.assertTrue(lock.held)
        with open(self.path) as f:
            self.assertTrue(f.read().startswith(f"{os.getpid()}:"))
        lock.release()

    def test_young_foreign_lock_is_respected(self) -> None:
        with open(self.path, "w") as f:
            f.write("1:some-other-host")
        clock = FakeClock(os.stat(self.path).st_mtime + 60)
        self.assertFalse(DotLock(self.path, clock=clock).try_acquire())

    def test_dead_local_owner_is_overridden(self) -> None:
        proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, check=True, text=True)
        with open(self.path, "w") as f:
            f.write(f"{int(proc.stdout)}:{socket.gethostname()}")
        lock = DotLock(self.path)
        self.assertTrue(lock.try_acquire())
        lock.release()

    def test_touch_keeps_a_long_held_lock_fresh(self) -> None:
        lock = DotLock(self.path)
        lock.try_acquire()
        os.utime(self.path, (1, 1))
        lock.touch()
        clock = FakeClock(os.stat(self.path).st_mtime + 60)
        self.assertFalse(DotLock(self.path, clock=clock).try_acquire())
        lock.release()

    def test_context_manager(self) -> None:
        with DotLock(self.path) as lock:
            self.assertTrue(lock.held)
            self.assertTrue(os.path.exists(self.path))
        self.assertFalse(os.path.exists(self.path))


class AtomicWriteTests(SynchronousTestCase):
    def test_replaces_and_leaves_no_temp(self) -> None:
        directory = self.mktemp()
        os.mkdir(directory)
        path = os.path.join(directory, "f")
        atomic_write(path, b"one", FsOps())
        atomic_write(path, b"two", FsOps())
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"two")
        self.assertEqual(os.listdir(directory), ["f"])

    def test_publish_never_overwrites(self) -> None:
        directory = self.mktemp()
        os.mkdir(directory)
        src, dst = os.path.join(directory, "a"), os.path.join(directory, "b")
        for path in (src, dst):
            with open(path, "w") as f:
                f.write(path)
        with self.assertRaises(FileExistsError):
            FsOps().publish(src, dst)
        with open(dst) as f:
            self.assertEqual(f.read(), dst)

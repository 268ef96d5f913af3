"""core.procpool: work in spawned processes, Deferred results, bounded, clean failure.

The pool tests spawn real worker processes (a fresh interpreter each: a
fraction of a second); the loader of bare packages is tested in process.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core.procpool import PoolBusy, PoolUnavailable, ProcessPool, Withdrawn
from netproto_twisted.core.procworker import BarePackages, preload


def gone_within(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` (not necessarily our child) ends within ``timeout`` seconds."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(timeout * 1000))
    finally:
        os.close(fd)


def loaded_modules() -> list[str]:
    """The modules a worker has imported (run in the worker)."""
    return sorted(sys.modules)


class ProcessPoolTests(TestCase):
    def pool(self, **kwargs: object) -> ProcessPool:
        pool = ProcessPool(reactor, 1, **kwargs)  # type: ignore[arg-type]
        self.addCleanup(pool.stop)
        return pool

    async def test_runs_in_another_process(self) -> None:
        pool = self.pool()
        pid = await pool.run(os.getpid)
        self.assertNotEqual(pid, os.getpid())
        self.assertEqual(await pool.run(divmod, 7, 2), (3, 1))
        self.assertEqual(pool.pending, 0)
        self.assertTrue(pool.available)

    async def test_exception_of_the_task(self) -> None:
        pool = self.pool()
        with self.assertRaises(ZeroDivisionError):
            await pool.run(divmod, 1, 0)
        self.assertTrue(pool.available)

    async def test_preloads_without_packages_init(self) -> None:
        pool = self.pool(
            preload=("netproto_twisted.imap4.server.readahead",),
            bare_packages=("netproto_twisted",),
        )
        pool.start()
        modules = await pool.run(loaded_modules)
        self.assertIn("netproto_twisted.imap4.server.readahead", modules)
        # The packages' __init__ modules did not run: nothing of the server, no Twisted
        # beyond what this test module's import brought.
        self.assertNotIn("netproto_twisted.imap4.server.connection", modules)
        self.assertNotIn("netproto_twisted.imap4.client", modules)

    async def test_dead_worker_makes_the_pool_unavailable(self) -> None:
        pool = self.pool()
        with self.assertRaises(PoolUnavailable):
            await pool.run(os._exit, 3)
        self.assertFalse(pool.available)
        self.flushLoggedErrors()
        with self.assertRaises(PoolUnavailable):
            await pool.run(os.getpid)

    async def test_withdraw_a_task_not_started(self) -> None:
        pool = self.pool()
        busy = pool.run(sum, range(3 * 10**7))  # the worker is busy with this for a while
        tasks = [pool.run(divmod, n, 1) for n in range(6)]
        self.assertTrue(pool.withdraw(tasks[-1]))
        self.assertFalse(pool.withdraw(tasks[-1]))
        with self.assertRaises(Withdrawn):
            await tasks[-1]
        self.assertEqual(await busy, sum(range(3 * 10**7)))
        self.assertEqual([await t for t in tasks[:-1]], [(n, 0) for n in range(5)])
        self.assertFalse(pool.withdraw(busy))  # done
        self.assertTrue(pool.available)

    def test_bounded(self) -> None:
        pool = self.pool(max_pending=1)
        first = pool.run(os.getpid)
        self.failureResultOf(pool.run(os.getpid), PoolBusy)
        return first

    def test_stopped(self) -> None:
        pool = self.pool()
        pool.stop()
        self.failureResultOf(pool.run(os.getpid), PoolUnavailable)
        self.assertFalse(pool.available)

    def test_needs_a_worker(self) -> None:
        self.assertRaises(ValueError, ProcessPool, reactor, 0)


_PARENT = r"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(__import__("os").getpid())])
print(child.pid, flush=True)
sys.stdin.read()
"""
_WORKER = r"""
import sys, threading
from netproto_twisted.core.procworker import watch_parent
watch_parent(int(sys.argv[1]), interval=0.05)
threading.Event().wait()
"""


class WatchParentTests(SynchronousTestCase):
    def test_worker_ends_when_its_parent_is_killed(self) -> None:
        parent = subprocess.Popen(
            [sys.executable, "-c", _PARENT, _WORKER], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, cwd=os.getcwd(),
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )  # fmt: skip
        self.addCleanup(parent.wait)
        self.addCleanup(parent.stdin.close)  # type: ignore[union-attr]
        worker = int(parent.stdout.readline())  # type: ignore[union-attr]
        parent.stdout.close()  # type: ignore[union-attr]
        self.assertFalse(gone_within(worker, 0.2))  # alive while its parent is
        parent.send_signal(signal.SIGKILL)
        self.assertTrue(gone_within(worker, 10.0))


class BarePackagesTests(SynchronousTestCase):
    def setUp(self) -> None:
        root = os.path.abspath(self.mktemp())
        package = os.path.join(root, "barepkg_test", "sub")
        os.makedirs(package)
        for init in (os.path.join(root, "barepkg_test"), package):
            with open(os.path.join(init, "__init__.py"), "w") as f:
                f.write("raise ImportError('an __init__ ran')\n")
        with open(os.path.join(package, "mod.py"), "w") as f:
            f.write(textwrap.dedent("""
                from barepkg_test.sub import other
                VALUE = other.VALUE + 1
            """))
        with open(os.path.join(package, "other.py"), "w") as f:
            f.write("VALUE = 41\n")
        sys.path.insert(0, root)
        saved = list(sys.meta_path)

        def restore() -> None:
            sys.path.remove(root)
            sys.meta_path[:] = saved
            for name in [m for m in sys.modules if m.startswith("barepkg_test")]:
                del sys.modules[name]

        self.addCleanup(restore)

    def test_plain_import_runs_the_init(self) -> None:
        self.assertRaises(ImportError, __import__, "barepkg_test.sub.mod")

    def test_modules_without_their_packages_init(self) -> None:
        preload(["barepkg_test.sub.mod"], ["barepkg_test"])
        self.assertEqual(sys.modules["barepkg_test.sub.mod"].VALUE, 42)
        self.assertIsInstance(sys.meta_path[0], BarePackages)

    def test_other_packages_untouched(self) -> None:
        finder = BarePackages(["barepkg_test"])
        self.assertIsNone(finder.find_spec("json", None))
        self.assertIsNone(finder.find_spec("barepkg_testing", None))


class _LogFile:
    """What twistd puts in ``sys.stderr`` on Twisted 26.4: no real descriptor."""

    def fileno(self) -> int:
        return -1

    def write(self, text: str) -> int:
        return len(text)


class StderrTests(SynchronousTestCase):
    def test_log_file_swapped_for_the_start(self) -> None:
        """A stderr whose fileno() is -1 is replaced while processes start, then put back."""
        from netproto_twisted.core.procpool import _stderr_with_a_descriptor

        log = _LogFile()
        self.patch(sys, "stderr", log)
        with _stderr_with_a_descriptor():
            self.assertIs(sys.stderr, sys.__stderr__)
        self.assertIs(sys.stderr, log)

    def test_real_stderr_kept(self) -> None:
        from netproto_twisted.core.procpool import _stderr_with_a_descriptor

        before = sys.stderr
        with _stderr_with_a_descriptor():
            self.assertIs(sys.stderr, before)

    def test_pool_starts_under_a_log_file(self) -> None:
        """The workers start under such a stderr (it failed: 'bad value(s) in fds_to_keep')."""
        code = textwrap.dedent(
            """
            import sys
            class LogFile:
                def fileno(self): return -1
                def write(self, text): return len(text)
                def flush(self): pass
            sys.stderr = LogFile()
            from netproto_twisted.core.procpool import ProcessPool
            pool = ProcessPool(object(), workers=1)
            pool.start()
            pool._executor.submit(print, "started").result(60)
            pool._executor.shutdown()
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
        )
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        self.assertIn("started", out.stdout)

"""core.threads: the one Runner type, a thread-pool runner and a synchronous one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.threads import synchronous_runner, thread_runner


class OneThreadPerCall:
    """A thread pool's ``callInThreadWithCallback`` that starts a thread per call, to join."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def callInThreadWithCallback(
        self, on_result: Callable[[bool, Any], None], f: Callable[..., Any], *args: Any,
        **kwargs: Any,
    ) -> None:
        def work() -> None:
            try:
                result = f(*args, **kwargs)
            except BaseException as e:
                on_result(False, e)
            else:
                on_result(True, result)

        thread = threading.Thread(target=work, name=f"pool-{len(self.threads)}")
        self.threads.append(thread)
        thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join()


class CallsFromThreads:
    """A reactor's ``callFromThread`` that queues calls for the test's thread to run."""

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def callFromThread(self, f: Callable[..., Any], *args: Any) -> None:
        self.calls.append((f, args))

    def run_pending(self) -> None:
        calls, self.calls = self.calls, []
        for f, args in calls:
            f(*args)


class ThreadRunnerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.pool = OneThreadPerCall()
        self.reactor = CallsFromThreads()
        self.run = thread_runner(self.reactor, self.pool)  # type: ignore[arg-type]

    def settle(self) -> None:
        self.pool.join()
        self.reactor.run_pending()

    def test_runs_in_the_pool_and_fires_with_the_result(self) -> None:
        def work(a: int, *, b: int) -> tuple[int, str]:
            return a + b, threading.current_thread().name

        d = self.run(work, 1, b=2)
        self.assertNoResult(d)  # (the result comes back through callFromThread)
        self.settle()
        self.assertEqual(self.successResultOf(d), (3, "pool-0"))

    def test_failure_reaches_the_deferred(self) -> None:
        d = self.run(int, "not a number")
        self.settle()
        self.failureResultOf(d, ValueError)


class SynchronousRunnerTests(SynchronousTestCase):
    def test_runs_at_once_in_this_thread(self) -> None:
        def work(x: int, y: int = 0) -> tuple[int, str]:
            return x + y, threading.current_thread().name

        d = synchronous_runner(work, 4, y=5)
        self.assertEqual(self.successResultOf(d), (9, threading.current_thread().name))

    def test_failure(self) -> None:
        self.failureResultOf(synchronous_runner(int, "x"), ValueError)

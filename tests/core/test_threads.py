"""core.threads: the Runner type, thread-pool and synchronous runners, inline unless slow."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.threads import InlineUnlessSlow, synchronous_runner, thread_runner


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


class InlineUnlessSlowTests(SynchronousTestCase):
    """Short calls run inline; after a slow one, calls go to the fallback for the cooldown."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.now = 0.0
        self.sent: list[Callable[..., Any]] = []

        def fallback(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
            self.sent.append(f)
            return succeed("from the fallback")

        self.run = InlineUnlessSlow(
            self.clock, fallback, slow=0.005, cooldown=60.0, timer=lambda: self.now
        )

    def call_taking(self, seconds: float, value: object = "inline") -> Any:
        def work(x: object, *, twice: bool) -> object:
            self.now += seconds
            return (x, twice)

        return self.successResultOf(self.run(work, value, twice=True))

    def test_inline(self) -> None:
        """A quick call runs at once on this thread, with its arguments."""
        self.assertEqual(self.call_taking(0.001), ("inline", True))
        self.assertEqual(self.sent, [])
        self.assertEqual(self.run.slow_calls, 0)

    def test_failure(self) -> None:
        """An exception becomes the Deferred's failure."""

        def broken() -> None:
            raise FileNotFoundError("gone")

        self.failureResultOf(self.run(broken), FileNotFoundError)

    def test_slow_calls_move_calls_for_the_cooldown(self) -> None:
        """At three strikes, calls go to the fallback until the cooldown is over."""
        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        for _ in range(2):
            self.assertEqual(self.call_taking(0.02), ("inline", True))  # its own result stands
        self.assertEqual(self.call_taking(0.001), ("inline", True))  # 1.75 strikes
        self.assertEqual(self.call_taking(0.02), ("inline", True))  # 2.75
        self.assertEqual(events, [])
        self.assertEqual(self.call_taking(0.02), ("inline", True))  # 3.75: moved
        self.assertEqual(self.run.slow_calls, 4)
        self.assertTrue(any("thread pool" in (e.get("log_format") or "") for e in events))
        self.assertEqual(self.call_taking(0.001), "from the fallback")
        self.clock.advance(59)
        self.assertEqual(self.call_taking(0.001), "from the fallback")
        self.assertEqual(len(self.sent), 2)
        self.clock.advance(1)
        self.assertEqual(self.call_taking(0.001), ("inline", True))
        self.assertEqual(len(self.sent), 2)

    def test_one_call_far_too_slow(self) -> None:
        """One call twenty times too long moves calls at once."""
        self.call_taking(0.2)
        self.assertEqual(self.call_taking(0.001), "from the fallback")

    def test_now_and_then_slow_stays_inline(self) -> None:
        """A slow call among quick ones (a preempted thread) does not move calls."""
        for _ in range(50):
            self.call_taking(0.02)
            for _ in range(5):
                self.call_taking(0.0001)
        self.assertEqual(self.sent, [])
        self.assertEqual(self.run.slow_calls, 50)

    def test_disabled(self) -> None:
        """``slow=None`` sends every call to the fallback."""
        run = InlineUnlessSlow(self.clock, self.run.fallback, slow=None)
        self.assertEqual(self.successResultOf(run(lambda: 1)), "from the fallback")
        self.clock.advance(10_000)
        self.assertEqual(self.successResultOf(run(lambda: 1)), "from the fallback")

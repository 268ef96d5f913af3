"""Tests for netproto_twisted.core.coalesce: one run per key, latecomers share the next."""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.coalesce import Coalescer


class CoalescerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.coalescer: Coalescer[str, int] = Coalescer()
        self.started: list[Deferred[int]] = []

    def start(self) -> Deferred[int]:
        d: Deferred[int] = Deferred()
        self.started.append(d)
        return d

    def test_callers_during_a_run_share_the_next_one(self) -> None:
        first = self.coalescer.run("box", self.start)
        late = [self.coalescer.run("box", self.start) for _ in range(100)]
        self.assertEqual(len(self.started), 1)
        self.started[0].callback(1)
        self.assertEqual(self.successResultOf(first), (1, True))
        # the hundred latecomers: one more run, begun after they asked
        self.assertEqual(len(self.started), 2)
        for d in late:
            self.assertNoResult(d)
        self.started[1].callback(2)
        results = [self.successResultOf(d) for d in late]
        self.assertEqual({r for r, _ in results}, {2})
        self.assertEqual(sum(1 for _, first_ in results if first_), 1)
        self.assertEqual(len(self.coalescer), 0)

    def test_keys_are_independent(self) -> None:
        a = self.coalescer.run("a", self.start)
        b = self.coalescer.run("b", self.start)
        self.assertEqual(len(self.started), 2)
        self.started[1].callback(5)
        self.assertEqual(self.successResultOf(b), (5, True))
        self.assertNoResult(a)

    def test_failure_reaches_every_caller_of_the_run(self) -> None:
        first = self.coalescer.run("box", self.start)
        late = [self.coalescer.run("box", self.start) for _ in range(3)]
        self.started[0].errback(OSError("disk"))
        self.failureResultOf(first, OSError)
        self.started[1].errback(OSError("again"))
        for d in late:
            self.failureResultOf(d, OSError)
        # and the key is free again
        self.assertEqual(
            self.successResultOf(self.coalescer.run("box", lambda: succeed(3))), (3, True)
        )

    def test_synchronous_start(self) -> None:
        self.assertEqual(
            self.successResultOf(self.coalescer.run("k", lambda: succeed(7))), (7, True)
        )
        self.assertEqual(len(self.coalescer), 0)

"""core.pacer: a producer that only records the consumer's backpressure."""

from __future__ import annotations

from twisted.internet.interfaces import IPushProducer
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.pacer import Pacer, PacerStopped


class Child:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


class PacerTests(SynchronousTestCase):
    def test_ready_waits_for_resume(self) -> None:
        pacer = Pacer()
        self.assertTrue(IPushProducer.providedBy(pacer))
        self.assertIsNone(self.successResultOf(pacer.ready()))
        pacer.pauseProducing()
        first, second = pacer.ready(), pacer.ready()
        self.assertNoResult(first)
        pacer.resumeProducing()
        self.assertIsNone(self.successResultOf(first))
        self.assertIsNone(self.successResultOf(second))

    def test_a_waiter_that_refills_the_consumer_keeps_the_others_waiting(self) -> None:
        pacer = Pacer()
        pacer.pauseProducing()
        first, second = pacer.ready(), pacer.ready()
        first.addCallback(lambda _: pacer.pauseProducing())
        pacer.resumeProducing()
        self.successResultOf(first)
        self.assertNoResult(second)
        pacer.resumeProducing()
        self.successResultOf(second)

    def test_stop_fails_waiters_and_later_calls(self) -> None:
        pacer = Pacer()
        pacer.pauseProducing()
        waiting = pacer.ready()
        pacer.stopProducing()
        self.failureResultOf(waiting, PacerStopped)
        self.failureResultOf(pacer.ready(), PacerStopped)

    def test_attached_child_gets_the_calls(self) -> None:
        pacer = Pacer()
        child = Child()
        pacer.pauseProducing()
        pacer.attach(child)  # attached while paused: paused at once
        pacer.resumeProducing()
        pacer.attach(None)
        pacer.pauseProducing()
        pacer.attach(child)
        pacer.stopProducing()
        self.assertEqual(child.calls, ["pause", "resume", "pause", "stop"])

"""netproto_twisted.core.throttle: the byte bucket and its two adapters, on a fake clock."""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import Clock
from twisted.test.proto_helpers import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from netproto_twisted.core.streaming import StreamProducer
from netproto_twisted.core.throttle import ByteThrottle, InputThrottle, ThrottledConsumer


class ByteThrottleTests(SynchronousTestCase):
    def test_starts_full_then_owes(self) -> None:
        clock = Clock()
        t = ByteThrottle(clock, 1000, burst=500)
        self.assertEqual(t.spend(500), 0.0)
        self.assertEqual(t.spend(1000), 1.0)  # 1000 bytes of debt at 1000 B/s
        clock.advance(0.5)
        self.assertAlmostEqual(t.delay(), 0.5)
        clock.advance(0.5)
        self.assertEqual(t.delay(), 0.0)
        self.assertEqual(t.total, 1500)

    def test_refill_capped_at_burst(self) -> None:
        clock = Clock()
        t = ByteThrottle(clock, 100, burst=50)
        clock.advance(1000)
        self.assertEqual(t.balance, 50)

    def test_default_burst_and_block_size(self) -> None:
        t = ByteThrottle(Clock(), 400_000)
        self.assertEqual(t.burst, 100_000)
        self.assertEqual(t.block_size(65536), 50_000)
        self.assertEqual(t.block_size(4096), 4096)
        self.assertEqual(ByteThrottle(Clock(), 10).block_size(65536), 1024)
        self.assertEqual(ByteThrottle(Clock(), 10).burst, 1024)

    def test_bad_values(self) -> None:
        for rate in (0, -1, float("inf"), float("nan")):
            self.assertRaises(ValueError, ByteThrottle, Clock(), rate)
        self.assertRaises(ValueError, ByteThrottle, Clock(), 10, burst=0.5)


@implementer(IPushProducer)
class _Producer:
    def __init__(self) -> None:
        self.paused = False
        self.stopped = False
        self.events: list[str] = []

    def pauseProducing(self) -> None:
        self.paused = True
        self.events.append("pause")

    def resumeProducing(self) -> None:
        self.paused = False
        self.events.append("resume")

    def stopProducing(self) -> None:
        self.stopped = True


class ThrottledConsumerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.transport = StringTransport()
        self.throttle = ByteThrottle(self.clock, 1000, burst=1000)
        self.consumer = ThrottledConsumer(self.transport, self.throttle)
        self.producer = _Producer()
        self.consumer.registerProducer(self.producer, True)

    def test_registers_itself_with_the_consumer(self) -> None:
        self.assertIs(self.transport.producer, self.consumer)
        self.assertRaises(ValueError, self.consumer.registerProducer, self.producer, False)

    def test_pauses_while_in_debt(self) -> None:
        self.consumer.write(b"x" * 1000)
        self.assertFalse(self.producer.paused)  # the burst
        self.consumer.write(b"x" * 500)
        self.assertTrue(self.producer.paused)
        self.assertTrue(self.consumer.paused_by_throttle)
        self.clock.advance(0.49)
        self.assertTrue(self.producer.paused)
        self.clock.advance(0.02)
        self.assertFalse(self.producer.paused)
        self.assertEqual(self.transport.value(), b"x" * 1500)

    def test_consumer_pause_and_throttle_combine(self) -> None:
        self.consumer.write(b"x" * 1500)
        self.consumer.pauseProducing()  # the transport is full too
        self.clock.advance(1)
        self.assertTrue(self.producer.paused)  # the transport still holds it
        self.consumer.resumeProducing()
        self.assertFalse(self.producer.paused)
        self.consumer.write(b"x" * 2000)
        self.assertTrue(self.producer.paused)
        self.consumer.pauseProducing()
        self.consumer.resumeProducing()  # the rate still holds it
        self.assertTrue(self.producer.paused)
        self.clock.advance(2)
        self.assertFalse(self.producer.paused)
        self.assertEqual(self.producer.events, ["pause", "resume", "pause", "resume"])

    def test_stop_and_unregister(self) -> None:
        self.consumer.write(b"x" * 3000)
        self.consumer.stopProducing()
        self.assertTrue(self.producer.stopped)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.consumer.unregisterProducer()
        self.assertIsNone(self.transport.producer)

    def test_stream_producer_average_rate(self) -> None:
        """A whole StreamProducer run through it: 100 kB at 10 kB/s takes about 10 s."""
        throttle = ByteThrottle(self.clock, 10_000, burst=2_000)
        transport = StringTransport()
        consumer = ThrottledConsumer(transport, throttle)
        data = bytes(100_000)
        producer = StreamProducer(data, chunk_size=throttle.block_size(65536))
        done = producer.start(consumer)
        seen: list[Any] = []
        done.addBoth(seen.append)
        steps = 0
        while not seen and steps < 1000:
            self.clock.advance(0.05)
            steps += 1
        self.assertEqual(seen, [100_000])
        self.assertEqual(transport.value(), data)
        elapsed = self.clock.seconds()
        self.assertGreaterEqual(elapsed, 9.7)  # (100 kB - 2 kB burst) / 10 kB/s = 9.8 s
        self.assertLess(elapsed, 10.5)


class InputThrottleTests(SynchronousTestCase):
    def test_pause_then_resume(self) -> None:
        clock = Clock()
        calls: list[str] = []
        throttle = InputThrottle(
            ByteThrottle(clock, 100, burst=100),
            lambda: calls.append("pause"),
            lambda: calls.append("resume"),
        )
        throttle.received(100)
        self.assertEqual(calls, [])
        throttle.received(50)
        throttle.received(50)  # one pause for both
        self.assertEqual(calls, ["pause"])
        self.assertTrue(throttle.waiting)
        clock.advance(0.99)
        self.assertEqual(calls, ["pause"])
        clock.advance(0.02)
        self.assertEqual(calls, ["pause", "resume"])
        self.assertFalse(throttle.waiting)

    def test_stop_cancels(self) -> None:
        clock = Clock()
        throttle = InputThrottle(ByteThrottle(clock, 10, burst=10), lambda: None, self.fail)
        throttle.received(100)
        throttle.stop()
        self.assertEqual(clock.getDelayedCalls(), [])

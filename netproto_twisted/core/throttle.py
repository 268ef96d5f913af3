"""Byte-rate limits on the reactor clock: a token bucket that pauses producers, never sleeps.

:class:`ByteThrottle` is the bucket: ``rate`` bytes a second, at most
``burst`` saved up.  :meth:`ByteThrottle.spend` takes what was just sent or
received -- the balance may go below zero -- and says how long to wait
before the next byte; the average rate over any span longer than a block
stays within ``rate`` (plus the burst).

Two adapters apply it without blocking anything:

- :class:`ThrottledConsumer` sits between a push producer and its consumer
  (a transport): it passes writes on and pauses the producer while the
  bucket is in debt, as well as whenever the consumer itself pauses it.
- :class:`InputThrottle` counts received bytes and calls ``pause`` /
  ``resume`` (a protocol's ``pause_input``/``resume_input``, or the
  transport's ``pauseProducing``/``resumeProducing``) around the wait.

A producer that reads blocks of its own size should keep them to a fraction
of a second at the rate (:meth:`ByteThrottle.block_size`), so that pauses
stay short and even.

Time comes from the ``clock`` (an ``IReactorTime``), so tests drive it with
``MemoryReactorClock``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IConsumer, IDelayedCall, IPushProducer, IReactorTime
from zope.interface import implementer

__all__ = ["ByteThrottle", "InputThrottle", "ThrottledConsumer"]

#: Smallest block :meth:`ByteThrottle.block_size` suggests.
MIN_BLOCK = 1024


class ByteThrottle:
    """A token bucket of bytes: ``rate`` a second, ``burst`` at most saved up (starts full).

    :param clock: an ``IReactorTime``.
    :param rate: bytes per second (> 0).
    :param burst: bytes that may go at once after a quiet spell; default a
        quarter of a second's worth (at least :data:`MIN_BLOCK`).
    """

    def __init__(self, clock: IReactorTime, rate: float, burst: float | None = None) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a positive number of bytes per second, not {rate}")
        if burst is None:
            burst = max(float(MIN_BLOCK), rate / 4)
        if not (math.isfinite(burst) and burst >= 1):
            raise ValueError(f"burst must be at least 1 byte, not {burst}")
        self.clock = clock
        self.rate = float(rate)
        self.burst = float(burst)
        self._balance = self.burst
        self._stamp = clock.seconds()
        #: Bytes spent in all.
        self.total = 0

    def _refill(self) -> None:
        now = self.clock.seconds()
        elapsed = now - self._stamp
        self._stamp = now
        if elapsed > 0:
            self._balance = min(self.burst, self._balance + elapsed * self.rate)

    @property
    def balance(self) -> float:
        """Bytes that may go now (negative: in debt)."""
        self._refill()
        return self._balance

    def spend(self, count: int) -> float:
        """Take ``count`` bytes (just sent or received); return the seconds to wait (0.0: none)."""
        self._refill()
        self.total += count
        self._balance -= count
        return self.delay()

    def delay(self) -> float:
        """Seconds until the balance is back to zero (0.0 if it is not in debt)."""
        self._refill()
        # Under half a byte of debt is float rounding: waiting for it could schedule a
        # timer no later than now, again and again.
        return 0.0 if self._balance > -0.5 else -self._balance / self.rate

    def block_size(self, largest: int) -> int:
        """A block size for producers: about an eighth of a second's worth, within bounds."""
        return max(MIN_BLOCK, min(largest, int(self.rate / 8)))


class _Waiter:
    """One timer that ends a throttle pause (shared by the two adapters)."""

    def __init__(self, throttle: ByteThrottle, wake: Callable[[], None]) -> None:
        self.throttle = throttle
        self._wake = wake
        self.call: IDelayedCall | None = None

    @property
    def waiting(self) -> bool:
        return self.call is not None

    def spent(self, count: int) -> bool:
        """Spend ``count``; start the timer when in debt; return whether it waits now."""
        wait = self.throttle.spend(count)
        if wait > 0 and self.call is None:
            self.call = self.throttle.clock.callLater(wait, self._fire)
        return self.call is not None

    def _fire(self) -> None:
        self.call = None
        wait = self.throttle.delay()  # float rounding: a hair of debt left
        if wait > 0:
            self.call = self.throttle.clock.callLater(wait, self._fire)
            return
        self._wake()

    def cancel(self) -> None:
        call, self.call = self.call, None
        if call is not None and call.active():
            call.cancel()


@implementer(IConsumer, IPushProducer)
class ThrottledConsumer:
    """A consumer that passes writes to ``consumer`` at most at the throttle's rate.

    Register a push producer with it as with the consumer itself; the
    producer is paused while the bucket is in debt or while ``consumer``
    has paused it, and resumed when neither holds.  Writes made while paused
    still go through (and are counted): the producer is trusted to stop.

    :ivar paused_by_throttle: whether the rate holds the producer now.
    """

    def __init__(self, consumer: Any, throttle: ByteThrottle) -> None:
        self.consumer = consumer
        self.throttle = throttle
        self._producer: Any = None
        self._consumer_paused = False
        self._waiter = _Waiter(throttle, self._throttle_over)

    @property
    def paused_by_throttle(self) -> bool:
        """Whether the rate holds the producer now."""
        return self._waiter.waiting

    # -- IConsumer ---------------------------------------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Take ``producer`` (push producers only) and stand in for it with the consumer."""
        if not streaming:
            raise ValueError("ThrottledConsumer takes push (streaming) producers only")
        self._producer = producer
        self.consumer.registerProducer(self, True)

    def unregisterProducer(self) -> None:
        """Forget the producer and the pending wait."""
        self._producer = None
        self._waiter.cancel()
        self.consumer.unregisterProducer()

    def write(self, data: bytes) -> None:
        """Pass ``data`` on; pause the producer if the bucket is now in debt."""
        self.consumer.write(data)
        was_waiting = self._waiter.waiting
        held = self._waiter.spent(len(data))
        if held and not was_waiting and not self._consumer_paused and self._producer is not None:
            self._producer.pauseProducing()

    # -- IPushProducer (towards the consumer) ------------------------------------------

    def pauseProducing(self) -> None:
        """The consumer is full."""
        was_running = not self._consumer_paused and not self._waiter.waiting
        self._consumer_paused = True
        if was_running and self._producer is not None:
            self._producer.pauseProducing()

    def resumeProducing(self) -> None:
        """The consumer has room; resume unless the rate still holds."""
        self._consumer_paused = False
        if not self._waiter.waiting and self._producer is not None:
            self._producer.resumeProducing()

    def stopProducing(self) -> None:
        """The consumer is gone: stop the producer."""
        self._waiter.cancel()
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.stopProducing()

    def _throttle_over(self) -> None:
        if not self._consumer_paused and self._producer is not None:
            self._producer.resumeProducing()


class InputThrottle:
    """Received bytes at most at the throttle's rate: ``pause()`` while in debt, then ``resume()``.

    Call :meth:`received` with each block's size; call :meth:`stop` when the
    connection ends (cancels the timer).
    """

    def __init__(
        self, throttle: ByteThrottle, pause: Callable[[], None], resume: Callable[[], None]
    ) -> None:
        self.throttle = throttle
        self._pause = pause
        self._resume = resume
        self._waiter = _Waiter(throttle, resume)

    @property
    def waiting(self) -> bool:
        """Whether input is held by the rate now."""
        return self._waiter.waiting

    def received(self, count: int) -> None:
        """Count ``count`` bytes; pause input if the bucket is now in debt."""
        was_waiting = self._waiter.waiting
        if self._waiter.spent(count) and not was_waiting:
            self._pause()

    def stop(self) -> None:
        """No more input: cancel a pending resume."""
        self._waiter.cancel()

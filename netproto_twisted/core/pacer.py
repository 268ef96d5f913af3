"""Pace a long reply made of many writes by the consumer's backpressure.

A reply produced in steps (an IMAP ``FETCH 1:*`` answered a batch of
messages at a time, some messages streamed from their files) must not run
ahead of the client: the next step starts only when the connection's
write buffer has room.  :class:`Pacer` is the
:class:`~twisted.internet.interfaces.IPushProducer` registered with the
consumer (the transport) for the whole reply; the consumer pauses and
resumes it, and the code producing the reply asks :meth:`Pacer.ready`
before each step::

    pacer = Pacer()
    consumer.registerProducer(pacer, True)
    while steps:
        await pacer.ready()           # at once unless the consumer is full
        consumer.write(next_step())
    consumer.unregisterProducer()

A step that streams with its own
:class:`~netproto_twisted.core.streaming.StreamProducer` (created with
``register=False``) is handed the pause and resume calls through
:meth:`Pacer.attach`, since a consumer has one producer at a time.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from netproto_twisted.core.errors import NetprotoError

__all__ = ["Pacer", "PacerStopped"]


class PacerStopped(NetprotoError):
    """The consumer stopped the producer: the connection is gone."""


@implementer(IPushProducer)
class Pacer:
    """A push producer that only records the consumer's pause, resume and stop (see above)."""

    def __init__(self) -> None:
        self.paused = False
        self.stopped = False
        self._waiting: list[Deferred[None]] = []
        self._child: IPushProducer | None = None

    def attach(self, child: IPushProducer | None) -> None:
        """Forward pause, resume and stop to ``child`` (``None``: to nobody) from now on."""
        self._child = child
        if child is not None and self.paused:
            child.pauseProducing()

    def ready(self) -> Deferred[None]:
        """A Deferred that fires when the consumer has room (at once if it has).

        Fails with :class:`PacerStopped` once the consumer has stopped the producer.
        """
        if self.stopped:
            return fail(PacerStopped("the consumer is gone"))
        if not self.paused:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        return d

    def pauseProducing(self) -> None:
        """The consumer is full."""
        self.paused = True
        if self._child is not None:
            self._child.pauseProducing()

    def resumeProducing(self) -> None:
        """The consumer has room: fire what waits for :meth:`ready`."""
        self.paused = False
        if self._child is not None:
            self._child.resumeProducing()
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            if not self.paused:
                d.callback(None)
            else:  # a callback filled the consumer again
                self._waiting.append(d)

    def stopProducing(self) -> None:
        """The consumer is gone: fail what waits."""
        self.stopped = True
        if self._child is not None:
            self._child.stopProducing()
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.errback(PacerStopped("the consumer is gone"))

"""Coalesce one job asked for by many callers: one run per key, latecomers share the next.

A thousand IMAP sessions idling on one mailbox all learn of a delivery at
once, and each would rescan the folder.  :class:`Coalescer` runs the job
for a key once and gives every caller that asked while no run had started
the same result.  A caller that asks while a run is already under way may
need changes that run started too early to see, so it joins the *next*
run, which starts when the current one ends and serves everyone who joined
it: a burst of any size costs at most two runs, and every caller gets a
result that began after its request.

Results are shared, not copied: they should be immutable.  Exactly one
caller per run is told it was the *first* (the one whose ``start`` ran), for
work that must happen once per run (IMAP's ``\\Recent`` goes to one session).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure

__all__ = ["Coalescer"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class _Run(Generic[T]):
    __slots__ = ("start", "waiters")

    def __init__(self, start: Callable[[], Deferred[T]]) -> None:
        self.start = start
        self.waiters: list[Deferred[tuple[T, bool]]] = []


class Coalescer(Generic[K, T]):
    """At most one run per key at a time; callers arriving during a run share the next one."""

    def __init__(self) -> None:
        self._running: dict[K, _Run[T]] = {}
        self._next: dict[K, _Run[T]] = {}

    def __len__(self) -> int:
        """Keys with a run under way."""
        return len(self._running)

    def run(self, key: K, start: Callable[[], Deferred[T]]) -> Deferred[tuple[T, bool]]:
        """Fire with ``(result, first)``: the result of a run that began after this call.

        ``first`` is true for exactly one caller of each run.  ``start`` is
        used only if this call begins a run; a failure reaches every caller
        of that run.
        """
        waiter: Deferred[tuple[T, bool]] = Deferred()
        if key not in self._running:
            job = _Run(start)
            job.waiters.append(waiter)
            self._begin(key, job)
            return waiter
        queued = self._next.get(key)
        if queued is None:
            queued = self._next[key] = _Run(start)
        queued.waiters.append(waiter)
        return waiter

    def _begin(self, key: K, job: _Run[T]) -> None:
        self._running[key] = job
        maybeDeferred(job.start).addBoth(self._finished, key, job)

    def _finished(self, result: T | Failure, key: K, job: _Run[T]) -> None:
        del self._running[key]
        queued = self._next.pop(key, None)
        if queued is not None:
            self._begin(key, queued)
        for i, waiter in enumerate(job.waiters):
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback((result, i == 0))

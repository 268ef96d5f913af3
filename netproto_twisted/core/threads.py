"""Running blocking work off the reactor thread: the ``Runner`` type and its makers.

A :data:`Runner` is how a component that does blocking work (disk, password
hashing) is told where to do it: ``run(f, *args, **kwargs)`` calls
``f(*args, **kwargs)`` somewhere and returns a Deferred that fires (on the
reactor thread) with its result or failure.  Daemons pass
:func:`thread_runner`; tests and command-line tools pass
:data:`synchronous_runner`, which blocks.

:class:`InlineUnlessSlow` is for calls that are short on a local disk (a
``stat``, an ``open``): it runs them on the calling thread, and sends them
to another runner for a while once one of them was slow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

__all__ = ["InlineUnlessSlow", "Runner", "synchronous_runner", "thread_runner"]

_log = Logger()

Runner = Callable[..., "Deferred[Any]"]
"""``run(f, *args, **kwargs)``: call ``f(*args, **kwargs)`` elsewhere, fire with its result."""


def thread_runner(reactor: IReactorFromThreads, threadpool: ThreadPool) -> Runner:
    """Return a :data:`Runner` running the work in ``threadpool`` (``reactor.getThreadPool()``)."""

    def run(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        return deferToThreadPool(reactor, threadpool, f, *args, **kwargs)

    return run


def _run_now(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
    return maybeDeferred(f, *args, **kwargs)


synchronous_runner: Runner = _run_now
"""A :data:`Runner` running the work at once in the calling thread (tests, tools: it blocks)."""


class InlineUnlessSlow:
    """A :data:`Runner` for short blocking calls: inline, until they prove slow.

    A local disk answers a ``stat`` or an ``open`` in microseconds, much less
    than a trip to a thread pool costs (two thread hand-overs, and the GIL
    passed back and forth while the reactor runs).  So calls run at once on
    the calling thread, timed.  A call longer than *slow* seconds is a
    strike, and each quick call takes a quarter of a strike away; at three
    strikes (a network filesystem, a disk under load: most calls slow), or
    after one call twenty times too long, the calls of the next *cooldown*
    seconds go to *fallback* (a thread pool's runner), then inline again.  A
    call that was slow only because the thread was preempted on a busy
    machine, now and then, does not move them.  ``slow=None`` sends every
    call to *fallback*.

    :param clock: the reactor's clock (for *cooldown*).
    :param fallback: where calls go while the disk is slow.
    :param timer: what the calls are timed with (tests pass a fake).
    """

    #: Strikes that move calls to the fallback.
    STRIKES = 3.0
    #: What a quick call takes off the strikes.
    FORGIVE = 0.25
    #: A call this many times *slow* moves calls at once.
    FAR_TOO_SLOW = 20

    def __init__(
        self,
        clock: IReactorTime,
        fallback: Runner,
        *,
        slow: float | None = 0.005,
        cooldown: float = 60.0,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.clock = clock
        self.fallback = fallback
        self.slow = slow
        self.cooldown = cooldown
        self._timer = timer
        self._until: float | None = None if slow is not None else float("inf")
        self._strikes = 0.0
        #: How many calls were found slow so far.
        self.slow_calls = 0

    def _inline_now(self) -> bool:
        until = self._until
        if until is None:
            return True
        if self.clock.seconds() < until:
            return False
        self._until = None
        return True

    def __call__(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Run ``f(*args, **kwargs)``; return a Deferred of its result or failure."""
        if not self._inline_now():
            return self.fallback(f, *args, **kwargs)
        timer = self._timer
        start = timer()
        try:
            d: Deferred[Any] = succeed(f(*args, **kwargs))
        except BaseException:
            d = fail()
        took = timer() - start
        slow = self.slow
        assert slow is not None  # else _inline_now() is false
        if took <= slow:
            if self._strikes:
                self._strikes = max(0.0, self._strikes - self.FORGIVE)
            return d
        self.slow_calls += 1
        self._strikes += 1.0
        if self._strikes >= self.STRIKES or took > slow * self.FAR_TOO_SLOW:
            self._strikes = 0.0
            self._until = self.clock.seconds() + self.cooldown
            _log.warn(
                "file operations are slow ({took:.3f} s for the last one on the reactor "
                "thread): they go to the thread pool for the next {cooldown:g} s",
                took=took,
                cooldown=self.cooldown,
            )
        return d

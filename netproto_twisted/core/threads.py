"""Running blocking work off the reactor thread: the ``Runner`` type and its two makers.

A :data:`Runner` is how a component that does blocking work (disk, password
hashing) is told where to do it: ``run(f, *args, **kwargs)`` calls
``f(*args, **kwargs)`` somewhere and returns a Deferred that fires (on the
reactor thread) with its result or failure.  Daemons pass
:func:`thread_runner`; tests and command-line tools pass
:data:`synchronous_runner`, which blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

__all__ = ["Runner", "synchronous_runner", "thread_runner"]

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

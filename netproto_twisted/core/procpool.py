"""CPU-bound work in other processes, with Deferred results: :class:`ProcessPool`.

A Twisted daemon computes on one core (the reactor thread and its thread
pool share one interpreter lock).  Work that is pure computation on data a
worker can read itself (parsing message files, for instance) can run in a
:class:`ProcessPool` on another core instead.  It wraps
:class:`concurrent.futures.ProcessPoolExecutor`:

- workers are started with ``spawn`` (a fresh interpreter), never by
  forking the daemon, which has threads;
- :meth:`ProcessPool.start` starts them ahead of use and imports the
  ``preload`` modules there, so the first task does not pay for an
  interpreter's start;
- it is bounded: at most ``max_pending`` tasks are queued or running; past
  that :meth:`ProcessPool.run` fails at once with :class:`PoolBusy`;
- workers end with the daemon, even one killed without a word (they check
  for their parent every second: :func:`~netproto_twisted.core.procworker.watch_parent`);
- it fails cleanly: a worker that dies (killed, out of memory) breaks the
  pool; every task then fails with :class:`PoolUnavailable` and
  :attr:`ProcessPool.available` turns false, so that callers do the work
  themselves from then on.  Callers must always have that fallback.

Functions and arguments cross the process boundary by pickling: pass
module-level functions and plain data.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import Logger

from netproto_twisted.core.procworker import nothing, preload

__all__ = ["PoolBusy", "PoolUnavailable", "ProcessPool", "Withdrawn"]

_log = Logger(namespace="netproto.procpool")


@contextlib.contextmanager
def _stderr_with_a_descriptor() -> Iterator[None]:
    """Let multiprocessing see a real ``sys.stderr`` while it starts processes.

    Its resource tracker hands ``sys.stderr.fileno()`` to the process it
    starts.  Under ``twistd``, ``sys.stderr`` is a log file object whose
    ``fileno()`` is -1 on some Twisted releases (26.4), and the start then
    fails ("bad value(s) in fds_to_keep"); the process's own descriptor 2
    is used instead for that moment.
    """
    stderr = sys.stderr
    try:
        bogus = stderr.fileno() < 0
    except (AttributeError, OSError, ValueError):
        bogus = False  # multiprocessing leaves a stderr without a descriptor out
    if not bogus or sys.__stderr__ is None:
        yield
        return
    sys.stderr = sys.__stderr__
    try:
        yield
    finally:
        sys.stderr = stderr


class PoolUnavailable(Exception):
    """The pool is stopped or broken (a worker died): do the work another way."""


class PoolBusy(Exception):
    """The pool already holds ``max_pending`` tasks: do the work another way."""


class Withdrawn(Exception):
    """The task was taken back before a worker started it (:meth:`ProcessPool.withdraw`)."""


class ProcessPool:
    """A bounded pool of ``workers`` spawned processes (see the module docstring).

    :param reactor: where results are delivered (Deferreds fire on its thread).
    :param workers: how many processes.
    :param preload: modules each worker imports when it starts.
    :param bare_packages: packages (and their sub-packages) imported in the workers
        without running their ``__init__`` modules, for workers that need a few
        plain modules of a package whose ``__init__`` imports much more; the
        tasks' functions must then not rely on what those ``__init__`` modules do.
    :param max_pending: tasks queued or running at most.
    """

    def __init__(
        self,
        reactor: IReactorFromThreads,
        workers: int = 1,
        *,
        preload: Sequence[str] = (),
        bare_packages: Sequence[str] = (),
        max_pending: int = 256,
    ) -> None:
        if workers < 1:
            raise ValueError("a process pool needs at least one worker")
        self._reactor = reactor
        self._workers = workers
        self._preload = tuple(preload)
        self._bare = tuple(bare_packages)
        self._futures: dict[Deferred[Any], Future[Any]] = {}
        self.max_pending = max_pending
        self.pending = 0
        """Tasks queued or running."""
        self._executor: ProcessPoolExecutor | None = None
        self._stopped = False

    @property
    def available(self) -> bool:
        """Whether tasks can be submitted (not stopped, no worker died)."""
        return not self._stopped

    def start(self) -> None:
        """Start the workers now (they import ``preload``); idempotent."""
        if self._executor is None and not self._stopped:
            with _stderr_with_a_descriptor():
                self._executor = ProcessPoolExecutor(
                    self._workers,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=preload,
                    initargs=(self._preload, self._bare, os.getpid()),
                )
                # Errors are logged by _broken (a worker that cannot start breaks the pool).
                started = self._executor.submit(nothing)
            self._track(started).addErrback(lambda _: None)

    def run(self, f: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """Call ``f(*args)`` in a worker; fire (on the reactor thread) with its result.

        Fails with :class:`PoolUnavailable` (stopped or broken) or
        :class:`PoolBusy` (``max_pending`` reached) without running anything.
        """
        if self._stopped:
            return fail(PoolUnavailable("the process pool is stopped or broken"))
        if self.pending >= self.max_pending:
            return fail(PoolBusy(f"{self.pending} tasks pending"))
        self.start()
        assert self._executor is not None
        try:
            with _stderr_with_a_descriptor():  # a submit may start a worker
                future = self._executor.submit(f, *args)
        except (BrokenProcessPool, RuntimeError) as e:
            self._broken(e)
            return fail(PoolUnavailable(str(e)))
        return self._track(future)

    def withdraw(self, d: Deferred[Any]) -> bool:
        """Take back a task no worker has started: True if it was (``d`` then fails with
        :class:`Withdrawn`), False if it is running or done."""
        future = self._futures.get(d)
        return future is not None and not future.cancelled() and future.cancel()

    def _track(self, future: Future[Any]) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.pending += 1
        self._futures[d] = future

        def done(future: Future[Any]) -> None:  # in the executor's thread
            self._reactor.callFromThread(self._deliver, future, d)

        future.add_done_callback(done)
        return d

    def _deliver(self, future: Future[Any], d: Deferred[Any]) -> None:
        self.pending -= 1
        del self._futures[d]
        if future.cancelled():
            if self._stopped:
                d.errback(PoolUnavailable("the process pool stopped"))
            else:
                d.errback(Withdrawn())
            return
        error = future.exception()
        if isinstance(error, BrokenProcessPool):
            self._broken(error)
            d.errback(PoolUnavailable(str(error)))
        elif error is not None:
            d.errback(error)
        else:
            d.callback(future.result())

    def _broken(self, error: BaseException) -> None:
        if not self._stopped:
            _log.warn("process pool broken ({error}); working without it", error=str(error))
        self.stop()

    def stop(self) -> None:
        """Stop the workers (tasks not started are cancelled); the pool is then unavailable."""
        self._stopped = True
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

"""WSGI (PEP 3333) applications on twisted.web, in a bounded thread pool.

:func:`load_app` imports ``package.module:attribute``;
:class:`WSGIHost` runs the application (:class:`~.wsgi_run.WSGIRun`: no
blocking round trip to the reactor per response, unlike
:mod:`twisted.web.wsgi`) on a thread pool of at most ``threads`` threads
(:class:`WSGIThreadPool`, or any object with ``callInThread`` such as
Twisted's ``ThreadPool``) and refuses with 503 once ``max_pending`` requests
are waiting or running, so a stalled application cannot queue the whole
world in memory.  :class:`ThreadPoolService` starts and stops the pool with
the daemon.

Finished responses come back to the reactor in batches: a pool thread
appends its call to a queue and wakes the reactor only when no wake-up is
already on its way, so under load one reactor turn writes many responses
(one wake-up, one thread switch, instead of one each).
"""

from __future__ import annotations

import importlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from netproto_twisted.core.errors import ConfigError
from netproto_twisted.http.server.wsgi_run import WSGIRun, environ_template, wsgi_environ

__all__ = [
    "DEFAULT_THREADS",
    "ThreadPoolService",
    "WSGIApp",
    "WSGIHost",
    "WSGIThreadPool",
    "load_app",
]

_log = Logger(namespace="netproto.http.wsgi")

#: Threads of a WSGI pool by default (waitress's default too: with the GIL, more threads
#: only help applications that wait on I/O).
DEFAULT_THREADS = 4
#: Requests waiting for or running in the pool before new ones get 503: as many as
#: the default connection limit can bring, one each (a client holding a few
#: hundred keep-alive connections is served, a flood is not queued without end).
DEFAULT_MAX_PENDING = 1000
#: A WSGI application.
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def load_app(spec: str) -> WSGIApp:
    """Import ``package.module:name`` (``name`` may be dotted); raises :class:`ConfigError`."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(spec, "expected package.module:application")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(spec, f"cannot import {module_name}: {e}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(spec, f"{module_name} has no {attribute}") from None
    if not callable(target):
        raise ConfigError(spec, f"{attribute} is not callable")
    return target  # type: ignore[no-any-return]


class Pool(Protocol):
    """What :class:`WSGIHost` and :class:`ThreadPoolService` need of a thread pool."""

    def callInThread(self, func: Callable[..., object], *args: object) -> None:
        """Run ``func(*args)`` in one of the pool's threads."""

    def start(self) -> None:
        """Start the threads."""

    def stop(self) -> None:
        """Stop the threads (after the calls queued)."""


class WSGIThreadPool:
    """A fixed number of threads taking calls from one queue (a C ``SimpleQueue``).

    Lighter than Twisted's ``ThreadPool`` per call (no per-call context or
    coordination through the reactor); the threads start with :meth:`start`
    and :meth:`stop` lets each finish the calls queued before it, then joins
    them.  A call that raises is logged; the thread goes on.
    """

    def __init__(self, threads: int, name: str = "netproto-wsgi") -> None:
        if threads < 1:
            raise ValueError("a pool needs at least one thread")
        self.size = threads
        self.name = name
        self.calls: queue.SimpleQueue[tuple[Callable[..., object], tuple[object, ...]] | None]
        self.calls = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []

    def callInThread(self, func: Callable[..., object], *args: object) -> None:
        """Queue ``func(*args)`` for the next free thread."""
        self.calls.put((func, args))

    def start(self) -> None:
        """Start the threads."""
        if self.threads:
            return
        for number in range(self.size):
            thread = threading.Thread(target=self._work, name=f"{self.name}-{number}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        """Let the threads finish what is queued, then join them."""
        threads, self.threads = self.threads, []
        for _ in threads:
            self.calls.put(None)
        for thread in threads:
            thread.join()

    def _work(self) -> None:
        get = self.calls.get
        while (call := get()) is not None:
            func, args = call
            try:
                func(*args)
            except BaseException:
                _log.failure("call in the WSGI pool failed")


class ThreadPoolService(Service):
    """Start a thread pool with the daemon; stop it (joining its threads) on shutdown."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def startService(self) -> None:
        """Start the pool's threads."""
        super().startService()  # type: ignore[no-untyped-call]
        self.pool.start()

    def stopService(self) -> None:
        """Stop the pool (waits for running calls)."""
        super().stopService()  # type: ignore[no-untyped-call]
        self.pool.stop()


class WSGIHost(Resource):
    """A leaf resource running a WSGI application with a bound on the requests in flight."""

    isLeaf = True

    def __init__(
        self,
        reactor: Any,
        pool: Pool,
        app: WSGIApp,
        *,
        max_pending: int | None = None,
        multiprocess: bool = False,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.reactor = reactor
        self.app = app
        self.multiprocess = multiprocess
        self.template = environ_template(multiprocess=multiprocess)
        self.pool = pool
        self.max_pending = max_pending if max_pending is not None else DEFAULT_MAX_PENDING
        self.pending = 0
        self.ready: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self.wake_lock = threading.Lock()
        self.wake_pending = False

    def hand_over(self, func: Callable[..., None], *args: Any) -> None:
        """From a pool thread: run ``func(*args)`` on the reactor, with others in one turn."""
        self.ready.append((func, args))
        with self.wake_lock:
            if self.wake_pending:
                return
            self.wake_pending = True
        self.reactor.callFromThread(self._run_ready)

    def _run_ready(self) -> None:
        with self.wake_lock:
            self.wake_pending = False
        ready = self.ready
        while ready:
            func, args = ready.popleft()
            try:
                func(*args)
            except Exception:
                _log.failure("delivering a WSGI response failed")

    def streams_body(self, request: Request) -> bool:
        """The application reads ``wsgi.input`` as the body arrives (any length, chunked too)."""
        return True

    def render(self, request: Request) -> Any:
        """Run the application for ``request`` (503 when too many are in flight)."""
        if self.pending >= self.max_pending:
            body = b"server busy\n"
            request.setResponseCode(http.SERVICE_UNAVAILABLE)
            request.setHeader(b"retry-after", b"1")
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.setHeader(b"content-length", b"%d" % len(body))
            return body
        self.pending += 1
        environ = wsgi_environ(request, template=self.template)
        run = WSGIRun(self.reactor, request, self.app, environ, self.hand_over)
        request.notifyFinish().addBoth(self._done, run)
        self.pool.callInThread(run.run)
        return NOT_DONE_YET

    def _done(self, result: Any, run: WSGIRun) -> None:
        self.pending -= 1
        run.finished(result)

"""WSGI (PEP 3333) applications on twisted.web, in a bounded thread pool.

:func:`load_app` imports ``package.module:attribute``;
:class:`WSGIHost` runs the application (:class:`~.wsgi_run.WSGIRun`: no
blocking round trip to the reactor per response, unlike
:mod:`twisted.web.wsgi`) on its own thread pool of at most
``threads`` threads and refuses with 503 once ``max_pending`` requests are
waiting or running, so a stalled application cannot queue the whole world
in memory.  :class:`ThreadPoolService` starts and stops the pool with the
daemon.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any

from twisted.application.service import Service
from twisted.python.threadpool import ThreadPool
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from netproto_twisted.core.errors import ConfigError
from netproto_twisted.http.server.wsgi_run import WSGIRun, wsgi_environ

__all__ = ["DEFAULT_THREADS", "ThreadPoolService", "WSGIApp", "WSGIHost", "load_app"]

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


class ThreadPoolService(Service):
    """Start a thread pool with the daemon; stop it (joining its threads) on shutdown."""

    def __init__(self, pool: ThreadPool) -> None:
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
        pool: ThreadPool,
        app: WSGIApp,
        *,
        max_pending: int | None = None,
        multiprocess: bool = False,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.reactor = reactor
        self.app = app
        self.multiprocess = multiprocess
        self.pool = pool
        self.max_pending = max_pending if max_pending is not None else DEFAULT_MAX_PENDING
        self.pending = 0

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
        request.notifyFinish().addBoth(self._done)
        run = WSGIRun(
            self.reactor, request, self.app, wsgi_environ(request, multiprocess=self.multiprocess)
        )
        self.pool.callInThread(run.run)
        return NOT_DONE_YET

    def _done(self, _: Any) -> None:
        self.pending -= 1

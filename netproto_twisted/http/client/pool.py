"""The connection pool under the HTTP client: kept-alive connections, a per-host cap, one retry.

:class:`ConnectionPool` holds :class:`~netproto_twisted.http.client.http11.HTTP11Connection`
objects keyed by where they lead (scheme, host, port, and the proxy when
there is one).  :meth:`ConnectionPool.request` sends a request on an idle
connection of its key, or on a new one while the key has fewer than
``max_per_host`` connections, or queues it (first come, first served)
until a connection is free.  A request that is idempotent and replayable
(no body, or bytes) is sent once more, on a fresh connection, when the
kept-alive connection it went out on turns out to be dead before any byte
of the answer came back (servers close idle connections whenever they
like).  The Deferred :meth:`~ConnectionPool.request` returns can be
cancelled: a queued request leaves the queue, a request in flight loses
its connection.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Hashable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, DeferredList
from twisted.internet.interfaces import IProtocol, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer

from netproto_twisted.http.client.http11 import (
    DEFAULT_MAX_HEADER_BYTES,
    HTTP11Connection,
    RawResponse,
)

__all__ = ["ConnectionPool"]


class _Call:
    """One request through the pool: waiting, connecting, or in flight."""

    __slots__ = (
        "body",
        "conn",
        "endpoint",
        "headers",
        "key",
        "method",
        "pool",
        "result",
        "retried",
        "retryable",
        "state",
        "target",
    )

    def __init__(
        self,
        pool: ConnectionPool,
        key: Hashable,
        endpoint: IStreamClientEndpoint,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | IBodyProducer | None,
        retryable: bool,
    ) -> None:
        self.pool = pool
        self.key = key
        self.endpoint = endpoint
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.retryable = retryable
        self.retried = False
        self.conn: HTTP11Connection | None = None
        self.state = "new"  # queued, connecting, sent, done
        self.result: Deferred[RawResponse] = Deferred(self._cancel)

    def use(self, conn: HTTP11Connection) -> None:
        """Send on ``conn``."""
        self.conn = conn
        self.state = "sent"
        conn.request(self, self.method, self.target, self.headers, self.body)

    # ExchangeOwner
    def response_received(self, response: RawResponse) -> None:
        if self.state == "done":
            return
        self.state = "done"
        self.result.callback(response)

    def request_failed(self, failure: Failure, stale: bool) -> None:
        if self.state == "done":
            return
        if stale and self.retryable and not self.retried:
            self.retried = True
            self.conn = None
            self.pool._dispatch(self, fresh=True)
            return
        self.state = "done"
        self.result.errback(failure)

    def connect_failed(self, failure: Failure) -> None:
        if self.state != "done":
            self.state = "done"
            self.result.errback(failure)

    def _cancel(self, _: Deferred[RawResponse]) -> None:
        state, self.state = self.state, "done"
        if state == "queued":
            self.pool._unqueue(self)
        elif state == "sent" and self.conn is not None:
            self.conn.close()
        # "connecting": the connection, once made, goes to the pool as idle.


class ConnectionPool:
    """HTTP/1.1 connections kept alive per key (see the module docstring).

    ``persistent=False`` closes each connection after one exchange.
    """

    def __init__(
        self,
        *,
        max_per_host: int = 10,
        persistent: bool = True,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    ) -> None:
        self.max_per_host = max_per_host
        self.persistent = persistent
        self.max_header_bytes = max_header_bytes
        self._idle: dict[Hashable, list[HTTP11Connection]] = {}
        self._count: dict[Hashable, int] = {}
        self._queue: dict[Hashable, deque[_Call]] = {}
        self._all: set[HTTP11Connection] = set()
        self._closing: list[Deferred[None]] = []
        self._lost_waiters: dict[HTTP11Connection, Deferred[None]] = {}

    def request(
        self,
        key: Hashable,
        endpoint: IStreamClientEndpoint,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | IBodyProducer | None = None,
        *,
        retryable: bool = False,
    ) -> Deferred[RawResponse]:
        """Send a request to ``endpoint`` on a connection of ``key``; fire with its head."""
        call = _Call(self, key, endpoint, method, target, headers, body, retryable)
        self._dispatch(call, fresh=False)
        return call.result

    def idle_count(self, key: Hashable) -> int:
        """How many idle connections ``key`` has."""
        return len(self._idle.get(key, ()))

    def connection_count(self, key: Hashable) -> int:
        """How many connections ``key`` has open or opening."""
        return self._count.get(key, 0)

    # -- internals --------------------------------------------------------------------

    def _dispatch(self, call: _Call, *, fresh: bool) -> None:
        key = call.key
        if not fresh:
            idle = self._idle.get(key)
            while idle:
                conn = idle.pop()
                if conn.reusable:
                    call.use(conn)
                    return
        if self._count.get(key, 0) < self.max_per_host:
            self._connect(call)
        else:
            call.state = "queued"
            self._queue.setdefault(key, deque()).append(call)

    def _unqueue(self, call: _Call) -> None:
        queue = self._queue.get(call.key)
        if queue is not None:
            with contextlib.suppress(ValueError):
                queue.remove(call)

    def _connect(self, call: _Call) -> None:
        key = call.key
        self._count[key] = self._count.get(key, 0) + 1
        call.state = "connecting"
        factory = _Factory(self, key)
        d = call.endpoint.connect(factory)

        def made(proto: IProtocol) -> None:
            conn = factory.built
            assert conn is not None
            if call.state == "connecting":
                call.use(conn)
            else:  # cancelled meanwhile: keep the connection for the next request
                self._idle_conn(conn)

        def failed(failure: Failure) -> None:
            self._count[key] -= 1
            if factory.built is not None:
                self._all.discard(factory.built)
            call.connect_failed(failure)
            self._wake(key)

        d.addCallbacks(made, failed)

    def _build(self, key: Hashable) -> HTTP11Connection:
        conn = HTTP11Connection(
            self._idle_conn, self._lost_conn, max_header_bytes=self.max_header_bytes, key=key
        )
        self._all.add(conn)
        return conn

    def _idle_conn(self, conn: HTTP11Connection) -> None:
        """A connection finished an exchange: hand it to the next in line, or keep it."""
        if not self.persistent:
            conn.close()
            return
        queue = self._queue.get(conn.key)
        while queue:
            call = queue.popleft()
            if call.state == "queued":
                call.use(conn)
                return
        self._idle.setdefault(conn.key, []).append(conn)

    def _lost_conn(self, conn: HTTP11Connection) -> None:
        if conn not in self._all:
            return
        self._all.discard(conn)
        key = conn.key
        self._count[key] -= 1
        idle = self._idle.get(key)
        if idle and conn in idle:
            idle.remove(conn)
        waiter = self._lost_waiters.pop(conn, None)
        if waiter is not None:
            waiter.callback(None)
        self._wake(key)

    def _wake(self, key: Hashable) -> None:
        """A slot of ``key`` is free: connect for the first request waiting, if any."""
        queue = self._queue.get(key)
        while queue and self._count.get(key, 0) < self.max_per_host:
            call = queue.popleft()
            if call.state == "queued":
                self._connect(call)

    def close(self) -> Deferred[None]:
        """Close every connection; fire once they are all closed."""
        waits: list[Deferred[None]] = []
        for conn in list(self._all):
            if conn.lost:
                continue
            d: Deferred[None] = Deferred()
            self._lost_waiters[conn] = d
            waits.append(d)
            conn.close()
        self._idle.clear()
        for queue in self._queue.values():
            while queue:
                call = queue.popleft()
                if call.state == "queued":
                    call.connect_failed(Failure(CancelledError("the pool was closed")))
        return DeferredList(waits).addCallback(lambda _: None)


class _Factory(Factory):
    """Builds the connection for one connect attempt and remembers it."""

    def __init__(self, pool: ConnectionPool, key: Hashable) -> None:
        self.pool = pool
        self.key = key
        self.built: HTTP11Connection | None = None

    def buildProtocol(self, addr: Any) -> HTTP11Connection:
        self.built = self.pool._build(self.key)
        return self.built

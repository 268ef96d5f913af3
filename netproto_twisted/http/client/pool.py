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

HTTP/2: a request made with ``http2=True`` (https with the ``h2`` extra
installed) goes over a connection that offers ``h2`` by ALPN
(:mod:`~netproto_twisted.http.client.alpn`).  While the first connection
of a key is being negotiated, the key's other requests wait for it; when
the server picks ``h2`` they all share that one
:class:`~netproto_twisted.http.client.http2.HTTP2Connection` (which queues
past the server's stream limit), otherwise the key is remembered as
HTTP/1.1-only and its requests spread over up to ``max_per_host``
connections as above.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred, DeferredList
from twisted.internet.interfaces import IProtocol, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer

from netproto_twisted.http.client.alpn import H2, Negotiator
from netproto_twisted.http.client.http11 import (
    DEFAULT_MAX_HEADER_BYTES,
    HTTP11Connection,
    RawResponse,
)

if TYPE_CHECKING:
    from netproto_twisted.http.client.http2 import HTTP2Connection

__all__ = ["ConnectionPool"]


class _Call:
    """One request through the pool: waiting, connecting, or in flight."""

    __slots__ = (
        "body",
        "conn",
        "endpoint",
        "headers",
        "http2",
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
        http2: bool = False,
    ) -> None:
        self.pool = pool
        self.http2 = http2
        self.key = key
        self.endpoint = endpoint
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.retryable = retryable
        self.retried = False
        self.conn: HTTP11Connection | HTTP2Connection | None = None
        self.state = "new"  # queued, connecting, sent, done
        self.result: Deferred[RawResponse] = Deferred(self._cancel)

    def use(self, conn: HTTP11Connection | HTTP2Connection) -> None:
        """Send on ``conn``."""
        self.conn = conn
        self.state = "sent"
        conn.request(self, self.method, self.target, self.headers, self.body)

    # ExchangeOwner
    def response_received(self, response: RawResponse) -> None:
        if self.state == "done":
            return
        self.state = "done"
        self.body = None  # no retry now; a producer keeping its consumer would make a cycle
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
            if isinstance(self.conn, HTTP11Connection):
                self.conn.close()
            else:  # HTTP/2: only this request's stream goes
                self.conn.cancel_request(self)
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
        self._all: set[Any] = set()  # HTTP11Connection, HTTP2Connection, Negotiator
        self._closing: list[Deferred[None]] = []
        self._lost_waiters: dict[Any, Deferred[None]] = {}
        # HTTP/2 (see the module docstring)
        self._h2: dict[Hashable, HTTP2Connection] = {}
        self._probing: set[Hashable] = set()
        self._h1_only: set[Hashable] = set()

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
        http2: bool = False,
    ) -> Deferred[RawResponse]:
        """Send a request to ``endpoint`` on a connection of ``key``; fire with its head.

        ``http2``: the endpoint is TLS offering ``h2`` by ALPN (see the module docstring).
        """
        call = _Call(self, key, endpoint, method, target, headers, body, retryable, http2)
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
        if call.http2 and self._dispatch_h2(call):
            return
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
        if call.http2:
            self._connect_alpn(call)
            return
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

    def _lost_conn(self, conn: Any) -> None:
        if conn not in self._all:
            return
        self._all.discard(conn)
        key = conn.key
        self._count[key] -= 1
        idle = self._idle.get(key)
        if idle and conn in idle:
            idle.remove(conn)
        if self._h2.get(key) is conn:
            del self._h2[key]
        waiter = self._lost_waiters.pop(conn, None)
        if waiter is not None:
            waiter.callback(None)
        self._wake(key)

    def _wake(self, key: Hashable) -> None:
        """A slot of ``key`` is free: connect for the first request waiting, if any."""
        queue = self._queue.get(key)
        probing = self._probing
        while queue and self._count.get(key, 0) < self.max_per_host and key not in probing:
            call = queue.popleft()
            if call.state == "queued":
                self._connect(call)

    # -- HTTP/2 by ALPN ----------------------------------------------------------------

    def _dispatch_h2(self, call: _Call) -> bool:
        """Send on the key's HTTP/2 connection, or wait for its negotiation; False: go on."""
        key = call.key
        conn = self._h2.get(key)
        if conn is not None:
            if conn.available:
                call.use(conn)
                return True
            del self._h2[key]
        if key in self._probing:
            call.state = "queued"
            self._queue.setdefault(key, deque()).append(call)
            return True
        return False

    def _connect_alpn(self, call: _Call) -> None:
        """Connect offering h2; the key's first connection is a probe the others wait for."""
        key = call.key
        self._count[key] = self._count.get(key, 0) + 1
        call.state = "connecting"
        if key not in self._h1_only:
            self._probing.add(key)
        factory = _Factory(self, key, alpn=True)

        def made(_: IProtocol) -> Deferred[Any]:
            negotiator = factory.built
            assert isinstance(negotiator, Negotiator)
            return negotiator.ready

        def negotiated(conn: Any) -> None:
            self._probing.discard(key)
            if isinstance(conn, HTTP11Connection):
                if call.state == "connecting":
                    call.use(conn)
                else:
                    self._idle_conn(conn)
                self._wake(key)
                return
            self._h2[key] = conn
            if call.state == "connecting":
                call.use(conn)
            queue = self._queue.pop(key, None)
            while queue:
                waiting = queue.popleft()
                if waiting.state == "queued":
                    self._dispatch(waiting, fresh=False)

        def failed(failure: Failure) -> None:
            self._probing.discard(key)
            call.connect_failed(failure)
            built = factory.built
            if built is not None and built in self._all:
                self._lost_conn(built)
            elif built is None:
                self._count[key] -= 1
                self._wake(key)

        call.endpoint.connect(factory).addCallback(made).addCallbacks(negotiated, failed)

    def _build_negotiated(
        self, key: Hashable, negotiator: Negotiator, protocol: bytes | None
    ) -> Any:
        """The connection for what ALPN settled: HTTP/2 for ``h2``, else HTTP/1.1."""
        self._all.discard(negotiator)
        conn: HTTP11Connection | HTTP2Connection
        if protocol == H2:
            from netproto_twisted.http.client.http2 import HTTP2Connection

            conn = HTTP2Connection(
                self._lost_conn, max_header_bytes=self.max_header_bytes, key=key
            )
        else:
            if len(self._h1_only) > 1000:
                self._h1_only.clear()
            self._h1_only.add(key)
            conn = HTTP11Connection(
                self._idle_conn, self._lost_conn, max_header_bytes=self.max_header_bytes, key=key
            )
        self._all.add(conn)
        return conn

    def _build_negotiator(self, key: Hashable) -> Negotiator:
        negotiator: Negotiator

        def build(protocol: bytes | None) -> Any:
            return self._build_negotiated(key, negotiator, protocol)

        negotiator = Negotiator(build, key)
        self._all.add(negotiator)
        return negotiator

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
        self._h2.clear()
        for queue in self._queue.values():
            while queue:
                call = queue.popleft()
                if call.state == "queued":
                    call.connect_failed(Failure(CancelledError("the pool was closed")))
        return DeferredList(waits).addCallback(lambda _: None)


class _Factory(Factory):
    """Builds the connection for one connect attempt and remembers it."""

    def __init__(self, pool: ConnectionPool, key: Hashable, *, alpn: bool = False) -> None:
        self.pool = pool
        self.key = key
        self.alpn = alpn
        self.built: Any = None  # HTTP11Connection, or a Negotiator with ``alpn``

    def buildProtocol(self, addr: Any) -> Any:
        if self.alpn:
            self.built = self.pool._build_negotiator(self.key)
        else:
            self.built = self.pool._build(self.key)
        return self.built

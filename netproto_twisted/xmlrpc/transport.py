"""How the XML-RPC client's POSTs travel: the :class:`IPostTransport` seam and two transports.

:class:`DirectTransport`, the :class:`~netproto_twisted.xmlrpc.client.Proxy`'s
default, keeps its own persistent HTTP/1.1 connections to each server
(:class:`~netproto_twisted.http.client.http11.RPCConnection`, the HTTP
client's h11 connection), at most ``max_connections_per_host`` of them;
calls beyond wait in line.  It is lean on purpose, since an RPC client
repeats one small request: one Deferred per call, the request's validated
h11 event reused, the body counted by its Content-Length, and the call
timeouts checked by one timer per transport (not a ``callLater`` per
call).  A call that went out on a kept-alive connection the server had
closed meanwhile is sent once more on a new connection, as
:class:`xmlrpc.client.Transport` does.

:class:`PoolTransport` goes through the HTTP client's connection pool
instead (:meth:`HTTPTransport.fetch
<netproto_twisted.http.client.transport.HTTPTransport.fetch>`), so a Proxy
can share an opener's connections and settings.

Both report a failed connection as the :class:`OSError` subclasses
:class:`xmlrpc.client.ServerProxy` users catch (see
:func:`transport_error`).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from OpenSSL import SSL
from twisted.internet import error as twisted_errors
from twisted.internet import ssl
from twisted.internet.defer import CancelledError, Deferred, DeferredList, fail, succeed
from twisted.internet.endpoints import wrapClientTLS
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocol,
    IPushProducer,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from zope.interface import implementer

from netproto_twisted.core.client import client_endpoint
from netproto_twisted.core.tls import client_options
from netproto_twisted.http.client.errors import URLError
from netproto_twisted.http.client.http11 import (
    DEFAULT_MAX_HEADER_BYTES,
    RawResponse,
    StaleConnection,
)
from netproto_twisted.http.client.transport import HTTPTransport
from netproto_twisted.http.client.tunnel import NoDelayEndpoint
from netproto_twisted.xmlrpc._connection import RPCConnection, request_head
from netproto_twisted.xmlrpc.errors import (
    BodyTooLarge,
    ConnectionLost,
    ConnectionRefused,
    HostNotFound,
    ResponseError,
    TLSError,
    TransportError,
    XMLRPCError,
    XMLRPCTimeout,
)

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_MAX_RESPONSE",
    "DirectTransport",
    "IPostTransport",
    "PoolTransport",
    "PostResponse",
    "transport_error",
]

#: Largest response body accepted (and largest once decompressed), bytes.
DEFAULT_MAX_RESPONSE = 64 * 1024 * 1024
#: Seconds a TCP connection (and its name lookup) may take.
DEFAULT_CONNECT_TIMEOUT = 30.0
#: Longest interval between two checks of the call timeouts, seconds.
_MAX_TICK = 1.0
_DONE = Failure(ResponseDone())


@dataclass(frozen=True)
class PostResponse:
    """What :meth:`IPostTransport.post` fires with."""

    status: int
    reason: str
    #: Header names lower-cased, the first value of each.
    headers: Mapping[str, str]
    body: bytes


class IPostTransport(Protocol):
    """The HTTP seam: POST a body to a URL, fire with the response (the whole body read)."""

    def post(
        self, url: bytes, headers: Mapping[bytes, bytes], body: bytes
    ) -> Deferred[PostResponse]:
        """Send ``body``; fire with the response or fail (connection, TLS, size)."""

    def close(self) -> Deferred[None]:
        """Close idle connections; fire once closed."""


# -- errors ----------------------------------------------------------------------------


def _tls_error(error: SSL.Error) -> TLSError:
    library = reason = None
    details = error.args[0] if error.args else None
    if isinstance(details, list) and details and isinstance(details[-1], tuple):
        library, _, text = (str(part) for part in details[-1][:3])
        reason = text.upper().replace(" ", "_") or None
    return TLSError(f"TLS handshake failed: {error}", library or None, reason)


def transport_error(failure: Failure, where: str) -> Failure:
    """Map a failed POST to the errors :mod:`xmlrpc.client` users catch.

    Twisted's connection errors become :class:`OSError` subclasses, as the
    socket errors ``ServerProxy`` lets through are: a refused connection a
    :class:`~netproto_twisted.xmlrpc.errors.ConnectionRefused`
    (:class:`ConnectionRefusedError`), a name that does not resolve a
    :class:`~netproto_twisted.xmlrpc.errors.HostNotFound`
    (:class:`socket.gaierror`), a failed TLS handshake a
    :class:`~netproto_twisted.xmlrpc.errors.TLSError`
    (:class:`ssl.SSLError`), a connection lost before the answer was
    complete a :class:`~netproto_twisted.xmlrpc.errors.ConnectionLost`
    (:class:`ConnectionResetError`), a connect timeout an
    :class:`~netproto_twisted.xmlrpc.errors.XMLRPCTimeout`
    (:class:`TimeoutError`), a malformed HTTP answer a
    :class:`~netproto_twisted.xmlrpc.errors.ResponseError`.  Our own
    errors and cancellation pass unchanged.  ``where`` (``host:port``)
    names the server in the messages.
    """
    value = failure.value
    if isinstance(value, (XMLRPCError, CancelledError)):
        return failure
    if isinstance(value, URLError) and isinstance(value.reason, BaseException):
        value = value.reason
    reasons = getattr(value, "reasons", None)  # ResponseFailed and friends
    if reasons and isinstance(reasons[0], Failure):
        value = reasons[0].value
    mapped: BaseException
    if isinstance(value, SSL.Error):
        mapped = _tls_error(value)
    elif isinstance(value, twisted_errors.ConnectionRefusedError):
        mapped = ConnectionRefused(f"connection to {where} refused")
    elif isinstance(value, twisted_errors.DNSLookupError):
        mapped = HostNotFound(f"cannot resolve {where}: {value}")
    elif isinstance(value, twisted_errors.TimeoutError):
        mapped = XMLRPCTimeout(f"cannot connect to {where}: timed out")
    elif isinstance(
        value, (StaleConnection, twisted_errors.ConnectionDone, twisted_errors.ConnectionLost)
    ):
        mapped = ConnectionLost(f"connection to {where} lost before the answer was complete")
    elif isinstance(value, URLError):
        mapped = ResponseError(f"bad HTTP answer from {where}: {value.reason}")
    elif isinstance(value, twisted_errors.ConnectError):
        code = value.osError if isinstance(value.osError, int) else None
        mapped = TransportError(code, f"cannot connect to {where}: {value}")
    elif isinstance(value, OSError):
        mapped = TransportError(value.errno, f"{where}: {value}")
    else:
        mapped = ResponseError(f"bad HTTP answer from {where}: {value}")
    mapped.__cause__ = failure.value
    return Failure(mapped)


def _response(raw: RawResponse, body: bytes) -> PostResponse:
    headers: dict[str, str] = {}
    for name, value in raw.headers:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return PostResponse(raw.status, raw.reason.decode("latin-1"), headers, body)


# -- the direct transport ------------------------------------------------------------

_QUEUED, _SENT, _DONE_STATE = 1, 2, 3


class _Call:
    """One POST: waits for a connection, is sent, is answered (a :class:`CallOwner`)."""

    __slots__ = ("body", "conn", "deadline", "deferred", "head", "origin", "retried", "state")

    def __init__(self, origin: _Origin, head: bytes, body: bytes, deadline: float) -> None:
        self.origin = origin
        self.head = head
        self.body = body
        self.deadline = deadline
        self.state = _QUEUED
        self.retried = False
        self.conn: RPCConnection | None = None
        self.deferred: Deferred[PostResponse] = Deferred(self._cancel)

    def fail(self, failure: Failure) -> None:
        """Fail the call with the stdlib-like form of ``failure``."""
        if self.state != _DONE_STATE:
            self.state = _DONE_STATE
            self.origin.transport.finished(self)
            self.deferred.errback(transport_error(failure, self.origin.where))

    def expire(self, timeout: float) -> None:
        """The call's time is up: fail it, and drop its connection (the answer is unwanted)."""
        conn = self.conn
        where = self.origin.where
        self.fail(Failure(XMLRPCTimeout(f"no response from {where} within {timeout} s")))
        self.origin.forget(self, conn)

    def _cancel(self, _: Deferred[PostResponse]) -> None:
        conn = self.conn
        if self.state != _DONE_STATE:
            self.state = _DONE_STATE
            self.origin.transport.finished(self)
        self.origin.forget(self, conn)

    # -- CallOwner --------------------------------------------------------------------

    def answered(self, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        """The answer is in: fire."""
        if self.state == _SENT:
            self.state = _DONE_STATE
            self.origin.transport.finished(self)
            self.deferred.callback(PostResponse(status, reason, headers, body))

    def request_failed(self, failure: Failure, stale: bool) -> None:
        """No answer: send once more when a kept-alive connection was stale, else fail."""
        if self.state != _SENT:
            return
        self.conn = None
        if stale and not self.retried:
            self.retried = True
            self.state = _QUEUED
            self.origin.enqueue(self, first=True)
            return
        self.fail(failure)


class _ConnectionFactory(Factory):
    def __init__(self, origin: _Origin) -> None:
        self.origin = origin
        self.built: RPCConnection | None = None

    def buildProtocol(self, addr: Any) -> RPCConnection:
        origin = self.origin
        transport = origin.transport
        self.built = RPCConnection(
            origin.idle,
            origin.lost,
            max_response=transport.max_response,
            max_header_bytes=transport.max_header_bytes,
        )
        return self.built


class _Origin:
    """The connections to one server and the calls waiting for them."""

    def __init__(
        self,
        transport: DirectTransport,
        endpoint: IStreamClientEndpoint,
        target: bytes,
        where: str,
        host_header: bytes,
    ) -> None:
        self.transport = transport
        self.endpoint = endpoint
        self.target = target
        self.where = where
        self.host_header = host_header
        self.idle_conns: list[RPCConnection] = []
        self.conns: set[RPCConnection] = set()
        self.connecting = 0
        self.queue: deque[_Call] = deque()
        self.lost_waiters: list[Deferred[None]] = []
        self._head_for: Mapping[bytes, bytes] | None = None
        self._head = b""

    def request_head(self, headers: Mapping[bytes, bytes]) -> bytes:
        """The request head for ``headers`` (built once while the mapping is the same object)."""
        if headers is not self._head_for:
            pairs = list(headers.items())
            if b"host" not in headers:
                pairs.insert(0, (b"host", self.host_header))
            self._head = request_head(self.target, pairs)
            self._head_for = headers
        return self._head

    def enqueue(self, call: _Call, *, first: bool = False) -> None:
        """Send ``call`` on an idle connection, or queue it (connecting when allowed)."""
        idle = self.idle_conns
        while idle:
            conn = idle.pop()
            if conn.reusable:
                self.send(call, conn)
                return
        if first:
            self.queue.appendleft(call)
        else:
            self.queue.append(call)
        if len(self.conns) + self.connecting < self.transport.max_connections_per_host:
            self.connect()

    def send(self, call: _Call, conn: RPCConnection) -> None:
        call.state = _SENT
        call.conn = conn
        conn.request(call, call.head, call.body)

    def connect(self) -> None:
        self.connecting += 1
        factory = _ConnectionFactory(self)
        d = self.endpoint.connect(factory)

        def made(_: object) -> None:
            self.connecting -= 1
            conn = factory.built
            assert conn is not None
            self.conns.add(conn)
            self.idle(conn)

        def failed(failure: Failure) -> None:
            self.connecting -= 1
            # The call first in line hears of it; the others wait for their own attempt.
            while self.queue:
                call = self.queue.popleft()
                if call.state == _QUEUED:
                    call.fail(failure)
                    break
            self.refill()

        d.addCallbacks(made, failed)

    def refill(self) -> None:
        """Connect for queued calls, up to the cap."""
        waiting = sum(1 for call in self.queue if call.state == _QUEUED)
        cap = self.transport.max_connections_per_host
        while waiting > self.connecting and len(self.conns) + self.connecting < cap:
            self.connect()

    def idle(self, conn: RPCConnection) -> None:
        """``conn`` can carry a call: the next in line, or it waits."""
        if self.transport.closed:
            conn.close()
            return
        queue = self.queue
        while queue:
            call = queue.popleft()
            if call.state == _QUEUED:
                self.send(call, conn)
                return
        self.idle_conns.append(conn)

    def lost(self, conn: RPCConnection) -> None:
        """``conn`` is gone."""
        if conn not in self.conns:
            return
        self.conns.discard(conn)
        if conn in self.idle_conns:
            self.idle_conns.remove(conn)
        if not self.conns and not self.connecting:
            waiters, self.lost_waiters = self.lost_waiters, []
            for waiter in waiters:
                waiter.callback(None)
        if self.queue and not self.transport.closed:
            self.refill()

    def forget(self, call: _Call, conn: RPCConnection | None) -> None:
        """``call`` ended early (timeout, cancel): leave the queue or drop its connection."""
        if conn is not None:
            conn.close()
        else:
            with contextlib.suppress(ValueError):
                self.queue.remove(call)

    def close(self) -> Deferred[None]:
        """Fail the queued calls, close every connection; fire once all are gone."""
        while self.queue:
            call = self.queue.popleft()
            call.fail(Failure(CancelledError("the transport was closed")))
        for conn in list(self.conns):
            conn.close()
        if not self.conns and not self.connecting:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self.lost_waiters.append(d)
        return d


class DirectTransport:
    """:class:`IPostTransport` on its own persistent HTTP/1.1 connections (the default).

    At most ``max_connections_per_host`` connections per server; TLS
    verified against the system's trust store, or against ``tls_trust`` (a
    :class:`~twisted.internet.ssl.Certificate` or ``trustRootFromCertificates``
    result) when given, or ``ca_file``; ``verify=False`` turns verification
    off.  ``timeout`` bounds each call, from :meth:`post` to the last byte
    of the answer, connection included (``None``: no bound); the bound is
    checked by one timer, every ``min(timeout / 4, 1)`` seconds while calls
    are pending, so a call fails at most that much after its time.
    ``connect_timeout`` bounds each TCP connection.  A server that closes
    after each answer (the stdlib's HTTP/1.0 SimpleXMLRPCServer) simply
    gets a new connection per call.
    """

    def __init__(
        self,
        reactor: Any,
        *,
        max_connections_per_host: int = 32,
        timeout: float | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        tls_trust: Any = None,
        verify: bool = True,
        ca_file: str | None = None,
        max_response: int = DEFAULT_MAX_RESPONSE,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        clock: IReactorTime | None = None,
    ) -> None:
        self.reactor = reactor
        self.clock: IReactorTime = clock if clock is not None else reactor
        self.max_connections_per_host = max_connections_per_host
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.tls_trust = tls_trust
        self.verify = verify
        self.ca_file = ca_file
        self.max_response = max_response
        self.max_header_bytes = max_header_bytes
        self.closed = False
        self._origins: dict[bytes, _Origin] = {}
        self._pending: dict[_Call, None] = {}
        self._timer: IDelayedCall | None = None
        self._tick = min(timeout / 4, _MAX_TICK) if timeout else _MAX_TICK

    def _origin(self, url: bytes) -> _Origin:
        parts = urlsplit(url.decode("ascii"))
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported XML-RPC URL scheme: {scheme!r}")
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        # An IP address is connected to directly: no resolver round trip through a thread.
        endpoint: IStreamClientEndpoint = NoDelayEndpoint(
            client_endpoint(self.reactor, host, port, timeout=self.connect_timeout)
        )
        if scheme == "https":
            if self.tls_trust is not None:
                creator = ssl.optionsForClientTLS(host, trustRoot=self.tls_trust)
            else:
                creator = client_options(host, verify=self.verify, ca_file=self.ca_file)
            endpoint = wrapClientTLS(creator, endpoint)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = parts.netloc.rpartition("@")[2]
        where = f"{host}:{port}"
        return _Origin(self, endpoint, target.encode("ascii"), where, netloc.encode("idna"))

    def post(
        self, url: bytes, headers: Mapping[bytes, bytes], body: bytes
    ) -> Deferred[PostResponse]:
        """POST ``body`` to ``url``; fire with the whole answer (see the class docstring)."""
        if self.closed:
            return fail(RuntimeError("the transport is closed"))
        origin = self._origins.get(url)
        if origin is None:
            origin = self._origins[url] = self._origin(url)
        head = origin.request_head(headers)
        timeout = self.timeout
        if timeout is None:
            call = _Call(origin, head, body, 0.0)
        else:
            call = _Call(origin, head, body, self.clock.seconds() + timeout)
            self._pending[call] = None
            if self._timer is None:
                self._timer = self.clock.callLater(self._tick, self._check)
        origin.enqueue(call)
        return call.deferred

    def finished(self, call: _Call) -> None:
        """``call`` is over: stop watching its time."""
        self._pending.pop(call, None)

    def _check(self) -> None:
        self._timer = None
        now = self.clock.seconds()
        timeout = self.timeout
        assert timeout is not None
        # Calls are watched in the order they started, and all share one timeout.
        expired = []
        for call in self._pending:
            if call.deadline > now:
                break
            expired.append(call)
        for call in expired:
            call.expire(timeout)
        if self._pending:
            self._timer = self.clock.callLater(self._tick, self._check)

    def close(self) -> Deferred[None]:
        """Close every connection (calls still waiting for one fail); fire once all are closed."""
        self.closed = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        waits = [origin.close() for origin in self._origins.values()]
        return DeferredList(waits).addCallback(lambda _: None)


# -- the pool transport --------------------------------------------------------------


class PoolTransport:
    """:class:`IPostTransport` on the HTTP client's connection pool.

    Requests go through :meth:`HTTPTransport.fetch
    <netproto_twisted.http.client.transport.HTTPTransport.fetch>`: HTTP/1.1
    connections kept alive (a server that closes after each answer, as the
    stdlib's HTTP/1.0 SimpleXMLRPCServer does, simply gets a new connection
    per call), at most ``max_connections_per_host`` per server, TLS verified
    against the system's trust store, or against ``tls_trust`` (a
    :class:`~twisted.internet.ssl.Certificate` or ``trustRootFromCertificates``
    result) when given, or ``ca_file``; ``verify=False`` turns verification
    off.  ``http`` shares an existing
    :class:`~netproto_twisted.http.client.transport.HTTPTransport` (an
    opener's) instead.
    """

    def __init__(
        self,
        reactor: Any,
        *,
        http: HTTPTransport | None = None,
        max_connections_per_host: int = 32,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        tls_trust: Any = None,
        verify: bool = True,
        ca_file: str | None = None,
        max_response: int = DEFAULT_MAX_RESPONSE,
    ) -> None:
        self._owns_http = http is None
        if http is None:
            creator = None
            if tls_trust is not None:

                def creator(host: str) -> Any:
                    return ssl.optionsForClientTLS(host, trustRoot=tls_trust)

            http = HTTPTransport(
                reactor,
                verify=verify,
                ca_file=ca_file,
                connect_timeout=(
                    connect_timeout if connect_timeout is not None else DEFAULT_CONNECT_TIMEOUT
                ),
                idle_timeout=None,
                max_per_host=max_connections_per_host,
                tls_creator=creator,
            )
        self.http = http
        self.max_response = max_response
        self._targets: dict[bytes, tuple[str, str, int, bytes, bytes]] = {}
        self._headers: tuple[Mapping[bytes, bytes], bytes, list[tuple[bytes, bytes]]] | None = None

    def _target(self, url: bytes) -> tuple[str, str, int, bytes, bytes]:
        found = self._targets.get(url)
        if found is None:
            parts = urlsplit(url.decode("ascii"))
            scheme = parts.scheme.lower()
            if scheme not in ("http", "https"):
                raise ValueError(f"unsupported XML-RPC URL scheme: {scheme!r}")
            port = parts.port or (443 if scheme == "https" else 80)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            netloc = parts.netloc.rpartition("@")[2]
            found = (scheme, parts.hostname or "", port, target.encode("ascii"),
                     netloc.encode("idna"))  # fmt: skip
            if len(self._targets) < 256:
                self._targets[url] = found
        return found

    def post(
        self, url: bytes, headers: Mapping[bytes, bytes], body: bytes
    ) -> Deferred[PostResponse]:
        """POST ``body`` to ``url`` and read the whole response (up to the size limit)."""
        scheme, host, port, target, host_header = self._target(url)
        cached = self._headers
        if cached is not None and cached[0] is headers and cached[1] == host_header:
            request_headers = cached[2]
        else:
            request_headers = [(name, value) for name, value in headers.items()]
            if b"host" not in headers:
                request_headers.insert(0, (b"host", host_header))
            self._headers = (headers, host_header, request_headers)
        d = self.http.fetch(b"POST", scheme, host, port, target, request_headers, body)
        answer: Deferred[PostResponse] = d.addCallback(self._read)
        return answer.addErrback(transport_error, f"{host}:{port}")

    def _read(self, response: RawResponse) -> Deferred[PostResponse]:
        length = response.length
        if length is not None and length > self.max_response:
            response.abort()
            raise BodyTooLarge(self.max_response)
        finished: Deferred[bytes] = Deferred()
        response.deliverBody(_BodyCollector(finished, self.max_response))
        return finished.addCallback(lambda body: _response(response, body))

    def close(self) -> Deferred[None]:
        """Close the connections (those of a shared HTTPTransport are left to its owner)."""
        if self._owns_http:
            return self.http.close()
        return succeed(None)


@implementer(IProtocol)
class _BodyCollector:
    """Collect a response body up to a limit; abort the connection beyond it."""

    def __init__(self, finished: Deferred[bytes], limit: int) -> None:
        self._finished = finished
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self._failed = False
        self._control: IPushProducer | None = None

    def makeConnection(self, transport: Any) -> None:
        """Remember the body's flow control."""
        self._control = transport

    def connectionMade(self) -> None:
        """Nothing to do."""

    def dataReceived(self, data: bytes) -> None:
        """Collect a piece, within the limit."""
        if self._failed:
            return
        self._size += len(data)
        if self._size > self._limit:
            self._failed = True
            if self._control is not None:
                self._control.stopProducing()
            self._finished.errback(BodyTooLarge(self._limit))
            return
        self._parts.append(data)

    def connectionLost(self, reason: Failure = _DONE) -> None:
        """The body ended."""
        if self._failed:
            return
        if reason.check(ResponseDone):
            self._finished.callback(b"".join(self._parts))
        else:
            self._finished.errback(reason)

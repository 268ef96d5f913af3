"""Sending a :class:`Request`: connection pool, TLS, proxies, limits, timeouts.

One :class:`HTTPTransport` per opener holds a
:class:`~netproto_twisted.http.client.pool.ConnectionPool` of HTTP/1.1
connections (:mod:`netproto_twisted.http.client.http11`, h11's parser)
kept alive per origin, at most :attr:`HTTPTransport.max_per_host` of them
per origin (requests beyond wait in line), one retry of an idempotent
request whose kept-alive connection turns out to be stale, and the
timeouts:

* ``connect_timeout`` -- for the TCP connection (and the CONNECT tunnel);
* ``idle_timeout`` -- waiting for a connection and the response headers,
  then between two body chunks (a stalled body);
* ``total_timeout`` -- for the whole request, body included.

https offers HTTP/2 by ALPN when the ``h2`` package is installed and
``http2`` is true (the default); when the server picks ``h2``, all the
requests to that origin share one HTTP/2 connection
(:mod:`~netproto_twisted.http.client.http2`).  ``http2=False`` (or
``persistent=False``) keeps every https request on HTTP/1.1.  Plain http
is always HTTP/1.1 (no h2c).  A server whose TLS handshake fails because
of the ALPN offer itself (a fatal ``internal error`` or
``no_application_protocol`` alert: Twisted 26's own TLS servers answer
so when their factory negotiates nothing) is asked again once without
ALPN, and that origin is not offered ALPN again.

TLS is verified against the platform's roots (or ``ca_file``) and the
host name, unless the opener is built with ``verify=False``.  http through
a proxy sends the absolute URL to the proxy; https (and http when the
proxy says ``tunnel``) goes through a CONNECT tunnel.

:meth:`HTTPTransport.fetch` is the lean entry below the opener (no
urllib ``Request``, no handlers): the XML-RPC client uses it.  With
``agent=`` (an :class:`~twisted.web.iweb.IAgent`, such as the in-memory
one of :class:`~netproto_twisted.testing.http_client.StubOpener`) requests
go to that agent instead of the pool.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from OpenSSL import SSL
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.error import TimeoutError as TwistedTimeoutError
from twisted.internet.interfaces import (
    IConsumer,
    IDelayedCall,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IBodyProducer
from zope.interface import implementer

from netproto_twisted.core.errors import NetprotoError
from netproto_twisted.core.reactors import IConnectReactor
from netproto_twisted.core.tls import client_options
from netproto_twisted.http.client.alpn import ALPNCreator, h2_available
from netproto_twisted.http.client.errors import RequestTimeout, URLError
from netproto_twisted.http.client.http11 import DEFAULT_MAX_HEADER_BYTES, RawResponse
from netproto_twisted.http.client.pool import ConnectionPool
from netproto_twisted.http.client.request import ProxyInfo, Request
from netproto_twisted.http.client.response import DEFAULT_MAX_BODY, Response, headers_message
from netproto_twisted.http.client.tunnel import NoDelayEndpoint, TunnelEndpoint

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_PER_HOST",
    "USER_AGENT",
    "HTTPTransport",
    "basic_credentials",
]

USER_AGENT = "netproto_twisted/0.1"
DEFAULT_CONNECT_TIMEOUT = 30.0
DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_MAX_PER_HOST = 10
#: Response header fields accepted (http.client's limit); more is a header flood.
DEFAULT_MAX_HEADERS = 100
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})
_USER_AGENT_HEADER = (b"User-Agent", USER_AGENT.encode())
#: Host header values (IDNA-encoded) and quoted request targets, by their text.
_HOST_BYTES: dict[str, bytes] = {}
_TARGETS: dict[str, str] = {}
_MAX_CACHED = 1024


def basic_credentials(user: str, password: str) -> str:
    """The value of a Basic ``Authorization`` header (RFC 7617, UTF-8)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


class _Discard(Protocol):
    def connectionMade(self) -> None:
        self.transport.stopProducing()  # type: ignore[union-attr]


class HTTPTransport:
    """Send requests through a persistent pool; one per opener (see the module docstring)."""

    def __init__(
        self,
        reactor: IConnectReactor,
        *,
        verify: bool = True,
        ca_file: str | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        total_timeout: float | None = None,
        max_per_host: int = DEFAULT_MAX_PER_HOST,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_body: int | None = DEFAULT_MAX_BODY,
        persistent: bool = True,
        agent: IAgent | None = None,
        tls_creator: Callable[[str], Any] | None = None,
        clock: IReactorTime | None = None,
        http2: bool = True,
    ) -> None:
        self.reactor = reactor
        #: Where the timeouts run (the reactor unless a test passes a Clock).
        self.clock: IReactorTime = clock if clock is not None else reactor
        self.verify = verify
        self.ca_file = ca_file
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.total_timeout = total_timeout
        self.max_per_host = max_per_host
        self.max_headers = max_headers
        self.max_body = max_body
        self.persistent = persistent
        #: Whether https offers HTTP/2 by ALPN (only when the ``h2`` package is there).
        self.http2 = http2 and persistent and h2_available()
        #: The kept-alive connections.
        self.pool = ConnectionPool(
            max_per_host=max_per_host, persistent=persistent, max_header_bytes=max_header_bytes
        )
        self._fixed_agent = agent
        self._tls_creator = tls_creator
        self._endpoints: dict[tuple[Any, ...], IStreamClientEndpoint] = {}
        self._tls_cache: dict[str, Any] = {}
        #: Origins whose TLS handshake failed on the ALPN offer: HTTP/1.1 without ALPN.
        self._no_alpn: set[tuple[Any, ...]] = set()

    # -- plumbing ------------------------------------------------------------------------

    def tls_creator(self, host: str) -> Any:
        """The client TLS connection creator for ``host`` (verifying unless told not to)."""
        if self._tls_creator is not None:
            return self._tls_creator(host)
        creator = self._tls_cache.get(host)
        if creator is None:
            creator = client_options(host, verify=self.verify, ca_file=self.ca_file)
            self._tls_cache[host] = creator
        return creator

    def _tcp(self, host: str, port: int) -> IStreamClientEndpoint:
        return NoDelayEndpoint(
            HostnameEndpoint(self.reactor, host, port, timeout=self.connect_timeout)
        )

    def proxy_endpoint(self, proxy: ProxyInfo) -> IStreamClientEndpoint:
        """The endpoint of a proxy (TLS to the proxy itself when its URL is https)."""
        endpoint = self._tcp(proxy.host, proxy.port)
        if proxy.scheme == "https":
            endpoint = wrapClientTLS(self.tls_creator(proxy.host), endpoint)
        return endpoint

    def endpoint(
        self, scheme: str, host: str, port: int, proxy: ProxyInfo | None
    ) -> tuple[tuple[Any, ...], IStreamClientEndpoint]:
        """The pool key and endpoint for an origin (direct, forward proxy, or tunnel)."""
        forward = proxy is not None and scheme == "http" and not proxy.tunnel
        key: tuple[Any, ...] = (proxy,) if forward else (scheme, host, port, proxy)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            if len(self._endpoints) > 1000:
                self._endpoints.clear()
            if proxy is None:
                endpoint = self._tcp(host, port)
            elif forward:
                endpoint = self.proxy_endpoint(proxy)
            else:
                headers = dict(proxy.headers)
                if proxy.user is not None:
                    headers["Proxy-Authorization"] = basic_credentials(
                        proxy.user, proxy.password or ""
                    )
                endpoint = TunnelEndpoint(self.proxy_endpoint(proxy), host, port, headers)
            if scheme == "https":
                creator = self.tls_creator(host)
                if self.http2 and key not in self._no_alpn:
                    creator = ALPNCreator(creator)
                endpoint = wrapClientTLS(creator, endpoint)
            self._endpoints[key] = endpoint
        return key, endpoint

    def close(self) -> Deferred[None]:
        """Close every connection; fires when they are closed.

        The pool is closed one reactor turn later, so that a connection
        whose response finished in the current call stack is idle by then.
        """
        return deferLater(self.reactor, 0).addCallback(lambda _: self.pool.close())

    # -- the lean path -------------------------------------------------------------------

    def fetch(
        self,
        method: bytes,
        scheme: str,
        host: str,
        port: int,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | IBodyProducer | None = None,
        *,
        proxy: ProxyInfo | None = None,
    ) -> Deferred[RawResponse]:
        """Send one request through the pool; fire with the :class:`RawResponse` head.

        ``headers`` must hold ``Host``; Content-Length (or chunked framing)
        is added for the body.  An idempotent request without a body or
        with a bytes body is repeated once when its kept-alive connection
        was stale.  Cancelling the Deferred drops the request (and its
        connection if it was sent).
        """
        key, endpoint = self.endpoint(scheme, host, port, proxy)
        retryable = method in _IDEMPOTENT and (body is None or isinstance(body, bytes))
        http2 = self.http2 and scheme == "https" and key not in self._no_alpn
        d = self.pool.request(
            key, endpoint, method, target, headers, body, retryable=retryable, http2=http2
        )
        if not http2:
            return d

        def without_alpn(failure: Failure) -> Any:
            if not _alpn_refused(failure) or key in self._no_alpn:
                return failure
            if len(self._no_alpn) > 1000:
                self._no_alpn.clear()
            self._no_alpn.add(key)
            self._endpoints.pop(key, None)
            return self.fetch(method, scheme, host, port, target, headers, body, proxy=proxy)

        return d.addErrback(without_alpn)

    # -- sending -------------------------------------------------------------------------

    def send(self, request: Request) -> Deferred[Response]:
        """Send ``request``; fire with the :class:`Response` once its headers are in."""
        reactor = self.clock
        idle = request.timeout if request.timeout is not None else self.idle_timeout
        total = request.total_timeout if request.total_timeout is not None else self.total_timeout
        deadline = reactor.seconds() + total if total is not None else None
        method = request.get_method().encode("ascii")
        body = request.data
        if body is not None:
            if isinstance(body, (bytearray, memoryview)):
                body = bytes(body)
            elif not isinstance(body, bytes) and not IBodyProducer.providedBy(body):
                raise TypeError(
                    f"request data must be bytes or an IBodyProducer, not {type(body)}"
                )
        if self._fixed_agent is not None:
            d: Deferred[Any] = self._agent_request(request, method, body)
        else:
            d = self._pool_request(request, method, body)

        timed_out: list[RequestTimeout] = []
        calls: list[IDelayedCall] = []
        for seconds, phase in ((idle, "waiting for the response"), (total, "whole request")):
            if seconds is not None:

                def expire(seconds: float = seconds, phase: str = phase) -> None:
                    timed_out.append(RequestTimeout(phase, seconds))
                    d.cancel()

                calls.append(reactor.callLater(seconds, expire))

        def got(raw: Any) -> Response:
            for call in calls:
                if call.active():
                    call.cancel()
            if isinstance(raw, RawResponse):
                pairs = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw.headers]
                status, reason, version, length = raw.status, raw.reason, raw.version, raw.length
            else:
                pairs, status, reason, version, length = _from_agent(raw, method)
            if len(pairs) > self.max_headers:
                if isinstance(raw, RawResponse):
                    raw.abort()
                else:
                    raw.deliverBody(_Discard())
                raise URLError(f"response has more than {self.max_headers} header fields")
            return Response(
                url=request.full_url,
                status=status,
                reason=reason.decode("latin-1", "replace"),
                headers=headers_message(pairs),
                source=raw,
                reactor=reactor,
                version=version,
                request=request,
                length=length,
                max_body=self.max_body,
                idle_timeout=idle,
                total_timeout=total,
                deadline=deadline,
            )

        def failed(failure: Failure) -> Failure:
            for call in calls:
                if call.active():
                    call.cancel()
            if timed_out:
                return Failure(timed_out[0])
            if failure.check(NetprotoError):
                return failure
            if failure.check(TwistedTimeoutError):
                return Failure(RequestTimeout("connect", self.connect_timeout))
            if failure.check(CancelledError):
                return failure
            reasons = getattr(failure.value, "reasons", None)
            if reasons:
                inner = reasons[0].value
                if isinstance(inner, NetprotoError):
                    return Failure(inner)
                return Failure(URLError(inner))
            return Failure(URLError(failure.value or "request failed"))

        return d.addCallbacks(got, failed)

    def _pool_request(
        self, request: Request, method: bytes, body: bytes | IBodyProducer | None
    ) -> Deferred[RawResponse]:
        scheme = request.type
        host_header = request.host
        if "@" in host_header:
            host_header = host_header.rpartition("@")[2]
        host, port = _split_host(host_header, _DEFAULT_PORTS.get(scheme, 80))
        headers: list[tuple[bytes, bytes]] = []
        has_host = has_agent = False
        for name, value in request.all_headers().items():
            lowered = name.lower()
            if lowered == "host":
                has_host = True
            elif lowered == "user-agent":
                has_agent = True
            elif lowered in ("content-length", "transfer-encoding"):
                continue  # framing is the connection's business
            headers.append((name.encode("latin-1"), str(value).encode("latin-1")))
        if not has_host:
            host_bytes = _HOST_BYTES.get(host_header)
            if host_bytes is None:
                host_bytes = host_header.encode("idna")
                if len(_HOST_BYTES) >= _MAX_CACHED:
                    _HOST_BYTES.clear()
                _HOST_BYTES[host_header] = host_bytes
            headers.insert(0, (b"Host", host_bytes))
        if not has_agent:
            headers.append(_USER_AGENT_HEADER)
        selector = request.selector or "/"
        target = _TARGETS.get(selector)
        if target is None:
            target = quote(selector, safe=_URL_SAFE)
            if len(_TARGETS) >= _MAX_CACHED:
                _TARGETS.clear()
            _TARGETS[selector] = target
        proxy = request.proxy
        if proxy is not None and scheme == "http" and not proxy.tunnel:
            target = f"http://{host_header}{target}"
            if proxy.user:
                credentials = basic_credentials(proxy.user, proxy.password or "")
                headers.append((b"Proxy-Authorization", credentials.encode()))
        return self.fetch(
            method, scheme, host, port, target.encode("ascii"), headers, body, proxy=proxy
        )

    def _agent_request(
        self, request: Request, method: bytes, body: bytes | IBodyProducer | None
    ) -> Deferred[Any]:
        headers = Headers()
        for name, value in request.all_headers().items():
            headers.addRawHeader(name.encode("latin-1"), str(value).encode("latin-1"))
        if not request.has_header("User-agent"):
            headers.addRawHeader(b"User-Agent", USER_AGENT.encode())
        producer = _BytesProducer(body) if isinstance(body, bytes) else body
        url = quote(request.full_url, safe=_URL_SAFE).encode("ascii")
        assert self._fixed_agent is not None
        return self._fixed_agent.request(method, url, headers, producer)


def _alpn_refused(failure: Failure) -> bool:
    """Whether a connection failed in a TLS handshake that the ALPN offer may have upset."""
    reason = getattr(failure.value, "reason", None)
    if not isinstance(reason, SSL.Error):
        return False
    text = str(reason).lower()
    return "internal error" in text or "no application protocol" in text


def _split_host(netloc: str, default_port: int) -> tuple[str, int]:
    """``(host, port)`` of a URL's host part (brackets of an IPv6 literal removed)."""
    if netloc.startswith("["):
        host, _, rest = netloc[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = netloc.partition(":")
    return host, int(port) if port else default_port


def _from_agent(
    raw: Any, method: bytes
) -> tuple[list[tuple[str, str]], int, bytes, tuple[int, int], int | None]:
    """The fields of a twisted.web IResponse (the ``agent=`` path)."""
    pairs = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, values in raw.headers.getAllRawHeaders()
        for value in values
    ]
    length = raw.length if raw.length is not UNKNOWN_LENGTH else None
    if length is not None and method != b"HEAD":
        # Twisted keeps Content-Length out of the headers; urllib shows it.
        pairs.append(("Content-Length", str(length)))
    return pairs, raw.code, raw.phrase, (raw.version[1], raw.version[2]), length


@implementer(IBodyProducer)
class _BytesProducer:
    """A request body held in memory, for the ``agent=`` path."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        """Write the whole body."""
        consumer.write(self.body)
        return succeed(None)

    def pauseProducing(self) -> None:
        """Nothing to pause: the body is written at once."""

    def resumeProducing(self) -> None:
        """Nothing to resume."""

    def stopProducing(self) -> None:
        """Nothing to stop."""

"""Sending a :class:`Request` over twisted.web's Agent: pool, TLS, proxies, limits, timeouts.

One :class:`HTTPTransport` per opener holds a persistent
:class:`~twisted.web.client.HTTPConnectionPool` (whose built-in retry
repeats an idempotent request without a body once when a kept-alive
connection turns out to be stale), one Agent per proxy, a per-origin cap on
requests in flight (:attr:`HTTPTransport.max_per_host`, which is also the
pool's number of kept connections), and the timeouts:

* ``connect_timeout`` -- for the TCP connection (and the CONNECT tunnel);
* ``idle_timeout`` -- waiting for the response headers, then between two
  body chunks (a stalled body);
* ``total_timeout`` -- for the whole request, body included.

TLS is verified against the platform's roots (or ``ca_file``) and the
host name, unless the opener is built with ``verify=False``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredSemaphore,
    gatherResults,
    succeed,
)
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.error import TimeoutError as TwistedTimeoutError
from twisted.internet.interfaces import IConsumer, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import URI, Agent, HTTPConnectionPool, ProxyAgent
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IAgentEndpointFactory, IBodyProducer
from zope.interface import implementer

from netproto_twisted.core.errors import NetprotoError
from netproto_twisted.core.reactors import IConnectReactor
from netproto_twisted.core.tls import client_options
from netproto_twisted.http.client.errors import RequestTimeout, URLError
from netproto_twisted.http.client.request import ProxyInfo, Request
from netproto_twisted.http.client.response import DEFAULT_MAX_BODY, Response, headers_message
from netproto_twisted.http.client.tunnel import NoDelayEndpoint, TunnelEndpoint

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_PER_HOST",
    "USER_AGENT",
    "BytesProducer",
    "HTTPTransport",
    "basic_credentials",
]

_log = Logger()

USER_AGENT = "netproto_twisted/0.1"
DEFAULT_CONNECT_TIMEOUT = 30.0
DEFAULT_IDLE_TIMEOUT = 60.0
DEFAULT_MAX_PER_HOST = 10
#: Response header fields accepted (http.client's limit); more is a header flood.
DEFAULT_MAX_HEADERS = 100
_URL_SAFE = ":/?#[]@!$&'()*+,;=%~"


def basic_credentials(user: str, password: str) -> str:
    """The value of a Basic ``Authorization`` header (RFC 7617, UTF-8)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


@implementer(IBodyProducer)
class BytesProducer:
    """A request body held in memory (replayable on a redirect or a retry)."""

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


@implementer(IAgentEndpointFactory)
class _Endpoints:
    """Endpoints for the Agent: direct or tunnelled, TLS for https, TCP_NODELAY always."""

    def __init__(self, transport: HTTPTransport, proxy: ProxyInfo | None) -> None:
        self.transport = transport
        self.proxy = proxy
        # Twisted asks for an endpoint per request; building one (IDNA and all) is dear.
        self._cache: dict[tuple[bytes, bytes, int], IStreamClientEndpoint] = {}

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self._cache.get(key)
        if endpoint is None:
            if len(self._cache) > 1000:
                self._cache.clear()
            endpoint = self._cache[key] = self._make(uri)
        return endpoint

    def _make(self, uri: URI) -> IStreamClientEndpoint:
        t = self.transport
        host = uri.host.decode("idna")
        endpoint: IStreamClientEndpoint
        if self.proxy is None:
            endpoint = NoDelayEndpoint(
                HostnameEndpoint(t.reactor, host, uri.port, timeout=t.connect_timeout)
            )
        else:
            headers = dict(self.proxy.headers)
            if self.proxy.user is not None:
                headers["Proxy-Authorization"] = basic_credentials(
                    self.proxy.user, self.proxy.password or ""
                )
            endpoint = TunnelEndpoint(t.proxy_endpoint(self.proxy), host, uri.port, headers)
        if uri.scheme == b"https":
            endpoint = wrapClientTLS(t.tls_creator(host), endpoint)
        return endpoint


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
        max_body: int | None = DEFAULT_MAX_BODY,
        persistent: bool = True,
        agent: IAgent | None = None,
        tls_creator: Callable[[str], Any] | None = None,
        clock: IReactorTime | None = None,
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
        self._pools: list[HTTPConnectionPool] = []
        self.pool = self._new_pool()
        self._fixed_agent = agent
        self._tls_creator = tls_creator
        self._agents: dict[tuple[ProxyInfo | None, bool], IAgent] = {}
        self._proxy_endpoints: dict[ProxyInfo, IStreamClientEndpoint] = {}
        self._slots: dict[tuple[str, str, int | None], DeferredSemaphore] = {}
        self._tls_cache: dict[str, Any] = {}

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

    def _new_pool(self) -> HTTPConnectionPool:
        pool = HTTPConnectionPool(self.reactor, persistent=self.persistent)
        pool.maxPersistentPerHost = self.max_per_host
        pool.retryAutomatically = True
        self._pools.append(pool)
        return pool

    def proxy_endpoint(self, proxy: ProxyInfo) -> IStreamClientEndpoint:
        """The endpoint of a proxy (TLS to the proxy itself when its URL is https)."""
        endpoint = self._proxy_endpoints.get(proxy)
        if endpoint is None:
            endpoint = NoDelayEndpoint(
                HostnameEndpoint(
                    self.reactor, proxy.host, proxy.port, timeout=self.connect_timeout
                )
            )
            if proxy.scheme == "https":
                endpoint = wrapClientTLS(self.tls_creator(proxy.host), endpoint)
            self._proxy_endpoints[proxy] = endpoint
        return endpoint

    def agent_for(self, request: Request) -> IAgent:
        """The Agent for a request: the fixed one, direct, tunnelled, or an http proxy's."""
        if self._fixed_agent is not None:
            return self._fixed_agent
        proxy = request.proxy
        forward = proxy is not None and request.type == "http" and not proxy.tunnel
        key = (proxy, forward)
        agent = self._agents.get(key)
        if agent is None:
            # Twisted keys a pool's connections by (scheme, host, port): a tunnel
            # through a proxy gets a pool of its own, never mixed with direct ones.
            pool = self.pool if proxy is None else self._new_pool()
            if forward:
                assert proxy is not None
                agent = ProxyAgent(self.proxy_endpoint(proxy), self.reactor, pool)
            else:
                agent = Agent.usingEndpointFactory(self.reactor, _Endpoints(self, proxy), pool)
            self._agents[key] = agent
        return agent

    def _slot(self, request: Request) -> DeferredSemaphore:
        key = (request.type, request.host.lower(), None)  # already parsed by urllib
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = DeferredSemaphore(self.max_per_host)
        return slot

    def close(self) -> Deferred[None]:
        """Close every kept-alive connection; fires when they are closed.

        The pools are closed one reactor turn later, so that a connection
        whose response failed or finished in the current call stack is back
        in its pool (Twisted returns it after the body's last callback).
        """

        def close_pools(_: object) -> Deferred[None]:
            closing = [pool.closeCachedConnections() for pool in self._pools]
            return gatherResults(closing).addCallback(lambda _: None)

        return deferLater(self.reactor, 0).addCallback(close_pools)

    # -- sending -------------------------------------------------------------------------

    def send(self, request: Request) -> Deferred[Response]:
        """Send ``request``; fire with the :class:`Response` once its headers are in."""
        slot = self._slot(request)
        return slot.acquire().addCallback(lambda _: self._send(request, slot))

    def _send(self, request: Request, slot: DeferredSemaphore) -> Deferred[Response]:
        reactor = self.clock
        idle = request.timeout if request.timeout is not None else self.idle_timeout
        total = request.total_timeout if request.total_timeout is not None else self.total_timeout
        started = reactor.seconds()
        deadline = started + total if total is not None else None
        headers = Headers()
        for name, value in request.all_headers().items():
            headers.addRawHeader(name.encode("latin-1"), str(value).encode("latin-1"))
        if not request.has_header("User-agent"):
            headers.addRawHeader(b"User-Agent", USER_AGENT.encode())
        proxy = request.proxy
        if proxy is not None and request.type == "http" and not proxy.tunnel and proxy.user:
            headers.setRawHeaders(
                b"Proxy-Authorization",
                [basic_credentials(proxy.user, proxy.password or "").encode()],
            )
        body = request.data
        producer: IBodyProducer | None
        if body is None:
            producer = None
        elif isinstance(body, (bytes, bytearray, memoryview)):
            producer = BytesProducer(bytes(body))
        elif IBodyProducer.providedBy(body):
            producer = body
        else:
            raise TypeError(f"request data must be bytes or an IBodyProducer, not {type(body)}")
        url = quote(request.full_url, safe=_URL_SAFE).encode("ascii")
        method = request.get_method().encode("ascii")
        timed_out: list[RequestTimeout] = []
        d = self.agent_for(request).request(method, url, headers, producer)

        calls = []
        for seconds, phase in ((idle, "waiting for the response"), (total, "whole request")):
            if seconds is not None:

                def expire(seconds: float = seconds, phase: str = phase) -> None:
                    timed_out.append(RequestTimeout(phase, seconds))
                    d.cancel()

                calls.append(reactor.callLater(seconds, expire))

        released: list[bool] = []

        def release() -> None:
            if not released:
                released.append(True)
                slot.release()

        def got(raw: Any) -> Response:
            for call in calls:
                if call.active():
                    call.cancel()
            pairs = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, values in raw.headers.getAllRawHeaders()
                for value in values
            ]
            if len(pairs) > self.max_headers:
                raw.deliverBody(_Discard())
                release()
                raise URLError(f"response has more than {self.max_headers} header fields")
            length = raw.length if raw.length is not UNKNOWN_LENGTH else None
            if length is not None and method != b"HEAD":
                # Twisted keeps Content-Length out of the headers; urllib shows it.
                pairs.append(("Content-Length", str(length)))
            response = Response(
                url=request.full_url,
                status=raw.code,
                reason=raw.phrase.decode("latin-1", "replace"),
                headers=headers_message(pairs),
                source=raw,
                reactor=reactor,
                version=(raw.version[1], raw.version[2]),
                request=request,
                length=length,
                max_body=self.max_body,
                idle_timeout=idle,
                total_timeout=total,
                deadline=deadline,
                on_finished=release,
            )
            if length == 0 or method == b"HEAD" or raw.code in (204, 304):
                # No body to wait for: the connection is back in the pool already.
                release()
            return response

        def failed(failure: Failure) -> Failure:
            for call in calls:
                if call.active():
                    call.cancel()
            release()
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

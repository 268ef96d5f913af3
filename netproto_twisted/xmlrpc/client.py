"""The XML-RPC client: :class:`Proxy` calls methods and returns Deferreds.

``await proxy.call("add", 1, 2)`` or ``await proxy.add(1, 2)``; dotted names
as attributes (``proxy.system.listMethods()``); :class:`MultiCall` batches
calls into one ``system.multicall``.  A fault raises
:class:`~netproto_twisted.xmlrpc.errors.Fault`, an HTTP status other than
200 :class:`~netproto_twisted.xmlrpc.errors.ProtocolError`, as in the stdlib.

HTTP goes through one small seam, :class:`IPostTransport` (send a POST body,
get status, headers and body back).  :class:`AgentTransport`, the default,
is :class:`twisted.web.client.Agent` on a persistent
:class:`~twisted.web.client.HTTPConnectionPool` (connections are reused,
HTTPS is verified against the system's trust store unless told otherwise).
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import unquote, urlsplit, urlunsplit

from twisted.internet import ssl
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IConsumer, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.python.failure import Failure
from twisted.web.client import (
    URI,
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
    ResponseDone,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import (
    UNKNOWN_LENGTH,
    IAgentEndpointFactory,
    IBodyProducer,
    IPolicyForHTTPS,
    IResponse,
)
from zope.interface import implementer

from netproto_twisted.xmlrpc._wire import (
    DEFAULT_MAX_DEPTH,
    dump_request,
    gunzip,
    parse_response,
)
from netproto_twisted.xmlrpc.errors import (
    BodyTooLarge,
    Fault,
    ProtocolError,
    XMLRPCTimeout,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE",
    "DEFAULT_TIMEOUT",
    "AgentTransport",
    "IPostTransport",
    "MultiCall",
    "MultiCallResult",
    "PostResponse",
    "Proxy",
]

#: Largest response body accepted (and largest once decompressed), bytes.
DEFAULT_MAX_RESPONSE = 64 * 1024 * 1024
#: Seconds a call may take, connection included, before it fails with XMLRPCTimeout.
DEFAULT_TIMEOUT = 60.0
_USER_AGENT = b"netproto_twisted-xmlrpc/0.1"


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


@implementer(IBodyProducer)
class _BytesProducer:
    """A request body already in memory, written at once."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self._data)
        return succeed(None)

    def pauseProducing(self) -> None:
        """Nothing to pause: the body was written whole."""

    def resumeProducing(self) -> None:
        """Nothing to resume."""

    def stopProducing(self) -> None:
        """Nothing to stop."""


_DONE = Failure(ResponseDone())


class _BodyCollector(TwistedProtocol):
    """Collect a response body up to a limit; abort the connection beyond it."""

    def __init__(self, finished: Deferred[bytes], limit: int) -> None:
        self._finished = finished
        self._limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self._failed = False

    def dataReceived(self, data: bytes) -> None:
        if self._failed:
            return
        self._size += len(data)
        if self._size > self._limit:
            self._failed = True
            if self.transport is not None:
                self.transport.stopProducing()  # type: ignore[attr-defined]
            self._finished.errback(BodyTooLarge(self._limit))
            return
        self._parts.append(data)

    def connectionLost(self, reason: Failure = _DONE) -> None:
        if self._failed:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self._finished.callback(b"".join(self._parts))
        else:
            self._finished.errback(reason)


@implementer(IPolicyForHTTPS)
class _TrustRootPolicy:
    """Verify servers against ``trust_root`` (a CA certificate) instead of the system store."""

    def __init__(self, trust_root: ssl.Certificate | Any) -> None:
        self._trust_root = trust_root

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return ssl.optionsForClientTLS(hostname.decode("idna"), trustRoot=self._trust_root)


class AgentTransport:
    """:class:`IPostTransport` on twisted.web's Agent with a persistent connection pool.

    ``tls_trust`` replaces the system's trust store (a
    :class:`~twisted.internet.ssl.Certificate` or ``trustRootFromCertificates``
    result); ``tls_policy`` replaces the whole HTTPS policy.  Certificates
    and host names are always verified unless a policy says otherwise.
    """

    def __init__(
        self,
        reactor: Any,
        *,
        pool: HTTPConnectionPool | None = None,
        max_connections_per_host: int = 32,
        connect_timeout: float | None = 30.0,
        tls_trust: Any = None,
        tls_policy: IPolicyForHTTPS | None = None,
        max_response: int = DEFAULT_MAX_RESPONSE,
    ) -> None:
        if pool is None:
            pool = HTTPConnectionPool(reactor, persistent=True)
            pool.maxPersistentPerHost = max_connections_per_host
            pool.retryAutomatically = True
        self.pool = pool
        if tls_policy is None:
            tls_policy = (
                _TrustRootPolicy(tls_trust)
                if tls_trust is not None
                else BrowserLikePolicyForHTTPS()
            )
        endpoints = _CachingEndpointFactory(reactor, tls_policy, connect_timeout)
        self._agent = Agent.usingEndpointFactory(reactor, endpoints, pool)
        # Servers that answer HTTP/1.0 without keep-alive (the stdlib's SimpleXMLRPCServer)
        # close after each response: their connections are never reused.
        self._oneshot_agent = Agent.usingEndpointFactory(
            reactor, endpoints, HTTPConnectionPool(reactor, persistent=False)
        )
        self._no_reuse: set[bytes] = set()
        self._max_response = max_response
        self._headers: tuple[Mapping[bytes, bytes], bytes, Headers] | None = None

    def post(
        self, url: bytes, headers: Mapping[bytes, bytes], body: bytes
    ) -> Deferred[PostResponse]:
        """POST ``body`` to ``url`` and read the whole response (up to the size limit)."""
        origin = _origin(url)
        cached = self._headers
        if cached is not None and cached[0] is headers and cached[1] == origin:
            request_headers = cached[2]
        else:
            # The Host header is set here, so that Agent does not copy the headers per request.
            request_headers = Headers({name: [value] for name, value in headers.items()})
            if not request_headers.hasHeader(b"host"):
                request_headers.setRawHeaders(b"host", [origin.split(b"/")[-1]])
            self._headers = (headers, origin, request_headers)
        agent = self._oneshot_agent if origin in self._no_reuse else self._agent
        d = agent.request(b"POST", url, request_headers, _BytesProducer(body))
        return cast("Deferred[PostResponse]", d.addCallback(self._read, origin))

    def _read(self, response: IResponse, origin: bytes) -> Deferred[PostResponse]:
        if tuple(response.version[1:]) < (1, 1):
            connection = response.headers.getRawHeaders(b"connection") or []
            if not any(b"keep-alive" in value.lower() for value in connection):
                self._no_reuse.add(origin)
        length = response.length
        if length is not UNKNOWN_LENGTH and cast(int, length) > self._max_response:
            response.deliverBody(_Discard())
            raise BodyTooLarge(self._max_response)
        finished: Deferred[bytes] = Deferred()
        response.deliverBody(_BodyCollector(finished, self._max_response))
        headers = {
            name.decode("latin-1").lower(): values[0].decode("latin-1")
            for name, values in response.headers.getAllRawHeaders()
        }

        def done(body: bytes) -> PostResponse:
            return PostResponse(response.code, response.phrase.decode("latin-1"), headers, body)

        return finished.addCallback(done)

    def close(self) -> Deferred[None]:
        """Close the pool's idle connections."""
        return cast("Deferred[None]", self.pool.closeCachedConnections())


@implementer(IAgentEndpointFactory)
class _CachingEndpointFactory:
    """Agent's endpoints, made once per scheme, host and port instead of once per request."""

    def __init__(
        self, reactor: Any, tls_policy: IPolicyForHTTPS, connect_timeout: float | None
    ) -> None:
        self._reactor = reactor
        self._tls_policy = tls_policy
        self._timeout = connect_timeout
        self._endpoints: dict[tuple[bytes, bytes, int], IStreamClientEndpoint] = {}

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            if uri.scheme not in (b"http", b"https"):
                raise SchemeNotSupported(f"unsupported scheme: {uri.scheme!r}")
            host = uri.host.decode("ascii")
            timeout = self._timeout if self._timeout is not None else 30
            endpoint = HostnameEndpoint(self._reactor, host, uri.port, timeout=timeout)
            if uri.scheme == b"https":
                creator = self._tls_policy.creatorForNetloc(uri.host, uri.port)
                endpoint = wrapClientTLS(creator, endpoint)
            if len(self._endpoints) < 256:
                self._endpoints[key] = endpoint
        return endpoint


def _origin(url: bytes) -> bytes:
    return b"/".join(url.split(b"/", 3)[:3])


class _Discard(TwistedProtocol):
    def makeConnection(self, transport: Any) -> None:
        transport.stopProducing()


class Proxy:
    """A remote XML-RPC server at ``url``: ``call(name, *params)`` or ``proxy.name(*params)``.

    ``http://user:password@host/RPC2`` sends HTTP Basic credentials.
    ``allow_none``, ``use_builtin_types``, ``use_datetime`` and ``use_i8``
    are the marshalling options of :mod:`xmlrpc.client`; ``timeout`` bounds
    each call; ``gzip_threshold`` compresses request bodies at least that
    long (``None``: never; responses are always accepted gzip-compressed).
    """

    def __init__(
        self,
        url: str,
        reactor: IReactorTime,
        *,
        transport: IPostTransport | None = None,
        allow_none: bool = False,
        use_builtin_types: bool = False,
        use_datetime: bool = False,
        use_i8: bool = False,
        timeout: float | None = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        gzip_threshold: int | None = None,
        max_response: int = DEFAULT_MAX_RESPONSE,
        max_depth: int = DEFAULT_MAX_DEPTH,
        tls_trust: Any = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"unsupported XML-RPC URL scheme: {parts.scheme!r}")
        self._headers: dict[bytes, bytes] = {
            b"content-type": b"text/xml",
            b"user-agent": _USER_AGENT,
            b"accept-encoding": b"gzip",
        }
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            token = base64.b64encode(credentials.encode("utf-8"))
            self._headers[b"authorization"] = b"Basic " + token
            netloc = parts.hostname or ""
            if ":" in netloc:
                netloc = f"[{netloc}]"
            if parts.port is not None:
                netloc = f"{netloc}:{parts.port}"
            parts = parts._replace(netloc=netloc)
        for name, value in (headers or {}).items():
            self._headers[name.lower().encode("latin-1")] = value.encode("latin-1")
        self.url = urlunsplit(parts._replace(path=parts.path or "/RPC2"))
        self._url = self.url.encode("ascii")
        self._reactor = reactor
        self._owns_transport = transport is None
        self._transport: IPostTransport = (
            transport
            if transport is not None
            else AgentTransport(reactor, tls_trust=tls_trust, max_response=max_response)
        )
        self._allow_none = allow_none
        self._use_i8 = use_i8
        self._use_builtin_types = use_builtin_types
        self._use_datetime = use_datetime
        self._timeout = timeout
        self._gzip_threshold = gzip_threshold
        self._max_response = max_response
        self._max_depth = max_depth

    def call(self, method: str, *params: Any) -> Deferred[Any]:
        """Call ``method`` with ``params``; fire with its result, or fail with a Fault."""
        try:
            body = dump_request(method, params, allow_none=self._allow_none, use_i8=self._use_i8)
        except Exception:
            return _fail()
        headers = self._headers
        if self._gzip_threshold is not None and len(body) >= self._gzip_threshold:
            body = gzip.compress(body, compresslevel=1)
            headers = {**headers, b"content-encoding": b"gzip"}
        d = self._transport.post(self._url, headers, body)
        if self._timeout is not None:
            d.addTimeout(self._timeout, self._reactor, self._timed_out)
        return d.addCallback(self._result)

    def _timed_out(self, result: object, timeout: float) -> object:
        # Called only when the timeout cancelled the call.
        if isinstance(result, Failure):
            raise XMLRPCTimeout(f"no response from {self.url} within {timeout} s")
        return result

    def _result(self, response: PostResponse) -> Any:
        if response.status != 200:
            raise ProtocolError(self.url, response.status, response.reason, dict(response.headers))
        body = response.body
        if response.headers.get("content-encoding", "").lower() in ("gzip", "x-gzip"):
            try:
                body = gunzip(body, self._max_response)
            except ValueError:
                raise ProtocolError(
                    self.url, 400, "invalid gzip data in the response", dict(response.headers)
                ) from None
        return parse_response(
            body,
            use_builtin_types=self._use_builtin_types,
            use_datetime=self._use_datetime,
            max_depth=self._max_depth,
        )

    def __getattr__(self, name: str) -> _Method:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Method(self, name)

    def multicall(self) -> MultiCall:
        """Return a :class:`MultiCall` collecting calls to send through this proxy."""
        return MultiCall(self)

    def close(self) -> Deferred[None]:
        """Close the proxy's idle connections (a transport passed in is left to its owner)."""
        if self._owns_transport:
            return self._transport.close()
        return succeed(None)

    def __repr__(self) -> str:
        return f"<Proxy for {self.url}>"


def _fail() -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.errback(Failure())
    return d


class _Method:
    """A remote method name; attribute access extends it (``system`` -> ``system.listMethods``)."""

    __slots__ = ("_name", "_proxy")

    def __init__(self, proxy: Proxy, name: str) -> None:
        self._proxy = proxy
        self._name = name

    def __getattr__(self, name: str) -> _Method:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Method(self._proxy, f"{self._name}.{name}")

    def __call__(self, *params: Any) -> Deferred[Any]:
        return self._proxy.call(self._name, *params)


class MultiCallResult:
    """The results of a :class:`MultiCall`: iterate or index; a failed call raises its Fault."""

    def __init__(self, results: list[Any]) -> None:
        self._results = results

    def __getitem__(self, index: int) -> Any:
        item = self._results[index]
        if isinstance(item, dict):
            raise Fault(item["faultCode"], item["faultString"])
        if isinstance(item, list) and len(item) == 1:
            return item[0]
        raise ValueError("unexpected type in multicall result")

    def __len__(self) -> int:
        return len(self._results)

    def __iter__(self) -> Iterator[Any]:
        for index in range(len(self._results)):
            yield self[index]


class MultiCall:
    """Collect calls (``mc.add(1, 2)``), then ``await mc()`` sends them in one request."""

    def __init__(self, proxy: Proxy) -> None:
        self._proxy = proxy
        self._calls: list[dict[str, Any]] = []

    def add_call(self, method: str, *params: Any) -> None:
        """Queue a call of ``method``."""
        self._calls.append({"methodName": method, "params": list(params)})

    def __getattr__(self, name: str) -> _MultiCallMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _MultiCallMethod(self, name)

    def __call__(self) -> Deferred[MultiCallResult]:
        """Send every queued call; fire with a :class:`MultiCallResult`."""
        d = self._proxy.call("system.multicall", self._calls)
        return d.addCallback(MultiCallResult)


class _MultiCallMethod:
    __slots__ = ("_multicall", "_name")

    def __init__(self, multicall: MultiCall, name: str) -> None:
        self._multicall = multicall
        self._name = name

    def __getattr__(self, name: str) -> _MultiCallMethod:
        if name.startswith("_"):
            raise AttributeError(name)
        return _MultiCallMethod(self._multicall, f"{self._name}.{name}")

    def __call__(self, *params: Any) -> None:
        self._multicall.add_call(self._name, *params)

"""The XML-RPC client: :class:`Proxy` calls methods and returns Deferreds.

``await proxy.call("add", 1, 2)`` or ``await proxy.add(1, 2)``; dotted names
as attributes (``proxy.system.listMethods()``); :class:`MultiCall` batches
calls into one ``system.multicall``.  A fault raises
:class:`~netproto_twisted.xmlrpc.errors.Fault`, an HTTP status other than
200 :class:`~netproto_twisted.xmlrpc.errors.ProtocolError`, as in the stdlib.

HTTP goes through one small seam, :class:`IPostTransport` (send a POST body,
get status, headers and body back).  :class:`PoolTransport`, the default,
is the HTTP client's connection pool
(:class:`~netproto_twisted.http.client.transport.HTTPTransport`: HTTP/1.1
on h11, connections reused, HTTPS verified against the system's trust
store unless told otherwise).
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from twisted.internet import ssl
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone

from netproto_twisted.http.client.http11 import RawResponse
from netproto_twisted.http.client.transport import HTTPTransport
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
    "IPostTransport",
    "MultiCall",
    "MultiCallResult",
    "PoolTransport",
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
        if reason.check(ResponseDone):
            self._finished.callback(b"".join(self._parts))
        else:
            self._finished.errback(reason)


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
        connect_timeout: float | None = 30.0,
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
                connect_timeout=connect_timeout if connect_timeout is not None else 30.0,
                idle_timeout=None,
                max_per_host=max_connections_per_host,
                tls_creator=creator,
            )
        self.http = http
        self._max_response = max_response
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
        return d.addCallback(self._read)

    def _read(self, response: RawResponse) -> Deferred[PostResponse]:
        length = response.length
        if length is not None and length > self._max_response:
            response.abort()
            raise BodyTooLarge(self._max_response)
        finished: Deferred[bytes] = Deferred()
        response.deliverBody(_BodyCollector(finished, self._max_response))
        headers: dict[str, str] = {}
        for name, value in response.headers:
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        reason = response.reason.decode("latin-1")

        def done(body: bytes) -> PostResponse:
            return PostResponse(response.status, reason, headers, body)

        return finished.addCallback(done)

    def close(self) -> Deferred[None]:
        """Close the connections (those of a shared HTTPTransport are left to its owner)."""
        if self._owns_http:
            return self.http.close()
        return succeed(None)


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
            else PoolTransport(reactor, tls_trust=tls_trust, max_response=max_response)
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

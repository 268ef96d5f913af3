"""The XML-RPC client: :class:`Proxy` calls methods and returns Deferreds.

``await proxy.call("add", 1, 2)`` or ``await proxy.add(1, 2)``; dotted names
as attributes (``proxy.system.listMethods()``); :class:`MultiCall` batches
calls into one ``system.multicall``.  A fault raises
:class:`~netproto_twisted.xmlrpc.errors.Fault`, an HTTP status other than
200 :class:`~netproto_twisted.xmlrpc.errors.ProtocolError`, as in the stdlib.

HTTP goes through one small seam, :class:`IPostTransport` (send a POST body,
get status, headers and body back; see
:mod:`netproto_twisted.xmlrpc.transport`).  :class:`DirectTransport`, the
default, keeps its own persistent HTTP/1.1 connections (the HTTP client's
h11 connection) and checks the call timeouts itself; :class:`PoolTransport`
goes through an HTTP client's connection pool.  A connection that fails
raises the :class:`OSError` subclasses ``ServerProxy`` users catch
(:class:`ConnectionRefusedError`, :class:`socket.gaierror`,
:class:`ssl.SSLError`, :class:`ConnectionResetError`).
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from netproto_twisted.xmlrpc._wire import (
    DEFAULT_MAX_DEPTH,
    dump_request,
    gunzip,
    parse_response,
)
from netproto_twisted.xmlrpc.errors import (
    Fault,
    ProtocolError,
    XMLRPCTimeout,
)
from netproto_twisted.xmlrpc.transport import (
    DEFAULT_MAX_RESPONSE,
    DirectTransport,
    IPostTransport,
    PoolTransport,
    PostResponse,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE",
    "DEFAULT_TIMEOUT",
    "DirectTransport",
    "IPostTransport",
    "MultiCall",
    "MultiCallResult",
    "PoolTransport",
    "PostResponse",
    "Proxy",
]

#: Seconds a call may take, connection included, before it fails with XMLRPCTimeout.
DEFAULT_TIMEOUT = 60.0
_USER_AGENT = b"netproto_twisted-xmlrpc/0.1"


class Proxy:
    """A remote XML-RPC server at ``url``: ``call(name, *params)`` or ``proxy.name(*params)``.

    ``http://user:password@host/RPC2`` sends HTTP Basic credentials.
    ``allow_none``, ``use_builtin_types``, ``use_datetime`` and ``use_i8``
    are the marshalling options of :mod:`xmlrpc.client`; ``timeout`` bounds
    each call (connection included; ``None``: no bound); ``gzip_threshold``
    compresses request bodies at least that long (``None``: never;
    responses are always accepted gzip-compressed).  Without ``transport``
    the proxy builds a :class:`DirectTransport` (``tls_trust``,
    ``max_connections``, ``connect_timeout`` go to it) that enforces
    ``timeout`` itself; with one, the proxy adds its own timeout to each call.
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
        max_connections: int = 32,
        connect_timeout: float = 30.0,
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
        if transport is None:
            transport = DirectTransport(
                reactor,
                timeout=timeout,
                tls_trust=tls_trust,
                max_response=max_response,
                max_connections_per_host=max_connections,
                connect_timeout=connect_timeout,
            )
        self._transport: IPostTransport = transport
        self._allow_none = allow_none
        self._use_i8 = use_i8
        self._use_builtin_types = use_builtin_types
        self._use_datetime = use_datetime
        self._timeout = timeout
        self._gzip_threshold = gzip_threshold
        self._gzip_headers = {**self._headers, b"content-encoding": b"gzip"}
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
            headers = self._gzip_headers
        d = self._transport.post(self._url, headers, body)
        if self._timeout is not None and not self._owns_transport:
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

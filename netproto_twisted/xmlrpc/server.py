"""The XML-RPC server: a twisted.web resource, mountable anywhere, and a Site that runs it alone.

:class:`XMLRPCResource` answers POST with the method's result (or a
:class:`~netproto_twisted.xmlrpc.errors.Fault` with a stable code), GET with
the HTML documentation page.  It checks the body size (413), the content
type (415), decompresses gzip requests with a cap, and with a ``portal``
asks for HTTP Basic credentials through :mod:`twisted.cred`.

:class:`XMLRPCSite` is the twisted.web Site of the stand-alone daemon; its
requests refuse a body over the limit *before* it is buffered (from
``Content-Length``, or by counting a chunked body), which a resource alone
cannot do; mounted on the ``[http]`` server, the site does the same with the
limit :meth:`XMLRPCResource.max_request_body` gives.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import inspect
import io
import os
import time
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.resource import Resource

from netproto_twisted.core.auth import IAuthenticated
from netproto_twisted.core.reactors import IStoreReactor
from netproto_twisted.core.threads import Runner, thread_runner
from netproto_twisted.xmlrpc._wire import (
    DEFAULT_MAX_DEPTH,
    dump_fault,
    dump_response,
    gunzip,
    parse_request,
)
from netproto_twisted.xmlrpc.errors import (
    APPLICATION_ERROR,
    INTERNAL_ERROR,
    INVALID_METHOD_PARAMS,
    INVALID_XMLRPC,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    BodyTooLarge,
    Fault,
    ResponseError,
    UnsafeXML,
)
from netproto_twisted.xmlrpc.htmldoc import render_documentation
from netproto_twisted.xmlrpc.methods import MethodRegistry

__all__ = [
    "DEFAULT_MAX_BODY",
    "LimitedRequest",
    "ServerSettings",
    "XMLRPCResource",
    "XMLRPCSite",
]

_log = Logger()

#: Largest request body accepted (and largest once gzip-decompressed), bytes.
DEFAULT_MAX_BODY = 10 * 1024 * 1024
#: Responses at least this long are gzip-compressed for clients that accept it (as the stdlib).
DEFAULT_GZIP_THRESHOLD = 1400
#: How long a checked ``Authorization`` header is remembered, seconds.
AUTH_CACHE_SECONDS = 60.0
_AUTH_CACHE_SIZE = 1024
_XML_TYPES = frozenset({b"text/xml", b"application/xml"})
_TEXT_XML = b"text/xml"
_HTML = b"text/html; charset=utf-8"


@dataclass(frozen=True)
class ServerSettings:
    """How an :class:`XMLRPCResource` marshals, limits and documents."""

    #: Marshal ``None`` as ``<nil/>`` (the stdlib's ``allow_none``).
    allow_none: bool = False
    #: Give methods ``bytes``/``datetime`` instead of ``Binary``/``DateTime``.
    use_builtin_types: bool = False
    #: Marshal ints beyond 32 bits as ``<i8>`` (else such a result is a fault).
    use_i8: bool = False
    #: Largest request body (413 beyond), and largest once decompressed.
    max_body: int = DEFAULT_MAX_BODY
    #: Arrays/structs nested deeper are refused.
    max_depth: int = DEFAULT_MAX_DEPTH
    #: Most calls in one ``system.multicall``.
    max_multicall: int = 1000
    #: Put the exception type and text in application-error faults.
    debug: bool = False
    #: gzip responses at least this long when the client accepts gzip (0: never).
    gzip_threshold: int = DEFAULT_GZIP_THRESHOLD
    #: Serve the HTML documentation page at GET.
    documentation: bool = True
    #: Title of the documentation page.
    title: str = "XML-RPC Server"
    #: A paragraph under the title.
    description: str = ""
    #: The realm named in ``WWW-Authenticate`` when a portal is configured.
    auth_realm: str = "netproto xmlrpc"


def _header(request: server.Request, name: bytes) -> bytes | None:
    return cast("bytes | None", request.getHeader(name))


class XMLRPCResource(Resource):
    """XML-RPC at one URL: POST calls a method of ``registry``, GET shows its documentation."""

    isLeaf = True

    def __init__(
        self,
        registry: MethodRegistry,
        reactor: IStoreReactor,
        settings: ServerSettings | None = None,
        *,
        portal: Portal | None = None,
        runner: Runner | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.registry = registry
        self.settings = settings if settings is not None else ServerSettings()
        self._reactor = reactor
        self._portal = portal
        self._runner = runner
        self._auth_cache: dict[bytes, float] = {}
        self._auth_key = os.urandom(16)

    # -- HTTP ------------------------------------------------------------------

    def render_GET(self, request: server.Request) -> bytes | int:
        """Return the HTML documentation page (405 when documentation is off)."""
        if not self.settings.documentation:
            request.setResponseCode(http.NOT_ALLOWED)
            request.setHeader(b"allow", b"POST")
            return b""
        if self._portal is not None and not self._cached_login(request):
            return self._login_then(request, lambda: self._finish_get(request))
        return self._documentation(request)

    def _documentation(self, request: server.Request) -> bytes:
        request.setHeader(b"content-type", _HTML)
        return render_documentation(
            self.registry, title=self.settings.title, description=self.settings.description
        )

    def _finish_get(self, request: server.Request) -> None:
        request.write(self._documentation(request))
        request.finish()

    def max_request_body(self, request: server.Request) -> int:
        """The largest body accepted, asked by the site before the body comes.

        Mounted on the ``[http]`` site
        (:class:`~netproto_twisted.http.server.site.HTTPRequest`), a
        ``Content-Length`` over it is answered 413 before any of the body is
        read, and a body of unknown length (chunked, or HTTP/2 without a
        length) is counted as it arrives and refused once past it; what is
        accepted goes to twisted.web's spool (memory under 100,000 bytes, an
        unlinked temporary file above), so it is never more than this limit.
        """
        return self.settings.max_body

    def render_POST(self, request: server.Request) -> bytes | int:
        """Call the method the body names; answer its result or a fault."""
        settings = self.settings
        declared = _header(request, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body:
            return self._refuse(request, http.REQUEST_ENTITY_TOO_LARGE, b"request body too large")
        content_type = _header(request, b"content-type")
        if content_type is not None:
            kind = content_type.split(b";", 1)[0].strip().lower()
            if kind not in _XML_TYPES:
                return self._refuse(
                    request, http.UNSUPPORTED_MEDIA_TYPE, b"the body must be text/xml"
                )
        content = request.content
        assert content is not None
        content.seek(0)
        body = content.read(settings.max_body + 1)
        if len(body) > settings.max_body:
            return self._refuse(request, http.REQUEST_ENTITY_TOO_LARGE, b"request body too large")
        encoding = _header(request, b"content-encoding")
        if encoding is not None and encoding.strip().lower() != b"identity":
            if encoding.strip().lower() not in (b"gzip", b"x-gzip"):
                return self._refuse(
                    request, http.UNSUPPORTED_MEDIA_TYPE, b"unsupported content encoding"
                )
            try:
                body = gunzip(body, settings.max_body)
            except BodyTooLarge:
                return self._refuse(
                    request, http.REQUEST_ENTITY_TOO_LARGE, b"decompressed body too large"
                )
            except ValueError:
                return self._refuse(request, http.BAD_REQUEST, b"bad gzip body")
        if self._portal is not None and not self._cached_login(request):
            return self._login_then(request, lambda: self._answer_later(request, body))
        return self._answer(request, body)

    def _answer(self, request: server.Request, body: bytes) -> bytes | int:
        """Dispatch ``body``; return the response now or NOT_DONE_YET."""
        try:
            result = self._dispatch(body)
        except Exception as e:
            return self._response(request, self._fault_document(e))
        if isinstance(result, Deferred):
            self._write_later(request, result)
            return server.NOT_DONE_YET
        return self._response(request, self._result_document(result))

    def _answer_later(self, request: server.Request, body: bytes) -> None:
        answer = self._answer(request, body)
        if answer is not server.NOT_DONE_YET:
            request.write(cast(bytes, answer))
            request.finish()

    def _write_later(self, request: server.Request, result: Deferred[Any]) -> None:
        gone: list[Failure] = []
        request.notifyFinish().addErrback(gone.append)

        def done(value: Any) -> None:
            if gone:
                return
            request.write(self._response(request, self._result_document(value)))
            request.finish()

        def failed(failure: Failure) -> None:
            if gone:
                return
            document = self._fault_document(cast(BaseException, failure.value))
            request.write(self._response(request, document))
            request.finish()

        result.addCallbacks(done, failed)

    def _response(self, request: server.Request, document: bytes) -> bytes:
        threshold = self.settings.gzip_threshold
        if threshold and len(document) >= threshold:
            accept = _header(request, b"accept-encoding")
            if accept is not None and b"gzip" in accept.lower():
                document = gzip.compress(document, compresslevel=1)
                request.setHeader(b"content-encoding", b"gzip")
        request.setHeader(b"content-type", _TEXT_XML)
        request.setHeader(b"content-length", b"%d" % len(document))
        return document

    def _refuse(self, request: server.Request, code: int, text: bytes) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        if code == http.REQUEST_ENTITY_TOO_LARGE:
            request.setHeader(b"connection", b"close")
        return text + b"\n"

    # -- authentication ----------------------------------------------------------

    def _cache_key(self, header: bytes) -> bytes:
        return hashlib.blake2b(header, key=self._auth_key, digest_size=16).digest()

    def _cached_login(self, request: server.Request) -> bool:
        header = _header(request, b"authorization")
        if header is None:
            return False
        expiry = self._auth_cache.get(self._cache_key(header))
        return expiry is not None and expiry > self._reactor.seconds()

    def _login_then(self, request: server.Request, proceed: Callable[[], None]) -> int | bytes:
        header = _header(request, b"authorization")
        credentials = _basic_credentials(header)
        if credentials is None:
            return self._unauthorized(request)
        assert self._portal is not None and header is not None
        gone: list[Failure] = []
        request.notifyFinish().addErrback(gone.append)

        def accepted(_: object) -> None:
            cache = self._auth_cache
            if len(cache) >= _AUTH_CACHE_SIZE:
                cache.clear()
            cache[self._cache_key(header)] = self._reactor.seconds() + AUTH_CACHE_SECONDS
            if not gone:
                proceed()

        def refused(failure: Failure) -> None:
            if not failure.check(UnauthorizedLogin):
                _log.failure("XML-RPC login failed", failure)
            if not gone:
                request.write(self._unauthorized(request))
                request.finish()

        login = self._portal.login(UsernamePassword(*credentials), None, IAuthenticated)
        login.addCallbacks(accepted, refused)
        return server.NOT_DONE_YET

    def _unauthorized(self, request: server.Request) -> bytes:
        request.setResponseCode(http.UNAUTHORIZED)
        realm = self.settings.auth_realm.replace("\\", "\\\\").replace('"', '\\"')
        request.setHeader(b"www-authenticate", f'Basic realm="{realm}"'.encode())
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"authentication required\n"

    # -- dispatch ----------------------------------------------------------------

    def _dispatch(self, body: bytes) -> Any:
        settings = self.settings
        name, params = parse_request(
            body, use_builtin_types=settings.use_builtin_types, max_depth=settings.max_depth
        )
        return self.call(name, params)

    def call(self, name: str, params: tuple[Any, ...]) -> Any:
        """Call method ``name``: its value, a Deferred, or raise (a Fault for a bad call)."""
        if name == "system.multicall" and self.registry.multicall:
            if len(params) != 1 or not isinstance(params[0], list):
                raise Fault(INVALID_METHOD_PARAMS, "system.multicall takes one array of calls")
            return self._multicall(params[0])
        method = self.registry.lookup(name)
        if method is None:
            raise Fault(METHOD_NOT_FOUND, f"method {name!r} is not supported")
        if method.blocking:
            problem = method.check_params(params)
            if problem is not None:
                raise Fault(INVALID_METHOD_PARAMS, f"bad parameters for {name}: {problem}")
            return self._run(method.func, *params)
        try:
            result = method.func(*params)
        except TypeError:
            # The parameters are checked only now, so that a good call does not pay for it.
            problem = method.check_params(params)
            if problem is not None:
                raise Fault(
                    INVALID_METHOD_PARAMS, f"bad parameters for {name}: {problem}"
                ) from None
            raise
        if inspect.iscoroutine(result):
            return Deferred.fromCoroutine(result)
        return result

    def _run(self, func: Callable[..., Any], *params: Any) -> Deferred[Any]:
        if self._runner is None:
            self._runner = thread_runner(self._reactor, self._reactor.getThreadPool())
        return self._runner(func, *params)

    def _multicall(self, calls: list[Any]) -> Any:
        if len(calls) > self.settings.max_multicall:
            raise Fault(
                INVALID_METHOD_PARAMS,
                f"at most {self.settings.max_multicall} calls in one system.multicall",
            )
        results: list[Any] = []
        pending = False
        for call in calls:
            try:
                if not isinstance(call, dict):
                    raise Fault(INVALID_METHOD_PARAMS, "each call must be a struct")
                name, params = call.get("methodName"), call.get("params", [])
                if not isinstance(name, str) or not isinstance(params, list):
                    raise Fault(INVALID_METHOD_PARAMS, "each call needs methodName and params")
                if name == "system.multicall":
                    raise Fault(INVALID_METHOD_PARAMS, "system.multicall cannot be nested")
                value = self.call(name, tuple(params))
            except Exception as e:
                results.append(self._fault_struct(e))
                continue
            if isinstance(value, Deferred):
                pending = True
                results.append(value.addCallbacks(lambda v: [v], self._fault_struct_failure))
            else:
                results.append([value])
        if not pending:
            return results
        return gatherResults([r if isinstance(r, Deferred) else _succeed(r) for r in results])

    def _fault_struct_failure(self, failure: Failure) -> dict[str, Any]:
        return self._fault_struct(cast(Exception, failure.value), failure)

    def _fault_struct(self, error: Exception, failure: Failure | None = None) -> dict[str, Any]:
        fault = self._fault_for(error, failure)
        return {"faultCode": fault.faultCode, "faultString": fault.faultString}

    def _fault_for(self, error: BaseException, failure: Failure | None = None) -> Fault:
        """The Fault that answers ``error``: its own, a parse error, or a stable generic one."""
        if isinstance(error, Fault):
            return error
        if isinstance(error, xmlrpc.client.Fault):
            return Fault(error.faultCode, error.faultString)
        if isinstance(error, UnsafeXML):
            return Fault(INVALID_XMLRPC, str(error))
        if isinstance(error, ResponseError):
            return Fault(PARSE_ERROR, str(error))
        _log.failure("XML-RPC method failed", failure if failure is not None else Failure(error))
        if self.settings.debug:
            return Fault(APPLICATION_ERROR, f"{type(error).__name__}: {error}")
        return Fault(APPLICATION_ERROR, "application error")

    def _fault_document(self, error: BaseException) -> bytes:
        fault = self._fault_for(error)
        return dump_fault(fault.faultCode, fault.faultString)

    def _result_document(self, value: Any) -> bytes:
        settings = self.settings
        try:
            return dump_response(value, allow_none=settings.allow_none, use_i8=settings.use_i8)
        except (TypeError, OverflowError, ValueError, UnicodeError) as e:
            _log.warn("cannot marshal an XML-RPC result: {error}", error=str(e))
            text = (
                f"cannot marshal the result: {e}"
                if settings.debug
                else "cannot marshal the result"
            )
            return dump_fault(INTERNAL_ERROR, text)


def _succeed(value: Any) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.callback(value)
    return d


def _basic_credentials(header: bytes | None) -> tuple[bytes, bytes] | None:
    if header is None:
        return None
    scheme, _, encoded = header.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    return user, password


# -- the stand-alone site ------------------------------------------------------------


#: Whether twisted.web's Request takes ``parsePOSTFormSubmission`` (26.10 does).
_HAS_FORM_SWITCH = "parsePOSTFormSubmission" in inspect.signature(http.Request.__init__).parameters


class LimitedRequest(server.Request):
    """A twisted.web request that refuses a body over :attr:`max_body` before buffering it.

    ``Content-Length`` beyond the limit is refused as soon as the headers
    are in; a chunked body is counted as it arrives.  The refusal is a 413
    and the connection is closed (the rest of the body is never read).
    """

    #: The largest body accepted, bytes (set per site by :class:`XMLRPCSite`).
    max_body: ClassVar[int] = DEFAULT_MAX_BODY
    _refused = False
    _received = 0

    def __init__(self, channel: Any, *args: Any, **kwargs: Any) -> None:
        if _HAS_FORM_SWITCH:
            kwargs.setdefault("parsePOSTFormSubmission", False)
        super().__init__(channel, *args, **kwargs)  # type: ignore[no-untyped-call]

    def gotLength(self, length: int | None) -> None:
        """Refuse at once a declared length over the limit; else buffer as usual."""
        transport = self.channel.transport
        set_no_delay = getattr(transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
        if length is not None and length > self.max_body:
            self._refuse_too_large()
            return
        super().gotLength(length)  # type: ignore[no-untyped-call]

    def handleContentChunk(self, data: bytes) -> None:
        """Count the body; refuse it once it passes the limit."""
        if self._refused:
            return
        self._received += len(data)
        if self._received > self.max_body:
            self._refuse_too_large()
            return
        super().handleContentChunk(data)  # type: ignore[no-untyped-call]

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """Process the request, unless its body was refused."""
        if self._refused:
            return
        super().requestReceived(command, path, version)  # type: ignore[no-untyped-call]

    def process(self) -> None:
        """Render the XML-RPC resource at once when the path is its own; else as twisted.web does.

        The direct path skips the resource traversal and the ``Server``
        header (which would name the Twisted release).
        """
        site: Any = getattr(self.channel, "site", None)
        resource = getattr(site, "rpc_resource", None)
        if resource is None or self.path != site.rpc_path:
            super().process()  # type: ignore[no-untyped-call]
            return
        self.site = site
        self.prepath = site.rpc_segments[:]
        self.postpath = []
        self.setHeader(b"date", _http_date())  # type: ignore[no-untyped-call]
        try:
            self.render(resource)  # type: ignore[no-untyped-call]
        except BaseException:
            self.processingFailed(Failure())  # type: ignore[no-untyped-call]

    def _refuse_too_large(self) -> None:
        self._refused = True
        self.content = io.BytesIO()
        body = b"request body too large\n"
        transport = self.channel.transport
        assert transport is not None
        transport.write(
            b"HTTP/1.1 413 Request Entity Too Large\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Connection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        transport.loseConnection()


class _Channel(http.HTTPChannel):
    """HTTP/1.1 (no HTTP/2) with the local address read once per connection, not per request."""

    local_address: Any = None

    def getHost(self) -> Any:
        if self.local_address is None:
            self.local_address = super().getHost()  # type: ignore[no-untyped-call]
        return self.local_address


_date_cache: list[Any] = [0, b""]


def _http_date() -> bytes:
    """The ``Date`` header value, formatted once per second."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = http.datetimeToString(now)
    return cast(bytes, _date_cache[1])


class XMLRPCSite(server.Site):
    """The stand-alone daemon's Site: ``resource`` at ``path``, bodies limited, no access log."""

    def __init__(self, resource: XMLRPCResource, path: str = "/RPC2", **kwargs: Any) -> None:
        root: Resource = resource
        segments = [s for s in path.split("/") if s]
        if segments:
            root = Resource()
            parent = root
            for segment in segments[:-1]:
                child = Resource()
                parent.putChild(segment.encode(), child)
                parent = child
            parent.putChild(segments[-1].encode(), resource)
        super().__init__(root, **kwargs)  # type: ignore[no-untyped-call]
        self.requestFactory = type(  # type: ignore[assignment]
            "LimitedRequest", (LimitedRequest,), {"max_body": resource.settings.max_body}
        )
        self.protocol = _Channel  # type: ignore[method-assign,assignment]
        #: The resource :meth:`LimitedRequest.process` renders directly, and its path.
        self.rpc_resource = resource
        self.rpc_path = ("/" + "/".join(segments)).encode()
        self.rpc_segments = [segment.encode() for segment in segments]

    def log(self, request: http.Request) -> None:
        """Keep no access log (one line per call would cost more than the call)."""

"""The standard handlers: http(s), file:, data:, proxies, errors, redirects, cookies, decoding.

They are urllib's handlers, with the same names and roles, built on
:class:`~netproto_twisted.http.client.transport.HTTPTransport`; see
:mod:`netproto_twisted.http.client.opener` for how an opener calls them.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import http.cookiejar
import io
import mimetypes
import os
import urllib.request
from typing import Any
from urllib.parse import unquote, unquote_to_bytes, urljoin, urlsplit, urlunsplit

from twisted.internet.defer import Deferred, ensureDeferred

from netproto_twisted.http.client.cookies import CookieHeaderMemo, SetCookieMemo
from netproto_twisted.http.client.decoding import (
    DEFAULT_MAX_DECODED,
    DEFAULT_MAX_RATIO,
    accept_encoding,
    make_decoder,
)
from netproto_twisted.http.client.errors import DowngradeRefused, HTTPError, RedirectLoop, URLError
from netproto_twisted.http.client.opener import BaseHandler
from netproto_twisted.http.client.request import ProxyInfo, Request, origin_of
from netproto_twisted.http.client.response import Response, headers_message
from netproto_twisted.http.client.sources import StreamSource
from netproto_twisted.http.client.transport import HTTPTransport

__all__ = [
    "MAX_ERROR_BODY",
    "SENSITIVE_HEADERS",
    "ContentDecodingProcessor",
    "DataHandler",
    "FileHandler",
    "HTTPCookieProcessor",
    "HTTPDefaultErrorHandler",
    "HTTPErrorProcessor",
    "HTTPHandler",
    "HTTPRedirectHandler",
    "HTTPSHandler",
    "ProxyHandler",
    "UnknownHandler",
]

#: Headers never carried to another origin by a redirect.
SENSITIVE_HEADERS = frozenset({"Authorization", "Cookie", "Proxy-authorization"})
#: Bytes of an error body kept for :meth:`HTTPError.read` (the rest is dropped).
MAX_ERROR_BODY = 1 << 20
_CONTENT_HEADERS = ("Content-length", "Content-type", "Content-encoding", "Transfer-encoding")


class _TransportHandler(BaseHandler):
    """Shared by the http and https handlers: one transport, made on first use."""

    def __init__(self, transport: HTTPTransport | None = None, **options: Any) -> None:
        self._transport = transport
        self._options = options

    @property
    def transport(self) -> HTTPTransport:
        """The transport requests go through (built from the opener's reactor if not given)."""
        if self._transport is None:
            self._transport = HTTPTransport(self.parent.reactor, **self._options)
        return self._transport

    def close(self) -> Deferred[None] | None:
        """Close the kept-alive connections."""
        if self._transport is None:
            return None
        return self._transport.close()


class HTTPHandler(_TransportHandler):
    """Open http: URLs (keyword options are :class:`HTTPTransport`'s)."""

    def http_open(self, req: Request) -> Deferred[Response]:
        """Send the request; fire with the response once its headers are in."""
        return self.transport.send(req)


class HTTPSHandler(_TransportHandler):
    """Open https: URLs, verifying the certificate and host name unless ``verify=False``."""

    def https_open(self, req: Request) -> Deferred[Response]:
        """Send the request over TLS."""
        return self.transport.send(req)


class UnknownHandler(BaseHandler):
    """Refuse URL schemes no handler opens."""

    handler_order = 1000

    def unknown_open(self, req: Request) -> Response:
        """Raise :class:`URLError`."""
        raise URLError(f"unknown url type: {req.type}")


class HTTPErrorProcessor(BaseHandler):
    """Pass non-2xx responses to the opener's error handlers."""

    handler_order = 1000

    def http_response(self, req: Request, response: Response) -> Response | Deferred[Response]:
        """Return a 2xx response; let the error chain answer any other."""
        if 200 <= response.status < 300:
            return response
        return self.parent.error(req.type, req, response)

    https_response = http_response


class HTTPDefaultErrorHandler(BaseHandler):
    """Raise :class:`HTTPError`, its body read first (up to :data:`MAX_ERROR_BODY`)."""

    async def http_error_default(
        self, req: Request, response: Response, code: int, msg: str, hdrs: Any
    ) -> Response:
        """Buffer the error body, so the connection goes back to the pool, and raise."""
        await _keep_error_body(response)
        raise HTTPError(response)


async def _keep_error_body(response: Response) -> None:
    """Read the error body's first :data:`MAX_ERROR_BODY` bytes, for :meth:`HTTPError.read`."""
    parts: list[bytes] = []
    with contextlib.suppress(URLError):
        await response.collect(parts.append, MAX_ERROR_BODY)
    response.keep_body(b"".join(parts))


class HTTPRedirectHandler(BaseHandler):
    """Follow 301, 302, 303, 307 and 308 (RFC 9110 section 15.4).

    301 and 302 turn a POST into a GET, 303 turns anything but HEAD into a
    GET, 307 and 308 keep the method and the body (bytes only: a streamed
    body cannot be sent twice, and its redirect is an :class:`HTTPError`).
    Authorization, Cookie and Proxy-Authorization are dropped when the
    redirect leaves the origin; an https -> http redirect is refused unless
    ``allow_downgrade``.  Past ``max_redirections`` redirects, or
    ``max_repeats`` visits of one URL, :class:`RedirectLoop` is raised.
    """

    max_repeats = 4
    max_redirections = 10

    def __init__(
        self,
        *,
        max_redirections: int | None = None,
        allow_downgrade: bool = False,
        schemes: tuple[str, ...] = ("http", "https", "ftp"),
    ) -> None:
        if max_redirections is not None:
            self.max_redirections = max_redirections
        self.allow_downgrade = allow_downgrade
        self.schemes = schemes

    def redirect_request(
        self, req: Request, response: Response, code: int, msg: str, headers: Any, newurl: str
    ) -> Request | None:
        """Build the request that follows the redirect, or ``None`` not to follow it."""
        method = req.get_method().upper()
        data = req.data
        if code in (307, 308):
            if data is not None and not isinstance(data, (bytes, bytearray, memoryview)):
                return None
        elif (code in (301, 302) and method == "POST") or (code == 303 and method != "HEAD"):
            method, data = "GET", None
        cross = origin_of(newurl) != req.origin
        new_headers = {}
        for name, value in req.headers.items():
            if cross and name.capitalize() in SENSITIVE_HEADERS:
                continue
            if data is None and name.capitalize() in _CONTENT_HEADERS:
                continue
            new_headers[name] = value
        new = Request(
            newurl,
            data,
            new_headers,
            origin_req_host=req.origin_req_host,
            unverifiable=True,
            method=method,
            timeout=req.timeout,
        )
        new.total_timeout = req.total_timeout
        new.redirect_dict = req.redirect_dict
        new.redirect_count = req.redirect_count + 1
        return new

    def http_error_302(
        self, req: Request, response: Response, code: int, msg: str, headers: Any
    ) -> Deferred[Response] | None:
        """Follow the Location header through the whole opener."""
        location = headers.get("location") or headers.get("uri")
        if location is None:
            return None
        newurl, scheme = _resolve(req.full_url, location.strip())
        if scheme not in self.schemes:
            refusal = HTTPError(response, f"redirection to {scheme}: is not allowed")
            return ensureDeferred(_refuse(response, refusal))
        if req.type == "https" and scheme == "http" and not self.allow_downgrade:
            downgrade = DowngradeRefused(f"redirect from https to {newurl} refused")
            return ensureDeferred(_refuse(response, downgrade, keep=False))
        new = self.redirect_request(req, response, code, msg, headers, newurl)
        if new is None:
            return None
        visited = new.redirect_dict
        if (
            visited.get(newurl, 0) >= self.max_repeats
            or new.redirect_count > self.max_redirections
        ):
            return ensureDeferred(
                _refuse(response, RedirectLoop(response, "redirect loop or too many redirections"))
            )
        visited[newurl] = visited.get(newurl, 0) + 1

        def followed(result: Response) -> Response:
            result.history[:0] = [*response.history, response]
            return result

        # A small body already in hand is drained at once (no wait).
        return response.close().addCallback(lambda _: self.parent.open(new)).addCallback(followed)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _resolve(base: str, location: str) -> tuple[str, str]:
    """The absolute URL a Location names (``/`` for an empty path) and its scheme."""
    newurl = urljoin(base, location)
    parts = urlsplit(newurl)
    if not parts.path and parts.netloc:
        newurl = urlunsplit(parts._replace(path="/"))
    return newurl, parts.scheme


async def _refuse(response: Response, error: Exception, keep: bool = True) -> Response:
    """Keep the error body (or discard it), then raise ``error``."""
    if keep:
        await _keep_error_body(response)
    else:
        await response.close()
    raise error


class HTTPCookieProcessor(BaseHandler):
    """Send and store cookies through an :class:`http.cookiejar.CookieJar`.

    Any jar works: :class:`http.cookiejar.MozillaCookieJar` and
    :class:`http.cookiejar.LWPCookieJar` save and load cookie files.
    """

    def __init__(self, cookiejar: http.cookiejar.CookieJar | None = None) -> None:
        self.cookiejar = cookiejar if cookiejar is not None else http.cookiejar.CookieJar()
        # The jar's answer per request, replayed while the jar is unchanged.
        self._memo = CookieHeaderMemo()
        # The cookies parsed from Set-Cookie headers seen before, stored again.
        self._set_memo = SetCookieMemo()

    def http_request(self, request: Request) -> Request:
        """Add the Cookie header for the request's URL."""
        self._memo.add_cookie_header(self.cookiejar, request)
        return request

    def http_response(self, request: Request, response: Response) -> Response:
        """Store the response's Set-Cookie headers (the jar's policy decides)."""
        headers = response.headers
        if "Set-Cookie" in headers or "Set-Cookie2" in headers:
            self._set_memo.extract_cookies(self.cookiejar, response, request)
        return response

    https_request = http_request
    https_response = http_response


class ContentDecodingProcessor(BaseHandler):
    """Ask for gzip, deflate (and br with brotli) and decode the body as it streams.

    ``max_size`` caps the decoded body and ``max_ratio`` the decoded/encoded
    ratio (past a mebibyte), against decompression bombs.  The headers are
    left as received; :attr:`Response.length` becomes unknown.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_DECODED, max_ratio: int = DEFAULT_MAX_RATIO):
        self.max_size = max_size
        self.max_ratio = max_ratio

    def http_request(self, request: Request) -> Request:
        """Add Accept-Encoding unless the caller set one."""
        if not request.has_header("Accept-encoding"):
            request.add_unredirected_header("Accept-encoding", accept_encoding())
        return request

    def http_response(self, request: Request, response: Response) -> Response:
        """Attach the decoder for the response's Content-Encoding."""
        decoder = make_decoder(
            response.headers.get("Content-Encoding"),
            max_size=self.max_size,
            max_ratio=self.max_ratio,
        )
        if decoder is not None:
            response.decoder = decoder
            response.length = None
        return response

    https_request = http_request
    https_response = http_response


class ProxyHandler(BaseHandler):
    """Choose a proxy per scheme (``{"http": url, "https": url, "no": "h1,h2"}``) or from the env.

    With ``proxies=None`` the ``http_proxy``, ``https_proxy`` and
    ``no_proxy`` variables decide (upper case too, as urllib reads them).
    Credentials in the proxy URL (``http://user:pw@proxy:3128``) are sent as
    Basic Proxy-Authorization.  https goes through a CONNECT tunnel.
    """

    handler_order = 100

    def __init__(self, proxies: dict[str, str] | None = None) -> None:
        if proxies is None:
            proxies = urllib.request.getproxies_environment()
        self.proxies = dict(proxies)

    def _bypass(self, host: str) -> bool:
        if "no" not in self.proxies:
            return False
        bypass: Any = getattr(urllib.request, "proxy_bypass_environment")  # noqa: B009 - untyped
        return bool(bypass(host, self.proxies))

    def http_request(self, req: Request) -> Request:
        """Set ``req.proxy`` unless the host is bypassed or a proxy is already set."""
        url = self.proxies.get(req.type)
        if url is None or req.proxy is not None or self._bypass(req.host):
            return req
        if "://" not in url:
            url = "http://" + url
        parts = urlsplit(url)
        user = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port is not None:
            netloc += f":{parts.port}"
        req.proxy = ProxyInfo(urlunsplit((parts.scheme, netloc, "", "", "")), user, password)
        return req

    https_request = http_request


class FileHandler(BaseHandler):
    """Open ``file:`` URLs of this host, read in chunks from the reactor."""

    def file_open(self, req: Request) -> Response:
        """Open the file; raise :class:`URLError` when it is missing or not local."""
        parts = urlsplit(req.full_url)
        if parts.netloc not in ("", "localhost"):
            raise URLError("file: URL on a remote host")
        path = urllib.request.url2pathname(unquote(parts.path))
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed by the body source
            stats = os.fstat(stream.fileno())
        except OSError as e:
            raise URLError(e, path) from e
        mtype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        modified = email.utils.formatdate(stats.st_mtime, usegmt=True)
        headers = headers_message(
            [
                ("Content-type", mtype),
                ("Content-length", str(stats.st_size)),
                ("Last-modified", modified),
            ]
        )
        return Response(
            url=req.full_url,
            status=200,
            reason="OK",
            headers=headers,
            source=StreamSource(self.parent.reactor, stream, stats.st_size),
            reactor=self.parent.reactor,
            version=None,
            request=req,
            length=stats.st_size,
        )


def parse_data_url(url: str) -> tuple[str, bytes]:
    """Split a ``data:`` URL (RFC 2397) into its media type and decoded bytes."""
    scheme, _, rest = url.partition(":")
    if scheme.lower() != "data" or "," not in rest:
        raise ValueError("not a data: URL")
    mediatype, _, data = rest.partition(",")
    body = unquote_to_bytes(data)
    if mediatype.lower().endswith(";base64"):
        body = base64.b64decode(body + b"=" * (-len(body) % 4), validate=False)
        mediatype = mediatype[: -len(";base64")]
    if not mediatype or mediatype.startswith(";"):
        mediatype = (
            "text/plain;charset=US-ASCII" + mediatype
            if not mediatype
            else ("text/plain" + mediatype)
        )
    return mediatype, body


class DataHandler(BaseHandler):
    """Open ``data:`` URLs (RFC 2397)."""

    def data_open(self, req: Request) -> Response:
        """Decode the URL's payload into a 200 response."""
        try:
            mediatype, body = parse_data_url(req.full_url)
        except ValueError as e:
            raise URLError(f"bad data URL: {e}") from e
        headers = headers_message(
            [("Content-type", mediatype), ("Content-length", str(len(body)))]
        )
        return Response(
            url=req.full_url,
            status=200,
            reason="OK",
            headers=headers,
            source=StreamSource(self.parent.reactor, io.BytesIO(body), len(body)),
            reactor=self.parent.reactor,
            version=None,
            request=req,
            length=len(body),
        )

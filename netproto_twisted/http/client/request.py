"""The request: :class:`urllib.request.Request`, plus the fields an asynchronous opener needs.

The stdlib class is pure data (URL, method, headers, body) and is what
:mod:`http.cookiejar` and urllib's password managers expect, so it is reused
as is; this subclass adds a per-request timeout, the proxy chosen for it, and
the redirect history.  ``data`` is ``bytes`` (replayable on a 307/308
redirect or a retry) or a :class:`twisted.web.iweb.IBodyProducer` for a
streamed upload.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["IDEMPOTENT_METHODS", "ProxyInfo", "Request", "origin_of"]

#: Methods RFC 9110 section 9.2.2 calls idempotent (safe to retry).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a URL, the port filled in for http and https."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port if parts.port is not None else _DEFAULT_PORTS.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


@dataclass(frozen=True)
class ProxyInfo:
    """The proxy a request goes through: its URL and, if any, its credentials."""

    url: str
    user: str | None = None
    password: str | None = None
    #: Extra headers sent with CONNECT (``set_tunnel``'s ``headers``).
    headers: tuple[tuple[str, str], ...] = ()
    #: Tunnel plain http too (``set_tunnel``); https is always tunnelled.
    tunnel: bool = False

    @property
    def scheme(self) -> str:
        """``http`` or ``https`` (how we talk to the proxy itself)."""
        return urlsplit(self.url).scheme.lower() or "http"

    @property
    def host(self) -> str:
        """The proxy's host name."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """The proxy's port (80, or 443 for an https proxy, when the URL has none)."""
        parts = urlsplit(self.url)
        if parts.port is not None:
            return parts.port
        return 443 if self.scheme == "https" else 80


class Request(urllib.request.Request):
    """An HTTP (or file:, data:) request; the constructor is urllib's, plus ``timeout``.

    :ivar timeout: seconds for the whole request (headers and body), or
        ``None`` for the opener's default.
    :ivar proxy: the :class:`ProxyInfo` a :class:`ProxyHandler` chose, or ``None``.
    :ivar redirect_dict: URL -> times visited, kept across a redirect chain.
    """

    def __init__(
        self,
        url: str,
        data: object = None,
        headers: dict[str, str] | None = None,
        origin_req_host: str | None = None,
        unverifiable: bool = False,
        method: str | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        super().__init__(
            url,
            data=data,  # type: ignore[arg-type]
            headers=headers or {},
            origin_req_host=origin_req_host,
            unverifiable=unverifiable,
            method=method,
        )
        self.timeout = timeout
        #: Seconds for the whole request, body included (``None``: the opener's default).
        self.total_timeout: float | None = None
        self.proxy: ProxyInfo | None = None
        self.redirect_dict: dict[str, int] = {}
        self.redirect_count = 0

    @classmethod
    def coerce(cls, url_or_request: str | urllib.request.Request, data: object = None) -> Request:
        """Return a :class:`Request` for a URL string or a request (a stdlib one is copied)."""
        if isinstance(url_or_request, Request):
            req = url_or_request
        elif isinstance(url_or_request, urllib.request.Request):
            req = cls(
                url_or_request.full_url,
                url_or_request.data,
                dict(url_or_request.headers),
                url_or_request.origin_req_host,
                url_or_request.unverifiable,
                url_or_request.get_method(),
                timeout=getattr(url_or_request, "timeout", None),
            )
            req.total_timeout = getattr(url_or_request, "total_timeout", None)
            for key, value in url_or_request.unredirected_hdrs.items():
                req.add_unredirected_header(key, value)
        else:
            req = cls(url_or_request)
        if data is not None:
            req.data = data  # type: ignore[assignment]
        return req

    @property
    def origin(self) -> tuple[str, str, int | None]:
        """``(scheme, host, port)`` of the request's URL."""
        return origin_of(self.full_url)

    @property
    def idempotent(self) -> bool:
        """True when the method may be repeated safely (RFC 9110 section 9.2.2)."""
        return self.get_method().upper() in IDEMPOTENT_METHODS

    def all_headers(self) -> dict[str, str]:
        """Headers to send: the redirected ones and the unredirected ones (which win)."""
        merged = dict(self.headers)
        merged.update(self.unredirected_hdrs)
        return merged

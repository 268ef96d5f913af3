"""HTTP: the server side of http.server, cgi, cgitb, wsgiref and http.cookies on twisted.web.

The server lives in :mod:`netproto_twisted.http.server`; its names are
re-exported here.  See docs/http_server.rst.
"""

from __future__ import annotations

from netproto_twisted.http.server import (
    ALPN_PROTOCOLS,
    build_site,
    cgi_environ,
    CGIDirectory,
    content_type_for,
    DebugMiddleware,
    DEFAULT_HTTP_LIMITS,
    exception_page,
    HTTPLimits,
    HTTPRequest,
    https_factory,
    HTTPSite,
    listing_html,
    load_app,
    SiteParts,
    SiteRoot,
    SiteSettings,
    split_tls_endpoint,
    StaticFiles,
    ThreadPoolService,
    traceback_page,
    WSGIHost,
)

__all__ = [
    "ALPN_PROTOCOLS",
    "DEFAULT_HTTP_LIMITS",
    "CGIDirectory",
    "DebugMiddleware",
    "HTTPLimits",
    "HTTPRequest",
    "HTTPSite",
    "SiteParts",
    "SiteRoot",
    "SiteSettings",
    "StaticFiles",
    "ThreadPoolService",
    "WSGIHost",
    "build_site",
    "cgi_environ",
    "content_type_for",
    "exception_page",
    "https_factory",
    "listing_html",
    "load_app",
    "split_tls_endpoint",
    "traceback_page",
]

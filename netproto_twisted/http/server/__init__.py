"""The HTTP server: static files, CGI, WSGI, forms and cookies on twisted.web.

:class:`HTTPSite` (twisted.web's Site with limits, error pages and an access
log) over a :class:`SiteRoot` that mounts :class:`StaticFiles`,
:class:`CGIDirectory` at ``/cgi-bin/``, a WSGI application (:class:`WSGIHost`)
and other sections' resources (XML-RPC at ``/RPC2``); request bodies reach
WSGI applications and CGI scripts as they arrive (:class:`RequestBody`).  :func:`build_site`
assembles them from :class:`SiteSettings`.  See docs/http_server.rst.
"""

from __future__ import annotations

from netproto_twisted.http.server.build import SiteParts, SiteSettings, build_site
from netproto_twisted.http.server.cgi import CGIDirectory, cgi_environ
from netproto_twisted.http.server.cookies import (
    delete_cookie_header,
    read_cookies,
    set_cookie,
    set_cookie_header,
)
from netproto_twisted.http.server.debug import DebugMiddleware, exception_page, traceback_page
from netproto_twisted.http.server.forms import (
    FormData,
    FormError,
    FormField,
    FormLimits,
    form_from_environ,
    form_from_request,
    parse_form,
)
from netproto_twisted.http.server.listen import ALPN_PROTOCOLS, https_factory, split_tls_endpoint
from netproto_twisted.http.server.request_body import BodyAborted, RequestBody
from netproto_twisted.http.server.site import (
    DEFAULT_HTTP_LIMITS,
    HTTPLimits,
    HTTPRequest,
    HTTPSite,
    SiteRoot,
)
from netproto_twisted.http.server.static import StaticFiles, content_type_for, listing_html
from netproto_twisted.http.server.wsgi import (
    ThreadPoolService,
    WSGIHost,
    WSGIThreadPool,
    load_app,
)

__all__ = [
    "ALPN_PROTOCOLS",
    "DEFAULT_HTTP_LIMITS",
    "BodyAborted",
    "CGIDirectory",
    "DebugMiddleware",
    "FormData",
    "FormError",
    "FormField",
    "FormLimits",
    "HTTPLimits",
    "HTTPRequest",
    "HTTPSite",
    "RequestBody",
    "SiteParts",
    "SiteRoot",
    "SiteSettings",
    "StaticFiles",
    "ThreadPoolService",
    "WSGIHost",
    "WSGIThreadPool",
    "build_site",
    "cgi_environ",
    "content_type_for",
    "delete_cookie_header",
    "exception_page",
    "form_from_environ",
    "form_from_request",
    "https_factory",
    "listing_html",
    "load_app",
    "parse_form",
    "read_cookies",
    "set_cookie",
    "set_cookie_header",
    "split_tls_endpoint",
    "traceback_page",
]

"""An asynchronous urllib on twisted.web: opener and handlers, responses, errors, connections.

:func:`urlopen` and :func:`build_opener` work as urllib's do, except that
they return Deferreds and take a ``reactor``; handlers cover http and https
(a persistent pool, TLS verified), ``file:``, ``data:``, proxies (CONNECT
tunnels for https), redirects, cookies (any :mod:`http.cookiejar` jar),
content decoding with a bomb limit, Basic and Digest authentication, and
robots.txt.  See docs/http_client.rst.
"""

from __future__ import annotations

from netproto_twisted.http.client.auth import (
    HTTPBasicAuthHandler,
    HTTPDigestAuthHandler,
    HTTPPasswordMgr,
    HTTPPasswordMgrWithDefaultRealm,
    HTTPPasswordMgrWithPriorAuth,
    ProxyBasicAuthHandler,
    ProxyDigestAuthHandler,
)
from netproto_twisted.http.client.build import build_opener, urlopen
from netproto_twisted.http.client.connection import HTTPConnection, HTTPSConnection
from netproto_twisted.http.client.errors import (
    BodyTooLarge,
    ContentTooShortError,
    DecompressionBomb,
    DowngradeRefused,
    HTTPError,
    RedirectLoop,
    RequestTimeout,
    RobotsDisallowed,
    URLError,
)
from netproto_twisted.http.client.ftp_handler import FTPHandler
from netproto_twisted.http.client.handlers import (
    ContentDecodingProcessor,
    DataHandler,
    FileHandler,
    HTTPCookieProcessor,
    HTTPDefaultErrorHandler,
    HTTPErrorProcessor,
    HTTPHandler,
    HTTPRedirectHandler,
    HTTPSHandler,
    ProxyHandler,
    UnknownHandler,
)
from netproto_twisted.http.client.opener import BaseHandler, Opener, install_opener
from netproto_twisted.http.client.polite import DownloadResult, FetchStats, PoliteFetcher, Progress
from netproto_twisted.http.client.request import ProxyInfo, Request
from netproto_twisted.http.client.response import Response
from netproto_twisted.http.client.robots import RobotsCache, RobotsHandler, RobotsPolicy
from netproto_twisted.http.client.transport import HTTPTransport

__all__ = [
    "BaseHandler",
    "BodyTooLarge",
    "ContentDecodingProcessor",
    "ContentTooShortError",
    "DataHandler",
    "DecompressionBomb",
    "DowngradeRefused",
    "DownloadResult",
    "FTPHandler",
    "FetchStats",
    "FileHandler",
    "HTTPBasicAuthHandler",
    "HTTPConnection",
    "HTTPCookieProcessor",
    "HTTPDefaultErrorHandler",
    "HTTPDigestAuthHandler",
    "HTTPError",
    "HTTPErrorProcessor",
    "HTTPHandler",
    "HTTPPasswordMgr",
    "HTTPPasswordMgrWithDefaultRealm",
    "HTTPPasswordMgrWithPriorAuth",
    "HTTPRedirectHandler",
    "HTTPSConnection",
    "HTTPSHandler",
    "HTTPTransport",
    "Opener",
    "PoliteFetcher",
    "Progress",
    "ProxyBasicAuthHandler",
    "ProxyDigestAuthHandler",
    "ProxyHandler",
    "ProxyInfo",
    "RedirectLoop",
    "Request",
    "RequestTimeout",
    "Response",
    "RobotsCache",
    "RobotsDisallowed",
    "RobotsHandler",
    "RobotsPolicy",
    "URLError",
    "UnknownHandler",
    "build_opener",
    "install_opener",
    "urlopen",
]

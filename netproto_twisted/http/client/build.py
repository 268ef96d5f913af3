"""``build_opener`` and ``urlopen``: the default handler set, as urllib assembles it.

The default opener has, besides urllib's own set (proxies from the
environment, http, https, ftp:, file:, data:, redirects, error processing), a
cookie jar (:class:`http.cookiejar.CookieJar`, or the one given) and
content decoding.  A handler passed in replaces the default of its class
(an instance or a class, as with urllib).
"""

from __future__ import annotations

import http.cookiejar
import urllib.request
from typing import Any

from twisted.internet.defer import Deferred

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
from netproto_twisted.http.client.opener import DEFAULT, BaseHandler, Opener, installed_opener
from netproto_twisted.http.client.response import Response
from netproto_twisted.http.client.transport import HTTPTransport

__all__ = ["DEFAULT_HANDLERS", "build_opener", "urlopen"]

#: The handler classes every :func:`build_opener` opener starts from.
DEFAULT_HANDLERS: tuple[type[BaseHandler], ...] = (
    ProxyHandler,
    UnknownHandler,
    HTTPHandler,
    HTTPSHandler,
    HTTPDefaultErrorHandler,
    HTTPRedirectHandler,
    FTPHandler,
    FileHandler,
    DataHandler,
    HTTPErrorProcessor,
    HTTPCookieProcessor,
    ContentDecodingProcessor,
)


def build_opener(
    *handlers: BaseHandler | type[BaseHandler],
    reactor: Any,
    cookiejar: http.cookiejar.CookieJar | None = None,
    **transport_options: Any,
) -> Opener:
    """An :class:`Opener` with the default handlers, replaced or extended by ``handlers``.

    ``transport_options`` go to the shared
    :class:`~netproto_twisted.http.client.transport.HTTPTransport` of the
    http and https handlers: ``verify``, ``ca_file``, ``connect_timeout``,
    ``idle_timeout``, ``total_timeout``, ``max_per_host``, ``max_headers``,
    ``max_header_bytes``, ``max_body``, ``persistent``, ``http2`` (offer
    HTTP/2 by ALPN on https; true by default, effective when the ``h2``
    package is installed), ``agent`` (an
    IAgent used instead of the pool, as
    :class:`~netproto_twisted.testing.http_client.StubOpener` does).
    """
    opener = Opener(reactor)
    given = [h() if isinstance(h, type) else h for h in handlers]
    transport = HTTPTransport(reactor, **transport_options)
    for klass in DEFAULT_HANDLERS:
        if any(isinstance(h, klass) for h in given):
            continue
        if klass in (HTTPHandler, HTTPSHandler):
            opener.add_handler(klass(transport))
        elif klass is HTTPCookieProcessor:
            opener.add_handler(HTTPCookieProcessor(cookiejar))
        else:
            opener.add_handler(klass())
    for handler in given:
        opener.add_handler(handler)
    return opener


_default_openers: dict[int, Opener] = {}


def urlopen(
    url: str | urllib.request.Request,
    data: object = None,
    timeout: float | object | None = DEFAULT,
    *,
    reactor: Any = None,
    opener: Opener | None = None,
) -> Deferred[Response]:
    """Open ``url`` (a string or a Request); fire with the :class:`Response`.

    The opener is ``opener``, else the one
    :func:`~netproto_twisted.http.client.opener.install_opener` installed,
    else a default one built for ``reactor`` (kept for later calls with
    that reactor).
    """
    if opener is None:
        opener = installed_opener()
    if opener is None:
        if reactor is None:
            raise TypeError("urlopen needs reactor= (or opener=, or install_opener())")
        opener = _default_openers.get(id(reactor))
        if opener is None:
            opener = _default_openers[id(reactor)] = build_opener(reactor=reactor)
    return opener.open(url, data, timeout)

"""Serve a directory, a resource or a WSGI application in-process on an ephemeral loopback port.

For users' trial suites::

    from twisted.internet import reactor
    from netproto_twisted.testing import serve_http

    class MyAppTests(TestCase):
        async def test_hello(self):
            server = await serve_http(reactor, app=my_wsgi_app)
            self.addCleanup(server.stop)
            ...  # fetch server.url("/hello")

:meth:`ServedSite.stop` closes the port, the connections and the WSGI thread
pool, so trial finds a clean reactor after the test.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.web.resource import IResource

from netproto_twisted.core.access import ConnectionGuard
from netproto_twisted.core.limits import DEFAULT_LIMITS
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.http.server.build import SiteSettings, build_site
from netproto_twisted.http.server.site import DEFAULT_HTTP_LIMITS, HTTPLimits, HTTPSite
from netproto_twisted.http.server.wsgi import WSGIApp

__all__ = ["ServedSite", "serve_http"]

_LOOPBACK = "tcp:0:interface=127.0.0.1"


@dataclass
class ServedSite:
    """A site listening on loopback: where, the site itself, and how to stop it."""

    service: MultiService
    site: HTTPSite
    host: str
    port: int

    def url(self, path: str = "/") -> str:
        """The ``http://`` URL of ``path`` on this server."""
        return f"http://{self.host}:{self.port}{path}"

    def stop(self) -> defer.Deferred[None]:
        """Stop listening, close the connections and the thread pool."""
        return defer.maybeDeferred(self.service.stopService).addCallback(lambda _: None)


async def _serve(reactor: Any, settings: SiteSettings, listen: str) -> ServedSite:
    parts = build_site(reactor, settings)
    root = MultiService()
    for service in parts.services:
        root.addService(service)
    guard = ConnectionGuard(parts.site, reactor, limits=DEFAULT_LIMITS)
    endpoints = EndpointsService("http-test", reactor, [listen], guard=guard)
    root.addService(endpoints)
    root.startService()
    try:
        addresses = await endpoints.when_listening()
    except BaseException:
        await defer.maybeDeferred(root.stopService)
        raise
    host, _, port = addresses[0][1].rpartition(":")
    return ServedSite(root, parts.site, host.strip("[]"), int(port))


def serve_http(
    reactor: Any,
    *,
    path: str | os.PathLike[str] | None = None,
    resource: IResource | None = None,
    app: WSGIApp | str | None = None,
    cgi_dir: str | os.PathLike[str] | None = None,
    mounts: Mapping[str, IResource] | None = None,
    limits: HTTPLimits = DEFAULT_HTTP_LIMITS,
    debug: bool = False,
    threads: int = 4,
    listen: str = _LOOPBACK,
    **settings: Any,
) -> defer.Deferred[ServedSite]:
    """Serve a directory (``path``), a ``resource``, a WSGI ``app`` and/or CGI scripts.

    A ``resource`` takes the place a WSGI application would have (after the
    static files, which win when both exist); extra keyword arguments are
    :class:`~netproto_twisted.http.server.build.SiteSettings` fields.
    """
    site_settings = SiteSettings(
        path=os.fspath(path) if path is not None else "",
        cgi_dir=os.fspath(cgi_dir) if cgi_dir is not None else "",
        wsgi=app or "",
        wsgi_threads=threads,
        resource=resource,
        mounts=mounts if mounts is not None else {},
        limits=limits,
        debug=debug,
        **settings,
    )
    return defer.ensureDeferred(_serve(reactor, site_settings, listen))

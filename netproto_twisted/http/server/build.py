"""Assembling a site from settings: what the daemon and the testing helpers share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import IService
from twisted.web.resource import IResource

from netproto_twisted.http.server.cgi import (
    DEFAULT_CGI_OUTPUT,
    DEFAULT_CGI_TIMEOUT,
    CGIDirectory,
    CGIService,
)
from netproto_twisted.http.server.site import DEFAULT_HTTP_LIMITS, HTTPLimits, HTTPSite, SiteRoot
from netproto_twisted.http.server.static import StaticFiles
from netproto_twisted.http.server.wsgi import (
    DEFAULT_THREADS,
    ThreadPoolService,
    WSGIApp,
    WSGIHost,
    WSGIThreadPool,
    load_app,
)

__all__ = ["SiteParts", "SiteSettings", "build_site"]


@dataclass(frozen=True)
class SiteSettings:
    """What a site serves and how.

    :ivar path: directory of static files ('' for none).
    :ivar cgi_dir: directory of CGI scripts, mounted at ``/cgi-bin/`` ('' for none).
    :ivar wsgi: a WSGI application, or ``package.module:name`` ('' for none).
    """

    path: str = ""
    cgi_dir: str = ""
    wsgi: str | WSGIApp = ""
    wsgi_threads: int = DEFAULT_THREADS
    listings: bool = True
    follow_symlinks: bool = False
    revalidate: float = 1.0
    cgi_timeout: float = DEFAULT_CGI_TIMEOUT
    cgi_max_output: int = DEFAULT_CGI_OUTPUT
    access_log: str | None = None
    debug: bool = False
    limits: HTTPLimits = DEFAULT_HTTP_LIMITS
    resource: IResource | None = None
    mounts: Mapping[str, IResource] = field(default_factory=dict)


@dataclass
class SiteParts:
    """A built site and the services it needs running beside it (the WSGI thread pool)."""

    site: HTTPSite
    root: SiteRoot
    services: list[IService]


def build_site(reactor: Any, settings: SiteSettings) -> SiteParts:
    """Build the resource tree and the :class:`HTTPSite` for ``settings``.

    ``settings.mounts`` is kept by reference and read at request time, so
    entries added after the build (by sections built later) are served.
    """
    services: list[IService] = []
    static = None
    if settings.path:
        static = StaticFiles(
            settings.path,
            reactor,
            listings=settings.listings,
            follow_symlinks_out=settings.follow_symlinks,
            revalidate=settings.revalidate,
        )
    cgi = None
    if settings.cgi_dir:
        cgi = CGIDirectory(
            settings.cgi_dir,
            reactor,
            timeout=settings.cgi_timeout,
            max_output=settings.cgi_max_output,
        )
        services.append(CGIService(cgi))
    app_resource: IResource | None = settings.resource
    if settings.wsgi:
        app = load_app(settings.wsgi) if isinstance(settings.wsgi, str) else settings.wsgi
        pool = WSGIThreadPool(settings.wsgi_threads)
        services.append(ThreadPoolService(pool))
        app_resource = WSGIHost(reactor, pool, app)
    root = SiteRoot(settings.mounts, cgi=cgi, static=static, app=app_resource)
    site = HTTPSite(
        root, reactor, limits=settings.limits, access_log=settings.access_log, debug=settings.debug
    )
    return SiteParts(site, root, services)

"""``twistd netproto-http``: static files, CGI and a WSGI application over HTTP/1.1 and HTTP/2.

Also the ``[http]`` section of the combined ``twistd netproto`` daemon
(:class:`Config`, :func:`combined_service`): by default ``tcp:8080`` and
``ssl:8443`` (HTTPS, HTTP/2 by ALPN), both on 127.0.0.1, serving
``<data>/www``; every resource another section hangs in
``DaemonContext.web_mounts`` (XML-RPC at ``/RPC2``) is served too, whichever
section was built first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from twisted.application.service import IService, MultiService
from twisted.internet.interfaces import IProtocolFactory
from twisted.logger import Logger
from twisted.python import usage

from netproto_twisted.browser import open_url
from netproto_twisted.core.access import AccessPolicy, ConnectionGuard
from netproto_twisted.core.config import check_bounds, field
from netproto_twisted.core.daemon import DaemonContext, ServerOptions, TLSFiles, standalone_service
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import DEFAULT_LIMITS, Limits, int_option, limits_options
from netproto_twisted.core.service import EndpointsService, endpoint_kind
from netproto_twisted.core.workers import WorkerChannel, WorkerParts, WorkerPool
from netproto_twisted.http.server.build import SiteSettings, build_site
from netproto_twisted.http.server.cgi import DEFAULT_CGI_OUTPUT, DEFAULT_CGI_TIMEOUT
from netproto_twisted.http.server.listen import https_factory, split_tls_endpoint
from netproto_twisted.http.server.site import DEFAULT_HTTP_LIMITS, HTTPLimits
from netproto_twisted.http.server.wsgi import DEFAULT_THREADS

__all__ = [
    "DEFAULT_LISTEN",
    "HTTP_LIMITS",
    "MAX_WORKERS",
    "SERVICE_NAME",
    "Config",
    "Options",
    "build_service",
    "combined_service",
    "makeService",
    "worker_parts",
]

_log = Logger(namespace="netproto.http")

#: The name in error lines (``netproto-http: ...``).
SERVICE_NAME = "netproto-http"
#: Where the server listens by default: HTTP on 8080, HTTPS (HTTP/2) on 8443, loopback only.
DEFAULT_LISTEN = ("tcp:8080:interface=127.0.0.1", "ssl:8443:interface=127.0.0.1")
#: The most processes ``--workers`` accepts.
MAX_WORKERS = 64
#: The builder the worker processes run (see :mod:`netproto_twisted.core.workers`).
WORKER_BUILDER = "netproto_twisted.http.tap:worker_parts"
#: HTTP's connection limits: browsers open six connections per host and load
#: tools many more; 256 per address keeps one client from taking all 1,000.
HTTP_LIMITS = replace(DEFAULT_LIMITS, max_connections_per_ip=256)


@dataclass(frozen=True)
class Config:
    """``[http]``: the web server of the combined daemon (also what the options build)."""

    enabled: bool = field(default=True, help="run the HTTP server at all")
    listen: tuple[str, ...] = field(
        default=DEFAULT_LISTEN, help="endpoints (ssl: is HTTPS with HTTP/2 by ALPN)"
    )
    path: str = field(default="", help="directory served at / ('' = <data>/www)")
    cgi_dir: str = field(default="", help="CGI scripts served at /cgi-bin/ ('' = none)")
    wsgi: str = field(default="", help="WSGI application package.module:name ('' = none)")
    wsgi_threads: int = field(default=DEFAULT_THREADS, minimum=1, help="WSGI thread pool size")
    listings: bool = field(default=True, help="list directories without an index file")
    follow_symlinks: bool = field(default=False, help="serve symlinks pointing out of path")
    access_log: str = field(default="", help="combined-format access log file ('' = none)")
    debug: bool = field(default=False, help="tracebacks with local variables in 500 pages")
    cgi_timeout: float = field(default=DEFAULT_CGI_TIMEOUT, minimum=0.1, help="seconds per script")
    cgi_max_output: int = field(default=DEFAULT_CGI_OUTPUT, minimum=1, help="bytes per script")
    max_header_bytes: int = field(
        default=DEFAULT_HTTP_LIMITS.max_header_bytes, minimum=256, help="request head size"
    )
    max_headers: int = field(default=DEFAULT_HTTP_LIMITS.max_headers, minimum=1, help="headers")
    header_timeout: float = field(
        default=DEFAULT_HTTP_LIMITS.header_timeout, minimum=0.1, help="seconds for a request head"
    )
    idle_timeout: float = field(
        default=DEFAULT_HTTP_LIMITS.idle_timeout, minimum=0.1, help="keep-alive idle seconds"
    )
    max_body: int = field(default=DEFAULT_HTTP_LIMITS.max_body, minimum=0, help="body bytes")
    workers: int = field(
        default=1, minimum=1, maximum=MAX_WORKERS, help="processes (netproto-http only)"
    )

    def __post_init__(self) -> None:
        check_bounds(self)

    @property
    def limits(self) -> HTTPLimits:
        """The per-request limits."""
        return HTTPLimits(
            max_header_bytes=self.max_header_bytes,
            max_headers=self.max_headers,
            header_timeout=self.header_timeout,
            idle_timeout=self.idle_timeout,
            max_body=self.max_body,
        )


def _site_settings(config: Config, data_dir: Path, mounts: Mapping[str, Any]) -> SiteSettings:
    path = config.path
    if not path and not config.wsgi:
        path = str(data_dir / "www")
        os.makedirs(path, exist_ok=True)
    for name, directory in (("path", path), ("cgi_dir", config.cgi_dir)):
        if directory and not os.path.isdir(directory):
            raise ConfigError(f"http.{name}", f"not a directory: {directory}")
    return SiteSettings(
        path=path,
        cgi_dir=config.cgi_dir,
        wsgi=config.wsgi,
        wsgi_threads=config.wsgi_threads,
        listings=config.listings,
        follow_symlinks=config.follow_symlinks,
        cgi_timeout=config.cgi_timeout,
        cgi_max_output=config.cgi_max_output,
        access_log=config.access_log or None,
        debug=config.debug,
        limits=config.limits,
        mounts=mounts,
    )


def _listeners(
    config: Config,
    site: IProtocolFactory,
    complete: Callable[[str], str],
    guarded: Callable[[IProtocolFactory], IProtocolFactory],
) -> list[tuple[str, list[str], IProtocolFactory]]:
    """``(name, endpoints, factory)`` per listener: plain ones together, one per ``ssl:``."""
    plain: list[str] = []
    listeners: list[tuple[str, list[str], IProtocolFactory]] = []
    for text in config.listen:
        kind = endpoint_kind(text)
        if kind == "udp":
            raise ConfigError(text, "HTTP does not serve UDP")
        if kind == "ssl":
            tls = split_tls_endpoint(complete(text))
            name = (
                "https"
                if not any(n.startswith("https") for n, _, _ in listeners)
                else (f"https{len(listeners) + 1}")
            )
            # The guard goes inside TLS: it wraps the HTTP channel, not the TLS layer.
            listeners.append((name, [tls.tcp], https_factory(guarded(site), tls)))
        else:
            plain.append(text)
    if plain:
        listeners.insert(0, ("http", plain, guarded(site)))
    return listeners


def build_service(config: Config, context: DaemonContext) -> MultiService:
    """Build the HTTP listeners from ``config`` with the daemon's shared ``context``."""
    reactor = context.reactor
    parts = build_site(reactor, _site_settings(config, context.data_dir, context.web_mounts))
    root = MultiService()
    root.setName("http")
    for service in parts.services:
        service.setServiceParent(root)
    limits = context.limits_for(HTTP_LIMITS)

    def guarded(factory: IProtocolFactory) -> IProtocolFactory:
        return ConnectionGuard(factory, reactor, policy=context.policy, limits=limits)

    services = []
    for name, endpoints, factory in _listeners(config, parts.site, context.endpoint, guarded):
        service = EndpointsService(name, reactor, endpoints, guard=factory, backlog=limits.backlog)
        service.setServiceParent(root)  # type: ignore[no-untyped-call]
        services.append(service)
    if config.workers > 1 and services:
        payload = {
            "http": asdict(config),
            "data_dir": str(context.data_dir.resolve()),
            "tls_cert": str(context.tls.cert.resolve()),
            "tls_key": str(context.tls.key.resolve()),
            "allow": [str(n) for n in context.policy.allow],
            "deny": [str(n) for n in context.policy.deny],
            "limits": asdict(limits),
        }
        pool = WorkerPool(
            reactor,
            count=config.workers - 1,
            builder=WORKER_BUILDER,
            config=payload,
            listeners=services,
            name="http-workers",
        )
        root.addService(pool)
    return root


def worker_parts(payload: Any, reactor: Any, channel: WorkerChannel) -> WorkerParts:
    """Build a worker process's site and listener factories from the master's JSON."""
    from netproto_twisted.core.config import parse_section

    if not isinstance(payload, dict):
        raise ConfigError("http", "the worker configuration is not a table")
    try:
        config = parse_section(Config, payload["http"], "http")
        limits = parse_section(Limits, payload["limits"], "limits")
        files = TLSFiles(Path(payload["tls_cert"]), Path(payload["tls_key"]), development=False)
        policy = AccessPolicy(payload["allow"], payload["deny"])
        data_dir = Path(payload["data_dir"])
    except KeyError as e:
        raise ConfigError("http", f"the worker configuration lacks {e}") from None
    parts = build_site(reactor, _site_settings(config, data_dir, {}))
    root = MultiService()
    for service in parts.services:
        root.addService(service)

    def guarded(factory: IProtocolFactory) -> IProtocolFactory:
        return ConnectionGuard(factory, reactor, policy=policy, limits=limits)

    listeners = _listeners(config, parts.site, files.complete_endpoint, guarded)
    return WorkerParts(factories={name: f for name, _, f in listeners}, service=root)


def combined_service(config: Config, context: DaemonContext) -> IService | None:
    """Build the ``[http]`` services of the combined daemon (``None`` when disabled)."""
    if not config.enabled or not config.listen:
        return None
    if config.workers > 1:
        # Other sections' resources (XML-RPC) live in this process only.
        raise ConfigError("http.workers", "worker processes run with netproto-http only")
    return build_service(config, context)


def _url(service: EndpointsService, addresses: list[tuple[str, str]]) -> str:
    scheme = "https" if service.name == "https" else "http"
    where = addresses[0][1]
    return f"{scheme}://{where}/"


class Options(ServerOptions):
    """Command-line options of ``twistd netproto-http``."""

    synopsis = "[options] [--listen ENDPOINT ...] [--path DIR] [--cgi-dir DIR] [--wsgi MOD:APP]"
    longdesc = (
        "An HTTP/1.1 and HTTP/2 server: static files (--path, default: the current "
        "directory), CGI scripts at /cgi-bin/ (--cgi-dir) and a WSGI application (--wsgi). "
        "Without --listen: tcp:8080 and ssl:8443 (HTTPS, HTTP/2 by ALPN), on 127.0.0.1."
    )
    default_listen = DEFAULT_LISTEN
    limits_defaults: ClassVar[Limits] = HTTP_LIMITS
    optParameters: ClassVar[list[list[Any]]] = [
        ["path", None, ".", "directory of static files served at /"],
        ["cgi-dir", None, None, "directory of CGI scripts served at /cgi-bin/"],
        ["wsgi", None, None, "WSGI application, package.module:name"],
        ["wsgi-threads", None, str(DEFAULT_THREADS), "WSGI thread pool size"],
        ["access-log", None, None, "combined-format access log file"],
        ["cgi-timeout", None, str(DEFAULT_CGI_TIMEOUT), "seconds a CGI script may run"],
        ["cgi-max-output", None, str(DEFAULT_CGI_OUTPUT), "bytes a CGI script may write"],
        ["max-header-bytes", None, str(DEFAULT_HTTP_LIMITS.max_header_bytes), "request head size"],
        ["max-headers", None, str(DEFAULT_HTTP_LIMITS.max_headers), "header lines per request"],
        ["header-timeout", None, str(DEFAULT_HTTP_LIMITS.header_timeout), "seconds for a head"],
        ["http-idle-timeout", None, str(DEFAULT_HTTP_LIMITS.idle_timeout), "keep-alive seconds"],
        ["max-body", None, str(DEFAULT_HTTP_LIMITS.max_body), "largest request body (413)"],
        ["workers", None, "1", "processes accepting connections: the master and N-1 workers"],
        *limits_options(HTTP_LIMITS),
    ]
    optFlags: ClassVar[list[list[Any]]] = [
        ["debug", None, "500 pages show the traceback with local variables"],
        ["open", None, "open the server's first URL in the browser (honours BROWSER)"],
        ["no-listings", None, "no directory listings"],
        ["follow-symlinks", None, "serve symbolic links that point out of --path"],
    ]

    def postOptions(self) -> None:
        """Build :attr:`config` from the options."""
        super().postOptions()
        try:
            self.config = Config(
                listen=self.listen(),
                path=self["path"] if not (self["wsgi"] and self["path"] == ".") else "",
                cgi_dir=self["cgi-dir"] or "",
                wsgi=self["wsgi"] or "",
                wsgi_threads=int_option(self, "wsgi-threads"),
                listings=not self["no-listings"],
                follow_symlinks=bool(self["follow-symlinks"]),
                access_log=self["access-log"] or "",
                debug=bool(self["debug"]),
                cgi_timeout=float(self["cgi-timeout"]),
                cgi_max_output=int_option(self, "cgi-max-output"),
                max_header_bytes=int_option(self, "max-header-bytes"),
                max_headers=int_option(self, "max-headers"),
                header_timeout=float(self["header-timeout"]),
                idle_timeout=float(self["http-idle-timeout"]),
                max_body=int_option(self, "max-body"),
                workers=int_option(self, "workers"),
            )
        except (ValueError, ConfigError) as e:
            raise usage.UsageError(str(e)) from None


def _build_and_open(options: Options, context: DaemonContext) -> IService:
    service = build_service(options.config, context)
    if options["open"]:
        reactor = context.reactor

        async def open_first() -> None:
            for child in service:
                if isinstance(child, EndpointsService):
                    addresses = await child.when_listening()
                    url = _url(child, addresses)
                    _log.info("opening {url} in the browser", url=url)
                    if await open_url(reactor, url):
                        _log.info("the browser opened {url}", url=url)
                    else:
                        _log.warn("no browser could open {url}", url=url)
                    return

        from twisted.internet import defer

        reactor.callWhenRunning(lambda: defer.ensureDeferred(open_first()))
    return service


def makeService(options: Options) -> IService:
    """Build the service; a bad option, file or endpoint ends twistd with one line."""
    return standalone_service(options, SERVICE_NAME, partial(_build_and_open, options))

"""``twistd netproto-xmlrpc``: expose a module's functions (or one object) over XML-RPC.

Also the ``[xmlrpc]`` section of the combined ``twistd -n netproto`` daemon
(:class:`Config`, :func:`combined_service`): there the resource is hung on the
combined web server at ``path`` (``/RPC2``, port 8080 of the ``[http]``
section) through :attr:`DaemonContext.web_mounts
<netproto_twisted.core.daemon.DaemonContext.web_mounts>`, and listens on its
own only when ``listen`` is set.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from twisted.application.service import IService, MultiService
from twisted.python import usage

from netproto_twisted.core.access import ConnectionGuard
from netproto_twisted.core.auth import password_portal
from netproto_twisted.core.config import check_bounds, field
from netproto_twisted.core.daemon import DaemonContext, ServerOptions, standalone_service
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import int_option
from netproto_twisted.core.login_cache import VerifiedPasswordCache
from netproto_twisted.core.passwords import PasswordFile, thread_runner
from netproto_twisted.core.service import EndpointsService, endpoint_kind
from netproto_twisted.xmlrpc.methods import MethodRegistry
from netproto_twisted.xmlrpc.server import (
    DEFAULT_MAX_BODY,
    ServerSettings,
    XMLRPCResource,
    XMLRPCSite,
)

__all__ = [
    "DEFAULT_LISTEN",
    "SERVICE_NAME",
    "Config",
    "Options",
    "build_resource",
    "build_service",
    "combined_service",
    "load_object",
    "makeService",
]

#: The name in error lines (``netproto-xmlrpc: ...``).
SERVICE_NAME = "netproto-xmlrpc"
#: Where the stand-alone server listens by default (loopback; the combined daemon's web port).
DEFAULT_LISTEN = ("tcp:8080:interface=127.0.0.1",)
_REFUSAL = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class Config:
    """``[xmlrpc]``: the XML-RPC server (mounted on the web server; its own port if ``listen``)."""

    enabled: bool = field(default=True, help="serve XML-RPC at all")
    path: str = field(default="/RPC2", help="URL path of the endpoint")
    listen: tuple[str, ...] = field(
        default=(), help="own endpoints (empty: only mounted on the [http] server)"
    )
    module: str = field(default="", help="module whose public functions are exposed")
    object: str = field(default="", help="pkg.module:name of an object whose methods are exposed")
    allow_dotted_names: bool = field(default=False, help="let a.b reach the object's attributes")
    allow_none: bool = field(default=False, help="marshal None as <nil/>")
    use_builtin_types: bool = field(default=False, help="bytes/datetime, not Binary/DateTime")
    use_i8: bool = field(default=False, help="marshal ints beyond 32 bits as <i8>")
    max_body: int = field(default=DEFAULT_MAX_BODY, minimum=1, help="largest request body, bytes")
    debug: bool = field(default=False, help="put exception details in faults")
    documentation: bool = field(default=True, help="serve the HTML method list at GET")
    title: str = field(default="XML-RPC Server", help="title of the documentation page")
    auth: bool = field(default=False, help="require HTTP Basic credentials from the password file")
    users: str = field(default="", help="password file (netproto user add); '' = <data>/users")

    def __post_init__(self) -> None:
        check_bounds(self)
        if not self.path.startswith("/"):
            raise ConfigError("xmlrpc.path", "must start with /")


def load_object(spec: str) -> Any:
    """Import ``pkg.module:attr.path`` (or a bare module name) and return the object."""
    module_name, _, attribute = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(spec, f"cannot import {module_name}: {e}") from None
    for part in filter(None, attribute.split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(spec, f"{module_name} has no {attribute}") from None
    return obj


def build_resource(config: Config, context: DaemonContext) -> XMLRPCResource:
    """Build the XML-RPC resource ``config`` describes."""
    registry = MethodRegistry()
    if config.module:
        registry.register_module(load_object(config.module))
    if config.object:
        registry.register_instance(load_object(config.object), config.allow_dotted_names)
    settings = ServerSettings(
        allow_none=config.allow_none,
        use_builtin_types=config.use_builtin_types,
        use_i8=config.use_i8,
        max_body=config.max_body,
        debug=config.debug,
        documentation=config.documentation,
        title=config.title,
    )
    reactor = context.reactor
    portal = None
    if config.auth:
        passwords = PasswordFile(config.users or str(context.data_dir / "users"))
        portal = password_portal(
            passwords,
            thread_runner(reactor, reactor.getThreadPool()),
            cache=VerifiedPasswordCache(context.limits.login_cache_ttl),
        )
    return XMLRPCResource(registry, reactor, settings, portal=portal)


def build_service(config: Config, context: DaemonContext) -> MultiService:
    """Build the resource, mount it in ``context.web_mounts`` and listen on ``config.listen``."""
    resource = build_resource(config, context)
    context.web_mounts[config.path] = resource
    return _listeners(config, context, resource)


def _listeners(config: Config, context: DaemonContext, resource: XMLRPCResource) -> MultiService:
    root = MultiService()
    root.setName("xmlrpc")
    listen = [context.endpoint(text) for text in config.listen]
    for text in listen:
        if endpoint_kind(text) == "udp":
            raise ConfigError(text, "XML-RPC does not serve UDP")
    if listen:
        site = XMLRPCSite(resource, config.path)
        guard = ConnectionGuard(
            site,
            context.reactor,
            policy=context.policy,
            limits=context.limits,
            refusal=lambda reason: _REFUSAL,
        )
        root.addService(
            EndpointsService(
                "xmlrpc", context.reactor, listen, guard=guard, backlog=context.limits.backlog
            )
        )
    return root


def combined_service(config: Config, context: DaemonContext) -> IService | None:
    """Mount ``[xmlrpc]`` on the combined web server; a service only when it has ``listen``.

    ``None`` when disabled, or when the resource is only mounted (the
    ``[http]`` section serves it).
    """
    if not config.enabled:
        return None
    resource = build_resource(config, context)
    context.web_mounts[config.path] = resource
    if not config.listen:
        return None
    return _listeners(config, context, resource)


class Options(ServerOptions):
    """Command-line options of ``twistd netproto-xmlrpc``."""

    synopsis = "--module pkg.module | --object pkg.module:obj [--listen ENDPOINT] [--path /RPC2]"
    longdesc = (
        "An XML-RPC server exposing a module's public functions (--module) or an object's "
        "methods (--object), with system.listMethods/methodHelp/methodSignature/multicall "
        "and an HTML method list at GET. Without --listen: tcp:8080 on 127.0.0.1."
    )
    default_listen = DEFAULT_LISTEN
    optParameters: ClassVar[list[list[Any]]] = [
        ["module", "m", None, "module whose public functions are exposed"],
        ["object", "o", None, "pkg.module:name of an object whose methods are exposed"],
        ["path", None, "/RPC2", "URL path of the endpoint"],
        ["max-body", None, str(DEFAULT_MAX_BODY), "largest request body, bytes"],
        ["title", None, "XML-RPC Server", "title of the documentation page"],
        ["passwords", None, None, "password file for --auth (default DATA/users)"],
    ]
    optFlags: ClassVar[list[list[Any]]] = [
        ["allow-dotted-names", None, "let a.b reach the object's attributes"],
        ["allow-none", None, "marshal None as <nil/>"],
        ["use-builtin-types", None, "bytes/datetime instead of Binary/DateTime"],
        ["use-i8", None, "marshal ints beyond 32 bits as <i8>"],
        ["debug", None, "put exception details in faults"],
        ["no-documentation", None, "no HTML method list at GET"],
        ["auth", None, "require HTTP Basic credentials from the password file"],
    ]

    def postOptions(self) -> None:
        """Build :attr:`config` from the options."""
        super().postOptions()
        if not self["module"] and not self["object"]:
            raise usage.UsageError("give --module or --object (or both)")
        max_body = int_option(self, "max-body")
        try:
            self.config = Config(
                listen=self.listen(),
                path=self["path"],
                module=self["module"] or "",
                object=self["object"] or "",
                allow_dotted_names=bool(self["allow-dotted-names"]),
                allow_none=bool(self["allow-none"]),
                use_builtin_types=bool(self["use-builtin-types"]),
                use_i8=bool(self["use-i8"]),
                max_body=max_body,
                debug=bool(self["debug"]),
                documentation=not self["no-documentation"],
                title=self["title"],
                auth=bool(self["auth"]),
                users=self["passwords"] or "",
            )
        except (ValueError, ConfigError) as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Options) -> IService:
    """Build the service; a bad option, module or endpoint ends twistd with one line."""
    return standalone_service(options, SERVICE_NAME, partial(build_service, options.config))

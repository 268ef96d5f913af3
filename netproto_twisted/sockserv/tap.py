"""``twistd netproto-socket``: host socketserver request handlers under twistd.

Also the ``[socket]`` section of the combined ``twistd netproto`` daemon
(:class:`Config`, :func:`combined_service`): by default echo on 2007,
discard on 2009 and daytime on 2013, TCP and UDP, on 127.0.0.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from twisted.application.service import IService, MultiService

from netproto_twisted.core.config import field
from netproto_twisted.core.daemon import DaemonContext, ServerOptions, standalone_service
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.service import fail
from netproto_twisted.sockserv.builtins import BUILTIN_HANDLERS
from netproto_twisted.sockserv.server import DEFAULT_THREADS, make_sockserv_service

__all__ = ["SERVICE_NAME", "Config", "Options", "SocketService", "combined_service", "makeService"]

#: The name in error lines (``netproto-socket: ...``).
SERVICE_NAME = "netproto-socket"
#: The name in the daemon's log lines (``socket listening on tcp 127.0.0.1:9999``).
LOG_NAME = "socket"


class Options(ServerOptions):
    """Command-line options of ``twistd netproto-socket``."""

    synopsis = "[options] --handler HANDLER --listen ENDPOINT [--listen ENDPOINT ...]"
    longdesc = (
        "Hosts unmodified socketserver request handlers (BaseRequestHandler, "
        "StreamRequestHandler, DatagramRequestHandler subclasses) in a bounded "
        "thread pool, or on the reactor when handle() is 'async def'. "
        "HANDLER is echo, discard, daytime or package.module:Class. "
        "ENDPOINT is a Twisted endpoint string (tcp:9999:interface=127.0.0.1, "
        "tcp6:9999:interface=\\:\\:1, ssl:..., unix:/path) or udp:PORT[:interface=ADDR]."
    )
    optParameters: ClassVar[list[list[Any]]] = [
        ["handler", None, None, f"handler: {', '.join(BUILTIN_HANDLERS)} or package.module:Class"],
        ["threads", None, str(DEFAULT_THREADS), "size of the handler thread pool"],
        ["app-dir", None, ".", "directory put first on sys.path to import the handler from"],
    ]

    def opt_listen(self, endpoint: str) -> None:
        """Listen on ENDPOINT (repeatable): tcp, tcp6, ssl, unix or udp:PORT[:interface=ADDR]."""
        super().opt_listen(endpoint)

    opt_l = opt_listen


def makeService(options: Options) -> IService:
    """Build the service; a bad handler or endpoint ends twistd with one line.

    An ``ssl:`` endpoint that names no key gets ``--tls-cert``/``--tls-key``
    (or the development certificate in ``--data-dir``).
    """
    handler = options["handler"]
    if not handler:
        names = ", ".join(BUILTIN_HANDLERS)
        fail(SERVICE_NAME, f"--handler is required ({names} or package.module:Class)")
    try:
        threads = int(options["threads"])
    except ValueError:
        fail(SERVICE_NAME, f"--threads: expected a positive integer, got {options['threads']!r}")
    idle = options.get("idle-timeout")

    def build(context: DaemonContext) -> IService:
        return make_sockserv_service(
            context.reactor,
            handler=handler,
            listen=[context.endpoint(text) for text in options["listen"]],
            threads=threads,
            policy=context.policy,
            limits=context.limits,
            name=LOG_NAME,
            idle_timeout=float(idle) if idle is not None else None,
            app_dir=options["app-dir"],
        )

    return standalone_service(options, SERVICE_NAME, build)


@dataclass(frozen=True)
class SocketService:
    """One ``[[socket.services]]`` entry of the combined daemon: a handler and its endpoints."""

    name: str = field(default="echo", help="service name in log lines and the start-up table")
    handler: str = field(default="echo", help="echo, discard, daytime or package.module:Class")
    listen: tuple[str, ...] = field(
        default=("tcp:2007:interface=127.0.0.1", "udp:2007:interface=127.0.0.1"),
        help="endpoints: tcp, tcp6, ssl (the daemon's certificate unless given), unix, udp",
    )
    threads: int = field(default=DEFAULT_THREADS, minimum=1, help="handler thread pool size")


def _default_services() -> tuple[SocketService, ...]:
    return tuple(
        SocketService(
            name=name,
            handler=name,
            listen=(f"tcp:{port}:interface=127.0.0.1", f"udp:{port}:interface=127.0.0.1"),
        )
        for name, port in (("echo", 2007), ("discard", 2009), ("daytime", 2013))
    )


@dataclass(frozen=True)
class Config:
    """``[socket]``: socketserver handlers hosted by the combined daemon."""

    enabled: bool = field(default=True, help="run the socket services at all")
    app_dir: str = field(default=".", help="directory put first on sys.path for handlers")
    services: tuple[SocketService, ...] = field(
        default_factory=_default_services,
        help="[[socket.services]] tables: name, handler, listen, threads",
    )

    def __post_init__(self) -> None:
        names = [s.name for s in self.services]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two services are named {name!r}")


def combined_service(config: Config, context: DaemonContext) -> IService | None:
    """Build the ``[socket]`` services of the combined daemon (``None`` when disabled)."""
    if not config.enabled or not config.services:
        return None
    root = MultiService()
    root.setName("socket")
    for entry in config.services:
        try:
            service = make_sockserv_service(
                context.reactor,
                handler=entry.handler,
                listen=[context.endpoint(text) for text in entry.listen],
                threads=entry.threads,
                policy=context.policy,
                limits=context.limits,
                name=entry.name,
                app_dir=config.app_dir,
            )
        except ConfigError as e:
            raise ConfigError(f"socket.services.{entry.name}", str(e)) from None
        root.addService(service)
    return root

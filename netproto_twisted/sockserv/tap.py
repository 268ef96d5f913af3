"""``twistd netproto-socket``: host socketserver request handlers under twistd."""

from __future__ import annotations

from typing import Any, ClassVar

from twisted.application.service import IService

from netproto_twisted.core.access import AccessOptionsMixin
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import LimitsOptionsMixin, limits_options
from netproto_twisted.core.service import exit_on_failure, fail
from netproto_twisted.sockserv.builtins import BUILTIN_HANDLERS
from netproto_twisted.sockserv.server import DEFAULT_THREADS, make_sockserv_service

__all__ = ["SERVICE_NAME", "Options", "makeService"]

#: The name in error lines (``netproto-socket: ...``).
SERVICE_NAME = "netproto-socket"
#: The name in the daemon's log lines (``socket listening on tcp 127.0.0.1:9999``).
LOG_NAME = "socket"


class Options(AccessOptionsMixin, LimitsOptionsMixin):
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
        *limits_options(),
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, endpoint: str) -> None:
        """Listen on ENDPOINT (repeatable): tcp, tcp6, ssl, unix or udp:PORT[:interface=ADDR]."""
        self["listen"].append(endpoint)

    opt_l = opt_listen


def makeService(options: Options) -> IService:
    """Build the service; a bad handler or endpoint ends twistd with one line."""
    from twisted.internet import reactor

    handler = options["handler"]
    if not handler:
        names = ", ".join(BUILTIN_HANDLERS)
        fail(SERVICE_NAME, f"--handler is required ({names} or package.module:Class)")
    try:
        threads = int(options["threads"])
    except ValueError:
        fail(SERVICE_NAME, f"--threads: expected a positive integer, got {options['threads']!r}")
    idle = options.get("idle-timeout")
    try:
        service = make_sockserv_service(
            reactor,
            handler=handler,
            listen=options["listen"],
            threads=threads,
            policy=options["access_policy"],
            limits=options["limits"],
            name=LOG_NAME,
            idle_timeout=float(idle) if idle is not None else None,
            app_dir=options["app-dir"],
        )
    except ConfigError as e:
        fail(SERVICE_NAME, e)
    reactor.callWhenRunning(
        lambda: exit_on_failure(reactor, service.when_listening(), SERVICE_NAME)
    )
    return service

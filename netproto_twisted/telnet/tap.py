"""``twistd netproto-telnet``: the Telnet server hosting a shell behind a login.

Also the ``[telnet]`` section of the combined ``twistd netproto`` daemon
(:class:`Config`, :func:`combined_service`): by default ``tcp:2323`` on
127.0.0.1, users from ``<data>/users`` (``netproto user add``), and a Python
shell per session (``shell = "pty"`` runs ``command`` on a pseudo-terminal
instead).  ``console = true`` adds the admin console
(:mod:`netproto_twisted.telnet.console`) on ``console_listen``, loopback only.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, ClassVar

from twisted.application.service import IService, MultiService
from twisted.python import usage

from netproto_twisted.core.access import ConnectionGuard, LoginDelay
from netproto_twisted.core.auth import password_portal
from netproto_twisted.core.config import check_bounds, field
from netproto_twisted.core.daemon import DaemonContext, ServerOptions, standalone_service
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import DEFAULT_LIMITS, Limits, int_option, limits_options
from netproto_twisted.core.passwords import PasswordFile, thread_runner
from netproto_twisted.core.service import EndpointsService, endpoint_kind
from netproto_twisted.telnet.console import console_namespace
from netproto_twisted.telnet.interfaces import IShellFactory
from netproto_twisted.telnet.server import TelnetServerFactory, TelnetSettings
from netproto_twisted.telnet.shells import PtyShellFactory, PythonShellFactory

__all__ = [
    "DEFAULT_CONSOLE_LISTEN",
    "DEFAULT_LISTEN",
    "SERVICE_NAME",
    "TELNET_LIMITS",
    "Config",
    "Options",
    "build_service",
    "combined_service",
    "makeService",
]

#: The name in error lines (``netproto-telnet: ...``).
SERVICE_NAME = "netproto-telnet"
#: Where the server listens by default: loopback, port 2323.
DEFAULT_LISTEN = ("tcp:2323:interface=127.0.0.1",)
#: Where the admin console listens when enabled (loopback only).
DEFAULT_CONSOLE_LISTEN = "tcp:2324:interface=127.0.0.1"
#: Telnet's limits: an interactive session may sit idle for half an hour; few per address.
TELNET_LIMITS = replace(DEFAULT_LIMITS, idle_timeout=1800.0, max_connections_per_ip=20)
SHELLS = ("python", "pty")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_INTERFACE = re.compile(r"(?:^|:)interface=((?:\\:|[^:])*)")


@dataclass(frozen=True)
class Config:
    """``[telnet]``: the Telnet server of the combined daemon (also what the options build)."""

    enabled: bool = field(default=True, help="run the Telnet server at all")
    listen: tuple[str, ...] = field(
        default=DEFAULT_LISTEN, help="endpoints (ssl: is Telnet over TLS)"
    )
    users: str = field(default="", help="password file (netproto user add); '' = <data>/users")
    shell: str = field(
        default="python", help="'python' (an interpreter) or 'pty' (command on a PTY)"
    )
    command: str = field(
        default="/bin/sh", help="the program for shell = 'pty' (split like a shell)"
    )
    banner: str = field(default="netproto telnet", help="line shown before the login prompt")
    login_timeout: float = field(default=60.0, minimum=1.0, help="seconds to finish the login")
    max_subnegotiation: int = field(
        default=4096, minimum=64, help="bytes one subnegotiation may carry"
    )
    console: bool = field(
        default=False, help="run the admin console (loopback only, login required)"
    )
    console_listen: str = field(
        default=DEFAULT_CONSOLE_LISTEN, help="the admin console's endpoint"
    )

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.shell not in SHELLS:
            raise ConfigError("shell", f"must be one of {', '.join(SHELLS)}")


def _shell_factory(config: Config, context: DaemonContext) -> IShellFactory:
    if config.shell == "pty":
        argv = shlex.split(config.command)
        if not argv:
            raise ConfigError("command", "empty")
        return PtyShellFactory(context.reactor, argv)
    return PythonShellFactory()


def _check_loopback(text: str) -> None:
    kind = endpoint_kind(text)
    if kind not in ("tcp", "tcp6"):
        raise ConfigError(text, "the admin console listens on tcp: or tcp6: loopback only")
    found = _INTERFACE.search(text)
    iface = found.group(1).replace("\\:", ":") if found else ""
    if iface not in _LOOPBACK:
        raise ConfigError(text, "the admin console listens on loopback only (interface=127.0.0.1)")


def build_service(config: Config, context: DaemonContext) -> MultiService:
    """Build the Telnet listener (and the console) from ``config`` and the daemon's ``context``."""
    reactor = context.reactor
    limits = context.limits_for(TELNET_LIMITS)
    root = MultiService()
    root.setName("telnet")
    password_file = PasswordFile(config.users or str(context.data_dir / "users"))
    portal = password_portal(password_file, thread_runner(reactor, reactor.getThreadPool()))
    login_delay = LoginDelay.from_limits(reactor, limits)
    settings = TelnetSettings(
        banner=config.banner + "\r\n",
        idle_timeout=limits.idle_timeout,
        login_timeout=config.login_timeout,
        max_subnegotiation=config.max_subnegotiation,
        max_failed_logins=limits.max_failed_logins,
        tls_handshake_timeout=limits.tls_handshake_timeout,
    )

    def refusal(reason: str) -> bytes:
        return f"Connection refused: {reason}\r\n".encode()

    def listener(name: str, listen: list[str], shell: IShellFactory) -> None:
        factory = TelnetServerFactory(
            reactor, portal, shell, settings=settings, login_delay=login_delay
        )
        guard = ConnectionGuard(
            factory, reactor, policy=context.policy, limits=limits, refusal=refusal
        )
        for text in listen:
            if endpoint_kind(text) == "udp":
                raise ConfigError(text, "Telnet does not serve UDP")
        root.addService(EndpointsService(name, reactor, listen, guard=guard))

    listen = [context.endpoint(text) for text in config.listen]
    if listen:
        listener("telnet", listen, _shell_factory(config, context))
    if config.console:
        _check_loopback(config.console_listen)
        listener(
            "telnet-console",
            [config.console_listen],
            PythonShellFactory(console_namespace(root, limits)),
        )
    return root


def combined_service(config: Config, context: DaemonContext) -> IService | None:
    """Build the ``[telnet]`` services of the combined daemon (``None`` when disabled)."""
    if not config.enabled or not (config.listen or config.console):
        return None
    return build_service(config, context)


class Options(ServerOptions):
    """Command-line options of ``twistd netproto-telnet``."""

    synopsis = "[options] [--listen ENDPOINT ...]"
    longdesc = (
        "A Telnet server (RFC 854 with RFC 1143 option negotiation) hosting a Python shell "
        "or a program on a pseudo-terminal behind a login. Without --listen: tcp:2323 on "
        "127.0.0.1; ssl:PORT serves Telnet over TLS."
    )
    default_listen = DEFAULT_LISTEN
    limits_defaults: ClassVar[Limits] = TELNET_LIMITS
    optParameters: ClassVar[list[list[Any]]] = [
        ["passwords", None, None, "password file (default DATA/users)"],
        ["shell", None, "python", "python (an interpreter) or pty (--command on a PTY)"],
        ["command", None, "/bin/sh", "the program for --shell pty"],
        ["banner", None, "netproto telnet", "line shown before the login prompt"],
        ["login-timeout", None, "60", "seconds to finish the login"],
        ["max-subnegotiation", None, "4096", "bytes one subnegotiation may carry"],
        ["console-listen", None, DEFAULT_CONSOLE_LISTEN, "the admin console's endpoint"],
        *limits_options(TELNET_LIMITS),
    ]
    optFlags: ClassVar[list[list[Any]]] = [["console", None, "also run the admin console"]]

    def postOptions(self) -> None:
        """Build :attr:`config` from the options."""
        super().postOptions()
        try:
            self.config = Config(
                listen=self.listen(),
                users=self["passwords"] or "",
                shell=self["shell"],
                command=self["command"],
                banner=self["banner"],
                login_timeout=float(int_option(self, "login-timeout")),
                max_subnegotiation=int_option(self, "max-subnegotiation"),
                console=bool(self["console"]),
                console_listen=self["console-listen"],
            )
        except (ValueError, ConfigError) as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Options) -> IService:
    """Build the service; a bad option, file or endpoint ends twistd with one line."""
    return standalone_service(options, SERVICE_NAME, partial(build_service, options.config))

"""``twistd netproto-pop3``: the POP3 server over the Maildir tree SMTP delivers into.

Also the ``[pop3]`` section of the combined ``twistd netproto`` daemon
(:class:`Config`, :func:`combined_service`): by default ``tcp:2110`` (STLS)
and ``ssl:2995`` (implicit TLS), both on 127.0.0.1, Maildir under
``<data>/mail``, users in ``<data>/users`` -- the same defaults as ``[smtp]``,
so mail SMTP delivers is read over POP3.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Any, ClassVar

from twisted.application.service import IService, MultiService
from twisted.python import usage

from netproto_twisted.core.config import check_bounds, field
from netproto_twisted.core.daemon import (
    DaemonContext,
    ServerOptions,
    enabled_section,
    standalone_service,
)
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import (
    DEFAULT_LIMITS,
    Limits,
    int_option,
    limits_options,
)
from netproto_twisted.core.streaming import thread_block_runner
from netproto_twisted.pop3._wire import err
from netproto_twisted.pop3.maildrop import MaildirMaildrops
from netproto_twisted.pop3.server import DEFAULT_IDLE_TIMEOUT, POP3ServerFactory, POP3Settings

__all__ = [
    "DEFAULT_LISTEN",
    "SERVICE_NAME",
    "Config",
    "Options",
    "build_service",
    "combined_service",
    "makeService",
]

#: The name in error lines (``netproto-pop3: ...``).
SERVICE_NAME = "netproto-pop3"
#: Where the server listens by default: STLS on 2110, implicit TLS on 2995, loopback only.
DEFAULT_LISTEN = ("tcp:2110:interface=127.0.0.1", "ssl:2995:interface=127.0.0.1")
#: POP3's limits: RFC 1939's ten-minute autologout instead of the shared five minutes, and
#: a command rate that lets a client fetch a mailbox at full speed (one RETR per message,
#: pipelined): the shared 100 commands/s would make 1,000 messages take ten seconds.
POP3_LIMITS = replace(
    DEFAULT_LIMITS, idle_timeout=DEFAULT_IDLE_TIMEOUT, command_rate=5000.0, command_burst=1000
)


@dataclass(frozen=True)
class Config:
    """``[pop3]``: the POP3 server of the combined daemon (also what the options build)."""

    enabled: bool = field(default=True, help="run the POP3 server at all")
    listen: tuple[str, ...] = field(
        default=DEFAULT_LISTEN, help="endpoints (tcp: offers STLS; ssl: is implicit TLS)"
    )
    hostname: str = field(default="localhost", help="name in the greeting")
    maildir: str = field(default="", help="Maildir base (user u reads DIR/u); '' = <data>/mail")
    users: str = field(default="", help="password file (netproto user add); '' = <data>/users")
    allow_insecure_auth: bool = field(
        default=False, help="allow USER/PASS and AUTH without TLS to loopback clients"
    )
    max_errors: int = field(default=20, minimum=1, help="bad commands before a session is closed")

    def __post_init__(self) -> None:
        check_bounds(self)


def build_service(config: Config, context: DaemonContext) -> MultiService:
    """Build the POP3 listeners from ``config`` with the daemon's shared ``context``."""
    reactor = context.reactor
    limits = context.limits_for(POP3_LIMITS)
    root = MultiService()
    root.setName("pop3")
    maildir = config.maildir or str(context.data_dir / "mail")
    authenticator = context.password_authenticator(
        limits, config.users, allow_insecure=config.allow_insecure_auth, hostname=config.hostname
    )
    runner = thread_block_runner(reactor)
    settings = POP3Settings(
        hostname=config.hostname,
        allow_insecure_auth=config.allow_insecure_auth,
        max_line_length=limits.max_line_length,
        max_errors=config.max_errors,
        idle_timeout=limits.idle_timeout,
        tls_handshake_timeout=limits.tls_handshake_timeout,
        command_rate=limits.command_rate,
        command_burst=limits.command_burst,
    )
    factory = POP3ServerFactory(
        reactor,
        MaildirMaildrops(maildir, runner, clock=reactor),
        authenticator,
        settings,
        tls=context.server_tls(),
        runner=runner,
    )

    def refusal(reason: str) -> bytes:
        return err(reason, "SYS/TEMP")

    context.guarded_listener("pop3", factory, config.listen, limits, refusal, parent=root)
    return root


combined_service = enabled_section(build_service, "pop3")


class Options(ServerOptions):
    """Command-line options of ``twistd netproto-pop3``."""

    synopsis = "[options] [--listen ENDPOINT ...]"
    longdesc = (
        "A POP3 server (RFC 1939 with CAPA, STLS, SASL, UIDL, TOP, UTF8) over the Maildir "
        "tree the SMTP server delivers into (--maildir DIR: user u reads DIR/u). Without "
        "--listen: tcp:2110 (STLS) and ssl:2995 (implicit TLS), both on 127.0.0.1."
    )
    default_listen = DEFAULT_LISTEN
    limits_defaults: ClassVar[Limits] = POP3_LIMITS
    optParameters: ClassVar[list[list[Any]]] = [
        ["hostname", None, "localhost", "server name in the greeting"],
        ["maildir", None, None, "Maildir base: user u reads DIR/u (default DATA/mail)"],
        ["passwords", None, None, "password file (default DATA/users)"],
        ["max-errors", None, "20", "bad commands before a session is closed"],
        *limits_options(POP3_LIMITS),
    ]
    optFlags: ClassVar[list[list[Any]]] = [
        ["allow-insecure-auth", None, "allow USER/PASS and AUTH without TLS to loopback clients"],
    ]

    def postOptions(self) -> None:
        """Build :attr:`config` from the options."""
        super().postOptions()
        max_errors = int_option(self, "max-errors")
        try:
            self.config = Config(
                listen=self.listen(),
                hostname=self["hostname"],
                maildir=self["maildir"] or "",
                users=self["passwords"] or "",
                allow_insecure_auth=bool(self["allow-insecure-auth"]),
                max_errors=max_errors,
            )
        except (ValueError, ConfigError) as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Options) -> IService:
    """Build the service; a bad option, file or endpoint ends twistd with one line."""
    return standalone_service(options, SERVICE_NAME, partial(build_service, options.config))

"""``twistd netproto-imap``: the IMAP server over the Maildir tree SMTP delivers into.

Also the ``[imap]`` section of the combined ``twistd netproto`` daemon
(:class:`Config`, :func:`combined_service`): by default ``tcp:2143``
(STARTTLS) and ``ssl:2993`` (implicit TLS), both on 127.0.0.1, Maildir under
``<data>/mail``, users in ``<data>/users`` -- the same defaults as ``[smtp]``
and ``[pop3]``, so mail SMTP delivers is read over IMAP.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Any, ClassVar

from twisted.application.service import IService, MultiService, Service
from twisted.python import usage

from netproto_twisted.core.config import check_bounds, field
from netproto_twisted.core.daemon import (
    DaemonContext,
    ServerOptions,
    enabled_section,
    standalone_service,
)
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import DEFAULT_LIMITS, Limits, int_option, limits_options
from netproto_twisted.core.procpool import ProcessPool
from netproto_twisted.imap4.server import DEFAULT_IDLE_TIMEOUT, IMAPServerFactory, IMAPSettings
from netproto_twisted.imap4.server.fetch import MessageCache
from netproto_twisted.imap4.server.prefetch import WORKER_MODULE, Prefetcher
from netproto_twisted.imap4.wire.serialise import status_line
from netproto_twisted.mailstore import MaildirStore

__all__ = [
    "DEFAULT_LISTEN",
    "IMAP_LIMITS",
    "SERVICE_NAME",
    "Config",
    "Options",
    "build_service",
    "combined_service",
    "makeService",
]

#: The name in error lines (``netproto-imap: ...``).
SERVICE_NAME = "netproto-imap"
#: Where the server listens by default: STARTTLS on 2143, implicit TLS on 2993, loopback only.
DEFAULT_LISTEN = ("tcp:2143:interface=127.0.0.1", "ssl:2993:interface=127.0.0.1")
#: IMAP's limits: RFC 9051's 30-minute autologout (IDLE sessions stay), 64 KiB command
#: lines (Dovecot's default), and a command rate for clients that pipeline.
IMAP_LIMITS = replace(
    DEFAULT_LIMITS,
    idle_timeout=DEFAULT_IDLE_TIMEOUT,
    max_line_length=65536,
    command_rate=5000.0,
    command_burst=1000,
)


@dataclass(frozen=True)
class Config:
    """``[imap]``: the IMAP server of the combined daemon (also what the options build)."""

    enabled: bool = field(default=True, help="run the IMAP server at all")
    listen: tuple[str, ...] = field(
        default=DEFAULT_LISTEN, help="endpoints (tcp: offers STARTTLS; ssl: is implicit TLS)"
    )
    hostname: str = field(default="localhost", help="name in the greeting")
    maildir: str = field(default="", help="Maildir base (user u reads DIR/u); '' = <data>/mail")
    users: str = field(default="", help="password file (netproto user add); '' = <data>/users")
    allow_insecure_auth: bool = field(
        default=False, help="allow LOGIN and AUTHENTICATE without TLS to loopback clients"
    )
    max_errors: int = field(default=50, minimum=1, help="bad commands before a session is closed")
    append_limit: int = field(
        default=35 * 1024 * 1024, minimum=1, help="largest message APPEND accepts (APPENDLIMIT)"
    )
    max_literal: int = field(
        default=65536, minimum=1024, help="largest literal in any other command"
    )
    prefetch_workers: int = field(
        default=1,
        minimum=0,
        maximum=16,
        help="processes reading a large folder's headers ahead at its first SELECT (0: none)",
    )

    def __post_init__(self) -> None:
        check_bounds(self)


class _PoolService(Service):
    """Starts the read-ahead workers with the daemon and stops them with it."""

    def __init__(self, pool: ProcessPool) -> None:
        self.pool = pool

    def startService(self) -> None:
        """Start the workers (they load the parsing code now, not at the first SELECT)."""
        super().startService()  # type: ignore[no-untyped-call]
        self.pool.start()

    def stopService(self) -> Any:
        """Stop the workers."""
        self.pool.stop()
        return super().stopService()  # type: ignore[no-untyped-call]


class _HubStopper(Service):
    """Drops the change hub's watches when the daemon stops."""

    def __init__(self, factory: IMAPServerFactory) -> None:
        self.factory = factory

    def stopService(self) -> Any:
        """Stop watching folders."""
        self.factory.hub.stop()
        return super().stopService()  # type: ignore[no-untyped-call]


def build_service(config: Config, context: DaemonContext) -> MultiService:
    """Build the IMAP listeners from ``config`` with the daemon's shared ``context``."""
    reactor = context.reactor
    limits = context.limits_for(IMAP_LIMITS)
    root = MultiService()
    root.setName("imap")
    maildir = config.maildir or str(context.data_dir / "mail")
    pool = reactor.getThreadPool()
    authenticator = context.password_authenticator(
        limits, config.users, allow_insecure=config.allow_insecure_auth, hostname=config.hostname
    )
    settings = IMAPSettings(
        hostname=config.hostname,
        allow_insecure_auth=config.allow_insecure_auth,
        max_line_length=limits.max_line_length,
        max_literal=config.max_literal,
        append_limit=config.append_limit,
        max_errors=config.max_errors,
        idle_timeout=limits.idle_timeout,
        tls_handshake_timeout=limits.tls_handshake_timeout,
        command_rate=limits.command_rate,
        command_burst=limits.command_burst,
    )
    store = MaildirStore(maildir, reactor, pool)
    cache = MessageCache()
    prefetcher = None
    if config.prefetch_workers:
        workers = ProcessPool(
            reactor, config.prefetch_workers, preload=(WORKER_MODULE,),
            bare_packages=("netproto_twisted",),
        )  # fmt: skip
        prefetcher = Prefetcher(workers, cache, reactor)
        root.addService(_PoolService(workers))
    factory = IMAPServerFactory(
        reactor, store, authenticator, settings, tls=context.server_tls(), cache=cache,
        prefetcher=prefetcher,
    )  # fmt: skip
    root.addService(_HubStopper(factory))

    def refusal(reason: str) -> bytes:
        return status_line("*", "BYE", reason)

    context.guarded_listener("imap", factory, config.listen, limits, refusal, parent=root)
    return root


combined_service = enabled_section(build_service, "imap")


class Options(ServerOptions):
    """Command-line options of ``twistd netproto-imap``."""

    synopsis = "[options] [--listen ENDPOINT ...]"
    longdesc = (
        "An IMAP4rev1/IMAP4rev2 server (IDLE, UIDPLUS, MOVE, LITERAL+, SASL-IR, ESEARCH, "
        "SPECIAL-USE) over the Maildir tree the SMTP server delivers into (--maildir DIR: "
        "user u reads DIR/u). Without --listen: tcp:2143 (STARTTLS) and ssl:2993 (implicit "
        "TLS), both on 127.0.0.1."
    )
    default_listen = DEFAULT_LISTEN
    limits_defaults: ClassVar[Limits] = IMAP_LIMITS
    optParameters: ClassVar[list[list[Any]]] = [
        ["hostname", None, "localhost", "server name in the greeting"],
        ["maildir", None, None, "Maildir base: user u reads DIR/u (default DATA/mail)"],
        ["passwords", None, None, "password file (default DATA/users)"],
        ["max-errors", None, "50", "bad commands before a session is closed"],
        ["append-limit", None, str(35 * 1024 * 1024), "largest message APPEND accepts"],
        ["max-literal", None, "65536", "largest literal in any other command"],
        [
            "prefetch-workers", None, "1",
            "processes reading a large folder's headers ahead at its first SELECT (0: none)",
        ],
        *limits_options(IMAP_LIMITS),
    ]
    optFlags: ClassVar[list[list[Any]]] = [
        [
            "allow-insecure-auth",
            None,
            "allow LOGIN and AUTHENTICATE without TLS to loopback clients",
        ],
    ]

    def postOptions(self) -> None:
        """Build :attr:`config` from the options."""
        super().postOptions()
        max_errors = int_option(self, "max-errors")
        append_limit = int_option(self, "append-limit")
        max_literal = int_option(self, "max-literal")
        prefetch_workers = int_option(self, "prefetch-workers")
        try:
            self.config = Config(
                listen=self.listen(),
                hostname=self["hostname"],
                maildir=self["maildir"] or "",
                users=self["passwords"] or "",
                allow_insecure_auth=bool(self["allow-insecure-auth"]),
                max_errors=max_errors,
                append_limit=append_limit,
                max_literal=max_literal,
                prefetch_workers=prefetch_workers,
            )
        except (ValueError, ConfigError) as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Options) -> IService:
    """Build the service; a bad option, file or endpoint ends twistd with one line."""
    return standalone_service(options, SERVICE_NAME, partial(build_service, options.config))

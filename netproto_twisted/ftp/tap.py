"""``twistd netproto-ftp``: the FTP/FTPS server over a directory tree.

Also the ``[ftp]`` section of the combined ``twistd netproto`` daemon
(:class:`Config`, :func:`combined_service`): by default ``tcp:2121`` on
127.0.0.1 with AUTH TLS, files under ``<data>/ftp``, passwords from
``<data>/users`` (``netproto user add NAME``), homes and permissions from
``<data>/ftp-users`` (:mod:`netproto_twisted.ftp.users`).  An ``ssl:``
endpoint is implicit FTPS.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
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
from netproto_twisted.core.limits import DEFAULT_LIMITS, Limits, limits_options
from netproto_twisted.core.streaming import thread_block_runner
from netproto_twisted.core.tls import server_context
from netproto_twisted.core.tls_sessions import resumable_server_options
from netproto_twisted.ftp._wire import format_reply
from netproto_twisted.ftp.server import FTPServerFactory, FTPSettings
from netproto_twisted.ftp.users import UserTable

__all__ = [
    "DEFAULT_LISTEN",
    "FTP_LIMITS",
    "SERVICE_NAME",
    "Config",
    "Options",
    "build_service",
    "combined_service",
    "makeService",
]

SERVICE_NAME = "netproto-ftp"
#: AUTH TLS on 2121, loopback only.
DEFAULT_LISTEN = ("tcp:2121:interface=127.0.0.1",)
#: FTP's limits: a client lists and fetches many small files in a row, so the command
#: rate is higher than the shared 100/s.
FTP_LIMITS = replace(DEFAULT_LIMITS, command_rate=2000.0, command_burst=1000)


def _port_range(text: str) -> tuple[int, int] | None:
    if not text:
        return None
    low, sep, high = text.partition("-")
    try:
        lo, hi = int(low), int(high)
    except ValueError:
        raise ConfigError("passive_ports", f"want LOW-HIGH, not {text!r}") from None
    if not sep or not 1024 <= lo <= hi <= 65535:
        raise ConfigError("passive_ports", f"want LOW-HIGH within 1024-65535, not {text!r}")
    return lo, hi


@dataclass(frozen=True)
class Config:
    """``[ftp]``: the FTP server of the combined daemon (also what the options build)."""

    enabled: bool = field(default=True, help="run the FTP server at all")
    listen: tuple[str, ...] = field(
        default=DEFAULT_LISTEN, help="endpoints (tcp: offers AUTH TLS; ssl: is implicit FTPS)"
    )
    root: str = field(default="", help="directory under which homes live; '' = <data>/ftp")
    users: str = field(default="", help="password file (netproto user add); '' = <data>/users")
    ftp_users: str = field(
        default="", help="homes and permission letters file; '' = <data>/ftp-users"
    )
    anonymous: bool = field(default=False, help="allow read-only anonymous logins")
    anonymous_root: str = field(default="", help="anonymous users' root; '' = <root>/pub")
    passive_ports: str = field(default="", help="passive port range LOW-HIGH; '' = any")
    masquerade: str = field(default="", help="IPv4 address named in PASV replies (behind NAT)")
    require_tls: bool = field(default=False, help="every login and data channel needs TLS")
    require_session_reuse: bool = field(
        default=True, help="FTPS data channels must resume the control TLS session"
    )
    allow_insecure_auth: bool = field(
        default=False, help="allow passwords without TLS from loopback clients"
    )
    banner: str = field(default="netproto FTP server ready", help="text of the 220 greeting")
    data_timeout: float = field(
        default=60.0,
        minimum=0.1,
        help="seconds to wait for a data connection, and for a stalled transfer (then 426)",
    )
    max_download_rate: float = field(
        default=0.0, minimum=0.0, help="bytes per second each session may retrieve; 0 = no limit"
    )
    max_upload_rate: float = field(
        default=0.0, minimum=0.0, help="bytes per second each session may store; 0 = no limit"
    )
    max_upload_size: int = field(
        default=0, minimum=0, help="largest file one upload may store, bytes (552); 0 = no limit"
    )
    inline_file_ops: float = field(
        default=0.005,
        minimum=0.0,
        help="seconds a stat or open may take on the reactor thread before such calls go to "
        "the thread pool for a minute; 0 = always in the thread pool",
    )

    def __post_init__(self) -> None:
        check_bounds(self)
        _port_range(self.passive_ports)


def build_service(config: Config, context: DaemonContext) -> MultiService:
    """Build the FTP listeners from ``config`` with the daemon's shared ``context``."""
    reactor = context.reactor
    limits = context.limits_for(FTP_LIMITS)
    root = MultiService()
    root.setName("ftp")
    base = Path(config.root or context.data_dir / "ftp")
    base.mkdir(parents=True, exist_ok=True)
    anonymous_root = None
    if config.anonymous:
        anonymous_root = Path(config.anonymous_root or base / "pub")
        anonymous_root.mkdir(parents=True, exist_ok=True)
    table = UserTable.from_file(
        config.ftp_users or context.data_dir / "ftp-users", base, anonymous_root=anonymous_root
    )
    authenticator = context.password_authenticator(
        limits, config.users, allow_insecure=config.allow_insecure_auth
    )
    # A context of FTP's own: the session cache it turns on is not imposed on others.
    tls = resumable_server_options(server_context(context.tls.cert, context.tls.key))
    settings = FTPSettings(
        banner=config.banner,
        allow_insecure_auth=config.allow_insecure_auth,
        require_tls=config.require_tls,
        require_session_reuse=config.require_session_reuse,
        passive_ports=_port_range(config.passive_ports),
        masquerade=config.masquerade or None,
        data_timeout=config.data_timeout,
        max_download_rate=config.max_download_rate or None,
        max_upload_rate=config.max_upload_rate or None,
        max_upload_size=config.max_upload_size or None,
        inline_file_ops=config.inline_file_ops or None,
        max_line_length=limits.max_line_length,
        idle_timeout=limits.idle_timeout,
        tls_handshake_timeout=limits.tls_handshake_timeout,
        command_rate=limits.command_rate,
        command_burst=limits.command_burst,
    )
    factory = FTPServerFactory(
        reactor, table, authenticator, settings, tls=tls, runner=thread_block_runner(reactor)
    )
    factory.apply_limits(limits)

    def refusal(reason: str) -> bytes:
        return format_reply(421, reason)

    context.guarded_listener("ftp", factory, config.listen, limits, refusal, parent=root)
    return root


combined_service = enabled_section(build_service, "ftp")


class Options(ServerOptions):
    """Command-line options of ``twistd netproto-ftp``."""

    synopsis = "[options] [--listen ENDPOINT ...]"
    longdesc = (
        "An FTP/FTPS server (RFC 959 with FEAT, EPSV/EPRT, MLSD/MLST, SIZE, MDTM, MFMT, REST, "
        "UTF8, AUTH TLS/PBSZ/PROT) over a directory tree: users from the password file, "
        "homes and permissions from --ftp-users. Without --listen: tcp:2121 on 127.0.0.1 "
        "(AUTH TLS); an ssl: endpoint is implicit FTPS."
    )
    default_listen = DEFAULT_LISTEN
    limits_defaults: ClassVar[Limits] = FTP_LIMITS
    optParameters: ClassVar[list[list[Any]]] = [
        ["root", None, None, "directory under which homes live (default DATA/ftp)"],
        ["users", None, None, "password file (default DATA/users)"],
        ["ftp-users", None, None, "homes and permissions file (default DATA/ftp-users)"],
        ["anonymous-root", None, None, "anonymous users' root (default ROOT/pub)"],
        ["passive-ports", None, "", "passive port range LOW-HIGH"],
        ["masquerade", None, "", "IPv4 address named in PASV replies"],
        ["banner", None, "netproto FTP server ready", "text of the 220 greeting"],
        ["data-timeout", None, "60", "seconds to wait for a data connection or stalled transfer"],
        ["max-download-rate", None, "0", "bytes/s each session may retrieve (0: no limit)"],
        ["max-upload-rate", None, "0", "bytes/s each session may store (0: no limit)"],
        ["max-upload-size", None, "0", "bytes one upload may store (552 past it; 0: no limit)"],
        ["inline-file-ops", None, "0.005", "seconds a stat/open may hold the reactor (0: pool)"],
        *limits_options(FTP_LIMITS),
    ]
    optFlags: ClassVar[list[list[Any]]] = [
        ["anonymous", None, "allow read-only anonymous logins"],
        ["require-tls", None, "every login and data channel needs TLS"],
        ["no-session-reuse", None, "do not require FTPS data channels to resume the session"],
        ["allow-insecure-auth", None, "allow passwords without TLS from loopback clients"],
    ]

    def postOptions(self) -> None:
        """Build :attr:`config` from the options."""
        super().postOptions()
        try:
            self.config = Config(
                listen=self.listen(),
                root=self["root"] or "",
                users=self["users"] or "",
                ftp_users=self["ftp-users"] or "",
                anonymous=bool(self["anonymous"]),
                anonymous_root=self["anonymous-root"] or "",
                passive_ports=self["passive-ports"],
                masquerade=self["masquerade"],
                require_tls=bool(self["require-tls"]),
                require_session_reuse=not self["no-session-reuse"],
                allow_insecure_auth=bool(self["allow-insecure-auth"]),
                banner=self["banner"],
                data_timeout=float(self["data-timeout"]),
                max_download_rate=float(self["max-download-rate"]),
                max_upload_rate=float(self["max-upload-rate"]),
                max_upload_size=int(self["max-upload-size"]),
                inline_file_ops=float(self["inline-file-ops"]),
            )
        except (ValueError, ConfigError) as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Options) -> IService:
    """Build the service; a bad option, file or endpoint ends twistd with one line."""
    return standalone_service(options, SERVICE_NAME, partial(build_service, options.config))

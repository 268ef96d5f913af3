"""``twistd netproto-smtp``: the ESMTP server (MX + submission), Maildir delivery, relay queue.

Also the ``[smtp]`` section of the combined ``twistd netproto`` daemon
(:class:`Config`, :func:`combined_service`): by default MX on
``tcp:2525:interface=127.0.0.1``, submission (AUTH required) on
``tcp:2587`` (STARTTLS) and ``ssl:2465`` (implicit TLS), Maildir under
``<data>/mail``, queue under ``<data>/queue``, users in ``<data>/users``,
local domain ``localhost``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from twisted.application.service import IService, MultiService, Service
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from netproto_twisted.core.access import (
    AccessPolicy,
    ConnectionGuard,
    LoginDelay,
    parse_network,
)
from netproto_twisted.core.config import check_bounds, field
from netproto_twisted.core.daemon import DaemonContext, ServerOptions, standalone_service
from netproto_twisted.core.durable import MODES as SYNC_MODES
from netproto_twisted.core.durable import GroupCommitter
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import (
    DEFAULT_LIMITS,
    Limits,
    int_option,
)
from netproto_twisted.core.login_cache import VerifiedPasswordCache
from netproto_twisted.core.passwords import PasswordFile, thread_runner
from netproto_twisted.core.reactors import IServerReactor
from netproto_twisted.core.service import EndpointsService, endpoint_kind
from netproto_twisted.core.workers import WorkerChannel, WorkerParts, WorkerPool
from netproto_twisted.mailstore.fsops import FsOps
from netproto_twisted.mailstore.maildir import MaildirStore
from netproto_twisted.smtp.delivery import DefaultPolicy, MaildirTarget, default_user_of
from netproto_twisted.smtp.interfaces import IDeliveryTarget
from netproto_twisted.smtp.relay import (
    DEFAULT_DEAD_HOST_TIME,
    DEFAULT_DELAY_WARNING,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_JITTER,
    DEFAULT_LIFETIME,
    DEFAULT_MAX_ACTIVE_ENTRIES,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_DEAD_HOST_TIME,
    DEFAULT_MIN_BACKOFF,
    DEFAULT_PER_DESTINATION,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_PORT,
    DEFAULT_STOP_GRACE,
    DEFAULT_TIMEOUT,
    Spool,
)
from netproto_twisted.smtp.relay._tap import (
    RELAY_KNOBS,
    check_relay_keys,
    host_port,
    relay_for,
    relay_options,
)
from netproto_twisted.smtp.server import ServerSettings, SMTPServerFactory, password_portal
from netproto_twisted.smtp.wire._codes import DEFAULT_MAX_MESSAGE_SIZE

__all__ = [
    "MAX_WORKERS",
    "QUEUED",
    "SERVICE_NAME",
    "WORKER_BUILDER",
    "Config",
    "Options",
    "build_service",
    "combined_service",
    "makeService",
    "worker_config",
    "worker_parts",
]

_log = Logger(namespace="netproto.smtp.tap")

#: The name in error lines (``netproto-smtp: ...``).
SERVICE_NAME = "netproto-smtp"

#: The most processes ``--workers`` accepts.
MAX_WORKERS = 64
#: What a worker tells the master about each message it committed to the relay queue.
QUEUED = "queued"
#: The builder the worker processes run (see :mod:`netproto_twisted.core.workers`).
WORKER_BUILDER = "netproto_twisted.smtp.tap:worker_parts"
_RELAY_TLS = ("opportunistic", "starttls", "implicit", "none")


@dataclass(frozen=True)
class Config:
    """``[smtp]``: the SMTP server of the combined daemon (also what the options build)."""

    enabled: bool = field(default=True, help="run the SMTP server at all")
    listen: tuple[str, ...] = field(
        default=("tcp:2525:interface=127.0.0.1",),
        help="MX endpoints: local domains, relay networks, authenticated relay",
    )
    submission: tuple[str, ...] = field(
        default=("tcp:2587:interface=127.0.0.1", "ssl:2465:interface=127.0.0.1"),
        help="submission endpoints (AUTH required; ssl: is implicit TLS)",
    )
    hostname: str = field(default="localhost", help="name in the greeting, EHLO and Received")
    domains: tuple[str, ...] = field(default=("localhost",), help="local domains")
    maildir: str = field(default="", help="Maildir base (user u gets DIR/u); '' = <data>/mail")
    queue: str = field(default="", help="relay queue directory; '' = <data>/queue")
    users: str = field(default="", help="password file (netproto user add); '' = <data>/users")
    relay_networks: tuple[str, ...] = field(
        default=(), help="networks that may relay without AUTH (none by default)"
    )
    smarthost: str = field(default="", help="HOST:PORT to relay everything through ('' = MX)")
    smarthost_tls: str = field(
        default="opportunistic", help="opportunistic, starttls, implicit or none"
    )
    smarthost_verify: bool = field(default=False, help="verify the next hop's certificate")
    smarthost_user: str = field(default="", help="AUTH user at the smarthost")
    smarthost_password_file: str = field(default="", help="file holding that user's password")
    smarthost_ca_file: str = field(
        default="", help="CA certificates (PEM) smarthost_verify trusts ('' = the system's)"
    )
    postmaster: str = field(
        default="", help="where reports of undeliverable bounces go ('' = nowhere, only logged)"
    )
    queue_lifetime: float = field(
        default=DEFAULT_LIFETIME, minimum=60.0,
        help="seconds a message is retried before it bounces (5 days)",
    )
    retry_min: float = field(
        default=DEFAULT_MIN_BACKOFF, minimum=1.0, help="first retry delay, seconds (doubles)"
    )
    retry_max: float = field(
        default=DEFAULT_MAX_BACKOFF, minimum=1.0, help="longest retry delay, seconds"
    )
    retry_jitter: float = field(
        default=DEFAULT_JITTER, minimum=0.0, help="fraction a retry delay varies by (0 to < 1)"
    )
    delay_warning: float = field(
        default=DEFAULT_DELAY_WARNING, minimum=0.0,
        help="seconds before the sender is told of a delay (0 = never)",
    )
    per_destination: int = field(
        default=DEFAULT_PER_DESTINATION, minimum=1, help="connections at most to one next hop"
    )
    relay_connections: int = field(
        default=DEFAULT_MAX_CONNECTIONS, minimum=1, help="connections at most to all next hops"
    )
    relay_port: int = field(
        default=DEFAULT_PORT, minimum=1, maximum=65535, help="port of MX hosts (not a smarthost)"
    )
    relay_timeout: float = field(
        default=DEFAULT_TIMEOUT, minimum=1.0,
        help="seconds to wait to connect and for each reply (the one after the data: 600+)",
    )
    relay_idle_timeout: float = field(
        default=DEFAULT_IDLE_TIMEOUT, minimum=0.0, help="seconds an idle connection is kept"
    )
    relay_stop_grace: float = field(
        default=DEFAULT_STOP_GRACE, minimum=0.0, help="seconds deliveries get to end at stop"
    )
    dead_host_time: float = field(
        default=DEFAULT_DEAD_HOST_TIME, minimum=0.0,
        help="seconds a next hop that failed is skipped (doubles; 0 = never)",
    )
    max_dead_host_time: float = field(
        default=DEFAULT_MAX_DEAD_HOST_TIME, minimum=0.0, help="longest a host is skipped, seconds"
    )
    max_active_entries: int = field(
        default=DEFAULT_MAX_ACTIVE_ENTRIES, minimum=1, help="queue entries in memory at most"
    )
    queue_poll_interval: float = field(
        default=DEFAULT_POLL_INTERVAL, minimum=0.0,
        help="seconds between looks for netproto queue requests (0 = never, else >= 0.1)",
    )
    max_size: int = field(
        default=DEFAULT_MAX_MESSAGE_SIZE, minimum=1, help="largest message, octets"
    )
    bare_lf: str = field(default="reject", help="reject or normalize bare CR/LF")
    allow_insecure_auth: bool = field(
        default=False, help="offer AUTH without TLS to loopback clients"
    )
    workers: int = field(
        default=1,
        minimum=1,
        maximum=MAX_WORKERS,
        help="processes accepting connections (the master + workers-1); limits are per process",
    )
    sync: str = field(
        default="auto",
        help="how Maildir commits reach the disk: fs (one syncfs per group of messages; "
        "Linux 5.8+), file (fsync each file and directory), auto (fs where possible)",
    )

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.bare_lf not in ("reject", "normalize"):
            raise ValueError(f"bare_lf must be reject or normalize, not {self.bare_lf!r}")
        if self.smarthost_tls not in _RELAY_TLS:
            raise ValueError(f"smarthost_tls must be one of {', '.join(_RELAY_TLS)}")
        if self.sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {', '.join(SYNC_MODES)}, not {self.sync!r}")
        if self.smarthost:
            host_port(self.smarthost)  # (before the relay's checks: a clearer message)
        check_relay_keys(self)  # (and the postmaster address)
        for net in self.relay_networks:
            parse_network(net)


def build_service(
    config: Config,
    reactor: IServerReactor,
    *,
    data_dir: Path,
    tls: Any,
    complete_endpoint: Any,
    policy: AccessPolicy | None = None,
    limits: Limits = DEFAULT_LIMITS,
    targets: dict[str, IDeliveryTarget] | None = None,
    tls_files: tuple[Path, Path] | None = None,
) -> MultiService:
    """Build the SMTP service tree (listeners, Maildir store, queue and relay) from ``config``.

    ``tls`` is the server TLS context for STARTTLS; ``complete_endpoint``
    completes ``ssl:`` endpoint strings with the certificate.  ``targets``
    may override ``"local"`` / ``"relay"`` (tests, user code).  With
    ``config.workers > 1`` a :class:`~netproto_twisted.core.workers.WorkerPool`
    is added: ``tls_files`` (certificate, key) is then required, since the
    workers rebuild the TLS context from the files, and ``targets`` cannot be
    given (live objects do not cross into other processes).
    """
    if config.workers > 1:
        if targets:
            raise ConfigError("smtp.workers", "custom delivery targets need workers = 1")
        if tls_files is None:
            raise ConfigError("smtp.workers", "worker processes need the TLS files")
    root = MultiService()
    root.setName("smtp")
    targets = dict(targets or {})
    committer = _committer(config, reactor)
    spool: Spool | None = None
    if "relay" not in targets:
        spool = Spool(config.queue or str(data_dir / "queue"), reactor, committer=committer)
        targets["relay"] = spool
    guards = _build_parts(
        config, reactor, root, data_dir=data_dir, tls=tls, policy=policy, limits=limits,
        targets=targets, committer=committer,
    )  # fmt: skip
    if spool is not None:
        root.addService(relay_for(config, reactor, spool))
    listeners = []
    for name, endpoints in (("smtp", config.listen), ("submission", config.submission)):
        if not endpoints:
            continue
        listen = [complete_endpoint(text) for text in endpoints]
        for text in listen:
            if endpoint_kind(text) == "udp":
                raise ConfigError(text, "SMTP does not serve UDP")
        service = EndpointsService(
            name, reactor, listen, guard=guards[name], backlog=limits.backlog
        )
        root.addService(service)
        listeners.append(service)
    if config.workers > 1 and listeners:
        assert tls_files is not None and spool is not None
        payload = worker_config(config, data_dir, tls_files, policy, limits)
        pool = WorkerPool(
            reactor,
            count=config.workers - 1,
            builder=WORKER_BUILDER,
            config=payload,
            listeners=listeners,
            on_message=_queued_handler(spool),
            name="smtp-workers",
        )
        root.addService(pool)
    return root


def _build_parts(
    config: Config,
    reactor: IServerReactor,
    root: MultiService,
    *,
    data_dir: Path,
    tls: Any,
    policy: AccessPolicy | None,
    limits: Limits,
    targets: dict[str, IDeliveryTarget],
    committer: GroupCommitter,
) -> dict[str, ConnectionGuard]:
    """Add the Maildir store to ``root``; return the guarded factory of each listener name."""
    maildir = config.maildir or str(data_dir / "mail")
    users_path = config.users or str(data_dir / "users")
    password_file = PasswordFile(users_path)
    if "local" not in targets:
        pool = ThreadPool(minthreads=0, maxthreads=8, name="netproto-smtp-maildir")
        root.addService(_PoolService(pool))
        store = MaildirStore(maildir, reactor, pool, committer=committer)
        targets["local"] = MaildirTarget(store)

    def user_exists(user: str) -> bool:
        if password_file.get(user) is not None:
            return True
        # Without an entry, a user exists if its Maildir was made by hand.
        return not password_file.names() and os.path.isdir(os.path.join(maildir, user))

    recipient_policy = DefaultPolicy(
        config.domains,
        targets["local"],
        targets["relay"],
        user_exists=user_exists,
        user_of=default_user_of,
    )
    runner = thread_runner(reactor, reactor.getThreadPool())
    portal = password_portal(
        password_file, runner, cache=VerifiedPasswordCache(limits.login_cache_ttl)
    )
    login_delay = LoginDelay.from_limits(reactor, limits)
    settings = ServerSettings(
        hostname=config.hostname,
        max_size=config.max_size,
        relay_networks=tuple(parse_network(n) for n in config.relay_networks),
        allow_insecure_auth=config.allow_insecure_auth,
        auth_mechanisms=limits.auth_mechanisms,
        bare_lf="normalize" if config.bare_lf == "normalize" else "reject",
        max_line_length=limits.max_line_length,
        idle_timeout=limits.idle_timeout,
        tls_handshake_timeout=limits.tls_handshake_timeout,
        command_rate=limits.command_rate,
        command_burst=limits.command_burst,
    )

    def refusal(reason: str) -> bytes:
        return f"421 4.7.0 {config.hostname} {reason}\r\n".encode()

    guards = {}
    for name, role in (
        ("smtp", settings),
        ("submission", replace(settings, require_auth=True)),
    ):
        factory = SMTPServerFactory(
            reactor,
            recipient_policy,
            role,
            tls=tls,
            portal=portal,
            scram_store=password_file,
            login_delay=login_delay,
        )
        factory.apply_limits(limits)  # the deadlines against a trickling client
        guards[name] = ConnectionGuard(
            factory, reactor, policy=policy, limits=limits, refusal=refusal
        )
    return guards


# --- worker processes (--workers N) ---------------------------------------------------


def worker_config(
    config: Config,
    data_dir: Path,
    tls_files: tuple[Path, Path],
    policy: AccessPolicy | None,
    limits: Limits,
) -> dict[str, Any]:
    """The JSON a worker process rebuilds its SMTP server from (no secrets in it)."""
    section = asdict(config)
    section["smarthost_password_file"] = ""  # only the master relays
    policy = policy or AccessPolicy()
    return {
        "smtp": section,
        "data_dir": str(data_dir.resolve()),
        "tls_cert": str(tls_files[0].resolve()),
        "tls_key": str(tls_files[1].resolve()),
        "allow": [str(n) for n in policy.allow],
        "deny": [str(n) for n in policy.deny],
        "limits": asdict(limits),
    }


def worker_parts(payload: Any, reactor: IServerReactor, channel: WorkerChannel) -> WorkerParts:
    """Build a worker's SMTP server (Maildir delivery, spooling without a relay) from JSON.

    Each message a worker commits to the relay queue is announced to the
    master as ``queued ID``, so that the master's relay sends it at once.
    """
    from netproto_twisted.core.config import parse_section
    from netproto_twisted.core.tls import server_context

    if not isinstance(payload, dict):
        raise ConfigError("smtp", "the worker configuration is not a table")
    try:
        config = parse_section(Config, payload["smtp"], "smtp")
        limits = parse_section(Limits, payload["limits"], "limits")
        data_dir = Path(payload["data_dir"])
        tls = server_context(Path(payload["tls_cert"]), Path(payload["tls_key"]))
        policy = AccessPolicy(payload["allow"], payload["deny"])
    except KeyError as e:
        raise ConfigError("smtp", f"the worker configuration lacks {e}") from None
    root = MultiService()
    committer = _committer(config, reactor)
    spool = Spool(config.queue or str(data_dir / "queue"), reactor, committer=committer)
    spool.add_listener(lambda entry: channel.send(QUEUED, entry.id))
    guards = _build_parts(
        config, reactor, root, data_dir=data_dir, tls=tls, policy=policy, limits=limits,
        targets={"relay": spool}, committer=committer,
    )  # fmt: skip
    return WorkerParts(factories=dict(guards), service=root)


def _committer(config: Config, reactor: IServerReactor) -> GroupCommitter:
    """One committer thread for the Maildir and the queue: a sync serves both."""
    return GroupCommitter(reactor, config.sync, FsOps(), name="netproto-smtp-commit")


def _queued_handler(spool: Spool) -> Callable[[int, str, str], None]:
    """The master's side of ``queued ID``: load the entry and hand it to the relay."""

    def failed(failure: Failure, pid: int, entry_id: str) -> None:
        _log.warn(
            "worker {pid} queued {entry_id}, which cannot be read: {why}",
            pid=pid, entry_id=entry_id, why=failure.getErrorMessage(),
        )  # fmt: skip

    def handle(pid: int, kind: str, text: str) -> None:
        if kind != QUEUED:
            _log.warn("worker {pid} sent an unknown message {kind!r}", pid=pid, kind=kind)
            return
        entry_id = text.strip()
        d = spool.get(entry_id)
        d.addCallbacks(spool.committed, failed, errbackArgs=(pid, entry_id))

    return handle


class _PoolService(Service):
    """Runs the Maildir store's thread pool while the service runs."""

    def __init__(self, pool: ThreadPool) -> None:
        self.pool = pool
        self.name = "maildir-threads"

    def startService(self) -> None:
        """Start the pool."""
        Service.startService(self)
        self.pool.start()

    def stopService(self) -> None:
        """Stop the pool (waits for running disk work); a second call does nothing."""
        if not self.running:
            return
        Service.stopService(self)
        self.pool.stop()


def service_from_context(config: Config, context: DaemonContext) -> MultiService:
    """Build the SMTP service tree from ``config`` with a daemon's shared ``context``."""
    return build_service(
        config,
        context.reactor,
        data_dir=context.data_dir,
        tls=context.server_tls(),
        complete_endpoint=context.endpoint,
        policy=context.policy,
        limits=context.limits,
        tls_files=(context.tls.cert, context.tls.key),
    )


def combined_service(config: Config, context: DaemonContext) -> IService | None:
    """Build the ``[smtp]`` services of the combined daemon (``None`` when disabled)."""
    if not config.enabled or not (config.listen or config.submission):
        return None
    return service_from_context(config, context)


class Options(ServerOptions):
    """Command-line options of ``twistd netproto-smtp``."""

    synopsis = "[options] [--listen ENDPOINT ...] [--submission ENDPOINT ...]"
    longdesc = (
        "An ESMTP server: inbound mail for --domain to Maildir (--maildir DIR/user), "
        "submission with AUTH on --submission endpoints, relay through a durable "
        "queue (--queue) for authenticated clients and --relay-network peers. "
        "Without --listen/--submission: MX on tcp:2525 and submission on tcp:2587 "
        "and ssl:2465, all on 127.0.0.1."
    )
    optParameters: ClassVar[list[list[Any]]] = [
        ["hostname", None, "localhost", "server name in the greeting, EHLO and Received"],
        ["maildir", None, None, "Maildir base: user u gets DIR/u (default DATA/mail)"],
        ["users", None, None, "password file (default DATA/users)"],
        ["queue", None, None, "relay queue directory (default DATA/queue)"],
        ["smarthost", None, None, "relay everything through HOST:PORT"],
        ["smarthost-tls", None, "opportunistic", "opportunistic, starttls, implicit or none"],
        ["smarthost-user", None, None, "AUTH user at the smarthost"],
        ["smarthost-password-file", None, None, "file with the smarthost password"],
        ["smarthost-ca-file", None, None, "CA certificates (PEM) --smarthost-verify trusts"],
        ["postmaster", None, None, "address for reports of undeliverable bounces (default: none)"],
        *relay_options(Config),
        ["max-size", None, str(DEFAULT_MAX_MESSAGE_SIZE), "largest message accepted, in octets"],
        ["bare-lf", None, "reject", "reject or normalize bare CR/LF in commands and data"],
        ["workers", None, "1", "processes accepting connections: the master and N-1 workers"],
        ["sync", None, "auto", "Maildir commits: fs (syncfs per group), file (fsync each), auto"],
    ]
    optFlags: ClassVar[list[list[Any]]] = [
        ["allow-insecure-auth", None, "offer AUTH without TLS to loopback clients"],
        ["smarthost-verify", None, "verify the next hop's certificate"],
    ]

    def __init__(self) -> None:
        super().__init__()
        for key in ("submission", "domain", "relay-network"):
            self[key] = []

    def opt_submission(self, endpoint: str) -> None:
        """Submission endpoint, AUTH required (repeatable); ssl: is implicit TLS."""
        self["submission"].append(endpoint)

    def opt_domain(self, name: str) -> None:
        """A local domain (repeatable; default: localhost)."""
        self["domain"].append(name)

    def opt_relay_network(self, network: str) -> None:
        """A network that may relay without AUTH (repeatable; none by default)."""
        try:
            parse_network(network)
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
        self["relay-network"].append(network)

    def postOptions(self) -> None:
        """Build :attr:`config` from the options."""
        super().postOptions()
        max_size = int_option(self, "max-size")
        workers = int_option(self, "workers")
        if not 1 <= workers <= MAX_WORKERS:
            raise usage.UsageError(f"--workers: must be 1 to {MAX_WORKERS}, got {workers}")
        listen, submission = tuple(self["listen"]), tuple(self["submission"])
        if not listen and not submission:
            listen = ("tcp:2525:interface=127.0.0.1",)
            submission = ("tcp:2587:interface=127.0.0.1", "ssl:2465:interface=127.0.0.1")
        try:
            self.config = Config(
                listen=listen,
                submission=submission,
                hostname=self["hostname"],
                domains=tuple(self["domain"]) or ("localhost",),
                maildir=self["maildir"] or "",
                queue=self["queue"] or "",
                users=self["users"] or "",
                relay_networks=tuple(self["relay-network"]),
                smarthost=self["smarthost"] or "",
                smarthost_tls=self["smarthost-tls"],
                smarthost_verify=bool(self["smarthost-verify"]),
                smarthost_user=self["smarthost-user"] or "",
                smarthost_password_file=self["smarthost-password-file"] or "",
                smarthost_ca_file=self["smarthost-ca-file"] or "",
                postmaster=self["postmaster"] or "",
                max_size=max_size,
                **{name: self[name.replace("_", "-")] for name in RELAY_KNOBS},
                bare_lf=self["bare-lf"],
                allow_insecure_auth=bool(self["allow-insecure-auth"]),
                workers=workers,
                sync=self["sync"],
            )
        except ValueError as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Options) -> IService:
    """Build the service; a bad option, file or endpoint ends twistd with one line."""
    return standalone_service(options, SERVICE_NAME, partial(service_from_context, options.config))

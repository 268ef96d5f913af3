"""``twistd netproto-nntp``: the news server (reader and transit) over the embedded article store.

Also the ``[nntp]`` section of the combined ``twistd netproto`` daemon
(:class:`Config`, :func:`combined_service`): by default ``tcp:2119``
(STARTTLS) and ``ssl:2563`` (implicit TLS), both on 127.0.0.1, the store in
``<data>/news/news.db`` (groups: ``netproto news group add NAME``), users in
``<data>/users``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Any, ClassVar, Literal

from twisted.application.internet import TimerService
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
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
from netproto_twisted.core.streaming import thread_block_runner
from netproto_twisted.nntp._wire import Code, status
from netproto_twisted.nntp.feeds import FeedPeer, OutgoingFeeds, parse_feed
from netproto_twisted.nntp.lists import load_lists
from netproto_twisted.nntp.server import NNTPServerFactory, NNTPSettings
from netproto_twisted.nntp.server.moderation import DEFAULT_RELAY, Moderation, ModeratorDirectory
from netproto_twisted.nntp.server.settings import DEFAULT_MAX_ARTICLE_SIZE
from netproto_twisted.nntp.store import SQLiteNewsStore

__all__ = [
    "DEFAULT_FEED_PEERS",
    "DEFAULT_LISTEN",
    "NNTP_LIMITS",
    "SERVICE_NAME",
    "Config",
    "Options",
    "StoreService",
    "build_service",
    "combined_service",
    "makeService",
]

_log = Logger(namespace="netproto.nntp")

#: The name in error lines (``netproto-nntp: ...``).
SERVICE_NAME = "netproto-nntp"
#: Where the server listens by default: STARTTLS on 2119, implicit TLS on 2563, loopback only.
DEFAULT_LISTEN = ("tcp:2119:interface=127.0.0.1", "ssl:2563:interface=127.0.0.1")
#: Who may feed without logging in, by default: this host.
DEFAULT_FEED_PEERS = ("127.0.0.0/8", "::1/128")
#: NNTP's limits: a feed sends two commands per article (CHECK, TAKETHIS) thousands of
#: times a second, so the shared 100 commands/s would throttle it; ten minutes idle.
NNTP_LIMITS = replace(
    DEFAULT_LIMITS, idle_timeout=600.0, command_rate=50000.0, command_burst=10000
)


@dataclass(frozen=True)
class Config:
    """``[nntp]``: the news server of the combined daemon (also what the options build)."""

    enabled: bool = field(default=True, help="run the news server at all")
    listen: tuple[str, ...] = field(
        default=DEFAULT_LISTEN, help="endpoints (tcp: offers STARTTLS; ssl: is implicit TLS)"
    )
    hostname: str = field(default="localhost", help="name in the greeting")
    path_host: str = field(default="", help="name added to Path headers; '' = hostname")
    domain: str = field(default="", help="domain of the Message-IDs made; '' = hostname")
    database: str = field(default="", help="article store; '' = <data>/news/news.db")
    users: str = field(default="", help="password file (netproto user add); '' = <data>/users")
    allow_insecure_auth: bool = field(
        default=False, help="allow AUTHINFO without TLS to loopback clients"
    )
    posting_requires_auth: bool = field(default=True, help="POST needs AUTHINFO first")
    allow_posting: bool = field(default=True, help="accept POST at all")
    feed_peers: tuple[str, ...] = field(
        default=DEFAULT_FEED_PEERS,
        help="networks that may feed (IHAVE, CHECK, TAKETHIS) without logging in",
    )
    feed_users: tuple[str, ...] = field(
        default=("*",), help="logins that may feed from anywhere ('*': any login)"
    )
    feeds: tuple[FeedPeer, ...] = field(
        default=(), help="outgoing feeds ([[nntp.feeds]] tables: name, host, port, groups...)"
    )
    moderation_relay: str = field(
        default=DEFAULT_RELAY, help="SMTP relay (host:port) for posts to moderated groups"
    )
    moderation_sender: str = field(
        default="", help="envelope sender of moderator mail; '' = news@<domain>"
    )
    moderation_tls: Literal["none", "starttls", "opportunistic", "implicit"] = field(
        default="none", help="TLS towards the moderation relay"
    )
    moderator_pattern: str = field(
        default="", help="moderator address for groups without one, e.g. %s@moderators.example"
    )
    approvers: tuple[str, ...] = field(
        default=(), help="logins that may post Approved articles to moderated groups"
    )
    max_article_size: int = field(
        default=DEFAULT_MAX_ARTICLE_SIZE, minimum=1, help="largest article accepted (bytes)"
    )
    max_article_line: int = field(default=998, minimum=1, help="longest article line (bytes)")
    max_in_flight: int = field(default=256, minimum=1, help="TAKETHIS replies pending per feed")
    max_errors: int = field(default=20, minimum=1, help="bad commands before a session is closed")
    expire_days: float = field(default=0.0, help="expire articles older than this (0: never)")
    durable: bool = field(default=True, help="fsync each group commit (off: tests only)")
    compression: bool = field(default=True, help="offer COMPRESS DEFLATE (RFC 8054)")
    motd_file: str = field(default="", help="LIST MOTD text file; '' = none")
    subscriptions_file: str = field(default="", help="LIST SUBSCRIPTIONS: a group per line")
    distributions_file: str = field(default="", help="LIST DISTRIBUTIONS: name:description")
    moderators_file: str = field(default="", help="LIST MODERATORS: wildmat:address")
    distrib_pats_file: str = field(default="", help="LIST DISTRIB.PATS: weight:wildmat:value")

    def __post_init__(self) -> None:
        check_bounds(self)
        names = [feed.name for feed in self.feeds]
        if len(set(names)) != len(names):
            raise ValueError("two outgoing feeds have the same name")


class StoreService(Service):
    """Owns the article store: expires it hourly (when set) and closes it at shutdown."""

    def __init__(self, store: SQLiteNewsStore) -> None:
        self.store = store

    def stopService(self) -> Deferred[None]:
        """Commit what is queued and close the store."""
        Service.stopService(self)
        return self.store.close()


def build_service(config: Config, context: DaemonContext) -> MultiService:
    """Build the NNTP listeners and the store from ``config`` with the daemon's ``context``."""
    reactor = context.reactor
    limits = context.limits_for(NNTP_LIMITS)
    root = MultiService()
    root.setName("nntp")
    host = config.path_host or config.hostname
    database = config.database or str(context.data_dir / "news" / "news.db")
    store = SQLiteNewsStore(reactor, database, path_host=host, durable=config.durable)
    root.addService(StoreService(store))
    if config.feeds:
        feeds = OutgoingFeeds(reactor, store, database, config.feeds)
        store.filing_hook = feeds.router
        root.addService(feeds)
    domain = config.domain or config.hostname
    lists = load_lists(
        motd=config.motd_file or None,
        subscriptions=config.subscriptions_file or None,
        distributions=config.distributions_file or None,
        moderators=config.moderators_file or None,
        distrib_pats=config.distrib_pats_file or None,
    )
    moderation = Moderation(
        reactor,
        ModeratorDirectory(database, config.moderator_pattern, lists.moderators or ()),
        relay=config.moderation_relay,
        sender=config.moderation_sender or f"news@{domain}",
        tls=config.moderation_tls,
    )
    pool = reactor.getThreadPool()
    if config.expire_days:

        def expire() -> Deferred[int]:
            d = deferToThreadPool(
                reactor, pool, lambda: store.expire(default_days=config.expire_days)
            )
            d.addErrback(lambda f: _log.failure("expiry failed", f))
            return d

        root.addService(TimerService(3600.0, expire))
    authenticator = context.password_authenticator(
        limits, config.users, allow_insecure=config.allow_insecure_auth, hostname=config.hostname
    )
    settings = NNTPSettings(
        hostname=config.hostname,
        path_host=host,
        domain=domain,
        posting_requires_auth=config.posting_requires_auth,
        allow_posting=config.allow_posting,
        feed_peers=config.feed_peers,
        feed_users=config.feed_users,
        approvers=config.approvers,
        allow_insecure_auth=config.allow_insecure_auth,
        max_article_size=config.max_article_size,
        max_article_line=config.max_article_line,
        max_line_length=limits.max_line_length,
        max_in_flight=config.max_in_flight,
        max_errors=config.max_errors,
        idle_timeout=limits.idle_timeout,
        tls_handshake_timeout=limits.tls_handshake_timeout,
        command_rate=limits.command_rate,
        command_burst=limits.command_burst,
        compression=config.compression,
        lists=lists,
    )
    factory = NNTPServerFactory(
        reactor,
        store,
        authenticator,
        settings,
        tls=context.server_tls(),
        runner=thread_block_runner(reactor),
        moderation=moderation,
    )

    def refusal(reason: str) -> bytes:
        return status(Code.UNAVAILABLE, reason)

    context.guarded_listener("nntp", factory, config.listen, limits, refusal, parent=root)
    return root


combined_service = enabled_section(build_service, "nntp")


class Options(ServerOptions):
    """Command-line options of ``twistd netproto-nntp``."""

    synopsis = "[options] [--listen ENDPOINT ...]"
    longdesc = (
        "A news server (RFC 3977 reader and transit, STARTTLS, AUTHINFO USER/PASS and SASL, "
        "streaming feeds) over an embedded SQLite article store (--database FILE; groups: "
        "netproto news group add NAME). Without --listen: tcp:2119 (STARTTLS) and ssl:2563 "
        "(implicit TLS), both on 127.0.0.1."
    )
    default_listen = DEFAULT_LISTEN
    limits_defaults: ClassVar[Limits] = NNTP_LIMITS
    optParameters: ClassVar[list[list[Any]]] = [
        ["hostname", None, "localhost", "server name in the greeting"],
        ["path-host", None, None, "name added to Path headers (default: the hostname)"],
        ["domain", None, None, "domain of the Message-IDs made (default: the hostname)"],
        ["database", None, None, "article store (default DATA/news/news.db)"],
        ["passwords", None, None, "password file (default DATA/users)"],
        ["feed-peer", None, None, "network that may feed without login (repeatable)"],
        ["max-article-size", None, str(DEFAULT_MAX_ARTICLE_SIZE), "largest article (bytes)"],
        ["max-errors", None, "20", "bad commands before a session is closed"],
        ["expire-days", None, "0", "expire articles older than this (0: never)"],
        ["feeds-file", None, None, "file of outgoing feeds, one --feed specification a line"],
        ["moderation-relay", None, DEFAULT_RELAY, "SMTP relay host:port for moderator mail"],
        ["moderation-sender", None, None, "envelope sender of moderator mail"],
        ["moderator-pattern", None, None, "moderator address pattern, e.g. %s@mod.example"],
        ["motd", None, None, "file with the message of the day (LIST MOTD)"],
        ["subscriptions", None, None, "file of default groups (LIST SUBSCRIPTIONS)"],
        ["distributions", None, None, "file of name:description (LIST DISTRIBUTIONS)"],
        ["moderators", None, None, "file of wildmat:address (LIST MODERATORS)"],
        ["distrib-pats", None, None, "file of weight:wildmat:value (LIST DISTRIB.PATS)"],
        *limits_options(NNTP_LIMITS),
    ]
    optFlags: ClassVar[list[list[Any]]] = [
        ["allow-insecure-auth", None, "allow AUTHINFO without TLS to loopback clients"],
        ["open-posting", None, "allow POST without AUTHINFO"],
        ["no-posting", None, "refuse POST"],
        ["no-compress", None, "do not offer COMPRESS DEFLATE"],
    ]

    def __init__(self) -> None:
        super().__init__()
        self.feed_peers: list[str] = []
        self.feeds: list[FeedPeer] = []
        self.feed_users: list[str] = []
        self.approvers: list[str] = []

    def opt_feed_peer(self, network: str) -> None:
        """Network (CIDR) that may feed articles without logging in; may repeat."""
        self.feed_peers.append(network)

    def opt_feed(self, spec: str) -> None:
        """Outgoing feed NAME=HOST[:PORT][,OPTION...] (see docs/nntp.rst); may repeat."""
        try:
            self.feeds.append(parse_feed(spec))
        except ValueError as e:
            raise usage.UsageError(f"--feed: {e}") from None

    def opt_feed_user(self, user: str) -> None:
        """Login that may feed articles from anywhere (default: any); may repeat."""
        self.feed_users.append(user)

    def opt_approver(self, user: str) -> None:
        """Login that may post Approved articles to moderated groups; may repeat."""
        self.approvers.append(user)

    def _feeds_file(self) -> list[FeedPeer]:
        path = self["feeds-file"]
        if not path:
            return []
        try:
            with open(path, encoding="utf-8") as f:
                lines = [line.strip() for line in f]
        except OSError as e:
            raise usage.UsageError(f"--feeds-file: {e}") from None
        peers = []
        for number, line in enumerate(lines, 1):
            if line and not line.startswith("#"):
                try:
                    peers.append(parse_feed(line))
                except ValueError as e:
                    raise usage.UsageError(f"{path}:{number}: {e}") from None
        return peers

    def postOptions(self) -> None:
        """Build :attr:`config` from the options."""
        super().postOptions()
        max_errors = int_option(self, "max-errors")
        max_size = int_option(self, "max-article-size")
        try:
            expire_days = float(self["expire-days"])
            self.config = Config(
                listen=self.listen(),
                hostname=self["hostname"],
                path_host=self["path-host"] or "",
                domain=self["domain"] or "",
                database=self["database"] or "",
                users=self["passwords"] or "",
                allow_insecure_auth=bool(self["allow-insecure-auth"]),
                posting_requires_auth=not self["open-posting"],
                allow_posting=not self["no-posting"],
                feed_peers=tuple(self.feed_peers) or DEFAULT_FEED_PEERS,
                feed_users=tuple(self.feed_users) or ("*",),
                feeds=tuple(self.feeds + self._feeds_file()),
                moderation_relay=self["moderation-relay"],
                moderation_sender=self["moderation-sender"] or "",
                moderator_pattern=self["moderator-pattern"] or "",
                approvers=tuple(self.approvers),
                max_article_size=max_size,
                max_errors=max_errors,
                expire_days=expire_days,
                compression=not self["no-compress"],
                motd_file=self["motd"] or "",
                subscriptions_file=self["subscriptions"] or "",
                distributions_file=self["distributions"] or "",
                moderators_file=self["moderators"] or "",
                distrib_pats_file=self["distrib-pats"] or "",
            )
        except (ValueError, ConfigError) as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Options) -> IService:
    """Build the service; a bad option, file or endpoint ends twistd with one line."""
    return standalone_service(options, SERVICE_NAME, partial(build_service, options.config))

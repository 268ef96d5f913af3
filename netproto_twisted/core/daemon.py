"""What the combined ``netproto`` daemon hands to each protocol's service.

Each protocol's ``tap.py`` declares its section of the TOML file as a frozen
dataclass (``Config``) and a ``combined_service(config, context)`` that turns
it into a service; :class:`DaemonContext` carries what they share: the
reactor, the data directory, TLS material, access policy and limits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, cast, runtime_checkable

from twisted.application.service import IService, IServiceCollection
from twisted.internet import ssl
from twisted.internet.defer import Deferred

from netproto_twisted.core.access import (
    AccessOptionsMixin,
    AccessPolicy,
    ConnectionGuard,
    LoginDelay,
)
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import DEFAULT_LIMITS, Limits, LimitsOptionsMixin
from netproto_twisted.core.login_cache import VerifiedPasswordCache
from netproto_twisted.core.passwords import PasswordFile, thread_runner
from netproto_twisted.core.reactors import IServerReactor
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.core.service import (
    EndpointsService,
    endpoint_kind,
    exit_on_failure,
    fail,
)
from netproto_twisted.core.tls import (
    certificate_fingerprint,
    ensure_dev_certificate,
    server_context,
    tls_server_endpoint_args,
)

__all__ = [
    "DaemonContext",
    "Listening",
    "ServerOptions",
    "TLSFiles",
    "enabled_section",
    "listening_services",
    "standalone_service",
]


@runtime_checkable
class Listening(Protocol):
    """A service that can say where it listens: an EndpointsService or a protocol service."""

    name: str | None

    def when_listening(self) -> Deferred[list[tuple[str, str]]]:
        """Fire with ``(kind, address)`` per port once all listen."""


@dataclass(frozen=True)
class TLSFiles:
    """A server certificate and key, and whether they are the generated development pair."""

    cert: Path
    key: Path
    development: bool

    @classmethod
    def resolve(cls, data_dir: Path, cert: str = "", key: str = "") -> TLSFiles:
        """Use ``cert``/``key`` when given, else the development pair in ``data_dir``."""
        if cert or key:
            return cls(Path(cert or key), Path(key or cert), development=False)
        dev_cert, dev_key = ensure_dev_certificate(data_dir)
        return cls(dev_cert, dev_key, development=True)

    def fingerprint(self) -> str:
        """The certificate's SHA-256 fingerprint, as printed at start-up."""
        return certificate_fingerprint(self.cert)

    def complete_endpoint(self, text: str) -> str:
        """Complete an ``ssl:`` endpoint string that names no key with this pair.

        ``ssl:2465:interface=127.0.0.1`` gets ``:privateKey=...:certKey=...``
        appended; any other endpoint, and an ``ssl:`` one with its own
        ``privateKey=``, is returned as it is.
        """
        if endpoint_kind(text) == "ssl" and "privateKey=" not in text:
            return f"{text}:{tls_server_endpoint_args(self.cert, self.key)}"
        return text


@dataclass
class DaemonContext:
    """Shared settings for every service of one daemon."""

    reactor: IServerReactor
    data_dir: Path
    tls: TLSFiles
    policy: AccessPolicy = field(default_factory=AccessPolicy)
    limits: Limits = DEFAULT_LIMITS
    #: Web resources other sections hang on the combined daemon's HTTP server, by
    #: path (``"/RPC2"`` for XML-RPC).  Filled while the sections are built; the
    #: ``[http]`` section mounts every entry, whichever section was built first.
    web_mounts: dict[str, Any] = field(default_factory=dict)
    _context: ssl.CertificateOptions | None = field(default=None, repr=False)

    def server_tls(self) -> ssl.CertificateOptions:
        """The server TLS context (for STARTTLS), built once."""
        if self._context is None:
            self._context = server_context(self.tls.cert, self.tls.key)
        return self._context

    def endpoint(self, text: str) -> str:
        """Complete an ``ssl:`` endpoint string that names no key with this daemon's pair."""
        return self.tls.complete_endpoint(text)

    def password_authenticator(
        self,
        limits: Limits,
        users: str = "",
        *,
        allow_insecure: bool = False,
        hostname: str = "localhost",
    ) -> Authenticator:
        """The login checker a server section uses: the password file, in the thread pool.

        ``users`` is the password file (``""``: ``<data>/users``, the file
        ``netproto user add`` writes); failed logins pay :class:`LoginDelay`
        under ``limits``, which also choose the SASL mechanisms.
        """
        reactor = self.reactor
        return Authenticator.for_password_file(
            PasswordFile(users or str(self.data_dir / "users")),
            thread_runner(reactor, reactor.getThreadPool()),
            LoginDelay.from_limits(reactor, limits),
            mechanisms=limits.auth_mechanisms,
            allow_insecure=allow_insecure,
            hostname=hostname,
            cache=VerifiedPasswordCache(limits.login_cache_ttl),
        )

    def guarded_listener(
        self,
        name: str,
        factory: Any,
        endpoints: Sequence[str],
        limits: Limits,
        refusal: Callable[[str], bytes] | None = None,
        *,
        parent: IServiceCollection | None = None,
    ) -> EndpointsService | None:
        """Listen on ``endpoints`` (completed, TCP kinds only) behind the access guard.

        The guard applies the daemon's access policy and ``limits``; a
        refused connection gets ``refusal(reason)`` in the protocol's own
        words.  Returns ``None`` when there is no endpoint; the service is
        added to ``parent`` when one is given.

        :raises ConfigError: for a ``udp:`` endpoint.
        """
        listen = [self.endpoint(text) for text in endpoints]
        for text in listen:
            if endpoint_kind(text) == "udp":
                raise ConfigError(text, f"{name} does not serve UDP")
        if not listen:
            return None
        guard = ConnectionGuard(
            factory, self.reactor, policy=self.policy, limits=limits, refusal=refusal
        )
        service = EndpointsService(name, self.reactor, listen, guard=guard, backlog=limits.backlog)
        if parent is not None:
            parent.addService(service)
        return service

    def limits_for(self, defaults: Limits) -> Limits:
        """Return a protocol's ``defaults`` overridden by each limit changed from the shared one.

        The combined daemon has one ``[limits]`` table, but protocols need
        different defaults (POP3's ten-minute autologout, an FTP transfer's
        rate): a limit the configuration left at :data:`DEFAULT_LIMITS` takes
        the protocol's default, one it changed wins everywhere.
        """
        changed = {
            f.name: getattr(self.limits, f.name)
            for f in fields(Limits)
            if getattr(self.limits, f.name) != getattr(DEFAULT_LIMITS, f.name)
        }
        return replace(defaults, **changed)


def listening_services(service: IService) -> Iterator[Listening]:
    """Yield the services of a tree that report their ports (``when_listening``), depth first.

    A service that reports is not searched further: it reports for its children.
    """
    if isinstance(service, Listening):
        yield service
    elif IServiceCollection.providedBy(service):
        for child in service:
            yield from listening_services(child)


class ServerOptions(AccessOptionsMixin, LimitsOptionsMixin):
    """The options every protocol daemon (``twistd netproto-<protocol>``) shares.

    ``--listen ENDPOINT`` (repeatable; :meth:`listen` falls back to
    :attr:`default_listen`), ``--data-dir``, ``--tls-cert`` and ``--tls-key``,
    plus the access (``--allow``/``--deny``) and limit flags.  A protocol's
    ``Options`` subclasses it, sets :attr:`default_listen` (and
    ``limits_defaults``), adds its own ``optParameters``, and builds its
    ``config`` in ``postOptions`` after calling ``super().postOptions()``.
    """

    #: Endpoints used when no ``--listen`` is given.
    default_listen: ClassVar[tuple[str, ...]] = ()
    optParameters: ClassVar[list[list[Any]]] = [
        ["data-dir", None, "netproto-data", "where defaults live (data, users, dev certificate)"],
        ["tls-cert", None, None, "certificate (chain) PEM; default: a development certificate"],
        ["tls-key", None, None, "private key PEM"],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, endpoint: str) -> None:
        """Endpoint (repeatable): tcp:PORT, tcp6:..., ssl:PORT (implicit TLS), unix:/path."""
        self["listen"].append(endpoint)

    def listen(self) -> tuple[str, ...]:
        """The ``--listen`` endpoints given, or :attr:`default_listen`."""
        return tuple(self["listen"]) or self.default_listen


class Section(Protocol):
    """What :func:`enabled_section` reads of a section's configuration."""

    @property
    def enabled(self) -> bool: ...
    @property
    def listen(self) -> Sequence[str]: ...


SectionT = TypeVar("SectionT", bound=Section)


def enabled_section(
    build: Callable[[SectionT, DaemonContext], IService], section: str
) -> Callable[[SectionT, DaemonContext], IService | None]:
    """Return a ``combined_service`` that calls ``build`` for an enabled section with ``listen``.

    The combined daemon calls each protocol's ``combined_service(config,
    context)``; most run their ``build_service`` unless the ``[section]`` is
    disabled or listens nowhere (then ``None``).
    """

    def combined_service(config: SectionT, context: DaemonContext) -> IService | None:
        if not config.enabled or not config.listen:
            return None
        return build(config, context)

    combined_service.__doc__ = (
        f"Build the ``[{section}]`` services of the combined daemon (``None`` when disabled)."
    )
    return combined_service


def standalone_service(
    options: ServerOptions,
    service_name: str,
    build: Callable[[DaemonContext], IService],
) -> IService:
    """Build a protocol's own daemon (``twistd netproto-<protocol>``) as the combined one does.

    Makes a :class:`DaemonContext` from the options (twistd's reactor,
    ``--data-dir``, the TLS pair or a development certificate, the access
    policy and limits) and hands it to ``build`` -- the same function the
    protocol's ``combined_service`` calls.  A bad file, option or endpoint
    ends twistd with one line naming ``service_name``; so does a port that
    cannot be bound once the reactor runs.
    """
    from twisted.internet import reactor as global_reactor

    reactor = cast(IServerReactor, global_reactor)
    data_dir = Path(options["data-dir"])
    try:
        files = TLSFiles.resolve(data_dir, options["tls-cert"] or "", options["tls-key"] or "")
        context = DaemonContext(
            reactor=reactor,
            data_dir=data_dir,
            tls=files,
            policy=options["access_policy"],
            limits=options["limits"],
        )
        context.server_tls()  # a bad certificate fails now, in one line
        service = build(context)
    except (ConfigError, OSError) as e:
        fail(service_name, e)

    def watch() -> None:
        for listener in listening_services(service):
            exit_on_failure(reactor, listener.when_listening(), service_name)

    reactor.callWhenRunning(watch)
    return service

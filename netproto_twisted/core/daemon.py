"""What the combined ``netproto`` daemon hands to each protocol's service.

Each protocol's ``tap.py`` declares its section of the TOML file as a frozen
dataclass (``Config``) and a ``combined_service(config, context)`` that turns
it into a service; :class:`DaemonContext` carries what they share: the
reactor, the data directory, TLS material, access policy and limits.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from twisted.application.service import IService, IServiceCollection
from twisted.internet import ssl
from twisted.internet.defer import Deferred

from netproto_twisted.core.access import AccessPolicy
from netproto_twisted.core.limits import DEFAULT_LIMITS, Limits
from netproto_twisted.core.reactors import IServerReactor
from netproto_twisted.core.service import endpoint_kind
from netproto_twisted.core.tls import (
    certificate_fingerprint,
    ensure_dev_certificate,
    server_context,
    tls_server_endpoint_args,
)

__all__ = ["DaemonContext", "Listening", "TLSFiles", "listening_services"]


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
    _context: ssl.CertificateOptions | None = field(default=None, repr=False)

    def server_tls(self) -> ssl.CertificateOptions:
        """The server TLS context (for STARTTLS), built once."""
        if self._context is None:
            self._context = server_context(self.tls.cert, self.tls.key)
        return self._context

    def endpoint(self, text: str) -> str:
        """Complete an ``ssl:`` endpoint string that names no key with this daemon's pair."""
        return self.tls.complete_endpoint(text)


def listening_services(service: IService) -> Iterator[Listening]:
    """Yield the services of a tree that report their ports (``when_listening``), depth first.

    A service that reports is not searched further: it reports for its children.
    """
    if isinstance(service, Listening):
        yield service
    elif IServiceCollection.providedBy(service):
        for child in service:
            yield from listening_services(child)

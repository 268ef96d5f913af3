"""The NNTP server's Twisted side: a thin Protocol over :class:`NNTPConnection`, its factory."""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.internet.interfaces import IReactorTime

from netproto_twisted.core.connection import ConnectionProtocol, ReplyConsumer
from netproto_twisted.core.framing import LineEndings
from netproto_twisted.core.lineproto import LineFactory
from netproto_twisted.core.net import is_loopback, peer_host
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.core.streaming import BlockRunner, thread_block_runner
from netproto_twisted.nntp.interfaces import INewsStore
from netproto_twisted.nntp.server.connection import NNTPConnection
from netproto_twisted.nntp.server.settings import NNTPSettings

__all__ = ["NNTPServerFactory", "NNTPServerProtocol"]


class NNTPServerProtocol(ConnectionProtocol):
    """One NNTP session: the plumbing around an :class:`NNTPConnection`."""

    factory: NNTPServerFactory
    connection: NNTPConnection

    def configure(self) -> None:
        """Line limit, line endings (LF accepted in commands), timeouts, command rate."""
        self.apply_settings(self.factory.settings)
        self.line_endings = LineEndings.ACCEPT_LF

    def make_connection(self) -> NNTPConnection:
        """The session object, told the peer's facts and whether TLS is on."""
        factory = self.factory
        host = peer_host(self.transport)
        return NNTPConnection(
            factory.settings,
            factory.store,
            ReplyConsumer(self),
            factory.runner,
            now=factory.reactor.seconds,
            peer=host or "",
            peer_is_loopback=host is None or is_loopback(host),
            feed_peer=factory.is_feed_peer(host),
            secure=self.is_secure,
            tls=factory.tls,
            authenticator=factory.authenticator,
            moderation=factory.moderation,
        )


class NNTPServerFactory(LineFactory[NNTPServerProtocol]):
    """Builds :class:`NNTPServerProtocol` sessions sharing the store, TLS context and logins.

    :param reactor: the clock; its thread pool reads overview blocks.
    :param store: the article store (:class:`~netproto_twisted.nntp.store.SQLiteNewsStore`).
    :param authenticator: checks AUTHINFO (``None``: nobody can log in).
    :param settings: :class:`NNTPSettings`.
    :param tls: server TLS context for STARTTLS, or ``None``.
    :param runner: runs blocking reads (default: the reactor's thread pool).
    :param moderation: mails posts to moderated groups to their moderators
        (:class:`~netproto_twisted.nntp.server.moderation.Moderation`; ``None``: refused).
    """

    protocol = NNTPServerProtocol

    def __init__(
        self,
        reactor: IReactorTime,
        store: INewsStore,
        authenticator: Authenticator | None = None,
        settings: NNTPSettings | None = None,
        *,
        tls: Any | None = None,
        runner: BlockRunner | None = None,
        moderation: Any | None = None,
    ) -> None:
        super().__init__(reactor)
        self.reactor = reactor
        self.store = store
        self.authenticator = authenticator
        self.settings = settings if settings is not None else NNTPSettings()
        self.tls = tls
        self.runner = runner if runner is not None else thread_block_runner(reactor)
        self.moderation = moderation
        self._feed_networks = [
            ipaddress.ip_network(n, strict=False) for n in self.settings.feed_peers
        ]

    def is_feed_peer(self, host: str | None) -> bool:
        """Whether ``host`` may feed without logging in (a unix socket peer may)."""
        if host is None:
            return True
        try:
            address = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return False
        return any(address in n for n in self._feed_networks)

    def __repr__(self) -> str:
        return f"<NNTPServerFactory {self.settings.hostname}>"

"""The IMAP server's Twisted side: a thin Protocol over :class:`IMAPConnection`, its factory."""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime

from netproto_twisted.core.connection import ConnectionProtocol, ReplyConsumer
from netproto_twisted.core.framing import LineEndings
from netproto_twisted.core.lineproto import LineFactory
from netproto_twisted.core.net import is_loopback, peer_host
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.imap4.server.connection import IMAPConnection
from netproto_twisted.imap4.server.fetch import MessageCache
from netproto_twisted.imap4.server.notify import ChangeHub
from netproto_twisted.imap4.server.prefetch import Prefetcher
from netproto_twisted.imap4.server.settings import IMAPSettings
from netproto_twisted.mailstore.maildir import MaildirStore

__all__ = ["IMAPServerFactory", "IMAPServerProtocol"]


class IMAPServerProtocol(ConnectionProtocol):
    """One IMAP session: the plumbing around an :class:`IMAPConnection`."""

    factory: IMAPServerFactory
    connection: IMAPConnection

    def configure(self) -> None:
        """Line limit, line endings (LF accepted), timeouts and command rate from the settings."""
        self.apply_settings(self.factory.settings)
        self.line_endings = LineEndings.ACCEPT_LF

    def make_connection(self) -> IMAPConnection:
        """The session object, told the peer's facts and whether TLS is already on."""
        factory = self.factory
        host = peer_host(self.transport)
        return IMAPConnection(
            factory.settings,
            factory.store,
            factory.hub,
            factory.cache,
            peer=host or "",
            peer_is_loopback=host is None or is_loopback(host),
            secure=self.is_secure,
            tls=factory.tls,
            authenticator=factory.authenticator,
            consumer=ReplyConsumer(self),
            prefetcher=factory.prefetcher,
        )


class IMAPServerFactory(LineFactory[IMAPServerProtocol]):
    """Builds :class:`IMAPServerProtocol` sessions sharing the store, logins and change hub.

    :param reactor: the clock for timers and change notification.
    :param store: the users' Maildir++ trees (:class:`~netproto_twisted.mailstore.MaildirStore`).
    :param authenticator: checks LOGIN and AUTHENTICATE (``None``: nobody can log in).
    :param settings: :class:`IMAPSettings`.
    :param tls: server TLS context for STARTTLS, or ``None`` (not offered).
    :param hub: change notification (default: one of its own, watching the files).
    :param cache: message facts (default: one of its own).
    :param prefetcher: reads folders ahead into ``cache`` when sessions open them
        (:class:`~netproto_twisted.imap4.server.prefetch.Prefetcher`; ``None``: not done).
    """

    protocol = IMAPServerProtocol

    def __init__(
        self,
        reactor: IReactorTime,
        store: MaildirStore,
        authenticator: Authenticator | None,
        settings: IMAPSettings | None = None,
        *,
        tls: Any | None = None,
        hub: ChangeHub | None = None,
        cache: MessageCache | None = None,
        prefetcher: Prefetcher | None = None,
    ) -> None:
        super().__init__(reactor)
        self.store = store
        self.authenticator = authenticator
        self.settings = settings if settings is not None else IMAPSettings()
        self.tls = tls
        self.hub = hub if hub is not None else ChangeHub(reactor)
        self.cache = cache if cache is not None else MessageCache()
        self.prefetcher = prefetcher

    def __repr__(self) -> str:
        return f"<IMAPServerFactory {self.settings.hostname}>"

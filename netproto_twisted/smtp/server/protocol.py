"""The ESMTP server's Twisted side: a thin Protocol over :class:`SMTPConnection`, and its factory.

:class:`SMTPServerProtocol` only configures the connection plumbing from the
listener's settings, builds the sans-I/O
:class:`~netproto_twisted.smtp.server.connection.SMTPConnection` with the
peer's facts, and lets :class:`~netproto_twisted.core.connection.ConnectionProtocol`
feed it and carry out what it says: pipelined commands are handled strictly
one at a time and in order (input is held while a policy lookup, a SASL
check or a commit is pending); DATA and BDAT are streamed to the delivery
sinks as they arrive; ``250`` after the data is said only when every sink's
``commit()`` fired.
"""

from __future__ import annotations

from typing import Any

from twisted.cred.portal import Portal
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator, IReactorTime

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.connection import ConnectionProtocol
from netproto_twisted.core.framing import LineEndings
from netproto_twisted.core.lineproto import LineFactory
from netproto_twisted.core.passwords import IScramStore
from netproto_twisted.smtp.interfaces import IRecipientPolicy
from netproto_twisted.smtp.server.auth import authenticator
from netproto_twisted.smtp.server.connection import SMTPConnection
from netproto_twisted.smtp.server.replies import in_networks, peer_facts
from netproto_twisted.smtp.server.settings import ServerSettings

__all__ = ["SMTPServerFactory", "SMTPServerProtocol"]


class SMTPServerProtocol(ConnectionProtocol):
    """One ESMTP server session: the plumbing around an :class:`SMTPConnection`."""

    factory: SMTPServerFactory
    connection: SMTPConnection

    @property
    def settings(self) -> ServerSettings:
        """The factory's :class:`ServerSettings`."""
        return self.factory.settings

    def configure(self) -> None:
        """Line limits, bare-LF handling, timeouts and the command rate from the settings."""
        settings = self.factory.settings
        self.apply_settings(settings)
        if settings.bare_lf == "normalize":
            self.line_endings = LineEndings.NORMALIZE

    def make_connection(self) -> SMTPConnection:
        """The session object, told the peer's facts and whether TLS is already on."""
        factory = self.factory
        peer, address, loopback = peer_facts(self.transport.getPeer())
        return SMTPConnection(
            factory.settings,
            factory.policy,
            peer=peer,
            peer_is_loopback=loopback,
            in_relay_network=in_networks(address, factory.settings.relay_networks),
            secure=self.is_secure,
            tls=factory.tls,
            auth=factory.authenticator,
        )

    @property
    def authenticated_as(self) -> str | None:
        """The user AUTH authenticated, or ``None``."""
        return self.connection.authenticated_as

    @property
    def peer_is_loopback(self) -> bool:
        """Whether the peer is on this host."""
        return self.connection.peer_is_loopback

    @property
    def in_relay_network(self) -> bool:
        """Whether the peer is in ``relay_networks``."""
        return self.connection.in_relay_network


class SMTPServerFactory(LineFactory[SMTPServerProtocol]):
    """Builds :class:`SMTPServerProtocol` sessions sharing one policy, TLS context and Portal.

    :param reactor: the clock (and reactor) for timers.
    :param policy: the :class:`IRecipientPolicy` (sender checks and routing).
    :param settings: :class:`ServerSettings`.
    :param tls: server TLS options for STARTTLS, or ``None`` (not offered).
    :param portal: a Portal for AUTH (``None``: no AUTH).
    :param scram_store: needed to offer SCRAM-SHA-256.
    :param login_delay: the failed-AUTH delay per address (shared across listeners).
    """

    protocol = SMTPServerProtocol

    def __init__(
        self,
        reactor: IReactorTime,
        policy: IRecipientPolicy,
        settings: ServerSettings | None = None,
        *,
        tls: IOpenSSLServerConnectionCreator | Any | None = None,
        portal: Portal | None = None,
        scram_store: IScramStore | None = None,
        login_delay: LoginDelay | None = None,
    ) -> None:
        super().__init__(reactor)
        self.policy = policy
        self.settings = settings if settings is not None else ServerSettings()
        self.tls = tls
        self.portal = portal
        self.scram_store = scram_store
        self.login_delay = login_delay if login_delay is not None else LoginDelay(reactor)
        #: The listener's SASL policy every session's AUTH uses, or ``None`` without a portal.
        self.authenticator = (
            authenticator(portal, self.login_delay, self.settings, scram_store=scram_store)
            if portal is not None
            else None
        )

    def __repr__(self) -> str:
        return f"<SMTPServerFactory {self.settings.hostname}>"

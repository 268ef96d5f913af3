"""The POP3 server's Twisted side: a thin Protocol over :class:`POP3Connection`, its factory."""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime

from netproto_twisted.core.connection import ConnectionProtocol, ReplyConsumer
from netproto_twisted.core.framing import LineEndings
from netproto_twisted.core.lineproto import LineFactory
from netproto_twisted.core.net import is_loopback, peer_host
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.core.streaming import BlockRunner, thread_block_runner
from netproto_twisted.pop3.interfaces import IMaildropStore
from netproto_twisted.pop3.server.connection import POP3Connection
from netproto_twisted.pop3.server.settings import POP3Settings

__all__ = ["POP3ServerFactory", "POP3ServerProtocol"]


class POP3ServerProtocol(ConnectionProtocol):
    """One POP3 session: the plumbing around a :class:`POP3Connection`."""

    factory: POP3ServerFactory
    connection: POP3Connection

    def configure(self) -> None:
        """Line limit, line endings (LF accepted), timeouts and command rate from the settings."""
        self.apply_settings(self.factory.settings)
        self.max_line_length -= 2
        self.line_endings = LineEndings.ACCEPT_LF

    def make_connection(self) -> POP3Connection:
        """The session object, told the peer's facts and whether TLS is already on."""
        factory = self.factory
        host = peer_host(self.transport)  # None: a unix socket, which is local
        return POP3Connection(
            factory.settings,
            factory.maildrops,
            ReplyConsumer(self),
            factory.runner,
            peer=host or "",
            peer_is_loopback=host is None or is_loopback(host),
            secure=self.is_secure,
            tls=factory.tls,
            authenticator=factory.authenticator,
        )


class POP3ServerFactory(LineFactory[POP3ServerProtocol]):
    """Builds :class:`POP3ServerProtocol` sessions sharing the store, TLS context and logins.

    :param reactor: the clock for timers, and the thread pool for file reads.
    :param maildrops: opens users' maildrops
        (:class:`~netproto_twisted.pop3.maildrop.MaildirMaildrops`).
    :param authenticator: checks USER/PASS and AUTH (``None``: nobody can log in).
    :param settings: :class:`POP3Settings`.
    :param tls: server TLS context for STLS, or ``None`` (STLS not offered).
    :param runner: runs blocking reads (default: the reactor's thread pool).
    """

    protocol = POP3ServerProtocol

    def __init__(
        self,
        reactor: IReactorTime,
        maildrops: IMaildropStore,
        authenticator: Authenticator | None,
        settings: POP3Settings | None = None,
        *,
        tls: Any | None = None,
        runner: BlockRunner | None = None,
    ) -> None:
        super().__init__(reactor)
        self.maildrops = maildrops
        self.authenticator = authenticator
        self.settings = settings if settings is not None else POP3Settings()
        self.tls = tls
        self.runner = runner if runner is not None else thread_block_runner(reactor)

    def __repr__(self) -> str:
        return f"<POP3ServerFactory {self.settings.hostname}>"

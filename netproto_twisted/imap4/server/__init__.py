"""The IMAP server: the session object, its Protocol and factory, settings, change hub."""

from netproto_twisted.imap4.server.commands import IMAP_COMMANDS, State
from netproto_twisted.imap4.server.connection import IMAPConnection
from netproto_twisted.imap4.server.fetch import MessageCache
from netproto_twisted.imap4.server.notify import ChangeHub
from netproto_twisted.imap4.server.protocol import IMAPServerFactory, IMAPServerProtocol
from netproto_twisted.imap4.server.settings import DEFAULT_IDLE_TIMEOUT, IMAPSettings

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "IMAP_COMMANDS",
    "ChangeHub",
    "IMAPConnection",
    "IMAPServerFactory",
    "IMAPServerProtocol",
    "IMAPSettings",
    "MessageCache",
    "State",
]

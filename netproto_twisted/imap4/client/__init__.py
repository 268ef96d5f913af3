"""The IMAP client: :func:`connect_imap` and :class:`IMAPClient`."""

from netproto_twisted.imap4.client.client import (
    DEFAULT_PORT,
    DEFAULT_TLS_PORT,
    ConditionalStore,
    FetchChanges,
    IdleSession,
    IMAPClient,
    MailboxEntry,
    MailboxInfo,
    connect_imap,
)
from netproto_twisted.imap4.client.protocol import IMAPClientProtocol, Literal, Reply

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "ConditionalStore",
    "FetchChanges",
    "IMAPClient",
    "IMAPClientProtocol",
    "IdleSession",
    "Literal",
    "MailboxEntry",
    "MailboxInfo",
    "Reply",
    "connect_imap",
]

"""IMAP4rev1/rev2 (RFC 3501, RFC 9051): server and client over the shared Maildir++ store.

- :mod:`netproto_twisted.imap4.wire`: the sans-I/O command parser, response
  serialiser and response parser;
- :mod:`netproto_twisted.imap4.server`: :class:`IMAPServerFactory` and the
  session object :class:`IMAPConnection`;
- :mod:`netproto_twisted.imap4.client`: :func:`connect_imap` and :class:`IMAPClient`;
- :mod:`netproto_twisted.imap4.tap`: ``twistd netproto-imap`` and the ``[imap]`` section.
"""

from netproto_twisted.imap4.client import (
    IdleSession,
    IMAPClient,
    IMAPClientProtocol,
    MailboxEntry,
    MailboxInfo,
    connect_imap,
)
from netproto_twisted.imap4.errors import (
    IMAPConnectionLost,
    IMAPError,
    IMAPProtocolError,
    IMAPReplyError,
)
from netproto_twisted.imap4.server import (
    ChangeHub,
    IMAPConnection,
    IMAPServerFactory,
    IMAPServerProtocol,
    IMAPSettings,
    MessageCache,
)
from netproto_twisted.imap4.wire import (
    Address,
    BodyStructure,
    Envelope,
    mutf7_decode,
    mutf7_encode,
)

__all__ = [
    "Address",
    "BodyStructure",
    "ChangeHub",
    "Envelope",
    "IMAPClient",
    "IMAPClientProtocol",
    "IMAPConnection",
    "IMAPConnectionLost",
    "IMAPError",
    "IMAPProtocolError",
    "IMAPReplyError",
    "IMAPServerFactory",
    "IMAPServerProtocol",
    "IMAPSettings",
    "IdleSession",
    "MailboxEntry",
    "MailboxInfo",
    "MessageCache",
    "connect_imap",
    "mutf7_decode",
    "mutf7_encode",
]

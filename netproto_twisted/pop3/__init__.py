"""POP3 (RFC 1939, CAPA, STLS, SASL, UIDL, TOP, UTF8): a server over the Maildir store, a client.

Server: :class:`POP3ServerFactory` over a :class:`MaildirMaildrops` (the
Maildir++ tree SMTP delivers into, locked per session as Dovecot locks it),
logins through core's :class:`~netproto_twisted.core.sasl_exchange.Authenticator`.
Client: :func:`connect_pop3` gives a :class:`POP3Client` whose methods are
poplib's, as Deferreds.  See docs/pop3.rst.
"""

from __future__ import annotations

from netproto_twisted.pop3.client import (
    DEFAULT_PORT,
    DEFAULT_TLS_PORT,
    POP3Client,
    POP3ClientProtocol,
    connect_pop3,
)
from netproto_twisted.pop3.errors import (
    MaildropInUse,
    POP3ConnectionLost,
    POP3Error,
    POP3ProtocolError,
    POP3ReplyError,
)
from netproto_twisted.pop3.interfaces import DropMessage, IMaildrop, IMaildropStore
from netproto_twisted.pop3.maildrop import MaildirMaildrop, MaildirMaildrops
from netproto_twisted.pop3.server import (
    POP3_COMMANDS,
    POP3Connection,
    POP3ServerFactory,
    POP3ServerProtocol,
    POP3Settings,
    State,
)

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "POP3_COMMANDS",
    "DropMessage",
    "IMaildrop",
    "IMaildropStore",
    "MaildirMaildrop",
    "MaildirMaildrops",
    "MaildropInUse",
    "POP3Client",
    "POP3ClientProtocol",
    "POP3Connection",
    "POP3ConnectionLost",
    "POP3Error",
    "POP3ProtocolError",
    "POP3ReplyError",
    "POP3ServerFactory",
    "POP3ServerProtocol",
    "POP3Settings",
    "State",
    "connect_pop3",
]

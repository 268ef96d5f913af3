"""POP3 errors: the server's ``-ERR`` replies (client side) and the store's refusals (server side).

Every ``-ERR`` a client receives is a :class:`POP3ReplyError`, a
:class:`~netproto_twisted.core.errors.ErrReplyError` carrying the text and the
RFC 2449 response code (``IN-USE``, ``LOGIN-DELAY``, ``SYS/TEMP``,
``SYS/PERM``, ``AUTH``, ``UTF8``): the counterpart of :class:`poplib.error_proto`.
"""

from __future__ import annotations

from netproto_twisted.core.errors import ErrReplyError, NetprotoError, RemoteProtocolError

__all__ = [
    "MaildropInUse",
    "POP3ConnectionLost",
    "POP3Error",
    "POP3ProtocolError",
    "POP3ReplyError",
]


class POP3Error(NetprotoError):
    """Base class of the POP3 package's own errors."""


class POP3ReplyError(ErrReplyError, POP3Error):
    """The server answered ``-ERR [CODE] text``.

    :ivar text: the text after the response code.
    :ivar response_code: ``"IN-USE"``, ``"AUTH"``, ``"SYS/TEMP"``... or ``None``.
    """


class POP3ProtocolError(RemoteProtocolError, POP3Error):
    """The server's reply is not POP3 (neither ``+OK`` nor ``-ERR``, a bad listing line)."""


class POP3ConnectionLost(POP3Error):
    """The connection closed before the reply came."""


class MaildropInUse(POP3Error):
    """Another session holds the maildrop's lock (the server answers ``-ERR [IN-USE]``)."""

"""The SMTP server: a command table, a sans-I/O session object, a thin Protocol.

- :class:`SMTPConnection` (``connection``): one session, sans-I/O: the state,
  the framing and every command's handler, dispatched through the command
  table :data:`~netproto_twisted.smtp.SMTP_COMMANDS`;
- :class:`SMTPServerProtocol` and :class:`SMTPServerFactory` (``protocol``):
  the Twisted side, on :class:`~netproto_twisted.core.connection.ConnectionProtocol`;
- ``auth``: AUTH on core's SASL exchange driver (:func:`authenticator` builds
  a listener's :class:`~netproto_twisted.core.sasl_exchange.Authenticator`),
  the realm and the password-file Portal (from :mod:`netproto_twisted.core.auth`);
- ``message``: one mail transaction (:class:`Transaction`); ``replies``: the
  replies and their caches; ``settings``: :class:`ServerSettings`.
"""

from __future__ import annotations

from netproto_twisted.smtp.server.auth import SMTPRealm, authenticator, password_portal
from netproto_twisted.smtp.server.connection import SMTPConnection
from netproto_twisted.smtp.server.message import Transaction
from netproto_twisted.smtp.server.protocol import SMTPServerFactory, SMTPServerProtocol
from netproto_twisted.smtp.server.settings import BareLF, IAuthenticated, ServerSettings

__all__ = [
    "BareLF",
    "IAuthenticated",
    "SMTPConnection",
    "SMTPRealm",
    "SMTPServerFactory",
    "SMTPServerProtocol",
    "ServerSettings",
    "Transaction",
    "authenticator",
    "password_portal",
]

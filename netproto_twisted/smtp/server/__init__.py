"""The SMTP server: settings, the session, STARTTLS/AUTH, the Protocol and its factory."""

from __future__ import annotations

from netproto_twisted.smtp.server.auth import SMTPRealm, password_portal
from netproto_twisted.smtp.server.protocol import SMTPServerFactory, SMTPServerProtocol
from netproto_twisted.smtp.server.session import BareLF, IAuthenticated, ServerSettings

__all__ = [
    "BareLF",
    "IAuthenticated",
    "SMTPRealm",
    "SMTPServerFactory",
    "SMTPServerProtocol",
    "ServerSettings",
    "password_portal",
]

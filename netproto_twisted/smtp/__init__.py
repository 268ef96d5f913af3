"""SMTP (RFC 5321 and its extensions): the sans-I/O core shared by server, client and relay.

Public names are re-exported here from the subpackages, each with its own
face: :mod:`~netproto_twisted.smtp.wire` (the sans-I/O wire format),
:mod:`~netproto_twisted.smtp.server`, :mod:`~netproto_twisted.smtp.client` and
:mod:`~netproto_twisted.smtp.relay` (the durable queue and its relay).
Exceptions live in :mod:`netproto_twisted.smtp.errors`, the backends'
contracts in :mod:`netproto_twisted.smtp.interfaces` and their implementations
in :mod:`netproto_twisted.smtp.delivery`.
"""

from __future__ import annotations

from netproto_twisted.smtp import wire
from netproto_twisted.smtp.client import (
    SendResult,
    SMTPClient,
    connect_smtp,
    send_mail,
)
from netproto_twisted.smtp.delivery import (
    CapturedMessage,
    CaptureTarget,
    DefaultPolicy,
    MaildirTarget,
)
from netproto_twisted.smtp.errors import (
    CommandError,
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPDataError,
    SMTPError,
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPResponseError,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTLSRequired,
)
from netproto_twisted.smtp.interfaces import (
    Envelope,
    IDeliveryTarget,
    IMessageSink,
    IRecipientPolicy,
    SessionInfo,
)
from netproto_twisted.smtp.relay import (
    EntryNotFound,
    QueueEntry,
    RecipientState,
    Relay,
    RelaySettings,
    Spool,
    SpoolDirectory,
)
from netproto_twisted.smtp.server import ServerSettings, SMTPServerFactory, SMTPServerProtocol
from netproto_twisted.smtp.wire import *  # noqa: F403 (the wire format's names, listed in wire.__all__)

__all__ = [
    *wire.__all__,
    "CommandError",
    "SMTPAuthenticationError",
    "SMTPClient",
    "SMTPConnectError",
    "SMTPDataError",
    "SMTPError",
    "SMTPHeloError",
    "SMTPNotSupportedError",
    "SMTPRecipientsRefused",
    "SMTPResponseError",
    "SMTPSenderRefused",
    "SMTPServerDisconnected",
    "SMTPTLSRequired",
    "SendResult",
    "connect_smtp",
    "send_mail",
    "CapturedMessage",
    "CaptureTarget",
    "DefaultPolicy",
    "MaildirTarget",
    "Envelope",
    "IDeliveryTarget",
    "IMessageSink",
    "IRecipientPolicy",
    "SessionInfo",
    "SMTPServerFactory",
    "SMTPServerProtocol",
    "ServerSettings",
    "EntryNotFound",
    "QueueEntry",
    "RecipientState",
    "Relay",
    "RelaySettings",
    "Spool",
    "SpoolDirectory",
]

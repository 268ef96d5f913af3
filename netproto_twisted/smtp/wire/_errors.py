"""SMTP's exception classes; their public home is :mod:`netproto_twisted.smtp.errors`."""


from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from netproto_twisted.core.errors import RemoteProtocolError
from netproto_twisted.smtp.wire._codes import AUTH_REQUIRED, NOT_IMPLEMENTED, SERVICE_UNAVAILABLE
from netproto_twisted.smtp.wire._reply import Reply, SMTPError, SMTPResponseError

__all__ = [
    "CommandError",
    "SMTPAuthenticationError",
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
]


class SMTPConnectError(SMTPResponseError):
    """The server's greeting was not ``220`` (it refused the session)."""


class SMTPHeloError(SMTPResponseError):
    """The server refused EHLO/HELO."""


class SMTPSenderRefused(SMTPResponseError):
    """The server refused ``MAIL FROM``; ``sender`` is the refused address."""

    def __init__(self, code: int, text: str, sender: str) -> None:
        super().__init__(code, text)
        self.args = (code, text, sender)
        self.sender = sender


class SMTPRecipientsRefused(SMTPResponseError):
    """Every recipient was refused (as in :mod:`smtplib`).

    ``recipients`` maps each refused address to its ``(code, text)``.  The
    error's own ``code`` and ``text`` are those of the first *temporary*
    refusal if any recipient was refused temporarily (so that the whole
    error is a :class:`TemporaryError` and the message is retried), else of
    the first refusal.
    """

    def __init__(self, recipients: Mapping[str, tuple[int, str]]) -> None:
        code, text = self._summary(recipients)
        super().__init__(code, text)
        self.args = (dict(recipients),)
        self.recipients = dict(recipients)

    @classmethod
    def _code_of(cls, *args: Any, **kwargs: Any) -> int:
        recipients = args[0] if args else kwargs["recipients"]
        return cls._summary(recipients)[0]

    @staticmethod
    def _summary(recipients: Mapping[str, tuple[int, str]]) -> tuple[int, str]:
        if not recipients:
            raise ValueError("SMTPRecipientsRefused needs at least one refused recipient")
        refusals = list(recipients.values())
        for code, text in refusals:
            if 400 <= code < 500:
                return code, text
        return refusals[0]

    def __str__(self) -> str:
        return f"all {len(self.recipients)} recipient(s) refused: {self.code} {self.text}"


class SMTPDataError(SMTPResponseError):
    """The server refused DATA/BDAT or the message after its end."""


class SMTPAuthenticationError(SMTPResponseError):
    """The server refused authentication (e.g. ``535 5.7.8``)."""


class _DefaultCodeError(SMTPResponseError):
    """An error mostly raised locally: built as ``(text, code=default_code)``."""

    default_code: ClassVar[int] = NOT_IMPLEMENTED

    def __init__(self, text: str, code: int | None = None) -> None:
        code = self.default_code if code is None else code
        super().__init__(code, text)
        self.args = (text, code)

    @classmethod
    def _code_of(cls, *args: Any, **kwargs: Any) -> int:
        code = args[1] if len(args) > 1 else kwargs.get("code")
        return cls.default_code if code is None else int(code)


class SMTPNotSupportedError(_DefaultCodeError):
    """The server does not offer what was asked for (an extension, a mechanism).

    Raised locally when the EHLO reply lacks the extension, or from a
    ``502``/``504`` reply; ``code`` defaults to ``502``.
    """

    default_code = NOT_IMPLEMENTED


class SMTPServerDisconnected(_DefaultCodeError):
    """The connection closed before the exchange finished (or after a ``421``).

    ``code`` defaults to ``421``, so this is a :class:`TemporaryError`: a relay
    retries the message later.
    """

    default_code = SERVICE_UNAVAILABLE

    def __init__(self, text: str = "connection lost", code: int | None = None) -> None:
        super().__init__(text, code)


class SMTPTLSRequired(_DefaultCodeError):
    """TLS is required but was not offered or could not be set up.

    ``code`` defaults to ``530`` (RFC 3207 "Must issue a STARTTLS command
    first"); a relay that wants to retry later passes a 4xx code such as
    ``454``.
    """

    default_code = AUTH_REQUIRED


class CommandError(SMTPError, RemoteProtocolError):
    """A command from the peer that cannot be accepted: the server sends ``reply``.

    Raised by the server-side parsers
    (:func:`~netproto_twisted.smtp.parse_command`,
    :func:`~netproto_twisted.smtp.parse_mail_from` ...).

    :ivar reply: the :class:`~netproto_twisted.smtp.Reply` to send to the peer.
    :ivar code: ``reply.code``.
    :ivar text: the reply text, lines joined with ``\\n``.
    """

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply)
        self.reply = reply
        self.code = reply.code
        self.text = reply.status_text

    def __str__(self) -> str:
        return str(self.reply)

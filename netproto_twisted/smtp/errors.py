"""SMTP exceptions, with the names :mod:`smtplib` made familiar.

Every exception that stands for a failure reply is a
:class:`SMTPResponseError` and carries ``code`` and ``text`` (and, when it came
from a parsed reply, the :class:`~netproto_twisted.smtp.Reply` as ``reply``).
Its class also follows the code: constructing any of them with a 4xx code
gives an instance that is also a
:class:`~netproto_twisted.core.errors.TemporaryError`, with a 5xx code one
that is also a :class:`~netproto_twisted.core.errors.PermanentError`::

    >>> e = SMTPSenderRefused(550, "5.7.1 no", "a@example.org")
    >>> isinstance(e, SMTPSenderRefused), isinstance(e, PermanentError)
    (True, True)

so ``except PermanentError`` catches every 5xx failure, ``except
TemporaryError`` every 4xx one (the relay retries those), whatever step
produced it.  (Each class has two hidden subclasses, ``<Name>[4xx]`` and
``<Name>[5xx]``, which the constructor picks.)

:class:`CommandError` is the server's side: a command from the peer that
cannot be accepted, carrying the :class:`~netproto_twisted.smtp.Reply` to
send back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from netproto_twisted.core.errors import (
    NetprotoError,
    PermanentError,
    ProtocolError,
    RemoteProtocolError,
    TemporaryError,
)
from netproto_twisted.smtp._codes import AUTH_REQUIRED, NOT_IMPLEMENTED, SERVICE_UNAVAILABLE

if TYPE_CHECKING:
    from typing_extensions import Self

    from netproto_twisted.smtp._wire import Reply

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


class SMTPError(NetprotoError):
    """Base class of every SMTP error."""


class SMTPResponseError(SMTPError, ProtocolError):
    """A failure reply from an SMTP peer (or a local condition given a reply code).

    :ivar code: the 3-digit reply code.
    :ivar text: the reply text (lines joined with ``\\n``, enhanced status code kept).
    :ivar reply: the parsed :class:`~netproto_twisted.smtp.Reply`, if there was one.
    """

    _variants: ClassVar[dict[int, type[SMTPResponseError]]] = {}
    _variant_of: ClassVar[type[SMTPResponseError] | None] = None
    reply: Reply | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_variant_of" in cls.__dict__:
            return
        cls._variants = {}
        for digit, base in ((4, TemporaryError), (5, PermanentError)):
            variant = type(
                f"{cls.__name__}[{digit}xx]",
                (cls, base),
                {"_variant_of": cls, "__module__": cls.__module__, "__doc__": cls.__doc__},
            )
            variant.__qualname__ = f"{cls.__qualname__}[{digit}xx]"
            cls._variants[digit] = variant

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        """Pick the 4xx or 5xx variant of ``cls`` that fits the reply code."""
        target: type[SMTPResponseError] = cls
        if cls._variant_of is None:
            target = cls._variants.get(cls._code_of(*args, **kwargs) // 100, cls)
        return super().__new__(target)  # type: ignore[return-value]

    @classmethod
    def _code_of(cls, code: int, *args: Any, **kwargs: Any) -> int:
        """Return the reply code that the constructor arguments give."""
        return code

    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)

    def __reduce__(self) -> tuple[Any, ...]:
        # Unpickle through the public class so that __new__ picks the variant again.
        return (type(self)._variant_of or type(self), self.args, self.__dict__)

    @property
    def temporary(self) -> bool:
        """Whether the code is 4xx: the same request may succeed later."""
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        """Whether the code is 5xx: repeating the request will not help."""
        return 500 <= self.code < 600


# The base class itself gets variants too (``error_from_reply`` builds it).
SMTPResponseError._variants = {
    4: type(
        "SMTPResponseError[4xx]",
        (SMTPResponseError, TemporaryError),
        {"_variant_of": SMTPResponseError, "__module__": __name__},
    ),
    5: type(
        "SMTPResponseError[5xx]",
        (SMTPResponseError, PermanentError),
        {"_variant_of": SMTPResponseError, "__module__": __name__},
    ),
}


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

"""An SMTP reply, and the exception a failure reply becomes.

:class:`Reply` is the value both sides exchange (parsed by the client,
sent by the server); :class:`SMTPResponseError` (public in
:mod:`netproto_twisted.smtp.wire._errors`) is a failure reply raised, and
:func:`error_from_reply` / :meth:`Reply.raise_for_status` turn one into the
other.  They live together, below both :mod:`~netproto_twisted.smtp.wire._errors`
and ``_wire``, so that neither of those needs the other to say what a reply
is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from netproto_twisted.core.errors import (
    LocalProtocolError,
    NetprotoError,
    PermanentError,
    ProtocolError,
    TemporaryError,
)
from netproto_twisted.core.framing import CRLF

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "FORBIDDEN_IN_TEXT",
    "MAX_REPLY_LINE",
    "Reply",
    "SMTPError",
    "SMTPResponseError",
    "error_from_reply",
]

#: The longest reply line, CRLF included (RFC 5321 4.5.3.1.5).
MAX_REPLY_LINE = 512
#: What reply text may not contain (it would let text inject a reply of its own).
FORBIDDEN_IN_TEXT = re.compile(r"[\r\n\x00]")

_ENHANCED = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})\Z")
_DETAIL = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\Z")
_ERRORS_MODULE = "netproto_twisted.smtp.wire._errors"


class SMTPError(NetprotoError):
    """Base class of every SMTP error."""


SMTPError.__module__ = _ERRORS_MODULE


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


SMTPResponseError.__module__ = _ERRORS_MODULE  # defined here; errors is its public home

# The base class itself gets variants too (``error_from_reply`` builds it).
SMTPResponseError._variants = {
    4: type(
        "SMTPResponseError[4xx]",
        (SMTPResponseError, TemporaryError),
        {"_variant_of": SMTPResponseError, "__module__": _ERRORS_MODULE},
    ),
    5: type(
        "SMTPResponseError[5xx]",
        (SMTPResponseError, PermanentError),
        {"_variant_of": SMTPResponseError, "__module__": _ERRORS_MODULE},
    ),
}


def _utf8_cut(data: bytes, limit: int) -> int:
    """Return the largest index <= ``limit`` that does not split a UTF-8 sequence."""
    if limit >= len(data):
        return len(data)
    while limit > 0 and (data[limit] & 0xC0) == 0x80:
        limit -= 1
    return limit


def _wrap(data: bytes, budget: int) -> list[bytes]:
    """Split ``data`` into pieces of at most ``budget`` bytes, at spaces where possible."""
    pieces: list[bytes] = []
    while len(data) > budget:
        cut = data.rfind(b" ", 1, budget + 1)
        if cut > 0:
            pieces.append(data[:cut])
            data = data[cut + 1 :]
            continue
        cut = _utf8_cut(data, budget) or budget
        pieces.append(data[:cut])
        data = data[cut:]
    pieces.append(data)
    return pieces


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply: a code, one or more text lines, an optional enhanced status code.

    ``enhanced`` is the full RFC 3463 code (``"5.1.1"``); its class digit must
    match the reply code's.  The lines hold the text without the code and
    without the enhanced status code.  Construction checks all of this and
    raises :class:`~netproto_twisted.core.errors.LocalProtocolError` (a CR,
    LF or NUL in a line would let text inject a reply of its own).
    """

    code: int
    lines: tuple[str, ...] = ("",)
    enhanced: str | None = None

    def __post_init__(self) -> None:
        if not (200 <= self.code <= 559 and (self.code // 10) % 10 <= 5):
            raise LocalProtocolError(f"not an SMTP reply code: {self.code!r}")
        if not isinstance(self.lines, tuple) or not self.lines:
            raise LocalProtocolError("a reply needs a tuple of at least one line")
        for line in self.lines:
            if FORBIDDEN_IN_TEXT.search(line):
                raise LocalProtocolError(f"CR, LF or NUL in reply text: {line[:80]!r}")
        if self.enhanced is not None:
            match = _ENHANCED.match(self.enhanced)
            if match is None or int(match.group(1)) != self.code // 100:
                raise LocalProtocolError(
                    f"enhanced status {self.enhanced!r} does not fit reply code {self.code}"
                )

    @classmethod
    def make(cls, code: int, text: str | Iterable[str] = "", status: str | None = None) -> Reply:
        """Build a reply from a code, text (``\\n`` separates lines) and a status detail.

        ``status`` is an ``ES_*`` constant (``"1.1"``): the class digit is
        taken from ``code``, so ``Reply.make(550, "no such user",
        ES_BAD_DEST_MAILBOX)`` has ``enhanced == "5.1.1"``.
        """
        lines = tuple(text.split("\n")) if isinstance(text, str) else tuple(text)
        enhanced = None
        if status is not None:
            if not _DETAIL.match(status):
                raise LocalProtocolError(f"not an enhanced status detail: {status!r}")
            enhanced = f"{code // 100}.{status}"
        return cls(code, lines or ("",), enhanced)

    @property
    def text(self) -> str:
        """The text lines joined with ``\\n`` (without the enhanced status code)."""
        return "\n".join(self.lines)

    @property
    def status_text(self) -> str:
        """The text prefixed with the enhanced status code, if any: ``"5.1.1 no such user"``."""
        if self.enhanced is None:
            return self.text
        return f"{self.enhanced} {self.text}" if self.text else self.enhanced

    @property
    def positive(self) -> bool:
        """Whether the code is 2xx or 3xx."""
        return self.code < 400

    @property
    def temporary(self) -> bool:
        """Whether the code is 4xx (transient negative completion)."""
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        """Whether the code is 5xx (permanent negative completion)."""
        return self.code >= 500

    def to_bytes(self, *, enhanced: bool = True) -> bytes:
        """Serialise to the wire: ``"250-"`` lines then a ``"250 "`` line, each <= 512 bytes.

        Text longer than a line allows is split at spaces (or anywhere, never
        inside a UTF-8 sequence).  With ENHANCEDSTATUSCODES the enhanced
        code prefixes every line (RFC 2034); ``enhanced=False`` leaves it out
        (the greeting and the EHLO reply must not carry it).
        """
        code = str(self.code).encode("ascii")
        prefix = f"{self.enhanced} ".encode("ascii") if enhanced and self.enhanced else b""
        budget = MAX_REPLY_LINE - len(CRLF) - 4 - len(prefix)
        pieces: list[bytes] = []
        for line in self.lines:
            pieces.extend(_wrap(line.encode("utf-8"), budget))
        out: list[bytes] = []
        last = len(pieces) - 1
        for i, piece in enumerate(pieces):
            body = prefix + piece if piece else prefix.rstrip(b" ")
            if body:
                out.append(code + (b" " if i == last else b"-") + body)
            else:
                out.append(code if i == last else code + b"-")
        return CRLF.join(out) + CRLF

    def raise_for_status(
        self, cls: type[SMTPResponseError] = SMTPResponseError, **extra: Any
    ) -> Reply:
        """Return the reply if it is 2xx/3xx, else raise :func:`error_from_reply`'s exception."""
        if self.code >= 400:
            raise error_from_reply(self, cls, **extra)
        return self

    def __str__(self) -> str:
        return f"{self.code} {self.status_text}"


def error_from_reply(
    reply: Reply, cls: type[SMTPResponseError] = SMTPResponseError, **extra: Any
) -> SMTPResponseError:
    """Return the exception for a failure reply: ``cls(code=..., text=..., **extra)``.

    The instance is also a :class:`~netproto_twisted.core.errors.TemporaryError`
    (4xx) or :class:`~netproto_twisted.core.errors.PermanentError` (5xx); its
    ``text`` keeps the enhanced status code (``"5.1.1 no such user"``) and its
    ``reply`` is ``reply``.  ``extra`` passes further constructor arguments,
    e.g. ``error_from_reply(r, SMTPSenderRefused, sender="a@b.example")``.
    """
    error = cls(code=reply.code, text=reply.status_text, **extra)
    error.reply = reply
    return error

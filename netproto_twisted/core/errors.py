"""The error hierarchy shared by every protocol.

One base, :class:`NetprotoError`.  Two families sit under it.

**Failure replies** (:class:`ReplyError`), in each protocol's shape.  A
server raises one (or builds one) and writes :meth:`ReplyError.to_wire`; a
client parses the reply it got with the class's ``from_wire`` and raises
the result, so both ends share one class per reply shape:

* :class:`ProtocolError` -- ``550 text`` (``550-`` on continuation lines):
  SMTP, FTP, NNTP;
* :class:`ErrReplyError` -- ``-ERR [IN-USE] text``: POP3, with the
  response codes of RFC 2449 and RFC 3206;
* :class:`TaggedReplyError` -- ``A1 NO [TRYCREATE] text``: IMAP, tagged or
  untagged (``*``) ``NO``/``BAD``/``BYE``, with the response codes of
  RFC 9051 and RFC 5530.

Numeric errors are :class:`TemporaryError` (4xx) or :class:`PermanentError`
(5xx), as :func:`error_for_code` picks them; SMTP's enhanced status code
(``5.1.1``) stays part of the text, SMTP's own business
(:mod:`netproto_twisted.smtp.errors`).  Every reply error answers
:attr:`~ReplyError.temporary` and :attr:`~ReplyError.permanent`, from its
code or response code, so a retry loop need not know the protocol::

    >>> ErrReplyError("mailbox locked", "IN-USE").to_wire()
    b'-ERR [IN-USE] mailbox locked\\r\\n'
    >>> e = TaggedReplyError.from_wire(b"a2 NO [TRYCREATE] no such mailbox\\r\\n")
    >>> e.tag, e.status, e.response_code, e.permanent
    ('a2', 'NO', 'TRYCREATE', True)

**Whose fault** (after h11): :class:`LocalProtocolError` means we were asked
to send something the protocol forbids (a CR in an argument...), and nothing
was sent; :class:`RemoteProtocolError` means the peer sent something the
protocol forbids.  A server that catches a :class:`RemoteProtocolError`
answers with its :attr:`~RemoteProtocolError.hint` (the failure reply to
send, e.g. ``500 5.5.2 line too long`` or ``* BAD`` for a malformed
command) when it has one, and goes on or closes as the protocol says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


class NetprotoError(Exception):
    """Base class of every error raised by netproto_twisted."""


_CRLF = b"\r\n"


def _check_text(text: str, what: str = "reply text") -> None:
    if "\r" in text or "\0" in text:
        raise LocalProtocolError(f"CR or NUL in the {what}")


def _check_line(text: str, what: str) -> None:
    if "\r" in text or "\n" in text or "\0" in text:
        raise LocalProtocolError(f"CR, LF or NUL in the {what}")


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    return data.decode("utf-8", "surrogateescape")


class ReplyError(NetprotoError):
    """A failure reply, in one protocol's shape: the server sends it, the client raises it.

    :ivar text: the human-readable text (several lines joined with ``\\n``
        where the shape allows several).
    """

    text: str

    def to_wire(self) -> bytes:
        """Return the reply as a server writes it, CRLF included.

        :raises LocalProtocolError: if the text or a code would break the
            line (a CR, or a LF where only one line is allowed).
        """
        raise NotImplementedError

    @property
    def temporary(self) -> bool:
        """Whether the same request may succeed later (a retry is worth it)."""
        return False

    @property
    def permanent(self) -> bool:
        """Whether repeating the request as it is will fail again."""
        return False


class ProtocolError(ReplyError):
    """A numeric failure reply (SMTP, FTP, NNTP): carries ``code`` and ``text``.

    :meth:`to_wire` writes ``"<code> <text>"``; a multi-line text gets
    ``"<code>-"`` on every line but the last (RFC 5321 4.2.1, RFC 959 4.2).
    """

    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text

    def __str__(self) -> str:
        return f"{self.code} {self.text}"

    def to_wire(self) -> bytes:
        """Return ``b"550 text\\r\\n"`` (with ``550-`` continuation lines)."""
        if not 100 <= self.code <= 599:
            raise LocalProtocolError(f"reply code {self.code} is not 3 digits from 100 to 599")
        _check_text(self.text)
        lines = self.text.split("\n")
        last = len(lines) - 1
        return b"".join(
            f"{self.code}{' ' if i == last else '-'}{line}".encode("utf-8", "surrogateescape")
            + _CRLF
            for i, line in enumerate(lines)
        )

    @classmethod
    def from_wire(cls, data: bytes | str | Iterable[bytes | str]) -> ProtocolError:
        """Return the error for a numeric reply (its lines, or their bytes with CRLFs).

        The class follows the code, as :func:`error_for_code` picks it; the
        text is the lines' texts joined with ``\\n``.  An FTP continuation
        line without a code is taken as it is.

        :raises RemoteProtocolError: if the reply is not a numeric reply.
        """
        if isinstance(data, (bytes, str)):
            lines = _decode(data).replace("\r\n", "\n").rstrip("\n").split("\n")
        else:
            lines = [_decode(line).rstrip("\r\n") for line in data]
        match = _NUMERIC.fullmatch(lines[-1]) if lines else None
        if match is None or match.group(2) not in (" ", ""):
            raise RemoteProtocolError(f"not a numeric reply: {lines[-1:]!r}"[:120])
        code = int(match.group(1))
        texts = []
        for line in lines[:-1]:
            head = _NUMERIC.fullmatch(line)
            if head is not None and int(head.group(1)) == code and head.group(2) == "-":
                texts.append(head.group(3))
            else:
                texts.append(line)
        texts.append(match.group(3))
        return error_for_code(code, "\n".join(texts))

    @property
    def temporary(self) -> bool:
        """Whether the code is 4xx."""
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        """Whether the code is 5xx."""
        return 500 <= self.code < 600


_NUMERIC = re.compile(r"([1-5][0-9][0-9])([ -]?)(.*)", re.DOTALL)


class TemporaryError(ProtocolError):
    """A transient failure (SMTP/FTP/NNTP 4xx): the same request may succeed later."""


class PermanentError(ProtocolError):
    """A permanent failure (SMTP/FTP/NNTP 5xx): repeating the request will not help."""


def error_for_code(code: int, text: str) -> ProtocolError:
    """Return the :class:`ProtocolError` subclass instance that fits a 3-digit reply code."""
    if 400 <= code < 500:
        return TemporaryError(code, text)
    if 500 <= code < 600:
        return PermanentError(code, text)
    return ProtocolError(code, text)


#: RFC 2449/3206 response codes of a ``-ERR`` that a later retry may overcome.
ERR_TEMPORARY_CODES = frozenset({"IN-USE", "LOGIN-DELAY", "SYS/TEMP"})
#: RFC 3206 response codes of a ``-ERR`` that a retry as it is will not overcome.
ERR_PERMANENT_CODES = frozenset({"AUTH", "SYS/PERM"})

_RESPONSE_CODE = re.compile(r"\[([^\]\r\n]+)\]")


class ErrReplyError(ReplyError):
    """A POP3 ``-ERR`` reply, with an optional response code (RFC 2449 ``[IN-USE]``, RFC 3206).

    :ivar text: the text after the response code.
    :ivar response_code: the response code without its brackets, upper-case
        (``"IN-USE"``, ``"SYS/TEMP"``...), or ``None``.
    """

    def __init__(self, text: str, response_code: str | None = None) -> None:
        code = None if response_code is None else response_code.upper()
        super().__init__(text, code)
        self.text = text
        self.response_code = code

    def __str__(self) -> str:
        return _decode(self._line()).rstrip("\r\n")

    def _line(self) -> bytes:
        code = f"[{self.response_code}] " if self.response_code else ""
        return f"-ERR {code}{self.text}".rstrip(" ").encode("utf-8", "surrogateescape") + _CRLF

    def to_wire(self) -> bytes:
        """Return ``b"-ERR [CODE] text\\r\\n"`` (one line)."""
        _check_line(self.text, "-ERR text")
        if self.response_code is not None:
            _check_response_code(self.response_code)
        return self._line()

    @classmethod
    def from_wire(cls, line: bytes | str) -> ErrReplyError:
        """Return the error for a ``-ERR`` status line (its CRLF optional).

        A bracketed word after ``-ERR`` is the response code; brackets
        later in the text are text.

        :raises RemoteProtocolError: if the line does not start with ``-ERR``.
        """
        text = _decode(line).rstrip("\r\n")
        status, _, rest = text.partition(" ")
        if status.upper() != "-ERR":
            raise RemoteProtocolError(f"not a -ERR reply: {text[:80]!r}")
        code, rest = _split_code(rest)
        return cls(rest, code)

    @property
    def temporary(self) -> bool:
        """Whether the response code says so (``IN-USE``, ``LOGIN-DELAY``, ``SYS/TEMP``)."""
        return self.response_code in ERR_TEMPORARY_CODES

    @property
    def permanent(self) -> bool:
        """Whether the response code says so (``AUTH``, ``SYS/PERM``)."""
        return self.response_code in ERR_PERMANENT_CODES


#: RFC 5530 response codes of a NO that a later retry may overcome.
TAGGED_TEMPORARY_CODES = frozenset({"UNAVAILABLE", "INUSE"})
#: Response codes of a NO that a retry as it is will not overcome (RFC 9051, RFC 5530).
TAGGED_PERMANENT_CODES = frozenset(
    {
        "TRYCREATE",
        "AUTHENTICATIONFAILED",
        "AUTHORIZATIONFAILED",
        "EXPIRED",
        "PRIVACYREQUIRED",
        "CONTACTADMIN",
        "NOPERM",
        "CANNOT",
        "NONEXISTENT",
        "ALREADYEXISTS",
        "CLIENTBUG",
        "BADCHARSET",
        "BADCOMPARATOR",
    }
)
#: The statuses a :class:`TaggedReplyError` may have.
TAGGED_STATUSES = ("NO", "BAD", "BYE")
_TAG = re.compile(r"[!#$&'+,\-./0-9:;<=>?@A-Z^_`a-z|}~]+")


class TaggedReplyError(ReplyError):
    """An IMAP ``NO``/``BAD`` completion (tagged), or an untagged ``* NO``/``* BAD``/``* BYE``.

    ``NO``: the command failed; ``BAD``: it was not understood (a protocol
    error of the client, or the server's); ``BYE``: the server is closing.

    :ivar tag: the command's tag, or ``"*"`` for an untagged response.
    :ivar status: ``"NO"``, ``"BAD"`` or ``"BYE"``.
    :ivar text: the text after the response code.
    :ivar response_code: the response code's atom, upper-case
        (``"TRYCREATE"``, ``"ALERT"``...), or ``None``.
    :ivar code_data: what follows the atom inside the brackets
        (``"(UTF-8 US-ASCII)"`` of ``[BADCHARSET (UTF-8 US-ASCII)]``), or ``None``.
    """

    def __init__(
        self,
        tag: str,
        status: str,
        text: str,
        response_code: str | None = None,
        code_data: str | None = None,
    ) -> None:
        status = status.upper()
        if status not in TAGGED_STATUSES:
            raise ValueError(f"status must be one of {TAGGED_STATUSES}, not {status!r}")
        if status == "BYE" and tag != "*":
            raise ValueError("BYE is untagged (tag '*')")
        code = None if response_code is None else response_code.upper()
        super().__init__(tag, status, text, code, code_data)
        self.tag = tag
        self.status = status
        self.text = text
        self.response_code = code
        self.code_data = code_data

    def __str__(self) -> str:
        return _decode(self._line()).rstrip("\r\n")

    def _line(self) -> bytes:
        code = ""
        if self.response_code:
            data = f" {self.code_data}" if self.code_data else ""
            code = f"[{self.response_code}{data}] "
        line = f"{self.tag} {self.status} {code}{self.text}".rstrip(" ")
        return line.encode("utf-8", "surrogateescape") + _CRLF

    def to_wire(self) -> bytes:
        """Return ``b"tag NO [CODE data] text\\r\\n"`` (one line)."""
        if self.tag != "*" and _TAG.fullmatch(self.tag) is None:
            raise LocalProtocolError(f"not an IMAP tag: {self.tag!r}")
        _check_line(self.text, f"{self.status} text")
        if self.response_code is not None:
            _check_response_code(self.response_code)
        if self.code_data is not None:
            _check_line(self.code_data, "response code data")
            if "]" in self.code_data:
                raise LocalProtocolError("']' in the response code data")
        return self._line()

    @classmethod
    def from_wire(cls, line: bytes | str) -> TaggedReplyError:
        """Return the error for a ``tag NO|BAD ...`` or ``* NO|BAD|BYE ...`` line.

        :raises RemoteProtocolError: if the line is none of those.
        """
        text = _decode(line).rstrip("\r\n")
        parts = text.split(" ", 2)
        if len(parts) < 2:
            raise RemoteProtocolError(f"not a tagged reply: {text[:80]!r}")
        tag, status = parts[0], parts[1].upper()
        rest = parts[2] if len(parts) > 2 else ""
        if status not in TAGGED_STATUSES or (status == "BYE" and tag != "*"):
            raise RemoteProtocolError(f"not a NO, BAD or BYE reply: {text[:80]!r}")
        if tag != "*" and _TAG.fullmatch(tag) is None:
            raise RemoteProtocolError(f"not an IMAP tag: {tag[:40]!r}")
        code, rest = _split_code(rest)
        data = None
        if code is not None:
            atom, _, more = code.partition(" ")
            code, data = atom, (more or None)
        return cls(tag, status, rest, code, data)

    @property
    def temporary(self) -> bool:
        """Whether the response code says so (``UNAVAILABLE``, ``INUSE``; RFC 5530)."""
        return self.response_code in TAGGED_TEMPORARY_CODES

    @property
    def permanent(self) -> bool:
        """Whether it is a ``BAD``, or a ``NO`` whose response code says so (``TRYCREATE``...)."""
        return self.status == "BAD" or self.response_code in TAGGED_PERMANENT_CODES


def _split_code(rest: str) -> tuple[str | None, str]:
    """Split ``"[CODE data] text"`` into ``("CODE data", "text")``; no code: ``(None, rest)``."""
    match = _RESPONSE_CODE.match(rest)
    if match is None:
        return None, rest
    return match.group(1), rest[match.end() :].lstrip(" ")


def _check_response_code(code: str) -> None:
    if not code or any(c in code for c in " []\r\n\0"):
        raise LocalProtocolError(f"not a response code: {code!r}")


class LocalProtocolError(NetprotoError):
    """We were asked to send something the protocol forbids (CR/LF in an argument...)."""


class RemoteProtocolError(NetprotoError):
    """The peer sent something the protocol forbids.

    :ivar hint: the failure reply a server answers it with (``500 5.5.2
        ...``, ``* BAD ...``), or ``None`` when the raiser cannot say (the
        server then picks its generic one).  After h11's
        ``error_status_hint``.
    """

    hint: ReplyError | None = None

    def __init__(self, *args: object, hint: ReplyError | None = None) -> None:
        super().__init__(*args)
        if hint is not None:
            self.hint = hint


class LineTooLong(RemoteProtocolError):
    """The peer sent a line longer than the configured maximum."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"line longer than {limit} bytes")
        self.limit = limit


class LimitExceeded(NetprotoError):
    """A configured limit (size, rate, connections) was exceeded."""

    def __init__(self, what: str, limit: int | float) -> None:
        super().__init__(f"{what} exceeds the limit of {limit}")
        self.what = what
        self.limit = limit


class AccessDenied(NetprotoError):
    """A peer was refused by access control (deny list, allow list, limits)."""


class ConfigError(NetprotoError):
    """A configuration error: names the key and the reason, in one line."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}" if key else reason)
        self.key = key
        self.reason = reason

"""Sans-I/O NNTP (RFC 3977, 4643, 4644, 5536): responses, blocks, ranges, overview, wildmat.

Everything here works on bytes and strings and imports nothing from
``twisted.internet``: response lines (:func:`status`, :func:`parse_status`),
multi-line blocks (:func:`block`), commands (:func:`parse_command`), article
ranges (:func:`parse_range`), Message-IDs (:func:`is_message_id`), the
overview format (:func:`overview_line`, :func:`parse_overview_line`),
wildmats (:func:`wildmat`), NEWGROUPS/NEWNEWS dates (:func:`parse_datetime`)
and article headers (:func:`split_article`, :func:`parse_headers`).
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from netproto_twisted.core.dotstuff import DotStuffer

__all__ = [
    "ARTICLE_END",
    "OVERVIEW_FIELDS",
    "OVERVIEW_FMT",
    "ArticleFormatError",
    "Code",
    "CommandSyntaxError",
    "Header",
    "WildmatError",
    "block",
    "format_datetime",
    "header_value",
    "is_message_id",
    "overview_line",
    "parse_command",
    "parse_datetime",
    "parse_headers",
    "parse_overview_block",
    "parse_overview_line",
    "parse_range",
    "parse_status",
    "sanitize_field",
    "split_article",
    "status",
    "stuffed",
    "wildmat",
]

#: What ends a multi-line block (the CRLF of the line before it included).
ARTICLE_END = b".\r\n"

#: The overview fields RFC 3977 8.4 mandates, in order, after the article number.
OVERVIEW_FIELDS = ("Subject", "From", "Date", "Message-ID", "References", ":bytes", ":lines")
#: The lines of ``LIST OVERVIEW.FMT`` (RFC 3977 8.4.1 with the metadata names; Xref full).
OVERVIEW_FMT = (
    "Subject:",
    "From:",
    "Date:",
    "Message-ID:",
    "References:",
    ":bytes",
    ":lines",
    "Xref:full",
)


class Code:
    """The response codes (RFC 3977 3.2, 4642, 4643, 4644) as named constants."""

    HELP = 100
    CAPABILITIES = 101
    DATE = 111
    READY_POSTING = 200
    READY_NO_POSTING = 201
    SLAVE = 202
    STREAMING_OK = 203
    CLOSING = 205
    COMPRESS_ACTIVE = 206
    GROUP = 211
    LIST = 215
    ARTICLE = 220
    HEAD = 221
    BODY = 222
    STAT = 223
    OVERVIEW = 224
    HDR = 225
    NEWNEWS = 230
    NEWGROUPS = 231
    TRANSFERRED = 235
    CHECK_SEND = 238
    TAKETHIS_OK = 239
    POSTED = 240
    AUTH_OK = 281
    SASL_DONE = 283
    SEND_IHAVE = 335
    SEND_POST = 340
    PASSWORD = 381
    SASL_CHALLENGE = 383
    CONTINUE_TLS = 382
    UNAVAILABLE = 400
    WRONG_MODE = 401
    FAULT = 403
    NO_SUCH_GROUP = 411
    NO_GROUP = 412
    NO_CURRENT = 420
    NO_NEXT = 421
    NO_PREV = 422
    NO_SUCH_NUMBER = 423
    NO_SUCH_ID = 430
    CHECK_LATER = 431
    NOT_WANTED = 435
    TRANSFER_LATER = 436
    TRANSFER_REJECTED = 437
    CHECK_REFUSED = 438
    TAKETHIS_REJECTED = 439
    POSTING_NOT_PERMITTED = 440
    POSTING_FAILED = 441
    AUTH_REQUIRED = 480
    AUTH_FAILED = 481
    AUTH_SEQUENCE = 482
    ENCRYPTION_REQUIRED = 483
    UNKNOWN = 500
    SYNTAX = 501
    NOT_PERMITTED = 502
    NOT_SUPPORTED = 503
    BASE64 = 504

    #: Codes followed by a multi-line block (RFC 3977 3.2, with 282 XGTITLE left out).
    MULTILINE = frozenset({100, 101, 211, 215, 220, 221, 222, 224, 225, 230, 231})


class CommandSyntaxError(ValueError):
    """A command line that is not ``VERB [args]`` in ASCII."""


class ArticleFormatError(ValueError):
    """An article that breaks RFC 5536's syntax (no blank line, a bad header line)."""


class WildmatError(ValueError):
    """A wildmat that is not RFC 3977 4's syntax."""


# -- response lines and blocks ---------------------------------------------------------


def status(code: int, text: str = "") -> bytes:
    """Serialise a response line: ``code text CRLF`` (no CR or LF may be in ``text``)."""
    if "\r" in text or "\n" in text:
        raise ValueError("a response text has no line break")
    return f"{code} {text}\r\n".encode() if text else f"{code}\r\n".encode()


def parse_status(line: bytes | str) -> tuple[int, str]:
    """Parse a response line (terminator optional): ``(code, text)``.

    :raises ValueError: if it does not start with three digits.
    """
    if isinstance(line, bytes):
        line = line.decode("utf-8", "surrogateescape")
    line = line.rstrip("\r\n")
    head = line[:3]
    if len(head) != 3 or not head.isascii() or not head.isdigit() or line[3:4] not in ("", " "):
        raise ValueError(f"not an NNTP response: {line[:40]!r}")
    return int(head), line[4:]


def block(status_line: bytes, lines: Iterable[bytes | str]) -> bytes:
    """A status line then ``lines`` dot-stuffed, each ending in CRLF, then the ``.`` line."""
    out = [status_line]
    for line in lines:
        data = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
        out.append(b"." + data + b"\r\n" if data[:1] == b"." else data + b"\r\n")
    out.append(ARTICLE_END)
    return b"".join(out)


def stuffed(payload: bytes) -> bytes:
    """An article's bytes dot-stuffed with CRLF line ends and the terminator."""
    stuffer = DotStuffer()
    return stuffer.encode(payload) + stuffer.finish()


def parse_command(line: bytes) -> tuple[str, str]:
    """Split a command line into the upper-case verb and its argument text (spaces collapsed).

    :raises CommandSyntaxError: for an empty line, or a verb that is not ASCII letters.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandSyntaxError("command is not UTF-8") from None
    words = text.split()
    if not words:
        raise CommandSyntaxError("empty command")
    verb = words[0]
    if not verb.isascii() or not verb.isalpha() or len(verb) > 32:
        raise CommandSyntaxError("bad command verb")
    return verb.upper(), " ".join(words[1:])


# -- ranges and ids ---------------------------------------------------------------------

_MAX_NUMBER = 2**63 - 1


def _number(text: str) -> int:
    if not text or not text.isascii() or not text.isdigit() or len(text) > 16:
        raise ValueError(f"not an article number: {text[:20]!r}")
    return int(text)


def parse_range(text: str) -> tuple[int, int | None]:
    """Parse ``n``, ``n-`` or ``n-m`` (RFC 3977 6.1.2): ``(low, high)``, high ``None`` if open.

    :raises ValueError: anything else.
    """
    low, dash, high = text.partition("-")
    first = _number(low)
    if not dash:
        return first, first
    if not high:
        return first, None
    return first, _number(high)


_MSGID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>\Z")
_MSGID_LOOSE = re.compile(r"<[\x21-\x3d\x3f-\x7e]+>\Z")


def is_message_id(text: str, *, strict: bool = False) -> bool:
    """Whether ``text`` is a Message-ID (RFC 3977 3.6: ``<...>`` of printable ASCII, <= 250).

    ``strict`` also asks for the ``left@right`` shape RFC 5536 3.1.3 gives new articles.
    """
    if len(text) > 250:
        return False
    return bool((_MSGID if strict else _MSGID_LOOSE).match(text))


# -- wildmats ---------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _compile_wildmat(pattern: str) -> tuple[tuple[bool, re.Pattern[str]], ...]:
    parts: list[tuple[bool, re.Pattern[str]]] = []
    for item in pattern.split(","):
        negated = item.startswith("!")
        body = item[1:] if negated else item
        if not body:
            raise WildmatError(f"empty wildmat element in {pattern!r}")
        regex = []
        i = 0
        while i < len(body):
            c = body[i]
            if c == "*":
                regex.append(".*")
            elif c == "?":
                regex.append(".")
            elif c == "[":
                end = body.find("]", i + 2)
                if end < 0:
                    raise WildmatError(f"unclosed [ in {pattern!r}")
                inner = body[i + 1 : end]
                neg = inner.startswith("^")
                if neg:
                    inner = inner[1:]
                cls = "".join("\\" + ch if ch in "\\^[]" else ch for ch in inner)
                regex.append(f"[{'^' if neg else ''}{cls}]")
                i = end
            elif c == "\\" and i + 1 < len(body):
                i += 1
                regex.append(re.escape(body[i]))
            else:
                regex.append(re.escape(c))
            i += 1
        parts.append((negated, re.compile("".join(regex) + r"\Z", re.DOTALL)))
    return tuple(parts)


def wildmat(pattern: str) -> Callable[[str], bool]:
    """Compile a wildmat (RFC 3977 4): the last element that matches decides (``!``: excluded).

    :raises WildmatError: for an empty element or an unclosed ``[``.
    """
    parts = _compile_wildmat(pattern)

    def matches(name: str) -> bool:
        result = False
        for negated, regex in parts:
            if regex.match(name):
                result = not negated
        return result

    return matches


# -- dates ------------------------------------------------------------------------------


def parse_datetime(date: str, hhmmss: str, gmt: str = "", *, now: float | None = None) -> float:
    """Parse NEWGROUPS/NEWNEWS ``date time [GMT]`` (RFC 3977 7.3.2) as a UNIX time.

    A 6-digit date's century is the one that makes it closest to now, not in the future
    (RFC 3977: "the current century" when within it, else the previous one).
    Without ``GMT`` the server's local time is meant (here: UTC, the server's zone).
    """
    if gmt and gmt.upper() != "GMT":
        raise ValueError("the third argument may only be GMT")
    if len(hhmmss) != 6 or not hhmmss.isdigit() or len(date) not in (6, 8) or not date.isdigit():
        raise ValueError("date is [yy]yymmdd, time is hhmmss")
    if len(date) == 6:
        current = time.gmtime(time.time() if now is None else now).tm_year
        year = current - current % 100 + int(date[:2])
        if year > current:
            year -= 100
    else:
        year = int(date[:4])
    month, day = int(date[-4:-2]), int(date[-2:])
    hour, minute, second = int(hhmmss[:2]), int(hhmmss[2:4]), int(hhmmss[4:])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError("date or time out of range")
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


def format_datetime(when: float) -> tuple[str, str]:
    """``(yyyymmdd, hhmmss)`` in UTC, as a client sends NEWNEWS/NEWGROUPS."""
    t = time.gmtime(when)
    return time.strftime("%Y%m%d", t), time.strftime("%H%M%S", t)


# -- articles and overview ---------------------------------------------------------------


@dataclass(frozen=True)
class Header:
    """One header field: its name as written and its unfolded value (bytes kept as text)."""

    name: str
    value: str


def split_article(article: bytes) -> tuple[bytes, bytes]:
    """Cut an article (CRLF line ends) at its blank line: ``(header block, body)``.

    :raises ArticleFormatError: when there is no blank line after the headers.
    """
    if article.startswith(b"\r\n"):
        raise ArticleFormatError("article has no header")
    end = article.find(b"\r\n\r\n")
    if end < 0:
        raise ArticleFormatError("article has no blank line between header and body")
    return article[: end + 2], article[end + 4 :]


_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+\Z")


def parse_headers(head: bytes) -> list[Header]:
    """Parse a header block (CRLF line ends) into fields, unfolding continuation lines.

    :raises ArticleFormatError: a line that is neither ``Name: value`` nor a continuation.
    """
    fields: list[list[str]] = []
    for raw in head.split(b"\r\n"):
        if not raw:
            continue
        if raw[:1] in (b" ", b"\t"):
            if not fields:
                raise ArticleFormatError("continuation line before the first header")
            fields[-1][1] += " " + raw.strip().decode("utf-8", "surrogateescape")
            continue
        name, colon, value = raw.partition(b":")
        if not colon or not _FIELD_NAME.match(name):
            raise ArticleFormatError(f"bad header line: {raw[:60]!r}")
        fields.append([name.decode("ascii"), value.strip().decode("utf-8", "surrogateescape")])
    return [Header(n, v) for n, v in fields]


def header_value(headers: Sequence[Header], name: str) -> str | None:
    """The value of the first field called ``name`` (any case), or ``None``."""
    lower = name.lower()
    for h in headers:
        if h.name.lower() == lower:
            return h.value
    return None


_FIELD_JUNK = re.compile(r"[\t\r\n\0]")


def sanitize_field(value: str) -> str:
    """An overview field value: TAB, CR, LF and NUL become spaces (RFC 3977 8.3.2)."""
    return _FIELD_JUNK.sub(" ", value)


def overview_line(number: int, fields: Sequence[str]) -> bytes:
    """One OVER line: the number, then the fields TAB-separated (already sanitised)."""
    return (str(number) + "\t" + "\t".join(fields)).encode("utf-8", "surrogateescape")


_OVERVIEW_KEYS = tuple(name.lower() for name in OVERVIEW_FIELDS)


def parse_overview_block(block: bytes) -> list[tuple[int, dict[str, str]]]:
    """Parse CRLF-ended OVER lines at once, as :func:`parse_overview_line` parses one.

    :raises ValueError: if a line lacks its number or a mandatory field.
    """
    keys = _OVERVIEW_KEYS
    width = len(keys) + 1
    out: list[tuple[int, dict[str, str]]] = []
    append = out.append
    text = block.decode("utf-8", "surrogateescape")
    for line in text.split("\r\n"):
        if not line:
            continue
        parts = line.split("\t")
        if len(parts) < width:
            raise ValueError(f"overview line has {len(parts)} fields")
        fields = dict(zip(keys, parts[1:width], strict=True))
        for extra in parts[width:]:
            name, colon, value = extra.partition(":")
            if colon:
                fields[name.lower()] = value.lstrip(" ")
        append((_number(parts[0]), fields))
    return out


def parse_overview_line(line: bytes | str) -> tuple[int, dict[str, str]]:
    """Parse one OVER line into ``(number, {field: value})`` (names as in OVERVIEW_FMT).

    Extra fields (``Xref: ...``) are keyed by their header name, lower case, with the
    ``Name:`` prefix removed from the value.

    :raises ValueError: if the number or a mandatory field is missing.
    """
    if isinstance(line, bytes):
        line = line.decode("utf-8", "surrogateescape")
    parts = line.rstrip("\r\n").split("\t")
    if len(parts) < 1 + len(OVERVIEW_FIELDS):
        raise ValueError(f"overview line has {len(parts)} fields")
    number = _number(parts[0])
    result = {name.lower(): parts[i + 1] for i, name in enumerate(OVERVIEW_FIELDS)}
    for extra in parts[1 + len(OVERVIEW_FIELDS) :]:
        name, colon, value = extra.partition(":")
        if colon:
            result[name.lower()] = value.lstrip(" ")
    return number, result

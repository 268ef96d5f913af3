"""Serialising IMAP responses: strings (quoted or literal), lists, NIL, status lines."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable

__all__ = [
    "Atom",
    "continuation",
    "encode",
    "format_date_time",
    "quote",
    "status_line",
]

_CRLF = b"\r\n"
_QUOTE_MAX = 512
_UNQUOTABLE = re.compile(rb"[\r\n\x00]")
#: What goes between quotes as it is: printable 7-bit without ``"`` and ``\``.
_PLAIN = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x21\x23-\x5b\x5d-\x7f]*")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Atom(str):
    """Text written as is (an atom, a flag, or a preformatted piece such as ``BODY[1]<0>``)."""

    __slots__ = ()


def quote(data: bytes) -> bytes:
    """A string: quoted when short, 7-bit and without CR/LF/NUL, else a literal."""
    if len(data) <= _QUOTE_MAX:
        if _PLAIN.fullmatch(data) is not None:
            return b'"' + data + b'"'
        if data.isascii() and _UNQUOTABLE.search(data) is None:
            return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def encode(value: object) -> bytes:
    """One value: ``None`` is NIL, ``int`` a number, ``bytes`` a string, :class:`Atom`/``str``
    an atom, a list or tuple a parenthesised list."""
    kind = type(value)
    if kind is bytes:
        return quote(value)  # type: ignore[arg-type]
    if value is None:
        return b"NIL"
    if kind is list or kind is tuple:
        return b"(" + b" ".join([encode(v) for v in value]) + b")"  # type: ignore[attr-defined]
    if isinstance(value, bool):
        raise TypeError("no IMAP form for bool")
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return quote(value)
    if isinstance(value, (list, tuple)):
        return b"(" + b" ".join([encode(v) for v in value]) + b")"
    raise TypeError(f"no IMAP form for {type(value).__name__}")


def flag_list(flags: Iterable[str]) -> bytes:
    """``(\\Seen $Forwarded)``."""
    return b"(" + " ".join(flags).encode("utf-8") + b")"


def status_line(tag: str, status: str, text: str, code: str | None = None) -> bytes:
    """``tag OK [CODE] text`` (``tag`` ``*`` for untagged)."""
    code_part = f"[{code}] " if code else ""
    return f"{tag} {status} {code_part}{text}".encode("utf-8", "replace") + _CRLF


def continuation(text: str = "") -> bytes:
    """``+ text``."""
    return f"+ {text}".rstrip(" ").encode("utf-8") + (b" " if not text else b"") + _CRLF


def format_date_time(when: float | datetime.datetime) -> str:
    """``"17-Jul-1996 02:44:25 -0700"`` (quoted)."""
    if not isinstance(when, datetime.datetime):
        when = datetime.datetime.fromtimestamp(when, datetime.timezone.utc).astimezone()
    offset = when.utcoffset() or datetime.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return (
        f'"{when.day:2d}-{_MONTHS[when.month - 1]}-{when.year:04d} '
        f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} "
        f'{sign}{minutes // 60:02d}{minutes % 60:02d}"'
    )

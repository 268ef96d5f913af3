"""POP3 on the wire, sans-I/O: commands and replies parsed and serialised, both sides.

Server side: :func:`parse_command` cuts a command line into verb and
argument; :func:`ok`, :func:`err` and :func:`multiline` serialise replies;
:func:`parse_message_number` reads ``msg`` arguments.  Client side:
:func:`parse_status` reads a ``+OK``/``-ERR`` line, :func:`parse_listing`
and :func:`parse_unique_id` read the lines of ``LIST`` and ``UIDL``,
:func:`parse_capabilities` the lines of ``CAPA``, :func:`unstuff_line` undoes
dot-stuffing.  Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from netproto_twisted.core.errors import ErrReplyError, LocalProtocolError
from netproto_twisted.pop3.errors import POP3ProtocolError, POP3ReplyError

__all__ = [
    "CRLF",
    "END",
    "MAX_ARGUMENT_LENGTH",
    "CommandSyntaxError",
    "Status",
    "err",
    "format_command",
    "multiline",
    "ok",
    "parse_capabilities",
    "parse_command",
    "parse_listing",
    "parse_message_number",
    "parse_status",
    "parse_unique_id",
    "unstuff_line",
]

CRLF = b"\r\n"
#: The line ending a multi-line reply.
END = b".\r\n"
#: The longest argument accepted (RFC 1939 says 40 characters; SASL and
#: passwords need more, the line length limit applies anyway).
MAX_ARGUMENT_LENGTH = 8192
#: Message numbers above this are refused without being converted.
_MAX_NUMBER_DIGITS = 10


class CommandSyntaxError(ValueError):
    """A command line that is not a POP3 command (empty, binary, no verb)."""


def parse_command(line: bytes) -> tuple[str, str]:
    """Return ``(VERB, argument)`` of a command line (terminator removed).

    The verb is upper-cased; the argument is everything after the first
    space, as UTF-8 text (RFC 6856), trailing spaces removed.

    :raises CommandSyntaxError: for an empty line, a verb that is not 1 to
        8 ASCII letters, control characters, or text that is not UTF-8.
    """
    if not line:
        raise CommandSyntaxError("empty command")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandSyntaxError("command is not UTF-8") from None
    if any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise CommandSyntaxError("control characters in command")
    verb, _, argument = text.partition(" ")
    if not (1 <= len(verb) <= 8 and verb.isascii() and verb.isalnum() and verb[0].isalpha()):
        raise CommandSyntaxError("no command verb")
    argument = argument.rstrip(" ")
    if len(argument) > MAX_ARGUMENT_LENGTH:
        raise CommandSyntaxError("argument too long")
    return verb.upper(), argument


def parse_message_number(text: str) -> int:
    """Return the message number in ``text`` (a positive decimal).

    :raises ValueError: with a text suitable for ``-ERR``.
    """
    if not text or not text.isascii() or not text.isdigit() or len(text) > _MAX_NUMBER_DIGITS:
        raise ValueError("invalid message number")
    number = int(text)
    if number < 1:
        raise ValueError("invalid message number")
    return number


def _line(text: str) -> bytes:
    data = text.encode("utf-8")
    if b"\r" in data or b"\n" in data or b"\x00" in data:
        raise LocalProtocolError(f"CR, LF or NUL in a reply: {text[:60]!r}")
    return data


def ok(text: str = "") -> bytes:
    """Return ``+OK text`` as a wire line."""
    return b"+OK " + _line(text) + CRLF if text else b"+OK" + CRLF


def err(text: str, code: str | None = None) -> bytes:
    """Return ``-ERR [CODE] text`` as a wire line."""
    return ErrReplyError(text, code).to_wire()


def multiline(first: bytes, lines: Iterable[str | bytes]) -> bytes:
    """Return the status line ``first``, the dot-stuffed ``lines`` and the ending ``.``."""
    out = [first]
    for line in lines:
        data = _line(line) if isinstance(line, str) else line
        if data.startswith(b"."):
            data = b"." + data
        out.append(data + CRLF)
    out.append(END)
    return b"".join(out)


def format_command(verb: str, *arguments: str) -> bytes:
    """Return a command line for the client to send.

    :raises LocalProtocolError: for CR, LF or NUL in an argument.
    """
    text = " ".join((verb, *arguments))
    return _line(text) + CRLF


# -- the client's side ---------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """A ``+OK`` line's text (the ``-ERR`` lines become :class:`POP3ReplyError`)."""

    text: str


def parse_status(line: bytes) -> Status:
    """Return the :class:`Status` of a ``+OK`` line; raise for anything else.

    :raises POP3ReplyError: for ``-ERR`` (with its response code).
    :raises POP3ProtocolError: for a line that is neither.
    """
    if line.startswith(b"+OK") and (len(line) == 3 or line[3:4] == b" "):
        return Status(line[4:].decode("utf-8", "replace"))
    if line.startswith(b"-ERR") and (len(line) == 4 or line[4:5] == b" "):
        found = ErrReplyError.from_wire(line)
        raise POP3ReplyError(found.text, found.response_code)
    raise POP3ProtocolError(f"not a POP3 status line: {line[:80]!r}")


def unstuff_line(line: bytes) -> bytes:
    """Remove the dot-stuffing of one line of a multi-line reply (not the ending ``.``)."""
    return line[1:] if line.startswith(b".") else line


def _two_fields(line: bytes, what: str) -> tuple[int, str]:
    parts = line.split()
    if len(parts) < 2 or not parts[0].isdigit() or len(parts[0]) > _MAX_NUMBER_DIGITS:
        raise POP3ProtocolError(f"bad {what} line: {line[:80]!r}")
    return int(parts[0]), parts[1].decode("ascii", "replace")


def parse_listing(line: bytes) -> tuple[int, int]:
    """Return ``(number, size)`` of a scan listing (``LIST`` line or ``+OK`` text)."""
    number, size = _two_fields(line, "scan listing")
    if not size.isdigit():
        raise POP3ProtocolError(f"bad scan listing line: {line[:80]!r}")
    return number, int(size)


def parse_unique_id(line: bytes) -> tuple[int, str]:
    """Return ``(number, uid)`` of a unique-id listing (``UIDL`` line or ``+OK`` text)."""
    return _two_fields(line, "unique-id listing")


def parse_capabilities(lines: Iterable[bytes]) -> dict[str, list[str]]:
    """Return ``{TAG: [arguments]}`` from the lines of a ``CAPA`` reply (tags upper-cased)."""
    found: dict[str, list[str]] = {}
    for line in lines:
        words = line.decode("utf-8", "replace").split()
        if words:
            found[words[0].upper()] = words[1:]
    return found

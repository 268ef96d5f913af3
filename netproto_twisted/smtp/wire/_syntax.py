"""Sans-I/O SMTP wire format: replies, commands, and their serialisation.

Replies: :class:`Reply` (a code, its text lines, an optional enhanced status
code) serialises itself with :meth:`Reply.to_bytes`; :class:`ReplyParser`
turns the bytes a server sends into :class:`Reply` objects (client side);
:meth:`Reply.raise_for_status` / :func:`error_from_reply` turn a failure reply
into an :mod:`~netproto_twisted.smtp.wire._errors` exception.

Commands: :func:`parse_command` splits a command line (server side) into a
:class:`Command`; :func:`parse_bdat` and :func:`parse_auth` parse the
arguments of BDAT and AUTH.  MAIL and RCPT arguments are parsed by
:func:`~netproto_twisted.smtp.parse_mail_from` and
:func:`~netproto_twisted.smtp.parse_rcpt_to` (in ``_params``).  Every parse
error is a :class:`~netproto_twisted.smtp.wire._errors.CommandError` that carries
the reply to send.  The client side formats commands with
:func:`format_command`, :func:`format_ehlo` ..., which refuse CR, LF and NUL
in any argument.

Peer data enters through two doors only, :class:`ReplyParser` (client) and
:func:`parse_command` (server); neither raises anything but
:class:`~netproto_twisted.core.errors.RemoteProtocolError` subclasses.

This module imports nothing from ``twisted.internet``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Collection
from dataclasses import dataclass

from netproto_twisted.core.commands import Argument
from netproto_twisted.core.errors import LocalProtocolError, RemoteProtocolError
from netproto_twisted.core.framing import LineBuffer, LineEndings, serialize_line
from netproto_twisted.smtp.wire._codes import (
    AUTH,
    BDAT,
    EHLO,
    ES_INVALID_ARGUMENTS,
    ES_INVALID_COMMAND,
    ES_MESSAGE_TOO_BIG,
    ES_SYNTAX_ERROR,
    EXCEEDED_STORAGE,
    HELO,
    PARAM_SYNTAX,
    SYNTAX_ERROR,
)
from netproto_twisted.smtp.wire._commands import COMMANDS, SMTP_COMMANDS
from netproto_twisted.smtp.wire._errors import CommandError
from netproto_twisted.smtp.wire._reply import (
    FORBIDDEN_IN_TEXT,
    MAX_REPLY_LINE,
    Reply,
    error_from_reply,
)

__all__ = [
    "DEFAULT_MAX_REPLY_LINE",
    "DEFAULT_MAX_REPLY_LINES",
    "MAX_COMMAND_LINE",
    "MAX_REPLY_LINE",
    "MAX_TEXT_LINE",
    "Command",
    "Reply",
    "ReplyParser",
    "error_from_reply",
    "format_auth",
    "format_bdat",
    "format_command",
    "format_ehlo",
    "format_helo",
    "parse_auth",
    "parse_bdat",
    "parse_command",
]

#: The longest command line, CRLF included (RFC 5321 4.5.3.1.4).  A server
#: advertising extensions whose parameters lengthen MAIL/RCPT should accept
#: more (RFC 1869 4.1.2; Postfix accepts 2048).
MAX_COMMAND_LINE = 512
#: The longest line of message text, CRLF included (RFC 5321 4.5.3.1.6).
MAX_TEXT_LINE = 1000
#: The longest reply line :class:`ReplyParser` accepts by default, CRLF excluded.
#: More generous than :data:`MAX_REPLY_LINE`: real servers send longer lines.
DEFAULT_MAX_REPLY_LINE = 4096
#: The most lines :class:`ReplyParser` accepts in one reply by default.
DEFAULT_MAX_REPLY_LINES = 1000

_CODE = re.compile(rb"[2-5][0-5][0-9]")
_ENHANCED_PREFIX = re.compile(r"([245]\.[0-9]{1,3}\.[0-9]{1,3})(?: |\Z)")


class ReplyParser:
    """Turn the bytes a server sends into :class:`Reply` objects (client side, sans-I/O).

    Give it whatever arrives with :meth:`receive`, then call
    :meth:`next_reply` until it returns ``None``: replies come out in order
    (several when replies were pipelined), and an error is raised only once
    every reply before the bad line has been returned.  :meth:`feed` does
    both in one call (but a reply completed in the same call as an error is
    then lost with it).  A reply whose first line
    starts with an enhanced status code of the reply's class gets it as
    ``enhanced``, stripped from every line that repeats it.  Text is decoded
    as UTF-8 (invalid bytes replaced).

    Malformed input raises :class:`~netproto_twisted.core.errors.RemoteProtocolError`
    (or its subclasses :class:`~netproto_twisted.core.errors.LineTooLong` and
    :class:`~netproto_twisted.core.framing.BareLineEnding`): a line without a
    valid code (RFC 5321: ``[2-5][0-5][0-9]``), a separator other than space
    or ``-``, a continuation line with another code, more than ``max_lines``
    lines or a line longer than ``max_line_length`` bytes.  After an error the
    stream cannot be trusted: close the connection.

    :param max_line_length: longest line accepted, CRLF excluded.
    :param max_lines: most lines in one reply.
    :param endings: which line endings are accepted (a bare LF by default, as smtplib does).
    """

    def __init__(
        self,
        *,
        max_line_length: int = DEFAULT_MAX_REPLY_LINE,
        max_lines: int = DEFAULT_MAX_REPLY_LINES,
        endings: LineEndings = LineEndings.ACCEPT_LF,
    ) -> None:
        self._buffer = LineBuffer(max_line_length, endings=endings)
        self._max_lines = max_lines
        self._code: bytes | None = None
        self._lines: list[str] = []

    @property
    def pending(self) -> bool:
        """Whether part of a reply has been received (a disconnect now loses it)."""
        return self._code is not None or len(self._buffer) > 0

    def receive(self, data: bytes) -> None:
        """Add received bytes (never raises; see :meth:`next_reply`)."""
        self._buffer.feed(data)

    def next_reply(self) -> Reply | None:
        """Return the next complete reply, or ``None`` if more bytes are needed.

        :raises RemoteProtocolError: at the first malformed line (see the class docstring).
        """
        while (line := self._buffer.next_line()) is not None:
            reply = self._line(line)
            if reply is not None:
                return reply
        return None

    def feed(self, data: bytes) -> list[Reply]:
        """Add received bytes; return the replies they complete (possibly none)."""
        self._buffer.feed(data)
        replies: list[Reply] = []
        while (reply := self.next_reply()) is not None:
            replies.append(reply)
        return replies

    def _line(self, line: bytes) -> Reply | None:
        code = line[:3]
        if len(code) < 3 or not _CODE.fullmatch(code):
            raise RemoteProtocolError(f"malformed reply line: {line[:80]!r}")
        if len(line) == 3 or line[3:4] == b" ":
            final = True
        elif line[3:4] == b"-":
            final = False
        else:
            raise RemoteProtocolError(f"malformed reply line: {line[:80]!r}")
        if self._code is None:
            self._code = code
        elif code != self._code:
            raise RemoteProtocolError(
                f"reply code changed within a reply: {self._code!r} then {code!r}"
            )
        if len(self._lines) >= self._max_lines:
            raise RemoteProtocolError(f"reply longer than {self._max_lines} lines")
        self._lines.append(line[4:].decode("utf-8", "replace"))
        if not final:
            return None
        lines, self._lines, self._code = self._lines, [], None
        return _build_reply(int(code), lines)


def _build_reply(code: int, lines: list[str]) -> Reply:
    match = _ENHANCED_PREFIX.match(lines[0])
    enhanced = None
    if match is not None and int(match.group(1)[0]) == code // 100:
        enhanced = match.group(1)
        size = len(enhanced)
        lines = [
            line[size + 1 :]
            if line.startswith(enhanced) and line[size : size + 1] in ("", " ")
            else line
            for line in lines
        ]
    # Text that a C0 control would make unserialisable is kept readable, not refused.
    return Reply(code, tuple(FORBIDDEN_IN_TEXT.sub("\ufffd", line) for line in lines), enhanced)


# -- commands (server side) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command line: ``verb`` in upper case and its ``argument`` (``""`` if none)."""

    verb: str
    argument: str


#: The argument rules, from the command table.
_NO_ARGUMENT = SMTP_COMMANDS.verbs_with(Argument.NONE)
_ARGUMENT_REQUIRED = SMTP_COMMANDS.verbs_with(Argument.REQUIRED)
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_VERB = re.compile(rb"[A-Za-z]{1,20}")
#: A verb, then optionally spaces and an argument of printable ASCII (inner spaces
#: allowed) that starts and ends with a non-blank; trailing spaces.  Anything else
#: (tabs, controls, UTF-8, leading blanks) takes the general path.
_SIMPLE_COMMAND = re.compile(
    rb"([A-Za-z]{1,20})(?: +([\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?))? *"
)
_HOSTNAME_ARG = re.compile(r"[\x21-\x7e]+")
_BDAT = re.compile(r"([0-9]{1,20})(?:[ \t]+(LAST))?[ \t]*\Z", re.IGNORECASE)
_AUTH = re.compile(r"([A-Za-z0-9_-]{1,20})(?:[ \t]+([A-Za-z0-9+/]*={0,2}))?[ \t]*\Z")


def _syntax(
    text: str, status: str = ES_INVALID_ARGUMENTS, code: int = PARAM_SYNTAX
) -> CommandError:
    return CommandError(Reply.make(code, text, status))


def parse_command(line: bytes, *, verbs: Collection[str] = COMMANDS) -> Command:
    """Parse one command line (without CRLF) into a :class:`Command`.

    The verb is case-insensitive and must be in ``verbs`` (default: every
    command of :data:`~netproto_twisted.smtp.COMMANDS`); the argument is what
    follows the first space or tab, decoded as UTF-8, with surrounding blanks
    removed.  Checked here: the argument rule of the verb's entry in the
    command table (DATA, RSET, QUIT and STARTTLS take no argument; EHLO,
    HELO, MAIL, RCPT, BDAT, VRFY, EXPN and AUTH need one); the argument of
    EHLO/HELO is one printable ASCII word.  Line length is the line
    buffer's business.

    :raises CommandError: ``500 5.5.1`` for an unknown verb, ``500 5.5.2``
        for control characters or invalid UTF-8, ``501 5.5.4`` for a
        missing, superfluous or malformed argument.
    """
    simple = _SIMPLE_COMMAND.fullmatch(line)
    if simple is not None:
        # The usual line (printable ASCII, one blank-separated verb): one regex, no copies.
        verb = simple.group(1).decode("ascii").upper()
        if verb not in verbs:
            raise _syntax("Command unrecognized", ES_INVALID_COMMAND, SYNTAX_ERROR)
        raw = simple.group(2)
        argument = raw.decode("ascii") if raw else ""
    else:
        verb, argument = _split_command(line, verbs)
    if argument:
        if verb in _NO_ARGUMENT:
            raise _argument_refused(verb, argument)
    elif verb in _ARGUMENT_REQUIRED:
        raise _argument_refused(verb, argument)
    if verb in (EHLO, HELO) and not _HOSTNAME_ARG.fullmatch(argument):
        raise _syntax(f"Syntax: {verb} hostname")
    return Command(verb, argument)


def _argument_refused(verb: str, argument: str) -> CommandError:
    refusal = SMTP_COMMANDS.argument_refusal(verb, argument)
    assert refusal is not None
    return _syntax(refusal.text)


def _split_command(line: bytes, verbs: Collection[str]) -> tuple[str, str]:
    """The general case of :func:`parse_command`: controls, tabs, UTF-8, odd blanks."""
    if _CONTROL.search(line):
        raise _syntax("Syntax error: control character in command", ES_SYNTAX_ERROR, SYNTAX_ERROR)
    line = line.strip(b" \t")
    verb_bytes = line.replace(b"\t", b" ").partition(b" ")[0]
    if not _VERB.fullmatch(verb_bytes):
        raise _syntax("Command unrecognized", ES_INVALID_COMMAND, SYNTAX_ERROR)
    verb = verb_bytes.decode("ascii").upper()
    if verb not in verbs:
        raise _syntax("Command unrecognized", ES_INVALID_COMMAND, SYNTAX_ERROR)
    try:
        argument = line[len(verb_bytes) :].decode("utf-8").strip(" \t")
    except UnicodeDecodeError:
        raise _syntax("Syntax error: invalid UTF-8", ES_SYNTAX_ERROR, SYNTAX_ERROR) from None
    return verb, argument


def parse_bdat(argument: str, *, max_size: int | None = None) -> tuple[int, bool]:
    """Parse BDAT's argument (``"1000 LAST"``) into ``(size, last)``.

    Whether refused or not, the server must still read (and discard) the
    chunk's bytes if the client sent them: check ``size`` before anything
    else, and close the connection if it is absurd.

    :raises CommandError: ``501 5.5.4`` on bad syntax (at most 20 digits),
        ``552 5.3.4`` if ``size`` exceeds ``max_size``.
    """
    match = _BDAT.match(argument)
    if match is None:
        raise _syntax("Syntax: BDAT chunk-size [LAST]")
    size = int(match.group(1))
    if max_size is not None and size > max_size:
        raise _syntax(
            "Message size exceeds fixed maximum message size", ES_MESSAGE_TOO_BIG, EXCEEDED_STORAGE
        )
    return size, match.group(2) is not None


def parse_auth(argument: str) -> tuple[str, str | None]:
    """Parse AUTH's argument into ``(MECHANISM, initial_response or None)``.

    The initial response is returned as sent (base64, or ``"="`` for an
    empty one); decode it with :func:`netproto_twisted.core.sasl.decode_response`.

    :raises CommandError: ``501 5.5.4`` on bad syntax (the blob is never echoed).
    """
    match = _AUTH.match(argument)
    if match is None:
        raise _syntax("Syntax: AUTH mechanism [initial-response]")
    return match.group(1).upper(), match.group(2)


# -- commands (client side) ----------------------------------------------------------------


def format_command(verb: str, argument: str | None = None) -> bytes:
    """Return ``VERB[ argument]\\r\\n``.

    :raises LocalProtocolError: if the verb is not letters only, or either
        contains CR, LF or NUL.
    """
    if not re.fullmatch(r"[A-Za-z]{1,20}", verb):
        raise LocalProtocolError(f"not an SMTP verb: {verb!r}")
    return serialize_line(verb if argument is None else f"{verb} {argument}")


def _hostname_arg(verb: str, name: str) -> bytes:
    if not _HOSTNAME_ARG.fullmatch(name):
        raise LocalProtocolError(f"{verb} needs one printable ASCII word, not {name!r}")
    return format_command(verb, name)


def format_ehlo(name: str) -> bytes:
    """Return ``EHLO name\\r\\n`` (``name``: a domain or an address literal such as ``[::1]``)."""
    return _hostname_arg(EHLO, name)


def format_helo(name: str) -> bytes:
    """Return ``HELO name\\r\\n``."""
    return _hostname_arg(HELO, name)


def format_bdat(size: int, *, last: bool = False) -> bytes:
    """Return ``BDAT size[ LAST]\\r\\n``."""
    if size < 0:
        raise LocalProtocolError(f"BDAT size must be >= 0, not {size}")
    return format_command(BDAT, f"{size} LAST" if last else str(size))


def format_auth(mechanism: str, initial_response: bytes | None = None) -> bytes:
    """Return ``AUTH MECHANISM[ base64(initial_response)]\\r\\n`` (empty response: ``=``)."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,20}", mechanism):
        raise LocalProtocolError(f"not a SASL mechanism name: {mechanism!r}")
    if initial_response is None:
        return format_command(AUTH, mechanism.upper())
    blob = base64.b64encode(initial_response).decode("ascii") or "="
    return format_command(AUTH, f"{mechanism.upper()} {blob}")

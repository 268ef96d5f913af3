"""FTP on the wire, sans-I/O: replies, commands, PORT/EPRT/PASV/EPSV, MLSx facts.

Nothing here touches a socket or imports from :mod:`twisted.internet`; the
server and the client both use it, and the Hypothesis tests drive it alone.
Directory listings (``LIST`` output in Unix and MS-DOS styles) are in
:mod:`netproto_twisted.ftp.listing`.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "CommandSyntaxError",
    "FTPReply",
    "ReplyParser",
    "format_eprt",
    "format_epsv",
    "format_mlsx_facts",
    "format_pasv",
    "format_port",
    "format_reply",
    "format_time_val",
    "parse_command",
    "parse_eprt",
    "parse_epsv",
    "parse_mlsx_line",
    "parse_pasv",
    "parse_port",
    "parse_time_val",
]

#: Reply codes (RFC 959 section 4.2, RFC 2228, RFC 2428, RFC 3659, RFC 4217).
RESTART_MARKER = 110
READY_SOON = 120
ALREADY_OPEN = 125
OPENING = 150
OK = 200
NOT_IMPLEMENTED_SUPERFLUOUS = 202
SYSTEM_STATUS = 211
DIRECTORY_STATUS = 212
FILE_STATUS = 213
HELP = 214
SYSTEM_TYPE = 215
SERVICE_READY = 220
GOODBYE = 221
NO_TRANSFER = 225
CLOSING_DATA = 226
ENTERING_PASSIVE = 227
ENTERING_EXTENDED_PASSIVE = 229
LOGGED_IN = 230
AUTH_OK = 234
FILE_ACTION_OK = 250
PATH_CREATED = 257
NEED_PASSWORD = 331
NEED_ACCOUNT = 332
PENDING_FURTHER = 350
SERVICE_CLOSING = 421
CANT_OPEN_DATA = 425
TRANSFER_ABORTED = 426
FILE_UNAVAILABLE_TEMP = 450
LOCAL_ERROR = 451
INSUFFICIENT_STORAGE = 452
SYNTAX_ERROR = 500
ARGUMENT_ERROR = 501
NOT_IMPLEMENTED = 502
BAD_SEQUENCE = 503
PARAMETER_NOT_IMPLEMENTED = 504
NOT_LOGGED_IN = 530
TLS_REQUIRED_FOR_POLICY = 534
BAD_PROTOCOL = 522
FILE_UNAVAILABLE = 550
PAGE_TYPE_UNKNOWN = 551
EXCEEDED_STORAGE = 552
BAD_FILE_NAME = 553

#: The longest reply we accept from a server, in lines (a FEAT or HELP of a real server
#: is a few dozen; a hostile one must not make us buffer for ever).
MAX_REPLY_LINES = 10_000

#: EPRT/EPSV network protocol numbers (RFC 2428).
NET_PRT_IPV4 = 1
NET_PRT_IPV6 = 2


class CommandSyntaxError(ValueError):
    """A command line or argument that cannot be parsed (the server replies 500/501)."""


@dataclass(frozen=True)
class FTPReply:
    """One complete reply: its code and its text lines (the code prefix removed)."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The reply's lines joined with newlines."""
        return "\n".join(self.lines)

    def raw(self) -> str:
        """The reply as ftplib returns it: the first line with its code, the rest as sent."""
        return format_reply(self.code, self.lines).decode("utf-8", "replace").rstrip("\r\n")

    @property
    def positive_preliminary(self) -> bool:
        """1yz."""
        return 100 <= self.code < 200

    @property
    def positive(self) -> bool:
        """1yz, 2yz or 3yz."""
        return self.code < 400


def format_reply(code: int, text: str | Iterable[str]) -> bytes:
    """Serialise a reply; several lines make an RFC 959 multi-line reply.

    Continuation lines are indented by one space, so that none of them can
    be mistaken for the end line (``"123 "``), whatever a file name holds.
    CR and LF inside a line are replaced (a file name must not forge a reply).
    """
    if not 100 <= code <= 599:
        raise ValueError(f"reply code out of range: {code}")
    lines = [text] if isinstance(text, str) else list(text)
    if not lines:
        lines = [""]
    clean = [line.replace("\r", " ").replace("\n", " ") for line in lines]
    if len(clean) == 1:
        return f"{code} {clean[0]}\r\n".encode("utf-8", "surrogateescape")
    out = [f"{code}-{clean[0]}"]
    out.extend(" " + line for line in clean[1:-1])
    out.append(f"{code} {clean[-1]}")
    return ("\r\n".join(out) + "\r\n").encode("utf-8", "surrogateescape")


def parse_command(line: bytes) -> tuple[str, str]:
    """Split a command line into an upper-case verb and its argument (the rest, as sent).

    The argument is decoded as UTF-8 (RFC 2640); bytes that are not UTF-8
    become surrogates (``surrogateescape``), so any byte sequence names the
    file it spells and is sent back unchanged; NUL anywhere is refused.
    """
    if b"\x00" in line:
        raise CommandSyntaxError("NUL in command")
    verb, _, argument = line.partition(b" ")
    if not verb or len(verb) > 4 or not verb.isalpha():
        raise CommandSyntaxError("syntax error, command unrecognized")
    return verb.decode("ascii").upper(), argument.decode("utf-8", "surrogateescape")


class ReplyParser:
    """Cut received lines into complete :class:`FTPReply` values (client side).

    Feed it lines without their CRLF; :meth:`feed` returns a reply when one
    is complete, else ``None``.

    :raises CommandSyntaxError: on a line that is not part of a reply.
    """

    _START = re.compile(rb"^([1-5][0-9][0-9])([ -])(.*)\Z", re.DOTALL)

    def __init__(self) -> None:
        self._code: bytes | None = None
        self._lines: list[str] = []

    def feed(self, line: bytes) -> FTPReply | None:
        """Take one line; return the reply it completes."""
        if self._code is None:
            m = self._START.match(line)
            if m is None:
                raise CommandSyntaxError(f"not an FTP reply: {line[:80]!r}")
            code, sep, text = m.groups()
            if sep == b" ":
                return FTPReply(int(code), (_text(text),))
            self._code = code
            self._lines = [_text(text)]
            return None
        if line.startswith(self._code + b" "):
            self._lines.append(_text(line[4:]))
            reply = FTPReply(int(self._code), tuple(self._lines))
            self._code = None
            self._lines = []
            return reply
        if len(self._lines) >= MAX_REPLY_LINES:
            raise CommandSyntaxError("multi-line reply too long")
        text = line[4:] if line.startswith(self._code + b"-") else line
        self._lines.append(_text(text))
        return None


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


# --- data-connection addresses ---------------------------------------------------------


def _byte(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 3:
        raise CommandSyntaxError(f"not a number from 0 to 255: {text!r}")
    value = int(text)
    if value > 255:
        raise CommandSyntaxError(f"not a number from 0 to 255: {text!r}")
    return value


def parse_port(argument: str) -> tuple[str, int]:
    """Parse ``PORT h1,h2,h3,h4,p1,p2`` into an IPv4 address and a port."""
    parts = argument.strip().split(",")
    if len(parts) != 6:
        raise CommandSyntaxError("PORT needs h1,h2,h3,h4,p1,p2")
    numbers = [_byte(p.strip()) for p in parts]
    host = ".".join(str(n) for n in numbers[:4])
    return host, numbers[4] * 256 + numbers[5]


def format_port(host: str, port: int) -> str:
    """The ``h1,h2,h3,h4,p1,p2`` argument of PORT (and the body of a 227 reply)."""
    address = ipaddress.IPv4Address(host)
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range: {port}")
    return ",".join([*(str(b) for b in address.packed), str(port >> 8), str(port & 0xFF)])


_PASV = re.compile(r"(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})")


def format_pasv(host: str, port: int) -> str:
    """The text of a 227 reply."""
    return f"Entering Passive Mode ({format_port(host, port)})."


def parse_pasv(text: str) -> tuple[str, int]:
    """Find the address and port in a 227 reply's text (anywhere in it, as ftplib does)."""
    m = _PASV.search(text)
    if m is None:
        raise CommandSyntaxError(f"no address in 227 reply: {text!r}")
    return parse_port(",".join(m.groups()))


def _port_number(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 5:
        raise CommandSyntaxError(f"bad port: {text!r}")
    value = int(text)
    if not 0 < value <= 65535:
        raise CommandSyntaxError(f"bad port: {text!r}")
    return value


def parse_eprt(argument: str) -> tuple[str, int]:
    """Parse ``EPRT |1|132.235.1.2|6275|`` (RFC 2428); the delimiter is the first character."""
    if len(argument) < 2:
        raise CommandSyntaxError("EPRT needs |proto|address|port|")
    delim = argument[0]
    if not 33 <= ord(delim) <= 126:
        raise CommandSyntaxError("bad EPRT delimiter")
    parts = argument.split(delim)
    if len(parts) != 5 or parts[0] or parts[4]:
        raise CommandSyntaxError("EPRT needs |proto|address|port|")
    proto, host, port = parts[1:4]
    if proto not in ("1", "2"):
        raise CommandSyntaxError("network protocol not supported, use (1,2)")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise CommandSyntaxError(f"bad EPRT address: {host!r}") from None
    if address.version != (4 if proto == "1" else 6):
        raise CommandSyntaxError("EPRT address does not match its protocol")
    return str(address), _port_number(port)


def format_eprt(host: str, port: int) -> str:
    """The argument of ``EPRT`` for an IPv4 or IPv6 address."""
    address = ipaddress.ip_address(host)
    proto = NET_PRT_IPV4 if address.version == 4 else NET_PRT_IPV6
    return f"|{proto}|{address}|{port}|"


def format_epsv(port: int) -> str:
    """The text of a 229 reply."""
    return f"Entering Extended Passive Mode (|||{port}|)"


_EPSV = re.compile(r"\((.)\1\1(\d{1,5})\1\)")


def parse_epsv(text: str) -> int:
    """The port in a 229 reply's text."""
    m = _EPSV.search(text)
    if m is None:
        raise CommandSyntaxError(f"no port in 229 reply: {text!r}")
    return _port_number(m.group(2))


# --- MLSx (RFC 3659) --------------------------------------------------------------------


def format_time_val(timestamp: float) -> str:
    """``YYYYMMDDHHMMSS`` in UTC (RFC 3659 time-val), as MDTM and the modify fact use."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(max(0.0, timestamp)))


def parse_time_val(text: str) -> float:
    """Parse a time-val (``YYYYMMDDHHMMSS[.sss]``, UTC) into a POSIX timestamp."""
    main, _, fraction = text.partition(".")
    if len(main) != 14 or not main.isascii() or not main.isdigit():
        raise CommandSyntaxError(f"bad time-val: {text!r}")
    if fraction and (not fraction.isascii() or not fraction.isdigit()):
        raise CommandSyntaxError(f"bad time-val: {text!r}")
    try:
        parsed = time.strptime(main, "%Y%m%d%H%M%S")
    except ValueError:
        raise CommandSyntaxError(f"bad time-val: {text!r}") from None
    import calendar

    return calendar.timegm(parsed) + (float("0." + fraction) if fraction else 0.0)


def format_mlsx_facts(facts: Mapping[str, str], name: str) -> str:
    """One MLSD line (or MLST's second line, without its leading space): ``f=v;...; name``."""
    body = "".join(f"{key}={value};" for key, value in facts.items())
    return f"{body} {name}"


def parse_mlsx_line(line: str) -> tuple[str, dict[str, str]]:
    """Parse an MLSD line into the name and its facts (keys lower-cased, as ftplib.mlsd)."""
    facts_text, sep, name = line.partition(" ")
    if not sep:
        raise CommandSyntaxError(f"not an MLSx line: {line!r}")
    facts: dict[str, str] = {}
    for fact in facts_text.split(";"):
        if not fact:
            continue
        key, eq, value = fact.partition("=")
        if not eq:
            raise CommandSyntaxError(f"bad fact {fact!r}")
        facts[key.lower()] = value
    return name, facts

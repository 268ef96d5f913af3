"""Telnet's byte codec, sans I/O: IAC escaping, commands, subnegotiation, CR NUL (RFC 854/855).

:class:`TelnetParser` splits a received stream into application data (its
:meth:`~TelnetParser.decode` return value) and protocol events passed to a
:class:`ParserSink` (a negotiation verb, a command such as ``IAC AYT``, a
complete subnegotiation).  The data path never walks bytes one by one in
Python: it finds the next ``IAC`` with :meth:`bytes.find` and copies the
runs between them, so text without ``IAC`` costs one search and one slice.

A subnegotiation is bounded: past ``max_subnegotiation`` bytes the rest of
it is dropped (and :meth:`ParserSink.subnegotiation_overflow` is told once),
so a peer that opens ``IAC SB`` and never closes it costs no memory.

:func:`escape` doubles ``IAC`` for sending; :func:`encode_text` also turns a
bare CR into CR NUL (NVT ASCII) and a lone LF into CR LF, for a side that
has not negotiated BINARY.  Imports nothing from ``twisted.internet``.
"""

from __future__ import annotations

import re
from typing import Protocol

__all__ = [
    "AO",
    "AYT",
    "BINARY",
    "BRK",
    "CHARSET",
    "COMMAND_NAMES",
    "DM",
    "DO",
    "DONT",
    "EC",
    "ECHO",
    "EL",
    "EOR",
    "EOR_OPTION",
    "GA",
    "IAC",
    "IP",
    "LINEMODE",
    "NAWS",
    "NEW_ENVIRON",
    "NOP",
    "OPTION_NAMES",
    "SB",
    "SE",
    "SGA",
    "STATUS",
    "TIMING_MARK",
    "TTYPE",
    "WILL",
    "WONT",
    "ParserSink",
    "TelnetParser",
    "encode_text",
    "escape",
    "negotiation",
    "subnegotiation",
]

# Commands (RFC 854, RFC 885 for EOR).
IAC = 255
DONT = 254
DO = 253
WONT = 252
WILL = 251
SB = 250
GA = 249
EL = 248
EC = 247
AYT = 246
AO = 245
IP = 244
BRK = 243
DM = 242
NOP = 241
SE = 240
EOR = 239

# Options.
BINARY = 0  # RFC 856
ECHO = 1  # RFC 857
SGA = 3  # RFC 858
STATUS = 5  # RFC 859
TIMING_MARK = 6  # RFC 860
TTYPE = 24  # RFC 1091
EOR_OPTION = 25  # RFC 885
NAWS = 31  # RFC 1073
LINEMODE = 34  # RFC 1184
NEW_ENVIRON = 39  # RFC 1572
CHARSET = 42  # RFC 2066

#: Names for logs and debug output.
COMMAND_NAMES = {
    DONT: "DONT",
    DO: "DO",
    WONT: "WONT",
    WILL: "WILL",
    SB: "SB",
    GA: "GA",
    EL: "EL",
    EC: "EC",
    AYT: "AYT",
    AO: "AO",
    IP: "IP",
    BRK: "BRK",
    DM: "DM",
    NOP: "NOP",
    SE: "SE",
    EOR: "EOR",
    IAC: "IAC",
}
OPTION_NAMES = {
    BINARY: "BINARY",
    ECHO: "ECHO",
    SGA: "SGA",
    STATUS: "STATUS",
    TIMING_MARK: "TIMING-MARK",
    TTYPE: "TTYPE",
    EOR_OPTION: "EOR",
    NAWS: "NAWS",
    LINEMODE: "LINEMODE",
    NEW_ENVIRON: "NEW-ENVIRON",
    CHARSET: "CHARSET",
}

_IAC = b"\xff"
_IAC_IAC = b"\xff\xff"
_CR_NUL = b"\r\x00"
_BARE_CR = re.compile(rb"\r(?!\n)")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_VERBS = frozenset((WILL, WONT, DO, DONT))

#: Parser states between calls.
_DATA = 0
_IAC_SEEN = 1  # IAC was the last byte of a chunk
_VERB = 2  # IAC WILL/WONT/DO/DONT seen, the option byte not yet
_SUB = 3  # inside IAC SB ... (the option and data being collected)
_SUB_IAC = 4  # inside a subnegotiation, IAC seen

#: Default bound on one subnegotiation's payload, in bytes.
DEFAULT_MAX_SUBNEGOTIATION = 8192


class ParserSink(Protocol):
    """What :class:`TelnetParser` reports besides the data."""

    def negotiation_received(self, verb: int, option: int) -> None:
        """``IAC WILL|WONT|DO|DONT option`` arrived."""

    def command_received(self, command: int) -> None:
        """A two-byte command arrived (``IAC NOP``, ``IAC AYT``, ``IAC GA``, ``IAC EOR`` ...)."""

    def subnegotiation_received(self, option: int, payload: bytes) -> None:
        """``IAC SB option payload IAC SE`` arrived (``IAC IAC`` in it already undone)."""

    def subnegotiation_overflow(self, option: int) -> None:
        """A subnegotiation grew past the bound; the rest of it is being dropped."""


def escape(data: bytes) -> bytes:
    """Return ``data`` with every ``IAC`` doubled (what telnetlib's ``write`` sends)."""
    return data.replace(_IAC, _IAC_IAC) if _IAC in data else data


def encode_text(data: bytes, *, binary: bool = False) -> bytes:
    """Return ``data`` ready for the wire: ``IAC`` doubled; unless ``binary``, NVT line ends.

    In NVT mode a lone LF becomes CR LF and a CR not followed by LF becomes
    CR NUL (RFC 854), so the peer never mistakes a carriage return for a
    line end.
    """
    if not binary:
        if b"\n" in data:
            data = _BARE_LF.sub(b"\r\n", data)
        if b"\r" in data:
            data = _BARE_CR.sub(_CR_NUL, data)
    return escape(data)


def negotiation(verb: int, option: int) -> bytes:
    """Return ``IAC verb option``."""
    return bytes((IAC, verb, option))


def subnegotiation(option: int, payload: bytes) -> bytes:
    """Return ``IAC SB option payload IAC SE`` with ``IAC`` in the payload doubled."""
    return bytes((IAC, SB, option)) + escape(payload) + bytes((IAC, SE))


class TelnetParser:
    """Split received Telnet bytes into data and events (see the module).

    :ivar binary: receive in binary mode (the peer WILL BINARY): CR NUL is
        then left as it is.
    :ivar max_subnegotiation: the bound on one subnegotiation's payload.
    """

    def __init__(
        self, sink: ParserSink, *, max_subnegotiation: int = DEFAULT_MAX_SUBNEGOTIATION
    ) -> None:
        self.sink = sink
        self.binary = False
        self.max_subnegotiation = max_subnegotiation
        self._state = _DATA
        self._verb = 0
        self._sub_option = -1  # -1: the option byte of the subnegotiation not yet seen
        self._sub = bytearray()
        self._sub_dropping = False
        self._last_cr = False  # the last data byte delivered was CR (NVT mode)

    @property
    def in_subnegotiation(self) -> bool:
        """Whether the stream is inside ``IAC SB`` ... (for tests and limits)."""
        return self._state in (_SUB, _SUB_IAC)

    def decode(self, data: bytes) -> bytes:
        """Return the application data in ``data``; report everything else to the sink."""
        if self._state == _DATA and _IAC not in data:
            return self._text(data)
        out: list[bytes] = []
        i = 0
        n = len(data)
        sink = self.sink
        while i < n:
            state = self._state
            if state == _DATA:
                j = data.find(_IAC, i)
                if j < 0:
                    out.append(self._text(data[i:] if i else data))
                    break
                if j > i:
                    out.append(self._text(data[i:j]))
                i = j + 1
                self._state = _IAC_SEEN
            elif state == _IAC_SEEN:
                cmd = data[i]
                i += 1
                if cmd == IAC:
                    out.append(_IAC)
                    self._last_cr = False
                    self._state = _DATA
                elif cmd in _VERBS:
                    self._verb = cmd
                    self._state = _VERB
                elif cmd == SB:
                    self._sub_option = -1
                    self._sub.clear()
                    self._sub_dropping = False
                    self._state = _SUB
                else:
                    self._state = _DATA
                    if cmd != SE:  # a stray SE is ignored
                        sink.command_received(cmd)
            elif state == _VERB:
                option = data[i]
                i += 1
                self._state = _DATA
                sink.negotiation_received(self._verb, option)
            elif state == _SUB:
                if self._sub_option < 0:
                    if data[i] == IAC:
                        i += 1
                        self._state = _SUB_IAC
                        continue
                    self._sub_option = data[i]
                    i += 1
                    continue
                j = data.find(_IAC, i)
                end = n if j < 0 else j
                if end > i:
                    self._collect(data, i, end)
                if j < 0:
                    break
                i = j + 1
                self._state = _SUB_IAC
            else:  # _SUB_IAC
                cmd = data[i]
                i += 1
                if cmd == IAC:
                    self._state = _SUB
                    if self._sub_option < 0:
                        self._sub_option = IAC
                    else:
                        self._collect(_IAC, 0, 1)
                    continue
                self._state = _DATA
                option = self._sub_option
                payload = bytes(self._sub)
                self._sub.clear()
                dropped = self._sub_dropping
                self._sub_dropping = False
                if cmd == SE:
                    if option >= 0 and not dropped:
                        sink.subnegotiation_received(option, payload)
                else:
                    # IAC <command> inside SB: the peer broke the framing; end the
                    # subnegotiation here (dropping it) and act on the command.
                    i -= 1
                    self._state = _IAC_SEEN
        return b"".join(out)

    def _collect(self, data: bytes, start: int, end: int) -> None:
        """Add ``data[start:end]`` to the subnegotiation, within the bound."""
        if self._sub_dropping:
            return
        room = self.max_subnegotiation - len(self._sub)
        if end - start > room:
            self._sub.clear()
            self._sub_dropping = True
            self.sink.subnegotiation_overflow(max(self._sub_option, 0))
            return
        self._sub += data[start:end]

    def _text(self, data: bytes) -> bytes:
        """Undo CR NUL in a run of data (NVT mode), also across chunk and IAC boundaries."""
        if self.binary or not data:
            return data
        if self._last_cr and data[0] == 0:
            data = data[1:]
            if not data:
                self._last_cr = False
                return data
        if b"\x00" in data and _CR_NUL in data:  # NUL is rare in text: a memchr decides
            data = data.replace(_CR_NUL, b"\r")
        self._last_cr = data[-1] == 13
        return data

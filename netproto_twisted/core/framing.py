"""Sans-I/O line framing with a length limit, for every line-based protocol.

:class:`LineBuffer` splits a byte stream into lines.  It is fed whatever the
transport delivers (:meth:`LineBuffer.feed`) and hands out complete lines one
at a time (:meth:`LineBuffer.next_line`), so that pipelined commands come out
in order and the caller may switch to raw mode (:meth:`LineBuffer.take_raw`)
between two lines: SMTP ``BDAT``, IMAP literals, FTP/NNTP bodies.

Every mode finds the end of a line at a LF byte; the modes of
:class:`LineEndings` differ in which CR bytes they accept around it:

``STRICT``
    A line ends with CRLF.  A line that ends with a bare LF, or that contains
    a CR anywhere else than right before its LF, raises
    :class:`BareLineEnding` (the SMTP smuggling defence; Postfix's
    ``smtpd_forbid_bare_newline``).  The error comes as soon as the LF
    arrives, so a peer that sends LF-only lines gets an answer at once.
``ACCEPT_LF``
    CRLF or a bare LF ends a line; a bare CR inside a line raises
    :class:`BareLineEnding`.
``NORMALIZE``
    CRLF or a bare LF ends a line; every bare CR inside a line is removed
    (``b"a\\rb\\r\\n"`` gives ``b"ab"``).  Nothing raises
    :class:`BareLineEnding`.

A bare CR never ends a line in any mode.

Line lengths: a line's length is its bytes as received *without* its
terminator (CRLF or LF).  Every line-length limit in the project counts
this way: :attr:`LineBuffer.max_length`, ``max_line_length`` of
:class:`~netproto_twisted.core.lineproto.LineProtocol`,
:class:`~netproto_twisted.core.dotstuff.DotUnstuffer`,
:class:`~netproto_twisted.core.limits.Limits` (``--max-line-length``), the
SMTP server's ``ServerSettings`` and its ``ReplyParser``.  The RFCs count
the CRLF (SMTP's 512-octet command line is 510 bytes here); constants that
quote an RFC figure, such as ``smtp.MAX_COMMAND_LINE``, say so.

This module imports nothing from ``twisted.internet``.
"""

from __future__ import annotations

import enum

from netproto_twisted.core.errors import LineTooLong, LocalProtocolError, RemoteProtocolError

__all__ = [
    "CR",
    "CRLF",
    "LF",
    "BareLineEnding",
    "LineBuffer",
    "LineEndings",
    "serialize_line",
]

#: The bytes that make line endings.
CR = b"\r"
LF = b"\n"
CRLF = b"\r\n"

_CR = 0x0D
_LF = 0x0A

#: Compact the buffer once this many consumed bytes sit at its front (and
#: they are at least half of it): amortised O(1) per byte.
_COMPACT_AT = 65536
#: Complete lines are split off in batches of about this many bytes (one C
#: call), then handed out one by one.
_SPLIT_WINDOW = 65536


class LineEndings(enum.Enum):
    """Which line endings a :class:`LineBuffer` (or a dot-unstuffer) accepts from the peer."""

    #: Only CRLF ends a line; a bare LF or bare CR raises :class:`BareLineEnding`.
    STRICT = "strict"
    #: CRLF or a bare LF ends a line; a bare CR inside a line raises :class:`BareLineEnding`.
    ACCEPT_LF = "accept-lf"
    #: CRLF or a bare LF ends a line; a bare CR inside a line is removed.
    NORMALIZE = "normalize"


class BareLineEnding(RemoteProtocolError):
    """The peer sent a bare LF or bare CR where only CRLF is allowed.

    :ivar line: the offending line, without its terminator (may be truncated
        to the part seen so far when raised by a streaming decoder).
    """

    def __init__(self, line: bytes, reason: str = "bare CR or LF in line") -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


class LineBuffer:
    """Split a byte stream into lines with a length limit; sans-I/O.

    Pipelined input is kept: feed any amount, then call :meth:`next_line`
    until it returns ``None``.  Between two calls the caller may take raw
    bytes with :meth:`take_raw` instead.

    Over-long lines: the length counts the bytes of a line as received,
    without its terminator (CRLF, or LF; bare CRs that ``NORMALIZE`` removes
    do count).  An over-long line is reported before any ending error.
    :meth:`next_line` raises
    :class:`~netproto_twisted.core.errors.LineTooLong` once per over-long
    line, as soon as the line is known to be too long (its terminator need
    not have arrived).  The rest of that line, up to and including its LF, is
    then discarded, also when it arrives in later feeds, and the session
    continues with the next line.  While that rest is being discarded the
    buffer holds nothing, so memory stays bounded by ``max_length`` plus one
    fed chunk provided :meth:`next_line` is called after each
    :meth:`feed`.

    Cost is O(n) in the bytes fed: complete lines are split off in batches
    of up to 64 KiB with a few C calls, and a batch with no bare CR or LF
    needs no per-line checks (about 3-4 million 20-byte lines/s in CPython
    3.11, pipelined in 64 KiB chunks).

    :ivar max_length: the longest line accepted, in bytes, terminator excluded
        (settable; takes effect at the next :meth:`next_line`).
    :ivar endings: which line endings are accepted (settable).
    """

    def __init__(self, max_length: int, *, endings: LineEndings = LineEndings.STRICT) -> None:
        if max_length < 0:
            raise ValueError(f"max_length must be >= 0, not {max_length}")
        self.max_length = max_length
        self.endings = endings
        self._buf = bytearray()
        # Start of the unconsumed bytes in _buf.
        self._pos = 0
        # Index in _buf up to which no LF exists (so scans never repeat).
        self._scanned = 0
        # The complete lines at the front of the unconsumed bytes, split off
        # in one batch, in reverse order (next one last).  In a clean batch
        # (no bare CR or LF) each is without its CRLF, else without its LF.
        self._lines: list[bytes] = []
        self._clean = False
        # True while the rest of an over-long line is being dropped.
        self._discarding = False

    def __len__(self) -> int:
        """Return how many bytes are buffered (not yet returned)."""
        return len(self._buf) - self._pos

    @property
    def discarding(self) -> bool:
        """Whether the rest of an over-long line is being dropped until its LF arrives."""
        return self._discarding

    @property
    def idle(self) -> bool:
        """Whether nothing is buffered and no over-long line is being dropped.

        A caller may then handle a chunk that is exactly one complete,
        acceptable line itself, without :meth:`feed` and :meth:`next_line`:
        the buffer would hold nothing afterwards either way.
        """
        return self._pos == len(self._buf) and not self._discarding

    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer."""
        if self._discarding:
            end = data.find(LF)
            if end < 0:
                return
            self._discarding = False
            data = data[end + 1 :]
        self._buf += data

    def next_line(self) -> bytes | None:
        """Return the next complete line without its terminator, or ``None`` if there is none.

        :raises LineTooLong: once per over-long line (see the class docstring).
        :raises BareLineEnding: when the line's endings break :attr:`endings`;
            the offending line is consumed, the next call continues after it.
        """
        lines = self._lines
        if not lines and not self._split():
            buf = self._buf
            pending = len(buf) - self._pos
            limit = self.max_length
            if pending > limit and not (pending == limit + 1 and buf[-1] == _CR):
                # Too long even if its terminator came next: drop it and what follows.
                self._reset()
                self._discarding = True
                raise LineTooLong(limit)
            return None
        line = self._lines.pop()
        size = len(line)
        if self._clean:
            self._pos += size + 2
            if self._pos >= _COMPACT_AT and self._pos * 2 >= len(self._buf):
                self._compact()
            if size > self.max_length:
                raise LineTooLong(self.max_length)
            return line
        self._pos += size + 1
        if self._pos >= _COMPACT_AT and self._pos * 2 >= len(self._buf):
            self._compact()
        has_cr = size > 0 and line[-1] == _CR
        if size - has_cr > self.max_length:
            raise LineTooLong(self.max_length)
        if has_cr:
            line = line[:-1]
        endings = self.endings
        if endings is LineEndings.STRICT:
            if not has_cr:
                raise BareLineEnding(line, "bare LF ends the line")
            if CR in line:
                raise BareLineEnding(line, "bare CR in line")
        elif CR in line:
            if endings is LineEndings.ACCEPT_LF:
                raise BareLineEnding(line, "bare CR in line")
            line = line.replace(CR, b"")
        return line

    def _split(self) -> bool:
        """Split the next batch of complete lines into ``_lines``; return whether there was one."""
        buf = self._buf
        pos = self._pos
        end = buf.find(LF, max(self._scanned, pos))
        if end < 0:
            self._scanned = len(buf)
            return False
        last = buf.rfind(LF, end, max(end + 1, pos + _SPLIT_WINDOW))
        batch = bytes(buf[pos : last + 1])
        pairs = batch.count(CRLF)
        self._clean = clean = batch.count(LF) == pairs and batch.count(CR) == pairs
        lines = batch.split(CRLF if clean else LF)
        lines.pop()
        lines.reverse()
        self._lines = lines
        return True

    def take_raw(self, n: int | None = None) -> bytes:
        """Remove and return up to ``n`` buffered bytes (all of them if ``n`` is ``None``)."""
        pos = self._pos
        available = len(self._buf) - pos
        if n is None or n >= available:
            data = bytes(self._buf[pos:])
            self._reset()
            return data
        if n < 0:
            raise ValueError(f"n must be >= 0, not {n}")
        self._pos = pos + n
        data = bytes(self._buf[pos : self._pos])
        lines = self._lines
        term = 2 if self._clean else 1
        while n and lines:
            # Keep the batch of split lines in step with the bytes taken.
            top = lines[-1]
            if n >= len(top) + term:
                lines.pop()
                n -= len(top) + term
            elif n <= len(top):
                lines[-1] = top[n:]
                n = 0
            else:
                # Cut between the CR and the LF of a CRLF: split again from here.
                lines.clear()
                n = 0
        if self._pos >= _COMPACT_AT and self._pos * 2 >= len(self._buf):
            self._compact()
        return data

    def clear(self) -> int:
        """Discard everything buffered and forget a pending over-long line; return the byte count.

        Used after a STARTTLS upgrade, where any plaintext already buffered
        must be dropped.
        """
        count = len(self)
        self._reset()
        self._discarding = False
        return count

    def _reset(self) -> None:
        self._lines = []
        self._buf = bytearray()
        self._pos = 0
        self._scanned = 0

    def _compact(self) -> None:
        del self._buf[: self._pos]
        self._scanned = max(0, self._scanned - self._pos)
        self._pos = 0


def serialize_line(line: bytes | str) -> bytes:
    """Return ``line`` with CRLF appended (a ``str`` is encoded as UTF-8).

    :raises LocalProtocolError: if the line contains CR, LF or NUL, which
        would let an argument inject another command.
    """
    data = line.encode("utf-8") if isinstance(line, str) else bytes(line)
    if CR in data or LF in data or b"\x00" in data:
        raise LocalProtocolError(f"CR, LF or NUL in a line to send: {data[:80]!r}")
    return data + CRLF

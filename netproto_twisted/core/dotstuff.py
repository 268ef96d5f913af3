"""Sans-I/O dot-stuffing for SMTP DATA, POP3 multi-line replies and NNTP articles.

A multi-line block is sent as lines ending in CRLF; a line that starts with
``"."`` gets one more ``"."`` in front, and the block ends with a line that
is a single ``"."`` (RFC 5321 4.5.2, RFC 1939 3, RFC 3977 3.1.1).

:class:`DotStuffer` encodes a stream, :class:`DotUnstuffer` decodes one; both
accept chunks split anywhere (a terminator may arrive one byte per chunk).
:class:`EolNormalizer` only rewrites line endings as CRLF (SMTP BDAT, FTP's
ASCII mode, a message stored with LF line ends sent over POP3 or NNTP).
Each encoder has ``encode(chunk)`` and ``finish()``: the
:class:`StreamEncoder` shape that :mod:`netproto_twisted.core.streaming`
streams a file through.

This module imports nothing from ``twisted.internet``.
"""

from __future__ import annotations

import re
from itertools import islice, repeat
from typing import Protocol

from netproto_twisted.core.errors import (
    LineTooLong,
    LocalProtocolError,
    RemoteProtocolError,
)
from netproto_twisted.core.framing import CR, CRLF, LF, BareLineEnding, LineEndings

__all__ = [
    "TERMINATOR",
    "DotStuffer",
    "DotUnstuffer",
    "EolNormalizer",
    "StreamEncoder",
    "dot_stuff",
    "dot_unstuff",
]

#: The line that ends a dot-stuffed block, with the CRLF that ends the line before it.
TERMINATOR = b"\r\n.\r\n"

_DOT = 0x2E
_CR = 0x0D
_LF = 0x0A
_BREAK_BYTES = (_CR, _LF)
_EOL = re.compile(rb"\r\n|\r|\n")
# A line that is a single dot, seen from its first byte.
_DOT_LINE = b".\r\n"
# A CRLF followed by a line-start dot: a stuffed line or the terminator.
_DOT_AFTER_CRLF = b"\r\n."
_STUFFED = b"\r\n.."
# Lines shorter than _SHORT_LINE bytes on average in the first _SAMPLE bytes
# of a chunk: check its line breaks with counts rather than splitlines.
_SAMPLE = 4096
_SHORT_LINE = 16
# Up to this many dots in a chunk are looked at one by one.
_FEW_DOTS = 8
# Where the block ends after a protocol error, seen from the LF before it.
_STRICT_ENDS = (b"\r\n.\r\n",)
_LENIENT_ENDS = (b"\n.\r\n", b"\n.\n")


def _lines_paired(chunk: bytes, lines: list[bytes]) -> bool:
    """Whether every CR and LF of ``chunk``, but a final CR, is part of a CRLF pair.

    ``lines`` is ``chunk.splitlines()`` (which breaks at CR, LF and CRLF).
    With ``b`` CR and LF bytes, ``t`` line breaks and ``p`` CRLF pairs,
    ``t = b - p``; so ``b == 2 * t`` exactly when every CR and every LF is
    in a pair, and ``b == 2 * t - 1`` when, besides, the final byte is a CR
    (which no LF can follow).  One C pass and one copy, where three
    ``count`` calls (CR, LF, CRLF: the slowest) would take three passes.
    """
    breaks = len(chunk) - len(b"".join(lines))
    last = chunk[-1]
    if last == _CR:
        return breaks == 2 * len(lines) - 1
    return breaks == 2 * (len(lines) if last == _LF else len(lines) - 1)


def _line_breaks_paired(chunk: bytes) -> bool:
    """Whether every CR and LF of a non-empty ``chunk``, but a final CR, is part of a CRLF pair.

    ``splitlines`` costs per line, ``count`` per byte: many short lines (a
    sample of the first 4 KiB says so) take the three counts.
    """
    if chunk.count(LF, 0, _SAMPLE) > _SAMPLE // _SHORT_LINE:
        end = len(chunk) - 1 if chunk[-1] == _CR else len(chunk)
        pairs = chunk.count(CRLF, 0, end)
        return chunk.count(CR, 0, end) == pairs and chunk.count(LF, 0, end) == pairs
    return _lines_paired(chunk, chunk.splitlines())


class StreamEncoder(Protocol):
    """What encodes a stream chunk by chunk: :class:`DotStuffer`, :class:`EolNormalizer`."""

    def encode(self, chunk: bytes) -> bytes:
        """Return the encoded form of the next chunk (chunks may be split anywhere)."""

    def finish(self) -> bytes:
        """Return what ends the encoded stream (``b""`` if nothing does)."""


class EolNormalizer:
    """Rewrite CRLF, bare CR and bare LF as CRLF in a stream split anywhere.

    A CR at the end of one chunk followed by a LF at the start of the next
    is one CRLF; a CR at the end of a chunk is written at once (as CRLF),
    so nothing is held back between chunks.  All other bytes pass unchanged.
    """

    def __init__(self) -> None:
        self._skip_lf = False

    def encode(self, chunk: bytes) -> bytes:
        """Return ``chunk`` with normalised line endings."""
        if self._skip_lf and chunk:
            # The LF of a CRLF whose CR ended the last non-empty chunk.
            self._skip_lf = False
            if chunk[0] == _LF:
                chunk = chunk[1:]
        if not chunk:
            return chunk
        self._skip_lf = chunk[-1] == _CR
        if _line_breaks_paired(chunk):
            return chunk + LF if self._skip_lf else chunk
        return _EOL.sub(CRLF, chunk)

    def finish(self) -> bytes:
        """Nothing ends a normalised stream: return ``b""``."""
        return b""


class DotStuffer:
    """Encode a message as a dot-stuffed block, chunk by chunk.

    Line endings are normalised the way :mod:`smtplib` does: CRLF, a bare LF
    and a bare CR each become CRLF (a CR at the end of one chunk followed by
    a LF at the start of the next counts as one CRLF).  So the output holds
    no bare CR or LF, every line that starts with ``"."`` is stuffed, and no
    input can end the block early, whatever line endings a receiver accepts.
    All other bytes (NUL, 8-bit) pass unchanged.
    """

    def __init__(self) -> None:
        self._at_line_start = True
        self._skip_lf = False
        self._finished = False

    def encode(self, chunk: bytes) -> bytes:
        """Return the dot-stuffed, CRLF-normalised form of the next chunk of the message."""
        if self._finished:
            raise LocalProtocolError("encode() after finish()")
        if self._skip_lf and chunk:
            # The LF of a CRLF whose CR ended the last non-empty chunk.
            self._skip_lf = False
            if chunk[0] == _LF:
                chunk = chunk[1:]
        if not chunk:
            return b""
        if _line_breaks_paired(chunk):
            if chunk[-1] == _CR:
                # A CRLF whose LF may start the next chunk.
                self._skip_lf = True
                chunk += LF
        else:
            self._skip_lf = chunk[-1] == _CR
            chunk = _EOL.sub(CRLF, chunk)
        # Many chunks (base64) have no dot at all; split and join take one
        # pass where replace takes two.
        out = _STUFFED.join(chunk.split(_DOT_AFTER_CRLF)) if b"." in chunk else chunk
        if self._at_line_start and out[0] == _DOT:
            out = b"." + out
        self._at_line_start = out.endswith(CRLF)
        return out

    def finish(self) -> bytes:
        """Return the block's end: CRLF if the message did not end with one, then ``.CRLF``."""
        if self._finished:
            raise LocalProtocolError("finish() called twice")
        self._finished = True
        return _DOT_LINE if self._at_line_start else CRLF + _DOT_LINE


def dot_stuff(message: bytes) -> bytes:
    """Return a whole message dot-stuffed and terminated (see :class:`DotStuffer`)."""
    stuffer = DotStuffer()
    return stuffer.encode(message) + stuffer.finish()


class DotUnstuffer:
    """Decode a dot-stuffed block, chunk by chunk, up to its terminating ``"."`` line.

    The block starts at the beginning of a line, so ``b".\\r\\n"`` as the
    very first bytes ends an empty block and ``b"..x"`` decodes to ``b".x"``.
    :meth:`feed` returns the payload decoded so far: every line ends with
    CRLF and has its stuffing dot removed (RFC 5321 4.5.2: the first ``"."``
    of any line is removed).  Once the terminator has been consumed,
    :attr:`done` is true and :meth:`rest` returns what followed it (the next
    pipelined commands).

    Line endings, per ``endings``:

    * ``STRICT``: only CRLF ends a line and only ``<CRLF>.<CRLF>`` ends the
      block.  A bare LF or bare CR anywhere is an error, and none of
      ``<LF>.<LF>``, ``<LF>.<CRLF>``, ``<CRLF>.<LF>``, ``<CR>.<CR>`` ends the
      block (the SMTP smuggling defence, CVE-2023-51764 and its kin).
    * ``ACCEPT_LF``: CRLF or a bare LF ends a line (written out as CRLF), so
      ``"."`` between any two of them ends the block; a bare CR is an error.
    * ``NORMALIZE``: like ``ACCEPT_LF``, but a bare CR inside a line is
      removed instead of being an error.

    ``max_line_length``, if given, is the longest line accepted in bytes as
    received (the stuffing dot counted, the line ending not: RFC 5321's
    limit of 1000 with the CRLF is ``998``); a longer line is an error.

    Errors and resynchronisation: at the first error (:class:`BareLineEnding`
    or :class:`~netproto_twisted.core.errors.LineTooLong`) the decoder sets
    :attr:`error`, stops returning payload, and keeps consuming input,
    discarding it, until the block's terminator under the rules above (in
    ``STRICT`` mode only ``<CRLF>.<CRLF>``; a bare LF is never a line start
    there).  The :meth:`feed` call that consumes that terminator sets
    :attr:`done` and then raises the error; :meth:`rest` then returns the
    bytes after the terminator.  So a server replies with an error, drops
    the whole message (including payload returned before the error was
    seen), and continues the session with :meth:`rest`; a caller that does
    not handle the exception never accepts a damaged or smuggled message.
    :attr:`error` is set as soon as the error is seen, so a caller may stop
    storing early.  A peer that ends its data with ``<LF>.<LF>`` is never
    seen to finish in ``STRICT`` mode: the caller's message size limit and
    idle timeout end that session (as with Postfix's
    ``smtpd_forbid_bare_newline``).  The decoder itself keeps no more than a
    few bytes between feeds.

    :ivar done: true once the terminator has been consumed.
    :ivar error: the first protocol error seen, or ``None``.
    """

    def __init__(
        self,
        *,
        endings: LineEndings = LineEndings.STRICT,
        max_line_length: int | None = None,
    ) -> None:
        if max_line_length is not None and max_line_length < 1:
            raise ValueError(f"max_line_length must be >= 1, not {max_line_length}")
        self.endings = endings
        self.max_line_length = max_line_length
        self.done = False
        self.error: RemoteProtocolError | None = None
        self._rest = bytearray()
        # Undecided bytes kept from the previous feed: the start of a dot
        # line ("." or ".\r") or a CR that may start a CRLF.
        self._carry = b""
        self._at_line_start = True
        self._line_len = 0
        # After an error: the last bytes consumed, to find a terminator split
        # over feeds.
        self._tail = b""

    def rest(self) -> bytes:
        """Return the bytes received after the terminator (valid once :attr:`done`)."""
        if not self.done:
            raise LocalProtocolError("rest() before the end of the block")
        return bytes(self._rest)

    def feed(self, data: bytes) -> bytes:
        """Consume received bytes; return the payload decoded from them (see the class docstring).

        After :attr:`done`, further bytes are appended to :meth:`rest`.

        :raises BareLineEnding: in the call that consumes the terminator, if a
            line ending broke the rules of ``endings``.
        :raises LineTooLong: likewise, if a line was longer than ``max_line_length``.
        """
        if self.done:
            self._rest += data
            return b""
        if self.error is None:
            out = self._decode(data)
        else:
            self._skip(data)
            out = b""
        if self.done and self.error is not None:
            raise self.error
        return out

    def _fail(self, error: RemoteProtocolError, tail: bytes, remaining: bytes) -> None:
        """Record ``error`` and go on discarding up to the terminator."""
        self.error = error
        self._carry = b""
        self._tail = tail
        self._skip(remaining)

    def _skip(self, data: bytes) -> None:
        """Discard ``data`` up to and including the terminator, if it is there."""
        text = self._tail + data
        ends = _STRICT_ENDS if self.endings is LineEndings.STRICT else _LENIENT_ENDS
        found = -1
        after = 0
        for end in ends:
            at = text.find(end)
            if at >= 0 and (found < 0 or at < found):
                found = at
                after = at + len(end)
        if found >= 0:
            self.done = True
            self._tail = b""
            self._rest = bytearray(text[after:])
        else:
            self._tail = text[-4:]

    def _decode_bulk(self, buf: bytes) -> bytes | None:
        """Decode all of ``buf`` at once if nothing in it needs the line-by-line path.

        The common case in a few C passes: one to check that every CR and LF
        is paired (and, with a limit, the line lengths), a ``find`` for a dot
        (there is none in base64) and, only if there is one, a ``find`` per
        dot while there are few, else a ``split`` at line-start dots; then a
        ``join``.  Returns ``None``, with the decoder's
        state untouched, for anything unusual (a bare CR or LF anywhere in
        ``buf``, even after the terminator; a line over the limit; a dot line
        at the very start), which the line-by-line path decodes with the
        same result.
        """
        n = len(buf)
        if not n:
            return b""
        start = 0
        if self._at_line_start and buf[0] == _DOT:
            if _DOT_LINE.startswith(buf[:3]):
                return None
            start = 1
        if not self._clean(buf):
            return None
        # From here every line break is a CRLF, so every line-start dot but
        # the first byte's follows a CRLF.
        end = n - 1 if buf[-1] == _CR else n
        dot = buf.find(b".", 2)
        if dot < 0:
            block = buf if start == 0 and end == n else buf[start:end]
        else:
            few = _few_dot_lines(buf, dot)
            cut = (
                self._cut_dots(buf, start, end, few)
                if few is not None
                else self._split_dots(buf, start, end)
            )
            if cut is None:
                # A "." line that may end the block: the terminator, or at the
                # end of buf, perhaps the start of the terminator.
                return self._decode_to_dot_line(buf, start, dot)
            block = cut
        self._advance(buf, end)
        return block

    @staticmethod
    def _cut_dots(buf: bytes, start: int, end: int, dots: list[int]) -> bytes | None:
        """``buf[start:end]`` without the dots at ``dots``; ``None`` if one may end the block."""
        if not dots:
            return buf if start == 0 and end == len(buf) else buf[start:end]
        parts = []
        for at in dots:
            if at + 1 >= end or buf.startswith(CRLF, at + 1):
                return None
            parts.append(buf[start:at])
            start = at + 1
        parts.append(buf[start:end])
        return b"".join(parts)

    @staticmethod
    def _split_dots(buf: bytes, start: int, end: int) -> bytes | None:
        """Like :meth:`_cut_dots` for many dots: split at every CRLF ``"."`` and join."""
        pieces = (buf[start:] if start else buf).split(_DOT_AFTER_CRLF)
        if len(pieces) == 1:
            return buf if start == 0 and end == len(buf) else buf[start:end]
        # The terminator is a piece starting with CRLF, or an empty one when
        # a dot line follows it; at the end of buf, b"" or CR is a dot line
        # that may become the terminator.
        if (
            b"" in pieces
            or pieces[-1] == CR
            or any(map(bytes.startswith, islice(pieces, 1, None), repeat(CRLF)))
        ):
            return None
        if end < len(buf):
            pieces[-1] = pieces[-1][:-1]
        return CRLF.join(pieces)

    def _decode_to_dot_line(self, buf: bytes, start: int, dot: int) -> bytes:
        """The bulk path's end for a clean ``buf`` with a terminator or a dot line at its end."""
        n = len(buf)
        end = n - 1 if buf[-1] == _CR else n
        terminator = buf.find(TERMINATOR, dot - 2)
        if terminator >= 0:
            end = terminator + 2
        elif buf.endswith(_DOT_AFTER_CRLF):
            end = n - 1
        elif buf.endswith(b"\r\n.\r"):
            end = n - 2
        block = CRLF.join(buf[start:end].split(_DOT_AFTER_CRLF))
        if terminator >= 0:
            self.done = True
            self._rest = bytearray(buf[end + 3 :])
        else:
            self._advance(buf, end)
        return block

    def _clean(self, buf: bytes) -> bool:
        """Whether ``buf`` breaks lines only with CRLF (a final CR aside), none over the limit."""
        limit = self.max_line_length
        if limit is None or len(buf) + self._line_len <= limit:
            return _line_breaks_paired(buf)
        lines = buf.splitlines()
        return (
            _lines_paired(buf, lines)
            and len(lines[0]) + self._line_len <= limit
            and max(map(len, lines)) <= limit
        )

    def _advance(self, buf: bytes, end: int) -> None:
        """Keep ``buf[end:]`` for the next feed, after the bulk path consumed ``buf[:end]``."""
        self._carry = buf[end:]
        lf = buf.rfind(LF, 0, end)
        if lf < 0:
            self._line_len += end
        else:
            self._line_len = end - lf - 1
        # At a line start after a CRLF, with nothing or a possible dot line carried.
        self._at_line_start = lf >= 0 and lf == end - 1

    def _decode(self, data: bytes) -> bytes:
        buf = self._carry + data if self._carry else data
        self._carry = b""
        bulk = self._decode_bulk(buf)
        if bulk is not None:
            return bulk
        return self._decode_lines(buf)

    def _decode_lines(self, buf: bytes) -> bytes:
        """Decode ``buf`` line by line, as the class docstring says."""
        strict = self.endings is LineEndings.STRICT
        normalize = self.endings is LineEndings.NORMALIZE
        limit = self.max_line_length
        out: list[bytes] = []
        n = len(buf)
        p = 0
        while p < n:
            if self._at_line_start:
                self._at_line_start = False
                if buf[p] == _DOT:
                    if buf.startswith(_DOT_LINE, p) or (not strict and buf.startswith(b".\n", p)):
                        self.done = True
                        self._rest = bytearray(buf[p + (3 if buf[p + 1] == _CR else 2) :])
                        break
                    if n - p < 3 and _DOT_LINE.startswith(buf[p:]):
                        self._at_line_start = True
                        self._carry = buf[p:]
                        break
                    p += 1
                    self._line_len = 1
            lf = buf.find(LF, p)
            if lf < 0:
                # An incomplete line: hand out what is certain, keep a final CR.
                stop = n - 1 if buf[n - 1] == _CR else n
                self._line_len += stop - p
                if limit is not None and self._line_len > limit:
                    self._fail(LineTooLong(limit), buf[stop:], b"")
                    break
                if buf.find(CR, p, stop) >= 0:
                    if not normalize:
                        self._fail(BareLineEnding(buf[p:stop], "bare CR in line"), buf[stop:], b"")
                        break
                    out.append(buf[p:stop].replace(CR, b""))
                else:
                    out.append(buf[p:stop])
                self._carry = buf[stop:]
                break
            has_cr = lf > p and buf[lf - 1] == _CR
            stop = lf - 1 if has_cr else lf
            self._line_len += stop - p
            ending = CRLF if has_cr else LF
            if limit is not None and self._line_len > limit:
                self._fail(LineTooLong(limit), ending, buf[lf + 1 :])
                break
            if strict and not has_cr:
                self._fail(BareLineEnding(buf[p:stop], "bare LF ends the line"), LF, buf[lf + 1 :])
                break
            if buf.find(CR, p, stop) >= 0:
                if not normalize:
                    error = BareLineEnding(buf[p:stop], "bare CR in line")
                    self._fail(error, ending, buf[lf + 1 :])
                    break
                out.append(buf[p:stop].replace(CR, b""))
                out.append(CRLF)
            elif has_cr:
                out.append(buf[p : lf + 1])
            else:
                out.append(buf[p:stop])
                out.append(CRLF)
            p = lf + 1
            self._at_line_start = True
            self._line_len = 0
        return b"".join(out)


def _few_dot_lines(buf: bytes, dot: int) -> list[int] | None:
    """Where the line-start dots of a clean ``buf`` are, from its dot at ``dot`` on.

    ``None`` if ``buf`` has more than :data:`_FEW_DOTS` dots from there
    (text): one ``split`` is then cheaper than a ``find`` per dot.  Base64
    has no dot at all, and a body of long lines few, so each ``find``
    (``memchr``) skips most of the chunk.
    """
    found = []
    for _ in range(_FEW_DOTS):
        if buf[dot - 1] == _LF:  # clean: a CR comes before it
            found.append(dot)
        dot = buf.find(b".", dot + 1)
        if dot < 0:
            return found
    return None


def dot_unstuff(
    data: bytes,
    *,
    endings: LineEndings = LineEndings.STRICT,
    max_line_length: int | None = None,
) -> tuple[bytes, bytes]:
    """Decode a whole dot-stuffed block; return ``(payload, bytes after the terminator)``.

    :raises RemoteProtocolError: if the terminator is missing, or as
        :meth:`DotUnstuffer.feed` raises.
    """
    decoder = DotUnstuffer(endings=endings, max_line_length=max_line_length)
    payload = decoder.feed(data)
    if not decoder.done:
        raise RemoteProtocolError("dot-stuffed block without its terminating line")
    return payload, decoder.rest()

"""Sans-I/O dot-stuffing for SMTP DATA, POP3 multi-line replies and NNTP articles.

A multi-line block is sent as lines ending in CRLF; a line that starts with
``"."`` gets one more ``"."`` in front, and the block ends with a line that
is a single ``"."`` (RFC 5321 4.5.2, RFC 1939 3, RFC 3977 3.1.1).

:class:`DotStuffer` encodes a stream, :class:`DotUnstuffer` decodes one; both
accept chunks split anywhere (a terminator may arrive one byte per chunk).

This module imports nothing from ``twisted.internet``.
"""

from __future__ import annotations

import re

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
    "dot_stuff",
    "dot_unstuff",
]

#: The line that ends a dot-stuffed block, with the CRLF that ends the line before it.
TERMINATOR = b"\r\n.\r\n"

_DOT = 0x2E
_CR = 0x0D
_EOL = re.compile(rb"\r\n|\r|\n")
# A line that is a single dot, seen from its first byte.
_DOT_LINE = b".\r\n"
# Where the block ends after a protocol error, seen from the LF before it.
_STRICT_ENDS = (b"\r\n.\r\n",)
_LENIENT_ENDS = (b"\n.\r\n", b"\n.\n")


def _is_normal(chunk: bytes) -> bool:
    """Whether every CR and LF in ``chunk`` is part of a CRLF pair."""
    pairs = chunk.count(CRLF)
    return chunk.count(CR) == pairs and chunk.count(LF) == pairs


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
        if self._skip_lf:
            if chunk[:1] == LF:
                chunk = chunk[1:]
            if chunk:
                self._skip_lf = False
        if not chunk:
            return b""
        if not _is_normal(chunk):
            self._skip_lf = chunk[-1] == _CR
            chunk = _EOL.sub(CRLF, chunk)
        out = chunk.replace(b"\r\n.", b"\r\n..")
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

    def _decode_clean(self, buf: bytes, start: int, out: list[bytes]) -> int:
        """Decode the whole lines of ``buf`` from ``start`` in bulk if they are clean.

        The common case (CRLF lines, none too long, no terminator) in a few C
        calls, from a line start; returns where it stopped.  Anything unusual
        is left to the line-by-line path, which gives the same result.
        """
        end = _clean_lines_end(buf, start)
        if end == start:
            return start
        block = buf[start:end] if start or end < len(buf) else buf
        limit = self.max_line_length
        # The longest line counts its stuffing dot, not its CRLF.
        if (
            limit is not None
            and len(block) - 2 > limit
            and max(map(len, block.split(CRLF))) > limit
        ):
            return start
        payload = block.replace(b"\r\n.", CRLF)
        out.append(payload[1:] if block[0] == _DOT else payload)
        return end

    def _decode(self, data: bytes) -> bytes:
        buf = self._carry + data if self._carry else data
        self._carry = b""
        strict = self.endings is LineEndings.STRICT
        normalize = self.endings is LineEndings.NORMALIZE
        limit = self.max_line_length
        out: list[bytes] = []
        n = len(buf)
        p = 0
        bulk = True
        while p < n:
            if self._at_line_start:
                if bulk:
                    # Once per feed, at the first line start.
                    bulk = False
                    p = self._decode_clean(buf, p, out)
                    if p == n:
                        break
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


def _clean_lines_end(buf: bytes, start: int) -> int:
    """Return where the run of whole, clean CRLF lines of ``buf`` from ``start`` ends.

    Clean: no bare CR or LF.  The run stops before a terminating ``"."``
    line, so that the line-by-line path finds it.  ``start`` if there is no
    such run.
    """
    last = buf.rfind(LF, start)
    if last < 0:
        return start
    end = last + 1
    pairs = buf.count(CRLF, start, end)
    if buf.count(LF, start, end) != pairs or buf.count(CR, start, end) != pairs:
        return start
    if buf.startswith(_DOT_LINE, start):
        return start
    stop = buf.find(TERMINATOR, start, end)
    return end if stop < 0 else stop + 2


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

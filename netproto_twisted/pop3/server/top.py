"""``TOP msg n`` as a stream encoder: the header, the blank line, ``n`` body lines, dot-stuffed."""

from __future__ import annotations

from netproto_twisted.core.dotstuff import DotStuffer

__all__ = ["TopEncoder"]


class TopEncoder:
    """Pass the header and the first ``lines`` body lines to a :class:`DotStuffer`; drop the rest.

    Lines end at LF (a CR before it belongs to the line ending), so files
    stored with LF or CRLF endings are cut alike; the state carries across
    blocks.  :attr:`done` tells when nothing more will pass (the reader may stop).
    """

    def __init__(self, lines: int) -> None:
        self._stuffer = DotStuffer()
        self._left = lines
        self._in_header = True
        self._line_start = True
        self._blank_so_far = True  # the current line has only a CR so far
        self.done = False

    def encode(self, chunk: bytes) -> bytes:
        """Return the encoded part of ``chunk`` that TOP sends."""
        if self.done or not chunk:
            return b""
        cut = self._cut(chunk)
        return self._stuffer.encode(chunk[:cut]) if cut else b""

    def _cut(self, chunk: bytes) -> int:
        """How much of ``chunk`` passes; updates the state."""
        position = 0
        size = len(chunk)
        while position < size:
            if not self._in_header and self._left <= 0 and self._line_start:
                self.done = True
                return position
            newline = chunk.find(b"\n", position)
            segment_end = size if newline < 0 else newline
            segment = chunk[position:segment_end]
            if segment not in (b"", b"\r"):
                self._blank_so_far = False
            if newline < 0:
                self._line_start = False
                return size
            # A line ends here.
            if self._in_header:
                if self._blank_so_far:
                    self._in_header = False
            else:
                self._left -= 1
            self._line_start = True
            self._blank_so_far = True
            position = newline + 1
        if not self._in_header and self._left <= 0 and self._line_start:
            self.done = True
        return size

    def finish(self) -> bytes:
        """Return the end of the reply (a line ending if needed, then ``.``)."""
        return self._stuffer.finish()

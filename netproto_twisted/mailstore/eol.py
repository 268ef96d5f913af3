"""Line endings of stored messages: LF on disk (the Maildir convention), CRLF on the wire.

Messages arrive with CRLF line endings (SMTP, IMAP APPEND) and are stored with
LF, as Dovecot stores them, so that mail readers working on the files (mutt,
s-nail) see the end of the header and subjects without a CR.  They leave with
CRLF again (POP3, IMAP).  The two conversions are exact inverses for every
message without a bare LF:

- Storing (:class:`LfEncoder`): a CRLF becomes LF, except when the CR is
  itself preceded by a CR (``x<CR><CR><LF>`` is kept as it is, so that the
  lone CR before the line ending survives); every other byte is kept,
  a lone CR included.
- Reading (:class:`CrlfReader`, :func:`to_crlf`): a LF not preceded by a CR
  becomes CRLF; everything else is kept.  So a file stored with CRLF by an
  earlier version (or another program) reads unchanged: never CR CR LF.

A bare LF in the input cannot survive (it reads back as CRLF, as with
Dovecot); RFC 5322 forbids it anyway.  The size of the message as read
(its *virtual* size, Dovecot's ``,W=`` field) is counted while storing, so a
server knows the octets IMAP and POP3 send without reading the file.

Nothing here does I/O except :class:`CrlfReader` and :func:`crlf_size` on a
file object the caller opened (blocking: run them in a worker thread).
"""

from __future__ import annotations

import io
import os
import re
from typing import BinaryIO

__all__ = [
    "HEAD_READ",
    "READ_BLOCK",
    "CrlfCounter",
    "CrlfReader",
    "LfEncoder",
    "crlf_size",
    "read_head",
    "to_crlf",
]

READ_BLOCK = 64 * 1024
"""Bytes read from a file at a time by :class:`CrlfReader` and :func:`crlf_size`.

(Under glibc's ``mmap`` threshold: a larger read buffer would be mapped and
unmapped for every read.)"""

HEAD_READ = 16 * 1024
"""Bytes :func:`read_head` reads at a time (most mail is one read)."""

_CR = 0x0D
_LF = 0x0A
#: A CRLF whose CR is not preceded by another CR: the line endings LF storage drops a CR of.
_DROPPABLE_CR = re.compile(rb"(?<!\r)\r\n")


def to_crlf(data: bytes, after_cr: bool = False) -> bytes:
    """Return ``data`` with every LF not preceded by a CR turned into CRLF.

    ``after_cr``: the byte before ``data`` (in the stream it comes from) was a CR.
    """
    if not data:
        return data
    head = b""
    if after_cr and data[0] == _LF:
        head, data = b"\n", data[1:]
    if b"\r" not in data:  # the usual stored form: every LF gets a CR
        return head + data.replace(b"\n", b"\r\n")
    if data.count(b"\n") == data.count(b"\r\n"):
        return head + data
    # Dropping the CR of every CRLF and then giving every LF one adds a CR exactly
    # before the LFs that had none (a CR before a CRLF is not touched).
    return head + data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class CrlfCounter:
    """Count the virtual (CRLF) size of a stored stream fed in chunks split anywhere."""

    def __init__(self, after_cr: bool = False) -> None:
        self.size = 0
        """The octets :func:`to_crlf` makes of everything fed so far."""
        self._after_cr = after_cr

    def feed(self, data: bytes) -> None:
        """Count one more chunk of the stored form."""
        if not data:
            return
        lone = data.count(b"\n") - data.count(b"\r\n")
        if self._after_cr and data[0] == _LF:
            lone -= 1
        self.size += len(data) + lone
        self._after_cr = data[-1] == _CR


class LfEncoder:
    """Turn a message's CRLF line endings into LF, chunk by chunk (see the module docstring).

    :attr:`stored` counts the bytes returned (the file's size, ``S=``),
    :attr:`virtual` the size of the file read back with CRLF (``W=``).
    At most one CR is held back between chunks (a CR ending a chunk may
    start a CRLF); :meth:`finish` returns it.
    """

    def __init__(self) -> None:
        self._held = False  # a CR, not preceded by a CR, that ended the last chunk
        self._last_cr = False  # the last byte returned was a CR
        self._counter = CrlfCounter()
        self.stored = 0
        """Bytes returned so far."""

    @property
    def virtual(self) -> int:
        """The CRLF size of what was returned so far."""
        return self._counter.size

    def encode(self, chunk: bytes) -> bytes:
        """Return the stored form of the next chunk."""
        if not chunk:
            return b""
        data = b"\r" + chunk if self._held else chunk
        self._held = False
        if data[-1] == _CR and (data[-2] != _CR if len(data) > 1 else not self._last_cr):
            data = data[:-1]
            self._held = True
            if not data:
                return b""
        start = 0
        if self._last_cr and data[0] == _CR:
            # More CRs of a run the last chunk ended: two or more CRs before a LF stay.
            start = len(data) - len(data.lstrip(b"\r"))
            if data[start : start + 1] == b"\n":
                start += 1
        rest = data[start:]
        if b"\r\n" in rest:
            rest = (
                _DROPPABLE_CR.sub(b"\n", rest)
                if b"\r\r\n" in rest
                else rest.replace(b"\r\n", b"\n")
            )
        out = data[:start] + rest if start else rest
        return self._emit(out)

    def finish(self) -> bytes:
        """Return what is held back (a final lone CR), if anything."""
        if not self._held:
            return b""
        self._held = False
        return self._emit(b"\r")

    def _emit(self, out: bytes) -> bytes:
        if out:
            self._last_cr = out[-1] == _CR
            self.stored += len(out)
            self._counter.feed(out)
        return out


def crlf_size(f: BinaryIO) -> int:
    """Return the virtual (CRLF) size of a stored message, reading ``f`` to its end (blocking)."""
    counter = CrlfCounter()
    while True:
        block = f.read(READ_BLOCK)
        if not block:
            return counter.size
        counter.feed(block)


def read_head(fd: int, known: int | None) -> tuple[bytes, int]:
    """Return a stored message's header (to its blank line, with CRLF) and its CRLF size.

    Reads the file descriptor ``fd`` (at its start; blocking) only up to the
    end of the header when ``known``, the size, is given (a name's ``W=``),
    else to its end, counting.  A message without a blank line is all header.
    Only the header is converted to CRLF when the size is known (the
    conversion is byte by byte, so the CRLF form of a prefix is a prefix of
    the CRLF form of the whole).
    """
    data = os.read(fd, HEAD_READ)
    parts = [data]
    at_end = len(data) < HEAD_READ
    end = _stored_header_end(data)
    while not at_end and end < 0:
        block = os.read(fd, HEAD_READ)
        at_end = len(block) < HEAD_READ
        parts.append(block)
        data = b"".join(parts)
        end = _stored_header_end(data)
    if known is not None and end >= 0:
        # The first blank line of the CRLF form ends within 3 octets of the
        # stored one's start; one more octet keeps a CR before its LF.
        head = to_crlf(data[: end + 4])
        if head.startswith(b"\r\n"):
            return b"\r\n", known
        blank = head.find(b"\r\n\r\n")
        if blank >= 0:
            return head[: blank + 4], known
    text = to_crlf(data)
    if known is None and at_end:
        known = len(text)
    elif known is None:
        counter = CrlfCounter(after_cr=bool(data) and data[-1] == _CR)
        while block := os.read(fd, READ_BLOCK):
            counter.feed(block)
        known = len(text) + counter.size
    if text.startswith(b"\r\n"):
        return b"\r\n", known
    blank = text.find(b"\r\n\r\n")
    return (text if blank < 0 else text[: blank + 4]), known


def _stored_header_end(data: bytes) -> int:
    """Where a stored (LF or CRLF) header's blank line starts, roughly: the first of
    ``LF LF`` and ``LF CR LF`` (0 for a message that starts with one); -1 if none."""
    if data.startswith((b"\n", b"\r\n")):
        return 0
    a = data.find(b"\n\n")
    if a < 0:
        return data.find(b"\n\r\n")
    b = data.find(b"\n\r\n", 0, a)
    return a if b < 0 else b


class CrlfReader(io.BufferedIOBase):
    """A stored message read with CRLF line endings, whatever the file holds (blocking).

    Wraps a binary file opened at its start; takes it over (closing the
    reader closes it).  Reads one block of the file at a time, never the
    whole message.  Positions (:meth:`seek`, :meth:`tell`) count the CRLF
    octets; a forward seek skips blocks counting their line endings without
    converting them, and when the file is known to hold CRLF already
    (``plain=True``: its virtual size equals its size) it is a plain seek.
    """

    def __init__(self, raw: BinaryIO, *, plain: bool = False) -> None:
        super().__init__()
        self._raw = raw
        self._plain = plain
        self._pending = b""  # converted, not yet returned
        self._after_cr = False  # the last raw byte converted was a CR
        self._position = 0  # CRLF octets returned so far

    @property
    def raw(self) -> BinaryIO:
        """The stored file (positioned after what was converted)."""
        return self._raw

    def readable(self) -> bool:
        """A reader is readable."""
        return True

    def seekable(self) -> bool:
        """Positions are CRLF offsets; see :meth:`seek`."""
        return True

    def _fill(self, size: int) -> bytes:
        """Convert the next block; ``b""`` at the end of the file."""
        block = self._raw.read(size)
        if not block:
            return b""
        if self._plain:
            return block
        out = to_crlf(block, self._after_cr)
        self._after_cr = block[-1] == _CR
        return out

    def read(self, size: int | None = -1) -> bytes:
        """Return up to ``size`` CRLF octets (all the rest when ``size`` is negative)."""
        if self.closed:
            raise ValueError("read of a closed file")
        if size is None or size < 0:
            rest = self._raw.read()  # sized from the file's length: one read
            data, self._pending = self._pending, b""
            if rest:
                data += rest if self._plain else to_crlf(rest, self._after_cr)
                self._after_cr = rest[-1] == _CR
        else:
            parts, have = [self._pending], len(self._pending)
            while have < size:
                block = self._fill(READ_BLOCK)
                if not block:
                    break
                parts.append(block)
                have += len(block)
            joined = b"".join(parts) if len(parts) > 1 else parts[0]
            data, self._pending = joined[:size], joined[size:]
        self._position += len(data)
        return data

    def read1(self, size: int = -1) -> bytes:
        """Return up to ``size`` CRLF octets, reading the file at most once."""
        if not self._pending:
            self._pending = self._fill(READ_BLOCK)
        return self.read(size if size >= 0 else len(self._pending))

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Read into ``buffer``; return how many octets."""
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def tell(self) -> int:
        """The CRLF offset of the next octet :meth:`read` returns."""
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Go to the CRLF offset ``offset`` (``SEEK_SET``, or ``SEEK_CUR`` forward).

        Backwards means from the start again; past the end, :meth:`read` returns nothing.
        """
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("CrlfReader seeks from the start or the current offset")
        if offset < 0:
            raise ValueError(f"negative seek position {offset}")
        if self._plain:
            self._raw.seek(offset)
            self._pending, self._position = b"", offset
            return offset
        if offset < self._position:
            self._raw.seek(0)
            self._pending, self._after_cr, self._position = b"", False, 0
        self._skip(offset - self._position)
        return self._position

    def _skip(self, count: int) -> None:
        """Pass ``count`` CRLF octets without converting more than the last block."""
        taken = min(count, len(self._pending))
        self._pending = self._pending[taken:]
        self._position += taken
        count -= taken
        while count > 0:
            block = self._raw.read(READ_BLOCK)
            if not block:
                return
            counter = CrlfCounter(self._after_cr)
            counter.feed(block)
            if counter.size <= count:
                self._position += counter.size
                count -= counter.size
                self._after_cr = block[-1] == _CR
                continue
            converted = to_crlf(block, self._after_cr)
            self._after_cr = block[-1] == _CR
            self._pending = converted[count:]
            self._position += count
            return

    def close(self) -> None:
        """Close the stored file."""
        if not self.closed:
            self._raw.close()
        super().close()

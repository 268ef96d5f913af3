"""Streaming a file's byte ranges to a twisted.web request without reading the file whole.

:class:`FileBodyProducer` is a pull producer: each time the transport wants
more it reads one block (256 KiB) of the current region and writes it, so a
100 MB file costs one block of memory, and a slow client simply stops the
reads.  A body is a list of parts, each either bytes (the multipart
boundaries of a multi-range answer) or a ``(offset, length)`` region of the
file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from twisted.internet.interfaces import IPullProducer
from twisted.web.server import Request
from zope.interface import implementer

__all__ = ["BLOCK_SIZE", "BodyPart", "FileBodyProducer"]

#: Bytes read from the file per write.
BLOCK_SIZE = 256 * 1024

#: One part of a body: literal bytes, or ``(offset, length)`` of the file.
BodyPart = bytes | tuple[int, int]


@implementer(IPullProducer)
class FileBodyProducer:
    """Write ``parts`` of the open file ``fd`` to ``request``, one block per pull."""

    def __init__(self, request: Request, fd: int, parts: Sequence[BodyPart]) -> None:
        self.request = request
        self.fd = fd
        self.parts = list(parts)
        self.index = 0
        self.offset = -1
        self.remaining = 0
        self.done = False

    def start(self) -> None:
        """Register with the request; the transport then pulls the blocks."""
        self.request.registerProducer(self, False)
        self.request.notifyFinish().addBoth(self._closed)

    def _closed(self, _: Any) -> None:
        self._close_fd()

    def _close_fd(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def resumeProducing(self) -> None:
        """Write the next block (or literal part); finish the request after the last."""
        if self.done:
            return
        while self.index < len(self.parts) or self.remaining:
            if self.remaining:
                chunk = os.pread(self.fd, min(BLOCK_SIZE, self.remaining), self.offset)
                if not chunk:  # the file shrank under us: end the response short
                    self.remaining = 0
                    break
                self.offset += len(chunk)
                self.remaining -= len(chunk)
                self.request.write(chunk)
                return
            part = self.parts[self.index]
            self.index += 1
            if isinstance(part, bytes):
                self.request.write(part)
                return
            self.offset, self.remaining = part
        self._finish()

    def _finish(self) -> None:
        self.done = True
        self._close_fd()
        self.request.unregisterProducer()
        self.request.finish()

    def stopProducing(self) -> None:
        """The client went away: close the file."""
        self.done = True
        self._close_fd()

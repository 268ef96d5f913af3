"""Streaming a file's byte ranges to a twisted.web request without reading the file whole.

:class:`FileBodyProducer` is a pull producer: each time the transport wants
more it reads one block (256 KiB) of the current region and writes it, so a
100 MB file costs one block of memory, and a slow client simply stops the
reads.  A body is a list of parts, each either bytes (the multipart
boundaries of a multi-range answer) or a ``(offset, length)`` region of the
file.

:func:`sendfile_body` sends one region (a whole file or a single range) with
``os.sendfile`` instead (:mod:`netproto_twisted.core.sendfile`: the kernel
copies from the page cache to the socket) when the request is on a plain TCP
HTTP/1.x connection and its head left nothing queued; TLS, HTTP/2 and
multi-range answers use the producer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from twisted.internet.interfaces import IPullProducer, IReactorFDSet
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

from netproto_twisted.core.sendfile import can_sendfile, sendfile_transport
from netproto_twisted.http.server.whole import can_write_whole, write_whole

__all__ = ["BLOCK_SIZE", "BodyPart", "FileBodyProducer", "sendfile_body"]

_log = Logger(namespace="netproto.http")

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


def sendfile_body(request: Request, reactor: object, fd: int, parts: Sequence[BodyPart]) -> bool:
    """Answer ``request`` (its status and headers set) with ``parts`` of ``fd`` by sendfile.

    Only for one ``(offset, length)`` region on a plain TCP HTTP/1.x
    connection, not for HEAD; returns ``False`` (nothing written, ``fd`` left
    open) when that does not hold.  Otherwise the head is written; if the
    kernel did not take it all at once, the body goes through
    :class:`FileBodyProducer`, else through ``os.sendfile``; ``fd`` is closed
    and the request finished at the end (the connection closed if the
    client went away).
    """
    if (
        len(parts) != 1
        or not isinstance(parts[0], tuple)
        or request.method == b"HEAD"
        or not IReactorFDSet.providedBy(reactor)
        or not can_write_whole(request)
        or not can_sendfile(request.channel.transport)
    ):
        return False
    offset, length = parts[0]
    if not write_whole(
        request, request.code, request.code_message, b"", b"", has_length=True, finish=False
    ):
        FileBodyProducer(request, fd, parts).start()
        return True
    channel: Any = request.channel
    sending = sendfile_transport(reactor, channel.transport, fd, offset, length)

    def sent(result: int | Failure) -> None:
        os.close(fd)
        if isinstance(result, Failure):
            _log.debug("sendfile stopped: {why}", why=result.value)
            channel.transport.loseConnection()
            return
        request.sentLength = result
        if request.channel is not None:  # None once the connection was lost
            request.finish()

    sending.addBoth(sent)
    return True

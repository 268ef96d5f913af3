"""A request body handed to its consumer as it arrives, with backpressure on the client.

twisted.web buffers a request's whole body (``request.content``) before it
renders the request.  For a WSGI application or a CGI script that is a
delay (the application starts after the last byte) and a copy on disk;
:class:`RequestBody` takes the body's place instead when
:class:`~netproto_twisted.http.server.site.HTTPRequest` starts such a request
as soon as its head is in:

* the reactor :meth:`~RequestBody.write`\\ s each chunk as twisted.web
  receives it and :meth:`~RequestBody.end`\\ s it after the last;
* a WSGI application's thread reads it as ``wsgi.input`` (``read``,
  ``readline``, ``readlines``, iteration), blocking until data or the end
  comes; more than :data:`PAUSE_BYTES` unread pauses the client's connection
  (the kernel's window then stops the client), fewer than
  :data:`RESUME_BYTES` resumes it; should bytes still come (another part of
  twisted.web resuming the transport), past :data:`SPILL_BYTES` they go to
  a temporary file, never to memory;
* a CGI script's stdin gets it through :meth:`~RequestBody.pipe_to`: each
  chunk is written to the pipe, and a full pipe pauses the client's
  connection the same way.

The "connection" paused is the TCP transport for HTTP/1.x and the stream
for HTTP/2 (twisted.web's ``H2Stream`` is a push producer): a paused stream
stops acknowledging DATA frames, so a client that honours flow control stops
after one stream window (64 KiB by default), and one that does not is cut
by the HTTP/2 library (a flow-control error closes its connection).

If the client goes away mid-body, a reader gets :class:`BodyAborted`.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

__all__ = ["PAUSE_BYTES", "RESUME_BYTES", "SPILL_BYTES", "BodyAborted", "RequestBody"]

#: Unread bytes past which the client's connection is paused.
PAUSE_BYTES = 256 * 1024
#: Unread bytes under which a paused connection is resumed.
RESUME_BYTES = 64 * 1024
#: Unread bytes past which further bytes go to a temporary file, not memory.
SPILL_BYTES = 1024 * 1024


class BodyAborted(OSError):
    """The client went away before the end of the request body."""


@implementer(IPushProducer)
class RequestBody:
    """The body of one request, written by the reactor, read by one consumer.

    ``transport`` is the client's connection (paused and resumed for
    backpressure); ``call_from_thread`` runs a call on the reactor thread;
    ``length`` is the declared ``Content-Length`` (``None`` when chunked).
    """

    def __init__(
        self,
        transport: Any,
        call_from_thread: Callable[..., object],
        length: int | None,
        *,
        set_timeout: Callable[[float | None], float | None] | None = None,
    ) -> None:
        self.transport = transport
        self.call_from_thread = call_from_thread
        self.length = length
        self.set_timeout = set_timeout
        self.saved_timeout: float | None = None
        self.cond = threading.Condition(threading.Lock())
        self.chunks: deque[bytes] = deque()
        self.unread = 0
        self.received = 0
        self.spill_fd = -1
        self.spill_read = 0
        self.spill_written = 0
        self.ended = False
        self.aborted = False
        self.discarding = False
        self.paused = False
        self.resume_asked = False
        self.pipe: Any = None
        self.pipe_done: Callable[[], None] | None = None

    # -- the reactor's side ----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """A chunk of the body arrived (twisted.web calls this for each one)."""
        self.received += len(data)
        if self.discarding or not data:
            return
        if self.pipe is not None:
            self.pipe.write(data)
            return
        with self.cond:
            if self.spill_fd < 0 and self.unread + len(data) <= SPILL_BYTES:
                self.chunks.append(data)
            else:
                if self.spill_fd < 0:
                    self.spill_fd, name = tempfile.mkstemp(prefix="netproto-body-")
                    os.unlink(name)
                os.write(self.spill_fd, data)
                self.spill_written += len(data)
            self.unread += len(data)
            pause = self.unread > PAUSE_BYTES and not self.paused
            if pause:
                self.paused = True
            self.cond.notify()
        if pause:
            self._pause_client()

    def end(self) -> None:
        """The whole body arrived."""
        with self.cond:
            self.ended = True
            self.cond.notify_all()
        if self.pipe is not None:
            self._pipe_finished()

    def close(self) -> None:
        """twisted.web is done with the request: abort a body not ended, free the file."""
        with self.cond:
            if not self.ended:
                self.aborted = True
            self.chunks.clear()
            self.unread = 0
            self.cond.notify_all()
            if self.pipe is None:
                self._close_spill()
        if self.pipe is not None and not self.ended:
            self._pipe_finished()
        if self.paused:
            # Let the connection drain what it holds for this body (an HTTP/2
            # stream's buffered DATA still counts against the connection's
            # window until it is read), dropping it.
            self.discarding = True
            self._resume_client()

    def discard(self) -> None:
        """Nobody will read the rest: drop what is buffered and what comes, and read on."""
        self.discarding = True
        with self.cond:
            self.chunks.clear()
            self.unread = 0
        self._resume_client()

    def seek(self, offset: int, whence: int = 0) -> int:
        """Only ``seek(0)`` before reading (twisted.web rewinds ``content``)."""
        if offset != 0 or whence != 0 or self.spill_read or self.chunks_taken:
            raise OSError("a streamed request body cannot seek")
        return 0

    chunks_taken = 0

    def tell(self) -> int:
        """0: nothing of a streamed body is counted as read before the resource starts."""
        return 0

    def _pause_client(self) -> None:
        self.transport.pauseProducing()
        if self.set_timeout is not None:  # waiting for the consumer is not the client idling
            self.saved_timeout = self.set_timeout(None)

    def _resume_client(self) -> None:
        self.resume_asked = False
        if not self.paused:
            return
        self.paused = False
        if self.set_timeout is not None:
            self.set_timeout(self.saved_timeout)
        self.transport.resumeProducing()

    # -- a CGI script's stdin ------------------------------------------------------------

    def pipe_to(self, consumer: Any, done: Callable[[], None]) -> None:
        """Write the body (what came so far, then each chunk) to ``consumer``, then ``done()``.

        ``consumer`` is a process's transport: when its pipe is full it pauses
        this producer, which pauses the client's connection.
        """
        with self.cond:
            buffered = list(self.chunks)
            self.chunks.clear()
            self.unread = 0
            spilled = self.spill_written
        self.pipe, self.pipe_done = consumer, done
        consumer.registerProducer(self, True)
        for chunk in buffered:
            consumer.write(chunk)
        offset = 0
        while offset < spilled:
            block = os.pread(self.spill_fd, min(65536, spilled - offset), offset)
            consumer.write(block)
            offset += len(block)
        self._resume_client()
        if self.ended or self.aborted:
            self._pipe_finished()

    def _pipe_finished(self) -> None:
        consumer, done = self.pipe, self.pipe_done
        self.pipe_done = None
        if consumer is not None and done is not None:
            consumer.unregisterProducer()
            self._close_spill()
            done()

    def pauseProducing(self) -> None:
        """The script's stdin is full: stop reading from the client."""
        if not self.paused:
            self.paused = True
            self._pause_client()

    def resumeProducing(self) -> None:
        """The script's stdin drained: read from the client again."""
        self._resume_client()

    def stopProducing(self) -> None:
        """The script is gone: drop the rest of the body."""
        self.pipe = None
        self.discard()

    # -- a WSGI application's thread -------------------------------------------------------

    def _take(self, limit: int, line: bool) -> bytes:
        """Up to ``limit`` bytes (``-1``: all), up to a newline if ``line``; blocks."""
        out: list[bytes] = []
        size = 0
        while limit < 0 or size < limit:
            with self.cond:
                while not self.unread and not self.ended and not self.aborted:
                    self.cond.wait()
                if self.aborted:
                    raise BodyAborted("the client went away before the end of the body")
                if not self.unread:
                    break
                want = self.unread if limit < 0 else min(self.unread, limit - size)
                piece = self._take_locked(want)
                self.unread -= len(piece)
                resume = self.paused and self.unread < RESUME_BYTES and not self.resume_asked
                if resume:
                    self.resume_asked = True
            if resume:
                self.call_from_thread(self._resume_client)
            if line and b"\n" in piece:
                cut = piece.index(b"\n") + 1
                self._put_back(piece[cut:])
                out.append(piece[:cut])
                break
            out.append(piece)
            size += len(piece)
        return b"".join(out)

    def _take_locked(self, want: int) -> bytes:
        self.chunks_taken += 1
        if self.chunks:
            chunk = self.chunks.popleft()
            if len(chunk) > want:
                self.chunks.appendleft(chunk[want:])
                chunk = chunk[:want]
            return chunk
        available = self.spill_written - self.spill_read
        block = os.pread(self.spill_fd, min(want, available, 1 << 20), self.spill_read)
        self.spill_read += len(block)
        return block

    def _put_back(self, rest: bytes) -> None:
        if not rest:
            return
        with self.cond:
            self.chunks.appendleft(rest)
            self.unread += len(rest)

    def read(self, size: int | None = -1) -> bytes:
        """Read ``size`` bytes (all that remain if ``-1`` or ``None``); fewer only at the end."""
        return self._take(-1 if size is None or size < 0 else size, line=False)

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line (with its newline), at most ``size`` bytes."""
        return self._take(-1 if size is None or size < 0 else size, line=True)

    def readlines(self, hint: int = -1) -> list[bytes]:
        """Read the lines that remain (until about ``hint`` bytes)."""
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line

    # -- cleaning up ---------------------------------------------------------------------

    def _close_spill(self) -> None:
        if self.spill_fd >= 0:
            os.close(self.spill_fd)
            self.spill_fd = -1

    def __del__(self) -> None:
        self._close_spill()

"""Send a file on a plain TCP connection with ``os.sendfile``: the kernel copies, not Python.

:func:`sendfile_transport` takes over the connection's socket while it
sends (the transport stops reading and must have nothing queued), writes
with non-blocking ``os.sendfile`` calls whenever the socket is writable,
and hands the socket back when done.  Only plain TCP qualifies
(:func:`can_sendfile`): TLS, unix sockets and test transports stream
through a producer instead.

Disk reads happen inside ``sendfile`` on the reactor thread; for a file in
the page cache that is a memory copy, for a cold file the kernel's
read-ahead keeps each call short.

:func:`sendfile_in_thread` does the same from a thread of its own, as a
blocking server (vsftpd) does: the thread waits in ``poll`` for room in the
socket and calls ``sendfile`` again, with no trip through the reactor per
socket buffer.  For large files that is faster, above all on a busy
machine where every reactor wake-up waits for a CPU.  The thread works on a
duplicate of the socket's descriptor (so the reactor closing the connection
never lets the number be reused under it), and stopping it shuts the socket
down, which wakes the thread at once.  Use it for large plain transfers
only (:data:`THREAD_MINIMUM`); at most :data:`MAX_THREADS` run at once, then
:func:`can_sendfile_in_thread` says no and the reactor path serves.
"""

from __future__ import annotations

import errno
import os
import select
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFDSet, IWriteDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from netproto_twisted.core.net import raw_tcp_connection
from netproto_twisted.core.socket_thread import FileSendThread

__all__ = [
    "MAX_THREADS",
    "SENDFILE_CHUNK",
    "THREAD_MINIMUM",
    "ThreadedSendfile",
    "can_sendfile",
    "can_sendfile_in_thread",
    "sendfile_in_thread",
    "sendfile_transport",
]

#: Bytes asked of one sendfile call.
SENDFILE_CHUNK = 4 * 1024 * 1024
_HAS_SENDFILE = hasattr(os, "sendfile")
#: Bytes left to send from which :func:`sendfile_in_thread` pays off (a thread per transfer).
THREAD_MINIMUM = 8 * 1024 * 1024
#: Threaded transfers at once, at most (then the reactor path serves).
MAX_THREADS = 16
#: Seconds a sending thread waits in ``poll`` before looking at its stop flag again.
_POLL_SECONDS = 1.0


def can_sendfile(transport: object) -> bool:
    """Whether ``transport`` is a plain TCP connection :func:`sendfile_transport` can use."""
    return bool(_HAS_SENDFILE and raw_tcp_connection(transport) is not None)


@implementer(IWriteDescriptor)
class _SendfileWriter:
    def __init__(
        self,
        reactor: IReactorFDSet,
        connection: Any,
        fd: int,
        offset: int,
        count: int | None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self._reactor = reactor
        self._connection = connection
        self._socket_fd: int = connection.fileno()
        self._fd = fd
        self.offset = offset
        self.sent = 0
        self._left = count
        self._progress = progress
        self.done: Deferred[int] = Deferred(lambda _: self.stop())
        self._finished = False

    def fileno(self) -> int:
        return self._socket_fd

    def logPrefix(self) -> str:
        return "sendfile"

    def doWrite(self) -> None:
        while not self._finished:
            want = SENDFILE_CHUNK if self._left is None else min(SENDFILE_CHUNK, self._left)
            if want == 0:
                self._finish(None)
                return
            try:
                n = os.sendfile(self._socket_fd, self._fd, self.offset, want)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    return
                self._finish(Failure(e))
                return
            if n == 0:
                self._finish(None)
                return
            self.offset += n
            self.sent += n
            if self._left is not None:
                self._left -= n
            if self._progress is not None:
                self._progress(n)

    def connectionLost(self, reason: Failure) -> None:
        self._finish(reason)

    def stop(self) -> None:
        if not self._finished:
            self._finished = True
            self._reactor.removeWriter(self)

    def _finish(self, failure: Failure | None) -> None:
        if self._finished:
            return
        self._finished = True
        self._reactor.removeWriter(self)
        if not self._connection.disconnected:
            self._connection.startReading()
        if failure is None:
            self.done.callback(self.sent)
        else:
            self.done.errback(failure)


def sendfile_transport(
    reactor: IReactorFDSet,
    transport: object,
    file_descriptor: int,
    offset: int = 0,
    count: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Deferred[int]:
    """Send ``count`` bytes (``None``: to the end) of a file from ``offset`` on ``transport``.

    Fires with the bytes sent; fails with the socket's error (the peer went
    away).  Cancelling stops sending.  The transport reads again afterwards.
    ``progress(n)`` is called after each ``sendfile`` call that sent ``n`` bytes
    (a stall watchdog's measure).

    :raises ValueError: if the transport is not a plain TCP connection.
    """
    connection = raw_tcp_connection(transport)
    if connection is None or not _HAS_SENDFILE:
        raise ValueError("sendfile needs a plain TCP transport")
    connection.stopReading()
    writer = _SendfileWriter(reactor, connection, file_descriptor, offset, count, progress)
    reactor.addWriter(writer)
    return writer.done


def can_sendfile_in_thread(transport: object) -> bool:
    """Whether :func:`sendfile_in_thread` may take ``transport`` now (plain TCP, a thread free)."""
    return can_sendfile(transport) and ThreadedSendfile.running() < MAX_THREADS


class ThreadedSendfile(FileSendThread):
    """A file being sent by :func:`sendfile_in_thread`.

    :ivar done: fires with the bytes sent (in the reactor thread); fails with
        the socket's error; cancelling it stops the thread.
    :ivar sent: bytes sent so far (updated by the thread; read it any time).
    """

    thread_name = "sendfile"
    cancellable = True

    def transfer(self) -> None:
        """Send with ``os.sendfile`` until the count or the file's end."""
        sock = self._socket
        assert sock is not None
        out = sock.fileno()
        poller = select.poll()
        poller.register(out, select.POLLOUT)
        while not self._stop:
            want = self._want(SENDFILE_CHUNK)
            if want == 0:
                return
            try:
                n = os.sendfile(out, self._fd, self._offset, want)
            except (BlockingIOError, InterruptedError):
                # Room in the socket, an error or a hang-up (the next sendfile says which),
                # or a second to look at the stop flag again.
                poller.poll(_POLL_SECONDS * 1000)
                continue
            if n == 0:
                return
            self._advance(n)
        raise ConnectionAbortedError("sendfile stopped")


def sendfile_in_thread(
    reactor: Any,
    transport: object,
    file_descriptor: int,
    offset: int = 0,
    count: int | None = None,
) -> ThreadedSendfile:
    """Like :func:`sendfile_transport`, from a thread of its own (see the module docstring).

    ``reactor`` provides ``callFromThread``.  The transport stops reading
    meanwhile and reads again afterwards.  The thread works on duplicates of
    the file's and the socket's descriptors: the caller may close both as
    soon as it likes (after a cancel, say).

    :raises ValueError: if the transport is not a plain TCP connection.
    """
    connection = raw_tcp_connection(transport)
    if connection is None or not _HAS_SENDFILE:
        raise ValueError("sendfile needs a plain TCP transport")
    connection.stopReading()
    sender = ThreadedSendfile(reactor, connection, file_descriptor, offset, count)
    sender.start()
    return sender

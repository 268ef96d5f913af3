"""A transfer between a plain TCP connection and a file, done by a thread of its own.

What :class:`~netproto_twisted.core.sendfile.ThreadedSendfile` (downloads)
and :class:`~netproto_twisted.core.recvfile.ThreadedReceive` (uploads)
share: the thread works on duplicates of the file's and the socket's
descriptors (the caller may close its own at any time); :meth:`stop` shuts
the socket down, which wakes the thread at once; the outcome reaches
:attr:`SocketThread.done` on the reactor thread only after the thread has
closed its descriptors, and the connection reads again then.  A subclass
implements :meth:`SocketThread.transfer` (in the thread) and says how many
bytes it moved (:attr:`SocketThread.moved`); each kind counts its running
threads against its own limit (:meth:`SocketThread.running`).
:class:`FileSendThread` adds the file position and count that both kinds of
download (plain and TLS) keep.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections import Counter
from typing import Any, ClassVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

__all__ = ["FileSendThread", "SocketThread"]

_running: Counter[str] = Counter()
_running_lock = threading.Lock()


class SocketThread:
    """One threaded transfer (see the module docstring).

    :ivar done: fires with :attr:`moved` (in the reactor thread); fails with
        the exception :meth:`transfer` raised.
    :cvar thread_name: the thread's name, and the key its count is kept under.
    :cvar cancellable: whether cancelling :attr:`done` stops the thread (and
        fires ``done`` at once, before the thread has ended).
    """

    thread_name: ClassVar[str] = "transfer"
    cancellable: ClassVar[bool] = False

    def __init__(self, reactor: Any, connection: Any, fd: int) -> None:
        self._reactor = reactor
        self._connection = connection
        self._fd = os.dup(fd)  # the thread's own: the caller may close theirs
        self._stop = False
        self._lock = threading.Lock()
        # The thread's own reference to the socket: closing the connection's descriptor
        # in the reactor leaves this one valid until the thread closes it.
        self._socket: socket.socket | None = socket.socket(fileno=os.dup(connection.fileno()))
        self.done: Deferred[int] = Deferred((lambda _: self.stop()) if self.cancellable else None)

    @classmethod
    def running(cls) -> int:
        """Threads of this kind running now."""
        return _running[cls.thread_name]

    @property
    def moved(self) -> int:
        """Bytes moved so far (subclasses)."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the thread."""
        with _running_lock:
            _running[self.thread_name] += 1
        threading.Thread(target=self._run, name=self.thread_name, daemon=True).start()

    def stop(self) -> None:
        """Stop: shut the socket down, which wakes the thread."""
        self._stop = True
        with self._lock:
            if self._socket is not None:
                with contextlib.suppress(OSError):  # already shut down or reset
                    self._socket.shutdown(socket.SHUT_RDWR)

    def transfer(self) -> None:
        """Move the bytes (in the thread); raise to fail :attr:`done`."""
        raise NotImplementedError

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self.transfer()
        except BaseException as e:  # reported in the reactor thread
            error = e
        finally:
            with self._lock:
                sock, self._socket = self._socket, None
            if sock is not None:
                sock.close()
            os.close(self._fd)
            with _running_lock:
                _running[self.thread_name] -= 1
        self._reactor.callFromThread(self._finish, error)

    def _finish(self, error: BaseException | None) -> None:
        if not self._connection.disconnected:
            self._connection.startReading()
        if self.done.called:  # cancelled meanwhile
            return
        if error is None:
            self.done.callback(self.moved)
        else:
            self.done.errback(Failure(error))


class FileSendThread(SocketThread):
    """A thread sending a file from ``offset``, ``count`` bytes of it (``None``: to its end).

    :ivar sent: file bytes sent so far (updated by the thread; read it any time).
    """

    def __init__(
        self, reactor: Any, connection: Any, fd: int, offset: int, count: int | None
    ) -> None:
        super().__init__(reactor, connection, fd)
        self._offset = offset
        self._left = count
        self.sent = 0

    @property
    def moved(self) -> int:
        """File bytes sent so far."""
        return self.sent

    def _want(self, chunk: int) -> int:
        """Bytes to send next, at most ``chunk`` (0 once the count is reached)."""
        return chunk if self._left is None else min(chunk, self._left)

    def _advance(self, n: int) -> None:
        """Count ``n`` bytes of the file as sent."""
        self._offset += n
        self.sent += n
        if self._left is not None:
            self._left -= n

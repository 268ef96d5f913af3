"""Run unmodified blocking ``socketserver`` handlers in a thread pool, with backpressure.

The handler thread sees :class:`ThreadedSocket` as ``self.request``: a
socket-like object whose ``recv`` waits for data the reactor received, and
whose ``sendall`` hands data to the reactor in pieces and blocks while the
transport's write buffer is full (the connection registers a push producer
on the transport; Twisted pauses it when the peer reads slowly).  Incoming
data buffered beyond :data:`~netproto_twisted.sockserv.common.HIGH_WATER`
pauses reading from the peer until the handler reads it down.

On a plain TCP connection without an idle timeout ("direct" mode) the
handler thread owns the socket outright, as under ``socketserver``: the
reactor stops reading it, and ``recv``/``sendall`` call the kernel on a
duplicate of the descriptor in blocking mode (or with the handler's
timeout), so backpressure is the kernel's own.  The duplicate keeps the
descriptor number the thread uses valid whatever the reactor does with its
own; whenever the reactor drops the connection (daemon stopping) it shuts
the socket down, which wakes a thread blocked in ``recv`` or ``sendall``.
When the handler returns, the thread restores non-blocking mode, closes its
duplicate and hands the connection back to the reactor, which closes it.
"""

from __future__ import annotations

import contextlib
import errno
import io
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.failure import Failure

from netproto_twisted.core._twisted_compat import mark_write_disconnected
from netproto_twisted.core.net import send_now, set_nodelay
from netproto_twisted.sockserv.common import (
    HIGH_WATER,
    LOW_WATER,
    MAX_IN_FLIGHT,
    WRITE_CHUNK,
    HandlerServer,
    HandlerStreamProtocol,
    StreamSocketBase,
    WriteGate,
)

__all__ = ["SocketIO", "ThreadedSocket", "ThreadedStreamProtocol", "run_blocking_handler"]


def _bad_fd() -> OSError:
    return OSError(errno.EBADF, "Bad file descriptor")


class ThreadedSocket(StreamSocketBase):
    """A socket-like ``request`` for a handler thread, backed by a Twisted transport.

    Methods without a leading underscore are called from the handler thread;
    the ``_on_*`` methods are called by the reactor.
    """

    def __init__(self, reactor: IReactorFromThreads, transport: Any) -> None:
        self._reactor = reactor
        self._transport = transport
        self._cond = threading.Condition(threading.Lock())
        self._rbuf = bytearray()
        self._eof = False
        self._lost: BaseException | None = None
        self._read_paused = False
        self._resume_pending = False
        self._write_paused = False
        self._in_flight = 0
        self._write_shut = False
        self._closed = False
        self._timeout: float | None = None
        #: True once the daemon dropped the connection because it is stopping.
        self.aborted = False
        self._bind_transport(transport)
        self._senders_waiting = 0
        #: True when the handler thread owns the socket (see _start_direct_reading).
        self._direct = False
        #: The handler thread's duplicate of the descriptor, while it owns the socket;
        #: replaced (under ``_cond``) only by ``_release_direct``.
        self._own: socket.socket | None = None

    def __repr__(self) -> str:
        return f"<ThreadedSocket laddr={self._sockname!r} raddr={self._peername!r}>"

    # -- reactor side ------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        with self._cond:
            self._rbuf += data
            self._cond.notify_all()
            pause = not self._read_paused and len(self._rbuf) >= HIGH_WATER
            if pause:
                self._read_paused = True
        if pause:
            self._transport.pauseProducing()

    def _on_eof(self) -> None:
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _on_lost(self, reason: Failure) -> None:
        with self._cond:
            self._eof = True
            if self._own is not None:
                # The reactor neither reads nor writes a socket the handler thread
                # owns: only the daemon (stopping) can have closed it.
                self.aborted = True
                self._lost = ConnectionAbortedError(errno.ECONNABORTED, "server stopping")
            elif reason.check(ConnectionDone):
                self._lost = BrokenPipeError(errno.EPIPE, "connection closed")
            else:
                self._lost = ConnectionResetError(errno.ECONNRESET, "connection lost")
            self._cond.notify_all()
            self._shutdown_own()

    def _shutdown_own(self) -> None:
        """Wake a handler thread blocked on its own descriptor (hold ``_cond``)."""
        own = self._own
        if own is not None:
            with contextlib.suppress(OSError):
                own.shutdown(socket.SHUT_RDWR)

    def _on_write_paused(self, paused: bool) -> None:
        with self._cond:
            self._write_paused = paused
            if self._senders_waiting:
                self._cond.notify_all()

    def _on_write(self, data: bytes) -> None:
        if self._lost is None:
            self._transport.write(data)
        with self._cond:
            self._in_flight -= len(data)
            if self._senders_waiting:
                self._cond.notify_all()

    def _on_resume_reading(self) -> None:
        with self._cond:
            self._resume_pending = False
            resume = self._read_paused and len(self._rbuf) <= LOW_WATER and self._lost is None
            if resume:
                self._read_paused = False
        if resume:
            self._transport.resumeProducing()

    def _on_shutdown_write(self) -> None:
        if self._lost is not None:
            return
        half_close = getattr(self._transport, "loseWriteConnection", None)
        if half_close is not None:
            half_close()
        else:
            self._on_close()

    def _on_close(self) -> None:
        if self._lost is not None:
            return
        with contextlib.suppress(RuntimeError):  # no producer registered
            self._transport.unregisterProducer()
        self._transport.loseConnection()

    def _on_abort(self) -> None:
        """Wake the handler thread with an error: the daemon is stopping."""
        with self._cond:
            self.aborted = True
            if self._lost is None:
                self._lost = ConnectionAbortedError(errno.ECONNABORTED, "server stopping")
            self._eof = True
            self._cond.notify_all()
            # Wakes a handler thread blocked in recv() or sendall() on the socket.
            self._shutdown_own()

    def _start_direct_reading(self) -> bool:
        """Give the socket to the handler thread (plain TCP; called by the reactor).

        The reactor stops reading this connection, and writes nothing to it,
        until the handler hands it back (:meth:`close`).  The handler's
        ``recv`` and ``sendall`` call the kernel on a duplicate descriptor in
        blocking mode, as under socketserver, so that a request costs no
        hand-over between threads.  Returns whether direct mode is on.
        """
        raw, handle = self._raw, self._handle
        if raw is None or handle is None:
            return False
        try:
            own = handle.dup()
        except OSError:
            return False
        try:
            # The descriptors share the file status flags: both are blocking now,
            # which is harmless as the reactor does no I/O on the socket meanwhile.
            own.settimeout(self._timeout)
        except OSError:
            own.close()
            return False
        raw.stopReading()
        # The reactor will write nothing here: this makes its loseConnection (at
        # hand-back, or the guard's close_all at stop) close at once instead of
        # waiting for the socket to turn writable, which a handler blocked in
        # sendall to a peer that does not read would put off until the abort.
        mark_write_disconnected(raw)
        self._own = own
        self._direct = True
        self._read_paused = True
        return True

    def _release_direct(self) -> None:
        """Close the thread's descriptor, non-blocking again (handler thread, before hand-back)."""
        with self._cond:
            own, self._own = self._own, None
        if own is None:
            return
        with contextlib.suppress(OSError):
            own.setblocking(False)
        own.close()

    def _daemon_closed(self) -> bool:
        """Whether the daemon dropped a socket the thread owns (from the handler thread).

        The reactor does not watch such a socket, so the peer cannot have made
        it close it: ``loseConnection`` (``disconnecting``) or an abort at stop
        did, and shut the socket down first, which is what woke the thread.
        """
        if not self.aborted:
            raw = self._raw
            if raw is None or not (raw.disconnecting or not raw.connected):
                return False
            self.aborted = True
        return True

    def _stopping(self) -> ConnectionAbortedError:
        return ConnectionAbortedError(errno.ECONNABORTED, "server stopping")

    def _recv_direct(self, buffer: Any, bufsize: int, flags: int) -> Any:
        """``recv`` (``buffer`` None) or ``recv_into`` on the thread's own descriptor."""
        own = self._own
        if own is None:
            raise _bad_fd()
        if self.aborted:
            raise self._stopping()
        try:
            if buffer is None:
                got: Any = own.recv(bufsize, flags)
            else:
                got = own.recv_into(buffer, bufsize, flags)
        except (BlockingIOError, TimeoutError):
            raise
        except OSError:
            # A reset reads as the end of the stream, as in buffered mode
            # (sendall reports the error).
            if self._daemon_closed():
                raise self._stopping() from None
            return b"" if buffer is None else 0
        if not got and self._daemon_closed():
            raise self._stopping()
        return got

    def _send_direct(self, data: Any, partial: bool) -> int:
        own = self._own
        if own is None:
            raise _bad_fd()
        if self.aborted:
            raise self._stopping()
        try:
            if partial:
                sent: int = own.send(data)
                return sent
            own.sendall(data)
        except (BlockingIOError, TimeoutError):
            raise
        except OSError:
            if self._daemon_closed():
                raise self._stopping() from None
            raise
        return 0

    # -- handler thread side -----------------------------------------------

    def _wait(self, ready: Callable[[], bool]) -> None:
        """Wait (holding the condition) until ``ready()``; honour the socket timeout."""
        if ready():
            return
        timeout = self._timeout
        if timeout == 0.0:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        if timeout is None:
            while not ready():
                self._cond.wait()
            return
        deadline = time.monotonic() + timeout
        while not ready():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out")
            self._cond.wait(left)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Receive up to ``bufsize`` bytes; ``b""`` at end of stream.

        A connection lost uncleanly (a reset, or TLS without close_notify,
        which Twisted cannot tell apart) also reads as the end of the stream;
        ``sendall`` then raises :class:`ConnectionResetError`.
        """
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        if self._closed:
            raise _bad_fd()
        if bufsize == 0:
            return b""
        if self._direct and not self._rbuf:
            data: bytes = self._recv_direct(None, bufsize, flags)
            return data
        resume = False
        with self._cond:
            self._wait(lambda: bool(self._rbuf) or self._eof)
            buf = self._rbuf
            if buf:
                data = bytes(buf[:bufsize])
                if not flags & socket.MSG_PEEK:
                    del buf[:bufsize]
                if self._read_paused and not self._resume_pending and len(buf) <= LOW_WATER:
                    self._resume_pending = resume = True
            elif isinstance(self._lost, ConnectionAbortedError):
                raise self._lost
            else:
                data = b""
        if resume:
            self._reactor.callFromThread(self._on_resume_reading)
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        """Receive into ``buffer`` (up to ``nbytes``, or its size); return the count."""
        if self._direct and not self._closed and not self._rbuf:
            if nbytes < 0:
                raise ValueError("negative buffersize in recv_into")
            count: int = self._recv_direct(buffer, nbytes, flags)
            return count
        view = memoryview(buffer).cast("B")
        data = self.recv(nbytes or len(view), flags)
        view[: len(data)] = data
        return len(data)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        """Receive like :meth:`recv`; return ``(data, peer address)``."""
        return self.recv(bufsize, flags), self._peername

    def _send_piece(self, piece: bytes) -> None:
        with self._cond:
            if self._closed:
                raise _bad_fd()
            self._senders_waiting += 1
            try:
                self._wait(
                    lambda: (
                        self._lost is not None
                        or self._write_shut
                        or (not self._write_paused and self._in_flight < MAX_IN_FLIGHT)
                    )
                )
            finally:
                self._senders_waiting -= 1
            if self._write_shut:
                raise BrokenPipeError(errno.EPIPE, "Broken pipe")
            if self._lost is not None:
                raise self._lost
            if self._raw is not None and not self._in_flight:
                # Nothing of ours is on its way to the transport: if its buffer is
                # empty too, the kernel may take the piece now (one reactor turn and
                # one cross-thread wake-up fewer).
                sent = send_now(self._raw, piece)
                if sent == len(piece):
                    return
                piece = piece[sent:]
            self._in_flight += len(piece)
        self._reactor.callFromThread(self._on_write, piece)

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Send all of ``data``, blocking while the peer does not keep up."""
        if self._direct:
            if self._closed:
                raise _bad_fd()
            if self._write_shut:
                raise BrokenPipeError(errno.EPIPE, "Broken pipe")
            self._send_direct(data, partial=False)
            return
        view = memoryview(data).cast("B")
        for start in range(0, len(view), WRITE_CHUNK):
            self._send_piece(bytes(view[start : start + WRITE_CHUNK]))

    def send(self, data: Any, flags: int = 0) -> int:
        """Send some of ``data`` (at most one piece); return how many bytes were taken."""
        if self._direct:
            if self._closed:
                raise _bad_fd()
            if self._write_shut:
                raise BrokenPipeError(errno.EPIPE, "Broken pipe")
            return self._send_direct(data, partial=True)
        view = memoryview(data).cast("B")
        piece = bytes(view[:WRITE_CHUNK])
        if piece:
            self._send_piece(piece)
        return len(piece)

    def sendto(self, data: Any, *args: Any) -> int:
        """Send ``data`` on the connection (the address is ignored, as on a connected socket)."""
        return self.send(data)

    def makefile(
        self,
        mode: str = "r",
        buffering: int | None = None,
        *,
        encoding: str | None = None,
        errors: str | None = None,
        newline: str | None = None,
    ) -> Any:
        """Return a file object on the connection, as :meth:`socket.socket.makefile` does."""
        if not set(mode) <= {"r", "w", "b"}:
            raise ValueError(f"invalid mode {mode!r} (only r, w, b allowed)")
        writing = "w" in mode
        reading = "r" in mode or not writing
        binary = "b" in mode
        raw = SocketIO(self, ("r" if reading else "") + ("w" if writing else ""))
        if buffering is None or buffering < 0:
            buffering = io.DEFAULT_BUFFER_SIZE
        if buffering == 0:
            if not binary:
                raise ValueError("unbuffered streams must be binary")
            return raw
        buffer: io.BufferedIOBase
        if reading and writing:
            buffer = io.BufferedRWPair(raw, raw, buffering)
        elif reading:
            buffer = io.BufferedReader(raw, buffering)
        else:
            buffer = io.BufferedWriter(raw, buffering)
        if binary:
            return buffer
        return io.TextIOWrapper(buffer, encoding, errors, newline)

    def settimeout(self, value: float | None) -> None:
        """Set the timeout of blocking operations (``None``: block; ``0``: non-blocking)."""
        if value is not None:
            value = float(value)
            if value < 0:
                raise ValueError("Timeout value out of range")
        self._timeout = value
        self._apply_timeout()

    def _apply_timeout(self) -> None:
        own = self._own
        if own is not None:
            with contextlib.suppress(OSError):
                own.settimeout(self._timeout)

    def gettimeout(self) -> float | None:
        """Return the current timeout."""
        return self._timeout

    @property
    def timeout(self) -> float | None:
        """The current timeout, as on a socket."""
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        """Blocking (timeout ``None``) or non-blocking (timeout ``0.0``) mode."""
        self._timeout = None if flag else 0.0
        self._apply_timeout()

    def getblocking(self) -> bool:
        """Return whether operations block."""
        return self._timeout != 0.0

    def shutdown(self, how: int) -> None:
        """Shut down reading (end of stream locally), writing (half-close), or both."""
        if self._closed:
            raise _bad_fd()
        if self._direct:
            self._shutdown_direct(how)
            return
        if how in (socket.SHUT_RD, socket.SHUT_RDWR):
            with self._cond:
                self._eof = True
                self._rbuf.clear()
                self._cond.notify_all()
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            with self._cond:
                already = self._write_shut
                self._write_shut = True
                self._cond.notify_all()
            if not already:
                if how == socket.SHUT_RDWR:
                    self._reactor.callFromThread(self._on_close)
                else:
                    self._reactor.callFromThread(self._on_shutdown_write)

    def _shutdown_direct(self, how: int) -> None:
        if how not in (socket.SHUT_RD, socket.SHUT_WR, socket.SHUT_RDWR):
            raise ValueError(f"invalid shutdown mode {how!r}")
        with self._cond:
            if how != socket.SHUT_RD:
                self._write_shut = True
            if how != socket.SHUT_WR:
                self._eof = True
            own = self._own
            if own is not None:
                # As in buffered mode, a connection already gone is no error here.
                with contextlib.suppress(OSError):
                    own.shutdown(how)

    def close(self) -> None:
        """Close the connection once everything sent so far is written."""
        with self._cond:
            if self._closed:
                return
            self._closed = self._write_shut = True
            self._cond.notify_all()
        if self._direct:
            # Hand the connection back: the reactor closes it (exactly once).
            self._release_direct()
        self._reactor.callFromThread(self._on_close)

    def __enter__(self) -> ThreadedSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SocketIO(io.RawIOBase):
    """Raw I/O on a :class:`ThreadedSocket`, buffered by ``makefile`` (as ``socket.SocketIO``)."""

    def __init__(self, sock: ThreadedSocket, mode: str) -> None:
        super().__init__()
        self._sock = sock
        self._reading = "r" in mode
        self._writing = "w" in mode
        self._timeout_occurred = False

    def readinto(self, b: Any) -> int:
        """Read into ``b`` from the connection."""
        self._checkClosed()
        if not self._reading:
            raise io.UnsupportedOperation("not readable")
        if self._timeout_occurred:
            raise OSError("cannot read from timed out object")
        try:
            return self._sock.recv_into(b)
        except TimeoutError:
            self._timeout_occurred = True
            raise

    def write(self, b: Any) -> int:
        """Write ``b`` to the connection."""
        self._checkClosed()
        if not self._writing:
            raise io.UnsupportedOperation("not writable")
        return self._sock.send(b)

    def readable(self) -> bool:
        """Return whether this was opened for reading."""
        return self._reading and not self.closed

    def writable(self) -> bool:
        """Return whether this was opened for writing."""
        return self._writing and not self.closed

    def seekable(self) -> bool:
        """Return False: connections are streams."""
        return False

    def fileno(self) -> int:
        """Refuse, as :meth:`ThreadedSocket.fileno` does."""
        return self._sock.fileno()


def run_blocking_handler(
    handler_class: type, sock: ThreadedSocket, client_address: Any, server: HandlerServer
) -> None:
    """Run a handler as ``socketserver`` does (in a pool thread), then close the connection."""
    try:
        handler_class(sock, client_address, server)
    except ConnectionAbortedError:
        if not sock.aborted:
            server.handle_error(sock, client_address)
    except Exception:
        server.handle_error(sock, client_address)
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
        sock.close()


class ThreadedStreamProtocol(HandlerStreamProtocol):
    """A stream connection whose handler runs in the thread pool."""

    socket: ThreadedSocket | None = None

    def __init__(self, host: Any) -> None:
        super().__init__(host)

    def connectionMade(self) -> None:
        """Set TCP_NODELAY, register the write gate, and queue the handler in the pool."""
        transport: Any = self.transport
        assert transport is not None
        set_nodelay(transport)
        sock = self.socket = ThreadedSocket(self._host.reactor, transport)
        direct = getattr(self._host, "direct_io", False) and sock._start_direct_reading()
        if not direct:
            transport.registerProducer(WriteGate(sock), True)
        self._host.connection_made(self)
        server = self._host.server_for(transport.getHost())
        self._host.pool.callInThread(
            run_blocking_handler, self._host.handler_class, sock, sock.getpeername(), server
        )

    def abort(self) -> None:
        """Wake the handler and drop the connection (daemon stopping)."""
        if self.socket is not None:
            self.socket._on_abort()
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

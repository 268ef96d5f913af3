"""Run ``async def handle`` (or ``run_on_reactor = True``) handlers on the reactor.

Such a handler's ``self.request`` is an :class:`AsyncSocket`: ``recv(n)``
and ``sendall(data)`` return Deferreds (await them).  ``self.rfile`` is an
:class:`AsyncReader` (awaitable ``read``, ``readline``, ``readexactly``;
``async for line in self.rfile``) and ``self.wfile`` an :class:`AsyncWriter`
(``write`` + awaitable ``drain``).  Backpressure works both ways: unread
data beyond :data:`~netproto_twisted.sockserv.common.HIGH_WATER` pauses
reading from the peer, and the Deferred of ``sendall``/``drain`` fires only
once the transport's write buffer is below its watermark.

Handler coroutines run under :class:`_Driver`, a small trampoline: a read
whose data is already buffered (or a write the transport takes at once)
returns without suspending, and a pending read resumes the coroutine straight
from ``dataReceived``, without a callback chain.  Any other Deferred a handler
awaits works as under ``Deferred.fromCoroutine``.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import socket
import socketserver
from collections.abc import Coroutine
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.core._twisted_compat import fire_quietly, has_callbacks, send_now, succeeded
from netproto_twisted.core.net import set_nodelay, write_now
from netproto_twisted.sockserv.common import (
    HIGH_WATER,
    LOW_WATER,
    HandlerServer,
    HandlerStreamProtocol,
    StreamSocketBase,
    WriteGate,
)

__all__ = [
    "AsyncReader",
    "AsyncSocket",
    "AsyncStreamProtocol",
    "AsyncWriter",
    "IncompleteReadError",
    "run_async_handler",
]

_RECV, _LINE, _EXACT, _ALL = range(4)
#: Default ``limit`` of :meth:`AsyncReader.readline`.
LINE_LIMIT = 64 * 1024
_log = Logger()


class _Op(Deferred[Any]):
    """A socket operation's Deferred, which a :class:`_Driver` awaiting it resumes directly."""

    _driver: _Driver | None = None


def _fire(op: _Op, value: Any) -> None:
    """Give ``op`` its result (a :class:`Failure` to fail it) and resume whoever awaits it."""
    driver = op._driver
    if driver is None:
        op.callback(value)
        return
    op._driver = None
    if isinstance(value, Failure):
        op.callback(value)
    else:
        # What callback() does when nobody added callbacks, minus the chain machinery.
        fire_quietly(op, value)
    # Deferred.__await__ picks the result (or raises the failure) from op itself.
    driver._step(None, None)


class _Driver:
    """Run a handler coroutine: resume it from socket events directly, or from Deferreds."""

    __slots__ = ("_coro", "_waiting", "done")

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro: Coroutine[Any, Any, Any] | None = coro
        self._waiting: Deferred[Any] | None = None
        #: True once the coroutine has returned or raised.
        self.done = False

    def start(self) -> None:
        """Run the coroutine up to its first suspension."""
        self._step(None, None)

    def cancel(self) -> None:
        """Cancel the Deferred the coroutine waits on, unless a socket operation.

        The coroutine sees :class:`CancelledError` there.  A pending read or
        drain is left alone: it ends as the connection does.
        """
        waiting = self._waiting
        if waiting is not None and not isinstance(waiting, _Op) and not waiting.called:
            waiting.cancel()

    def _resumed(self, result: Any) -> None:
        if isinstance(result, Failure):
            self._step(None, result)
        else:
            self._step(result, None)

    def _step(self, value: Any, failure: Failure | None) -> None:
        coro = self._coro
        if coro is None:
            return
        self._waiting = None
        while True:
            try:
                if failure is not None:
                    awaited = failure.throwExceptionIntoGenerator(coro)
                    failure = None
                else:
                    awaited = coro.send(value)
            except StopIteration:
                self._finished()
                return
            except BaseException:
                self._finished()
                _log.failure("handler coroutine failed")
                return
            if type(awaited) is _Op and not awaited.called and not has_callbacks(awaited):
                awaited._driver = self
                self._waiting = awaited
                return
            if isinstance(awaited, Deferred):
                self._waiting = awaited
                awaited.addBoth(self._resumed)
                return
            value = awaited  # as inlineCallbacks does: a non-Deferred comes straight back

    def _finished(self) -> None:
        self._coro = None
        self._waiting = None
        self.done = True


class IncompleteReadError(EOFError):
    """The stream ended before :meth:`AsyncReader.readexactly` got its bytes."""

    def __init__(self, partial: bytes, expected: int) -> None:
        super().__init__(f"{len(partial)} bytes read on a total of {expected} expected bytes")
        self.partial = partial
        self.expected = expected


class AsyncSocket(StreamSocketBase):
    """The ``request`` of a reactor-run handler: awaitable ``recv``/``sendall`` on a transport."""

    def __init__(self, reactor: IReactorTime, transport: Any) -> None:
        self._reactor = reactor
        self._transport = transport
        self._buf = bytearray()
        self._eof = False
        self._lost: BaseException | None = None
        self._closed = False
        self._waiter: _Op | None = None
        self._want = _RECV
        self._want_n = 0
        self._scanned = 0
        self._timer: IDelayedCall | None = None
        self._read_paused = False
        self._write_paused = False
        self._drains: list[_Op] = []
        self._timeout: float | None = None
        self._aborted = False
        self._bind_transport(transport)

    def __repr__(self) -> str:
        return f"<AsyncSocket laddr={self._sockname!r} raddr={self._peername!r}>"

    # -- fed by the protocol -----------------------------------------------

    def _on_data(self, data: bytes) -> None:
        waiter = self._waiter
        buf = self._buf
        if waiter is not None and self._want == _RECV and not buf:
            n = self._want_n
            if len(data) > n:
                buf += memoryview(data)[n:]
                data = data[:n]
            self._waiter = None
            if self._timer is not None:
                self._cancel_timer()
            driver = waiter._driver
            if driver is not None:
                # _fire(waiter, data), inlined for the usual case.
                waiter._driver = None
                fire_quietly(waiter, data)
                driver._step(None, None)
            else:
                _fire(waiter, data)
        else:
            buf += data
            if waiter is not None:
                self._try_satisfy()
        if not self._read_paused and len(self._buf) >= HIGH_WATER and self._waiter is None:
            self._read_paused = True
            self._transport.pauseProducing()

    def _on_eof(self) -> None:
        self._eof = True
        if self._waiter is not None:
            self._try_satisfy()

    def _on_lost(self, reason: Failure) -> None:
        self._eof = True
        if reason.check(ConnectionDone):
            self._lost = BrokenPipeError(errno.EPIPE, "connection closed")
        else:
            self._lost = ConnectionResetError(errno.ECONNRESET, "connection lost")
        if self._waiter is not None:
            self._try_satisfy()
        drains, self._drains = self._drains, []
        for d in drains:
            _fire(d, Failure(self._lost_error()))

    def _on_write_paused(self, paused: bool) -> None:
        self._write_paused = paused
        if not paused and self._drains:
            drains, self._drains = self._drains, []
            for d in drains:
                _fire(d, None)

    # -- reading -----------------------------------------------------------

    def _take(self, n: int) -> bytes:
        buf = self._buf
        if n >= len(buf):
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:n])
            del buf[:n]
        self._scanned = 0
        if self._read_paused and len(buf) <= LOW_WATER and self._lost is None:
            self._read_paused = False
            self._transport.resumeProducing()
        return data

    def _result(self) -> Any:
        """Return what the pending kind of read can return now, or ``None``."""
        buf = self._buf
        want = self._want
        if want == _RECV:
            if buf:
                return self._take(self._want_n)
            if self._eof:
                return self._eof_result()
            return None
        if want == _LINE:
            i = buf.find(b"\n", self._scanned)
            if i >= 0 and i < self._want_n:
                return self._take(i + 1)
            if len(buf) >= self._want_n:
                return self._take(self._want_n)
            if self._eof:
                return self._take(len(buf)) if buf else self._eof_result()
            self._scanned = len(buf)
            return None
        if want == _EXACT:
            if len(buf) >= self._want_n:
                return self._take(self._want_n)
            if self._eof:
                return Failure(IncompleteReadError(self._take(len(buf)), self._want_n))
            return None
        if self._eof:
            return self._take(len(buf)) if buf else self._eof_result()
        return None

    def _eof_result(self) -> Any:
        # An unclean loss (reset, TLS without close_notify) reads as end of stream too.
        if isinstance(self._lost, ConnectionAbortedError):
            return Failure(self._lost_error())
        return b""

    def _try_satisfy(self) -> None:
        result = self._result()
        if result is None:
            return
        waiter = self._waiter
        assert waiter is not None
        self._waiter = None
        if self._timer is not None:
            self._cancel_timer()
        _fire(waiter, result)

    def _read(self, want: int, n: int) -> Deferred[Any]:
        if self._closed:
            return fail(OSError(errno.EBADF, "Bad file descriptor"))
        if self._waiter is not None:
            return fail(RuntimeError("another read is already waiting on this connection"))
        self._want = want
        self._want_n = n
        result = self._result()
        if result is not None:
            return fail(result) if isinstance(result, Failure) else succeed(result)
        d = _Op(self._cancel_read)
        self._waiter = d
        if self._read_paused:
            self._read_paused = False
            self._transport.resumeProducing()
        if self._timeout is not None:
            if self._timeout == 0.0:
                self._waiter = None
                return fail(BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable"))
            self._timer = self._reactor.callLater(self._timeout, self._timed_out)
        return d

    def _cancel_read(self, d: Deferred[Any]) -> None:
        if self._waiter is d:
            self._waiter = None
            if self._timer is not None:
                self._cancel_timer()
        assert isinstance(d, _Op)
        _fire(d, Failure(CancelledError()))

    def _cancel_drain(self, d: Deferred[Any]) -> None:
        if d in self._drains:
            self._drains.remove(d)
        assert isinstance(d, _Op)
        _fire(d, Failure(CancelledError()))

    def _drain_op(self) -> _Op:
        d = _Op(self._cancel_drain)
        self._drains.append(d)
        return d

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _timed_out(self) -> None:
        self._timer = None
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            _fire(waiter, Failure(TimeoutError("timed out")))

    def recv(self, bufsize: int, flags: int = 0) -> Deferred[bytes]:
        """Fire with up to ``bufsize`` bytes as soon as any arrive; ``b""`` at end of stream.

        An unclean loss also reads as ``b""``; ``sendall`` then fails with
        :class:`ConnectionResetError`.
        """
        if bufsize > 0 and self._waiter is None:
            if self._buf:
                return succeed(self._take(bufsize))
            if not (self._eof or self._closed or self._read_paused or self._timeout is not None):
                # The usual wait, shortened: nothing buffered, nothing else to set up.
                d = self._waiter = _Op(self._cancel_read)
                self._want = _RECV
                self._want_n = bufsize
                return d
        elif bufsize <= 0:
            if bufsize < 0:
                return fail(ValueError("negative buffersize in recv"))
            return succeed(b"")
        return self._read(_RECV, bufsize)

    # -- writing -----------------------------------------------------------

    def _write_error(self) -> BaseException | None:
        if self._closed:
            return OSError(errno.EBADF, "Bad file descriptor")
        return self._lost_error()

    def _lost_error(self) -> BaseException | None:
        """A fresh copy of the loss error: a raised instance keeps its traceback (a cycle)."""
        lost = self._lost
        return None if lost is None else type(lost)(*lost.args)

    def write(self, data: bytes) -> None:
        """Queue ``data`` for sending without waiting (see :meth:`drain`)."""
        error = self._write_error()
        if error is not None:
            raise error
        self._send(data)

    def _send(self, data: bytes) -> None:
        """Send now what the kernel takes if nothing is queued; queue the rest, in order."""
        write_now(self._transport, data, self._raw)

    def drain(self) -> Deferred[None]:
        """Fire once the transport's write buffer is below its watermark."""
        error = self._write_error()
        if error is not None:
            return fail(error)
        if not self._write_paused:
            return succeed(None)
        return self._drain_op()

    def sendall(self, data: Any, flags: int = 0) -> Deferred[None]:
        """Send ``data``; fire once the transport took it and its buffer is below the watermark."""
        if self._closed or self._lost is not None:
            return fail(self._write_error())
        if not isinstance(data, bytes):
            data = bytes(data)
        # self._send(data), inlined: send now what the kernel takes, queue the rest.
        raw = self._raw
        sent = send_now(raw, data) if raw is not None and data else 0
        if sent != len(data):
            self._transport.write(data[sent:] if sent else data)
        if not self._write_paused:
            return succeeded()
        return self._drain_op()

    def send(self, data: Any, flags: int = 0) -> Deferred[int]:
        """Send all of ``data`` as :meth:`sendall` does; fire with its length."""
        size = len(memoryview(data).cast("B"))
        return self.sendall(data).addCallback(lambda _: size)

    # -- the rest of the socket API ------------------------------------------

    def settimeout(self, value: float | None) -> None:
        """Make reads fail with :class:`TimeoutError` after ``value`` seconds (``None``: never)."""
        if value is not None:
            value = float(value)
            if value < 0:
                raise ValueError("Timeout value out of range")
        self._timeout = value

    def gettimeout(self) -> float | None:
        """Return the current read timeout."""
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        """Blocking (no timeout) or non-blocking (reads fail with BlockingIOError if empty)."""
        self._timeout = None if flag else 0.0


    def makefile(self, mode: str = "r", buffering: int | None = None, **kwargs: Any) -> Any:
        """Return an :class:`AsyncReader` (``"rb"``) or :class:`AsyncWriter` (``"wb"``)."""
        if "w" in mode:
            return AsyncWriter(self)
        return AsyncReader(self)

    def shutdown(self, how: int) -> None:
        """Half-close for writing (SHUT_WR), stop reading (SHUT_RD), or both."""
        if how in (socket.SHUT_RD, socket.SHUT_RDWR):
            self._eof = True
            self._buf.clear()
        if how == socket.SHUT_RDWR:
            self.close()
        elif how == socket.SHUT_WR and self._lost is None:
            half_close = getattr(self._transport, "loseWriteConnection", None)
            if half_close is not None:
                half_close()
            else:
                self.close()

    def close(self) -> None:
        """Close the connection once everything queued is written."""
        if self._closed:
            return
        self._closed = True
        if self._lost is None:
            with contextlib.suppress(RuntimeError):  # no producer registered
                self._transport.unregisterProducer()
            self._transport.loseConnection()

    def abort(self) -> None:
        """Drop the connection at once."""
        self._closed = True
        self._aborted = True
        if self._lost is None:
            self._transport.abortConnection()


class AsyncReader:
    """``self.rfile`` of a reactor-run handler: awaitable reads on an :class:`AsyncSocket`."""

    __slots__ = ("_sock", "closed")

    def __init__(self, sock: AsyncSocket) -> None:
        self._sock = sock
        self.closed = False

    def read(self, n: int = -1) -> Deferred[bytes]:
        """Fire with up to ``n`` bytes as soon as any arrive; with ``n < 0``, all until EOF."""
        if n < 0:
            return self._sock._read(_ALL, 0)
        return self._sock.recv(n)

    def readline(self, limit: int = LINE_LIMIT) -> Deferred[bytes]:
        """Fire with the next line (ending in ``b"\\n"``), at most ``limit`` bytes of it."""
        return self._sock._read(_LINE, max(1, limit))

    def readexactly(self, n: int) -> Deferred[bytes]:
        """Fire with exactly ``n`` bytes; fail with :class:`IncompleteReadError` on early EOF."""
        return self._sock._read(_EXACT, n)

    def __aiter__(self) -> AsyncReader:
        return self

    async def __anext__(self) -> bytes:
        line: bytes = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    def close(self) -> None:
        """Mark the reader closed (the connection stays open)."""
        self.closed = True


class AsyncWriter:
    """``self.wfile`` of a reactor-run handler: ``write`` queues, ``await drain()`` waits."""

    __slots__ = ("_sock", "closed")

    def __init__(self, sock: AsyncSocket) -> None:
        self._sock = sock
        self.closed = False

    def write(self, data: bytes) -> int:
        """Queue ``data``; return its length (await :meth:`drain` for backpressure)."""
        self._sock.write(data)
        return len(data)

    def writelines(self, lines: Any) -> None:
        """Queue every item of ``lines``."""
        for line in lines:
            self._sock.write(line)

    def drain(self) -> Deferred[None]:
        """Fire once the transport's write buffer is below its watermark."""
        return self._sock.drain()

    def flush(self) -> None:
        """Do nothing: data goes to the transport on ``write``."""

    def close(self) -> None:
        """Mark the writer closed (the connection closes after the handler)."""
        self.closed = True


_STDLIB_HOOKS = {
    socketserver.BaseRequestHandler.setup,
    socketserver.BaseRequestHandler.finish,
    socketserver.StreamRequestHandler.setup,
    socketserver.StreamRequestHandler.finish,
}


async def _call_hook(handler: Any, name: str) -> None:
    method = getattr(handler, name, None)
    if method is None or getattr(method, "__func__", None) in _STDLIB_HOOKS:
        return
    result = method()
    if inspect.isawaitable(result):
        await result


async def run_async_handler(
    handler_class: type, request: Any, client_address: Any, server: HandlerServer
) -> None:
    """Run a reactor-side handler: ``setup``, ``handle``, then ``finish`` (even on error).

    Each of the three may be a coroutine function.

    ``socketserver``'s own ``StreamRequestHandler.setup``/``finish`` are
    replaced: ``self.connection``, ``self.rfile`` and ``self.wfile`` are set
    before ``setup`` runs.  ``DatagramRequestHandler``'s run as they are.
    """
    handler: Any = object.__new__(handler_class)
    handler.request = request
    handler.client_address = client_address
    handler.server = server
    if isinstance(request, AsyncSocket):
        handler.connection = request
        handler.rfile = AsyncReader(request)
        handler.wfile = AsyncWriter(request)
    try:
        await _call_hook(handler, "setup")
        try:
            result = handler.handle()
            if inspect.isawaitable(result):
                await result
        finally:
            await _call_hook(handler, "finish")
    except CancelledError:
        if not (isinstance(request, AsyncSocket) and request._aborted):
            server.handle_error(request, client_address)
    except Exception:
        server.handle_error(request, client_address)
    finally:
        if isinstance(request, AsyncSocket):
            request.close()


class AsyncStreamProtocol(HandlerStreamProtocol):
    """A stream connection whose handler runs on the reactor."""

    socket: AsyncSocket | None = None

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        #: What runs the handler coroutine (set once connected).
        self.driver: _Driver | None = None

    def connectionMade(self) -> None:
        """Set TCP_NODELAY, register the write gate and start the handler coroutine."""
        transport: Any = self.transport
        assert transport is not None
        set_nodelay(transport)
        sock = self.socket = AsyncSocket(self._host.reactor, transport)
        # The hot path: the transport (or guard wrapper) calls the socket directly.
        self.dataReceived = sock._on_data  # type: ignore[method-assign]
        transport.registerProducer(WriteGate(sock), True)
        self._host.connection_made(self)
        server = self._host.server_for(transport.getHost())
        driver = self.driver = _Driver(
            run_async_handler(self._host.handler_class, sock, sock.getpeername(), server)
        )
        driver.start()

    def abort(self) -> None:
        """Drop the connection (daemon stopping); cancel whatever Deferred the handler awaits.

        A handler waiting on the socket sees the connection end as usual; one
        waiting on any other Deferred gets :class:`CancelledError` there
        (not logged as an error if the handler lets it through).
        """
        if self.socket is not None:
            self.socket.abort()
        if self.driver is not None:
            self.driver.cancel()

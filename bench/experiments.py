"""Measured experiments on the sockserv hot paths (``python bench/sockserv.py --experiments``).

Nothing here is used in production: these handlers test, inside the real
daemon, the patches proposed in bench/README.md for
``netproto_twisted/sockserv``. They rely on private attributes of Twisted's
transports and of sockserv's sockets, which is acceptable for a measurement
only.

- :class:`EagerAsyncEcho`: the async echo, but when the transport has nothing
  queued the reply goes out at once with ``socket.send`` instead of waiting
  for the next reactor turn (saves one epoll event and two ``epoll_ctl``
  calls per reply), done in the handler.
- :class:`EagerSendallEcho`: the built-in async echo with the same idea done
  where it belongs, in ``AsyncSocket.sendall`` (:func:`eager_sendall`, the
  patch proposed in bench/README.md), installed on import.
- :class:`QuietWriteThreadedEcho`: the threaded echo, with
  ``ThreadedSocket._on_write`` notifying the handler thread only when a
  blocked ``sendall`` can proceed, instead of after every write (which wakes
  the thread waiting in ``recv`` for nothing, once per reply).
"""

from __future__ import annotations

import socketserver
from typing import Any

from twisted.internet.abstract import FileDescriptor
from twisted.internet.defer import Deferred, fail, succeed

from netproto_twisted.sockserv import aio as _aio
from netproto_twisted.sockserv import threaded as _threaded
from netproto_twisted.sockserv.builtins import EchoHandler
from netproto_twisted.sockserv.common import MAX_IN_FLIGHT

__all__ = ["EagerAsyncEcho", "EagerSendallEcho", "QuietWriteThreadedEcho", "eager_send",
           "eager_sendall"]


def eager_send(transport: Any, handle: Any, data: bytes) -> bytes:
    """Send what the kernel takes now if nothing is queued; return the rest for the transport."""
    if handle is None or transport.dataBuffer or transport._tempDataBuffer:
        return data
    try:
        sent = handle.send(data)
    except OSError:  # EAGAIN, or an error the transport will report its own way
        return data
    return data[sent:]


class EagerAsyncEcho(socketserver.BaseRequestHandler):
    """The built-in async echo with an eager first write."""

    request: Any

    async def handle(self) -> None:  # type: ignore[override]
        """Echo until EOF, sending at once when nothing is queued."""
        sock = self.request
        transport, handle = sock._transport, sock._handle
        recv, sendall = sock.recv, sock.sendall
        try:
            while True:
                data = await recv(65536)
                if not data:
                    return
                rest = eager_send(transport, handle, data)
                if rest:
                    await sendall(rest)
        except ConnectionError:
            return


def _raw_transport(transport: Any) -> Any:
    """The TCP transport under protocol wrappers (``GuardedProtocol``), or None if not TCP."""
    for _ in range(8):
        if isinstance(transport, FileDescriptor):
            return transport
        inner = getattr(transport, "transport", None)
        if inner is None or inner is transport:
            return None
        transport = inner
    return None


def eager_sendall(self: Any, data: Any, flags: int = 0) -> Deferred[None]:
    """``AsyncSocket.sendall``, sending at once when the TCP transport has nothing queued."""
    error = self._write_error()
    if error is not None:
        return fail(error)
    if not isinstance(data, bytes):
        data = bytes(data)
    raw = self.__dict__.get("_raw")
    if raw is None:
        raw = self._raw = _raw_transport(self._transport) if self._handle is not None else False
    if (raw and raw.connected and not raw.disconnecting and not raw.dataBuffer
            and not raw._tempDataBuffer and not self._write_paused):
        try:
            sent = self._handle.send(data)
        except OSError:  # EAGAIN; or an error the transport will report its own way
            sent = 0
        if sent == len(data):
            return succeed(None)
        data = data[sent:]
    self._transport.write(data)
    if not self._write_paused:
        return succeed(None)
    d: Deferred[None] = Deferred()
    self._drains.append(d)
    return d


class EagerSendallEcho(EchoHandler):
    """The built-in async echo, run with :func:`eager_sendall` (installed on import)."""


def _quiet_on_write(self: Any, data: bytes) -> None:
    if self._lost is None:
        self._transport.write(data)
    with self._cond:
        before = self._in_flight
        self._in_flight -= len(data)
        if before >= MAX_IN_FLIGHT > self._in_flight:
            self._cond.notify_all()


class QuietWriteThreadedEcho(socketserver.StreamRequestHandler):
    """bench.handlers.ThreadedEcho, run with the patched ``_on_write`` (installed on import)."""

    def handle(self) -> None:
        """Read lines and write them back until EOF."""
        for line in self.rfile:
            self.wfile.write(line)


_threaded.ThreadedSocket._on_write = _quiet_on_write  # type: ignore[method-assign]
_aio.AsyncSocket.sendall = eager_sendall  # type: ignore[method-assign]

"""Handlers the sockserv tests host (in-process and under twistd)."""

from __future__ import annotations

import socket
import socketserver
import threading
from typing import Any

from twisted.internet.defer import Deferred

__all__ = [
    "AsyncLineUpper",
    "AsyncReadExactly",
    "Boom",
    "CountUntilEof",
    "LineEcho",
    "NotAHandler",
    "PeerInfo",
    "RunOnReactorHello",
    "ShutdownAfterReply",
    "UpperDatagram",
]


class LineEcho(socketserver.StreamRequestHandler):
    """Echo each line (threaded, buffered rfile/wfile)."""

    def handle(self) -> None:
        for line in self.rfile:
            self.wfile.write(line)


class CountUntilEof(socketserver.BaseRequestHandler):
    """Read until the peer half-closes, then reply with the byte count (threaded)."""

    def handle(self) -> None:
        total = 0
        while True:
            data = self.request.recv(65536)
            if not data:
                break
            total += len(data)
        self.request.sendall(b"%d\n" % total)


class Boom(socketserver.StreamRequestHandler):
    """Read one line, then raise (threaded)."""

    def handle(self) -> None:
        self.rfile.readline()
        raise ZeroDivisionError("boom in handler")


class AsyncBoom(socketserver.BaseRequestHandler):
    """Read once, then raise (reactor)."""

    async def handle(self) -> None:  # type: ignore[override]
        await self.request.recv(100)
        raise ZeroDivisionError("async boom")


class PeerInfo(socketserver.StreamRequestHandler):
    """Report what a handler sees of its socket and server, one ``key=value`` per line."""

    def handle(self) -> None:
        s = self.request
        lines = [
            f"client={self.client_address!r}",
            f"peer={s.getpeername()!r}",
            f"sock={s.getsockname()!r}",
            f"server_address={self.server.server_address!r}",
            f"socket_type={int(self.server.socket_type)}",  # type: ignore[attr-defined]
            f"handler={self.server.RequestHandlerClass.__name__}",
            f"thread={threading.current_thread().name}",
            f"nodelay={s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0}",
        ]
        self.wfile.write(("\n".join(lines) + "\n.\n").encode())


class ShutdownAfterReply(socketserver.BaseRequestHandler):
    """Reply, then ask the server to shut down (must not block or crash)."""

    def handle(self) -> None:
        self.request.sendall(b"bye\n")
        self.server.shutdown()


class UpperDatagram(socketserver.DatagramRequestHandler):
    """Upper-case each datagram through rfile/wfile (threaded)."""

    def handle(self) -> None:
        self.wfile.write(self.rfile.read().upper())


class AsyncUpperDatagram(socketserver.DatagramRequestHandler):
    """Upper-case each datagram through rfile/wfile (reactor)."""

    async def handle(self) -> None:  # type: ignore[override]
        self.wfile.write(self.rfile.read().upper())


class AsyncLineUpper(socketserver.StreamRequestHandler):
    """Upper-case each line with the async rfile/wfile API."""

    rfile: Any
    wfile: Any

    async def handle(self) -> None:  # type: ignore[override]
        async for line in self.rfile:
            self.wfile.write(line.upper())
            await self.wfile.drain()


class AsyncReadExactly(socketserver.BaseRequestHandler):
    """Read a 4-byte length, then exactly that many bytes; reply with their reverse."""

    rfile: Any

    async def handle(self) -> None:  # type: ignore[override]
        size = int(await self.rfile.readexactly(4))
        body = await self.rfile.readexactly(size)
        await self.request.sendall(body[::-1])


class RunOnReactorHello(socketserver.BaseRequestHandler):
    """``run_on_reactor``: ``handle`` returns a Deferred."""

    run_on_reactor = True

    def handle(self) -> Deferred[None]:  # type: ignore[override]
        d: Deferred[None] = self.request.sendall(b"hello from the reactor\n")
        return d


NotAHandler = 42


class NoHandle:
    """A class without ``handle``."""


def numbered_stream() -> bytes:
    """Mixed small and large pieces, each numbered, to check write ordering."""
    return b"".join(
        (b"%06d:" % i) + (b"x" * (200_000 if i % 7 == 0 else i)) + b"\n" for i in range(60)
    )


class SendNumbered(socketserver.BaseRequestHandler):
    """Send :func:`numbered_stream` piece by piece with sendall (threaded)."""

    def handle(self) -> None:
        for piece in numbered_stream().splitlines(keepends=True):
            self.request.sendall(piece)


class AsyncSendNumbered(socketserver.BaseRequestHandler):
    """Send :func:`numbered_stream` piece by piece, mixing sendall and write (reactor)."""

    async def handle(self) -> None:  # type: ignore[override]
        for i, piece in enumerate(numbered_stream().splitlines(keepends=True)):
            if i % 2:
                await self.request.sendall(piece)
            else:
                self.request.write(piece)
        await self.request.drain()

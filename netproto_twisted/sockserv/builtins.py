"""The built-in handlers: echo (RFC 862), discard (RFC 863), daytime (RFC 867), TCP and UDP.

All three run on the reactor (``async def handle``).  Daytime's format is
free-form per RFC 867; ours is English, UTC, one line::

    Saturday, November 21, 2026 06:59:00-UTC\\r\\n
"""

from __future__ import annotations

import socket
import socketserver
import time
from typing import Any

__all__ = ["BUILTIN_HANDLERS", "DaytimeHandler", "DiscardHandler", "EchoHandler", "daytime"]

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_RECV_SIZE = 65536


def daytime(seconds: float) -> bytes:
    """Return the RFC 867 daytime line for a POSIX time, e.g. ``Saturday, November 21, ...``."""
    t = time.gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {_MONTHS[t.tm_mon - 1]} {t.tm_mday}, {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}-UTC\r\n"
    ).encode("ascii")


def _is_datagram(handler: socketserver.BaseRequestHandler) -> bool:
    return bool(getattr(handler.server, "socket_type", None) == socket.SOCK_DGRAM)


class EchoHandler(socketserver.BaseRequestHandler):
    """RFC 862: send back everything received (TCP: until the peer closes; UDP: each datagram)."""

    request: Any

    async def handle(self) -> None:  # type: ignore[override]
        """Echo."""
        if _is_datagram(self):
            data, sock = self.request
            sock.sendto(data, self.client_address)
            return
        recv, sendall = self.request.recv, self.request.sendall
        try:
            while True:
                data = await recv(_RECV_SIZE)
                if not data:
                    return
                await sendall(data)
        except ConnectionError:
            return


class DiscardHandler(socketserver.BaseRequestHandler):
    """RFC 863: read and throw away everything received."""

    request: Any

    async def handle(self) -> None:  # type: ignore[override]
        """Discard."""
        if _is_datagram(self):
            return
        recv = self.request.recv
        try:
            while await recv(_RECV_SIZE):
                pass
        except ConnectionError:
            return


class DaytimeHandler(socketserver.BaseRequestHandler):
    """RFC 867: send the date and time as one line, then close (UDP: reply to any datagram)."""

    request: Any

    async def handle(self) -> None:  # type: ignore[override]
        """Tell the time."""
        line = daytime(self.server.reactor.seconds())  # type: ignore[attr-defined]
        if _is_datagram(self):
            self.request[1].sendto(line, self.client_address)
            return
        try:
            await self.request.sendall(line)
        except ConnectionError:
            return


#: ``--handler`` short names.
BUILTIN_HANDLERS: dict[str, type[socketserver.BaseRequestHandler]] = {
    "echo": EchoHandler,
    "discard": DiscardHandler,
    "daytime": DaytimeHandler,
}

"""The stdlib peer of bench/sockserv.py: ``socketserver.ThreadingTCPServer`` echoing bytes.

Run: ``python bench/stdlib_echo.py [--port 0] [--backlog N] [--stream]``. Prints
``stdlib echo listening on tcp 127.0.0.1:PORT`` once it accepts; stops on SIGTERM.
``--stream`` uses a ``StreamRequestHandler`` line echo (the handler that
bench/handlers.py hosts under our daemon) instead of a ``BaseRequestHandler``.
``--stream --poll-first`` makes that handler ``poll()`` before each read, as
sockserv's threaded direct reads do, to measure what the extra wait costs.
"""

from __future__ import annotations

import argparse
import io
import select
import signal
import socket
import socketserver
import sys
import threading
from types import FrameType
from typing import Any, cast

__all__ = ["EchoHandler", "LineEchoHandler", "PollFirstLineEchoHandler", "main"]


class EchoHandler(socketserver.BaseRequestHandler):
    """Echo every byte received until the peer closes."""

    def handle(self) -> None:
        """Receive and send back until EOF."""
        sock = cast(socket.socket, self.request)
        recv, sendall = sock.recv, sock.sendall
        while True:
            data = recv(65536)
            if not data:
                return
            sendall(data)


class LineEchoHandler(socketserver.StreamRequestHandler):
    """Echo every line received until the peer closes."""

    def handle(self) -> None:
        """Read lines and write them back."""
        for line in self.rfile:
            self.wfile.write(line)


class _PollFirst(io.RawIOBase):
    """A raw reader that waits in ``poll()`` before every ``recv_into``."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN | select.POLLPRI)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._poll.poll(500)
        return self._sock.recv_into(buffer)


class PollFirstLineEchoHandler(LineEchoHandler):
    """:class:`LineEchoHandler` reading through :class:`_PollFirst`."""

    def setup(self) -> None:
        """Replace ``rfile`` with a buffered poll-first reader."""
        super().setup()
        self.rfile = io.BufferedReader(_PollFirst(self.connection))


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--backlog", type=int, default=_Server.request_queue_size,
                        help="listen backlog (request_queue_size)")
    parser.add_argument("--stream", action="store_true", help="StreamRequestHandler line echo")
    parser.add_argument("--poll-first", action="store_true", help="with --stream: poll() first")
    args = parser.parse_args(argv)
    handler: type[socketserver.BaseRequestHandler] = EchoHandler
    if args.stream:
        handler = PollFirstLineEchoHandler if args.poll_first else LineEchoHandler
    server_class = type("Server", (_Server,), {"request_queue_size": args.backlog})
    server = server_class((args.host, args.port), handler)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port = server.server_address[1]
    sys.stdout.write(f"stdlib echo listening on tcp {args.host}:{port}\n")
    sys.stdout.flush()
    with server:
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Request handlers that bench/sockserv.py hosts under ``twistd netproto-socket``."""

from __future__ import annotations

import socketserver

__all__ = ["ThreadedEcho"]


class ThreadedEcho(socketserver.StreamRequestHandler):
    """A plain stdlib line echo, run by our daemon in its thread pool."""

    def handle(self) -> None:
        """Read lines and write them back until EOF."""
        for line in self.rfile:
            self.wfile.write(line)

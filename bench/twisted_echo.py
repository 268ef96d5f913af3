"""Reference echo servers on bare Twisted, to tell Twisted's own cost from our layers'.

Run: ``python bench/twisted_echo.py [--port 0] [--backlog N] [--eager]``. Prints
``twisted echo listening on tcp 127.0.0.1:PORT``; stops on SIGTERM.

- default: a ``Protocol`` whose ``dataReceived`` calls ``transport.write``;
  Twisted queues the bytes and sends them on the reactor's next turn, after
  registering for writability (one more event and two ``epoll_ctl`` calls).
- ``--eager``: when nothing is queued, ``dataReceived`` sends at once with
  ``socket.send`` and queues only what the kernel did not take (what
  sockserv now does on plain TCP).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from twisted.internet import epollreactor

epollreactor.install()

from twisted.internet import reactor as _reactor  # noqa: E402
from twisted.internet.endpoints import TCP4ServerEndpoint  # noqa: E402
from twisted.internet.protocol import Factory, Protocol  # noqa: E402

__all__ = ["EagerEcho", "Echo", "main"]


class Echo(Protocol):
    """Echo through ``transport.write``."""

    def connectionMade(self) -> None:
        """Disable Nagle, as every request/response server here does."""
        t: Any = self.transport
        t.setTcpNoDelay(True)

    def dataReceived(self, data: bytes) -> None:
        """Send the bytes back."""
        self.transport.write(data)  # type: ignore[union-attr]


class EagerEcho(Echo):
    """Echo with a direct ``send`` when the transport has nothing queued."""

    def dataReceived(self, data: bytes) -> None:
        """Send the bytes back now if possible; queue the rest."""
        t: Any = self.transport
        if not t.dataBuffer and not t._tempDataBuffer:
            try:
                sent = t.socket.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                sent = 0  # let the transport report the error in its own way
            if sent == len(data):
                return
            data = data[sent:]
        t.write(data)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--backlog", type=int, default=128, help="listen backlog (128)")
    parser.add_argument("--eager", action="store_true", help="send at once when nothing is queued")
    args = parser.parse_args(argv)
    reactor: Any = _reactor
    factory = Factory.forProtocol(EagerEcho if args.eager else Echo)

    def listening(port: Any) -> None:
        sys.stdout.write(f"twisted echo listening on tcp {args.host}:{port.getHost().port}\n")
        sys.stdout.flush()

    endpoint = TCP4ServerEndpoint(reactor, args.port, backlog=args.backlog, interface=args.host)
    d = endpoint.listen(factory)
    d.addCallbacks(listening, lambda f: (f.printTraceback(), reactor.stop()))
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""telnetlib's ``interact``: a terminal (standard input and output) joined to a Telnet session."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from twisted.internet import stdio
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

if TYPE_CHECKING:
    from netproto_twisted.telnet.client import TelnetClient

__all__ = ["run_interact"]


class _Keyboard(Protocol):
    """Standard input: what is typed goes to the session; end of input closes it."""

    def __init__(self, client: TelnetClient) -> None:
        self.client = client

    def dataReceived(self, data: bytes) -> None:
        """Send typed bytes to the server."""
        if not self.client.eof:
            self.client.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """End of standard input: close the session."""
        self.client.close()


def run_interact(
    client: TelnetClient, reactor: Any, stdin_fd: int, stdout_fd: int
) -> Deferred[None]:
    """Join ``client`` to the terminal until its connection closes; return that Deferred."""

    def out(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(stdout_fd, view) :]

    client.attach_sink(out)
    keyboard = stdio.StandardIO(  # type: ignore[call-arg]
        _Keyboard(client), stdin=stdin_fd, stdout=stdout_fd, reactor=reactor
    )

    def done(result: object) -> None:
        client.attach_sink(None)
        keyboard.loseConnection()

    d = client.closed()
    d.addBoth(done)
    return d

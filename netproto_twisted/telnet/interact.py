"""telnetlib's ``interact``: a terminal (standard input and output) joined to a Telnet session.

When standard input is a terminal it is put in raw mode (:func:`tty.setraw`:
each key goes to the server as typed, the server echoes and edits) for the
session, and its settings are restored when the session ends, or if
joining fails.
"""

from __future__ import annotations

import contextlib
import os
import termios
import tty
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

    saved = termios.tcgetattr(stdin_fd) if os.isatty(stdin_fd) else None

    def restore() -> None:
        if saved is not None:
            with contextlib.suppress(termios.error, OSError):  # the terminal is gone
                termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)

    try:
        if saved is not None:
            tty.setraw(stdin_fd, termios.TCSADRAIN)
        client.attach_sink(out)
        keyboard = stdio.StandardIO(  # type: ignore[call-arg]
            _Keyboard(client), stdin=stdin_fd, stdout=stdout_fd, reactor=reactor
        )
    except BaseException:
        client.attach_sink(None)
        restore()
        raise

    def done(result: object) -> None:
        client.attach_sink(None)
        try:
            restore()  # before the descriptors close
        finally:
            keyboard.loseConnection()

    d = client.closed()
    d.addBoth(done)
    return d

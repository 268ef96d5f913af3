"""Errors of the Telnet client and server."""

from __future__ import annotations

from netproto_twisted.core.errors import NetprotoError

__all__ = ["TelnetConnectionClosed", "TelnetError", "TelnetReadBusy", "TelnetTimeout"]


class TelnetError(NetprotoError):
    """The base of every Telnet error."""


class TelnetConnectionClosed(TelnetError, EOFError):
    """The connection closed and no data is left (telnetlib raises :exc:`EOFError` here)."""


class TelnetTimeout(TelnetError, TimeoutError):
    """A scripted-session step did not see its prompt in time."""

    def __init__(self, message: str, text: bytes = b"") -> None:
        super().__init__(message)
        #: What had arrived when the time ran out.
        self.text = text


class TelnetReadBusy(TelnetError):
    """A read was started while another was still waiting (reads are one at a time)."""

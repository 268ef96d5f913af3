"""What the Telnet server hosts: a shell behind the login (zope.interface contracts)."""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet.interfaces import IPushProducer
from zope.interface import Attribute, Interface

__all__ = ["IShell", "IShellFactory", "IShellOutput", "TerminalInfo"]


@dataclass
class TerminalInfo:
    """What the server knows of the client's terminal when a shell starts (it may change).

    :ivar user: who logged in.
    :ivar terminal_type: TTYPE's first answer, or ``"vt100"`` when none came.
    :ivar columns: the window width (NAWS), or 80.
    :ivar rows: the window height (NAWS), or 24.
    :ivar environ: variables the client sent (NEW-ENVIRON).
    :ivar peer: the client's address, as text.
    """

    user: str
    terminal_type: str = "vt100"
    columns: int = 80
    rows: int = 24
    environ: dict[str, str] = field(default_factory=dict)
    peer: str = ""


class IShellOutput(Interface):
    """The connection as a shell sees it."""

    def write(data: bytes) -> None:  # noqa: N805 (zope interface)
        """Send terminal output to the client (IAC is escaped for the shell)."""

    def exit() -> None:
        """The shell ended: close the connection once the output is sent."""

    def register_producer(producer: IPushProducer) -> None:  # noqa: N805 (zope interface)
        """Pause ``producer`` (the shell's output source) while the client is slow to read.

        The connection's send buffer being full pauses it and its draining
        resumes it; the connection closing stops it.
        """


class IShell(Interface):
    """One running shell session."""

    def data_received(data: bytes) -> None:  # noqa: N805 (zope interface)
        """Keystrokes from the client (Telnet decoded; Enter arrives as CR)."""

    def window_changed(columns: int, rows: int) -> None:  # noqa: N805 (zope interface)
        """The client's window changed size (NAWS)."""

    def close() -> None:
        """The connection closed: stop the shell."""


class IShellFactory(Interface):
    """Starts a shell for a user who logged in."""

    name = Attribute("A short name for logs and the admin console (``python``, ``pty``).")

    def open_shell(terminal: TerminalInfo, output: IShellOutput) -> IShell:  # noqa: N805
        """Start and return a shell for ``terminal.user`` writing to ``output``."""

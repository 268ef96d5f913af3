"""Shells the Telnet server hosts: a Python interpreter with line editing, or a program on a PTY.

:class:`PythonShellFactory` runs Twisted's manhole (``twisted.conch.manhole``)
on conch's terminal emulation (``twisted.conch.insults``): line editing,
history on the arrow keys, and -- added here -- completion of names and
attributes on Tab (:mod:`rlcompleter` over the shell's namespace) and
non-ASCII input: the terminal's bytes are read as UTF-8 (a character may
arrive split across writes), each character one position of the line.

:class:`PtyShellFactory` runs a program on a pseudo-terminal
(``spawnProcess(usePTY=True)``) with ``TERM`` from the client's terminal
type; window-size changes (NAWS) reach it through ``TIOCSWINSZ``, and so
``SIGWINCH``.  The PTY is the connection's producer: while the client reads
slower than the program writes, the server stops reading the PTY (the
program blocks on its full terminal) instead of buffering its output.  The
program runs as the daemon's user.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import os
import rlcompleter
import struct
import termios
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.conch import manhole
from twisted.conch.insults import insults
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.interfaces import IPushProducer, IReactorProcess
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from netproto_twisted.telnet.interfaces import IShell, IShellFactory, IShellOutput, TerminalInfo

__all__ = ["CompletingManhole", "PtyShellFactory", "PythonShellFactory", "set_window_size"]

_log = Logger()
#: Most completions listed under the line on an ambiguous Tab.
_MAX_COMPLETIONS = 200


class CompletingManhole(manhole.ColoredManhole):
    """Twisted's colouring manhole with Tab completion and UTF-8 input.

    Conch's line editor takes printable ASCII only (other bytes are dropped
    with a warning); here bytes from 0x80 up go through an incremental UTF-8
    decoder, and each decoded character enters the line as one element (its
    UTF-8 bytes), so cursor motion, backspace and history count characters.
    Malformed input becomes U+FFFD.
    """

    def connectionMade(self) -> None:
        """Start the line editor with an empty UTF-8 decoder."""
        super().connectionMade()  # type: ignore[no-untyped-call]
        self.utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def _characters(self, text: str) -> None:
        for char in text:
            self.characterReceived(char.encode("utf-8"), False)  # type: ignore[no-untyped-call]

    def keystrokeReceived(self, keyID: object, modifier: object) -> None:
        """Decode bytes from 0x80 up as UTF-8; pass every other key to the line editor."""
        if isinstance(keyID, bytes) and len(keyID) == 1 and keyID[0] >= 0x80:
            self._characters(self.utf8.decode(keyID))
            return
        if self.utf8.getstate()[0]:  # a sequence cut short by another key
            self._characters(self.utf8.decode(b"", final=True))
            self.utf8.reset()
        super().keystrokeReceived(keyID, modifier)  # type: ignore[no-untyped-call]

    def handle_TAB(self) -> None:
        """Complete the word before the cursor; list the choices when there are several."""
        line = b"".join(self.lineBuffer[: self.lineBufferIndex]).decode("utf-8", "replace")
        start = len(line)
        while start and (line[start - 1].isalnum() or line[start - 1] in "._"):
            start -= 1
        word = line[start:]
        completer = rlcompleter.Completer(self.namespace)
        choices: list[str] = []
        for state in range(_MAX_COMPLETIONS):
            try:
                choice = completer.complete(word, state)
            except Exception:  # a property raising while completing attributes
                break
            if choice is None:
                break
            if choice not in choices:
                choices.append(choice)
        if not choices:
            self.terminal.write(b"\x07")
            return
        common = os.path.commonprefix(choices)  # noqa: RUF071 (strings, not paths)
        if len(common) > len(word):
            for char in common[len(word) :].encode("utf-8"):
                self.characterReceived(bytes((char,)), False)  # type: ignore[no-untyped-call]
            return
        if len(choices) > 1:
            self.terminal.nextLine()
            self.terminal.write("  ".join(choices).encode("utf-8"))
            self.terminal.nextLine()
            self.terminal.write(self.ps[self.pn])
            self.terminal.write(b"".join(self.lineBuffer))
            back = len(self.lineBuffer) - self.lineBufferIndex
            if back:
                self.terminal.cursorBackward(back)


class _TerminalTransport:
    """The transport insults writes to: the Telnet connection's output."""

    def __init__(self, output: IShellOutput) -> None:
        self.output = output
        self.disconnecting = False

    def write(self, data: bytes) -> None:
        self.output.write(data)

    def writeSequence(self, data: Sequence[bytes]) -> None:
        self.output.write(b"".join(data))

    def loseConnection(self) -> None:
        if not self.disconnecting:
            self.disconnecting = True
            self.output.exit()

    def getPeer(self) -> None:
        return None

    def getHost(self) -> None:
        return None


@implementer(IShell)
class _InsultsShell:
    """An insults terminal with a terminal protocol (manhole) on it."""

    def __init__(self, server: insults.ServerProtocol) -> None:
        self.server = server

    def data_received(self, data: bytes) -> None:
        if b"\r\n" in data:
            data = data.replace(b"\r\n", b"\r")
        self.server.dataReceived(data.replace(b"\n", b"\r"))

    def window_changed(self, columns: int, rows: int) -> None:
        protocol = self.server.terminalProtocol
        if protocol is not None:
            protocol.terminalSize(columns, rows)

    def close(self) -> None:
        self.server.connectionLost(Failure(ProcessDone(0)))


@implementer(IShellFactory)
class PythonShellFactory:
    """A Python interpreter per session (manhole): line editing, history, Tab completion.

    :param namespace: a function of the :class:`TerminalInfo` giving the
        session's globals, or a mapping copied for each session.
    """

    name = "python"

    def __init__(
        self,
        namespace: Mapping[str, Any] | Callable[[TerminalInfo], dict[str, Any]] | None = None,
    ) -> None:
        self.namespace = namespace

    def _namespace(self, terminal: TerminalInfo) -> dict[str, Any]:
        if callable(self.namespace):
            return self.namespace(terminal)
        return {"user": terminal.user, **(self.namespace or {})}

    def open_shell(self, terminal: TerminalInfo, output: IShellOutput) -> IShell:
        """Start a manhole for ``terminal.user``."""
        server = insults.ServerProtocol(CompletingManhole, self._namespace(terminal))
        server.makeConnection(_TerminalTransport(output))
        protocol = server.terminalProtocol
        if protocol is not None:
            protocol.terminalSize(terminal.columns, terminal.rows)
        return _InsultsShell(server)


def set_window_size(fd: int, columns: int, rows: int) -> None:
    """Set a pseudo-terminal's window size (``TIOCSWINSZ``; the program gets ``SIGWINCH``)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


class _PtyProtocol(ProcessProtocol):
    def __init__(self, output: IShellOutput) -> None:
        self.output = output

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self.output.write(data)

    def processEnded(self, reason: Failure) -> None:
        if not reason.check(ProcessDone, ProcessTerminated):
            _log.failure("shell process", reason)
        self.output.exit()


@implementer(IShell)
class _PtyShell:
    def __init__(self, process: Any) -> None:
        self.process = process

    def data_received(self, data: bytes) -> None:
        # The terminal's ICRNL turns CR into NL: CR LF would make two line ends.
        if b"\r\n" in data:
            data = data.replace(b"\r\n", b"\r")
        self.process.write(data)

    def window_changed(self, columns: int, rows: int) -> None:
        with contextlib.suppress(OSError, ValueError, AttributeError):  # the process is gone
            set_window_size(self.process.fileno(), columns, rows)

    def close(self) -> None:
        with contextlib.suppress(ProcessExitedAlready, OSError):
            self.process.signalProcess("HUP")
        self.process.loseConnection()


@implementer(IShellFactory)
class PtyShellFactory:
    """A program on a pseudo-terminal per session (``/bin/sh`` by default).

    :param reactor: provides :class:`~twisted.internet.interfaces.IReactorProcess`.
    :param argv: the program and its arguments.
    :param env: extra environment (``TERM``, ``USER``, ``LOGNAME``,
        ``COLUMNS``/``LINES`` and a minimal ``PATH`` are set).
    :param path: the working directory (``None``: the daemon's).
    """

    name = "pty"

    def __init__(
        self,
        reactor: IReactorProcess,
        argv: Sequence[str] = ("/bin/sh",),
        *,
        env: Mapping[str, str] | None = None,
        path: str | None = None,
    ) -> None:
        self.reactor = reactor
        self.argv = list(argv)
        self.env = dict(env or {})
        self.path = path

    def open_shell(self, terminal: TerminalInfo, output: IShellOutput) -> IShell:
        """Spawn the program on a new PTY sized as the client's window."""
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "TERM": terminal.terminal_type.lower() or "vt100",
            "USER": terminal.user,
            "LOGNAME": terminal.user,
            "HOME": os.environ.get("HOME", "/"),
            **self.env,
        }
        process = self.reactor.spawnProcess(
            _PtyProtocol(output), self.argv[0], self.argv, env=env, path=self.path, usePTY=True
        )
        # A slow client pauses reading from the PTY (the program then blocks
        # on a full terminal) instead of its output piling up in memory.
        if IPushProducer.providedBy(process):  # a PTY process is (its reads are)
            output.register_producer(process)
        shell = _PtyShell(process)
        shell.window_changed(terminal.columns, terminal.rows)
        return shell

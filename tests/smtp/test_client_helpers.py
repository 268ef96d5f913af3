"""A scripted SMTP server for the client's unit tests, paired with the client in memory."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.test.iosim import FakeAddress

from netproto_twisted.core.dotstuff import dot_unstuff
from netproto_twisted.testing import MemoryEndpoint

Handler = Callable[[str], bytes]

_VERBS = frozenset({"HELO", "MAIL", "RCPT", "RSET", "NOOP", "AUTH", "STARTTLS", "VRFY"})
DEFAULT_EXTENSIONS = ("PIPELINING", "8BITMIME", "SIZE 1000000", "ENHANCEDSTATUSCODES")


class ScriptedServer(Protocol):
    """Answers commands from a table; records commands, reads (per dataReceived) and messages.

    ``replies`` maps a verb (``"MAIL"``, ``"RCPT"``, ``"DATA"``, ``"."``,
    ``"BDAT"``, ...) to the reply bytes or to a function of the argument.
    """

    transport: Any

    def __init__(
        self,
        extensions: Sequence[str] = DEFAULT_EXTENSIONS,
        replies: dict[str, bytes | Handler] | None = None,
        greeting: bytes = b"220 mx.example ESMTP\r\n",
    ) -> None:
        self.extensions = list(extensions)
        self.replies = dict(replies or {})
        self.greeting = greeting
        self.commands: list[str] = []
        self.reads: list[bytes] = []
        self.messages: list[bytes] = []
        self.bdat_chunks: list[int] = []
        self._buffer = b""
        self._mode = "line"
        self._bdat_left = 0
        self._bdat_last = False
        self._bdat_body = b""
        self.ehlo_refused = False

    def connectionMade(self) -> None:
        if self.greeting:
            self.transport.write(self.greeting)

    def dataReceived(self, data: bytes) -> None:
        self.reads.append(data)
        self._buffer += data
        while self._step():
            pass

    def _reply(self, verb: str, argument: str, default: bytes) -> None:
        handler = self.replies.get(verb, default)
        out = handler(argument) if callable(handler) else handler
        if out:
            self.transport.write(out)

    def _step(self) -> bool:
        if self._mode == "data":
            end = self._buffer.find(b"\r\n.\r\n")
            if self._buffer.startswith(b".\r\n"):
                end = -2
            if end == -1:
                return False
            block = self._buffer[: end + 5]
            self._buffer = self._buffer[end + 5 :]
            payload, _ = dot_unstuff(block)
            self.messages.append(payload)
            self._mode = "line"
            self._reply(".", "", b"250 2.0.0 queued\r\n")
            return True
        if self._mode == "bdat":
            take = self._buffer[: self._bdat_left]
            self._buffer = self._buffer[len(take) :]
            self._bdat_body += take
            self._bdat_left -= len(take)
            if self._bdat_left:
                return False
            self._mode = "line"
            if self._bdat_last:
                self.messages.append(self._bdat_body)
                self._bdat_body = b""
                self._reply("BDAT", "LAST", b"250 2.0.0 queued\r\n")
            else:
                self._reply("BDAT", "", b"250 2.0.0 chunk ok\r\n")
            return True
        line, sep, rest = self._buffer.partition(b"\r\n")
        if not sep:
            return False
        self._buffer = rest
        text = line.decode("utf-8")
        self.commands.append(text)
        verb, _, argument = text.partition(" ")
        verb = verb.upper()
        if verb == "EHLO":
            if "EHLO" in self.replies:
                self._reply("EHLO", argument, b"")
                return True
            lines = ["mx.example", *self.extensions]
            out = b"".join(
                f"250{'-' if i < len(lines) - 1 else ' '}{x}\r\n".encode()
                for i, x in enumerate(lines)
            )
            self.transport.write(out)
        elif verb == "DATA":
            handler = self.replies.get("DATA", b"354 go ahead\r\n")
            out = handler(argument) if callable(handler) else handler
            self.transport.write(out)
            if out.startswith(b"354"):
                self._mode = "data"
        elif verb == "BDAT":
            size, _, last = argument.partition(" ")
            self._bdat_left = int(size)
            self._bdat_last = last.upper() == "LAST"
            self.bdat_chunks.append(int(size))
            self._mode = "bdat"
        elif verb == "QUIT":
            self._reply("QUIT", argument, b"221 2.0.0 bye\r\n")
            self.transport.loseConnection()
        elif verb not in _VERBS and "" in self.replies:
            self._reply("", text, b"")  # an AUTH continuation line
        else:
            defaults = {
                "HELO": b"250 mx.example\r\n",
                "MAIL": b"250 2.1.0 ok\r\n",
                "RCPT": b"250 2.1.5 ok\r\n",
                "RSET": b"250 2.0.0 ok\r\n",
                "NOOP": b"250 2.0.0 ok\r\n",
            }
            self._reply(verb, argument, defaults.get(verb, b"500 5.5.1 unknown\r\n"))
        return True


class _OneServer(Factory):
    """A server factory that hands out one given protocol."""

    def __init__(self, server: ScriptedServer) -> None:
        self.server = server

    def buildProtocol(self, addr: Any) -> ScriptedServer:
        return self.server


class IOEndpoint(MemoryEndpoint):
    """A client endpoint whose connections go to one :class:`ScriptedServer` in memory."""

    def __init__(self, server: ScriptedServer, clock: MemoryReactorClock) -> None:
        # iosim's own addresses: the client then says "EHLO localhost".
        super().__init__(
            _OneServer(server), clock, client_address=FakeAddress(), server_address=FakeAddress()
        )
        self.server = server

    @property
    def client(self) -> Any:
        """The latest client protocol."""
        return self.pair.client

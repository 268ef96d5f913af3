"""The IMAP client's line plumbing: commands out (literals too), responses assembled and parsed."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from netproto_twisted.core.client import ClientSession
from netproto_twisted.core.framing import LineEndings
from netproto_twisted.imap4.errors import IMAPConnectionLost, IMAPProtocolError, IMAPReplyError
from netproto_twisted.imap4.wire.responses import (
    Continuation,
    ResponseSyntaxError,
    Tagged,
    Untagged,
    parse_response,
)
from netproto_twisted.imap4.wire.tokens import LITERAL_MARKER

__all__ = ["IMAPClientProtocol", "Literal", "Reply"]

MAX_RESPONSE_LINE = 1024 * 1024
MAX_LITERAL = 512 * 1024 * 1024


@dataclass(frozen=True)
class Literal:
    """Data a command sends as a literal."""

    data: bytes


@dataclass
class Reply:
    """A completed command: its tagged completion and the untagged responses that came with it."""

    tagged: Tagged
    untagged: list[Untagged] = field(default_factory=list)

    def of(self, kind: str) -> list[Untagged]:
        """The untagged responses of one kind (``"FETCH"``, ``"EXISTS"`` ...)."""
        return [u for u in self.untagged if u.kind == kind]


@dataclass
class _Command:
    tag: str
    parts: list[bytes | Literal]
    deferred: Deferred[Reply]
    continuation: Callable[[bytes], bytes | None] | None = None
    untagged: list[Untagged] = field(default_factory=list)
    started: bool = False


class IMAPClientProtocol(ClientSession[Untagged]):
    """Sends one command at a time, matches its tagged completion, parses every response.

    :ivar greeting: fires with the greeting (an :class:`Untagged` ``OK``/``PREAUTH``).
    :ivar unsolicited: called with untagged responses that arrive with no
        command running, and with every one during IDLE.
    """

    line_endings = LineEndings.ACCEPT_LF
    max_line_length = MAX_RESPONSE_LINE
    lost_error = IMAPConnectionLost

    def __init__(
        self,
        clock: IReactorTime | None = None,
        timeout: float | None = 30.0,
        literal_plus: bool = False,
    ) -> None:
        super().__init__(clock, timeout)
        self.literal_plus = literal_plus
        self.unsolicited: Callable[[Untagged], None] | None = None
        self._queue: deque[_Command] = deque()
        self._current: _Command | None = None
        self._segments: list[bytes] = []
        self._literal: bytearray | None = None
        self._counter = 0

    # -- commands -----------------------------------------------------------------------

    def command(
        self,
        *parts: bytes | Literal,
        continuation: Callable[[bytes], bytes | None] | None = None,
    ) -> Deferred[Reply]:
        """Send ``tag parts...`` (literals framed) and fire with the :class:`Reply`.

        ``continuation(text)`` answers ``+`` lines that are not literal
        go-aheads (SASL challenges, IDLE's ``+ idling``): return the line to
        send (without CRLF), or ``None`` to send nothing.  ``NO``/``BAD``
        fail the Deferred with :class:`IMAPReplyError`.
        """
        if self._lost:
            raise IMAPConnectionLost("the connection is closed")
        self._counter += 1
        tag = f"N{self._counter:04d}"
        d: Deferred[Reply] = Deferred()
        self._queue.append(_Command(tag, list(parts), d, continuation))
        self._next()
        return d

    def _next(self) -> None:
        if self._current is not None or not self._queue or not self._greeted:
            return
        self._current = self._queue.popleft()
        self._current.parts.insert(0, self._current.tag.encode() + b" ")
        self._send_parts()

    def _send_parts(self) -> None:
        cmd = self._current
        assert cmd is not None
        out = bytearray()
        while cmd.parts:
            part = cmd.parts.pop(0)
            if isinstance(part, Literal):
                if self.literal_plus:
                    out += b"{%d+}\r\n" % len(part.data) + part.data
                    continue
                out += b"{%d}\r\n" % len(part.data)
                cmd.parts.insert(0, part)  # sent on the go-ahead
                cmd.started = True
                self.send_raw(bytes(out))
                return
            out += part
        out += b"\r\n"
        cmd.started = True
        self.send_raw(bytes(out))

    def send_line(self, line: bytes | str) -> None:
        """Send a raw line (IDLE's ``DONE``)."""
        data = line.encode() if isinstance(line, str) else line
        self.send_raw(data + b"\r\n")

    # -- responses ----------------------------------------------------------------------

    def line_received(self, line: bytes) -> None:
        """A response line (or a part of one, before a literal)."""
        self._segments.append(line)
        match = LITERAL_MARKER.search(line) if line.endswith(b"}") else None
        if match is not None:
            size = int(match.group(2))
            if size < 0 or size > MAX_LITERAL:
                self.protocol_error(IMAPProtocolError("bad literal size from the server"))
                return
            self._literal = bytearray()
            if size == 0:
                self._segments.append(b"")
                self._literal = None
                return
            self.set_raw_mode(size)
            return
        segments, self._segments = self._segments, []
        try:
            response = parse_response(segments)
        except ResponseSyntaxError as e:
            self.protocol_error(IMAPProtocolError(str(e)))
            return
        self._dispatch(response)

    def raw_data_received(self, data: bytes) -> None:
        """Literal octets."""
        if self._literal is not None:
            self._literal += data

    def raw_data_complete(self) -> None:
        """A literal is complete."""
        literal, self._literal = self._literal, None
        self._segments.append(bytes(literal or b""))

    def _dispatch(self, response: Tagged | Untagged | Continuation) -> None:
        if not self._greeted:
            if isinstance(response, Untagged) and response.kind in ("OK", "PREAUTH"):
                self.greet(response)
                self._next()
            else:
                self.refuse_greeting(IMAPProtocolError(f"bad greeting: {response}"))
            return
        cmd = self._current
        if isinstance(response, Continuation):
            if cmd is None:
                return
            if cmd.parts and isinstance(cmd.parts[0], Literal):
                literal = cmd.parts.pop(0)
                assert isinstance(literal, Literal)
                self.send_raw(literal.data)
                self._send_parts()
                return
            if cmd.continuation is not None:
                answer = cmd.continuation(response.text)
                if answer is not None:
                    self.send_raw(answer + b"\r\n")
            return
        if isinstance(response, Untagged):
            if response.kind == "BYE" and cmd is None and self.unsolicited is None:
                return
            if cmd is not None:
                cmd.untagged.append(response)
                if cmd.continuation is not None and self.unsolicited is not None:
                    self.unsolicited(response)
            elif self.unsolicited is not None:
                self.unsolicited(response)
            return
        if cmd is None or response.tag != cmd.tag:
            self.protocol_error(IMAPProtocolError(f"unexpected completion {response.tag}"))
            return
        self._current = None
        if response.status == "OK":
            cmd.deferred.callback(Reply(response, cmd.untagged))
        else:
            status = response.status if response.status in ("NO", "BAD") else "BAD"
            cmd.deferred.errback(
                IMAPReplyError(
                    response.tag, status, response.text, response.code, response.code_data
                )
            )
        self._next()

    def line_too_long(self) -> None:
        """A response line over the limit."""
        self.protocol_error(IMAPProtocolError("response line too long"))

    def bad_line_ending(self, line: bytes) -> None:
        """A bare CR: tolerated."""
        self.line_received(line.replace(b"\r", b""))

    def timeout_expired(self) -> None:
        """No response in time while a command runs: fail and close."""
        if (self._current is not None and self._current.continuation is None) or not self._greeted:
            self.fail_all(IMAPConnectionLost("timed out waiting for the server"))
            self.lose()
        else:
            self.reset_idle_timer()

    def fail_waiting(self, error: Exception) -> None:
        """Fail the running command and every queued one with *error*."""
        pending = [c for c in [self._current, *self._queue] if c is not None]
        self._current = None
        self._queue.clear()
        for cmd in pending:
            cmd.deferred.errback(error)

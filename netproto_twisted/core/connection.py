"""The connection pattern: a sans-I/O connection object, and the thin Protocol that drives it.

Every command/response server here is built the same way (after h11):

- a **sans-I/O connection object**, a :class:`ConnectionBase` subclass, owns
  the protocol state *and* decides how the next input is framed
  (:attr:`ConnectionBase.framing`: a line, a counted run of raw bytes, or
  raw bytes until a decoder says the block is done).  It is fed lines and raw
  bytes and produces output bytes (:meth:`~ConnectionBase.data_to_send`)
  and a few :data:`actions <Action>`: :class:`StartTLS`, :class:`StartCompression`, :class:`Close`,
  and :class:`Wait` (hold input until a Deferred fires).  It never sees a
  transport, a reactor or a socket, so unit tests drive it with bytes
  (:class:`ConnectionDriver`);
- a **thin Twisted Protocol**, a :class:`ConnectionProtocol` subclass (on
  :class:`~netproto_twisted.core.lineproto.LineProtocol`'s plumbing: line
  framing with limits, raw modes, ordered pause/resume, STARTTLS, timeouts,
  TCP_NODELAY), that builds the object, feeds it what arrives, writes its
  output and performs its actions.  A protocol's adapter is a few lines.

The object's side, in a handler::

    self.send(b"354 go ahead\\r\\n")
    self.expect_raw()                    # the next input is raw, until end_raw()
    self.wait(policy.check(...), self._checked)   # input held until it fires
    self.start_tls(context)              # after the go-ahead reply
    self.close()                         # after the goodbye reply

Deferreds are values here: :meth:`ConnectionBase.wait` runs the handler at
once when the Deferred has already fired (no pause, no action), else emits a
:class:`Wait` so the Protocol holds input until it has; pipelined commands
are so handled strictly in order.

The first half of this module (the base, :class:`Framing`, the actions and
:class:`ConnectionDriver`) uses nothing of Twisted but Deferreds; the
adapter in the second half uses the reactor only through ``LineProtocol``'s
clock (the command-rate timer).
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IProducer
from twisted.internet.protocol import connectionDone
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from netproto_twisted.core._twisted_compat import fired_value
from netproto_twisted.core.deflate import start_deflate
from netproto_twisted.core.errors import LineTooLong
from netproto_twisted.core.framing import BareLineEnding, LineBuffer, LineEndings
from netproto_twisted.core.limits import RateLimiter
from netproto_twisted.core.lineproto import LineProtocol

__all__ = [
    "Action",
    "Close",
    "ConnectionBase",
    "ConnectionDriver",
    "ConnectionProtocol",
    "ConnectionSettings",
    "Framing",
    "ReplyConsumer",
    "StartCompression",
    "StartTLS",
    "Wait",
]

_log = Logger(namespace="netproto.core.connection")

T = TypeVar("T")


class Framing(enum.Enum):
    """How the next input is cut, as the connection object decides."""

    #: One line at a time (terminator removed): :meth:`ConnectionBase.line_received`.
    LINE = "line"
    #: Exactly :attr:`ConnectionBase.raw_remaining` raw bytes (BDAT, IMAP literals),
    #: then lines again (:meth:`~ConnectionBase.raw_received`, then
    #: :meth:`~ConnectionBase.raw_complete`).
    COUNTED = "counted"
    #: Raw bytes until the object calls :meth:`~ConnectionBase.end_raw` (a decoder
    #: such as dot-unstuffing said the block is done): :meth:`~ConnectionBase.raw_received`.
    RAW = "raw"


@dataclass(frozen=True, slots=True)
class StartTLS:
    """Start TLS now, as server, with ``context`` (the output before it is written first)."""

    context: object


@dataclass(frozen=True, slots=True)
class StartCompression:
    """Compress both ways from now on (raw DEFLATE, :mod:`netproto_twisted.core.deflate`).

    The output before it (the go-ahead reply) is written uncompressed first.
    """

    max_expansion: int | None = None


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection once the output before it is written."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Hold input until ``deferred`` fires (the object has its own callback on it)."""

    deferred: Deferred[Any]


#: What a connection object asks its Protocol to do, besides writing bytes.
Action = StartTLS | StartCompression | Close | Wait

_CLOSE = Close()


class ConnectionBase:
    """Base of the sans-I/O connection objects (see the module docstring).

    Input (called by the Protocol or a test): :meth:`line_received`,
    :meth:`receive_raw`, :meth:`line_too_long`, :meth:`bad_line_ending`,
    :meth:`timeout`, :meth:`connection_lost`.  Output: :meth:`data_to_send`,
    :meth:`take_actions`, :attr:`framing` (with :attr:`raw_remaining`) and
    :meth:`take_pushback`.  Output is buffered for :meth:`data_to_send`
    unless a writer is set (:meth:`set_writer`): then it is written at once
    while no action is pending, and buffered behind the pending actions.
    Subclasses override the input hooks and use
    :meth:`send`, :meth:`expect_line`, :meth:`expect_counted`,
    :meth:`expect_raw`, :meth:`end_raw`, :meth:`wait`, :meth:`start_tls` and
    :meth:`close`.

    :ivar framing: how the next input is cut (:class:`Framing`).
    :ivar raw_remaining: bytes still due in :attr:`Framing.COUNTED`, else ``None``.
    :ivar closing: true once :meth:`close` was called (input is then ignored).
    :ivar lost: true once :meth:`connection_lost` was called.
    """

    def __init__(self) -> None:
        self._out: list[bytes] = []
        self._writer: Callable[[bytes], object] | None = None
        self.actions: list[Action] = []
        self.framing = Framing.LINE
        self.raw_remaining: int | None = None
        self._pushback = b""
        self.closing = False
        self.lost = False

    # -- output, read by the Protocol ---------------------------------------------------

    def data_to_send(self) -> bytes:
        """The bytes to write now (``b""`` if none); they are then forgotten."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def take_actions(self) -> list[Action]:
        """The actions to perform now, in order, after writing :meth:`data_to_send`."""
        actions, self.actions = self.actions, []
        return actions

    def set_writer(self, writer: Callable[[bytes], object] | None) -> None:
        """Write output with ``writer`` as it is produced (``None``: buffer it again).

        Output produced while actions are pending stays buffered: it comes
        after them, so whoever performs the actions writes it afterwards
        (bytes after a :class:`StartTLS` go out encrypted).  What is buffered
        when the writer is set is written at once if no action is pending.
        """
        self._writer = writer
        if writer is not None and self._out and not self.actions:
            writer(self.data_to_send())

    def take_pushback(self) -> bytes:
        """Bytes received in raw mode past the block's end: lines, to be parsed again."""
        data, self._pushback = self._pushback, b""
        return data

    # -- for subclasses -----------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send ``data`` (serialised replies): written now, or buffered (see the class)."""
        writer = self._writer
        if writer is not None and not self.actions:
            writer(data)
        elif not self.lost:
            self._out.append(data)

    def close(self) -> None:
        """Close the connection after what was sent so far; ignore further input."""
        if not self.closing:
            self.closing = True
            self.actions.append(_CLOSE)

    def start_tls(self, context: object) -> None:
        """Start TLS after what was sent so far (the go-ahead reply)."""
        self.actions.append(StartTLS(context))

    def start_compression(self, max_expansion: int | None = None) -> None:
        """Compress both ways after what was sent so far (the go-ahead reply)."""
        self.actions.append(StartCompression(max_expansion))

    def expect_line(self) -> None:
        """Cut the next input into lines."""
        self.framing = Framing.LINE
        self.raw_remaining = None

    def expect_counted(self, size: int) -> None:
        """Take the next ``size`` bytes raw (a ``size`` of 0 completes at once)."""
        if size < 0:
            raise ValueError(f"size must be >= 0, not {size}")
        if size == 0:
            self.expect_line()
            self.raw_complete()
            return
        self.framing = Framing.COUNTED
        self.raw_remaining = size

    def expect_raw(self) -> None:
        """Take the next input raw until :meth:`end_raw`."""
        self.framing = Framing.RAW
        self.raw_remaining = None

    def end_raw(self, rest: bytes = b"") -> None:
        """End :attr:`Framing.RAW`; ``rest`` (bytes after the block) are parsed as lines."""
        self.expect_line()
        self._pushback = rest

    def wait(self, d: Deferred[T], handler: Callable[[T | Failure], None]) -> None:
        """Run ``handler(result or Failure)`` when ``d`` fires; hold input until then.

        A Deferred that has already fired is handled at once, with no
        :class:`Wait` (a policy answering synchronously costs no pause).
        Handlers run only while the connection is up; an exception in one
        goes to :meth:`handler_failed`.
        """
        done, value = fired_value(d)
        if done:
            if not self.lost:
                try:
                    handler(cast(T, value))
                except Exception:
                    self.handler_failed(Failure())
            return
        fired = False

        def finish(result: T | Failure) -> None:
            nonlocal fired
            fired = True
            if self.lost:
                return
            try:
                handler(result)
            except Exception:
                self.handler_failed(Failure())

        d.addBoth(finish)  # runs now if d has fired: then no Wait
        if not fired:
            self.actions.append(Wait(d))

    def handler_failed(self, failure: Failure) -> None:
        """A handler raised: log it and close (subclasses send their protocol's error first)."""
        _log.failure("connection handler failed", failure)
        self.close()

    # -- input, called by the Protocol --------------------------------------------------

    def receive_raw(self, data: bytes) -> None:
        """Raw input (in :attr:`Framing.COUNTED` or :attr:`Framing.RAW`)."""
        remaining = self.raw_remaining
        if remaining is None:
            self.raw_received(data)
            return
        if len(data) > remaining:
            raise ValueError(f"{len(data)} bytes given where {remaining} were due")
        remaining -= len(data)
        self.raw_remaining = remaining
        self.raw_received(data)
        if remaining == 0 and self.framing is Framing.COUNTED:
            self.expect_line()
            self.raw_complete()

    def line_received(self, line: bytes) -> None:
        """One line of input (terminator removed)."""
        raise NotImplementedError(f"{type(self).__name__}.line_received")

    def raw_received(self, data: bytes) -> None:
        """Raw input; in :attr:`Framing.RAW` call :meth:`end_raw` at the block's end."""
        raise NotImplementedError(f"{type(self).__name__}.raw_received")

    def raw_complete(self) -> None:
        """A counted run of raw bytes is complete (lines follow)."""

    def line_too_long(self) -> None:
        """A line exceeded the limit (its rest is skipped).  Default: close."""
        self.close()

    def bad_line_ending(self, line: bytes) -> None:
        """A line had a bare CR or LF.  Default: close."""
        self.close()

    def timeout(self) -> None:
        """The idle timeout expired.  Default: close."""
        self.close()

    def compression_failed(self, error: Exception) -> None:
        """The peer's compressed stream could not be decoded.  Default: close."""
        self.close()

    def connection_lost(self) -> None:
        """The connection is gone: no more output; subclasses release what they hold."""
        self.lost = True
        self._writer = None
        self._out.clear()
        self.actions.clear()


class ConnectionDriver:
    """Feeds bytes to a connection object as its Protocol would, for tests without a transport.

    Cuts input into lines or raw runs by :attr:`ConnectionBase.framing`,
    holds input while a :class:`Wait` is pending, and records the output and
    the :class:`StartTLS`/:class:`StartCompression`/:class:`Close` actions
    (it compresses nothing: the output stays readable).

    :param connection: the object to drive.
    :param max_line_length: longest line, terminator excluded.
    :param endings: which line endings are accepted.
    """

    def __init__(
        self,
        connection: ConnectionBase,
        *,
        max_line_length: int = 2048,
        endings: LineEndings = LineEndings.STRICT,
    ) -> None:
        self.connection = connection
        self._buffer = LineBuffer(max_line_length, endings=endings)
        self.output = bytearray()
        self.actions: list[StartTLS | StartCompression | Close] = []
        self.pending: list[Deferred[Any]] = []
        self._collect()

    @property
    def closed(self) -> bool:
        """Whether the object asked to close."""
        return any(isinstance(a, Close) for a in self.actions)

    def take_output(self) -> bytes:
        """The bytes written since the last call."""
        data = bytes(self.output)
        self.output.clear()
        return data

    def feed(self, data: bytes) -> bytes:
        """Feed received bytes; return the output they caused (see :meth:`take_output`)."""
        self._buffer.feed(data)
        self._run()
        return self.take_output()

    def _run(self) -> None:
        conn = self.connection
        buf = self._buffer
        while not self.pending and not self.closed and not conn.lost:
            if conn.framing is Framing.LINE:
                pushback = conn.take_pushback()
                if pushback:
                    self._front(pushback)
                try:
                    line = buf.next_line()
                except LineTooLong:
                    conn.line_too_long()
                    self._collect()
                    continue
                except BareLineEnding as e:
                    conn.bad_line_ending(e.line)
                    self._collect()
                    continue
                if line is None:
                    break
                conn.line_received(line)
            else:
                chunk = buf.take_raw(conn.raw_remaining)
                if not chunk:
                    break
                conn.receive_raw(chunk)
            self._collect()
        self._collect()

    def _front(self, data: bytes) -> None:
        rest = self._buffer.take_raw()
        self._buffer.feed(data + rest)

    def _collect(self) -> None:
        conn = self.connection
        self.output += conn.data_to_send()
        for action in conn.take_actions():
            if isinstance(action, Wait):
                self.pending.append(action.deferred)
                action.deferred.addBoth(self._waited, action.deferred)
            else:
                self.actions.append(action)
                if isinstance(action, StartTLS):
                    self._buffer.clear()  # plaintext after STARTTLS is discarded

    def _waited(self, result: object, d: Deferred[Any]) -> None:
        self.pending.remove(d)
        self._collect()
        if not self.pending:
            self._run()


@implementer(IConsumer)
class ReplyConsumer:
    """An ``IConsumer`` whose writes go the way a protocol's replies go (in order, eagerly).

    What a connection object streams (a ``RETR``, an ``OVER`` listing) is
    written through it: the producer is registered with the transport, so the
    transport's backpressure pauses it, and each block takes the protocol's
    own write path, so it stays in order with the replies around it.
    """

    def __init__(self, protocol: ConnectionProtocol) -> None:
        self._protocol = protocol

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """Register ``producer`` with the protocol's transport."""
        self._protocol.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        """Unregister the producer from the protocol's transport."""
        self._protocol.transport.unregisterProducer()

    def write(self, data: bytes) -> None:
        """Write ``data`` as the protocol writes its replies."""
        self._protocol.send_raw(data)


class ConnectionSettings(typing.Protocol):
    """What :meth:`ConnectionProtocol.apply_settings` reads: a server's settings (or Limits)."""

    @property
    def max_line_length(self) -> int: ...
    @property
    def idle_timeout(self) -> float | None: ...
    @property
    def tls_handshake_timeout(self) -> float | None: ...
    @property
    def command_rate(self) -> float | None: ...
    @property
    def command_burst(self) -> int: ...


class ConnectionProtocol(LineProtocol):
    """The thin Twisted Protocol over a :class:`ConnectionBase`: feed it, write, act.

    Subclasses implement :meth:`make_connection` (build the object from the
    factory's settings and the transport's facts) and may set the
    LineProtocol settings (``max_line_length``, ``line_endings``,
    ``idle_timeout`` ...) in :meth:`configure`.  ``command_rate`` and
    ``command_burst`` (class or instance attributes) pace the lines fed to
    the object: a line beyond the burst waits its turn with input held.

    :ivar connection: the connection object (set in ``connectionMade``).
    """

    connection: ConnectionBase
    command_rate: float | None = None
    command_burst: int = 200

    def __init__(self) -> None:
        super().__init__()
        self._framing = Framing.LINE
        self._waits = 0
        self._limiter: RateLimiter | None = None
        self._gone = False

    def make_connection(self) -> ConnectionBase:
        """Build the connection object for this connection (called in ``connectionMade``)."""
        raise NotImplementedError(f"{type(self).__name__}.make_connection")

    def configure(self) -> None:
        """Set the plumbing's settings before the connection starts.  Default: nothing."""

    def apply_settings(self, settings: ConnectionSettings) -> None:
        """Take the line limit, timeouts and command rate from a server's *settings*.

        What every server's :meth:`configure` starts with; ``line_endings``
        and anything protocol-specific it sets itself.
        """
        self.max_line_length = settings.max_line_length
        self.idle_timeout = settings.idle_timeout
        self.tls_handshake_timeout = settings.tls_handshake_timeout
        self.command_rate = settings.command_rate
        self.command_burst = settings.command_burst

    def connectionMade(self) -> None:
        """Configure, start the plumbing, build the object and write what it says first."""
        self.configure()
        if self.command_rate is not None and self.clock is not None:
            self._limiter = RateLimiter(self.clock, self.command_rate, self.command_burst)
        super().connectionMade()
        connection = self.make_connection()
        self.connection = connection
        connection.set_writer(self.send_raw)  # dropped by the object once it is lost
        self._sync()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Tell the object; stop the plumbing."""
        self._gone = True
        try:
            super().connectionLost(reason)
        finally:
            connection = getattr(self, "connection", None)
            if connection is not None:
                connection.connection_lost()

    # -- input ----------------------------------------------------------------------------

    def line_received(self, line: bytes) -> None:
        """Feed a line to the object (paced by the command rate, if set)."""
        limiter = self._limiter
        if limiter is not None and not limiter.allow():
            assert self.clock is not None
            d = deferLater(self.clock, limiter.wait_time(), lambda: None)
            d.addCallback(lambda _: None if self._gone else self.line_received(line))
            self._wait(d)
            return
        connection = self.connection
        connection.line_received(line)
        # The usual command wrote its reply already and asks nothing more.
        if connection.actions or connection._out or connection.framing is not self._framing:
            self._sync()

    def raw_data_received(self, data: bytes) -> None:
        """Feed raw bytes to the object."""
        connection = self.connection
        connection.receive_raw(data)
        if connection.actions or connection._out or connection.framing is not self._framing:
            self._sync()

    def raw_data_complete(self) -> None:
        """A counted run ended: the object counted it too and already knows."""

    def line_too_long(self) -> None:
        """Tell the object."""
        self.connection.line_too_long()
        self._sync()

    def bad_line_ending(self, line: bytes) -> None:
        """Tell the object."""
        self.connection.bad_line_ending(line)
        self._sync()

    def timeout_expired(self) -> None:
        """Tell the object."""
        self.connection.timeout()
        self._sync()

    def compression_failed(self, error: Exception) -> None:
        """Tell the object (it may say goodbye, compressed, before closing)."""
        _log.info("bad compressed input: {error}", error=error)
        self.connection.compression_failed(error)
        self._sync()

    # -- output and actions ---------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        """The object's writer."""
        if not self._gone:
            self.send_raw(data)

    def _sync(self) -> None:
        """Perform the object's actions, write what it said after them, follow its framing.

        Output produced while no action was pending has been written already
        (the object's writer).
        """
        connection = self.connection
        if connection.actions:
            for action in connection.take_actions():
                self._perform(action)
        if connection._out:
            self._write(connection.data_to_send())
        framing = connection.framing
        if framing is not self._framing:
            self._framing = framing
            if framing is Framing.LINE:
                if not self._gone:
                    self.set_line_mode(connection.take_pushback())
            elif framing is Framing.COUNTED:
                self.set_raw_mode(connection.raw_remaining)
            else:
                self.set_raw_mode()

    def _perform(self, action: Action) -> None:
        if isinstance(action, Wait):
            self._wait(action.deferred)
        elif isinstance(action, StartTLS):
            if not self._gone:
                self.start_tls(action.context, server=True)  # type: ignore[arg-type]
                self._framing = Framing.LINE
        elif isinstance(action, StartCompression):
            if not self._gone:
                if action.max_expansion is None:
                    start_deflate(self)
                else:
                    start_deflate(self, max_expansion=action.max_expansion)
        elif not self._gone:
            self.transport.loseConnection()

    def _wait(self, d: Deferred[Any]) -> None:
        self._waits += 1
        self.pause_input()
        d.addBoth(self._waited)

    def _waited(self, result: object) -> None:
        if isinstance(result, Failure):  # the object's own callbacks catch theirs: a bug here
            _log.failure("feeding the connection object failed", result)
        self._waits -= 1
        if self._gone:
            return
        self._sync()
        if self._waits == 0 and not self.transport.disconnecting:
            self.resume_input()

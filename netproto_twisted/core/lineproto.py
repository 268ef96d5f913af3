"""The line layer every line-based client and server subclasses, on core's connection plumbing.

:class:`LineProtocol` wires a sans-I/O :class:`~netproto_twisted.core.framing.LineBuffer`
into :class:`~netproto_twisted.core.plumbing.ConnectionPlumbing` (guard, timers,
TLS/STARTTLS, ordered pause/resume, TCP_NODELAY, eager writes) and adds what
SMTP, POP3, IMAP, FTP control and NNTP connections need on top:

- lines delivered one at a time and in order, also when many arrive pipelined
  in one chunk, with a length limit and strict line endings;
- a raw mode for counted or open-ended binary data (``BDAT``, IMAP literals)
  that takes over exactly at the byte after the current line, and a return
  to line mode that parses whatever is still buffered;
- :meth:`LineProtocol.pause_input` / :meth:`LineProtocol.resume_input`, so
  that a command whose work is asynchronous is finished before the next
  pipelined command is looked at (with kernel backpressure meanwhile);
- STARTTLS with the plaintext-injection defence (CVE-2011-0411): bytes
  buffered before the upgrade are discarded, the session state reset;
- idle and TLS-handshake timeouts; the deadlines against a trickling peer:
  a line must be complete ``line_timeout`` seconds after its first byte, and
  raw mode is a transfer (``transfer_timeout``, ``min_transfer_rate``);
- the plumbing's decoder stage (``decoder``) runs before the framing;
- eager writes: on a plain TCP connection with nothing queued, a line goes
  straight to the socket (:func:`~netproto_twisted.core.net.write_now`)
  instead of waiting for the reactor's next turn; under TLS, and whenever
  bytes are queued, it goes through ``transport.write`` as usual.

The clock
---------
Timers never use the global reactor.  A protocol's clock is, in order: its
``clock`` attribute if set (tests set it directly), else its factory's
``reactor`` attribute (:class:`LineFactory` takes one).  A clock is needed
only when a timer is used: ``idle_timeout`` is set, TLS is started, or a
deadline runs (a partial line, raw mode).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from twisted.internet.interfaces import IAddress, IReactorTime

from netproto_twisted.core._twisted_compat import GenericFactory
from netproto_twisted.core.errors import LineTooLong
from netproto_twisted.core.framing import BareLineEnding, LineBuffer, LineEndings, serialize_line
from netproto_twisted.core.limits import Limits
from netproto_twisted.core.plumbing import (
    DEADLINE_LINE,
    DEADLINE_TRANSFER,
    ConnectionPlumbing,
    Decoder,
    TLSContext,
)

__all__ = ["DEFAULT_MAX_LINE_LENGTH", "LineFactory", "LineProtocol", "TLSContext"]

#: The default longest line accepted, in bytes, terminator excluded.
DEFAULT_MAX_LINE_LENGTH = 2048


class LineProtocol(ConnectionPlumbing):
    """Base of line-based protocols: ordered line delivery, raw mode, pause, STARTTLS, timeouts.

    Subclasses override :meth:`line_received` and, as needed, the other hooks:
    :meth:`raw_data_received`, :meth:`raw_data_complete`, :meth:`line_too_long`,
    :meth:`bad_line_ending`, :meth:`timeout_expired`, :meth:`reset_session`,
    :meth:`tls_established`.  A subclass that defines ``__init__``,
    ``connectionMade``, ``connectionLost`` or ``handshakeCompleted`` must call
    the base method.

    A :class:`~netproto_twisted.core.access.ConnectionGuard` without an idle
    timeout counts a line protocol without wrapping it
    (:class:`~netproto_twisted.core.access.DirectlyGuarded`).

    Settings (class attributes; instances may override them), besides the
    plumbing's (``idle_timeout``, ``tls_handshake_timeout``, ``line_timeout``,
    ``transfer_timeout``, ``min_transfer_rate``, ``decoder``, ``clock``: see
    :class:`~netproto_twisted.core.plumbing.ConnectionPlumbing`):

    :ivar max_line_length: longest line accepted, terminator excluded (2048);
        may be changed at any time, effective from the next line.
    :ivar line_endings: which line endings the peer may use (``STRICT``).

    Raw mode counts as a transfer the peer owes (the transfer deadline runs);
    a protocol that stays in open-ended raw mode while the peer owes nothing
    (a client parsing replies itself) sets ``transfer_timeout = None``.
    """

    max_line_length: int = DEFAULT_MAX_LINE_LENGTH
    line_endings: LineEndings = LineEndings.STRICT

    def __init__(self) -> None:
        super().__init__()
        self._buffer = LineBuffer(self.max_line_length, endings=self.line_endings)
        self._raw_mode = False
        self._raw_remaining: int | None = None

    # --- input ------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Buffer ``data`` and deliver complete lines (or raw bytes) in order."""
        if self._lost:
            return
        if self._idle_call is not None:
            clock = self.clock
            if clock is None:
                clock = self._need_clock()
            self._last_activity = clock.seconds()
        decoder = self.decoder
        if decoder is not None:
            data = decoder.decode(data)
            if not data:
                return
        buf = self._buffer
        if self._paused or self._delivering:
            if self._paused and not self._transport_paused:
                # Input arrived while a command's work is pending: stop reading now
                # (kernel backpressure); this chunk waits in the buffer.
                self._pause_transport()
            if self._deadline_kind == DEADLINE_TRANSFER:
                self._transfer_progress(len(data))
            buf.feed(data)
            self._deliver()
            return
        if not self._raw_mode:
            # Fast path: most reads of a command protocol are exactly one line
            # (CRLF at the end and no other CR or LF), with nothing buffered.
            end = len(data) - 2
            if (
                0 <= end <= self.max_line_length
                and type(data) is bytes
                and data.find(b"\n") == end + 1
                and data.find(b"\r") == end
                and buf.idle
                and not getattr(self.transport, "disconnecting", False)
            ):
                self._delivering = True
                try:
                    self.line_received(data[:end])
                finally:
                    self._delivering = False
                if self._raw_mode or len(buf):
                    # The handler switched to raw mode or put bytes back.
                    self._deliver()
                return
            buf.feed(data)
            self._deliver()
            return
        if self._deadline_kind == DEADLINE_TRANSFER:
            self._transfer_progress(len(data))
        remaining = self._raw_remaining
        if remaining == 0 or len(buf):
            buf.feed(data)
            self._deliver()
            return
        # Fast path: raw bytes go straight to the handler without a copy.
        self._delivering = True
        try:
            if remaining is not None and len(data) > remaining:
                buf.feed(data[remaining:])
                data = data[:remaining]
            self._raw_chunk(data)
        finally:
            self._delivering = False
        self._deliver()

    def bytes_received(self, data: bytes) -> None:
        """Frame ``data`` (the plumbing's hook; :meth:`dataReceived` does this itself)."""
        self._buffer.feed(data)
        self._deliver()

    def _deliver(self) -> None:
        """Deliver buffered lines / raw bytes until paused, out of input or disconnecting.

        A loop, never recursion: a call made while delivering (from a handler
        that resumes input or switches modes) returns at once and the running
        loop carries on.  A line left incomplete starts the line deadline.
        """
        if self._delivering:
            return
        buf = self._buffer
        if self._raw_remaining != 0 and buf.idle:
            if self._deadline_kind == DEADLINE_LINE:
                self.clear_deadline()  # nothing buffered: no line is awaited
            return  # nothing to deliver (a counted raw mode at 0 bytes must still end)
        self._delivering = True
        transport = self.transport
        incomplete = False
        try:
            while not (
                self._paused or self._lost or getattr(transport, "disconnecting", False)
            ):
                if self._raw_mode:
                    if self._raw_remaining == 0:
                        self._finish_raw()
                        continue
                    chunk = buf.take_raw(self._raw_remaining)
                    if not chunk:
                        break
                    self._raw_chunk(chunk)
                    continue
                buf.max_length = self.max_line_length
                buf.endings = self.line_endings
                try:
                    line = buf.next_line()
                except LineTooLong:
                    self._line_done()
                    self.line_too_long()
                    continue
                except BareLineEnding as e:
                    self._line_done()
                    self.bad_line_ending(e.line)
                    continue
                if line is None:
                    incomplete = True
                    break
                if self._deadline_kind is not None:
                    self._line_done()
                self.line_received(line)
        finally:
            self._delivering = False
        if (
            incomplete
            and self._deadline_kind is None
            and self.line_timeout is not None
            and not buf.idle
        ):
            # An incomplete line is buffered (line mode): it must be complete in time.
            self.start_deadline(DEADLINE_LINE, self.line_timeout)

    def _line_done(self) -> None:
        """A line was taken from the buffer: its deadline (if running) ends."""
        if self._deadline_kind == DEADLINE_LINE:
            self.clear_deadline()

    def _input_buffered(self) -> bool:
        """Whether received bytes wait in the line buffer."""
        return len(self._buffer) > 0

    def _discard_input(self) -> int:
        """Drop buffered input and leave raw mode (STARTTLS, connection lost)."""
        discarded = self._buffer.clear()
        if not self._lost:
            self._raw_mode = False
            self._raw_remaining = None
        return discarded

    def _recode_input(self, decoder: Decoder) -> None:
        """Pass the bytes in the line buffer (not yet framed) through ``decoder``."""
        if len(self._buffer):
            data = self._buffer.take_raw()
            self._buffer.feed(decoder.decode(data))

    def _raw_chunk(self, chunk: bytes) -> None:
        """Hand ``chunk`` to :meth:`raw_data_received`; end a counted raw mode when it is done."""
        remaining = self._raw_remaining
        if remaining is not None:
            self._raw_remaining = remaining - len(chunk)
        self.raw_data_received(chunk)
        if self._raw_mode and self._raw_remaining == 0:
            self._finish_raw()

    def _finish_raw(self) -> None:
        """Leave a counted raw mode and tell the subclass."""
        self._raw_mode = False
        self._raw_remaining = None
        self.end_transfer()
        self.raw_data_complete()

    # --- modes ------------------------------------------------------------------------

    @property
    def raw_mode(self) -> bool:
        """Whether input currently goes to :meth:`raw_data_received`."""
        return self._raw_mode

    def set_raw_mode(self, length: int | None = None) -> None:
        """Send the following input bytes to :meth:`raw_data_received` instead of parsing lines.

        Bytes already buffered behind the current line are included.  With
        ``length``, exactly that many bytes are delivered (over one or more
        calls); then line mode resumes by itself and :meth:`raw_data_complete`
        is called.  Without it, raw mode lasts until :meth:`set_line_mode`.
        Called outside a handler, buffered bytes may be delivered before it returns.
        The transfer deadline runs while in raw mode (``transfer_timeout``).
        """
        if length is not None and length < 0:
            raise ValueError(f"length must be >= 0, not {length}")
        if self._buffer.discarding:
            # The end of an over-long line is still awaited; in raw mode it is data.
            self._buffer.clear()
        self._raw_mode = True
        self._raw_remaining = length
        if self.transfer_timeout is not None:
            self.begin_transfer()
        elif self._deadline_kind == DEADLINE_LINE:
            self.clear_deadline()
        self._deliver()

    def set_line_mode(self, extra: bytes = b"") -> None:
        """Parse input as lines again; ``extra`` bytes are put back in front of buffered input.

        ``extra`` is for a handler that took more raw bytes than it needed in
        an open-ended raw mode.  Called outside a handler, buffered lines may
        be delivered before it returns.
        """
        self._raw_mode = False
        self._raw_remaining = None
        self.end_transfer()
        if extra:
            rest = self._buffer.take_raw()
            self._buffer.feed(extra + rest)
        self._deliver()

    # --- output -----------------------------------------------------------------------

    def send_line(self, line: bytes | str) -> None:
        """Write one line (CRLF appended; CR, LF or NUL inside raise LocalProtocolError)."""
        self.send_raw(serialize_line(line))

    def send_lines(self, lines: Iterable[bytes | str]) -> None:
        """Write several lines in one write (a multi-line reply or a pipelined batch)."""
        data = b"".join([serialize_line(line) for line in lines])
        if data:
            self.send_raw(data)

    # --- hooks ------------------------------------------------------------------------

    def line_received(self, line: bytes) -> None:
        """Handle one line (terminator removed).  Subclasses must override this."""
        raise NotImplementedError(f"{type(self).__name__}.line_received")

    def raw_data_received(self, data: bytes) -> None:
        """Handle bytes received in raw mode.  Subclasses using raw mode override this."""
        raise NotImplementedError(f"{type(self).__name__}.raw_data_received")

    def raw_data_complete(self) -> None:
        """Called when a counted raw mode has delivered all its bytes (line mode is back)."""

    def line_too_long(self) -> None:
        """Handle a line over ``max_line_length``.  Default: log and close the connection.

        The rest of the line is skipped by the buffer, so a server may instead
        send its protocol's error reply and carry on.
        """
        self._log.info("line longer than {limit} bytes; closing", limit=self.max_line_length)
        self.transport.loseConnection()

    def bad_line_ending(self, line: bytes) -> None:
        """Handle a line with a bare CR or LF under ``STRICT``.  Default: log and close.

        The line has been consumed; a server may instead reply with an error
        and carry on.
        """
        self._log.info("bare CR or LF in a line; closing")
        self.transport.loseConnection()


_LP = TypeVar("_LP", bound=LineProtocol)


class LineFactory(GenericFactory[_LP]):
    """A protocol factory whose ``reactor`` is the clock of the protocols it builds.

    Set ``protocol`` to the :class:`LineProtocol` subclass, as with any Factory.
    The deadline settings (``line_timeout``, ``transfer_timeout``,
    ``min_transfer_rate``), when set on the factory (not ``None``), are given to
    every protocol it builds: a daemon sets them from its
    :class:`~netproto_twisted.core.limits.Limits` (:meth:`apply_limits`).
    """

    line_timeout: float | None = None
    transfer_timeout: float | None = None
    min_transfer_rate: float | None = None

    def __init__(self, reactor: IReactorTime) -> None:
        self.reactor = reactor

    def apply_limits(self, limits: Limits) -> None:
        """Take the deadline settings from ``limits`` for the protocols built from now on."""
        self.line_timeout = limits.line_timeout
        self.transfer_timeout = limits.transfer_timeout
        self.min_transfer_rate = limits.min_transfer_rate

    def buildProtocol(self, addr: IAddress | None) -> _LP | None:
        """Build a protocol and give it this factory's reactor as its clock."""
        proto = super().buildProtocol(addr)
        if proto is not None:
            if proto.clock is None:
                proto.clock = self.reactor
            if self.line_timeout is not None:
                proto.line_timeout = self.line_timeout
            if self.transfer_timeout is not None:
                proto.transfer_timeout = self.transfer_timeout
            if self.min_transfer_rate is not None:
                proto.min_transfer_rate = self.min_transfer_rate
        return proto

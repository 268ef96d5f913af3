"""The Twisted line-protocol base that every line-based client and server subclasses.

:class:`LineProtocol` wires a sans-I/O :class:`~netproto_twisted.core.framing.LineBuffer`
into a Twisted :class:`~twisted.internet.protocol.Protocol` and adds what
SMTP, POP3, IMAP, FTP control and NNTP connections all need:

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
- idle and TLS-handshake timeouts, TCP_NODELAY;
- eager writes: on a plain TCP connection with nothing queued, a line goes
  straight to the socket (:func:`~netproto_twisted.core.net.write_now`)
  instead of waiting for the reactor's next turn; under TLS, and whenever
  bytes are queued, it goes through ``transport.write`` as usual.

The clock
---------
Timers never use the global reactor.  A protocol's clock is, in order: its
``clock`` attribute if set (tests set it directly), else its factory's
``reactor`` attribute (:class:`LineFactory` takes one).  A clock is needed
only when a timer is used: ``idle_timeout`` is set, or TLS is started.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
    IReactorTime,
    ISSLTransport,
)
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from netproto_twisted.core.access import DirectlyGuarded
from netproto_twisted.core.errors import LineTooLong, LocalProtocolError
from netproto_twisted.core.framing import BareLineEnding, LineBuffer, LineEndings, serialize_line
from netproto_twisted.core.net import raw_tcp_connection, send_now, set_nodelay
from netproto_twisted.core.tls import DEFAULT_HANDSHAKE_TIMEOUT, HandshakeTimeout

__all__ = ["DEFAULT_MAX_LINE_LENGTH", "LineFactory", "LineProtocol", "TLSContext"]

#: The default longest line accepted, in bytes, terminator excluded.
DEFAULT_MAX_LINE_LENGTH = 2048

#: What :meth:`LineProtocol.start_tls` accepts: server options, or client options.
TLSContext = (
    IOpenSSLContextFactory | IOpenSSLServerConnectionCreator | IOpenSSLClientConnectionCreator
)


#: ``LineProtocol._tls_checked`` before any transport was looked at.
_UNCHECKED: Any = object()


def _is_tls_transport(transport: object) -> bool:
    """Return whether ``transport`` already runs TLS (implicit TLS or after startTLS).

    Looks through protocol wrappers (access guards, rate limiters) down to the
    TLS layer or the TCP connection.
    """
    for _ in range(16):  # wrappers nest a few levels at most
        if ISSLTransport.providedBy(transport) or isinstance(transport, TLSMemoryBIOProtocol):
            return True
        if not isinstance(transport, ProtocolWrapper):
            return False
        transport = transport.transport
    return False


@implementer(IHandshakeListener)
class LineProtocol(DirectlyGuarded):
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

    Settings (class attributes; instances may override them):

    :ivar max_line_length: longest line accepted, terminator excluded (2048);
        may be changed at any time, effective from the next line.
    :ivar line_endings: which line endings the peer may use (``STRICT``).
    :ivar idle_timeout: seconds without received data before
        :meth:`timeout_expired` is called, or ``None``; change it on a live
        connection with :meth:`set_idle_timeout`.
    :ivar tls_handshake_timeout: seconds a TLS handshake may take (30), or ``None``.
    :ivar clock: the clock for timers; taken from ``factory.reactor`` when ``None``.
    """

    max_line_length: int = DEFAULT_MAX_LINE_LENGTH
    line_endings: LineEndings = LineEndings.STRICT
    idle_timeout: float | None = None
    tls_handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT
    clock: IReactorTime | None = None
    #: The connection's transport: a TCP, TLS or test transport (ITransport, IPushProducer,
    #: and ITLSTransport where STARTTLS is used); typed loosely because those differ.
    transport: Any

    _log = Logger()

    def __init__(self) -> None:
        self._buffer = LineBuffer(self.max_line_length, endings=self.line_endings)
        self._raw_mode = False
        self._raw_remaining: int | None = None
        self._paused = False
        self._transport_paused = False
        self._delivering = False
        self._lost = False
        self._tls_started = False
        self._handshake_done = False
        self._handshake_timer: HandshakeTimeout | None = None
        self._idle_call: IDelayedCall | None = None
        self._last_activity = 0.0
        #: The plain TCP connection eager writes may use (None: always transport.write).
        self._eager: Any = None
        #: The transport whose TLS state ``_tls_verdict`` records (see :attr:`is_secure`).
        self._tls_checked: Any = _UNCHECKED
        self._tls_verdict = False

    # --- connection lifecycle ---------------------------------------------------------

    def makeConnection(self, transport: Any) -> None:
        """Take the clock from the factory if none was set, then connect as usual."""
        if self.clock is None:
            reactor = getattr(self.factory, "reactor", None)
            if IReactorTime.providedBy(reactor):
                self.clock = reactor
        super().makeConnection(transport)

    def connectionMade(self) -> None:
        """Set TCP_NODELAY, start the idle timer, and the handshake timer under implicit TLS."""
        set_nodelay(self.transport)
        self._eager = raw_tcp_connection(self.transport)
        self._start_idle_timer()
        if self.is_secure and not self._handshake_done:
            self._start_handshake_timer()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Stop every timer, drop buffered input, and release the connection from its guard."""
        self._lost = True
        self._eager = None
        try:
            self._cancel_timers()
            self._buffer.clear()
        finally:
            super().connectionLost(reason)

    def handshakeCompleted(self) -> None:
        """Called by Twisted's TLS layer when the handshake is done: stop its timer."""
        self._handshake_done = True
        self._tls_checked = self.transport
        self._tls_verdict = True
        if self._handshake_timer is not None:
            self._handshake_timer.completed()
            self._handshake_timer = None
        self.tls_established()

    def _need_clock(self) -> IReactorTime:
        """Return the clock, or raise :class:`RuntimeError` saying how to provide one."""
        if self.clock is None:
            raise RuntimeError(
                f"{type(self).__name__} needs a clock for its timers: set its `clock` "
                "attribute or give its factory a `reactor` attribute"
            )
        return self.clock

    def _cancel_timers(self) -> None:
        """Cancel the idle and handshake timers (idempotent)."""
        call, self._idle_call = self._idle_call, None
        if call is not None and call.active():
            call.cancel()
        timer, self._handshake_timer = self._handshake_timer, None
        if timer is not None:
            timer.cancel()

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
        buf = self._buffer
        if self._paused or self._delivering:
            if self._paused and not self._transport_paused:
                # Input arrived while a command's work is pending: stop reading now
                # (kernel backpressure); this chunk waits in the buffer.
                self._pause_transport()
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

    def _deliver(self) -> None:
        """Deliver buffered lines / raw bytes until paused, out of input or disconnecting.

        A loop, never recursion: a call made while delivering (from a handler
        that resumes input or switches modes) returns at once and the running
        loop carries on.
        """
        if self._delivering:
            return
        buf = self._buffer
        if self._raw_remaining != 0 and buf.idle:
            return  # nothing to deliver (a counted raw mode at 0 bytes must still end)
        self._delivering = True
        transport = self.transport
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
                    self.line_too_long()
                    continue
                except BareLineEnding as e:
                    self.bad_line_ending(e.line)
                    continue
                if line is None:
                    break
                self.line_received(line)
        finally:
            self._delivering = False

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
        """
        if length is not None and length < 0:
            raise ValueError(f"length must be >= 0, not {length}")
        if self._buffer.discarding:
            # The end of an over-long line is still awaited; in raw mode it is data.
            self._buffer.clear()
        self._raw_mode = True
        self._raw_remaining = length
        self._deliver()

    def set_line_mode(self, extra: bytes = b"") -> None:
        """Parse input as lines again; ``extra`` bytes are put back in front of buffered input.

        ``extra`` is for a handler that took more raw bytes than it needed in
        an open-ended raw mode.  Called outside a handler, buffered lines may
        be delivered before it returns.
        """
        self._raw_mode = False
        self._raw_remaining = None
        if extra:
            rest = self._buffer.take_raw()
            self._buffer.feed(extra + rest)
        self._deliver()

    # --- flow control -----------------------------------------------------------------

    @property
    def input_paused(self) -> bool:
        """Whether line delivery is paused by :meth:`pause_input`."""
        return self._paused

    def pause_input(self) -> None:
        """Deliver no more lines until :meth:`resume_input`; stop reading from the socket.

        Call it from a handler whose work finishes later (a Deferred): the
        next pipelined command is then looked at only after that work.
        Pausing is not counted: one :meth:`resume_input` undoes any number.

        The transport is paused at once only if input is already buffered;
        otherwise when the next bytes arrive (at most one read more is
        buffered).  A peer that waits for the reply, as most do, so costs no
        pause/resume of the socket (two ``epoll_ctl`` calls) per command.
        """
        if self._paused:
            return
        self._paused = True
        if len(self._buffer):
            self._pause_transport()

    def resume_input(self) -> None:
        """Resume reading and deliver the buffered lines, in order."""
        if not self._paused:
            return
        self._paused = False
        if self._lost:
            return
        self._deliver()
        # Resume the socket only if delivery did not pause again (no churn) nor
        # close the connection (a buffered QUIT).
        if self._transport_paused and not self._paused and not self._lost:
            self._transport_paused = False
            transport = self.transport
            if transport is not None and not getattr(transport, "disconnecting", False):
                transport.resumeProducing()

    def _pause_transport(self) -> None:
        """Stop reading from the socket while input is paused."""
        if self._transport_paused or self._lost or self.transport is None:
            return
        self._transport_paused = True
        self.transport.pauseProducing()

    # --- output -----------------------------------------------------------------------

    def send_line(self, line: bytes | str) -> None:
        """Write one line (CRLF appended; CR, LF or NUL inside raise LocalProtocolError)."""
        self.send_raw(serialize_line(line))

    def send_lines(self, lines: Iterable[bytes | str]) -> None:
        """Write several lines in one write (a multi-line reply or a pipelined batch)."""
        data = b"".join([serialize_line(line) for line in lines])
        if data:
            self.send_raw(data)

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are: straight to the socket when nothing is queued, else queued.

        Subclasses writing replies themselves should use this rather than
        ``transport.write`` to get the eager path (same ordering guarantees).
        """
        eager = self._eager
        if eager is not None and data:
            # write_now(), inlined: this runs for every reply.
            sent = send_now(eager, data)
            if sent:
                if sent == len(data):
                    return
                data = data[sent:]
        self.transport.write(data)

    # --- TLS --------------------------------------------------------------------------

    @property
    def is_secure(self) -> bool:
        """Whether the connection runs TLS: implicit TLS, or after :meth:`start_tls`.

        The transport is looked at once (when the connection is made), not at
        every call; again if the transport object changes.  A transport that is
        a protocol wrapper is looked through at each call while it is not TLS
        (TLS may be started beneath it); a completed handshake counts as TLS.
        """
        if self._tls_started:
            return True
        transport = self.transport
        if transport is self._tls_checked:
            return self._tls_verdict
        secure = _is_tls_transport(transport)
        if secure or not isinstance(transport, ProtocolWrapper):
            self._tls_checked = transport
            self._tls_verdict = secure
        return secure

    def start_tls(self, context: TLSContext, *, server: bool = True) -> None:
        """Upgrade the connection to TLS (STARTTLS, STLS, AUTH TLS), as server or client.

        Plaintext received but not yet handled is discarded first (the
        CVE-2011-0411 injection defence); raw mode ends; :meth:`reset_session`
        is called; the handshake must finish within ``tls_handshake_timeout``.
        ``context`` is :func:`~netproto_twisted.core.tls.server_context`'s
        result for a server, :func:`~netproto_twisted.core.tls.client_options`'s
        for a client.  Send the protocol's "go ahead" reply before calling it.

        :raises LocalProtocolError: if TLS is already active or the transport
            cannot start TLS.
        """
        if self.is_secure:
            raise LocalProtocolError("TLS is already active on this connection")
        start = getattr(self.transport, "startTLS", None)
        if start is None:
            raise LocalProtocolError("this transport cannot start TLS")
        discarded = self._buffer.clear()
        if discarded:
            self._log.info(
                "discarded {count} bytes of plaintext received before the TLS handshake",
                count=discarded,
            )
        self._raw_mode = False
        self._raw_remaining = None
        self._eager = None  # every later byte goes through the TLS layer
        start(context, self._tls_direction_is_normal(server))
        self._tls_started = True
        self._handshake_done = False
        self.reset_session()
        self._start_handshake_timer()

    def _tls_direction_is_normal(self, server: bool) -> bool:
        """Return ``startTLS``'s ``normal`` flag: whether TLS goes the way TCP went."""
        client_default = getattr(self.transport, "_tlsClientDefault", None)
        if client_default is None:
            is_server = getattr(self.transport, "isServer", None)  # iosim's FakeTransport
            if is_server is None:
                return True
            client_default = not is_server
        return bool(client_default) != server

    def _start_handshake_timer(self) -> None:
        """Abort the connection unless the TLS handshake completes in time."""
        timeout = self.tls_handshake_timeout
        if timeout is None or self._handshake_timer is not None:
            return
        self._handshake_timer = HandshakeTimeout(self._need_clock(), self.transport, timeout)

    # --- idle timeout -----------------------------------------------------------------

    def set_idle_timeout(self, seconds: float | None) -> None:
        """Change the idle timeout of this connection (``None`` turns it off); restarts it."""
        self.idle_timeout = seconds
        call, self._idle_call = self._idle_call, None
        if call is not None and call.active():
            call.cancel()
        if not self._lost and self.transport is not None:
            self._start_idle_timer()

    def reset_idle_timer(self) -> None:
        """Count the connection as active now (e.g. during a long outgoing transfer)."""
        if self._idle_call is not None:
            self._last_activity = self._need_clock().seconds()

    def _start_idle_timer(self) -> None:
        """Arm the idle timer if ``idle_timeout`` is set."""
        timeout = self.idle_timeout
        if timeout is None:
            return
        clock = self._need_clock()
        self._last_activity = clock.seconds()
        self._idle_call = clock.callLater(timeout, self._idle_check)

    def _idle_check(self) -> None:
        """Fire :meth:`timeout_expired` if idle long enough, else re-arm for the rest.

        Received data only records a time stamp (no timer churn per chunk);
        while input is paused the connection counts as busy.
        """
        self._idle_call = None
        timeout = self.idle_timeout
        if timeout is None or self._lost:
            return
        clock = self._need_clock()
        now = clock.seconds()
        if self._paused:
            self._last_activity = now
        due = self._last_activity + timeout
        if now < due:
            self._idle_call = clock.callLater(due - now, self._idle_check)
            return
        self.timeout_expired()

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

    def timeout_expired(self) -> None:
        """Called when the idle timeout expires.  Default: close the connection.

        Servers override it to send their protocol's goodbye line first.
        """
        self._log.info("idle for {timeout}s; closing", timeout=self.idle_timeout)
        self.transport.loseConnection()

    def reset_session(self) -> None:
        """Forget session state learnt before STARTTLS (EHLO, AUTH, ...).  Default: nothing."""

    def tls_established(self) -> None:
        """Called when a TLS handshake (implicit or STARTTLS) completes.  Default: nothing.

        Protocol wrappers between the TLS layer and this protocol must pass
        ``handshakeCompleted`` on (core.access's guard does; Twisted's plain
        ProtocolWrapper does not) for this to be called.
        """


_LP = TypeVar("_LP", bound=LineProtocol)


class LineFactory(Factory[_LP]):
    """A protocol factory whose ``reactor`` is the clock of the protocols it builds.

    Set ``protocol`` to the :class:`LineProtocol` subclass, as with any Factory.
    """

    def __init__(self, reactor: IReactorTime) -> None:
        self.reactor = reactor

    def buildProtocol(self, addr: IAddress | None) -> _LP | None:
        """Build a protocol and give it this factory's reactor as its clock."""
        proto = super().buildProtocol(addr)
        if proto is not None and proto.clock is None:
            proto.clock = self.reactor
        return proto

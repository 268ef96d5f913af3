"""The connection plumbing every protocol shares, with or without line framing.

:class:`ConnectionPlumbing` is a Twisted :class:`~twisted.internet.protocol.Protocol`
that does what every connection needs and nothing protocol-specific:

- registration with the :class:`~netproto_twisted.core.access.ConnectionGuard`
  without a wrapper (it is :class:`~netproto_twisted.core.access.DirectlyGuarded`);
- TCP_NODELAY, and eager writes (:meth:`ConnectionPlumbing.send_raw`): on a
  plain TCP connection with nothing queued, bytes go straight to the socket;
- a decoder stage (:class:`Decoder`) that received bytes pass through first
  (Telnet's IAC sequences, say), then :meth:`ConnectionPlumbing.bytes_received`,
  and an encoder stage (:class:`Encoder`) for what is written; both are set
  at once, mid-connection, by :meth:`ConnectionPlumbing.install_codec`
  (:func:`netproto_twisted.core.deflate.start_deflate`: COMPRESS);
- ordered :meth:`~ConnectionPlumbing.pause_input` / :meth:`~ConnectionPlumbing.resume_input`:
  nothing is delivered while paused, and what arrived meanwhile comes first;
- TLS: implicit, or STARTTLS (:meth:`~ConnectionPlumbing.start_tls`) with the
  plaintext-injection defence (bytes buffered before the upgrade are discarded);
- timers: the idle timeout, the TLS-handshake timeout, and two deadlines
  against a peer that trickles (one byte every few seconds keeps an idle timer
  happy for ever): a *request* deadline (``line_timeout``: a command line must
  be complete that many seconds after its first byte) and a *transfer*
  deadline (``transfer_timeout`` and ``min_transfer_rate``: a raw data section
  gets ``transfer_timeout`` seconds, and every ``min_transfer_rate`` bytes
  received buy one second more, never more than ``transfer_timeout`` ahead,
  as Postfix's ``smtpd_min_data_rate`` does).  Expiry calls
  :meth:`~ConnectionPlumbing.timeout_expired`, where a server sends its
  protocol's goodbye (SMTP ``421 4.4.2``).

:class:`~netproto_twisted.core.lineproto.LineProtocol` adds line framing on
top.  A protocol without lines (an FTP data channel, a Telnet session fed
through a decoder) subclasses :class:`ConnectionPlumbing` directly and
overrides :meth:`~ConnectionPlumbing.bytes_received`; it calls
:meth:`~ConnectionPlumbing.begin_transfer` / :meth:`~ConnectionPlumbing.end_transfer`
around a section the peer owes (a file upload) to get the transfer deadline.

The clock
---------
Timers never use the global reactor.  A protocol's clock is, in order: its
``clock`` attribute if set (tests set it directly), else its factory's
``reactor`` attribute.  A clock is needed only when a timer is used.
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.interfaces import (
    IDelayedCall,
    IHandshakeListener,
    IOpenSSLClientConnectionCreator,
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
    IReactorTime,
    ISSLTransport,
)
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from netproto_twisted.core._twisted_compat import tls_client_default
from netproto_twisted.core.access import DirectlyGuarded
from netproto_twisted.core.errors import LocalProtocolError
from netproto_twisted.core.limits import DEFAULT_LIMITS
from netproto_twisted.core.net import raw_tcp_connection, send_now, set_nodelay
from netproto_twisted.core.tls import DEFAULT_HANDSHAKE_TIMEOUT, HandshakeTimeout

__all__ = [
    "DEADLINE_LINE",
    "DEADLINE_TRANSFER",
    "ConnectionPlumbing",
    "Decoder",
    "Encoder",
    "IdentityDecoder",
    "TLSContext",
]

#: What :meth:`ConnectionPlumbing.start_tls` accepts: server options, or client options.
TLSContext = (
    IOpenSSLContextFactory | IOpenSSLServerConnectionCreator | IOpenSSLClientConnectionCreator
)

#: :attr:`ConnectionPlumbing.deadline_kind` while a command line is incomplete.
DEADLINE_LINE = "line"
#: :attr:`ConnectionPlumbing.deadline_kind` during a raw data section.
DEADLINE_TRANSFER = "transfer"

#: ``ConnectionPlumbing._tls_checked`` before any transport was looked at.
_UNCHECKED: Any = object()


class Decoder(Protocol):
    """A stage that received bytes pass through before framing (Telnet IAC, say).

    ``decode`` returns the bytes for the framing (possibly fewer, possibly
    none); a decoder keeps whatever incomplete sequence it needs between calls.
    """

    def decode(self, data: bytes) -> bytes:
        """Return the bytes of ``data`` that go on to the framing."""
        ...


class Encoder(Protocol):
    """A stage that written bytes pass through last (a compressor): one write in, its bytes out."""

    def encode(self, data: bytes) -> bytes:
        """Return the bytes to write for ``data``."""
        ...


class IdentityDecoder:
    """The decoder that changes nothing (what ``decoder = None`` means, spelt out)."""

    def decode(self, data: bytes) -> bytes:
        """Return ``data`` unchanged."""
        return data


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
class ConnectionPlumbing(DirectlyGuarded):
    """A connection's plumbing: guard, timers and deadlines, TLS/STARTTLS, pause/resume, output.

    Subclasses override :meth:`bytes_received` and, as needed,
    :meth:`timeout_expired`, :meth:`reset_session`, :meth:`tls_established`.
    A subclass that defines ``__init__``, ``connectionMade``,
    ``connectionLost`` or ``handshakeCompleted`` must call the base method.

    Settings (class attributes; instances may override them):

    :ivar idle_timeout: seconds without received data before
        :meth:`timeout_expired` is called, or ``None``; change it on a live
        connection with :meth:`set_idle_timeout`.
    :ivar tls_handshake_timeout: seconds a TLS handshake may take (30), or ``None``.
    :ivar line_timeout: seconds from the first byte of a command line to its
        end (300), or ``None``; used by the line layer
        (:class:`~netproto_twisted.core.lineproto.LineProtocol`).
    :ivar transfer_timeout: seconds a raw data section gets at first, and the
        most it is ever granted ahead (300), or ``None`` for no transfer deadline.
    :ivar min_transfer_rate: bytes per second a transfer must average (500):
        each byte received extends its deadline by ``1 / min_transfer_rate`` s.
    :ivar decoder: the :class:`Decoder` received bytes pass through first
        (``None``: none, the fast path).
    :ivar encoder: the :class:`Encoder` written bytes pass through last
        (``None``: none); see :meth:`install_codec`.
    :ivar clock: the clock for timers; taken from ``factory.reactor`` when ``None``.
    """

    idle_timeout: float | None = None
    tls_handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT
    line_timeout: float | None = DEFAULT_LIMITS.line_timeout
    transfer_timeout: float | None = DEFAULT_LIMITS.transfer_timeout
    min_transfer_rate: float = DEFAULT_LIMITS.min_transfer_rate
    decoder: Decoder | None = None
    encoder: Encoder | None = None
    clock: IReactorTime | None = None
    #: The connection's transport: a TCP, TLS or test transport (ITransport, IPushProducer,
    #: and ITLSTransport where STARTTLS is used); typed loosely because those differ.
    transport: Any

    _log = Logger()

    def __init__(self) -> None:
        self._paused = False
        self._transport_paused = False
        self._delivering = False
        self._lost = False
        self._tls_started = False
        self._handshake_done = False
        self._handshake_timer: HandshakeTimeout | None = None
        self._idle_call: IDelayedCall | None = None
        self._last_activity = 0.0
        #: Input held while paused (the plumbing's own; the line layer has a LineBuffer).
        self._held = bytearray()
        #: The running deadline: its kind, due time and span (the watchdog checks it).
        self._deadline_kind: str | None = None
        self._deadline_due = 0.0
        self._deadline_span = 0.0
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
            self._discard_input()
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
        """Cancel the watchdog (idle timeout, deadline) and handshake timers (idempotent)."""
        call, self._idle_call = self._idle_call, None
        if call is not None and call.active():
            call.cancel()
        timer, self._handshake_timer = self._handshake_timer, None
        if timer is not None:
            timer.cancel()
        self._deadline_kind = None

    # --- input ------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Decode ``data`` and hand it to :meth:`bytes_received`, unless input is paused."""
        if self._lost:
            return
        if self._idle_call is not None:
            self._last_activity = self._need_clock().seconds()
        if self._deadline_kind == DEADLINE_TRANSFER:
            self._transfer_progress(len(data))
        decoder = self.decoder
        if decoder is not None:
            data = decoder.decode(data)
            if not data:
                return
        if self._paused or self._delivering or self._held:
            if self._paused and not self._transport_paused:
                self._pause_transport()
            self._held += data
            self._deliver()
            return
        self._delivering = True
        try:
            self.bytes_received(data)
        finally:
            self._delivering = False
        self._deliver()

    def bytes_received(self, data: bytes) -> None:
        """Handle received (decoded) bytes.  Subclasses without line framing override this."""
        raise NotImplementedError(f"{type(self).__name__}.bytes_received")

    def _deliver(self) -> None:
        """Hand held input to :meth:`bytes_received` unless paused (a loop, never recursion)."""
        if self._delivering or not self._held:
            return
        self._delivering = True
        try:
            while self._held and not (
                self._paused or self._lost or getattr(self.transport, "disconnecting", False)
            ):
                data = bytes(self._held)
                self._held.clear()
                self.bytes_received(data)
        finally:
            self._delivering = False

    def _input_buffered(self) -> bool:
        """Whether received input waits to be delivered."""
        return bool(self._held)

    def _discard_input(self) -> int:
        """Drop input not yet delivered (STARTTLS, connection lost); return how many bytes."""
        count = len(self._held)
        self._held.clear()
        return count

    # --- flow control -----------------------------------------------------------------

    @property
    def input_paused(self) -> bool:
        """Whether delivery is paused by :meth:`pause_input`."""
        return self._paused

    def pause_input(self) -> None:
        """Deliver nothing more until :meth:`resume_input`; stop reading from the socket.

        Call it from a handler whose work finishes later (a Deferred): the
        next pipelined request is then looked at only after that work.
        Pausing is not counted: one :meth:`resume_input` undoes any number.

        The transport is paused at once only if input is already buffered;
        otherwise when the next bytes arrive (at most one read more is
        buffered).  A peer that waits for the reply, as most do, so costs no
        pause/resume of the socket (two ``epoll_ctl`` calls) per request.
        """
        if self._paused:
            return
        self._paused = True
        if self._input_buffered():
            self._pause_transport()

    def resume_input(self) -> None:
        """Resume reading and deliver the buffered input, in order."""
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

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are: straight to the socket when nothing is queued, else queued.

        Subclasses writing replies themselves should use this rather than
        ``transport.write`` to get the eager path (same ordering guarantees).
        """
        encoder = self.encoder
        if encoder is not None and data:
            data = encoder.encode(data)
        eager = self._eager
        if eager is not None and data:
            # write_now(), inlined: this runs for every reply.
            sent = send_now(eager, data)
            if sent:
                if sent == len(data):
                    return
                data = data[sent:]
        self.transport.write(data)

    def install_codec(self, decoder: Decoder, encoder: Encoder) -> None:
        """Pass received bytes through ``decoder``, written ones through ``encoder``, from now on.

        For a layer that starts mid-connection (COMPRESS): received bytes
        not yet framed are decoded now (they came after the go-ahead), and
        everything written from now on is encoded.
        """
        self.decoder = decoder
        self.encoder = encoder
        self._recode_input(decoder)

    def _recode_input(self, decoder: Decoder) -> None:
        """Pass input held but not yet delivered through ``decoder``."""
        if self._held:
            data = decoder.decode(bytes(self._held))
            self._held.clear()
            self._held += data

    def compression_failed(self, error: Exception) -> None:
        """The peer's compressed stream could not be decoded.  Default: log it and close."""
        self._log.info("closing: {error}", error=error)
        if self.transport is not None:
            self.transport.loseConnection()

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
        CVE-2011-0411 injection defence); any deadline stops;
        :meth:`reset_session` is called; the handshake must finish within
        ``tls_handshake_timeout``.  ``context`` is
        :func:`~netproto_twisted.core.tls.server_context`'s result for a
        server, :func:`~netproto_twisted.core.tls.client_options`'s for a
        client.  Send the protocol's "go ahead" reply before calling it.

        :raises LocalProtocolError: if TLS is already active or the transport
            cannot start TLS.
        """
        if self.is_secure:
            raise LocalProtocolError("TLS is already active on this connection")
        start = getattr(self.transport, "startTLS", None)
        if start is None:
            raise LocalProtocolError("this transport cannot start TLS")
        discarded = self._discard_input()
        if discarded:
            self._log.info(
                "discarded {count} bytes of plaintext received before the TLS handshake",
                count=discarded,
            )
        self.clear_deadline()
        self._eager = None  # every later byte goes through the TLS layer
        start(context, self._tls_direction_is_normal(server))
        self._tls_started = True
        self._handshake_done = False
        self.reset_session()
        self._start_handshake_timer()

    def _tls_direction_is_normal(self, server: bool) -> bool:
        """Return ``startTLS``'s ``normal`` flag: whether TLS goes the way TCP went."""
        client_default = tls_client_default(self.transport)
        if client_default is None:
            is_server = getattr(self.transport, "isServer", None)  # iosim's FakeTransport
            if is_server is None:
                return True
            client_default = not is_server
        return client_default != server

    def _start_handshake_timer(self) -> None:
        """Abort the connection unless the TLS handshake completes in time."""
        timeout = self.tls_handshake_timeout
        if timeout is None or self._handshake_timer is not None:
            return
        self._handshake_timer = HandshakeTimeout(self._need_clock(), self.transport, timeout)

    # --- idle timeout and deadlines: one watchdog timer ------------------------------------
    #
    # One timer per connection (``_idle_call``) serves the idle timeout and the
    # deadline: received data only records a time stamp, starting or ending a
    # deadline only sets fields, and the timer, when it fires, checks both and
    # re-arms itself for the earlier of the two.  A deadline thus costs no timer
    # of its own while the idle timer runs (no ``callLater``/``cancel`` per
    # command line or per message).

    def set_idle_timeout(self, seconds: float | None) -> None:
        """Change the idle timeout of this connection (``None`` turns it off); restarts it."""
        self.idle_timeout = seconds
        call, self._idle_call = self._idle_call, None
        if call is not None and call.active():
            call.cancel()
        if not self._lost and self.transport is not None:
            self._start_idle_timer()
            if self._deadline_kind is not None and self.clock is not None:
                self._arm_watchdog(self._deadline_due, self.clock.seconds())

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
        now = self._last_activity = clock.seconds()
        self._arm_watchdog(now + timeout, now)

    def _arm_watchdog(self, due: float, now: float) -> None:
        """Make sure the watchdog timer fires no later than ``due``."""
        call = self._idle_call
        if call is not None and call.active():
            if call.getTime() <= due:
                return  # it fires first and re-arms itself for the rest
            call.reset(max(0.0, due - now))
            return
        self._idle_call = self._need_clock().callLater(max(0.0, due - now), self._idle_check)

    def _idle_check(self) -> None:
        """Fire :meth:`timeout_expired` if idle too long or a deadline passed, else re-arm.

        Received data only records a time stamp (no timer churn per chunk);
        while input is paused the connection counts as busy, and a running
        deadline starts again (the time is ours, not the peer's).
        """
        self._idle_call = None
        idle = self.idle_timeout
        kind = self._deadline_kind
        if self._lost or (idle is None and kind is None):
            return
        clock = self._need_clock()
        now = clock.seconds()
        if self._paused:
            self._last_activity = now
            if kind is not None:
                self._deadline_due = max(self._deadline_due, now + self._deadline_span)
        next_due: float | None = None
        if idle is not None:
            next_due = self._last_activity + idle
            if now >= next_due:
                self.timeout_expired()
                return
        if kind is not None:
            due = self._deadline_due
            if now >= due:
                self._deadline_kind = None
                if not getattr(self.transport, "disconnecting", False):
                    self._log.info(
                        "{kind} not complete within its deadline; closing", kind=kind
                    )
                    self.timeout_expired()
                return
            if next_due is None or due < next_due:
                next_due = due
        assert next_due is not None
        self._idle_call = clock.callLater(next_due - now, self._idle_check)

    @property
    def deadline_kind(self) -> str | None:
        """The running deadline: :data:`DEADLINE_LINE`, :data:`DEADLINE_TRANSFER`, or ``None``."""
        return self._deadline_kind

    def start_deadline(self, kind: str, seconds: float | None) -> None:
        """Start a deadline ``seconds`` from now (``None``: none), replacing any running one.

        When it passes, :meth:`timeout_expired` is called (unless the
        connection is closing).  Without a clock there is no deadline.  While
        input is paused the time is ours, not the peer's: a deadline found due
        then starts again.
        """
        clock = self.clock
        if seconds is None or clock is None or self._lost:
            self._deadline_kind = None
            return
        now = clock.seconds()
        self._deadline_kind = kind
        self._deadline_due = now + seconds
        self._deadline_span = seconds
        self._arm_watchdog(now + seconds, now)

    def clear_deadline(self) -> None:
        """Stop the running deadline, if any (the watchdog then finds nothing due)."""
        self._deadline_kind = None

    def begin_transfer(self) -> None:
        """Start the transfer deadline: a raw section the peer owes (``transfer_timeout``)."""
        self.start_deadline(DEADLINE_TRANSFER, self.transfer_timeout)

    def end_transfer(self) -> None:
        """End the transfer deadline started by :meth:`begin_transfer`."""
        if self._deadline_kind == DEADLINE_TRANSFER:
            self._deadline_kind = None

    def _transfer_progress(self, count: int) -> None:
        """Extend the transfer deadline by ``count / min_transfer_rate`` s (capped at the span)."""
        clock = self.clock
        if clock is None:
            return
        due = self._deadline_due + count / self.min_transfer_rate
        limit = clock.seconds() + self._deadline_span
        self._deadline_due = due if due < limit else limit

    # --- hooks ------------------------------------------------------------------------

    def timeout_expired(self) -> None:
        """Called when the idle timeout or a deadline expires.  Default: close the connection.

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

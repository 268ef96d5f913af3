"""The SMTP client's Twisted protocol: commands out, replies in, in order.

:class:`SMTPClientProtocol` is a :class:`~netproto_twisted.core.lineproto.LineProtocol`
kept in raw mode: what arrives is fed to a sans-I/O
:class:`~netproto_twisted.smtp.ReplyParser`, and each reply fires the
oldest waiting Deferred (several when commands were pipelined).  A waiting
Deferred fires with the :class:`~netproto_twisted.smtp.Reply` whatever its
code; it fails only when the connection is lost, times out or the server
breaks the protocol.  Interpreting replies is the business of
:class:`~netproto_twisted.smtp.client.session.SMTPClient`.
"""

from __future__ import annotations

from collections import deque

from OpenSSL import SSL
from twisted.internet.defer import Deferred, fail
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.core.errors import RemoteProtocolError
from netproto_twisted.core.lineproto import LineProtocol, TLSContext
from netproto_twisted.smtp.errors import SMTPServerDisconnected, SMTPTLSRequired
from netproto_twisted.smtp.wire._codes import SERVICE_UNAVAILABLE
from netproto_twisted.smtp.wire._syntax import Reply, ReplyParser

__all__ = ["SMTPClientProtocol"]

#: The code given to a TLS failure: temporary, so that a relay retries later.
TLS_FAILED = 454
#: The least time to wait for the reply to the end of the message (RFC 5321 4.5.3.2.6).
DATA_TIMEOUT = 600.0


class _Batch:
    """The replies to a batch of pipelined commands, delivered together."""

    __slots__ = ("done", "replies", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.replies: list[Reply] = []
        self.done: Deferred[list[Reply]] = Deferred()

    def add(self, reply: Reply) -> None:
        self.replies.append(reply)
        if len(self.replies) == self.size:
            self.done.callback(self.replies)

    def fail(self, error: Exception) -> None:
        if not self.done.called:
            self.done.errback(error)


class SMTPClientProtocol(LineProtocol):
    """One SMTP client connection: write commands, get their replies as Deferreds.

    :ivar reply_timeout: seconds to wait for a reply before giving up and
        closing the connection (``None``: wait for ever).
    :ivar data_timeout: the same for the reply to the end of a message, which
        RFC 5321 lets take up to 10 minutes (the larger of ``reply_timeout``
        and :data:`DATA_TIMEOUT`).
    """

    _log = Logger()
    #: Raw mode here reads replies, which the server owes only after a command.
    transfer_timeout = None

    def __init__(self, reply_timeout: float | None = 30.0) -> None:
        super().__init__()
        self.reply_timeout = reply_timeout
        self.data_timeout = None if reply_timeout is None else max(reply_timeout, DATA_TIMEOUT)
        self._slow: set[int] = set()
        if reply_timeout is not None:
            self.tls_handshake_timeout = reply_timeout
        self._parser = ReplyParser()
        self._waiters: deque[Deferred[Reply] | _Batch] = deque()
        self._error: Exception | None = None
        self._handshake: Deferred[None] | None = None
        self._closing = False
        #: Fires with the greeting reply.
        self.greeting: Deferred[Reply] = self.expect()
        #: Fires (with None) once the connection is closed.
        self.closed: Deferred[None] = Deferred()

    # --- connection ---------------------------------------------------------------------

    def connectionMade(self) -> None:
        """Read everything as raw bytes (the reply parser frames lines)."""
        super().connectionMade()
        self.set_raw_mode()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Fail everything still waiting, and fire :attr:`closed`."""
        super().connectionLost(reason)
        if self._error is None:
            if reason.check(SSL.Error):
                self._error = SMTPTLSRequired(f"TLS failed: {reason.value}", TLS_FAILED)
            else:
                self._error = SMTPServerDisconnected(
                    f"connection lost: {reason.getErrorMessage()}"
                )
        self._fail_all()
        if not self.closed.called:
            self.closed.callback(None)

    @property
    def usable(self) -> bool:
        """Whether the connection is open and usable."""
        return self._error is None and not self._lost and not self._closing

    def _fail_all(self) -> None:
        error = self._error or SMTPServerDisconnected()
        self._slow.clear()
        handshake, self._handshake = self._handshake, None
        if handshake is not None:
            if isinstance(error, SMTPServerDisconnected):
                error = SMTPTLSRequired(f"TLS handshake failed: {error.text}", TLS_FAILED)
            handshake.errback(error)
        while self._waiters:
            waiter = self._waiters.popleft()
            if isinstance(waiter, _Batch):
                waiter.fail(error)
            else:
                waiter.errback(error)
        self._update_timer()

    # --- commands -----------------------------------------------------------------------

    def expect(self, *, slow: bool = False) -> Deferred[Reply]:
        """Return a Deferred for the next reply not yet claimed (written command or greeting).

        ``slow``: the reply may take :attr:`data_timeout` (the end of a message).
        """
        if self._error is not None or self._lost:
            return fail(self._error or SMTPServerDisconnected())
        d: Deferred[Reply] = Deferred()
        self._waiters.append(d)
        if slow:
            self._slow.add(id(d))
        if slow or len(self._waiters) == 1:
            self._update_timer()
        return d

    def send_batch(
        self, data: bytes, replies: int, *, slow: bool = False
    ) -> Deferred[list[Reply]]:
        """Write pipelined commands; return one Deferred for the list of their ``replies`` replies.

        Fails (once) if the connection is lost before the last reply.
        """
        if self._error is not None or self._lost:
            return fail(self._error or SMTPServerDisconnected())
        batch = _Batch(replies)
        was_idle = not self._waiters
        self._waiters.extend([batch] * replies)
        if slow:
            self._slow.add(id(batch))
        if was_idle or slow:
            self._update_timer()
        self.send_raw(data)
        return batch.done

    def send(self, data: bytes, replies: int = 1) -> list[Deferred[Reply]]:
        """Write ``data`` (formatted commands); return Deferreds for its ``replies`` replies."""
        ds = [self.expect() for _ in range(replies)]
        if self._error is None and not self._lost:
            self.send_raw(data)
        return ds

    def command(self, data: bytes, *, slow: bool = False) -> Deferred[Reply]:
        """Write one formatted command; return a Deferred for its reply (see :meth:`expect`)."""
        d = self.expect(slow=slow)
        if self._error is None and not self._lost:
            self.send_raw(data)
        return d

    def write(self, data: bytes) -> None:
        """Write bytes that get no reply of their own (message data)."""
        if self._error is None and not self._lost:
            self.send_raw(data)

    def lose(self, abort: bool = False) -> None:
        """Close the connection (``abort``: at once, dropping unsent data)."""
        self._closing = True
        if self._lost or self.transport is None:
            return
        if abort and hasattr(self.transport, "abortConnection"):
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    # --- TLS ----------------------------------------------------------------------------

    def start_client_tls(self, options: TLSContext) -> Deferred[None]:
        """Start TLS as the client (after the server's 220 to STARTTLS); fire when handshaken."""
        d: Deferred[None] = Deferred()
        self._handshake = d
        self.start_tls(options, server=False)
        return d

    def reset_session(self) -> None:
        """After STARTTLS: forget any plaintext reply bytes, parse afresh in raw mode."""
        self._parser = ReplyParser()
        self.set_raw_mode()

    def tls_established(self) -> None:
        """The TLS handshake completed: fire the STARTTLS Deferred."""
        handshake, self._handshake = self._handshake, None
        if handshake is not None:
            handshake.callback(None)

    # --- input --------------------------------------------------------------------------

    def raw_data_received(self, data: bytes) -> None:
        """Parse replies and hand each to the oldest waiter."""
        self._parser.receive(data)
        while not self._lost and self._error is None:
            parser = self._parser
            try:
                reply = parser.next_reply()
            except RemoteProtocolError as e:
                self._protocol_error(e)
                return
            if reply is None:
                return
            self._dispatch(reply)

    def _dispatch(self, reply: Reply) -> None:
        if not self._waiters:
            if reply.code == SERVICE_UNAVAILABLE:
                self._log.info("server closing: {reply}", reply=str(reply))
                self._error = SMTPServerDisconnected(reply.status_text, reply.code)
                self.lose()
                return
            self._protocol_error(RemoteProtocolError(f"unexpected reply: {str(reply)[:80]}"))
            return
        waiter = self._waiters.popleft()
        if self._slow and waiter is not (self._waiters[0] if self._waiters else None):
            self._slow.discard(id(waiter))
            self._update_timer()
        elif not self._waiters:
            self._update_timer()
        if reply.code == SERVICE_UNAVAILABLE:
            # The server is going away: this reply is its last word (RFC 5321 3.8).
            self._error = SMTPServerDisconnected(reply.status_text, reply.code)
            if isinstance(waiter, _Batch):
                waiter.fail(self._error)
            else:
                waiter.callback(reply)
            self._fail_all()
            self.lose()
            return
        if isinstance(waiter, _Batch):
            waiter.add(reply)
        else:
            waiter.callback(reply)

    def _protocol_error(self, error: Exception) -> None:
        self._log.info("SMTP protocol error from the server: {error}", error=str(error))
        self._error = error
        self._fail_all()
        self.lose(abort=True)

    # --- reply timeout ------------------------------------------------------------------

    def _update_timer(self) -> None:
        if not self._waiters or self._lost:
            want = None
        elif self._slow:
            want = self.data_timeout
        else:
            want = self.reply_timeout
        if want != self.idle_timeout:
            self.set_idle_timeout(want)

    def timeout_expired(self) -> None:
        """No reply came in time: fail what waits and abort the connection."""
        self._error = SMTPServerDisconnected(
            f"no reply from the server within {self.reply_timeout} s"
        )
        self._fail_all()
        self.lose(abort=True)

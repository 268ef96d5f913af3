"""SMTP server sessions: settings, the mail transaction, and the session base class.

:class:`SessionBase` holds what every part of a server session shares
(greeting, replies, the error budget, waiting on Deferreds with input paused,
the policy's view of the session); :mod:`~netproto_twisted.smtp.server_auth`
adds STARTTLS and AUTH, :mod:`~netproto_twisted.smtp.server` the mail
commands and the message data.
"""

from __future__ import annotations

import functools
import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import connectionDone
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.core.access import Network
from netproto_twisted.core.auth import IAuthenticated
from netproto_twisted.core.dotstuff import DotUnstuffer
from netproto_twisted.core.framing import LineEndings
from netproto_twisted.core.ids import uuid7
from netproto_twisted.core.limits import RateLimiter
from netproto_twisted.core.lineproto import LineProtocol
from netproto_twisted.core.sasl_exchange import SASLExchange
from netproto_twisted.smtp._codes import (
    AUTH_REQUIRED,
    CLOSING,
    ES_MESSAGE_TOO_BIG,
    ES_OTHER,
    ES_OTHER_MAIL_SYSTEM,
    ES_OTHER_PROTOCOL,
    ES_OTHER_SECURITY,
    ES_SYNTAX_ERROR,
    EXCEEDED_STORAGE,
    LOCAL_ERROR,
    OK,
    SERVICE_READY,
    SERVICE_UNAVAILABLE,
    SYNTAX_ERROR,
)
from netproto_twisted.smtp._params import (
    MailFrom,
    RcptTo,
)
from netproto_twisted.smtp._state import (
    EVENT_CLOSE,
    Session,
)
from netproto_twisted.smtp._wire import Reply
from netproto_twisted.smtp.interfaces import (
    IDeliveryTarget,
    IMessageSink,
    SessionInfo,
)

if TYPE_CHECKING:
    from netproto_twisted.smtp.server import SMTPServerFactory

__all__ = ["BareLF", "IAuthenticated", "ServerSettings", "SessionBase", "Transaction"]

_log = Logger(namespace="netproto.smtp.server")

#: What to do with bare CR/LF in commands and data: refuse (the default) or normalise.
BareLF = Literal["reject", "normalize"]


@dataclass(frozen=True)
class ServerSettings:
    """Everything that shapes one listening SMTP server's behaviour.

    :ivar hostname: the server's name in the greeting, EHLO and Received.
    :ivar max_size: the largest message accepted, in octets (advertised with SIZE).
    :ivar require_auth: submission role: MAIL needs AUTH first (``530 5.7.0``).
    :ivar require_tls: refuse MAIL before STARTTLS (``530 5.7.0``).
    :ivar relay_networks: peers that may relay without AUTH.
    :ivar allow_insecure_auth: offer AUTH without TLS to loopback peers.
    :ivar auth_mechanisms: the SASL mechanisms to offer, in order (empty: all
        the credential store can serve).
    :ivar bare_lf: ``"reject"`` bare CR/LF (the default) or ``"normalize"`` them.
    :ivar max_recipients: recipients per transaction (``452 4.5.3`` beyond).
    :ivar max_errors: bad commands in a session before it is closed (``421``).
    :ivar max_line_length: longest command line, CRLF included.
    :ivar max_data_line_length: longest message line, CRLF excluded, or ``None``.
    :ivar idle_timeout: seconds without input before ``421`` and close.
    :ivar tls_handshake_timeout: seconds a TLS handshake may take.
    :ivar command_rate: sustained commands per second per connection (``None``: no limit);
        beyond ``command_burst`` commands, the next one is handled only when due.
    :ivar greeting: text after the host name in the ``220`` greeting.
    :ivar extra_keywords: more EHLO keywords to advertise (for subclasses that handle them).
    """

    hostname: str = "localhost"
    max_size: int = 35 * 1024 * 1024
    require_auth: bool = False
    require_tls: bool = False
    relay_networks: tuple[Network, ...] = ()
    allow_insecure_auth: bool = False
    auth_mechanisms: tuple[str, ...] = ()
    bare_lf: BareLF = "reject"
    max_recipients: int = 1000
    max_errors: int = 20
    max_line_length: int = 2048
    max_data_line_length: int | None = None
    idle_timeout: float | None = 300.0
    tls_handshake_timeout: float | None = 30.0
    command_rate: float | None = None
    command_burst: int = 200
    greeting: str = "ESMTP netproto"
    extra_keywords: tuple[str, ...] = field(default=())


def _reply(code: int, text: str, status: str | None = None) -> Reply:
    return Reply.make(code, text, status)


_OK = _reply(OK, "Ok", ES_OTHER)
_BYE = _reply(CLOSING, "Bye", ES_OTHER)
_ERR_TOO_LONG = _reply(SYNTAX_ERROR, "Line too long", ES_SYNTAX_ERROR)
_ERR_BARE_LF = _reply(SYNTAX_ERROR, "Bare CR or LF not allowed", ES_SYNTAX_ERROR)
_ERR_LOCAL = _reply(LOCAL_ERROR, "Error: local error in processing", ES_OTHER_MAIL_SYSTEM)
_ERR_TOO_BIG = _reply(
    EXCEEDED_STORAGE, "Message size exceeds fixed maximum message size", ES_MESSAGE_TOO_BIG
)
_ERR_AUTH_NEEDED = _reply(AUTH_REQUIRED, "Authentication required", ES_OTHER_SECURITY)
_ERR_TLS_NEEDED = _reply(AUTH_REQUIRED, "Must issue a STARTTLS command first", ES_OTHER_SECURITY)


_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=1024)
def _parse_peer(host: str) -> tuple[str, _IPAddress | None, bool]:
    """``(peer, address, is_loopback)`` for a peer's host text, remembered per host.

    ``peer`` is ``host`` if it is an IP address, else ``""``; ``address`` is
    the parsed address (IPv4-mapped IPv6 as IPv4) or ``None``; a peer that is
    not an IP (a unix socket) counts as loopback.  Busy clients connect again
    and again from the same few addresses: each is parsed once, not per connection.
    """
    try:
        address: _IPAddress = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return "", None, True
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return host, address, address.is_loopback


def _peer_facts(address: IAddress | None) -> tuple[str, _IPAddress | None, bool]:
    host = getattr(address, "host", None)
    if not isinstance(host, str):
        return "", None, True
    return _parse_peer(host)


@functools.lru_cache(maxsize=1024)
def _wire_bytes(reply: Reply, enhanced: bool) -> bytes:
    """``reply.to_bytes(enhanced=...)``, remembered (most replies are the same few)."""
    return reply.to_bytes(enhanced=enhanced)


def _serialized(
    code: int, text: str, status: str | None = None, *, enhanced: bool = True
) -> bytes:
    """A constant reply serialised once, at import, for :meth:`SessionBase._send_wire`."""
    return _reply(code, text, status).to_bytes(enhanced=enhanced)


@functools.lru_cache(maxsize=64)
def _greeting(hostname: str, greeting: str) -> bytes:
    """The ``220`` greeting's bytes (one per listener's settings)."""
    text = f"{hostname} {greeting}".rstrip()
    return Reply.make(SERVICE_READY, text).to_bytes(enhanced=False)


def _in_networks(address: _IPAddress | None, networks: Sequence[Network]) -> bool:
    if address is None or not networks:
        return False
    return any(address.version == net.version and address in net for net in networks)


class Transaction:
    """One mail transaction: sender, accepted recipients with their targets, open sinks."""

    def __init__(self, mail_from: MailFrom, session_info: SessionInfo) -> None:
        self.mail_from = mail_from
        #: What the recipient policy is told about the session (fixed for the transaction).
        self.session_info = session_info
        self.id = uuid7().hex
        self.received_at = time.time()
        self.recipients: list[tuple[RcptTo, IDeliveryTarget]] = []
        self.sinks: list[IMessageSink] = []
        self.size = 0
        self.failed: Reply | None = None

    def abort(self) -> None:
        sinks, self.sinks = self.sinks, []
        for sink in sinks:
            try:
                sink.abort()
            except Exception:
                _log.failure("aborting a message sink failed")


class SessionBase(LineProtocol):
    """The shared part of an SMTP server session (see the module docstring)."""

    factory: SMTPServerFactory

    def __init__(self) -> None:
        super().__init__()
        self.session = Session()
        self.peer = ""
        self.helo = ""
        self.authenticated_as: str | None = None
        self._txn: Transaction | None = None
        self._unstuffer: DotUnstuffer | None = None
        self._sasl: SASLExchange | None = None
        self._errors = 0
        self._waits = 0
        self._limiter: RateLimiter | None = None
        self.in_relay_network = False
        self.peer_is_loopback = False

    @property
    def settings(self) -> ServerSettings:
        """The factory's :class:`ServerSettings`."""
        return self.factory.settings

    def connectionMade(self) -> None:
        """Send the greeting."""
        settings = self.settings
        self.max_line_length = settings.max_line_length - 2
        if settings.bare_lf == "normalize":
            self.line_endings = LineEndings.NORMALIZE
        self.idle_timeout = settings.idle_timeout
        self.tls_handshake_timeout = settings.tls_handshake_timeout
        self.peer, address, self.peer_is_loopback = _peer_facts(self.transport.getPeer())
        self.in_relay_network = _in_networks(address, settings.relay_networks)
        if settings.command_rate is not None and self.clock is not None:
            self._limiter = RateLimiter(self.clock, settings.command_rate, settings.command_burst)
        super().connectionMade()
        self.session = Session(tls=self.is_secure)
        self._send_wire(_greeting(settings.hostname, settings.greeting))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Abort the open transaction (nothing half-delivered) and the SASL exchange."""
        super().connectionLost(reason)
        self._reset_transaction()
        if self._sasl is not None:
            self._sasl.abort()
            self._sasl = None

    def timeout_expired(self) -> None:
        """Say ``421 4.4.2`` and close."""
        self._close(_reply(SERVICE_UNAVAILABLE, "Error: timeout exceeded", "4.2"))

    def reset_session(self) -> None:
        """Forget what was learnt before STARTTLS."""
        self._reset_transaction()
        self.helo = ""
        self.authenticated_as = None

    def _send(self, reply: Reply, *, enhanced: bool = True, unique: bool = False) -> None:
        """Write a reply; ``unique`` ones (with an id in them) skip the serialisation cache."""
        if not self._lost:
            data = reply.to_bytes(enhanced=enhanced) if unique else _wire_bytes(reply, enhanced)
            self.send_raw(data)

    def _send_wire(self, data: bytes) -> None:
        """Write a reply serialised beforehand (the frequent constants: :func:`_serialized`)."""
        if not self._lost:
            self.send_raw(data)

    def _close(self, reply: Reply) -> None:
        self._send(reply)
        self.session.advance(EVENT_CLOSE)
        self._reset_transaction()
        self.transport.loseConnection()

    def _error(self, reply: Reply) -> None:
        """Send an error reply; close the session after too many."""
        self._errors += 1
        if self._errors >= self.settings.max_errors:
            self._close(_reply(SERVICE_UNAVAILABLE, "Error: too many errors", ES_OTHER_PROTOCOL))
        else:
            self._send(reply)

    def _after(self, d: Deferred[Any], handler: Callable[[Any], None]) -> None:
        """Run ``handler(result or Failure)`` when ``d`` fires; pause input until then.

        Waits nest (a handler may start another wait): input resumes only
        when none is pending, so pipelined commands are handled strictly in order.
        """
        if d.called and not d.paused:  # fired, and its callbacks (if any) have all run
            result = d.result
            if not isinstance(result, (Deferred, Failure)):
                # Already fired with a value (a policy answering at once): no callback
                # machinery, no pause.  Failures take the long way, which consumes them.
                self._run_handler(handler, result)
                return
        state = {"done": False, "waiting": False}

        def finish(result: object) -> None:
            state["done"] = True
            try:
                self._run_handler(handler, result)
            finally:
                if state["waiting"]:
                    self._waits -= 1
                    if self._waits == 0 and not self.transport.disconnecting:
                        self.resume_input()

        d.addBoth(finish)
        if not state["done"]:
            state["waiting"] = True
            self._waits += 1
            self.pause_input()

    def _run_handler(self, handler: Callable[[Any], None], result: object) -> None:
        try:
            if not self._lost:
                handler(result)
        except Exception:
            _log.failure("SMTP server handler failed")
            if not self._lost:
                self._close(_ERR_LOCAL)

    def _rate_limited(self, line: bytes, handle: Callable[[bytes], None]) -> bool:
        """If this command comes too fast, handle it later (input paused meanwhile)."""
        limiter = self._limiter
        if limiter is None or limiter.allow():
            return False
        assert self.clock is not None
        wait = deferLater(self.clock, limiter.wait_time(), lambda: None)
        self._after(wait, lambda _: handle(line))
        return True

    def _session_info(self) -> SessionInfo:
        return SessionInfo(
            peer=self.peer,
            helo=self.helo,
            authenticated_as=self.authenticated_as,
            tls=self.is_secure,
            relay_allowed=self.authenticated_as is not None or self.in_relay_network,
        )

    def _reset_transaction(self) -> None:
        txn, self._txn = self._txn, None
        self._unstuffer = None
        if txn is not None:
            txn.abort()

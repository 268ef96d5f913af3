"""The plumbing every request/reply line client shares: a queue of pending replies.

:class:`ReplyQueueProtocol` is the client side of a line protocol whose
server answers requests in order (POP3, NNTP, the FTP control connection):

- a greeting, awaited first (:attr:`ReplyQueueProtocol.greeting`);
- requests queued (:meth:`ReplyQueueProtocol.enqueue`), so that they may be
  pipelined, each answered by the next reply in order;
- when the connection drops, the greeting (if still awaited) and every
  pending request fail with the protocol's own "connection lost" error
  (:attr:`ReplyQueueProtocol.lost_error`), and so do requests made later;
- :meth:`ReplyQueueProtocol.lose` and :meth:`ReplyQueueProtocol.when_closed`;
- the reply timeout: ``idle_timeout`` seconds without a reply while one is
  awaited fails everything and closes (idling with nothing pending is fine).

A subclass parses the replies (``line_received``) and takes each answered
request off the queue (:meth:`ReplyQueueProtocol.next_pending`,
:meth:`ReplyQueueProtocol.pop_pending`).  A ``connect_*`` function takes
its endpoint, port and TLS options from :func:`client_target`, then
:func:`open_client` connects, runs the session set-up, and closes again if
that fails.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar, cast

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.error import ConnectError, ConnectionDone, DNSLookupError
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, connectionDone
from twisted.python.failure import Failure

from netproto_twisted.core.errors import NetprotoError
from netproto_twisted.core.lineproto import LineProtocol
from netproto_twisted.core.net import canonical_ip
from netproto_twisted.core.tls import client_options

__all__ = [
    "ClientSession",
    "ClientTarget",
    "PendingReply",
    "ReplyQueueFactory",
    "ReplyQueueProtocol",
    "client_endpoint",
    "client_target",
    "open_client",
]

_T = TypeVar("_T")
_G = TypeVar("_G")
_P = TypeVar("_P", bound="PendingReply")
_Proto = TypeVar("_Proto", bound="ReplyQueueProtocol[Any, Any]")


class PendingReply:
    """One request awaiting its reply; a protocol subclasses it to carry its own state."""

    __slots__ = ("deferred",)

    def __init__(self) -> None:
        self.deferred: Deferred[Any] = Deferred()


class ClientSession(LineProtocol, Generic[_G]):
    """A line client's life cycle: the greeting, failing what waits, closing.

    What every client protocol shares, whatever order its replies come in:
    :class:`ReplyQueueProtocol` adds the in-order queue; a tagged protocol
    (IMAP) keeps its own queue and implements :meth:`fail_waiting`.

    :ivar greeting: fires with the greeting (:meth:`greet`), or fails.
    :cvar lost_error: the protocol's error for a closed or timed-out connection,
        built from a message.
    :cvar closed_message: its message when the connection has closed.
    """

    lost_error: ClassVar[type[Exception]] = NetprotoError
    #: What :attr:`lost_error` says when the connection has closed.
    closed_message: ClassVar[str] = "connection closed"

    def __init__(self, clock: IReactorTime | None = None, timeout: float | None = 30.0) -> None:
        super().__init__()
        if clock is not None:
            self.clock = clock
        self.idle_timeout = timeout
        self.greeting: Deferred[_G] = Deferred()
        self._greeted = False
        self._closed: Deferred[None] = Deferred()

    @property
    def greeted(self) -> bool:
        """Whether the greeting has come (or failed)."""
        return self._greeted

    def greet(self, value: _G) -> None:
        """The greeting came: fire :attr:`greeting` with *value*."""
        self._greeted = True
        self.greeting.callback(value)

    def refuse_greeting(self, error: Exception) -> None:
        """The greeting said no: fail :attr:`greeting` with *error* and close."""
        self._greeted = True
        self.greeting.errback(error)
        self.lose()

    def fail_waiting(self, error: Exception) -> None:
        """Fail every request still waiting for its reply with *error* (subclasses)."""

    def fail_all(self, error: Exception) -> None:
        """Fail every pending request, and the greeting if it is still awaited, with *error*."""
        self.fail_waiting(error)
        if not self._greeted:
            self._greeted = True
            self.greeting.errback(error)

    def protocol_error(self, error: Exception) -> None:
        """The server broke the protocol: fail everything with *error* and close."""
        self.fail_all(error)
        self.lose()

    def when_closed(self) -> Deferred[None]:
        """Fire when the connection has closed."""
        d: Deferred[None] = Deferred()
        if self._lost:
            d.callback(None)
            return d

        def fire(result: object) -> object:
            d.callback(None)
            return result

        self._closed.addBoth(fire)
        return d

    def lose(self) -> None:
        """Close the connection now."""
        if self.transport is not None and not self._lost:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Fail what is pending with :attr:`lost_error`; fire :meth:`when_closed`."""
        self._lost = True
        super().connectionLost(reason)
        why = "" if reason.check(ConnectionDone) else f": {reason.getErrorMessage()}"
        self.fail_all(self.lost_error(f"{self.closed_message}{why}"))
        if not self._closed.called:
            self._closed.callback(None)


class ReplyQueueProtocol(ClientSession[_G], Generic[_P, _G]):
    """A line client whose requests are answered in order (see the module docstring)."""

    def __init__(self, clock: IReactorTime | None = None, timeout: float | None = 30.0) -> None:
        super().__init__(clock, timeout)
        self._pending: deque[_P] = deque()

    @property
    def pending(self) -> int:
        """Replies still awaited."""
        return len(self._pending)

    def enqueue(self, pending: _P) -> Deferred[Any]:
        """Queue *pending* (its request is sent by the caller); return its Deferred.

        Raises :attr:`lost_error` once the connection is closed.
        """
        if self._lost:
            raise self.lost_error("the connection is closed")
        self._pending.append(pending)
        return pending.deferred

    def next_pending(self) -> _P | None:
        """The request the next reply answers (still queued), or None."""
        return self._pending[0] if self._pending else None

    def pop_pending(self) -> _P:
        """Take the answered request off the queue."""
        return self._pending.popleft()

    def push_front(self, pending: _P) -> None:
        """Put *pending* first: it takes the next reply (e.g. one that answers a cancel)."""
        self._pending.appendleft(pending)

    def fail_waiting(self, error: Exception) -> None:
        """Fail every queued request with *error*."""
        while self._pending:
            self._pending.popleft().deferred.errback(error)

    def timeout_expired(self) -> None:
        """No reply in time: fail what is pending and close; idle with nothing pending is fine.

        When idle, the timer starts again, so that the next request is timed too.
        """
        if self._pending or not self._greeted:
            self.fail_all(self.lost_error("timed out waiting for the server"))
            self.lose()
        else:
            self.set_idle_timeout(self.idle_timeout)


class ReplyQueueFactory(Factory, Generic[_Proto]):
    """Builds client protocols as ``protocol_class(clock=clock, timeout=timeout)``."""

    def __init__(
        self,
        protocol_class: Callable[..., _Proto],
        clock: IReactorTime,
        timeout: float | None,
    ) -> None:
        self.protocol_class = protocol_class
        self.clock = clock
        self.timeout = timeout

    def buildProtocol(self, addr: object) -> _Proto:
        """A new protocol on this factory's clock and timeout."""
        protocol = self.protocol_class(clock=self.clock, timeout=self.timeout)
        protocol.factory = self
        return protocol


def client_endpoint(
    reactor: Any,
    host: str,
    port: int,
    *,
    timeout: float,
    implicit_tls: IOpenSSLClientConnectionCreator | None = None,
    endpoint: IStreamClientEndpoint | None = None,
) -> IStreamClientEndpoint:
    """A TCP endpoint to *host* (or *endpoint*), wrapped in TLS when *implicit_tls* is given.

    An IP address as *host* is connected to directly (no resolver round trip
    through the thread pool); a name goes through ``HostnameEndpoint``.
    """
    if endpoint is None:
        address = canonical_ip(host)
        if address is None:
            endpoint = HostnameEndpoint(reactor, host, port, timeout=timeout)
        elif ":" in address:
            endpoint = TCP6ClientEndpoint(reactor, address, port, timeout=timeout)
        else:
            endpoint = TCP4ClientEndpoint(reactor, address, port, timeout=timeout)
    if implicit_tls is not None:
        endpoint = wrapClientTLS(implicit_tls, endpoint)
    return endpoint


@dataclass(frozen=True)
class ClientTarget:
    """Where a ``connect_*`` function connects, from :func:`client_target`."""

    #: The endpoint (TLS-wrapped under implicit TLS).
    endpoint: IStreamClientEndpoint
    #: The port (the protocol's default for the TLS mode when none was given).
    port: int
    #: The TLS client options (``None`` when ``tls`` is ``"none"`` and none were given).
    tls_options: IOpenSSLClientConnectionCreator | None
    #: ``host:port``, for error messages.
    where: str


def client_target(
    reactor: Any,
    host: str,
    port: int | None,
    *,
    tls: str,
    modes: Sequence[str],
    default_ports: tuple[int, int],
    tls_options: IOpenSSLClientConnectionCreator | None,
    timeout: float,
    endpoint: IStreamClientEndpoint | None = None,
) -> ClientTarget:
    """Check *tls* against *modes* and work out the endpoint, port and TLS options.

    ``default_ports`` is ``(plain, implicit TLS)``; the TLS mode ``"implicit"``
    wraps the endpoint in TLS, ``"none"`` needs no options, any other mode
    (STARTTLS and the like) gets options verifying *host* unless some are given.
    Raises :class:`ValueError` for a mode not in *modes*.
    """
    if tls not in modes:
        raise ValueError(f"tls must be one of {tuple(modes)}, not {tls!r}")
    implicit = tls == "implicit"
    if port is None:
        port = default_ports[1] if implicit else default_ports[0]
    options = tls_options
    if options is None and tls != "none":
        options = client_options(host)
    target = client_endpoint(
        reactor,
        host,
        port,
        timeout=timeout,
        implicit_tls=options if implicit else None,
        endpoint=endpoint,
    )
    return ClientTarget(target, port, options, f"{host}:{port}")


async def open_client(
    endpoint: IStreamClientEndpoint,
    factory: ReplyQueueFactory[_Proto],
    set_up: Callable[[_Proto], Awaitable[_T]],
    *,
    where: str,
) -> _T:
    """Connect, then ``await set_up(protocol)``; close the connection if that fails.

    A failure to connect raises the protocol's :attr:`~ReplyQueueProtocol.lost_error`
    naming *where* (``host:port``).
    """
    try:
        protocol = cast(_Proto, await endpoint.connect(factory))
    except (ConnectError, DNSLookupError) as e:
        lost_error = getattr(factory.protocol_class, "lost_error", NetprotoError)
        raise lost_error(f"cannot connect to {where}: {e}") from e
    try:
        return await set_up(protocol)
    except BaseException:
        protocol.lose()
        await protocol.when_closed()
        raise

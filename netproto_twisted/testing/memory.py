"""In-memory client/server pairs for trial suites: no sockets, no real time.

A client protocol and a server protocol are joined by the transports of
:mod:`twisted.test.iosim`: what one writes, the other receives when the
test *pumps*, and every timer runs on a
:class:`~twisted.internet.testing.MemoryReactorClock` that moves only when
the test advances it.  A test is then deterministic and fast, and a
``SynchronousTestCase`` can drive a whole session::

    from twisted.internet.testing import MemoryReactorClock
    from twisted.trial.unittest import SynchronousTestCase
    from netproto_twisted.testing import MemoryEndpoint

    class MyClientTests(SynchronousTestCase):
        def test_hello(self):
            clock = MemoryReactorClock()
            endpoint = MemoryEndpoint(MyServerFactory(clock), clock)
            d = my_client.connect_and_greet(clock, endpoint=endpoint)
            self.assertEqual(endpoint.result_of(d), "hello")

* :func:`connected_pair` joins a server factory's protocol and a client
  (a protocol or a factory) and returns a :class:`Pair` with
  :meth:`~Pair.pump`, :meth:`~Pair.flush` and :meth:`~Pair.advance`;
* :class:`MemoryEndpoint` is an
  :class:`~twisted.internet.interfaces.IStreamClientEndpoint` for client
  APIs that take an ``endpoint`` (as
  :func:`~netproto_twisted.smtp.connect_smtp` does): each connection it
  makes is a :class:`Pair`, and :meth:`~MemoryEndpoint.result_of` pumps
  until a Deferred has fired.

The peers see loopback addresses (``127.0.0.1``) unless told otherwise, so
servers treat them as local, as they would a test over a loopback socket.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IAddress,
    IProtocol,
    IProtocolFactory,
    IStreamClientEndpoint,
)
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.test import iosim
from zope.interface import implementer

__all__ = [
    "CLIENT_ADDRESS",
    "SERVER_ADDRESS",
    "MemoryEndpoint",
    "NotSettled",
    "Pair",
    "connected_pair",
]

_T = TypeVar("_T")

#: The client's address as the server sees it (loopback).
CLIENT_ADDRESS = IPv4Address("TCP", "127.0.0.1", 49152)
#: The server's address as the client sees it (loopback).
SERVER_ADDRESS = IPv4Address("TCP", "127.0.0.1", 10025)
#: How many rounds :meth:`Pair.flush` runs at most: a pair still busy after
#: that is looping (each side answering the other for ever).
MAX_ROUNDS = 10_000


class NotSettled(AssertionError):
    """The Deferred given to :meth:`MemoryEndpoint.result_of` had not fired once all was quiet."""


@dataclass
class Pair:
    """A client and a server protocol connected in memory, and the clock they share."""

    #: The client side's protocol.
    client: Any
    #: The server side's protocol.
    server: Any
    #: The clock both sides' timers run on.
    clock: MemoryReactorClock
    #: The :class:`twisted.test.iosim.IOPump` between them.
    io: iosim.IOPump = field(repr=False)

    @property
    def client_transport(self) -> iosim.FakeTransport:
        """The client's transport (``.disconnecting``, ``.producer``...)."""
        transport: iosim.FakeTransport = self.io.clientIO
        return transport

    @property
    def server_transport(self) -> iosim.FakeTransport:
        """The server's transport."""
        transport: iosim.FakeTransport = self.io.serverIO
        return transport

    @property
    def disconnected(self) -> bool:
        """Whether both sides have been told the connection is closed."""
        return bool(self.io.clientIO.disconnected and self.io.serverIO.disconnected)

    def pump(self) -> bool:
        """Run the timers that are due, then deliver what each side wrote once.

        Returns whether anything was delivered (or a close reported).
        """
        return bool(self.io.pump(advanceClock=True))

    def flush(self) -> bool:
        """Pump until neither side has anything to deliver; return whether anything moved.

        :raises AssertionError: after :data:`MAX_ROUNDS` busy rounds.
        """
        moved = False
        for _ in range(MAX_ROUNDS):
            if not self.pump():
                return moved
            moved = True
        raise AssertionError(f"still busy after {MAX_ROUNDS} rounds: the peers never go quiet")

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds`` (timers fire), then :meth:`flush`."""
        self.clock.advance(seconds)
        self.flush()

    def close(self) -> None:
        """Close the connection from the client's side and deliver the close to both."""
        self.io.clientIO.loseConnection()
        self.flush()


def _client_protocol(client: Any, address: IAddress) -> Any:
    if IProtocolFactory.providedBy(client):
        protocol = client.buildProtocol(address)
        if protocol is None:
            raise ValueError(f"{client!r} refused the connection (buildProtocol gave None)")
        return protocol
    if IProtocol.providedBy(client):
        return client
    raise TypeError(f"a client protocol or protocol factory, not {type(client).__name__}")


def connected_pair(
    server_factory: IProtocolFactory,
    client: IProtocolFactory | IProtocol,
    *,
    clock: MemoryReactorClock | None = None,
    client_address: IAddress = CLIENT_ADDRESS,
    server_address: IAddress = SERVER_ADDRESS,
    greet: bool = True,
) -> Pair:
    """Connect ``client`` to a protocol of ``server_factory`` in memory; return the :class:`Pair`.

    :param server_factory: builds the server's protocol (``buildProtocol``
        gets ``client_address``).
    :param client: the client's protocol, or a factory to build it.
    :param clock: the clock both sides' timers use (give the same one the
        factories were built with); a new one if ``None``.
    :param greet: flush once before returning, so that the greeting (and
        whatever follows it without the test's help) has been delivered.
    :raises ValueError: if the server factory refuses the connection.
    """
    clock = MemoryReactorClock() if clock is None else clock
    server = server_factory.buildProtocol(client_address)
    if server is None:
        raise ValueError(f"{server_factory!r} refused the connection (buildProtocol gave None)")
    client_protocol = _client_protocol(client, server_address)
    server_transport = iosim.FakeTransport(
        server, isServer=True, hostAddress=server_address, peerAddress=client_address
    )
    client_transport = iosim.FakeTransport(
        client_protocol, isServer=False, hostAddress=client_address, peerAddress=server_address
    )
    io = iosim.connect(
        server, server_transport, client_protocol, client_transport, greet=False, clock=clock
    )
    pair = Pair(client_protocol, server, clock, io)
    if greet:
        pair.flush()
    return pair


@implementer(IStreamClientEndpoint)
class MemoryEndpoint:
    """A client endpoint whose every connection reaches ``server_factory`` in memory.

    :ivar pairs: one :class:`Pair` per connection made, oldest first.
    """

    def __init__(
        self,
        server_factory: IProtocolFactory,
        clock: MemoryReactorClock | None = None,
        *,
        client_address: IAddress = CLIENT_ADDRESS,
        server_address: IAddress = SERVER_ADDRESS,
    ) -> None:
        self.server_factory = server_factory
        self.clock = MemoryReactorClock() if clock is None else clock
        self.client_address = client_address
        self.server_address = server_address
        self.pairs: list[Pair] = []

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        """Connect a protocol of ``protocolFactory``; fire with it at once.

        Nothing moves until the test pumps (:meth:`flush`, :meth:`result_of`).
        """
        pair = connected_pair(
            self.server_factory,
            protocolFactory,
            clock=self.clock,
            client_address=self.client_address,
            server_address=self.server_address,
            greet=False,
        )
        self.pairs.append(pair)
        return succeed(pair.client)

    @property
    def pair(self) -> Pair:
        """The latest connection's :class:`Pair`."""
        if not self.pairs:
            raise LookupError("no connection has been made through this endpoint")
        return self.pairs[-1]

    def _live(self) -> Iterator[Pair]:
        return (p for p in list(self.pairs) if not p.disconnected)

    def flush(self) -> bool:
        """Pump every connection until all are quiet; return whether anything moved."""
        moved = False
        for _ in range(MAX_ROUNDS):
            round_moved = False
            for pair in self._live():
                round_moved = pair.pump() or round_moved
            # Timers due now run even when no connection is open yet.
            self.clock.advance(0)
            if not round_moved:
                return moved
            moved = True
        raise AssertionError(f"still busy after {MAX_ROUNDS} rounds: the peers never go quiet")

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds`` (timers fire), then :meth:`flush`."""
        self.clock.advance(seconds)
        self.flush()

    def result_of(self, d: Deferred[_T]) -> _T:
        """Pump until ``d`` has fired; return its result, or raise its failure.

        The result is taken from ``d`` (its callbacks get ``None`` after).

        :raises NotSettled: if ``d`` has not fired once everything is quiet
            (it waits for a timer: :meth:`advance` the clock first, or for
            something that never comes).
        """
        outcome: list[object] = []

        def keep(result: object) -> None:
            outcome.append(result)

        d.addBoth(keep)
        if not outcome:
            self.flush()
        if not outcome:
            raise NotSettled(f"{d!r} has not fired and nothing is left to deliver")
        result = outcome[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result  # type: ignore[return-value]

"""Tests for netproto_twisted.core.oneshot: a bare listening socket that adopts one connection."""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.trial import unittest

from netproto_twisted.core.oneshot import OneShotListener, bind_address, listen_once

reactor: Any = _reactor


class _Server(Protocol):
    def __init__(self, made: Deferred[_Server]) -> None:
        self.made = made
        self.received = b""

    def connectionMade(self) -> None:
        self.transport.write(b"hello")
        self.made.callback(self)

    def dataReceived(self, data: bytes) -> None:
        self.received += data


class _Picky(Factory):
    """Refuses the first ``refuse`` connections (as a stranger would be), takes the next."""

    noisy = False

    def __init__(self, refuse: int = 0) -> None:
        self.refuse = refuse
        self.seen: list[IAddress] = []
        self.made: Deferred[_Server] = Deferred()

    def buildProtocol(self, addr: IAddress) -> _Server | None:  # type: ignore[override]
        self.seen.append(addr)
        if self.refuse:
            self.refuse -= 1
            return None
        return _Server(self.made)


def _connect(port: int) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    return client


def _read_or_eof(sock: socket.socket) -> bytes:
    try:
        return sock.recv(100)
    except ConnectionResetError:
        return b""


class OneShotTests(unittest.TestCase):
    def test_adopts_one_connection_and_closes(self) -> None:
        """The first connection taken is an ordinary TCP transport; the port closes then."""
        factory = _Picky()
        listener = listen_once(reactor, 0, factory, interface="127.0.0.1")
        self.addCleanup(listener.stopListening)
        self.assertIsInstance(listener, OneShotListener)
        port = listener.getHost().port
        self.assertGreater(port, 0)
        client = _connect(port)
        self.addCleanup(client.close)

        def made(server: _Server) -> Deferred[None]:
            return deferLater(reactor, 0.05, check, server)

        def check(server: _Server) -> None:
            self.assertEqual(client.recv(5), b"hello")
            self.assertEqual(server.transport.getPeer().host, "127.0.0.1")
            self.assertEqual(server.transport.getPeer().port, client.getsockname()[1])
            self.assertEqual(listener.fileno(), -1)
            with self.assertRaises(ConnectionRefusedError):
                _connect(port)
            server.transport.loseConnection()

        return factory.made.addCallback(made)

    def test_refused_connection_is_closed_and_listener_waits(self) -> None:
        """A connection the factory refuses is closed; the next one is still accepted."""
        factory = _Picky(refuse=1)
        listener = listen_once(reactor, 0, factory, interface="127.0.0.1")
        self.addCleanup(listener.stopListening)
        port = listener.getHost().port
        stranger = _connect(port)
        self.addCleanup(stranger.close)

        def second(_: object) -> Deferred[_Server]:
            self.assertEqual(_read_or_eof(stranger), b"")  # closed by the listener
            self.assertEqual(len(factory.seen), 1)
            assert isinstance(listener, OneShotListener)
            self.assertEqual(listener.refused, 1)
            self.assertNotEqual(listener.fileno(), -1)
            client = _connect(port)
            self.addCleanup(client.close)

            def made(server: _Server) -> Deferred[None]:
                return deferLater(reactor, 0.05, check, server)

            def check(server: _Server) -> None:
                self.assertEqual(client.recv(5), b"hello")
                server.transport.loseConnection()

            return factory.made.addCallback(made)

        return deferLater(reactor, 0.05, lambda: None).addCallback(second)

    def test_stop_listening_is_idempotent_and_frees_port(self) -> None:
        """stopListening closes the socket; a second call does nothing; the port is free."""
        listener = listen_once(reactor, 0, _Picky(), interface="127.0.0.1")
        port = listener.getHost().port
        listener.stopListening()
        listener.stopListening()
        with self.assertRaises(ConnectionRefusedError):
            _connect(port)
        again = listen_once(reactor, port, _Picky(), interface="127.0.0.1")
        again.stopListening()

    def test_busy_port(self) -> None:
        """A port in use raises CannotListenError (as listenTCP does)."""
        listener = listen_once(reactor, 0, _Picky(), interface="127.0.0.1")
        self.addCleanup(listener.stopListening)
        with self.assertRaises(CannotListenError):
            listen_once(reactor, listener.getHost().port, _Picky(), interface="127.0.0.1")

    def test_ipv6(self) -> None:
        """An IPv6 interface gives an IPv6 listener."""
        if not socket.has_ipv6:
            raise unittest.SkipTest("no IPv6")
        try:
            listener = listen_once(reactor, 0, _Picky(), interface="::1")
        except CannotListenError as e:
            raise unittest.SkipTest(f"no ::1 here: {e}") from e
        self.addCleanup(listener.stopListening)
        self.assertEqual(listener.getHost().type, "TCP")
        self.assertEqual(listener.getHost().host, "::1")

    def test_fallback_without_adoption(self) -> None:
        """A reactor without IReactorSocket/IReactorFDSet gets a listenTCP port."""
        calls: list[tuple[int, object, int, str]] = []

        class TCPOnly:
            def listenTCP(self, port: int, factory: object, backlog: int, interface: str) -> str:
                calls.append((port, factory, backlog, interface))
                return "port"

        factory = _Picky()
        self.assertEqual(listen_once(TCPOnly(), 2121, factory, interface="127.0.0.1"), "port")
        self.assertEqual(calls, [(2121, factory, 1, "127.0.0.1")])




class _Broken(Factory):
    """A factory whose protocol cannot be built; it is told so."""

    noisy = False

    def __init__(self) -> None:
        self.told: Deferred[list[Any]] = Deferred()

    def buildProtocol(self, addr: IAddress) -> Protocol:
        raise RuntimeError("no protocol today")

    def adoption_failed(self, failure: Any) -> None:
        self.told.callback([failure])  # a list: a Failure itself would errback


class AdoptionFailureTests(unittest.TestCase):
    def test_factory_told_and_listener_closed(self) -> None:
        """An error while taking a connection is logged, closes the listener, tells the factory."""
        factory = _Broken()
        listener = listen_once(reactor, 0, factory, interface="127.0.0.1")
        self.addCleanup(listener.stopListening)
        client = _connect(listener.getHost().port)
        self.addCleanup(client.close)

        def told(failures: list[Any]) -> None:
            [failure] = failures
            self.assertTrue(failure.check(RuntimeError))
            self.assertEqual(listener.fileno(), -1)
            self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

        return factory.told.addCallback(told)


class BindAddressTests(unittest.SynchronousTestCase):
    def test_plain(self) -> None:
        self.assertEqual(bind_address("127.0.0.1", 21), ("127.0.0.1", 21))
        self.assertEqual(bind_address("::1", 0), ("::1", 0))

    def test_zone_kept(self) -> None:
        """A link-local address's zone becomes the scope id (``(host, port)`` would lose it)."""
        self.assertEqual(
            bind_address("fe80::1%lo", 2121), ("fe80::1", 2121, 0, socket.if_nametoindex("lo"))
        )

    def test_unknown_zone(self) -> None:
        with self.assertRaises(CannotListenError):
            bind_address("fe80::1%no-such-interface", 0)
        with self.assertRaises(CannotListenError):
            listen_once(reactor, 0, _Picky(), interface="fe80::1%no-such-interface")

"""Datagram handlers: request = (data, socket_like), policy drops, the pending bound."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from netproto_twisted.core.access import AccessPolicy
from netproto_twisted.sockserv.builtins import DaytimeHandler, EchoHandler
from netproto_twisted.sockserv.handlers import is_reactor_handler
from netproto_twisted.sockserv.server import HandlerFactory
from netproto_twisted.sockserv.udp import DatagramSocket, HandlerDatagramProtocol
from tests.sockserv import sample_handlers
from tests.sockserv.test_daemon import _ipv6_available
from tests.sockserv.test_threaded import _start


class _FakeUDPTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, tuple[str, int]]] = []

    def write(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append((data, addr))

    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", "127.0.0.1", 7)


class _Pool:
    """Runs work at once, or queues it when ``hold`` is set."""

    def __init__(self, hold: bool = False) -> None:
        self.hold = hold
        self.queued: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def callInThread(self, f: Callable[..., Any], *args: Any) -> None:
        if self.hold:
            self.queued.append((f, args))
        else:
            f(*args)


class _Reactor:
    def callFromThread(self, f: Callable[..., Any], *args: Any) -> None:
        f(*args)

    def seconds(self) -> float:
        return 1_795_244_340.0  # Saturday, November 21, 2026 06:59:00 UTC


def _protocol(
    handler: type, policy: AccessPolicy | None = None, pool: _Pool | None = None, **kw: Any
) -> tuple[HandlerDatagramProtocol, _FakeUDPTransport]:
    factory = HandlerFactory(handler, _Reactor(), pool or _Pool())  # type: ignore[arg-type]
    proto = HandlerDatagramProtocol(factory, policy, **kw)
    transport = _FakeUDPTransport()
    proto.makeConnection(transport)  # type: ignore[no-untyped-call]
    return proto, transport


class DatagramUnitTests(SynchronousTestCase):
    """HandlerDatagramProtocol on a fake port."""

    def test_async_echo(self) -> None:
        self.assertTrue(is_reactor_handler(EchoHandler))
        proto, transport = _protocol(EchoHandler)
        proto.datagramReceived(b"ping", ("127.0.0.1", 5000))
        self.assertEqual(transport.sent, [(b"ping", ("127.0.0.1", 5000))])

    def test_daytime_uses_the_reactor_clock(self) -> None:
        proto, transport = _protocol(DaytimeHandler)
        proto.datagramReceived(b"", ("127.0.0.1", 5000))
        self.assertEqual(
            transport.sent,
            [(b"Saturday, November 21, 2026 06:59:00-UTC\r\n", ("127.0.0.1", 5000))],
        )

    def test_threaded_datagram_request_handler(self) -> None:
        proto, transport = _protocol(sample_handlers.UpperDatagram)
        proto.datagramReceived(b"shout", ("127.0.0.1", 5000))
        self.assertEqual(transport.sent, [(b"SHOUT", ("127.0.0.1", 5000))])

    def test_async_datagram_request_handler(self) -> None:
        proto, transport = _protocol(sample_handlers.AsyncUpperDatagram)
        proto.datagramReceived(b"quiet", ("127.0.0.1", 5000))
        self.assertEqual(transport.sent, [(b"QUIET", ("127.0.0.1", 5000))])

    def test_denied_hosts_dropped(self) -> None:
        policy = AccessPolicy(deny=["192.0.2.0/24"])
        proto, transport = _protocol(EchoHandler, policy)
        proto.datagramReceived(b"nope", ("192.0.2.9", 5000))
        proto.datagramReceived(b"yes", ("127.0.0.1", 5000))
        self.assertEqual(transport.sent, [(b"yes", ("127.0.0.1", 5000))])

    def test_pending_bound_drops_excess(self) -> None:
        pool = _Pool(hold=True)
        proto, transport = _protocol(sample_handlers.UpperDatagram, pool=pool, max_pending=3)
        for i in range(5):
            proto.datagramReceived(b"d%d" % i, ("127.0.0.1", 5000))
        self.assertEqual(len(pool.queued), 3)
        for f, args in pool.queued:
            f(*args)
        self.assertEqual([d for d, _ in transport.sent], [b"D0", b"D1", b"D2"])
        proto.datagramReceived(b"d5", ("127.0.0.1", 5000))
        self.assertEqual(len(pool.queued), 4)

    def test_handler_exception_logged(self) -> None:
        class Bad(sample_handlers.UpperDatagram):
            def handle(self) -> None:
                raise ZeroDivisionError("udp boom")

        proto, transport = _protocol(Bad)
        proto.datagramReceived(b"x", ("127.0.0.1", 5000))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        # As in socketserver, finish() still runs: DatagramRequestHandler sends its
        # (empty) wfile back.
        self.assertEqual(transport.sent, [(b"", ("127.0.0.1", 5000))])

    def test_socket_like(self) -> None:
        transport = _FakeUDPTransport()
        sock = DatagramSocket(_Reactor(), transport, threaded=True)
        self.assertEqual(sock.sendto(b"a", ("127.0.0.1", 1)), 1)
        self.assertEqual(sock.sendto(b"b", 0, ("127.0.0.1", 2, 0, 0)), 1)
        self.assertEqual(transport.sent, [(b"a", ("127.0.0.1", 1)), (b"b", ("127.0.0.1", 2))])
        self.assertEqual(sock.getsockname(), ("127.0.0.1", 7))
        self.assertRaises(OSError, sock.fileno)


class DatagramLoopbackTests(TestCase):
    """A threaded DatagramRequestHandler on a real IPv6 UDP port."""

    timeout = 20

    async def test_ipv6_threaded(self) -> None:
        if not _ipv6_available():
            raise SkipTest("no IPv6 loopback")
        _, addrs = await _start(self, sample_handlers.UpperDatagram, ["udp:0:interface=::1"])
        port = int(addrs[0][1].rsplit(":", 1)[1])

        def client() -> tuple[bytes, Any]:
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
                s.settimeout(10)
                s.sendto(b"over ipv6", ("::1", port))
                return s.recvfrom(100)

        data, addr = await deferToThread(client)
        self.assertEqual(data, b"OVER IPV6")
        self.assertEqual(addr[:2], ("::1", port))

"""Tests for netproto_twisted.core.service: listening, reporting, stopping."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.service import (
    DEFAULT_BACKLOG,
    EndpointsService,
    describe_address,
    endpoint_kind,
    fail,
    parse_udp_endpoint,
    with_backlog,
)
from netproto_twisted.core.tls import ensure_dev_certificate


class _Closer(Factory):
    protocol = Protocol

    def __init__(self) -> None:
        self.closed_with: list[float] = []

    def close_all(self, timeout: float) -> defer.Deferred[None]:
        self.closed_with.append(timeout)
        return defer.succeed(None)


class ParsingTests(SynchronousTestCase):
    def test_kinds(self) -> None:
        self.assertEqual(endpoint_kind("tcp:25"), "tcp")
        self.assertEqual(endpoint_kind("TCP6:25"), "tcp6")
        self.assertEqual(endpoint_kind("unix:/tmp/x"), "unix")
        with self.assertRaises(ConfigError) as cm:
            endpoint_kind("sctp:25")
        self.assertIn("unsupported endpoint type 'sctp'", str(cm.exception))

    def test_udp(self) -> None:
        self.assertEqual(parse_udp_endpoint("udp:2007"), (2007, ""))
        self.assertEqual(parse_udp_endpoint("udp:7:interface=127.0.0.1"), (7, "127.0.0.1"))
        self.assertEqual(parse_udp_endpoint("udp:7:interface=\\:\\:1"), (7, "::1"))
        self.assertEqual(parse_udp_endpoint("udp:7:interface=::1"), (7, "::1"))
        for bad in ("udp:", "udp:x", "udp:70000", "udp:7:iface=1.2.3.4"):
            with self.assertRaises(ConfigError):
                parse_udp_endpoint(bad)

    def test_describe(self) -> None:
        from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

        self.assertEqual(describe_address(IPv4Address("TCP", "127.0.0.1", 25)), "127.0.0.1:25")
        self.assertEqual(describe_address(IPv6Address("TCP", "::1", 25)), "[::1]:25")
        self.assertEqual(describe_address(UNIXAddress(b"/tmp/s")), "/tmp/s")

    def test_fail_is_one_line_exit(self) -> None:
        with self.assertRaises(SystemExit) as cm:
            fail("netproto-x", ConfigError("listen", "bad"))
        self.assertEqual(str(cm.exception.code), "netproto-x: listen: bad")

    def test_udp_without_datagram_protocol(self) -> None:
        with self.assertRaises(ConfigError) as cm:
            EndpointsService("echo", reactor, ["udp:0"], Factory.forProtocol(Protocol))
        self.assertIn("does not serve UDP", str(cm.exception))


class ListeningTests(TestCase):
    @defer.inlineCallbacks
    def test_listens_reports_and_closes(self) -> None:
        factory = _Closer()
        sock_path = str(Path(tempfile.mkdtemp()) / "s.sock")
        svc = EndpointsService(
            "demo",
            reactor,
            ["tcp:0:interface=127.0.0.1", f"unix:{sock_path}", "udp:0:interface=127.0.0.1"],
            datagram=DatagramProtocol(),
            guard=factory,
            close_timeout=2.5,
        )
        svc.startService()
        addresses = yield svc.when_listening()
        kinds = [k for k, _ in addresses]
        self.assertEqual(kinds, ["tcp", "unix", "udp"])
        tcp_port = int(addresses[0][1].rsplit(":", 1)[1])
        # The TCP port really accepts.
        s = socket.create_connection(("127.0.0.1", tcp_port), timeout=5)
        s.close()
        self.assertEqual(addresses[1][1], sock_path)
        self.assertEqual([text for text, _ in svc.ports], svc.endpoints)
        self.assertEqual(svc.ports[0][1].getHost().port, tcp_port)
        yield svc.stopService()
        self.assertEqual(svc.ports, [])
        self.assertEqual(factory.closed_with, [2.5])
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", tcp_port), timeout=5).close()

    @defer.inlineCallbacks
    def test_port_in_use_fails_and_releases_others(self) -> None:
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        self.addCleanup(busy.close)
        port = busy.getsockname()[1]
        svc = EndpointsService(
            "demo",
            reactor,
            ["tcp:0:interface=127.0.0.1", f"tcp:{port}:interface=127.0.0.1"],
            Factory.forProtocol(Protocol),
        )
        svc.startService()
        with self.assertRaises(ConfigError) as cm:
            yield svc.when_listening()
        self.assertIn(f"tcp:{port}", str(cm.exception))
        self.assertIn("demo cannot listen", str(cm.exception))
        # The first port was released again.
        self.assertEqual(svc._ports, [])
        yield svc.stopService()


class BacklogTests(TestCase):
    """Every stream endpoint listens with the configured backlog (Twisted's own is 50)."""

    def test_with_backlog(self) -> None:
        self.assertEqual(with_backlog("tcp:25"), f"tcp:25:backlog={DEFAULT_BACKLOG}")
        self.assertEqual(with_backlog("unix:/s", 7), "unix:/s:backlog=7")
        # A string that names its own backlog keeps it; UDP has none.
        self.assertEqual(with_backlog("tcp:25:backlog=9", 7), "tcp:25:backlog=9")
        self.assertEqual(with_backlog("tcp:25: backlog = 9", 7), "tcp:25: backlog = 9")
        self.assertEqual(with_backlog("udp:53", 7), "udp:53")
        self.assertEqual(DEFAULT_BACKLOG, 1024)
        self.assertRaises(ConfigError, with_backlog, "tcp:25", 0)

    @defer.inlineCallbacks
    def test_every_stream_port_gets_the_backlog(self) -> Any:
        tmp = Path(tempfile.mkdtemp())
        cert, key = ensure_dev_certificate(tmp)
        fake = MemoryReactor()
        svc = EndpointsService(
            "demo",
            fake,
            [
                "tcp:2525:interface=127.0.0.1",
                "tcp6:2526:interface=\\:\\:1",
                f"ssl:2465:interface=127.0.0.1:privateKey={key}:certKey={cert}",
                f"unix:{tmp / 's.sock'}",
                "tcp:2527:backlog=64",
            ],
            Factory(),
            backlog=4096,
        )
        svc.startService()
        yield svc.when_listening()
        self.assertEqual([row[2] for row in fake.tcpServers], [4096, 4096, 64])
        self.assertEqual([row[3] for row in fake.sslServers], [4096])
        self.assertEqual([row[2] for row in fake.unixServers], [4096])
        yield svc.stopService()

    @defer.inlineCallbacks
    def test_real_port_listens_with_default_backlog(self) -> Any:
        svc = EndpointsService("demo", reactor, ["tcp:0:interface=127.0.0.1"], Factory())
        svc.startService()
        yield svc.when_listening()
        [(_, port)] = svc.ports
        self.assertEqual(getattr(port, "backlog", None), DEFAULT_BACKLOG)
        yield svc.stopService()

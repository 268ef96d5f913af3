"""Tests for netproto_twisted.core.access: policy, guard, login delay, options."""

# trial's assertion methods are untyped.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Generator
from typing import Any, cast

import twisted.test
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer, protocol, ssl
from twisted.internet.address import HostnameAddress, IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHalfCloseableProtocol, IHandshakeListener
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import ILogObserver, Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.trial import unittest
from zope.interface import implementer

from netproto_twisted.core.access import (
    REASON_DENIED,
    REASON_SHUTTING_DOWN,
    REASON_TOO_MANY,
    REASON_TOO_MANY_FROM_HOST,
    AccessOptionsMixin,
    AccessPolicy,
    ConnectionGuard,
    DirectlyGuarded,
    GuardedProtocol,
    LoginDelay,
    access_policy_from_options,
    host_key,
    normalize_host,
    parse_network,
)
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import Limits, LimitsOptionsMixin
from netproto_twisted.core.lineproto import LineProtocol


class ParseNetworkTests(unittest.SynchronousTestCase):
    def test_networks(self) -> None:
        self.assertEqual(parse_network("10.0.0.0/8"), ipaddress.IPv4Network("10.0.0.0/8"))
        self.assertEqual(parse_network(" 2001:db8::/32 "), ipaddress.IPv6Network("2001:db8::/32"))

    def test_bare_addresses(self) -> None:
        self.assertEqual(parse_network("192.0.2.7"), ipaddress.IPv4Network("192.0.2.7/32"))
        self.assertEqual(parse_network("::1"), ipaddress.IPv6Network("::1/128"))

    def test_mapped_network_becomes_ipv4(self) -> None:
        self.assertEqual(parse_network("::ffff:10.0.0.0/104"), ipaddress.IPv4Network("10.0.0.0/8"))
        self.assertEqual(parse_network("::ffff:192.0.2.1"), ipaddress.IPv4Network("192.0.2.1/32"))

    def test_bad_prefix(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            parse_network("10.0.0.0/33")
        self.assertEqual(str(caught.exception), "10.0.0.0/33: not a network")
        self.assertEqual(caught.exception.key, "10.0.0.0/33")

    def test_garbage(self) -> None:
        for text in ("", "example.com", "10.0.0", "1.2.3.4/8/2", "::g"):
            with self.assertRaises(ConfigError) as caught:
                parse_network(text)
            self.assertEqual(caught.exception.reason, "not a network")

    def test_host_bits_set(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            parse_network("10.0.0.1/8")
        self.assertEqual(
            str(caught.exception), "10.0.0.1/8: host bits set (did you mean 10.0.0.0/8?)"
        )

    def test_policy_rejects_bad_network(self) -> None:
        with self.assertRaises(ConfigError):
            AccessPolicy(allow=["10.0.0.0/8", "nonsense"])
        with self.assertRaises(ConfigError):
            AccessPolicy(deny=[42])  # type: ignore[list-item]


class HostTests(unittest.SynchronousTestCase):
    def test_normalize(self) -> None:
        self.assertEqual(normalize_host("::ffff:192.0.2.1"), "192.0.2.1")
        self.assertEqual(normalize_host("[::1]"), "::1")
        self.assertEqual(normalize_host("2001:DB8::1"), "2001:db8::1")
        self.assertIsNone(normalize_host("/tmp/sock"))

    def test_host_key_groups_ipv6_by_64(self) -> None:
        self.assertEqual(host_key("2001:db8:1:2::5"), host_key("2001:db8:1:2:ffff::9"))
        self.assertNotEqual(host_key("2001:db8:1:2::5"), host_key("2001:db8:1:3::5"))
        self.assertEqual(host_key("2001:db8:1:2::5"), "2001:db8:1:2::/64")
        self.assertEqual(host_key("fe80::1%eth0"), "fe80::/64")

    def test_host_key_ipv4(self) -> None:
        self.assertEqual(host_key("192.0.2.1"), "192.0.2.1")
        self.assertEqual(host_key("::ffff:192.0.2.1"), "192.0.2.1")
        self.assertNotEqual(host_key("192.0.2.1"), host_key("192.0.2.2"))
        self.assertEqual(host_key("::1"), "::1")


def reference_host_key(host: str) -> str:
    """host_key as ``ipaddress`` alone computes it (the model of the fast paths)."""
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        if address.is_loopback:
            return "::1"
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


class HostKeyPropertyTests(unittest.SynchronousTestCase):
    """The C fast paths of host_key and the policy agree with ``ipaddress``."""

    @given(st.integers(0, 2**32 - 1))
    def test_ipv4(self, value: int) -> None:
        address = ipaddress.IPv4Address(value)
        for text in (str(address), f"::ffff:{address}", str(ipaddress.IPv6Address(value))):
            self.assertEqual(host_key(text), reference_host_key(text), text)
        self.assertEqual(normalize_host(str(address)), str(address))

    @given(
        st.one_of(
            st.integers(0, 2**128 - 1),
            st.integers(0, 2**64 - 1).map(lambda v: v << 64),
            st.integers(0, 2**16 - 1).map(lambda v: v << 112),
            st.integers(0, 2**48 - 1),
        )
    )
    def test_ipv6(self, value: int) -> None:
        address = ipaddress.IPv6Address(value)
        for text in (str(address), address.exploded, address.exploded.upper()):
            self.assertEqual(host_key(text), reference_host_key(text), text)

    def test_odd_texts(self) -> None:
        for text in (
            "1.2.3", "01.2.3.4", "1.2.3.4 ", "1.2.3.4\x00", "1.2.3.4%x", "é", "[::1]",
            " ::1", "fe80::1%eth0", "::ffff:01.2.3.4", "1::2::3", "", ":", "/tmp/sock",
        ):
            self.assertEqual(host_key(text), reference_host_key(text), repr(text))

    @given(st.text(alphabet="0123456789abcdefABCDEF:.% []", max_size=45))
    def test_any_text(self, text: str) -> None:
        self.assertEqual(host_key(text), reference_host_key(text))

    @given(st.integers(0, 2**32 - 1), st.integers(0, 32), st.integers(0, 2**32 - 1))
    def test_policy_ipv4_fast_path(self, base: int, prefix: int, host: int) -> None:
        network = ipaddress.IPv4Network((base, prefix), strict=False)
        address = ipaddress.IPv4Address(host)
        self.assertEqual(AccessPolicy(allow=[network]).permits(str(address)), address in network)


class AccessPolicyTests(unittest.SynchronousTestCase):
    def test_empty_permits_everyone(self) -> None:
        policy = AccessPolicy()
        self.assertFalse(policy.restricted)
        for host in ("127.0.0.1", "::1", "8.8.8.8", "not-an-ip"):
            self.assertTrue(policy.permits(host))

    def test_deny_only(self) -> None:
        policy = AccessPolicy(deny=["192.0.2.0/24"])
        self.assertFalse(policy.permits("192.0.2.9"))
        self.assertTrue(policy.permits("192.0.3.9"))
        self.assertTrue(policy.permits("::1"))
        self.assertTrue(policy.permits("not-an-ip"))

    def test_allow_restricts(self) -> None:
        policy = AccessPolicy(allow=["10.0.0.0/8", "2001:db8::/32"])
        self.assertTrue(policy.permits("10.1.2.3"))
        self.assertTrue(policy.permits("2001:db8::5"))
        self.assertFalse(policy.permits("11.0.0.1"))
        self.assertFalse(policy.permits("::1"))

    def test_deny_wins(self) -> None:
        policy = AccessPolicy(allow=["10.0.0.0/8"], deny=["10.9.0.0/16"])
        self.assertTrue(policy.permits("10.8.0.1"))
        self.assertFalse(policy.permits("10.9.0.1"))

    def test_mapped_addresses_are_ipv4(self) -> None:
        policy = AccessPolicy(allow=["10.0.0.0/8"], deny=["10.9.0.0/16"])
        self.assertTrue(policy.permits("::ffff:10.8.0.1"))
        self.assertFalse(policy.permits("::ffff:10.9.0.1"))
        self.assertFalse(policy.permits("::ffff:11.0.0.1"))

    def test_non_ip_fails_closed_with_allow_list(self) -> None:
        self.assertFalse(AccessPolicy(allow=["10.0.0.0/8"]).permits("/tmp/socket"))

    def test_accepts_network_objects(self) -> None:
        policy = AccessPolicy(allow=[ipaddress.IPv4Network("127.0.0.0/8")])
        self.assertTrue(policy.permits("127.0.0.1"))
        self.assertIn("127.0.0.0/8", repr(policy))

    def test_scoped_and_bracketed_ipv6(self) -> None:
        policy = AccessPolicy(deny=["fe80::/10"])
        self.assertFalse(policy.permits("fe80::1%eth0"))
        self.assertFalse(policy.permits("[fe80::1]"))

    @given(
        st.integers(0, 2**32 - 1),
        st.integers(0, 32),
        st.integers(0, 2**32 - 1),
    )
    def test_ipv4_matches_ipaddress(self, base: int, prefix: int, host: int) -> None:
        network = ipaddress.IPv4Network((base, prefix), strict=False)
        address = ipaddress.IPv4Address(host)
        inside = address in network
        deny = AccessPolicy(deny=[network])
        allow = AccessPolicy(allow=[network])
        for text in (str(address), f"::ffff:{address}"):
            self.assertEqual(deny.permits(text), not inside)
            self.assertEqual(allow.permits(text), inside)


class Recorder(protocol.Protocol):
    """A wrapped protocol that records what happens to it."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.made = False
        self.lost: Failure | None = None

    def connectionMade(self) -> None:
        self.made = True

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)
        assert self.transport is not None
        self.transport.write(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.lost = reason


class DirectRecorder(DirectlyGuarded, Recorder):
    """A Recorder that the guard counts without wrapping it."""


class CountingFactory(protocol.Factory):
    def __init__(self, kind: type[Recorder] = Recorder) -> None:
        self.kind = kind
        self.built: list[Recorder] = []

    def buildProtocol(self, addr: object) -> Recorder:
        p = self.kind()
        p.factory = self
        self.built.append(p)
        return p


def refusal(reason: str) -> bytes:
    return f"554 {reason}\r\n".encode()


class GuardTests(unittest.SynchronousTestCase):
    """The guard around a protocol it wraps (one that is not DirectlyGuarded)."""

    kind: type[Recorder] = Recorder

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.inner = CountingFactory(self.kind)

    def assert_connected(self, p: protocol.Protocol, transport: StringTransport) -> None:
        """*p* is the wrapper around the protocol built, which sees the wrapper as transport."""
        self.assertIsInstance(p, GuardedProtocol)
        assert isinstance(p, GuardedProtocol)
        self.assertIs(p.wrappedProtocol, self.inner.built[-1])
        self.assertIs(p.transport, transport)
        self.assertIs(self.inner.built[-1].transport, p)

    def guard(self, **kwargs: object) -> ConnectionGuard:
        kwargs.setdefault("refusal", refusal)
        return ConnectionGuard(self.inner, self.clock, **kwargs)  # type: ignore[arg-type]

    def connect(
        self, guard: ConnectionGuard, host: str = "192.0.2.1", port: int = 4000
    ) -> tuple[protocol.Protocol, StringTransport]:
        if ":" in host:
            addr: object = IPv6Address("TCP", host, port)
        else:
            addr = IPv4Address("TCP", host, port)
        p = guard.buildProtocol(addr)  # type: ignore[arg-type]
        assert p is not None
        transport = StringTransport(peerAddress=addr)
        p.makeConnection(transport)
        return p, transport

    def lose(self, p: protocol.Protocol) -> None:
        p.connectionLost(Failure(ConnectionDone()))

    def test_permitted_connection_is_counted(self) -> None:
        guard = self.guard()
        p, transport = self.connect(guard)
        self.assert_connected(p, transport)
        self.assertEqual(guard.protocols, {p: "192.0.2.1"})
        self.assertTrue(self.inner.built[0].made)
        p.dataReceived(b"hello")
        self.assertEqual(transport.value(), b"hello")
        self.assertEqual(guard.connection_count, 1)
        self.assertEqual(guard.connections_from("192.0.2.1"), 1)
        self.assertEqual(guard.connections_from("::ffff:192.0.2.1"), 1)
        self.lose(p)
        self.assertEqual(guard.connection_count, 0)
        self.assertEqual(guard.per_host_counts, {})
        self.assertIsNotNone(self.inner.built[0].lost)

    def test_denied_peer_gets_refusal_and_no_protocol(self) -> None:
        guard = self.guard(policy=AccessPolicy(deny=["192.0.2.0/24"]))
        p, transport = self.connect(guard, "192.0.2.5")
        self.assertEqual(transport.value(), refusal(REASON_DENIED))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.inner.built, [])
        self.assertEqual(guard.connection_count, 0)
        p.dataReceived(b"ignored")
        self.lose(p)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_denied_mapped_peer(self) -> None:
        guard = self.guard(policy=AccessPolicy(allow=["10.0.0.0/8"]))
        _p, transport = self.connect(guard, "::ffff:192.0.2.5")
        self.assertEqual(transport.value(), refusal(REASON_DENIED))
        _p2, transport2 = self.connect(guard, "::ffff:10.0.0.5")
        self.assertEqual(transport2.value(), b"")
        self.assertEqual(len(self.inner.built), 1)

    def test_refusal_without_message(self) -> None:
        guard = ConnectionGuard(self.inner, self.clock, policy=AccessPolicy(deny=["0.0.0.0/0"]))
        _p, transport = self.connect(guard)
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)

    def test_refused_peer_that_will_not_close_is_aborted(self) -> None:
        guard = self.guard(policy=AccessPolicy(deny=["192.0.2.0/24"]))
        p, transport = self.connect(guard)
        self.assertFalse(transport.disconnected)
        self.clock.advance(10)
        self.assertTrue(transport.disconnected)
        self.lose(p)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_total_limit(self) -> None:
        guard = self.guard(limits=Limits(max_connections=3))
        opened = [self.connect(guard, f"192.0.2.{i}")[0] for i in range(3)]
        _p, transport = self.connect(guard, "192.0.2.99")
        self.assertEqual(transport.value(), refusal(REASON_TOO_MANY))
        self.assertEqual(len(self.inner.built), 3)
        self.lose(opened[0])
        _p, transport = self.connect(guard, "192.0.2.99")
        self.assertEqual(transport.value(), b"")
        self.assertEqual(guard.connection_count, 3)

    def test_per_ip_limit(self) -> None:
        guard = self.guard(limits=Limits(max_connections_per_ip=2))
        first = self.connect(guard, "192.0.2.1")[0]
        self.connect(guard, "::ffff:192.0.2.1")
        _p, transport = self.connect(guard, "192.0.2.1")
        self.assertEqual(transport.value(), refusal(REASON_TOO_MANY_FROM_HOST))
        _p, other = self.connect(guard, "192.0.2.2")
        self.assertEqual(other.value(), b"")
        self.lose(first)
        _p, again = self.connect(guard, "192.0.2.1")
        self.assertEqual(again.value(), b"")

    def test_per_ip_limit_groups_ipv6_64(self) -> None:
        guard = self.guard(limits=Limits(max_connections_per_ip=1))
        self.connect(guard, "2001:db8::1")
        _p, transport = self.connect(guard, "2001:db8::2")
        self.assertEqual(transport.value(), refusal(REASON_TOO_MANY_FROM_HOST))
        _p, other = self.connect(guard, "2001:db8:0:1::1")
        self.assertEqual(other.value(), b"")

    def test_unix_peers_skip_policy_and_per_ip(self) -> None:
        guard = self.guard(
            policy=AccessPolicy(allow=["10.0.0.0/8"]),
            limits=Limits(max_connections=2, max_connections_per_ip=1),
        )
        for _ in range(2):
            p = guard.buildProtocol(UNIXAddress(None))
            assert p is not None
            p.makeConnection(StringTransport())
        self.assertEqual(guard.connection_count, 2)
        self.assertEqual(guard.per_host_counts, {})
        p = guard.buildProtocol(UNIXAddress(None))
        assert p is not None
        transport = StringTransport()
        p.makeConnection(transport)
        self.assertEqual(transport.value(), refusal(REASON_TOO_MANY))

    def test_wrapped_factory_refusing(self) -> None:
        class NoneFactory(protocol.Factory):
            def buildProtocol(self, addr: object) -> None:
                return None

        guard = ConnectionGuard(NoneFactory(), self.clock)
        self.assertIsNone(guard.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1)))
        self.assertEqual(guard.connection_count, 0)

    def test_counters_never_leak(self) -> None:
        guard = self.guard(limits=Limits(max_connections_per_ip=3))
        for i in range(10_000):
            host = f"10.{i % 7}.{i % 251}.{i % 13}" if i % 2 else f"2001:db8:{i % 97:x}::{i % 5:x}"
            p, _transport = self.connect(guard, host)
            if i % 3 == 0:
                p.transport.loseConnection()  # type: ignore[union-attr]
            self.lose(p)
        self.assertEqual(guard.per_host_counts, {})
        self.assertEqual(guard.connection_count, 0)
        self.assertEqual(guard.protocols, {})

    def test_double_connection_lost_does_not_go_negative(self) -> None:
        guard = self.guard()
        a = self.connect(guard)[0]
        b = self.connect(guard)[0]
        assert isinstance(a, GuardedProtocol)
        guard.unregisterProtocol(a)
        guard.unregisterProtocol(a)
        self.assertEqual(guard.connections_from("192.0.2.1"), 1)
        self.lose(b)
        self.assertEqual(guard.per_host_counts, {})

    def test_close_all(self) -> None:
        guard = self.guard()
        conns = [self.connect(guard, f"192.0.2.{i}") for i in range(3)]
        done = guard.close_all(timeout=5)
        fired: list[None] = []
        done.addCallback(fired.append)
        for _p, transport in conns:
            self.assertTrue(transport.disconnecting)
        _p, late = self.connect(guard, "192.0.2.50")
        self.assertEqual(late.value(), refusal(REASON_SHUTTING_DOWN))
        for p, _t in conns[:2]:
            self.lose(p)
        self.lose(_p)
        self.assertEqual(fired, [])
        self.lose(conns[2][0])
        self.assertEqual(fired, [None])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        # Accepting again afterwards.
        _p, after = self.connect(guard)
        self.assertEqual(after.value(), b"")

    def test_close_all_aborts_after_timeout(self) -> None:
        guard = self.guard()
        p, transport = self.connect(guard)
        done = guard.close_all(timeout=5)
        self.clock.advance(4.9)
        self.assertFalse(transport.disconnected)
        self.clock.advance(0.2)
        self.assertTrue(transport.disconnected)
        self.assertNoResult(done)
        self.lose(p)
        self.successResultOf(done)

    def test_close_all_when_idle(self) -> None:
        guard = self.guard()
        self.successResultOf(guard.close_all(1))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_idle_timeout(self) -> None:
        guard = self.guard(idle_timeout=60)
        p, transport = self.connect(guard)
        self.assertIsInstance(p, GuardedProtocol)
        self.clock.advance(50)
        p.dataReceived(b"x")
        self.clock.advance(50)
        self.assertFalse(transport.disconnecting)
        # Writes do not reset it; only received data does.
        self.inner.built[0].transport.write(b"out")  # type: ignore[union-attr]
        self.clock.advance(10.1)
        self.assertTrue(transport.disconnecting)
        self.lose(p)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_no_idle_timeout_by_default(self) -> None:
        guard = self.guard()
        p, _transport = self.connect(guard)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.lose(p)

    def test_timer_cancelled_on_close(self) -> None:
        guard = self.guard(idle_timeout=60)
        p, _transport = self.connect(guard)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.lose(p)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class DirectGuardTests(GuardTests):
    """Every GuardTests test again, for a DirectlyGuarded protocol (no wrapper); and its own."""

    kind = DirectRecorder

    def assert_connected(self, p: protocol.Protocol, transport: StringTransport) -> None:
        """*p* is the very protocol built, on the real transport."""
        self.assertNotIsInstance(p, GuardedProtocol)
        self.assertIs(p, self.inner.built[-1])
        self.assertIs(p.transport, transport)

    def test_double_connection_lost_does_not_go_negative(self) -> None:
        guard = self.guard()
        a = self.connect(guard)[0]
        b = self.connect(guard)[0]
        self.lose(a)
        self.lose(a)
        self.assertEqual(guard.connections_from("192.0.2.1"), 1)
        self.assertEqual(guard.connection_count, 1)
        self.lose(b)
        self.assertEqual(guard.per_host_counts, {})
        self.assertEqual(guard.protocols, {})

    def test_counted_from_make_connection_not_build(self) -> None:
        """A protocol built but never connected is not counted (nor leaked)."""
        guard = self.guard()
        p = guard.buildProtocol(IPv4Address("TCP", "192.0.2.1", 1))
        self.assertIs(p, self.inner.built[0])
        self.assertEqual(guard.connection_count, 0)
        assert p is not None
        p.makeConnection(StringTransport())
        self.assertEqual(guard.connection_count, 1)
        self.lose(p)
        self.assertEqual(guard.connection_count, 0)

    def test_limit_counts_unwrapped_connections(self) -> None:
        guard = self.guard(limits=Limits(max_connections=2, max_connections_per_ip=1))
        a, _ = self.connect(guard, "192.0.2.1")
        _b, tb = self.connect(guard, "192.0.2.1")
        self.assertEqual(tb.value(), refusal(REASON_TOO_MANY_FROM_HOST))
        self.connect(guard, "192.0.2.2")
        _c, tc = self.connect(guard, "192.0.2.3")
        self.assertEqual(tc.value(), refusal(REASON_TOO_MANY))
        self.assertEqual(guard.per_host_counts, {"192.0.2.1": 1, "192.0.2.2": 1})
        self.lose(a)
        _d, td = self.connect(guard, "192.0.2.1")
        self.assertEqual(td.value(), b"")

    def test_released_when_connection_made_raises(self) -> None:
        class Failing(DirectRecorder):
            def connectionMade(self) -> None:
                raise ValueError("boom")

        self.inner.kind = Failing
        guard = self.guard()
        p = guard.buildProtocol(IPv4Address("TCP", "192.0.2.1", 1))
        assert p is not None
        self.assertRaises(ValueError, p.makeConnection, StringTransport())
        # Still open (Twisted logs the error and keeps the socket): counted until lost.
        self.assertEqual(guard.connection_count, 1)
        self.lose(p)
        self.assertEqual(guard.connection_count, 0)
        self.assertEqual(guard.per_host_counts, {})
        self.lose(p)
        self.assertEqual(guard.connection_count, 0)

    def test_released_when_make_connection_raises(self) -> None:
        class Failing(DirectRecorder):
            def makeConnection(self, transport: Any) -> None:
                super().makeConnection(transport)
                raise ValueError("boom")

        self.inner.kind = Failing
        guard = self.guard()
        p, _ = self.connect_raising(guard)
        self.assertEqual(guard.connection_count, 1)
        self.lose(p)
        self.assertEqual(guard.connection_count, 0)

    def connect_raising(self, guard: ConnectionGuard) -> tuple[protocol.Protocol, StringTransport]:
        p = guard.buildProtocol(IPv4Address("TCP", "192.0.2.1", 1))
        assert p is not None
        transport = StringTransport()
        self.assertRaises(ValueError, p.makeConnection, transport)
        return p, transport

    def test_line_protocol_released_when_connection_made_raises(self) -> None:
        """A LineProtocol with an idle timeout and no clock: connectionMade raises."""

        class NoClock(LineProtocol):
            idle_timeout = 5.0

        guard = ConnectionGuard(protocol.Factory.forProtocol(NoClock), self.clock)
        p = guard.buildProtocol(IPv4Address("TCP", "192.0.2.1", 1))
        self.assertIsInstance(p, NoClock)
        assert p is not None
        self.assertRaises(RuntimeError, p.makeConnection, StringTransport())
        self.assertEqual(guard.connection_count, 1)
        self.lose(p)
        self.assertEqual(guard.connection_count, 0)

    def test_close_all_then_lost(self) -> None:
        guard = self.guard()
        p, transport = self.connect(guard)
        done = guard.close_all(timeout=5)
        self.assertTrue(transport.disconnecting)
        self.assertNoResult(done)
        self.lose(p)
        self.successResultOf(done)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_idle_timeout_wraps(self) -> None:
        """The idle timeout lives in the wrapper: a guard with one wraps every protocol."""
        guard = self.guard(idle_timeout=60)
        p, _transport = self.connect(guard)
        self.assertIsInstance(p, GuardedProtocol)
        built = self.inner.built[0]
        self.assertIs(built.transport, p)
        self.assertIsNone(built._guard)  # type: ignore[attr-defined]
        self.assertEqual(guard.connection_count, 1)
        self.lose(p)
        self.assertEqual(guard.connection_count, 0)
        self.assertIsNotNone(built.lost)

    def test_custom_wrapper_class_wraps(self) -> None:
        """A guard whose ``protocol`` is another wrapper class keeps wrapping."""

        class MyWrapper(GuardedProtocol):
            pass

        class MyGuard(ConnectionGuard):
            protocol = MyWrapper

        guard = MyGuard(self.inner, self.clock)
        p = guard.buildProtocol(IPv4Address("TCP", "192.0.2.1", 1))
        self.assertIsInstance(p, MyWrapper)

    def test_not_half_closeable(self) -> None:
        """Unwrapped, nothing claims half-close support: Twisted closes on the peer's EOF."""
        guard = self.guard()
        p, _ = self.connect(guard)
        self.assertFalse(IHalfCloseableProtocol.providedBy(p))
        self.assertFalse(IHalfCloseableProtocol.providedBy(LineProtocol()))


class EchoGuardLoopbackTests(unittest.TestCase):
    """The guard on real sockets: refusals reach a real client."""

    kind: type[Recorder] = Recorder

    def listen(self, interface: str, **kwargs: object) -> tuple[ConnectionGuard, int]:
        from twisted.internet import reactor

        guard = ConnectionGuard(
            CountingFactory(self.kind), reactor, refusal=refusal, **kwargs  # type: ignore[arg-type]
        )
        port = cast(Any, reactor).listenTCP(0, guard, interface=interface)
        self.addCleanup(port.stopListening)
        return guard, int(port.getHost().port)

    def client(self, family: int, host: str, port: int) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(5)
        self.addCleanup(sock.close)
        sock.connect((host, port))
        return sock

    @defer.inlineCallbacks
    def roundtrip(self, family: int, host: str) -> Generator[Any, Any, None]:
        from twisted.internet import threads

        guard, port = self.listen(host, limits=Limits(max_connections_per_ip=1))

        def drive() -> tuple[bytes, bytes]:
            first = self.client(family, host, port)
            first.sendall(b"ping")
            echoed = first.recv(100)
            second = self.client(family, host, port)
            refused = b""
            while chunk := second.recv(100):
                refused += chunk
            first.close()
            return echoed, refused

        echoed, refused = yield threads.deferToThread(drive)
        self.assertEqual(echoed, b"ping")
        self.assertEqual(refused, refusal(REASON_TOO_MANY_FROM_HOST))
        yield guard.close_all(5)
        self.assertEqual(guard.per_host_counts, {})

    def test_ipv4(self) -> defer.Deferred[None]:
        return self.roundtrip(socket.AF_INET, "127.0.0.1")

    def test_ipv6(self) -> defer.Deferred[None]:
        if not socket.has_ipv6:
            raise unittest.SkipTest("no IPv6")
        try:
            probe = socket.socket(socket.AF_INET6)
            probe.bind(("::1", 0))
            probe.close()
        except OSError as exc:
            raise unittest.SkipTest(f"cannot bind ::1: {exc}") from None
        return self.roundtrip(socket.AF_INET6, "::1")

    @defer.inlineCallbacks
    def test_closed_on_peer_eof(self) -> Generator[Any, Any, None]:
        """A protocol that is not half-closeable has the connection closed on the peer's EOF."""
        from twisted.internet import threads

        guard, port = self.listen("127.0.0.1")

        def drive() -> tuple[bytes, bytes]:
            sock = self.client(socket.AF_INET, "127.0.0.1", port)
            sock.sendall(b"ping")
            echoed = sock.recv(100)
            sock.shutdown(socket.SHUT_WR)
            return echoed, sock.recv(100)

        echoed, after = yield threads.deferToThread(drive)
        self.assertEqual((echoed, after), (b"ping", b""))
        yield guard.close_all(5)
        self.assertEqual(guard.connection_count, 0)


class DirectEchoGuardLoopbackTests(EchoGuardLoopbackTests):
    """The same on real sockets with a DirectlyGuarded protocol (no wrapper)."""

    kind = DirectRecorder


class LoginDelayTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = MemoryReactorClock()

    def test_exponential_and_capped(self) -> None:
        delay = LoginDelay(self.clock, base=1.0, maximum=30.0)
        got = [delay.failed("192.0.2.1") for _ in range(8)]
        self.assertEqual(got, [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0])
        self.assertEqual(delay.failures("192.0.2.1"), 8)
        self.assertEqual(delay.current_delay("192.0.2.1"), 30.0)
        self.assertEqual(delay.current_delay("192.0.2.2"), 0.0)
        for _ in range(200):
            delay.failed("192.0.2.3")
        self.assertEqual(delay.current_delay("192.0.2.3"), 30.0)

    def test_success_clears(self) -> None:
        delay = LoginDelay(self.clock)
        delay.failed("192.0.2.1")
        delay.failed("192.0.2.1")
        delay.succeeded("::ffff:192.0.2.1")
        self.assertEqual(delay.failures("192.0.2.1"), 0)
        self.assertEqual(delay.failed("192.0.2.1"), 1.0)

    def test_ipv6_grouped(self) -> None:
        delay = LoginDelay(self.clock)
        delay.failed("2001:db8::1")
        self.assertEqual(delay.failed("2001:db8::ffff"), 2.0)

    def test_delay_deferred(self) -> None:
        delay = LoginDelay(self.clock, base=2.0)
        self.successResultOf(delay.delay("192.0.2.1"))
        delay.failed("192.0.2.1")
        delay.failed("192.0.2.1")
        d = delay.delay("192.0.2.1")
        self.clock.advance(3.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.assertIsNone(self.successResultOf(d))

    def test_delay_cancel(self) -> None:
        delay = LoginDelay(self.clock)
        delay.failed("192.0.2.1")
        d = delay.delay("192.0.2.1")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_forget_after(self) -> None:
        delay = LoginDelay(self.clock, forget_after=100)
        delay.failed("192.0.2.1")
        self.clock.advance(50)
        delay.failed("192.0.2.2")
        self.clock.advance(50)
        self.assertEqual(delay.failures("192.0.2.1"), 0)
        self.assertEqual(delay.failures("192.0.2.2"), 1)
        self.assertEqual(len(delay), 1)
        self.clock.advance(50)
        self.assertEqual(len(delay), 0)

    def test_repeat_failure_refreshes_expiry(self) -> None:
        delay = LoginDelay(self.clock, forget_after=100)
        delay.failed("192.0.2.1")
        delay.failed("192.0.2.2")
        self.clock.advance(60)
        delay.failed("192.0.2.1")
        self.clock.advance(60)
        self.assertEqual(delay.failures("192.0.2.1"), 2)
        self.assertEqual(delay.failures("192.0.2.2"), 0)

    def test_memory_bounded(self) -> None:
        delay = LoginDelay(self.clock, max_hosts=1000)
        for i in range(20_000):
            delay.failed(str(ipaddress.IPv4Address(0x0A000000 + i)))
        self.assertEqual(len(delay), 1000)
        self.assertEqual(delay.failures("10.0.0.0"), 0)
        self.assertEqual(delay.failures(str(ipaddress.IPv4Address(0x0A000000 + 19_999))), 1)

    def test_should_disconnect(self) -> None:
        delay = LoginDelay(self.clock, disconnect_after=3)
        self.assertEqual(
            [delay.should_disconnect(n) for n in range(5)], [False, False, False, True, True]
        )

    def test_from_limits(self) -> None:
        limits = Limits(login_delay_base=0.5, login_delay_max=2.0, max_failed_logins=2)
        delay = LoginDelay.from_limits(self.clock, limits)
        self.assertEqual([delay.failed("::1") for _ in range(4)], [0.5, 1.0, 2.0, 2.0])
        self.assertTrue(delay.should_disconnect(2))

    def test_bad_arguments(self) -> None:
        with self.assertRaises(ConfigError):
            LoginDelay(self.clock, base=-1)
        with self.assertRaises(ConfigError):
            LoginDelay(self.clock, max_hosts=0)


class Options(LimitsOptionsMixin, AccessOptionsMixin):
    """A protocol's Options with both mixins."""

    optParameters = [["hostname", None, "localhost", "a protocol's own option"]]


class AccessOptionsTests(unittest.SynchronousTestCase):
    def test_repeatable(self) -> None:
        opts = Options()
        opts.parseOptions(["--allow", "10.0.0.0/8", "--allow", "::1", "--deny", "10.9.0.0/16"])
        policy = opts["access_policy"]
        self.assertIsInstance(policy, AccessPolicy)
        self.assertEqual(
            [str(n) for n in policy.allow], ["10.0.0.0/8", "::1/128"]
        )
        self.assertFalse(policy.permits("10.9.1.1"))
        self.assertTrue(policy.permits("10.8.1.1"))
        self.assertFalse(policy.permits("192.0.2.1"))
        self.assertEqual(opts["hostname"], "localhost")
        self.assertIsInstance(opts["limits"], Limits)

    def test_none_given(self) -> None:
        opts = Options()
        opts.parseOptions([])
        self.assertFalse(opts["access_policy"].restricted)

    def test_bad_network_is_usage_error(self) -> None:
        opts = Options()
        with self.assertRaises(usage.UsageError) as caught:
            opts.parseOptions(["--deny", "10.0.0.0/33"])
        self.assertEqual(str(caught.exception), "10.0.0.0/33: not a network")

    def test_help_mentions_flags(self) -> None:
        text = str(Options())
        for flag in ("--allow=", "--deny=", "--max-connections=", "--max-per-ip="):
            self.assertIn(flag, text)

    def test_from_plain_mapping(self) -> None:
        policy = access_policy_from_options({"allow": ["127.0.0.1"]})
        self.assertTrue(policy.permits("127.0.0.1"))
        self.assertFalse(policy.permits("127.0.0.2"))


@implementer(IHandshakeListener)
class TLSServerProtocol(protocol.Protocol):
    """Records handshake completion; upgrades to TLS on b"STARTTLS"."""

    def __init__(self, done: defer.Deferred[str], context: Any) -> None:
        self.done = done
        self.context = context
        self.mode = "implicit"

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        if data == b"STARTTLS":
            self.mode = "starttls"
            self.transport.write(b"GO")
            self.transport.startTLS(self.context)  # type: ignore[attr-defined]

    def handshakeCompleted(self) -> None:
        assert self.transport is not None
        self.transport.write(b"DONE")
        self.done.callback(self.mode)


class DirectTLSServerProtocol(DirectlyGuarded, TLSServerProtocol):
    """The same, counted by the guard without a wrapper."""


class TLSClientProtocol(protocol.Protocol):
    def __init__(self, starttls: bool) -> None:
        self.starttls = starttls
        self.got = b""
        self.finished: defer.Deferred[bytes] = defer.Deferred()

    def connectionMade(self) -> None:
        if self.starttls:
            assert self.transport is not None
            self.transport.write(b"STARTTLS")

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        self.got += data
        if self.got == b"GO":
            self.transport.startTLS(ssl.CertificateOptions())  # type: ignore[attr-defined]
        if self.got.endswith(b"DONE"):
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.finished.callback(self.got)


class GuardUnderTLSTests(unittest.TestCase):
    """The guard passes TLS handshake completion on, for implicit TLS and STARTTLS."""

    timeout = 10

    @defer.inlineCallbacks
    def run_tls(
        self, *, implicit: bool, direct: bool = False
    ) -> Generator[Any, Any, tuple[str, bytes]]:
        from twisted.internet import reactor

        pem = FilePath(twisted.test.__file__).sibling("server.pem").getContent()
        context = ssl.PrivateCertificate.loadPEM(pem).options()
        done: defer.Deferred[str] = defer.Deferred()
        kind = DirectTLSServerProtocol if direct else TLSServerProtocol
        servers: list[TLSServerProtocol] = []

        def build() -> TLSServerProtocol:
            servers.append(kind(done, context))
            return servers[-1]

        inner = protocol.Factory.forProtocol(build)
        guard = ConnectionGuard(inner, reactor)
        server: Any = TLSMemoryBIOFactory(context, False, guard) if implicit else guard
        port = cast(Any, reactor).listenTCP(0, server, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = TLSClientProtocol(starttls=not implicit)
        client_factory: Any = protocol.Factory.forProtocol(lambda: client)
        if implicit:
            client_factory = TLSMemoryBIOFactory(ssl.CertificateOptions(), True, client_factory)
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        endpoint.connect(client_factory)
        mode = yield done
        self.assertEqual(guard.connection_count, 1)
        self.assertEqual(isinstance(servers[0].transport, GuardedProtocol), not direct)
        got = yield client.finished
        yield guard.close_all(5)
        self.assertEqual(guard.connection_count, 0)
        return mode, got

    @defer.inlineCallbacks
    def test_implicit_tls(self) -> Generator[Any, Any, None]:
        mode, got = yield self.run_tls(implicit=True)
        self.assertEqual((mode, got), ("implicit", b"DONE"))

    @defer.inlineCallbacks
    def test_starttls(self) -> Generator[Any, Any, None]:
        mode, got = yield self.run_tls(implicit=False)
        self.assertEqual((mode, got), ("starttls", b"GODONE"))

    @defer.inlineCallbacks
    def test_implicit_tls_unwrapped(self) -> Generator[Any, Any, None]:
        mode, got = yield self.run_tls(implicit=True, direct=True)
        self.assertEqual((mode, got), ("implicit", b"DONE"))

    @defer.inlineCallbacks
    def test_starttls_unwrapped(self) -> Generator[Any, Any, None]:
        mode, got = yield self.run_tls(implicit=False, direct=True)
        self.assertEqual((mode, got), ("starttls", b"GODONE"))

    @defer.inlineCallbacks
    def test_tls_inside_the_guard(self) -> Generator[Any, Any, None]:
        """A TLS factory inside the guard: its protocol is not DirectlyGuarded, so is wrapped."""
        from twisted.internet import reactor

        pem = FilePath(twisted.test.__file__).sibling("server.pem").getContent()
        context = ssl.PrivateCertificate.loadPEM(pem).options()
        done: defer.Deferred[str] = defer.Deferred()
        inner = protocol.Factory.forProtocol(lambda: DirectTLSServerProtocol(done, context))
        guard = ConnectionGuard(TLSMemoryBIOFactory(context, False, inner), reactor)
        port = cast(Any, reactor).listenTCP(0, guard, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = TLSClientProtocol(starttls=False)
        client_factory = TLSMemoryBIOFactory(
            ssl.CertificateOptions(), True, protocol.Factory.forProtocol(lambda: client)
        )
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        endpoint.connect(client_factory)
        mode = yield done
        self.assertEqual(mode, "implicit")
        self.assertEqual(guard.connection_count, 1)
        self.assertIsInstance(next(iter(guard.protocols)), GuardedProtocol)
        got = yield client.finished
        self.assertEqual(got, b"DONE")
        yield guard.close_all(5)
        self.assertEqual(guard.connection_count, 0)


class HalfCloseTests(unittest.SynchronousTestCase):
    def test_half_close_passed_on(self) -> None:
        @implementer(IHalfCloseableProtocol)
        class HalfCloser(protocol.Protocol):
            events: list[str] = []

            def readConnectionLost(self) -> None:
                self.events.append("read")

            def writeConnectionLost(self) -> None:
                self.events.append("write")

        guard = ConnectionGuard(protocol.Factory.forProtocol(HalfCloser), MemoryReactorClock())
        p = guard.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        assert isinstance(p, GuardedProtocol)
        transport = StringTransport()
        p.makeConnection(transport)
        self.assertTrue(IHalfCloseableProtocol.providedBy(p))
        p.readConnectionLost()
        p.writeConnectionLost()
        self.assertEqual(HalfCloser.events, ["read", "write"])
        self.assertFalse(transport.disconnecting)

    def test_not_half_closeable_is_closed(self) -> None:
        guard = ConnectionGuard(CountingFactory(), MemoryReactorClock())
        p = guard.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        assert isinstance(p, GuardedProtocol)
        transport = StringTransport()
        p.makeConnection(transport)
        p.writeConnectionLost()
        self.assertFalse(transport.disconnecting)
        p.readConnectionLost()
        self.assertTrue(transport.disconnecting)


class RefusalLogTests(unittest.SynchronousTestCase):
    def test_refusal_logging_is_rate_limited(self) -> None:
        clock = MemoryReactorClock()
        guard = ConnectionGuard(
            CountingFactory(), clock, policy=AccessPolicy(deny=["0.0.0.0/0"])
        )
        events: list[dict[str, Any]] = []
        guard.log = Logger(observer=cast(ILogObserver, events.append))

        def refuse(n: int) -> None:
            for _ in range(n):
                p = guard.buildProtocol(IPv4Address("TCP", "192.0.2.1", 1))
                assert p is not None
                p.makeConnection(StringTransport())
                p.connectionLost(Failure(ConnectionDone()))

        refuse(1000)
        refused = [e for e in events if e.get("log_format", "").startswith("refused")]
        self.assertEqual(len(refused), 20)
        self.assertEqual(guard.refused_count, 1000)
        clock.advance(1)
        refuse(1)
        refused = [e for e in events if e.get("log_format", "").startswith("refused")]
        self.assertEqual(len(refused), 21)
        self.assertEqual(refused[-1]["suppressed"], 980)


class UnknownAddressTests(unittest.SynchronousTestCase):
    def test_unknown_address_type_fails_closed_with_allow_list(self) -> None:
        addr = HostnameAddress(b"example.com", 25)
        closed = ConnectionGuard(
            CountingFactory(), MemoryReactorClock(), policy=AccessPolicy(allow=["10.0.0.0/8"])
        )
        p = closed.buildProtocol(addr)
        self.assertNotIsInstance(p, GuardedProtocol)
        open_guard = ConnectionGuard(CountingFactory(), MemoryReactorClock())
        self.assertIsInstance(open_guard.buildProtocol(addr), GuardedProtocol)
        self.assertIsInstance(open_guard.buildProtocol(None), GuardedProtocol)

    def test_unknown_address_type_unwrapped(self) -> None:
        addr = HostnameAddress(b"example.com", 25)
        closed = ConnectionGuard(
            CountingFactory(DirectRecorder),
            MemoryReactorClock(),
            policy=AccessPolicy(allow=["10.0.0.0/8"]),
        )
        self.assertNotIsInstance(closed.buildProtocol(addr), DirectRecorder)
        open_guard = ConnectionGuard(CountingFactory(DirectRecorder), MemoryReactorClock())
        for address in (addr, None):
            p = open_guard.buildProtocol(address)
            self.assertIsInstance(p, DirectRecorder)
            assert p is not None
            p.makeConnection(StringTransport())
        self.assertEqual(open_guard.connection_count, 2)
        self.assertEqual(open_guard.per_host_counts, {})


def _server_context() -> Any:
    pem = FilePath(twisted.test.__file__).sibling("server.pem").getContent()
    return ssl.PrivateCertificate.loadPEM(pem).options()


class GuardAroundTLSHalfCloseTests(unittest.SynchronousTestCase):
    """A guard around a TLS factory: the TLS wrapper's transport is the guard itself.

    The TLS wrapper copies the guard's interfaces (IHalfCloseableProtocol
    among them) and forwards attributes it lacks to its transport, so a
    naive guard would pass a half-close to the TLS wrapper, which hands it
    straight back to the guard, forever.
    """

    def connect(self) -> tuple[GuardedProtocol, StringTransport, CountingFactory]:
        inner = CountingFactory()
        guard = ConnectionGuard(
            TLSMemoryBIOFactory(_server_context(), False, inner), MemoryReactorClock()
        )
        addr = IPv4Address("TCP", "192.0.2.1", 4000)
        p = guard.buildProtocol(addr)
        assert isinstance(p, GuardedProtocol)
        transport = StringTransport(peerAddress=addr)
        p.makeConnection(transport)
        return p, transport, inner

    def test_peer_half_close_closes(self) -> None:
        """The peer's EOF closes the connection instead of recursing."""
        p, transport, _ = self.connect()
        p.readConnectionLost()
        self.assertTrue(transport.disconnecting)

    def test_write_side_lost_is_ignored(self) -> None:
        """The end of our writing side is not bounced between the two wrappers either."""
        p, transport, _ = self.connect()
        p.writeConnectionLost()
        self.assertFalse(transport.disconnecting)

    def test_half_closeable_protocol_inside_still_told(self) -> None:
        """A half-closeable protocol wrapped directly (no TLS) still gets the half-close."""

        @implementer(IHalfCloseableProtocol)
        class HalfCloser(Recorder):
            read_lost = 0

            def readConnectionLost(self) -> None:
                self.read_lost += 1

            def writeConnectionLost(self) -> None:
                pass

        inner = CountingFactory(HalfCloser)
        guard = ConnectionGuard(inner, MemoryReactorClock())
        p = guard.buildProtocol(IPv4Address("TCP", "192.0.2.1", 4000))
        assert isinstance(p, GuardedProtocol)
        transport = StringTransport()
        p.makeConnection(transport)
        p.readConnectionLost()
        self.assertEqual(cast(HalfCloser, inner.built[0]).read_lost, 1)
        self.assertFalse(transport.disconnecting)


class HalfCloseClient(protocol.Protocol):
    """Connects, half-closes at once, and waits for the server to close."""

    def __init__(self) -> None:
        self.lost: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.loseWriteConnection()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.lost.callback(None)


@implementer(IHalfCloseableProtocol)
class HalfCloseClientProtocol(HalfCloseClient):
    def readConnectionLost(self) -> None:
        assert self.transport is not None
        self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


class TLSAndGuardHalfCloseLoopbackTests(unittest.TestCase):
    """A peer half-closing over real sockets, the guard inside or around TLS."""

    timeout = 10

    @defer.inlineCallbacks
    def half_close(self, *, guard_outside: bool) -> Generator[Any, Any, None]:
        from twisted.internet import reactor

        context = _server_context()
        inner = CountingFactory()
        if guard_outside:
            guard = ConnectionGuard(TLSMemoryBIOFactory(context, False, inner), reactor)
            server: Any = guard
        else:
            guard = ConnectionGuard(inner, reactor)
            server = TLSMemoryBIOFactory(context, False, guard)
        port = cast(Any, reactor).listenTCP(0, server, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = HalfCloseClientProtocol()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        yield endpoint.connect(protocol.Factory.forProtocol(lambda: client))
        yield client.lost
        yield guard.close_all(5)
        self.assertEqual(guard.connection_count, 0)
        self.assertEqual(len(inner.built), 1)
        self.assertIsNotNone(inner.built[0].lost)

    def test_guard_around_tls(self) -> defer.Deferred[None]:
        return self.half_close(guard_outside=True)

    def test_guard_inside_tls(self) -> defer.Deferred[None]:
        return self.half_close(guard_outside=False)

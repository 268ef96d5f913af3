"""Access control and connection limits, shared by every server.

:class:`AccessPolicy` decides from a peer's IP address; :class:`ConnectionGuard`
wraps a server's factory and applies the policy and the connection limits
before the server's own protocol is built (the failed-login penalty per
address is :class:`~netproto_twisted.core.login_delay.LoginDelay`).  A protocol that inherits
:class:`DirectlyGuarded` (every line protocol does) is counted by the guard
without a per-connection wrapper.

Addresses are compared after normalisation (:func:`host_key`): an
IPv4-mapped IPv6 address (``::ffff:192.0.2.1``) counts as the IPv4 address.
Per-address *counters* (connections per IP, failed logins) additionally
group IPv6 addresses by /64, because one IPv6 subscriber normally holds a
whole /64 and could otherwise rotate through it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Union, cast

from twisted.internet import defer
from twisted.internet.address import UNIXAddress
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    IHandshakeListener,
    IProtocol,
    IProtocolFactory,
    IReactorTime,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.python import usage
from twisted.python.failure import Failure
from zope.interface import implementer

from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import DEFAULT_LIMITS, Limits, RateLimiter
from netproto_twisted.core.login_delay import LoginPenalty
from netproto_twisted.core.net import canonical_ip, parse_host

__all__ = [
    "REASON_DENIED",
    "REASON_SHUTTING_DOWN",
    "REASON_TOO_MANY",
    "REASON_TOO_MANY_FROM_HOST",
    "AccessOptionsMixin",
    "AccessPolicy",
    "ConnectionGuard",
    "DirectlyGuarded",
    "GuardedProtocol",
    "LoginDelay",
    "Network",
    "access_policy_from_options",
    "host_key",
    "normalize_host",
    "parse_network",
]

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]  # noqa: UP007
"""An IPv4 or IPv6 network."""

_IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]  # noqa: UP007

#: Reasons passed to a :class:`ConnectionGuard`'s ``refusal`` callable.
REASON_DENIED = "access denied"
REASON_TOO_MANY = "too many connections"
REASON_TOO_MANY_FROM_HOST = "too many connections from your address"
REASON_SHUTTING_DOWN = "server shutting down"

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
_LOOPBACK_V6 = bytes(15) + b"\x01"
_ZERO_HOST_BITS = bytes(8)

# The value of a missing entry in ConnectionGuard.protocols (None is a key).
_ABSENT = object()


def _packed_ipv4(host: str) -> bytes | None:
    """Return *host*'s 4 bytes if it is an IPv4 address in canonical dotted-quad form, else None.

    The form peer addresses come in: two C calls instead of ``ipaddress``'s parsing.
    """
    try:
        packed = socket.inet_pton(socket.AF_INET, host)
    except (OSError, ValueError):
        return None
    return packed if socket.inet_ntop(socket.AF_INET, packed) == host else None


# One parser of host text for the whole package (core.net); the old name stays.
_parse_address = parse_host
normalize_host = canonical_ip


def host_key(host: str) -> str:
    """Return the key per-address counters use for *host*: the IPv4 address or the IPv6 /64.

    Text that is not an IP address (a unix-socket peer) is its own key.
    """
    if _packed_ipv4(host) is not None:
        return host  # canonical IPv4: the common case, its own key
    try:
        packed = socket.inet_pton(socket.AF_INET6, host)
    except (OSError, ValueError):
        pass  # bracketed, scoped, padded, or not an address: the general path
    else:
        if packed.startswith(_MAPPED_PREFIX):
            return socket.inet_ntop(socket.AF_INET, packed[12:])
        if packed == _LOOPBACK_V6:
            return "::1"
        return socket.inet_ntop(socket.AF_INET6, packed[:8] + _ZERO_HOST_BITS) + "/64"
    address = _parse_address(host)
    if address is None:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_loopback:
            return "::1"
        # Scope ids (fe80::1%eth0) are dropped with the host bits.
        net = ipaddress.IPv6Network((int(address) >> 64 << 64, 64))
        return str(net)
    return str(address)


def parse_network(text: str) -> Network:
    """Parse ``"10.0.0.0/8"``, ``"2001:db8::/32"`` or a bare address (a /32 or /128).

    Raises :class:`ConfigError` naming the text: host bits set
    (``10.0.0.1/8``) is an error, as it is almost always a typo.
    IPv4-mapped IPv6 networks (``::ffff:10.0.0.0/104``) become IPv4 networks.
    """
    stripped = text.strip()
    try:
        network: Network = ipaddress.ip_network(stripped, strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            loose = ipaddress.ip_network(stripped, strict=False)
            raise ConfigError(text, f"host bits set (did you mean {loose}?)") from None
        raise ConfigError(text, "not a network") from None
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None
        return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


def _as_network(value: str | Network) -> Network:
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return parse_network(str(value))
    if isinstance(value, str):
        return parse_network(value)
    raise ConfigError(repr(value), "not a network")


class AccessPolicy:
    """Allow/deny lists of IP networks, decided per peer address.

    The rules, in order:

    1. A host in any *deny* network is refused (deny wins over allow).
    2. If *allow* is empty, every other host is permitted.
    3. Otherwise the host must be in an *allow* network.

    Hosts are strings; IPv4-mapped IPv6 addresses are treated as their IPv4
    address, so ``--deny 192.0.2.0/24`` also refuses ``::ffff:192.0.2.7``
    on a dual-stack socket.  A string that is not an IP address is refused
    when an allow list exists and permitted otherwise (fail closed).
    :class:`ConnectionGuard` does not consult the policy at all for unix
    socket peers: file permissions guard those.
    """

    def __init__(
        self, allow: Iterable[str | Network] = (), deny: Iterable[str | Network] = ()
    ) -> None:
        self.allow: tuple[Network, ...] = tuple(_as_network(n) for n in allow)
        self.deny: tuple[Network, ...] = tuple(_as_network(n) for n in deny)

    def __repr__(self) -> str:
        allow = [str(n) for n in self.allow]
        deny = [str(n) for n in self.deny]
        return f"AccessPolicy(allow={allow!r}, deny={deny!r})"

    @property
    def restricted(self) -> bool:
        """True when the policy refuses anyone at all."""
        return bool(self.allow or self.deny)

    def permits(self, host: str) -> bool:
        """Return whether *host* (an address as text) may connect."""
        if not self.allow and not self.deny:
            return True
        address = _parse_address(host)
        if address is None:
            return not self.allow
        if any(address in network for network in self.deny):
            return False
        if not self.allow:
            return True
        return any(address in network for network in self.allow)


def _listener_method(
    wrapped: IProtocol, interface: Any, name: str, wrapper: object
) -> Callable[[], None] | None:
    """Return *wrapped*'s method *name* if it really implements *interface*, else None.

    A Twisted ``ProtocolWrapper`` (``TLSMemoryBIOProtocol`` among them) copies
    its transport's interfaces and forwards attributes it lacks to that
    transport: around such a wrapper, *wrapper* would find its own method and
    call itself forever.  A method that resolves back to *wrapper* is no method.
    """
    if not interface.providedBy(wrapped):
        return None
    method = getattr(wrapped, name, None)
    if method is None or getattr(method, "__self__", None) is wrapper:
        return None
    return cast("Callable[[], None]", method)


def _address_host(addr: IAddress | None) -> str | None:
    host = getattr(addr, "host", None)
    return host if isinstance(host, str) else None


class _RefusingProtocol(Protocol):
    """Writes the refusal (if any), then closes; aborts if the peer won't let it close."""

    linger: ClassVar[float] = 10.0

    def __init__(self, guard: ConnectionGuard, message: bytes | None) -> None:
        self._guard = guard
        self._message = message
        self._abort_call: IDelayedCall | None = None

    def connectionMade(self) -> None:
        assert self.transport is not None
        self._guard._refusing.add(self)
        if self._message:
            self.transport.write(self._message)
        self.transport.loseConnection()
        self._abort_call = self._guard.clock.callLater(self.linger, self.abort)

    def abort(self) -> None:
        """Drop the connection without waiting for the refusal to be read."""
        self._abort_call = None
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def dataReceived(self, data: bytes) -> None:
        """Ignore whatever the refused peer sends."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._abort_call = None
        self._guard._refusing.discard(self)
        self._guard._check_closed()


class DirectlyGuarded(Protocol):
    """A protocol that :class:`ConnectionGuard` counts without wrapping it; opt in by inheriting.

    A guard without an ``idle_timeout`` returns such a protocol from
    ``buildProtocol`` as it is, telling it its guard and address key.  Its
    :meth:`makeConnection` registers it with the guard before
    ``connectionMade`` runs; its :meth:`connectionLost` releases it, exactly
    once, also when ``makeConnection`` or ``connectionMade`` raised.  A
    subclass that overrides either method must call the base one.

    Without the wrapper, Twisted itself closes the connection on the peer's
    EOF (unless the protocol is ``IHalfCloseableProtocol``), and a TLS layer
    calls the protocol's ``handshakeCompleted`` directly.  A protocol not
    built by a guard, or wrapped by one, is not affected.
    """

    _guard: ConnectionGuard | None = None
    _guard_key: str | None = None

    def makeConnection(self, transport: Any) -> None:
        """Register with the guard that built this protocol (if any), then connect as usual."""
        guard = self._guard
        if guard is not None:
            guard._register(self, self._guard_key)
        super().makeConnection(transport)  # type: ignore[no-untyped-call]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Release this connection from its guard (only the first time), then pass *reason* on."""
        guard, self._guard = self._guard, None
        if guard is not None:
            guard._release(self)
        super().connectionLost(reason)


@implementer(IHalfCloseableProtocol, IHandshakeListener)
class GuardedProtocol(ProtocolWrapper):
    """The per-connection wrapper of :class:`ConnectionGuard`: counts itself, times out idling.

    Transparent to the wrapped protocol: a TLS handshake's completion
    (``IHandshakeListener``, for implicit TLS and STARTTLS) and a peer's
    half-close (``IHalfCloseableProtocol``) are passed on; a wrapped protocol
    that is not half-closeable has the connection closed on the peer's EOF.

    Only *received* data resets the idle timer: a raw service that streams
    output to a silent peer for longer than the timeout should not set one.
    """

    #: Writes pass through unchanged and uncounted (core.net.raw_tcp_connection looks through).
    passes_writes_through: ClassVar[bool] = True

    def __init__(
        self, factory: ConnectionGuard, wrapped: IProtocol, key: str | None
    ) -> None:
        super().__init__(cast("WrappingFactory[GuardedProtocol]", factory), wrapped)
        self.guard = factory
        self.key = key
        self._idle_call: IDelayedCall | None = None

    def makeConnection(self, transport: Any) -> None:
        """Register with the guard, start the idle timer, then connect the wrapped protocol."""
        timeout = self.guard.idle_timeout
        if timeout is not None:
            self._idle_call = self.guard.clock.callLater(timeout, self._idle)
        super().makeConnection(transport)  # type: ignore[no-untyped-call]

    def dataReceived(self, data: bytes) -> None:
        """Reset the idle timer and pass *data* on."""
        if self._idle_call is not None and self.guard.idle_timeout is not None:
            self._idle_call.reset(self.guard.idle_timeout)
        self.wrappedProtocol.dataReceived(data)

    def handshakeCompleted(self) -> None:
        """Tell the wrapped protocol, if it listens, that the TLS handshake is done."""
        method = _listener_method(
            self.wrappedProtocol, IHandshakeListener, "handshakeCompleted", self
        )
        if method is not None:
            method()

    def readConnectionLost(self) -> None:
        """Pass the peer's half-close on, or close if the wrapped protocol can't take one.

        A TLS wrapper inside the guard takes none (it only looks half-closeable,
        see :func:`_listener_method`): the connection is closed.
        """
        method = _listener_method(
            self.wrappedProtocol, IHalfCloseableProtocol, "readConnectionLost", self
        )
        if method is not None:
            method()
        else:
            self.loseConnection()  # type: ignore[no-untyped-call]

    def writeConnectionLost(self) -> None:
        """Pass the end of our writing side on, if the wrapped protocol wants it."""
        method = _listener_method(
            self.wrappedProtocol, IHalfCloseableProtocol, "writeConnectionLost", self
        )
        if method is not None:
            method()

    def _idle(self) -> None:
        self._idle_call = None
        self.guard.log.info(
            "closing idle connection from {host}", host=self.key or "local peer"
        )
        self.loseConnection()  # type: ignore[no-untyped-call]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Stop the timer, unregister, and tell the wrapped protocol."""
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._idle_call = None
        super().connectionLost(reason)  # type: ignore[no-untyped-call]


class ConnectionGuard(WrappingFactory):
    """Wraps a server factory: access policy, connection limits, idle timeout, clean shutdown.

    For each new connection, before the wrapped factory builds anything:

    * a peer refused by *policy* gets ``refusal(REASON_DENIED)`` (if
      *refusal* is given, e.g. ``lambda r: b"554 5.7.1 " + r.encode() + b"\\r\\n"``)
      and is disconnected;
    * when ``limits.max_connections`` connections are already open, or
      ``limits.max_connections_per_ip`` from the peer's address (IPv6: its
      /64), it gets ``refusal(REASON_TOO_MANY...)`` and is disconnected.

    A peer whose address carries no IP and is not a unix socket's is
    treated as a non-IP host (refused when an allow list is set).

    Refused connections do not count and are aborted if the peer will not
    let them close within 10 seconds; ``refused_count`` counts them, and
    their log lines are rate-limited (burst 20, then one a second).
    Unix-socket peers (no IP) skip the policy and the per-address limit;
    the total limit applies.

    *idle_timeout* (seconds, default off) closes a connection that receives
    nothing for that long; line protocols have their own and leave it off.

    Each accepted connection's protocol is wrapped in a :class:`GuardedProtocol`,
    except a :class:`DirectlyGuarded` one (every line protocol) when
    *idle_timeout* is off: that one is returned unwrapped and reports its
    connection and its loss to the guard itself, which saves a wrapper, an
    interface declaration and a call per event on every connection.
    ``protocols`` maps each open connection's outermost protocol (the
    wrapper, or the unwrapped protocol) to its address key.
    """

    protocol: type[GuardedProtocol] = GuardedProtocol
    log = Logger()

    def __init__(
        self,
        wrapped_factory: IProtocolFactory,
        clock: IReactorTime,
        *,
        policy: AccessPolicy | None = None,
        limits: Limits = DEFAULT_LIMITS,
        refusal: Callable[[str], bytes] | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        super().__init__(wrapped_factory)  # type: ignore[no-untyped-call]
        self.clock = clock
        self.policy = policy if policy is not None else AccessPolicy()
        self.limits = limits
        self.refusal = refusal
        self.idle_timeout = idle_timeout
        self.protocols: dict[Protocol, str | None] = {}
        self._per_host: dict[str, int] = {}
        self._refusing: set[_RefusingProtocol] = set()
        self._closing: list[defer.Deferred[None]] = []
        #: Connections refused since the guard was made.
        self.refused_count = 0
        # A flood of refusals must not become a flood of log lines.
        self._log_budget = RateLimiter(clock, rate=1.0, burst=20)
        self._log_suppressed = 0

    @property
    def connection_count(self) -> int:
        """The number of open (accepted) connections."""
        return len(self.protocols)

    def connections_from(self, host: str) -> int:
        """The number of open connections from *host* (IPv6: from its /64)."""
        return self._per_host.get(host_key(host), 0)

    @property
    def per_host_counts(self) -> dict[str, int]:
        """A copy of the open-connection count per address key (empty when idle)."""
        return dict(self._per_host)

    def _refuse(self, reason: str, host: str | None) -> _RefusingProtocol:
        self.refused_count += 1
        if self._log_budget.allow():
            self.log.info(
                "refused {host}: {reason} ({suppressed} refusals not logged since the last)",
                host=host or "local peer",
                reason=reason,
                suppressed=self._log_suppressed,
            )
            self._log_suppressed = 0
        else:
            self._log_suppressed += 1
        message = self.refusal(reason) if self.refusal is not None else None
        return _RefusingProtocol(self, message)

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:  # type: ignore[override]
        """Refuse the connection per policy and limits, or wrap the wrapped factory's protocol."""
        raw_host = _address_host(addr)
        key = host_key(raw_host) if raw_host is not None else None
        if self._closing:
            return self._refuse(REASON_SHUTTING_DOWN, raw_host)
        if raw_host is not None:
            if not self.policy.permits(raw_host):
                return self._refuse(REASON_DENIED, raw_host)
        elif not isinstance(addr, UNIXAddress) and not self.policy.permits(""):
            # An address type we can't read an IP from: fail closed.
            return self._refuse(REASON_DENIED, None)
        if len(self.protocols) >= self.limits.max_connections:
            return self._refuse(REASON_TOO_MANY, raw_host)
        if key is not None and self._per_host.get(key, 0) >= self.limits.max_connections_per_ip:
            return self._refuse(REASON_TOO_MANY_FROM_HOST, raw_host)
        wrapped = self.wrappedFactory.buildProtocol(addr)
        if wrapped is None:
            return None
        if (
            isinstance(wrapped, DirectlyGuarded)
            and self.idle_timeout is None
            and self.protocol is GuardedProtocol
        ):
            wrapped._guard = self
            wrapped._guard_key = key
            return wrapped
        return self.protocol(self, wrapped, key)

    def registerProtocol(self, p: GuardedProtocol) -> None:
        """Count a connection that has been made (called by its :class:`GuardedProtocol`)."""
        self._register(p, p.key)

    def unregisterProtocol(self, p: GuardedProtocol) -> None:
        """Uncount a lost connection; fire :meth:`close_all` waiters when none are left."""
        self._release(p)

    def _register(self, p: Protocol, key: str | None) -> None:
        """Count connection *p* from address key *key*."""
        self.protocols[p] = key
        if key is not None:
            self._per_host[key] = self._per_host.get(key, 0) + 1

    def _release(self, p: Protocol) -> None:
        """Uncount connection *p* (if counted); fire :meth:`close_all` waiters if none are left."""
        key = self.protocols.pop(p, _ABSENT)
        if key is _ABSENT:
            self._check_closed()
            return
        if key is not None:
            assert isinstance(key, str)
            left = self._per_host.get(key, 0) - 1
            if left > 0:
                self._per_host[key] = left
            else:
                self._per_host.pop(key, None)
        self._check_closed()

    def _check_closed(self) -> None:
        if self._closing and not self.protocols and not self._refusing:
            waiters, self._closing = self._closing, []
            for d in waiters:
                d.callback(None)

    def close_all(self, timeout: float = 10.0) -> defer.Deferred[None]:
        """Close every connection; abort those still open after *timeout* seconds.

        Returns a Deferred that fires once all are gone.  New connections are
        refused (``REASON_SHUTTING_DOWN``) until then.
        """
        d: defer.Deferred[None] = defer.Deferred()
        if not self.protocols and not self._refusing:
            d.callback(None)
            return d
        self._closing.append(d)
        for p in list(self.protocols):
            if isinstance(p, GuardedProtocol):
                p.loseConnection()  # type: ignore[no-untyped-call]
            elif p.transport is not None:
                p.transport.loseConnection()
        abort_call = self.clock.callLater(timeout, self._abort_all)

        def cancel_abort(result: None) -> None:
            if abort_call.active():
                abort_call.cancel()

        d.addCallback(cancel_abort)
        return d

    def _abort_all(self) -> None:
        for p, key in list(self.protocols.items()):
            self.log.info("aborting connection from {host}", host=key or "local peer")
            if p.transport is not None:
                p.transport.abortConnection()  # type: ignore[attr-defined]
        for r in list(self._refusing):
            r.abort()


class LoginDelay(LoginPenalty):
    """The failed-login penalty per address (IPv6: per /64); see :mod:`.login_delay`.

    After *n* failures from an address the next credential check from it
    waits until ``min(base * 2 ** (n - 1), maximum)`` seconds after the last
    failure; checks from one address run one at a time.  A success clears
    the address; an address with no failure for *forget_after* seconds is
    forgotten; at most *max_hosts* addresses are remembered (the least
    recently failing go first) and *max_waiting* attempts queued per address.

    A server runs each check through :meth:`attempt` (the SASL driver of
    :mod:`netproto_twisted.core.sasl_exchange` does) and disconnects a
    session once :meth:`should_disconnect` says so.
    """

    @classmethod
    def from_limits(cls, clock: IReactorTime, limits: Limits) -> LoginDelay:
        """Build one from a :class:`Limits`' login fields."""
        return cls(
            clock,
            base=limits.login_delay_base,
            maximum=limits.login_delay_max,
            disconnect_after=limits.max_failed_logins,
        )

    def key(self, host: str) -> str:
        """Return *host*'s address key: :func:`host_key` (IPv4, IPv4-mapped, IPv6 /64)."""
        return host_key(host)


def access_policy_from_options(opts: Any) -> AccessPolicy:
    """Build an :class:`AccessPolicy` from options' ``allow`` and ``deny`` lists."""
    return AccessPolicy(opts.get("allow") or (), opts.get("deny") or ())


class AccessOptionsMixin(usage.Options):
    """``usage.Options`` mixin adding repeatable ``--allow NET`` / ``--deny NET``.

    Puts an :class:`AccessPolicy` at ``self["access_policy"]``.  A subclass
    that defines ``postOptions`` must call ``super().postOptions()``.
    """

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self["allow"] = []
        self["deny"] = []

    def _network(self, text: str) -> Network:
        try:
            return parse_network(text)
        except ConfigError as exc:
            raise usage.UsageError(str(exc)) from None

    def opt_allow(self, network: str) -> None:
        """Accept only peers in this network (repeatable; a bare address is a /32 or /128)."""
        self["allow"].append(self._network(network))

    def opt_deny(self, network: str) -> None:
        """Refuse peers in this network (repeatable; deny wins over allow)."""
        self["deny"].append(self._network(network))

    def postOptions(self) -> None:
        """Store the resulting policy as ``self["access_policy"]``."""
        super().postOptions()  # type: ignore[no-untyped-call]
        self["access_policy"] = access_policy_from_options(self)

"""Small socket-level helpers shared by every protocol: TCP_NODELAY, peer address, loopback.

They work on any Twisted transport: plain TCP, TCP upgraded with STARTTLS,
implicit TLS (a :class:`~twisted.protocols.tls.TLSMemoryBIOProtocol` wrapper,
which forwards unknown attributes to the TCP transport beneath it), UNIX
sockets and test transports.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from typing import Any

from twisted.internet import tcp
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import ITransport
from twisted.logger import Logger

from netproto_twisted.core._twisted_compat import eager_writes_supported, send_now

__all__ = [
    "PASSES_WRITES_THROUGH",
    "IPAddress",
    "canonical_ip",
    "is_loopback",
    "normalize_host",
    "parse_host",
    "peer_facts",
    "peer_host",
    "raw_tcp_connection",
    "send_now",
    "set_nodelay",
    "write_now",
]

_log = Logger()


def set_nodelay(transport: ITransport) -> None:
    """Set TCP_NODELAY on ``transport`` when it is a TCP connection; do nothing otherwise.

    Request/response protocols lose 5-100x to Nagle + delayed ACK without it.
    UNIX sockets, pipes and in-memory test transports are left alone.
    """
    setter = getattr(transport, "setTcpNoDelay", None)
    if setter is None or not _is_ip(transport):
        return
    try:
        setter(True)
    except (OSError, NotImplementedError, AttributeError) as e:
        # The socket may already be closed, or the transport is a fake.
        _log.debug("could not set TCP_NODELAY: {error}", error=e)


_IP_FAMILIES = (int(socket.AF_INET), int(socket.AF_INET6))


def _is_ip(transport: Any) -> bool:
    """Whether ``transport`` is an IPv4/IPv6 connection (its socket's family, no system call)."""
    sock = getattr(transport, "socket", None)
    if isinstance(sock, socket.socket):
        # The plain int: socket.socket.family builds an AddressFamily (10x slower).
        return super(socket.socket, sock).family in _IP_FAMILIES
    try:
        host = transport.getHost()
    except Exception:  # a half-built wrapper: nothing to tune
        return False
    return isinstance(host, (IPv4Address, IPv6Address))


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
"""An IPv4 or IPv6 address."""


@functools.lru_cache(maxsize=1024)
def parse_host(host: str) -> IPAddress | None:
    """Return ``host`` as an IP address (IPv4-mapped IPv6 as IPv4), or ``None`` if it is not one.

    Accepts what peers and operators write: ``192.0.2.1``, ``2001:db8::1``,
    ``[::1]``, ``fe80::1%eth0`` (the zone is kept), surrounding blanks.
    Remembered per text: busy clients connect again and again from the same
    few addresses.
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=1024)
def canonical_ip(host: str) -> str | None:
    """Return ``host``'s canonical IP text (IPv4-mapped IPv6 as IPv4), or ``None`` if not an IP.

    Remembered per text, as :func:`parse_host` is (``str`` of an address is slow).
    """
    address = parse_host(host)
    return None if address is None else str(address)


def normalize_host(host: str) -> str:
    """Return ``host`` as a canonical IP string (IPv4-mapped IPv6 becomes IPv4).

    A string that is not an IP address is returned unchanged (see
    :func:`canonical_ip` for ``None`` instead).
    """
    canonical = canonical_ip(host)
    return host if canonical is None else canonical


@functools.lru_cache(maxsize=1024)
def peer_facts(host: str) -> tuple[str, IPAddress | None, bool]:
    """``(peer, address, is_loopback)`` for a peer's host text, as servers record it.

    ``peer`` is ``host`` if it is an IP address, else ``""``; ``address`` is
    :func:`parse_host`'s result; a peer that is not an IP (a unix socket)
    counts as loopback (it is local).
    """
    address = parse_host(host)
    if address is None:
        return "", None, True
    return host, address, address.is_loopback


def peer_host(transport: ITransport) -> str | None:
    """Return the peer's IP address as a string, or ``None`` for a non-IP transport (UNIX socket).

    IPv4-mapped IPv6 addresses (``::ffff:192.0.2.1``) are normalised to IPv4.
    """
    try:
        peer = transport.getPeer()
    except Exception:
        return None
    if not isinstance(peer, (IPv4Address, IPv6Address)):
        return None
    return normalize_host(peer.host)


@functools.lru_cache(maxsize=1024)
def is_loopback(host: str | None) -> bool:
    """Return whether ``host`` is a loopback IP address (127.0.0.0/8, ::1, ::ffff:127.x).

    ``None`` (a UNIX socket or unknown peer) and names that are not IP
    addresses (even ``"localhost"``: no name resolution here) are not loopback.
    """
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


#: The name of the class attribute that marks a protocol wrapper :func:`raw_tcp_connection`
#: may look through: one that passes every byte written on unchanged and counts nothing
#: (core.access's ``GuardedProtocol`` sets it).
PASSES_WRITES_THROUGH = "passes_writes_through"


def raw_tcp_connection(transport: Any) -> tcp.Connection | None:
    """Return the plain TCP connection beneath ``transport`` (only pass-through wrappers), or None.

    Writes through it may skip the reactor's next turn (see :func:`send_now`).
    ``None`` for TLS, unix sockets, other protocol wrappers (they may count or
    transform bytes), test transports, and a Twisted whose connection lacks the
    private attributes :func:`send_now` relies on.  A wrapper is looked
    through when its class sets :data:`PASSES_WRITES_THROUGH` true.
    """
    t = transport
    for _ in range(16):  # wrappers nest a few levels at most
        if not getattr(type(t), PASSES_WRITES_THROUGH, False):
            break
        t = getattr(t, "transport", None)
    if not isinstance(t, tcp.Connection):
        return None
    try:
        if (
            getattr(t, "TLS", True)
            or not isinstance(getattr(t, "socket", None), socket.socket)
            or not _is_ip(t)
        ):
            return None
    except Exception:  # a half-closed socket: nothing to gain
        return None
    return t if eager_writes_supported(t) else None


def write_now(transport: Any, data: bytes, connection: Any = None) -> None:
    """Write ``data`` on ``transport``; first straight to the socket when nothing is queued.

    ``connection`` is :func:`raw_tcp_connection` of ``transport`` (look it up
    once per connection; ``None`` means "always ``transport.write``").  What
    the kernel does not take at once is queued through ``transport.write``,
    after the part sent, so the bytes keep their order.
    """
    if connection is not None and data:
        sent = send_now(connection, data)
        if sent:
            if sent == len(data):
                return
            data = data[sent:]
    transport.write(data)

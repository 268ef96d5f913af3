"""Small socket-level helpers shared by every protocol: TCP_NODELAY, peer address, loopback.

They work on any Twisted transport: plain TCP, TCP upgraded with STARTTLS,
implicit TLS (a :class:`~twisted.protocols.tls.TLSMemoryBIOProtocol` wrapper,
which forwards unknown attributes to the TCP transport beneath it), UNIX
sockets and test transports.
"""

from __future__ import annotations

import ipaddress

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import ITransport
from twisted.logger import Logger

__all__ = ["is_loopback", "normalize_host", "peer_host", "set_nodelay"]

_log = Logger()


def set_nodelay(transport: ITransport) -> None:
    """Set TCP_NODELAY on ``transport`` when it is a TCP connection; do nothing otherwise.

    Request/response protocols lose 5-100x to Nagle + delayed ACK without it.
    UNIX sockets, pipes and in-memory test transports are left alone.
    """
    setter = getattr(transport, "setTcpNoDelay", None)
    if setter is None:
        return
    try:
        host = transport.getHost()
    except Exception:  # a half-built wrapper: nothing to tune
        return
    if not isinstance(host, (IPv4Address, IPv6Address)):
        return
    try:
        setter(True)
    except (OSError, NotImplementedError, AttributeError) as e:
        # The socket may already be closed, or the transport is a fake.
        _log.debug("could not set TCP_NODELAY: {error}", error=e)


def normalize_host(host: str) -> str:
    """Return ``host`` as a canonical IP string (IPv4-mapped IPv6 becomes IPv4).

    A string that is not an IP address is returned unchanged.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


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

"""Small socket-level helpers shared by every protocol: TCP_NODELAY, peer address, loopback.

They work on any Twisted transport: plain TCP, TCP upgraded with STARTTLS,
implicit TLS (a :class:`~twisted.protocols.tls.TLSMemoryBIOProtocol` wrapper,
which forwards unknown attributes to the TCP transport beneath it), UNIX
sockets and test transports.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from twisted.internet import tcp
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import ITransport
from twisted.logger import Logger

from netproto_twisted.core.access import GuardedProtocol

__all__ = [
    "is_loopback",
    "normalize_host",
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


#: The private ``FileDescriptor`` / ``tcp.Connection`` attributes :func:`send_now` reads.
#: A Twisted without any of them gets no eager path (:func:`raw_tcp_connection` says None).
_EAGER_ATTRIBUTES = (
    "_tempDataBuffer",
    "dataBuffer",
    "connected",
    "disconnecting",
    "_writeDisconnecting",
    "_writeDisconnected",
    "producer",
    "producerPaused",
    "streamingProducer",
    "TLS",
)

#: Whether a connection class has every :data:`_EAGER_ATTRIBUTES` (checked once per class).
_HAS_EAGER_ATTRIBUTES: dict[type, bool] = {}


def raw_tcp_connection(transport: Any) -> tcp.Connection | None:
    """Return the plain TCP connection beneath ``transport`` (only access-guard wrappers), or None.

    Writes through it may skip the reactor's next turn (see :func:`send_now`).
    ``None`` for TLS, unix sockets, other protocol wrappers (they may count or
    transform bytes), test transports, and a Twisted whose connection lacks the
    private attributes :func:`send_now` relies on.
    """
    t = transport
    while isinstance(t, GuardedProtocol):
        t = t.transport
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
    kind = type(t)
    usable = _HAS_EAGER_ATTRIBUTES.get(kind)
    if usable is None:
        usable = _HAS_EAGER_ATTRIBUTES[kind] = all(hasattr(t, n) for n in _EAGER_ATTRIBUTES)
    return t if usable else None


def send_now(connection: Any, data: bytes) -> int:
    """Send what the kernel takes at once when ``connection`` has nothing queued.

    ``connection`` comes from :func:`raw_tcp_connection`.  Returns the number
    of bytes sent: 0 when anything is queued in the transport, a producer is
    paused (or a pull producer registered), the connection is closing, TLS
    was started on it since, the socket is full or failed.  The caller then
    queues the rest through the transport, which reports errors its own way.
    This saves a reactor turn, one epoll event and two ``epoll_ctl`` calls.
    """
    # _tempDataBuffer before dataBuffer: a handler thread may look while the reactor
    # runs doWrite, which fills dataBuffer from _tempDataBuffer and only then empties
    # the latter; in this order, queued bytes are always seen in one or the other.
    if (
        connection._tempDataBuffer
        or connection.dataBuffer
        or not connection.connected
        or connection.disconnecting
        or connection._writeDisconnecting
        or connection._writeDisconnected
        or connection.TLS
        or connection.producerPaused
        or (connection.producer is not None and not connection.streamingProducer)
    ):
        return 0
    try:
        sent: int = connection.socket.send(data)
    except OSError:
        return 0
    return sent


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

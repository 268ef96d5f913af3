"""Every use of a private attribute of Twisted, each with a fallback to public API.

Nothing else in the package reads or sets a Twisted name that starts with
``_`` (nor ``Deferred.result`` or ``Deferred.paused``).  Each use here is a
speed-up or a nicety that has a public (slower or coarser) fallback, chosen
once at import by looking at the installed Twisted; the ``HAS_*`` flags say
which path is taken, and ``tests/core/test_twisted_compat.py`` fails when a
Twisted release removes or renames an attribute, so that a silent fallback
never goes unnoticed.

The uses:

- eager writes (:func:`send_now`): ``FileDescriptor._tempDataBuffer``,
  ``_writeDisconnecting`` and ``_writeDisconnected`` tell whether bytes are
  queued or the connection is closing; without them, no eager path
  (every write goes through ``transport.write``);
- :func:`mark_write_disconnected`: sets ``_writeDisconnected`` so that
  ``loseConnection`` closes at once on a connection the reactor no longer
  writes to; fallback: nothing (``loseConnection`` waits for writability);
- :func:`tls_client_default`: ``tcp.Connection._tlsClientDefault`` (which way
  ``startTLS`` goes by default); fallback: ``isinstance`` of the public
  ``tcp.Client``/``tcp.Server`` classes;
- Deferred fast paths (:func:`has_callbacks`, :func:`fire_quietly`,
  :func:`succeeded`): ``Deferred._callbacks`` (``callbacks`` in Twisted
  24.7), ``_canceller`` and ``result``; fallback: ``callback()`` and
  :func:`twisted.internet.defer.succeed`;
- :class:`GenericFactory`: ``Factory`` subscripted at run time
  (``Factory[MyProtocol]`` as a base class) needs Twisted 26.4 or later;
  before, a subscriptable subclass stands in (no private name, but a version
  difference all the same);
- :func:`adopt_shared_unix_port`: ``unix.Port._fromListeningDescriptor`` and
  ``_bindPath`` (``port`` in 24.7), so that a worker process adopts an inherited unix socket
  without changing or removing its file; fallback:
  ``IReactorSocket.adoptStreamPort``;
- :func:`accept_one_per_wakeup`: ``tcp.Port.numberAccepts`` (how many
  connections one wake-up accepts, 100 at first and growing by 20, in the
  port's ``doRead``) pinned to 1 by a subclass property, so that processes
  sharing one listening socket (``--workers``) take turns instead of the
  first awake taking a whole burst; fallback: the port as it is;
- :func:`ssl_endpoint_options`: ``SSL4ServerEndpoint._sslContextFactory``,
  the TLS options of a parsed ``ssl:`` endpoint; fallback: ``None``;
- :func:`http_channel_protocol`: ``twisted.web.http._GenericHTTPChannelProtocol``,
  the wrapper that turns an HTTP/1.1 channel into an HTTP/2 one when TLS
  negotiates ``h2`` (ALPN), around a channel *we* built (so that its header
  limits can be set); fallback: the HTTP/1.1 channel alone (no HTTP/2);
- :func:`take_tls_connection`: hands a connection on which ``startTLS``
  finished its handshake over to a thread (core.tls_sendfile): it reads the
  TLS layer's state (``TLSMemoryBIOProtocol._handshakeDone``,
  ``_lostTLSConnection``, ``_aborted``, ``_appSendBuffer``, ``_producer``)
  to tell that nothing waits in it, and takes the ciphertext the TCP
  connection has queued (``FileDescriptor._tempDataBuffer``,
  ``_tempDataLen``, ``dataBuffer``, ``offset``) so that the thread sends it
  first; fallback: ``None`` (the transfer stays on the reactor).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from twisted.internet import defer, tcp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IReactorSocket
from twisted.internet.protocol import Factory, Protocol, ServerFactory
from twisted.python.failure import Failure

__all__ = [
    "CALLBACKS_ATTRIBUTE",
    "EAGER_ATTRIBUTES",
    "HAS_DEFERRED_INTERNALS",
    "HAS_GENERIC_FACTORY",
    "HAS_GENERIC_HTTP_CHANNEL",
    "HAS_TLS_CLIENT_DEFAULT",
    "HAS_TLS_HANDOVER",
    "HAS_UNIX_ADOPT",
    "UNIX_PATH_ATTRIBUTE",
    "GenericFactory",
    "accept_one_per_wakeup",
    "adopt_shared_unix_port",
    "can_take_tls_connection",
    "eager_writes_supported",
    "fire_quietly",
    "has_callbacks",
    "http_channel_protocol",
    "mark_write_disconnected",
    "send_now",
    "ssl_endpoint_options",
    "succeeded",
    "take_tls_connection",
    "tls_client_default",
]

_T = TypeVar("_T")
_P = TypeVar("_P", bound=Protocol)

# --- Factory as a generic class ----------------------------------------------------------


def _factory_is_generic() -> bool:
    try:
        Factory[Protocol]
    except TypeError:
        return False
    return True


#: Whether ``twisted.internet.protocol.Factory`` can be subscripted at run time (26.4+).
HAS_GENERIC_FACTORY = _factory_is_generic()

if TYPE_CHECKING or HAS_GENERIC_FACTORY:
    GenericFactory = Factory
else:

    class GenericFactory(Factory, Generic[_P]):  # type: ignore[type-arg]
        """``Factory``, subscriptable as a base class (``GenericFactory[MyProtocol]``)."""

# --- eager writes on tcp.Connection -----------------------------------------------------

#: The ``FileDescriptor`` / ``tcp.Connection`` attributes :func:`send_now` reads.
EAGER_ATTRIBUTES = (
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

#: Whether a connection class has every :data:`EAGER_ATTRIBUTES` (checked once per class).
_EAGER_BY_CLASS: dict[type, bool] = {}


def eager_writes_supported(connection: object) -> bool:
    """Whether :func:`send_now` may be used on ``connection`` (it has every attribute read).

    The answer is remembered per class: a Twisted whose connections lack one
    of :data:`EAGER_ATTRIBUTES` gets no eager path, only ``transport.write``.
    """
    kind = type(connection)
    usable = _EAGER_BY_CLASS.get(kind)
    if usable is None:
        usable = _EAGER_BY_CLASS[kind] = all(hasattr(connection, n) for n in EAGER_ATTRIBUTES)
    return usable


def send_now(connection: Any, data: bytes) -> int:
    """Send what the kernel takes at once when ``connection`` has nothing queued.

    ``connection`` comes from :func:`~netproto_twisted.core.net.raw_tcp_connection`
    (so :func:`eager_writes_supported` holds).  Returns the number of bytes
    sent: 0 when anything is queued in the transport, a producer is paused
    (or a pull producer registered), the connection is closing, TLS was
    started on it since, the socket is full or failed.  The caller then
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


def mark_write_disconnected(connection: Any) -> bool:
    """Tell ``connection`` it will write nothing more, so ``loseConnection`` closes at once.

    For a connection whose socket a thread now drives directly.  Returns
    whether the mark was set (``False``: this Twisted lacks the attribute, and
    ``loseConnection`` waits until the socket turns writable or is aborted).
    """
    if not eager_writes_supported(connection):
        return False
    connection._writeDisconnected = True
    return True


# --- which way startTLS goes --------------------------------------------------------------

#: Whether ``tcp.Client``/``tcp.Server`` carry ``_tlsClientDefault``.
HAS_TLS_CLIENT_DEFAULT = (
    getattr(tcp.Client, "_tlsClientDefault", None) is True
    and getattr(tcp.Server, "_tlsClientDefault", None) is False
)


def tls_client_default(transport: object) -> bool | None:
    """Whether ``startTLS`` on ``transport`` defaults to the client side; ``None`` if unknown.

    ``True`` for connections we opened (``tcp.Client``), ``False`` for accepted
    ones (``tcp.Server``), ``None`` for other transports (test transports).
    Implicit-TLS wrappers forward attribute reads to the TCP connection.
    """
    if HAS_TLS_CLIENT_DEFAULT:
        value = getattr(transport, "_tlsClientDefault", None)
        return None if value is None else bool(value)
    if isinstance(transport, tcp.Client):
        return True
    if isinstance(transport, tcp.Server):
        return False
    return None


# --- Deferred fast paths --------------------------------------------------------------------


def _callbacks_attribute() -> str | None:
    """The name of a Deferred's list of callbacks: ``_callbacks``, or ``callbacks`` (24.7)."""
    names = vars(Deferred())
    for name in ("_callbacks", "callbacks"):
        if isinstance(names.get(name), list):
            return name
    return None


def _deferred_internals_present(name: str | None) -> bool:
    if name is None or "_canceller" not in vars(Deferred()):
        return False
    d: Deferred[None] = Deferred()
    d.addCallback(lambda _: None)
    if len(getattr(d, name)) != 1:
        return False
    # An instance built without __init__ must fire like succeed(None) once the
    # attributes succeeded() sets are there (the rest are class attributes).
    probe: Deferred[None] = object.__new__(Deferred)
    try:
        setattr(probe, name, [])
        probe._canceller = None
        probe.result = None
        probe.called = True
        seen: list[object] = []
        probe.addCallback(seen.append)
    except Exception:
        return False
    return seen == [None]


#: The attribute holding a Deferred's callbacks (``None``: not found).
CALLBACKS_ATTRIBUTE = _callbacks_attribute()
#: Whether Deferred's internals are as the fast paths expect.
HAS_DEFERRED_INTERNALS = _deferred_internals_present(CALLBACKS_ATTRIBUTE)

_new = object.__new__


def _public_has_callbacks(d: Deferred[Any]) -> bool:
    return True


def _public_fire_quietly(d: Deferred[_T], value: _T) -> None:
    d.callback(value)


def _public_succeeded() -> Deferred[None]:
    return defer.succeed(None)


if HAS_DEFERRED_INTERNALS and CALLBACKS_ATTRIBUTE == "_callbacks":

    def _has_callbacks(d: Deferred[Any]) -> bool:
        return bool(d._callbacks)

    def _fire_quietly(d: Deferred[_T], value: _T) -> None:
        if d._callbacks:
            d.callback(value)
            return
        d.called = True
        d.result = value
        d._canceller = None

    def _fast_succeeded() -> Deferred[None]:
        d: Deferred[None] = _new(Deferred)
        d._callbacks = []
        d._canceller = None
        d.result = None
        d.called = True
        return d

elif HAS_DEFERRED_INTERNALS:  # older Twisted (24.7): the list is "callbacks"

    def _has_callbacks(d: Deferred[Any]) -> bool:
        return bool(d.__dict__["callbacks"])

    def _fire_quietly(d: Deferred[_T], value: _T) -> None:
        if d.__dict__["callbacks"]:
            d.callback(value)
            return
        d.called = True
        d.result = value
        d._canceller = None

    def _fast_succeeded() -> Deferred[None]:
        d: Deferred[None] = _new(Deferred)
        d.__dict__["callbacks"] = []
        d._canceller = None
        d.result = None
        d.called = True
        return d

else:
    _has_callbacks = _public_has_callbacks
    _fire_quietly = _public_fire_quietly
    _fast_succeeded = _public_succeeded

_NOT_FIRED: tuple[bool, Any] = (False, None)


def _public_fired_value(d: Deferred[Any]) -> tuple[bool, Any]:
    return _NOT_FIRED


def _fast_fired_value(d: Deferred[Any]) -> tuple[bool, Any]:
    if d.called and not d.paused and not _has_callbacks(d):
        result = d.result
        if not isinstance(result, (Deferred, Failure)):
            return True, result
    return _NOT_FIRED


_fired_value = _fast_fired_value if HAS_DEFERRED_INTERNALS else _public_fired_value


def has_callbacks(d: Deferred[Any]) -> bool:
    """Whether callbacks were added to ``d`` (``True`` when this cannot be told)."""
    return _has_callbacks(d)


def fire_quietly(d: Deferred[_T], value: _T) -> None:
    """Fire ``d`` with ``value``; when it has no callbacks, skip the chain machinery.

    What ``callback()`` does when nobody added callbacks; a later ``await``
    or ``addCallback`` sees ``value``.  On a Twisted whose internals differ,
    this is ``d.callback(value)``.
    """
    _fire_quietly(d, value)


def fired_value(d: Deferred[Any]) -> tuple[bool, Any]:
    """``(True, value)`` if ``d`` fired with a value and has no callbacks, else ``(False, None)``.

    A policy that answers at once returns ``succeed(value)``: its caller can
    take the value without adding a callback (the chain machinery is a third
    of a pipelined SMTP command's cost).  Failures, paused or chained
    Deferreds, and every Deferred on a Twisted whose internals differ, give
    ``(False, None)``: add a callback as usual.
    """
    return _fired_value(d)


#: ``succeed(None)`` without ``__init__`` (a third of the cost) where Twisted allows it.
succeeded: Callable[[], Deferred[None]] = _fast_succeeded


# --- adopting a listening unix socket ------------------------------------------------------


def _unix_path_attribute() -> str | None:
    """Where ``unix.Port`` keeps its socket path: ``_bindPath``, or ``port`` (24.7)."""
    try:
        from twisted.internet import unix
    except ImportError:  # pragma: no cover - a platform without unix sockets
        return None
    if not callable(getattr(unix.Port, "_fromListeningDescriptor", None)):
        return None
    port = unix.Port(b"/nonexistent/probe.sock", Factory())
    for name in ("_bindPath", "port"):
        if getattr(port, name, None) == b"/nonexistent/probe.sock":
            return name
    return None


#: The ``unix.Port`` attribute holding its path (``None``: no private adoption path).
UNIX_PATH_ATTRIBUTE = _unix_path_attribute()
#: Whether ``unix.Port._fromListeningDescriptor`` and the path attribute are there.
HAS_UNIX_ADOPT = UNIX_PATH_ATTRIBUTE is not None


def adopt_shared_unix_port(
    reactor: IReactorSocket, fd: int, factory: IProtocolFactory, backlog: int
) -> IListeningPort:
    """Listen on an inherited unix socket whose file another process owns (and removes).

    The file keeps its mode and is not unlinked when the port closes; the
    socket listens with ``backlog``.  Fallback, where Twisted lacks the private
    names: the reactor's public ``adoptStreamPort`` (which sets the file's mode
    to 0666, unlinks it on close, and uses Twisted's backlog of 50).
    """
    if not HAS_UNIX_ADOPT:
        adopted: IListeningPort = reactor.adoptStreamPort(
            fd, socket.AF_UNIX, cast("ServerFactory[Any]", factory)
        )
        return adopted
    from twisted.internet import unix

    assert UNIX_PATH_ATTRIBUTE is not None
    path_attribute: str = UNIX_PATH_ATTRIBUTE

    class SharedUnixPort(unix.Port):
        def startListening(self) -> None:
            with contextlib.suppress(OSError):
                self.mode = os.stat(getattr(self, path_attribute)).st_mode & 0o7777
            super().startListening()  # type: ignore[no-untyped-call]

        def connectionLost(self, reason: Failure) -> None:
            tcp.Port.connectionLost(self, reason)  # no unlink: the path is the owner's

    port: SharedUnixPort = SharedUnixPort._fromListeningDescriptor(  # type: ignore[no-untyped-call]
        reactor, fd, factory
    )
    port.backlog = backlog
    port.startListening()
    return port


try:
    from twisted.web.http import _GenericHTTPChannelProtocol as _GenericHTTPChannel

    #: Whether an HTTP/1.1 channel of our own can switch to HTTP/2 after ALPN.
    HAS_GENERIC_HTTP_CHANNEL = True
except ImportError:  # pragma: no cover - a Twisted that renamed it
    HAS_GENERIC_HTTP_CHANNEL = False


def http_channel_protocol(channel: Protocol) -> Protocol:
    """Wrap an ``HTTPChannel`` so that it becomes HTTP/2 when TLS negotiates ``h2``.

    Fallback (a Twisted without the wrapper): the channel itself, HTTP/1.1 only.
    """
    if HAS_GENERIC_HTTP_CHANNEL:
        return cast(Protocol, _GenericHTTPChannel(channel))
    return channel  # pragma: no cover


# --- one accept per wake-up on a shared listening socket ----------------------------------

#: Whether ``tcp.Port.doRead`` takes its accept batch from ``numberAccepts``.
HAS_NUMBER_ACCEPTS = "numberAccepts" in tcp.Port.doRead.__code__.co_names

_ONE_ACCEPT_CLASSES: dict[type, type] = {}


def _one_accept_class(base: type) -> type:
    cls = _ONE_ACCEPT_CLASSES.get(base)
    if cls is None:
        # A data descriptor on the class wins over the instance attribute the port
        # sets and updates: every wake-up accepts one connection, whatever it sets.
        one = property(lambda self: 1, lambda self, value: None)
        cls = type(base.__name__, (base,), {"numberAccepts": one, "__module__": base.__module__})
        _ONE_ACCEPT_CLASSES[base] = cls
    return cls


def accept_one_per_wakeup(port: object) -> bool:
    """Make a listening ``tcp.Port`` (or ``unix.Port``) accept one connection per wake-up.

    For a socket several processes listen on: each wakes on a new
    connection and the first takes it, the others find none; with a batch of
    100, the first awake would take a whole burst (50 load-tool connections
    opened at once could all land in one process).  Returns whether it was
    applied (``False`` for another kind of port, or a Twisted without
    ``numberAccepts``).
    """
    if not HAS_NUMBER_ACCEPTS or not isinstance(port, tcp.Port):
        return False
    if not isinstance(port, tuple(_ONE_ACCEPT_CLASSES.values())):
        port.__class__ = _one_accept_class(type(port))
    return True


# --- the TLS options of a parsed ssl: endpoint --------------------------------------------


def ssl_endpoint_options(endpoint: object) -> Any | None:
    """The TLS options (context factory) an ``ssl:`` server endpoint listens with, or ``None``.

    ``SSL4ServerEndpoint._sslContextFactory``: what a worker process wraps
    an inherited socket with, and where a listener sets up ALPN before its
    first connection; fallback: ``None`` (another kind of endpoint, or a
    Twisted that renamed it: the caller says so or leaves the options alone).
    """
    return getattr(endpoint, "_sslContextFactory", None)


# --- handing a TLS connection over to a thread ---------------------------------------------

#: The ``TLSMemoryBIOProtocol`` attributes :func:`take_tls_connection` reads (class defaults,
#: or set by ``makeConnection``).
TLS_LAYER_ATTRIBUTES = ("_handshakeDone", "_lostTLSConnection", "_aborted", "_producer")
#: The ``FileDescriptor`` attributes whose queued bytes :func:`take_tls_connection` takes.
QUEUE_ATTRIBUTES = ("_tempDataBuffer", "_tempDataLen", "dataBuffer", "offset")


def _tls_handover_present() -> bool:
    from twisted.internet import abstract
    from twisted.protocols.tls import TLSMemoryBIOProtocol

    layer = all(hasattr(TLSMemoryBIOProtocol, n) for n in TLS_LAYER_ATTRIBUTES)
    made = TLSMemoryBIOProtocol.makeConnection.__code__.co_names
    layer = layer and "_appSendBuffer" in made and "_tlsConnection" in made
    write = abstract.FileDescriptor.write.__code__.co_names
    return layer and all(n in write for n in ("_tempDataBuffer", "_tempDataLen"))


#: Whether :func:`take_tls_connection` can work on this Twisted.
HAS_TLS_HANDOVER = _tls_handover_present()


def _tls_layer(transport: Any) -> Any | None:
    """The idle TLS layer of a ``startTLS`` TCP connection, or ``None``."""
    from twisted.protocols.tls import TLSMemoryBIOProtocol

    if not HAS_TLS_HANDOVER or not isinstance(transport, tcp.Connection):
        return None
    layer = getattr(transport, "protocol", None)
    if (
        not getattr(transport, "TLS", False)
        or not isinstance(layer, TLSMemoryBIOProtocol)
        or not eager_writes_supported(transport)
        or not transport.connected
        or transport.disconnecting
        or transport._writeDisconnecting
        or transport._writeDisconnected
        or transport.producer is not None
        or not layer._handshakeDone
        or layer._lostTLSConnection
        or layer._aborted
        or layer.disconnecting
        or layer._appSendBuffer
        or layer._producer is not None
    ):
        return None
    return layer


def can_take_tls_connection(transport: object) -> bool:
    """Whether :func:`take_tls_connection` would take ``transport`` now."""
    return _tls_layer(transport) is not None


def take_tls_connection(transport: Any) -> tuple[Any, Any, bytes] | None:
    """Take a ``startTLS`` TCP connection off the reactor: ``(connection, tls, queued)``.

    ``transport`` must be a ``tcp.Connection`` whose TLS handshake is done,
    with nothing waiting in its TLS layer (no buffered application data, no
    producer, not closing).  The connection stops reading and writing; the
    ciphertext it had queued is removed from it and returned (``queued``):
    whoever takes over sends that first, then what the pyOpenSSL connection
    ``tls`` (its memory BIO) produces.  Until it is handed back, nothing on
    the reactor thread may touch ``tls``: no write, no ``loseConnection``, no
    ``abortConnection`` (each would call into ``tls``); afterwards call
    ``connection.startReading()``.  Returns ``None`` (and changes nothing)
    when the transport does not qualify or this Twisted lacks the attributes.
    """
    layer = _tls_layer(transport)
    if layer is None:
        return None
    tls = layer._tlsConnection
    queued = bytes(transport.dataBuffer[transport.offset :]) + b"".join(transport._tempDataBuffer)
    transport.dataBuffer = b""
    transport.offset = 0
    transport._tempDataBuffer = []
    transport._tempDataLen = 0
    transport.stopReading()
    transport.stopWriting()
    return transport, tls, queued

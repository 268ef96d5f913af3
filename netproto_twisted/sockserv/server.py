"""The socketserver hosting service: factory, thread pool, listening ports, clean stop."""

from __future__ import annotations

import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from netproto_twisted.core.access import AccessPolicy, ConnectionGuard
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import DEFAULT_LIMITS, Limits
from netproto_twisted.core.reactors import IListenReactor, IServerReactor, ITimeThreadsReactor
from netproto_twisted.core.service import EndpointsService, endpoint_kind, parse_udp_endpoint
from netproto_twisted.sockserv.aio import AsyncStreamProtocol
from netproto_twisted.sockserv.common import HandlerServer, address_family, socket_address
from netproto_twisted.sockserv.handlers import is_reactor_handler, resolve_handler
from netproto_twisted.sockserv.threaded import ThreadedStreamProtocol
from netproto_twisted.sockserv.udp import HandlerDatagramProtocol

__all__ = [
    "DEFAULT_THREADS",
    "HandlerFactory",
    "HandlerThreadPool",
    "SockservService",
    "make_sockserv_service",
]

#: Default size of the handler thread pool.
DEFAULT_THREADS = 20


class _DaemonThread(threading.Thread):
    """A pool thread that does not keep the process alive (``daemon_threads = True``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.daemon = True


class HandlerThreadPool(ThreadPool):
    """The bounded pool blocking handlers run in; its threads are daemon threads."""

    threadFactory = _DaemonThread


class HandlerFactory(Factory):
    """Builds a threaded or reactor-run connection for ``handler_class``; tracks live ones."""

    log = Logger()
    noisy = False

    def __init__(
        self,
        handler_class: type,
        reactor: ITimeThreadsReactor,
        pool: ThreadPool,
        *,
        name: str = "socket",
    ) -> None:
        self.handler_class = handler_class
        self.reactor = reactor
        self.pool = pool
        self.name = name
        #: True when handlers run on the reactor (``async def handle``/``run_on_reactor``).
        self.on_reactor = is_reactor_handler(handler_class)
        self.connections: set[Any] = set()
        self.refusing = False
        #: Let blocking handlers read plain TCP sockets themselves (off when an
        #: idle timeout must see the data arrive).
        self.direct_io = True
        self._servers: dict[tuple[int, Any], HandlerServer] = {}

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        """Return the connection's protocol (``None`` after a handler's ``server.shutdown()``)."""
        if self.refusing:
            return None
        p: Protocol = (
            AsyncStreamProtocol(self) if self.on_reactor else ThreadedStreamProtocol(self)
        )
        p.factory = self
        return p

    def server_for(
        self, host: IAddress, socket_type: socket.SocketKind = socket.SOCK_STREAM
    ) -> HandlerServer:
        """Return the ``self.server`` of the port listening on ``host``."""
        address = socket_address(host)
        key = (int(socket_type), address)
        server = self._servers.get(key)
        if server is None:
            server = self._servers[key] = HandlerServer(
                self.handler_class,
                address,
                socket_type,
                address_family(host),
                self.reactor,
                self.name,
                self.refuse_new,
            )
        return server

    def refuse_new(self) -> None:
        """Stop starting handlers for new connections and datagrams."""
        if not self.refusing:
            self.refusing = True
            self.log.info("{name} now refuses new requests", name=self.name)

    def connection_made(self, protocol: Any) -> None:
        """Track a live connection."""
        self.connections.add(protocol)

    def connection_lost(self, protocol: Any) -> None:
        """Forget a closed connection."""
        self.connections.discard(protocol)

    def abort_all(self) -> None:
        """Drop every live connection and wake their handler threads."""
        for p in list(self.connections):
            p.abort()


class _RefusingDatagram(HandlerDatagramProtocol):
    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if self._host.refusing:
            return
        super().datagramReceived(datagram, addr)


class SockservService(MultiService):
    """The hosting service: owns the thread pool (started and stopped with it) and the ports."""

    log = Logger()

    def __init__(
        self,
        name: str,
        reactor: IServerReactor,
        factory: HandlerFactory,
        pool: ThreadPool,
        *,
        pool_stop_timeout: float = 5.0,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.name = name
        self._ports: list[EndpointsService] = []
        self.reactor = reactor
        self.factory = factory
        self.pool = pool
        self.pool_stop_timeout = pool_stop_timeout

    @property
    def endpoints(self) -> list[EndpointsService]:
        """The listening services (one for the stream ports, one per UDP port)."""
        return list(self._ports)

    def add_ports(self, ports: EndpointsService) -> None:
        """Add a listening service, started and stopped with this one (and in its iteration)."""
        # Not addService: every port service bears this service's name, for its log
        # lines, and MultiService insists on unique names.
        self._ports.append(ports)
        self.services.append(ports)
        ports.parent = self

    def when_listening(self) -> defer.Deferred[list[tuple[str, str]]]:
        """Fire with ``(kind, address)`` of every port once all listen."""
        ds = [e.when_listening() for e in self.endpoints]

        def merge(results: list[list[tuple[str, str]]]) -> list[tuple[str, str]]:
            return [a for r in results for a in r]

        def first_error(failure: Failure) -> Failure:
            if isinstance(failure.value, defer.FirstError):
                return failure.value.subFailure
            return failure

        return defer.gatherResults(ds, consumeErrors=True).addCallbacks(merge, first_error)

    def startService(self) -> None:
        """Start the thread pool, then listen."""
        Service.startService(self)
        self.pool.start()
        for ports in self._ports:
            ports.startService()

    def privilegedStartService(self) -> None:
        """Nothing to do before privileges are dropped: ports open in startService."""
        Service.privilegedStartService(self)

    def stopService(self) -> defer.Deferred[None]:
        """Stop listening, close the connections, then stop the thread pool."""
        Service.stopService(self)

        async def stop() -> None:
            await defer.gatherResults(
                [defer.maybeDeferred(s.stopService) for s in reversed(self._ports)],
                consumeErrors=True,
            )
            self.factory.abort_all()
            await self._stop_pool()

        return defer.ensureDeferred(stop())

    def _stop_pool(self) -> defer.Deferred[None]:
        done: defer.Deferred[None] = defer.Deferred()

        def fire() -> None:
            if not done.called:
                done.callback(None)

        def join() -> None:
            self.pool.stop()
            self.reactor.callFromThread(fire)

        threading.Thread(target=join, name=f"{self.name}-pool-stop", daemon=True).start()
        timer = self.reactor.callLater(self.pool_stop_timeout, self._pool_timed_out, fire)

        def cancel(_: None) -> None:
            if timer.active():
                timer.cancel()

        done.addCallback(cancel)
        return done

    def _pool_timed_out(self, fire: Any) -> None:
        self.log.warn(
            "{name}: handler threads still busy after {timeout}s; leaving them",
            name=self.name,
            timeout=self.pool_stop_timeout,
        )
        fire()


def _check_listen(reactor: IListenReactor, listen: Sequence[str]) -> None:
    if not listen:
        raise ConfigError("--listen", "give at least one endpoint to listen on")
    for text in listen:
        kind = endpoint_kind(text)
        if kind == "udp":
            parse_udp_endpoint(text)
            continue
        try:
            serverFromString(reactor, text)
        except Exception as e:
            reason = " ".join((str(e) or type(e).__name__).split())
            raise ConfigError(text, f"bad endpoint: {reason}") from None


def make_sockserv_service(
    reactor: IServerReactor,
    *,
    handler: str | type,
    listen: Sequence[str],
    threads: int = DEFAULT_THREADS,
    policy: AccessPolicy | None = None,
    limits: Limits | None = None,
    name: str = "socket",
    idle_timeout: float | None = None,
    app_dir: str | Path | None = None,
) -> SockservService:
    """Build the service hosting ``handler`` on every ``listen`` endpoint (tcp, ssl, unix, udp).

    ``handler`` is a class or a ``--handler`` string (``echo``, ``discard``,
    ``daytime`` or ``package.module:Class``).  Blocking handlers run in a
    pool of at most ``threads`` threads.  Raises
    :class:`~netproto_twisted.core.errors.ConfigError` (one line) for a bad
    handler or endpoint.
    """
    if threads < 1:
        raise ConfigError("--threads", f"must be a positive integer, got {threads}")
    handler_class = resolve_handler(handler, app_dir) if isinstance(handler, str) else handler
    listen = list(listen)
    _check_listen(reactor, listen)
    pool = HandlerThreadPool(0, threads, name=f"{name}-handlers")
    factory = HandlerFactory(handler_class, reactor, pool, name=name)
    factory.direct_io = idle_timeout is None
    service = SockservService(name, reactor, factory, pool)
    stream = [t for t in listen if endpoint_kind(t) != "udp"]
    limits = limits if limits is not None else DEFAULT_LIMITS
    if stream:
        guard = ConnectionGuard(
            factory,
            reactor,
            policy=policy,
            limits=limits,
            idle_timeout=idle_timeout,
        )
        guard.noisy = False
        service.add_ports(
            EndpointsService(name, reactor, stream, factory, guard=guard, backlog=limits.backlog)
        )
    for text in listen:
        if endpoint_kind(text) == "udp":
            datagram = _RefusingDatagram(factory, policy)
            service.add_ports(EndpointsService(name, reactor, [text], datagram=datagram))
    return service

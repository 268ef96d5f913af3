"""The worker process of :mod:`netproto_twisted.core.workers`: ``python -m`` this module.

It reads the bootstrap line on stdin, builds the protocol's factories with
the named builder, adopts the inherited listening sockets, says ``ready``
on the control pipe and serves until SIGTERM or until its stdin closes (the
master is gone).  Its log goes to stdout, one ``LEVEL|NAMESPACE|TEXT`` line
per event line; a start-up error is one line on stderr and exit status 1.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

from twisted.application.service import MultiService, Service
from twisted.internet import defer, error
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IReadDescriptor
from twisted.internet.protocol import ServerFactory
from twisted.logger import FileLogObserver, Logger, LogLevel, formatEvent, globalLogBeginner
from twisted.python.failure import Failure
from zope.interface import implementer

from netproto_twisted.core._twisted_compat import (
    accept_one_per_wakeup,
    adopt_shared_unix_port,
    ssl_endpoint_options,
)
from netproto_twisted.core.errors import ConfigError, NetprotoError
from netproto_twisted.core.limits import DEFAULT_LIMITS
from netproto_twisted.core.reactors import IServerReactor
from netproto_twisted.core.service import endpoint_kind
from netproto_twisted.core.tls_alpn import prepare_tls_options
from netproto_twisted.core.workers import (
    _FAMILIES,
    MAX_BOOTSTRAP,
    READY,
    InheritedSocket,
    WorkerChannel,
    WorkerParts,
    _write_all,
)

__all__ = ["load_builder", "main"]

_log = Logger(namespace="netproto.workers")


@implementer(IReadDescriptor)
class _MasterWatch:
    """Reads the worker's stdin; EOF (the master is gone or stopping us) calls ``on_eof``."""

    def __init__(self, fd: int, on_eof: Callable[[], None]) -> None:
        self._fd = fd
        self._on_eof = on_eof

    def fileno(self) -> int:
        return self._fd

    def logPrefix(self) -> str:
        return "master-watch"

    def doRead(self) -> Failure | None:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        if not data:
            return Failure(error.ConnectionDone())
        return None

    def connectionLost(self, reason: Failure) -> None:
        self._on_eof()


class _AdoptedListeners(Service):
    """Adopts the inherited sockets with their factories; on stop closes ports and connections."""

    def __init__(
        self,
        reactor: IServerReactor,
        sockets: Sequence[InheritedSocket],
        parts: WorkerParts,
        on_ready: Callable[[], None],
    ) -> None:
        self.name = "adopted"
        self._reactor = reactor
        self._sockets = list(sockets)
        self._parts = parts
        self._on_ready = on_ready
        self._ports: list[IListeningPort] = []

    def startService(self) -> None:
        """Adopt every socket (raises :class:`ConfigError` when one cannot be)."""
        Service.startService(self)
        for sock in self._sockets:
            factory = self._parts.factories.get(sock.name)
            if factory is None:
                raise ConfigError(sock.name, "the worker builder made no factory for it")
            if endpoint_kind(sock.endpoint) == "ssl":
                factory = _tls_wrapped(self._reactor, sock.endpoint, factory)
            try:
                os.set_blocking(sock.fd, False)  # the master's already is (a shared flag)
                if sock.family == "AF_UNIX":
                    port = adopt_shared_unix_port(
                        self._reactor, sock.fd, factory, DEFAULT_LIMITS.backlog
                    )
                else:
                    port = self._reactor.adoptStreamPort(
                        sock.fd, _FAMILIES[sock.family], cast("ServerFactory[Any]", factory)
                    )
            except Exception as e:
                raise ConfigError(sock.endpoint, f"cannot adopt the socket: {e}") from None
            os.close(sock.fd)  # adoptStreamPort listens on a duplicate
            accept_one_per_wakeup(port)  # take turns with the other processes
            self._ports.append(port)
        self._on_ready()

    def stopService(self) -> defer.Deferred[None]:
        """Stop accepting, then close live connections (``close_all`` when the factory has it)."""
        Service.stopService(self)

        async def stop() -> None:
            ports, self._ports = self._ports, []
            await defer.gatherResults(
                [defer.maybeDeferred(p.stopListening) for p in ports], consumeErrors=True
            )
            closes = []
            for factory in self._parts.factories.values():
                close_all = getattr(factory, "close_all", None)
                if close_all is not None:
                    closes.append(close_all(self._parts.close_timeout))
            await defer.gatherResults(closes, consumeErrors=True)

        return defer.ensureDeferred(stop())


def _tls_wrapped(
    reactor: IServerReactor, endpoint: str, factory: IProtocolFactory
) -> IProtocolFactory:
    from twisted.internet.endpoints import serverFromString
    from twisted.protocols.tls import TLSMemoryBIOFactory

    parsed = serverFromString(reactor, endpoint)
    context = ssl_endpoint_options(parsed)
    if context is None:
        raise ConfigError(endpoint, "cannot find the TLS context of this endpoint")
    prepare_tls_options(context)
    wrapped: IProtocolFactory = TLSMemoryBIOFactory(context, False, factory)
    return wrapped


def _log_line_observer(out: Callable[[bytes], None]) -> FileLogObserver:
    class _Out:
        def write(self, text: str) -> None:
            out(text.encode("utf-8", "replace"))

        def flush(self) -> None:
            pass

    def fmt(event: dict[str, Any]) -> str:
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text = f"{text}\n{failure.getTraceback()}"
        level = event.get("log_level", LogLevel.info)
        namespace = event.get("log_namespace", "-")
        prefix = f"{getattr(level, 'name', 'info')}|{namespace}|"
        return "".join(f"{prefix}{line}\n" for line in text.splitlines() or [""])

    return FileLogObserver(_Out(), fmt)  # type: ignore[arg-type]


def _read_bootstrap(fd: int = 0) -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            raise ConfigError("bootstrap", "the master closed the pipe before the bootstrap")
        data += chunk
        if len(data) > MAX_BOOTSTRAP:
            raise ConfigError("bootstrap", "too long")
    try:
        value = json.loads(data)
    except ValueError as e:
        raise ConfigError("bootstrap", f"not JSON: {e}") from None
    if not isinstance(value, dict):
        raise ConfigError("bootstrap", "not a JSON object")
    return value


def load_builder(spec: str) -> Callable[[Any, Any, WorkerChannel], WorkerParts]:
    """Import a builder named ``"package.module:function"`` (raises :class:`ConfigError`)."""
    module_name, _, attr = spec.partition(":")
    try:
        builder = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError("builder", f"cannot load {spec!r}: {e}") from None
    if not callable(builder):
        raise ConfigError("builder", f"{spec!r} is not callable")
    result: Callable[[Any, Any, WorkerChannel], WorkerParts] = builder
    return result


def _fail(name: str, reason: object) -> int:
    text = " ".join(str(reason).split()) or "failed"
    _write_all(2, f"{name} worker {os.getpid()}: {text}\n".encode())
    return 1


def main() -> int:
    """Run one worker process (``python -m netproto_twisted.core.worker_process``)."""
    name = "netproto"
    try:
        bootstrap = _read_bootstrap()
        name = str(bootstrap.get("name") or name)
        sockets = [InheritedSocket.from_json(s) for s in bootstrap.get("sockets", [])]
        builder = load_builder(str(bootstrap.get("builder", "")))
    except NetprotoError as e:
        return _fail(name, e)
    # The loop starts here: a worker is a process entry point like twistd's makeService.
    from twisted.internet import reactor as _reactor

    reactor = cast(IServerReactor, _reactor)
    globalLogBeginner.beginLoggingTo(
        [_log_line_observer(lambda b: _write_all(1, b))], redirectStandardIO=False
    )
    status: list[int] = []

    stopping: list[bool] = []

    def stop() -> None:
        # SIGTERM and EOF on stdin usually both come: stop once.
        if not stopping:
            stopping.append(True)
            with contextlib.suppress(error.ReactorNotRunning):
                reactor.stop()

    def on_signal(signum: int, frame: object) -> None:
        _log.info("{name} worker: signal {signum}; stopping", name=name, signum=signum)
        reactor.callFromThread(stop)

    channel = WorkerChannel(on_broken=stop)
    try:
        parts = builder(bootstrap.get("config"), reactor, channel)
    except (NetprotoError, OSError, ValueError) as e:
        return _fail(name, e)
    root = MultiService()
    if parts.service is not None:
        root.addService(parts.service)
    root.addService(_AdoptedListeners(reactor, sockets, parts, lambda: channel.send(READY)))

    def master_gone() -> None:
        _log.info("{name} worker: the master closed the pipe; stopping", name=name)
        reactor.removeReader(watch)
        stop()

    watch = _MasterWatch(0, master_gone)

    def start() -> None:
        signal.signal(signal.SIGTERM, on_signal)  # replaces the reactor's: one idempotent stop
        # Ctrl-C in a terminal reaches the whole process group: the master handles it
        # and stops the workers in order.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            root.startService()
        except (NetprotoError, OSError) as e:
            status.append(_fail(name, e))
            stop()
            return
        reactor.addReader(watch)

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", root.stopService)
    reactor.run()
    return status[0] if status else 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    sys.exit(main())

"""Worker processes: several reactors serving the same listening sockets (``--workers N``).

One reactor thread is the limit of a Twisted daemon on a multi-core machine.
:class:`WorkerPool` lifts it the way Postfix and Dovecot do: the master
process listens as usual (:class:`~netproto_twisted.core.service.EndpointsService`),
then spawns ``count`` worker processes that inherit the listening sockets and
accept on them too; the kernel hands each new connection to whichever
process accepts first.  Every process accepts one connection per wake-up
(:func:`~netproto_twisted.core._twisted_compat.accept_one_per_wakeup`;
Twisted's default is a batch of up to 100), so that a burst of connections
is shared out instead of landing in the process that woke first -- the busy
one is slower to wake, so the idle ones take more.  The master keeps
serving, so ``--workers 2`` is the master plus one worker process.

A worker is ``python -m netproto_twisted.core.worker_process``
(:mod:`netproto_twisted.core.worker_process`).  Its file
descriptors::

    0   stdin: one JSON line from the master (the bootstrap), then nothing;
        EOF means the master is gone and the worker stops
    1   stdout: the worker's log, one line per event (``LEVEL|NAMESPACE|TEXT``)
    2   stderr: anything else (relayed too); a start-up error is one line here
    3   control: lines to the master (``ready``, then ``KIND TEXT``)
    4-  the inherited listening sockets, in bootstrap order

The bootstrap names a *builder*, ``"package.module:function"``, called in the
worker as ``builder(config, reactor, channel)`` with the JSON ``config`` the
master gave; it returns :class:`WorkerParts`: one protocol factory per
listener name (the EndpointsService's name) and optionally a service to run
beside them (thread pools, stores).  Nothing live crosses the process
boundary: the worker rebuilds its objects from the JSON configuration.
``ssl:`` listeners get the TLS context their endpoint string describes;
``unix:`` sockets are adopted as AF_UNIX.

Lifecycle: a worker that exits is restarted after a delay that doubles from
``restart_delay`` up to ``max_restart_delay`` (reset once a worker stayed up
that long); a worker that fails before the pool was first ready fails
:meth:`WorkerPool.when_ready` with its one-line error (daemons end with it).
:meth:`WorkerPool.stopService` sends SIGTERM, waits up to ``stop_timeout``
seconds, then sends SIGKILL.  Everything a worker writes on stdout/stderr
reaches the master's log, one event per line, tagged with the worker's pid.

Per-process state stays per process: connection limits per IP, failed-login
delays and command rates count separately in each process.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.application.service import IService, Service
from twisted.internet import defer, error
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import (
    Logger,
    LogLevel,
)
from twisted.python.failure import Failure

from netproto_twisted.core._twisted_compat import accept_one_per_wakeup
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.reactors import IServerReactor
from netproto_twisted.core.service import EndpointsService, endpoint_kind

__all__ = [
    "CONTROL_FD",
    "FIRST_SOCKET_FD",
    "READY",
    "WORKER_MODULE",
    "InheritedSocket",
    "WorkerChannel",
    "WorkerParts",
    "WorkerPool",
    "inherited_sockets",
]

_log = Logger(namespace="netproto.workers")

#: The worker's end of the control pipe (worker -> master lines).
CONTROL_FD = 3
#: The first inherited listening socket in a worker.
FIRST_SOCKET_FD = 4
#: The control line a worker sends once it accepts connections.
READY = "ready"
#: Longest line relayed from a worker (longer lines are cut).
MAX_LINE = 64 * 1024
#: Longest bootstrap line a worker reads.
MAX_BOOTSTRAP = 4 * 1024 * 1024
#: The module a worker process runs (``python -m``).
WORKER_MODULE = "netproto_twisted.core.worker_process"

_FAMILIES = {"AF_INET": socket.AF_INET, "AF_INET6": socket.AF_INET6, "AF_UNIX": socket.AF_UNIX}
_LEVELS = {level.name: level for level in LogLevel.iterconstants()}


@dataclass(frozen=True)
class InheritedSocket:
    """One listening socket handed to a worker: which listener, which endpoint, which fd."""

    name: str
    endpoint: str
    family: str
    fd: int

    def to_json(self) -> dict[str, Any]:
        """The JSON form in the bootstrap."""
        return {"name": self.name, "endpoint": self.endpoint, "family": self.family, "fd": self.fd}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InheritedSocket:
        """Read the JSON form (raises :class:`ConfigError` on a malformed one)."""
        try:
            family = str(data["family"])
            if family not in _FAMILIES:
                raise ValueError(family)
            return cls(str(data["name"]), str(data["endpoint"]), family, int(data["fd"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError("bootstrap", f"bad socket description: {e}") from None


@dataclass
class WorkerParts:
    """What a builder returns: a factory per listener name and an optional extra service."""

    factories: Mapping[str, IProtocolFactory]
    service: IService | None = None
    close_timeout: float = 5.0


def _family_of(port: IListeningPort) -> str:
    host = port.getHost()
    name = type(host).__name__
    if name == "IPv6Address":
        return "AF_INET6"
    if name == "UNIXAddress":
        return "AF_UNIX"
    return "AF_INET"


def inherited_sockets(
    listeners: Sequence[EndpointsService],
) -> list[tuple[InheritedSocket, int]]:
    """Describe the listening sockets of started listeners: ``(socket, master fd)`` pairs.

    Worker fds are numbered from :data:`FIRST_SOCKET_FD` in order.  UDP
    endpoints cannot be shared (raises :class:`ConfigError`).
    """
    out: list[tuple[InheritedSocket, int]] = []
    for service in listeners:
        ports = service.ports
        if len(ports) != len(service.endpoints):
            raise ConfigError(service.name or "?", "not listening on every endpoint")
        for text, port in ports:
            if endpoint_kind(text) == "udp":
                raise ConfigError(text, "UDP endpoints cannot be shared with worker processes")
            fileno = getattr(port, "fileno", None)
            if fileno is None:
                raise ConfigError(text, "this listening port has no file descriptor")
            fd = FIRST_SOCKET_FD + len(out)
            out.append((InheritedSocket(service.name or "?", text, _family_of(port), fd),
                        int(fileno())))
    return out


# --- the master's side -----------------------------------------------------------------


class _LineBuffer:
    """Split a byte stream into lines (``\\n``), cutting lines longer than :data:`MAX_LINE`."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        if len(self._buf) > MAX_LINE:
            lines.append(self._buf[:MAX_LINE])
            self._buf = b""
        return [line[:MAX_LINE] for line in lines]

    def rest(self) -> list[bytes]:
        rest, self._buf = self._buf, b""
        return [rest] if rest else []


class _WorkerProtocol(ProcessProtocol):
    """The master's view of one worker process: bootstrap, control lines, log relay."""

    def __init__(self, pool: WorkerPool, slot: int, bootstrap: bytes) -> None:
        self.pool = pool
        self.slot = slot
        self.bootstrap = bootstrap
        self.pid = 0
        self.ready = False
        self.started = time.monotonic()
        self.last_error = ""
        self.ended: defer.Deferred[None] = defer.Deferred()
        self._buffers = {1: _LineBuffer(), 2: _LineBuffer(), CONTROL_FD: _LineBuffer()}

    def connectionMade(self) -> None:
        """Send the bootstrap line; stdin stays open (its EOF tells the worker to stop)."""
        assert self.transport is not None
        self.pid = int(self.transport.pid or 0)
        self.transport.write(self.bootstrap)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        """Relay log lines; act on control lines."""
        buffer = self._buffers.get(childFD)
        if buffer is not None:
            for line in buffer.feed(data):
                self._line(childFD, line)

    def _line(self, fd: int, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if fd == CONTROL_FD:
            self.pool._control(self, line)
        elif line:
            self.pool._relay(self, fd, line)

    def childConnectionLost(self, childFD: int) -> None:
        """Flush a partial last line."""
        buffer = self._buffers.get(childFD)
        if buffer is not None:
            for line in buffer.rest():
                self._line(childFD, line)

    def processEnded(self, reason: Failure) -> None:
        """Tell the pool (it decides about a restart)."""
        for fd in list(self._buffers):
            self.childConnectionLost(fd)
        self.pool._ended(self, reason)
        self.ended.callback(None)


@dataclass
class _Slot:
    proto: _WorkerProtocol | None = None
    failures: int = 0
    restart: Any = None
    waiters: list[defer.Deferred[int]] = field(default_factory=list)


class WorkerPool(Service):
    """Spawn and supervise ``count`` worker processes serving the listeners' sockets.

    ``builder`` is ``"module:function"`` (see :class:`WorkerParts`) and
    ``config`` its JSON-serialisable argument.  ``on_message(pid, kind,
    text)`` receives the workers' control lines other than ``ready``.  Add
    the pool to the service tree after ``listeners``: it starts once they all
    listen, and stops (first) before them.
    """

    def __init__(
        self,
        reactor: IServerReactor,
        *,
        count: int,
        builder: str,
        config: Any,
        listeners: Sequence[EndpointsService],
        on_message: Callable[[int, str, str], None] | None = None,
        name: str = "workers",
        restart_delay: float = 0.5,
        max_restart_delay: float = 30.0,
        stop_timeout: float = 10.0,
        executable: str = sys.executable,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if count < 0:
            raise ConfigError("workers", f"must be >= 1, got {count + 1}")
        if ":" not in builder:
            raise ConfigError("workers", f"builder must be 'module:function', not {builder!r}")
        self.name = name
        self.count = count
        self.builder = builder
        self.config_text = json.dumps(config)
        self._reactor = reactor
        self._listeners = list(listeners)
        self._on_message = on_message
        self.restart_delay = restart_delay
        self.max_restart_delay = max_restart_delay
        self.stop_timeout = stop_timeout
        self._executable = executable
        self._env = dict(env) if env is not None else None
        self._slots = [_Slot() for _ in range(count)]
        self._sockets: list[tuple[InheritedSocket, int]] = []
        self._ready_result: list[int] | Failure | None = None
        self._ready_waiters: list[defer.Deferred[list[int]]] = []
        self._stopping = False

    # --- public ----------------------------------------------------------------------

    @property
    def pids(self) -> list[int]:
        """The pids of the live worker processes."""
        return [s.proto.pid for s in self._slots if s.proto is not None and s.proto.pid]

    def when_ready(self) -> defer.Deferred[list[int]]:
        """Fire with the pids once every worker accepts; fail if one cannot start at all."""
        d: defer.Deferred[list[int]] = defer.Deferred()
        if self._ready_result is None:
            self._ready_waiters.append(d)
        elif isinstance(self._ready_result, Failure):
            d.errback(self._ready_result)
        else:
            d.callback(list(self._ready_result))
        return d

    def when_listening(self) -> defer.Deferred[list[tuple[str, str]]]:
        """Like an EndpointsService's: fire (no rows) once the workers are ready, or fail.

        So the combined daemon's start-up report waits for the workers, and
        a worker that cannot start ends the daemon.
        """
        return self.when_ready().addCallback(lambda _: [])

    def when_worker_ready(self, slot: int = 0) -> defer.Deferred[int]:
        """Fire with the pid of the next worker in ``slot`` to become ready (restarts too)."""
        d: defer.Deferred[int] = defer.Deferred()
        self._slots[slot].waiters.append(d)
        return d

    # --- service ---------------------------------------------------------------------

    def startService(self) -> None:
        """Once every listener listens, spawn the workers."""
        Service.startService(self)
        self._stopping = False
        if not self.count:
            self._fire_ready()
            return
        waits = [s.when_listening() for s in self._listeners]
        d = defer.gatherResults(waits, consumeErrors=True)
        d.addCallback(lambda _: self._spawn_all())
        d.addErrback(self._start_failed)

    def _start_failed(self, failure: Failure) -> None:
        if isinstance(failure.value, defer.FirstError):
            failure = failure.value.subFailure
        self._settle(failure)

    def _spawn_all(self) -> None:
        if self._stopping:
            return
        self._sockets = inherited_sockets(self._listeners)
        for service in self._listeners:  # the master takes turns with the workers too
            for _, port in service.ports:
                accept_one_per_wakeup(port)
        for slot in range(self.count):
            self._spawn(slot)

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ if self._env is None else self._env)
        # The worker imports what the master imports (a checkout, tests, editable installs).
        paths = [p for p in sys.path if p]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env

    def _spawn(self, slot: int) -> None:
        state = self._slots[slot]
        state.restart = None
        if self._stopping:
            return
        bootstrap = {
            "builder": self.builder,
            "name": self.name,
            "slot": slot,
            "config": json.loads(self.config_text),
            "sockets": [s.to_json() for s, _fd in self._sockets],
        }
        line = (json.dumps(bootstrap) + "\n").encode()
        proto = _WorkerProtocol(self, slot, line)
        child_fds: dict[int, str | int] = {0: "w", 1: "r", 2: "r", CONTROL_FD: "r"}
        for sock, master_fd in self._sockets:
            child_fds[sock.fd] = master_fd
        argv = [self._executable, "-m", WORKER_MODULE]
        try:
            self._reactor.spawnProcess(
                proto, self._executable, argv, env=self._child_env(), childFDs=child_fds
            )
        except OSError as e:
            _log.error("{name}: cannot start a worker: {e}", name=self.name, e=e)
            self._schedule_restart(slot)
            return
        state.proto = proto
        _log.info("{name}: worker {pid} started", name=self.name, pid=proto.pid)

    def _control(self, proto: _WorkerProtocol, line: str) -> None:
        kind, _, text = line.partition(" ")
        if kind == READY:
            proto.ready = True
            _log.info("{name}: worker {pid} ready", name=self.name, pid=proto.pid)
            state = self._slots[proto.slot]
            waiters, state.waiters = state.waiters, []
            for d in waiters:
                d.callback(proto.pid)
            if self._ready_result is None and all(
                s.proto is not None and s.proto.ready for s in self._slots
            ):
                self._fire_ready()
        elif self._on_message is not None and kind:
            try:
                self._on_message(proto.pid, kind, text)
            except Exception:
                _log.failure("{name}: handling {kind!r} from worker {pid} failed",
                             name=self.name, kind=kind, pid=proto.pid)

    def _fire_ready(self) -> None:
        pids = self.pids
        if self.count:
            _log.info("{name}: {n} worker(s) ready: {pids}", name=self.name, n=len(pids),
                      pids=" ".join(map(str, pids)))
        self._settle(pids)

    def _settle(self, result: list[int] | Failure) -> None:
        if self._ready_result is not None:
            return
        self._ready_result = result
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(list(result))

    def _relay(self, proto: _WorkerProtocol, fd: int, line: str) -> None:
        level = LogLevel.info if fd == 1 else LogLevel.warn
        text = line
        head, sep, rest = line.partition("|")
        if sep and head in _LEVELS:
            level = _LEVELS[head]
            namespace, sep2, message = rest.partition("|")
            text = f"[{namespace}] {message}" if sep2 else rest
        if fd == 2:
            proto.last_error = line
        _log.emit(level, "[worker {worker_pid}] {line}", worker_pid=proto.pid, line=text)

    def _ended(self, proto: _WorkerProtocol, reason: Failure) -> None:
        state = self._slots[proto.slot]
        if state.proto is proto:
            state.proto = None
        value = reason.value
        status = getattr(value, "exitCode", None)
        sig = getattr(value, "signal", None)
        how = f"signal {sig}" if sig else f"status {status}"
        if self._stopping:
            _log.info("{name}: worker {pid} exited ({how})", name=self.name, pid=proto.pid,
                      how=how)
            return
        if not proto.ready and self._ready_result is None:
            why = proto.last_error or f"worker exited ({how}) before it was ready"
            self._settle(Failure(ConfigError("", why.strip())))
            return
        if time.monotonic() - proto.started >= self.max_restart_delay:
            state.failures = 0
        delay = self._schedule_restart(proto.slot)
        _log.warn("{name}: worker {pid} exited ({how}); restarting in {delay:.1f} s",
                  name=self.name, pid=proto.pid, how=how, delay=delay)

    def _schedule_restart(self, slot: int) -> float:
        state = self._slots[slot]
        delay = float(min(self.max_restart_delay, self.restart_delay * 2.0**state.failures))
        state.failures += 1
        state.restart = self._reactor.callLater(delay, self._spawn, slot)
        return delay

    def stopService(self) -> defer.Deferred[None]:
        """SIGTERM every worker, SIGKILL those alive after ``stop_timeout``; wait for all."""
        Service.stopService(self)
        self._stopping = True
        live: list[_WorkerProtocol] = []
        for state in self._slots:
            if state.restart is not None and state.restart.active():
                state.restart.cancel()
            state.restart = None
            if state.proto is not None:
                live.append(state.proto)
        if not live:
            return defer.succeed(None)
        for proto in live:
            _signal(proto, "TERM")
        done = defer.gatherResults([p.ended for p in live], consumeErrors=True)

        def kill() -> None:
            for proto in live:
                if not proto.ended.called:
                    _log.warn("{name}: worker {pid} still running after {t} s; killing it",
                              name=self.name, pid=proto.pid, t=self.stop_timeout)
                    _signal(proto, "KILL")

        killer = self._reactor.callLater(self.stop_timeout, kill)

        def finished(_: object) -> None:
            if killer.active():
                killer.cancel()

        return done.addBoth(finished)


def _signal(proto: _WorkerProtocol, name: str) -> None:
    transport = proto.transport
    if transport is None:
        return
    with contextlib.suppress(error.ProcessExitedAlready, OSError):
        transport.signalProcess(name)
    if name == "TERM":
        transport.closeStdin()


# --- the worker's side -----------------------------------------------------------------


class WorkerChannel:
    """The worker's end of the control pipe: :meth:`send` writes one line to the master."""

    def __init__(self, fd: int = CONTROL_FD, on_broken: Callable[[], None] | None = None) -> None:
        self._fd = fd
        self._on_broken = on_broken
        self.broken = False

    def send(self, kind: str, text: str = "") -> None:
        """Send ``KIND TEXT`` (one line; kind has no space, text no newline)."""
        if " " in kind or not kind or "\n" in text or "\n" in kind:
            raise ValueError(f"bad control message {kind!r} {text!r}")
        if self.broken:
            return
        data = (f"{kind} {text}" if text else kind).encode() + b"\n"
        try:
            _write_all(self._fd, data)
        except OSError:
            self.broken = True
            if self._on_broken is not None:
                self._on_broken()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]

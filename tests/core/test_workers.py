"""Worker processes sharing listening sockets: netproto_twisted.core.workers.

The builders below run inside the worker processes (they are imported there
as ``tests.core.test_workers:...``).  Run as ``python -m tests.core.test_workers
master N`` this module is a small master process (for the SIGTERM/SIGKILL
tests): it listens, starts N-1 workers and prints ``PIDS master w1 ...``.
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from hypothesis import given
from hypothesis import strategies as st
from twisted.application.service import Service
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint, connectProtocol
from twisted.internet.error import ProcessTerminated
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, Logger, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core import worker_process as wp
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.core.workers import (
    InheritedSocket,
    WorkerChannel,
    WorkerParts,
    WorkerPool,
    _LineBuffer,
    _WorkerProtocol,
    inherited_sockets,
)
from tests.waiting import wait_for_exit

ROOT = Path(__file__).resolve().parent.parent.parent
BUILDER = "tests.core.test_workers:pid_echo_parts"
TIMEOUT = 30.0
_log = Logger()


# --- what runs in the workers ----------------------------------------------------------


class PidEcho(protocol.Protocol):
    """Says which process serves the connection, then echoes."""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(f"{os.getpid()}\n".encode())
        notify: Callable[[], None] | None = getattr(self.factory, "notify", None)
        if notify is not None:
            notify()

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


class _Hang(Service):
    """A service that never finishes stopping (a stuck worker)."""

    def stopService(self) -> defer.Deferred[None]:
        Service.stopService(self)
        return defer.Deferred()


def pid_echo_parts(config: Any, reactor: Any, channel: WorkerChannel) -> WorkerParts:
    """The test builder: a PidEcho factory for every listener name in ``config["names"]``."""
    config = config or {}
    if config.get("fail"):
        raise ConfigError("test.key", config["fail"])
    factory = protocol.Factory.forProtocol(PidEcho)
    if config.get("notify"):
        factory.notify = lambda: channel.send("hello", str(os.getpid()))  # type: ignore[attr-defined]
    _log.info("builder ran in {pid}", pid=os.getpid())
    service = _Hang() if config.get("hang") else None
    names = config.get("names", ["echo"])
    return WorkerParts(factories=dict.fromkeys(names, factory), service=service)


# --- helpers ---------------------------------------------------------------------------


class _FirstLine(protocol.Protocol):
    def __init__(self) -> None:
        self.line: defer.Deferred[int] = defer.Deferred()
        self._buf = b""

    def dataReceived(self, data: bytes) -> None:
        self._buf += data
        if b"\n" in self._buf and not self.line.called:
            assert self.transport is not None
            self.transport.loseConnection()
            self.line.callback(int(self._buf.split(b"\n")[0]))

    def connectionLost(self, reason: Any = None) -> None:
        if not self.line.called:
            self.line.errback(reason)


async def served_by(endpoint: Any) -> int:
    """Connect once; return the pid that served the connection."""
    proto = _FirstLine()
    await connectProtocol(endpoint, proto)
    return await proto.line


async def pids_seen(
    make_endpoint: Callable[[], Any], want: set[int], timeout: float = TIMEOUT
) -> set[int]:
    """Connect in rounds of 20 parallel connections until every pid in ``want`` served one.

    Bounded by ``timeout``; a short pause between rounds lets a worker that a
    loaded machine has not scheduled yet get the CPU.
    """
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        results = await defer.gatherResults(
            [defer.ensureDeferred(served_by(make_endpoint())) for _ in range(20)]
        )
        seen.update(results)
        if want <= seen or time.monotonic() > deadline:
            return seen
        await task.deferLater(reactor, 0.01, lambda: None)


async def wait_until(condition: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Poll ``condition`` every 20 ms (bounded)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await task.deferLater(reactor, 0.02, lambda: None)


def gone(pid: int) -> bool:
    """True once ``pid`` is no process (or a zombie nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return True
    return stat[stat.rfind(b")") + 2 :].split()[0] == b"Z"


class PoolTestsMixin:
    """Start a master listener and a pool in this process; stop both in cleanups."""

    def start_pool(
        self,
        listen: list[str] | None = None,
        config: Any = None,
        count: int = 1,
        **kwargs: Any,
    ) -> tuple[EndpointsService, WorkerPool]:
        factory = protocol.Factory.forProtocol(PidEcho)
        listener = EndpointsService(
            "echo", reactor, listen or ["tcp:0:interface=127.0.0.1"], factory
        )
        pool = WorkerPool(
            reactor,
            count=count,
            builder=BUILDER,
            config=config,
            listeners=[listener],
            restart_delay=0.05,
            max_restart_delay=1.0,
            stop_timeout=10.0,
            **kwargs,
        )
        listener.startService()
        pool.startService()
        test: TestCase = self  # type: ignore[assignment]
        test.addCleanup(listener.stopService)
        test.addCleanup(self._stop_pool, pool)
        return listener, pool

    async def _stop_pool(self, pool: WorkerPool) -> None:
        pids = list(pool.pids)
        if pool.running:
            await pool.stopService()
        for pid in pids:  # belt and braces: never leave a process behind
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


def short_socket_path(test: SynchronousTestCase | TestCase) -> str:
    """A unix socket path short enough for AF_UNIX (removed afterwards)."""
    import shutil
    import tempfile

    directory = tempfile.mkdtemp(prefix="npw-")
    test.addCleanup(shutil.rmtree, directory, True)
    return os.path.join(directory, "s")


def tcp_port(listener: EndpointsService) -> int:
    return int(listener.addresses[0][1].rsplit(":", 1)[1])


# --- tests -----------------------------------------------------------------------------


class LineBufferTests(SynchronousTestCase):
    @given(st.lists(st.binary(max_size=40), max_size=20))
    def test_lines_survive_any_chunking(self, chunks: list[bytes]) -> None:
        buffer = _LineBuffer()
        lines = []
        for chunk in chunks:
            lines += buffer.feed(chunk)
        lines += buffer.rest()
        whole = b"".join(chunks)
        expected = whole.split(b"\n")
        if expected and expected[-1] == b"":
            expected.pop()
        self.assertEqual(lines, expected)

    def test_long_line_is_cut(self) -> None:
        buffer = _LineBuffer()
        lines = buffer.feed(b"x" * (70 * 1024))
        self.assertEqual([len(x) for x in lines], [64 * 1024])


class InheritedSocketTests(SynchronousTestCase):
    def test_json_round_trip(self) -> None:
        sock = InheritedSocket("smtp", "tcp:25", "AF_INET6", 5)
        self.assertEqual(InheritedSocket.from_json(json.loads(json.dumps(sock.to_json()))), sock)

    def test_bad_family(self) -> None:
        with self.assertRaises(ConfigError):
            InheritedSocket.from_json({"name": "a", "endpoint": "b", "family": "AF_X", "fd": 4})

    def test_udp_cannot_be_shared(self) -> None:
        listener = EndpointsService(
            "u", reactor, ["udp:0:interface=127.0.0.1"], datagram=protocol.DatagramProtocol()
        )
        listener.startService()
        self.addCleanup(listener.stopService)
        with self.assertRaises(ConfigError) as e:
            inherited_sockets([listener])
        self.assertIn("UDP", str(e.exception))

    def test_bad_builder_and_count(self) -> None:
        with self.assertRaises(ConfigError):
            WorkerPool(reactor, count=1, builder="nocolon", config=None, listeners=[])
        with self.assertRaises(ConfigError):
            WorkerPool(reactor, count=-1, builder="a:b", config=None, listeners=[])


class RestartDelayTests(SynchronousTestCase):
    """The back-off, on a fake clock."""

    def pool(self) -> tuple[WorkerPool, MemoryReactorClock]:
        clock = MemoryReactorClock()
        pool = WorkerPool(clock, count=1, builder=BUILDER, config=None, listeners=[],
                          restart_delay=0.5, max_restart_delay=4.0)
        pool._settle([])  # as if started: a worker ending now is restarted
        return pool, clock

    def end(self, pool: WorkerPool, lived: float) -> float:
        proto = _WorkerProtocol(pool, 0, b"")
        proto.ready = True
        proto.started = time.monotonic() - lived
        pool._ended(proto, Failure(ProcessTerminated(exitCode=1)))
        call = pool._slots[0].restart
        assert call is not None
        call.cancel()
        return float(call.getTime())

    def test_delay_doubles_up_to_the_maximum(self) -> None:
        pool, _clock = self.pool()
        self.assertEqual([self.end(pool, 0.1) for _ in range(6)], [0.5, 1, 2, 4, 4, 4])

    def test_a_worker_that_lived_long_resets_the_delay(self) -> None:
        pool, _clock = self.pool()
        self.assertEqual([self.end(pool, 0.1) for _ in range(3)], [0.5, 1, 2])
        self.assertEqual(self.end(pool, 5.0), 0.5)

    def test_no_restart_while_stopping(self) -> None:
        pool, clock = self.pool()
        pool._stopping = True
        proto = _WorkerProtocol(pool, 0, b"")
        pool._ended(proto, Failure(ProcessTerminated(exitCode=0)))
        self.assertIsNone(pool._slots[0].restart)
        self.assertEqual(clock.getDelayedCalls(), [])


class WorkerPoolTests(PoolTestsMixin, TestCase):
    timeout = 120

    async def test_two_processes_serve_one_port(self) -> None:
        listener, pool = self.start_pool()
        workers = await pool.when_ready()
        self.assertEqual(len(workers), 1)
        self.assertNotEqual(workers[0], os.getpid())
        port = tcp_port(listener)
        seen = await pids_seen(
            lambda: TCP4ClientEndpoint(reactor, "127.0.0.1", port), {os.getpid(), workers[0]}
        )
        self.assertEqual(seen, {os.getpid(), workers[0]})

    async def test_no_workers_is_just_the_master(self) -> None:
        listener, pool = self.start_pool(count=0)
        self.assertEqual(await pool.when_ready(), [])
        self.assertEqual(await pool.when_listening(), [])
        port = tcp_port(listener)
        seen = await pids_seen(lambda: TCP4ClientEndpoint(reactor, "127.0.0.1", port), set())
        self.assertEqual(seen, {os.getpid()})

    async def test_killed_worker_is_restarted(self) -> None:
        listener, pool = self.start_pool()
        [first] = await pool.when_ready()
        restarted = pool.when_worker_ready(0)
        os.kill(first, signal.SIGKILL)
        second = await restarted
        self.assertNotEqual(second, first)
        self.assertEqual(pool.pids, [second])
        port = tcp_port(listener)
        seen = await pids_seen(lambda: TCP4ClientEndpoint(reactor, "127.0.0.1", port), {second})
        self.assertIn(second, seen)
        self.assertNotIn(first, seen)

    async def test_control_messages_reach_the_master(self) -> None:
        messages: list[tuple[int, str, str]] = []
        listener, pool = self.start_pool(
            config={"notify": True}, on_message=lambda *m: messages.append(m)
        )
        [worker] = await pool.when_ready()
        port = tcp_port(listener)
        await pids_seen(lambda: TCP4ClientEndpoint(reactor, "127.0.0.1", port), {worker})
        await wait_until(lambda: bool(messages))
        self.assertEqual(messages[0], (worker, "hello", str(worker)))

    async def test_worker_log_lines_reach_the_master(self) -> None:
        events: list[dict[str, Any]] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        _listener, pool = self.start_pool()
        [worker] = await pool.when_ready()
        relayed = [e for e in events if e.get("worker_pid") == worker]
        self.assertIn(f"builder ran in {worker}", " ".join(e["line"] for e in relayed))
        self.assertTrue(all("\n" not in e["line"] for e in relayed))

    async def test_config_error_in_a_worker_fails_the_start(self) -> None:
        _listener, pool = self.start_pool(config={"fail": "cannot create /nowhere"})
        with self.assertRaises(ConfigError) as e:
            await pool.when_listening()
        text = str(e.exception)
        self.assertIn("test.key: cannot create /nowhere", text)
        self.assertNotIn("\n", text)
        self.assertEqual(pool.pids, [])
        self.assertIsNone(pool._slots[0].restart)  # not restarted: it would fail again

    async def test_tls_listener(self) -> None:
        from twisted.internet import ssl
        from twisted.internet.endpoints import SSL4ClientEndpoint

        from netproto_twisted.core.tls import ensure_dev_certificate, tls_server_endpoint_args

        cert, key = ensure_dev_certificate(Path(self.mktemp()))
        listen = [f"ssl:0:interface=127.0.0.1:{tls_server_endpoint_args(cert, key)}"]
        listener, pool = self.start_pool(listen=listen)
        [worker] = await pool.when_ready()
        port = tcp_port(listener)
        client = ssl.CertificateOptions(verify=False)
        seen = await pids_seen(
            lambda: SSL4ClientEndpoint(reactor, "127.0.0.1", port, client), {worker}
        )
        self.assertIn(worker, seen)

    async def test_unix_listener(self) -> None:
        path = short_socket_path(self)
        _listener, pool = self.start_pool(listen=[f"unix:{path}"])
        [worker] = await pool.when_ready()
        seen = await pids_seen(lambda: UNIXClientEndpoint(reactor, path), {worker, os.getpid()})
        self.assertEqual(seen, {worker, os.getpid()})
        # A worker going away leaves the socket file alone: it is the master's.
        restarted = pool.when_worker_ready(0)
        os.kill(worker, signal.SIGKILL)
        second = await restarted
        self.assertTrue(os.path.exists(path))
        self.assertIn(second, await pids_seen(lambda: UNIXClientEndpoint(reactor, path), {second}))

    async def test_stuck_worker_is_killed_after_the_timeout(self) -> None:
        _listener, pool = self.start_pool(config={"hang": True})
        [worker] = await pool.when_ready()
        pool.stop_timeout = 0.5
        start = time.monotonic()
        await pool.stopService()
        self.assertTrue(gone(worker))
        self.assertLess(time.monotonic() - start, 10)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


class WorkerMainTests(SynchronousTestCase):
    def test_config_error_is_one_line_and_status_1(self) -> None:
        bootstrap = {"builder": BUILDER, "name": "netproto-test", "config": {"fail": "bad value"},
                     "sockets": []}
        proc = subprocess.run(
            [sys.executable, "-m", "netproto_twisted.core.worker_process"],
            input=json.dumps(bootstrap) + "\n", capture_output=True, text=True,
            timeout=TIMEOUT, env=_env(), check=False,
        )  # fmt: skip
        self.assertEqual(proc.returncode, 1)
        lines = proc.stderr.splitlines()
        self.assertEqual(len(lines), 1, proc.stderr)
        self.assertRegex(lines[0], r"^netproto-test worker \d+: test\.key: bad value$")

    def test_bad_builder_is_one_line(self) -> None:
        bootstrap: dict[str, Any] = {"builder": "tests.nothing:here", "sockets": []}
        proc = subprocess.run(
            [sys.executable, "-m", "netproto_twisted.core.worker_process"],
            input=json.dumps(bootstrap) + "\n", capture_output=True, text=True,
            timeout=TIMEOUT, env=_env(), check=False,
        )  # fmt: skip
        self.assertEqual(proc.returncode, 1)
        self.assertEqual(len(proc.stderr.splitlines()), 1, proc.stderr)
        self.assertIn("cannot load 'tests.nothing:here'", proc.stderr)


class MasterProcessTests(SynchronousTestCase):
    """A separate master process: SIGTERM stops everything; SIGKILL leaves no worker behind."""

    def start_master(self, processes: int) -> tuple[subprocess.Popen[str], list[int]]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.core.test_workers", "master", str(processes)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, env=_env(), cwd=ROOT,
        )  # fmt: skip
        pids: list[int] = []

        def cleanup() -> None:
            for pid in [proc.pid, *pids]:
                if not gone(pid):
                    os.kill(pid, signal.SIGKILL)
            proc.wait(TIMEOUT)
            assert proc.stdout is not None
            proc.stdout.close()

        self.addCleanup(cleanup)
        assert proc.stdout is not None
        deadline = time.monotonic() + TIMEOUT
        output = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output.append(line)
            if line.startswith("PIDS "):
                pids[:] = [int(p) for p in line.split()[2:]]
                return proc, pids
        raise AssertionError("master did not start:\n" + "".join(output))

    def wait_gone(self, pids: list[int]) -> None:
        deadline = time.monotonic() + TIMEOUT
        for pid in pids:  # woken by each one's pidfd when it exits
            wait_for_exit(pid, max(0.0, deadline - time.monotonic()))

    def test_sigterm_stops_master_and_workers(self) -> None:
        proc, workers = self.start_master(3)
        self.assertEqual(len(workers), 2)
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(TIMEOUT), 0)
        self.wait_gone(workers)

    def test_workers_stop_when_the_master_dies(self) -> None:
        proc, workers = self.start_master(2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(TIMEOUT)
        self.wait_gone(workers)


def _master(processes: int) -> None:
    """Run a master process: listen, start the workers, print ``PIDS master w...``."""
    from twisted.application.service import MultiService

    root = MultiService()
    listener = EndpointsService("echo", reactor, ["tcp:0:interface=127.0.0.1"],
                                protocol.Factory.forProtocol(PidEcho))
    root.addService(listener)
    pool = WorkerPool(reactor, count=processes - 1, builder=BUILDER, config=None,
                      listeners=[listener])
    root.addService(pool)

    def ready(pids: list[int]) -> None:
        print("PIDS", os.getpid(), *pids, flush=True)

    def failed(f: Any) -> None:
        print("FAILED", f.getErrorMessage(), flush=True)
        reactor.stop()

    reactor.callWhenRunning(root.startService)
    reactor.callWhenRunning(lambda: pool.when_ready().addCallbacks(ready, failed))
    reactor.addSystemEventTrigger("before", "shutdown", root.stopService)
    reactor.run()


if __name__ == "__main__" and sys.argv[1:2] == ["master"]:
    _master(int(sys.argv[2]))


# --- the worker process's pieces, in this process ---------------------------------------


class BootstrapAndBuilderTests(SynchronousTestCase):
    def pipe_with(self, data: bytes) -> int:
        r, w = os.pipe()
        os.write(w, data)
        os.close(w)
        self.addCleanup(os.close, r)
        return r

    def test_bootstrap_line(self) -> None:
        fd = self.pipe_with(b'{"builder": "a:b", "sockets": []}\n')
        self.assertEqual(wp._read_bootstrap(fd), {"builder": "a:b", "sockets": []})

    def test_bad_bootstraps(self) -> None:
        for data, why in ((b'{"a": 1}', "closed the pipe"), (b"nope\n", "not JSON"),
                          (b"[1]\n", "not a JSON object")):
            with self.assertRaises(ConfigError) as e:
                wp._read_bootstrap(self.pipe_with(data))
            self.assertIn(why, str(e.exception))

    def test_load_builder(self) -> None:
        self.assertIs(wp.load_builder(BUILDER), pid_echo_parts)
        for bad in ("tests.nothing:here", "tests.core.test_workers:nothing",
                    "tests.core.test_workers:BUILDER"):
            with self.assertRaises(ConfigError):
                wp.load_builder(bad)


class ChannelAndLogTests(SynchronousTestCase):
    def test_channel_lines(self) -> None:
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        channel = WorkerChannel(w)
        channel.send("ready")
        channel.send("queued", "0123")
        os.close(w)
        self.assertEqual(os.read(r, 100), b"ready\nqueued 0123\n")
        for kind, text in (("two words", ""), ("", ""), ("k", "a\nb")):
            with self.assertRaises(ValueError):
                channel.send(kind, text)

    def test_broken_channel_calls_back_once(self) -> None:
        r, w = os.pipe()
        os.close(r)
        self.addCleanup(os.close, w)
        calls: list[int] = []
        channel = WorkerChannel(w, on_broken=lambda: calls.append(1))
        old = signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.addCleanup(signal.signal, signal.SIGPIPE, old)
        channel.send("ready")
        channel.send("ready")
        self.assertTrue(channel.broken)
        self.assertEqual(calls, [1])

    def test_log_lines(self) -> None:
        out: list[bytes] = []
        observer = wp._log_line_observer(out.append)
        log = Logger(namespace="ns.x", observer=observer)
        log.warn("two\nlines {n}", n=2)
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            log.failure("boom")
        text = b"".join(out).decode()
        lines = text.splitlines()
        self.assertEqual(lines[:2], ["warn|ns.x|two", "warn|ns.x|lines 2"])
        self.assertEqual(lines[2], "critical|ns.x|boom")
        self.assertTrue(all(line.startswith("critical|ns.x|") for line in lines[2:]))
        self.assertIn("ZeroDivisionError", text)


class _Closing(protocol.Factory):
    protocol = PidEcho

    def __init__(self) -> None:
        self.closed: list[float] = []

    def close_all(self, timeout: float) -> defer.Deferred[None]:
        self.closed.append(timeout)
        return defer.succeed(None)


class AdoptionTests(TestCase):
    def listening(self, family: int, address: Any) -> int:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.bind(address)
        sock.listen(10)
        fd = os.dup(sock.fileno())
        sock.close()
        return fd

    async def test_adopt_tcp_serve_and_stop(self) -> None:
        fd = self.listening(socket.AF_INET, ("127.0.0.1", 0))
        port = socket.socket(fileno=os.dup(fd)).getsockname()[1]
        factory = _Closing()
        ready: list[bool] = []
        service = wp._AdoptedListeners(
            reactor, [InheritedSocket("echo", "tcp:0", "AF_INET", fd)],
            WorkerParts({"echo": factory}, close_timeout=3.0), lambda: ready.append(True),
        )  # fmt: skip
        service.startService()
        self.assertEqual(ready, [True])
        self.assertEqual(await served_by(TCP4ClientEndpoint(reactor, "127.0.0.1", port)),
                         os.getpid())
        await service.stopService()
        self.assertEqual(factory.closed, [3.0])
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()

    async def test_adopt_unix_leaves_the_file(self) -> None:
        path = short_socket_path(self)
        fd = self.listening(socket.AF_UNIX, path)
        os.chmod(path, 0o600)
        service = wp._AdoptedListeners(
            reactor, [InheritedSocket("echo", f"unix:{path}", "AF_UNIX", fd)],
            WorkerParts({"echo": protocol.Factory.forProtocol(PidEcho)}), lambda: None,
        )  # fmt: skip
        service.startService()
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)  # the master's mode kept
        self.assertEqual(await served_by(UNIXClientEndpoint(reactor, path)), os.getpid())
        await service.stopService()
        self.assertTrue(os.path.exists(path))

    def test_missing_factory(self) -> None:
        fd = self.listening(socket.AF_INET, ("127.0.0.1", 0))
        self.addCleanup(os.close, fd)
        service = wp._AdoptedListeners(
            reactor, [InheritedSocket("other", "tcp:0", "AF_INET", fd)],
            WorkerParts({"echo": protocol.Factory.forProtocol(PidEcho)}), lambda: None,
        )  # fmt: skip
        with self.assertRaises(ConfigError):
            service.startService()

    def test_tls_wrapping(self) -> None:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        from netproto_twisted.core.tls import ensure_dev_certificate, tls_server_endpoint_args

        cert, key = ensure_dev_certificate(Path(self.mktemp()))
        text = f"ssl:0:interface=127.0.0.1:{tls_server_endpoint_args(cert, key)}"
        inner = protocol.Factory.forProtocol(PidEcho)
        wrapped = wp._tls_wrapped(reactor, text, inner)
        self.assertIsInstance(wrapped, TLSMemoryBIOFactory)
        self.assertIs(wrapped.wrappedFactory, inner)  # type: ignore[attr-defined]

    async def test_master_watch_sees_eof(self) -> None:
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        gone_: defer.Deferred[None] = defer.Deferred()
        watch = wp._MasterWatch(r, lambda: gone_.callback(None))
        reactor.addReader(watch)
        self.addCleanup(reactor.removeReader, watch)
        os.write(w, b"ignored\n")
        os.close(w)
        await gone_

"""The shared benchmark harness: start servers, drive a bounded load, report medians.

A bench script builds a list of :class:`Case` objects (a server command line and
a load) and hands them to :func:`main`. For each case and each of R runs the
harness starts the server as a subprocess, waits until its port accepts, drives
the load, samples the peak RSS of the server's process tree, and stops it.
Runs are interleaved (A1 B1 C1 A2 B2 C2 ...) so that drift of a shared machine
hits every case alike. The table shows medians and each row's ratio to a
baseline row.

The built-in load generator, :func:`run_load`, is one epoll loop over
non-blocking sockets in one thread: the cheapest way to drive many
request/response clients from CPython. Its own CPU time per request is
measured and reported so that a reader can tell whether it was the bottleneck.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import platform
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

__all__ = [
    "TABLE_HEADERS",
    "Case",
    "CaseResult",
    "Dialogue",
    "LoadParams",
    "LoadResult",
    "RunResult",
    "ServerProcess",
    "ServerSpec",
    "Step",
    "add_arguments",
    "dialogue_load",
    "format_table",
    "main",
    "params_from_args",
    "percentile",
    "process_tree",
    "read_busy_seconds",
    "read_cpu_seconds",
    "read_peak_rss",
    "run_bench",
    "run_case_once",
    "run_load",
    "wait_for_port",
    "write_json",
]

_POLL_INTERVAL = 0.02
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_EPOLL_IN = select.EPOLLIN
_EPOLL_OUT = select.EPOLLOUT
_EPOLL_ERR = select.EPOLLERR | select.EPOLLHUP


# --------------------------------------------------------------------------- processes


def process_tree(pid: int) -> list[int]:
    """Return ``pid`` and all its live descendants (found through /proc/*/stat)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        parents.setdefault(int(fields[1]), []).append(int(entry))
    tree: list[int] = []
    todo = [pid]
    while todo and len(tree) < 100_000:
        p = todo.pop()
        tree.append(p)
        todo.extend(parents.get(p, ()))
    return tree


def _status_kb(pid: int, key: bytes) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def read_peak_rss(pid: int, include_children: bool = True) -> int:
    """Return the peak RSS in bytes (VmHWM) of ``pid``, summed over its live descendants.

    Threads share their process's memory, so they are counted once. Children's
    peaks are added although they may not have coincided: an upper bound.
    """
    pids = process_tree(pid) if include_children else [pid]
    return sum(_status_kb(p, b"VmHWM:") for p in pids) * 1024


def read_cpu_seconds(pid: int) -> float:
    """Return the CPU seconds (user + system, all threads) used by ``pid`` and its descendants.

    Children that already exited count when their parent has waited for them.
    """
    ticks = 0
    for i, p in enumerate(process_tree(pid)):
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        # fields[11:15] are utime stime cutime cstime; waited-for children only for the root
        ticks += sum(int(x) for x in fields[11 : 15 if i == 0 else 13])
    return ticks / _CLK_TCK


def read_busy_seconds() -> float:
    """Return the CPU seconds the machine's processes (and its hypervisor) took since boot.

    From /proc/stat: user, nice, system and steal. Interrupt and softirq time
    is left out: the kernel accounts much of our own loopback traffic there.
    """
    with open("/proc/stat", "rb") as f:
        fields = f.readline().split()[1:]
    # user nice system idle iowait irq softirq steal
    return sum(int(fields[i]) for i in (0, 1, 2, 7)) / _CLK_TCK


class _RssSampler:
    """Sample :func:`read_peak_rss` in a thread, so that short-lived children are seen."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> int:
        """Take one sample now and return the peak so far."""
        self.peak = max(self.peak, read_peak_rss(self.pid))
        return self.peak

    def __enter__(self) -> _RssSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()


def wait_for_port(
    host: str,
    port: int,
    timeout: float = 30.0,
    proc: subprocess.Popen[bytes] | None = None,
) -> float:
    """Wait until ``host:port`` accepts a TCP connection; return the seconds it took.

    Raises :class:`TimeoutError` after ``timeout`` seconds and
    :class:`RuntimeError` as soon as ``proc`` (the server) exits.
    """
    start = time.monotonic()
    deadline = start + timeout
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}) before {host}:{port} accepted")
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(max(0.05, min(1.0, deadline - time.monotonic())))
            try:
                s.connect((host, port))
                return time.monotonic() - start
            except OSError:
                pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{host}:{port} did not accept within {timeout} s")
        time.sleep(_POLL_INTERVAL)


@dataclass
class ServerSpec:
    """How to start one server: argv, env, cwd, and how to learn its port."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    host: str = "127.0.0.1"
    #: A fixed port, or None to read it from the output with ``port_regex``.
    port: int | None = None
    #: A regex over the server's output; its group "port" (or group 1) is the port.
    port_regex: str | None = None
    ready_timeout: float = 30.0
    stop_timeout: float = 10.0


class ServerProcess:
    """A server subprocess in its own session; output goes to a temporary file."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        self.port = spec.port
        self._log: IO[bytes] = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix=f"bench-{re.sub(r'[^A-Za-z0-9]+', '-', spec.name)}-", suffix=".log"
        )
        env = dict(os.environ)
        env.update(spec.env or {})
        self.proc = subprocess.Popen(
            list(spec.argv),
            cwd=spec.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def output(self) -> str:
        """Everything the server printed so far."""
        try:
            return Path(self._log.name).read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self) -> int:
        """Wait for the port line (if any) and for the port to accept; return the port."""
        spec = self.spec
        deadline = time.monotonic() + spec.ready_timeout
        if spec.port_regex is not None:
            rx = re.compile(spec.port_regex, re.MULTILINE)
            while True:
                m = rx.search(self.output())
                if m:
                    self.port = int(m.group("port") if "port" in rx.groupindex else m.group(1))
                    break
                if self.proc.poll() is not None:
                    code = self.proc.returncode
                    raise RuntimeError(f"{spec.name} exited ({code}):\n{self.output()}")
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{spec.name}: no {spec.port_regex!r} in:\n{self.output()}")
                time.sleep(_POLL_INTERVAL)
        if self.port is None:
            raise ValueError(f"{spec.name}: neither port nor port_regex given")
        try:
            wait_for_port(spec.host, self.port, max(0.1, deadline - time.monotonic()), self.proc)
        except (RuntimeError, TimeoutError) as e:
            raise type(e)(f"{spec.name}: {e}\n{self.output()}") from e
        return self.port

    def peak_rss(self) -> int:
        """Peak RSS in bytes of the server and its live children."""
        return read_peak_rss(self.pid)

    def stop(self) -> int | None:
        """SIGTERM, wait, then SIGKILL the whole session; return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(self.spec.stop_timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers of a forking server
        self.proc.wait(self.spec.stop_timeout)
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Step:
    """Send ``send``, then read until the response is complete.

    ``until`` is a byte count (int), a suffix the buffer ends with (bytes), or a
    compiled regex searched in the buffer (for multi-line replies; keep such
    responses small, the buffer is searched whole on every read).
    """

    send: bytes
    until: int | bytes | re.Pattern[bytes]


@dataclass(frozen=True)
class Dialogue:
    """What each client does on a connection: greeting, setup, requests, teardown.

    One request is one pass through ``request``; its latency runs from the
    first send of the pass to the end of its last response.
    """

    request: Sequence[Step]
    #: What the server sends unprompted on connect (send must be b"").
    greeting: Step | None = None
    setup: Sequence[Step] = ()
    teardown: Sequence[Step] = ()
    #: Reconnect after this many requests (0: one connection per client).
    requests_per_connection: int = 0


@dataclass
class LoadResult:
    """What one load run did: completed requests, errors, time, generator CPU, latencies."""

    requests: int
    errors: int
    elapsed: float
    cpu: float
    latencies: list[float] = field(default_factory=list, repr=False)
    timed_out: bool = False

    @property
    def rps(self) -> float:
        """Completed requests per second of wall-clock time."""
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def cpu_per_request(self) -> float:
        """Seconds of load-generator CPU per completed request."""
        return self.cpu / self.requests if self.requests else 0.0


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of already sorted values (0.0 if empty)."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


_GREETING, _SETUP, _REQUEST, _TEARDOWN = range(4)


class _Conn:
    __slots__ = ("buf", "client", "count", "idx", "phase", "sock", "t0")

    def __init__(self, sock: socket.socket, client: int) -> None:
        self.sock = sock
        self.client = client
        self.buf = bytearray()
        self.phase = _GREETING
        self.idx = 0
        self.count = 0
        self.t0 = 0.0


def run_load(
    host: str,
    port: int,
    dialogue: Dialogue,
    clients: int,
    requests: int,
    time_limit: float,
) -> LoadResult:
    """Drive ``clients`` connections, ``requests`` requests each, ``time_limit`` s at most.

    One thread, one epoll, non-blocking sockets with TCP_NODELAY. A client
    whose connection fails or closes early counts one error and stops.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    phases: list[Sequence[Step]] = [
        [dialogue.greeting] if dialogue.greeting is not None else [],
        dialogue.setup,
        dialogue.request,
        dialogue.teardown,
    ]
    if not dialogue.request:
        raise ValueError("a dialogue needs at least one request step")
    per_conn = dialogue.requests_per_connection
    ep = select.epoll()
    conns: dict[int, _Conn] = {}
    done = [0] * clients
    latencies: list[float] = []
    lat_append = latencies.append
    perf = time.perf_counter
    errors = 0
    finished = 0

    def connect(client: int) -> None:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = s.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            raise OSError(err, os.strerror(err))
        c = _Conn(s, client)
        conns[s.fileno()] = c
        ep.register(s.fileno(), _EPOLL_OUT)

    def close(c: _Conn) -> None:
        fd = c.sock.fileno()
        if fd < 0:
            return
        ep.unregister(fd)
        del conns[fd]
        c.sock.close()

    def next_step(c: _Conn, now: float) -> None:
        """Send the step at (phase, idx), skipping empty phases; close when all is done."""
        nonlocal finished
        while True:
            steps = phases[c.phase]
            if c.idx < len(steps):
                if c.phase == _REQUEST and c.idx == 0:
                    c.t0 = now
                data = steps[c.idx].send
                if data:
                    c.sock.send(data)  # small writes on a fresh socket buffer never block
                return
            # phase exhausted
            if c.phase == _REQUEST:
                lat_append(now - c.t0)
                c.count += 1
                done[c.client] += 1
                c.idx = 0
                if done[c.client] < requests and (not per_conn or c.count < per_conn):
                    continue
            if c.phase == _TEARDOWN:
                close(c)
                if done[c.client] < requests:
                    connect(c.client)
                else:
                    finished += 1
                return
            c.phase += 1
            c.idx = 0

    cpu0 = time.process_time()
    t_start = perf()
    deadline = t_start + time_limit
    for i in range(clients):
        connect(i)
    # A bound on loop turns besides the clock: each turn completes at least one read.
    max_turns = clients * (requests + 2) * (len(dialogue.request) + len(dialogue.setup) + 4) * 64
    turns = 0
    timed_out = False
    poll = ep.poll
    while finished + errors < clients:
        now = perf()
        if now >= deadline or turns >= max_turns:
            timed_out = True
            break
        turns += 1
        for fd, ev in poll(min(1.0, deadline - now)):
            c = conns.get(fd)
            if c is None:
                continue
            now = perf()
            try:
                if ev & _EPOLL_OUT:  # connect finished
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    ep.modify(fd, _EPOLL_IN)
                    c.phase, c.idx, c.count = _GREETING, 0, 0
                    next_step(c, now)
                    continue
                data = c.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed by server")
                buf = c.buf
                buf += data
                until = phases[c.phase][c.idx].until
                if isinstance(until, int):
                    complete = len(buf) >= until
                elif isinstance(until, bytes):
                    complete = buf.endswith(until)
                else:
                    complete = until.search(buf) is not None
                if complete:
                    buf.clear()
                    c.idx += 1
                    next_step(c, now)
            except OSError:
                if c.phase == _TEARDOWN:  # the server may close first, as for QUIT
                    close(c)
                    if done[c.client] < requests:
                        connect(c.client)
                    else:
                        finished += 1
                    continue
                errors += 1
                close(c)
    elapsed = perf() - t_start
    cpu = time.process_time() - cpu0
    for c in list(conns.values()):
        close(c)
    ep.close()
    return LoadResult(sum(done), errors, elapsed, cpu, latencies, timed_out)


# --------------------------------------------------------------------------- cases and runs


@dataclass(frozen=True)
class LoadParams:
    """The size of a load: clients, requests per client, wall-clock cap, runs."""

    clients: int
    requests: int
    time_limit: float
    runs: int


LoadFn = Callable[[str, int, LoadParams], LoadResult]


def dialogue_load(dialogue: Dialogue) -> LoadFn:
    """Return a load function that runs :func:`run_load` with ``dialogue``."""

    def load(host: str, port: int, params: LoadParams) -> LoadResult:
        return run_load(host, port, dialogue, params.clients, params.requests, params.time_limit)

    return load


@dataclass
class Case:
    """One row of the table: a server and the load to drive at it."""

    name: str
    server: ServerSpec
    load: LoadFn
    #: Why this case cannot run here (a peer missing), or None.
    skip_reason: str | None = None


@dataclass
class RunResult:
    """The figures of one run of one case."""

    rps: float
    p50_ms: float
    p99_ms: float
    rss_mb: float
    srv_cpu_us_per_req: float
    #: CPU used by everything else on the machine during the run, in % of one CPU.
    others_cpu_pct: float
    requests: int
    errors: int
    elapsed: float
    gen_cpu_us_per_req: float
    gen_cpu_pct: float
    timed_out: bool


@dataclass
class CaseResult:
    """All runs of one case and their medians."""

    name: str
    runs: list[RunResult] = field(default_factory=list)
    skip_reason: str | None = None
    failures: list[str] = field(default_factory=list)

    def median(self, attr: str) -> float:
        """Median of one RunResult attribute over the runs (0.0 without runs)."""
        values = [float(getattr(r, attr)) for r in self.runs]
        return statistics.median(values) if values else 0.0


def run_case_once(case: Case, params: LoadParams) -> RunResult:
    """Start the case's server, drive its load once, sample RSS, stop it."""
    with ServerProcess(case.server) as server:
        port = server.wait_ready()
        with _RssSampler(server.pid) as sampler:
            cpu0, busy0 = read_cpu_seconds(server.pid), read_busy_seconds()
            result = case.load(case.server.host, port, params)
            srv_cpu = read_cpu_seconds(server.pid) - cpu0
            others = read_busy_seconds() - busy0 - srv_cpu - result.cpu
    lat = sorted(result.latencies)
    return RunResult(
        rps=result.rps,
        p50_ms=percentile(lat, 50) * 1000,
        p99_ms=percentile(lat, 99) * 1000,
        rss_mb=sampler.peak / 1e6,
        srv_cpu_us_per_req=srv_cpu / result.requests * 1e6 if result.requests else 0.0,
        others_cpu_pct=max(0.0, 100.0 * others / result.elapsed) if result.elapsed else 0.0,
        requests=result.requests,
        errors=result.errors,
        elapsed=result.elapsed,
        gen_cpu_us_per_req=result.cpu_per_request * 1e6,
        gen_cpu_pct=100.0 * result.cpu / result.elapsed if result.elapsed else 0.0,
        timed_out=result.timed_out,
    )


def run_bench(
    cases: Sequence[Case],
    params: LoadParams,
    progress: Callable[[str], None] | None = None,
) -> list[CaseResult]:
    """Run every case ``params.runs`` times, interleaved; a failed run is recorded, not fatal."""
    results = [CaseResult(c.name, skip_reason=c.skip_reason) for c in cases]
    for run in range(params.runs):
        for case, res in zip(cases, results, strict=True):
            if case.skip_reason is not None:
                continue
            try:
                r = run_case_once(case, params)
            except Exception as e:  # one broken peer must not end the bench
                res.failures.append(f"run {run + 1}: {type(e).__name__}: {e}")
                if progress:
                    progress(f"{case.name} run {run + 1}: FAILED {type(e).__name__}: {e}")
                continue
            res.runs.append(r)
            if progress:
                progress(
                    f"{case.name} run {run + 1}/{params.runs}: {r.rps:,.0f} req/s, "
                    f"p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms, {r.rss_mb:.1f} MB, "
                    f"{r.errors} errors; CPU/req: server {r.srv_cpu_us_per_req:.1f} us, "
                    f"generator {r.gen_cpu_us_per_req:.1f} us ({r.gen_cpu_pct:.0f}% busy); "
                    f"others {r.others_cpu_pct:.0f}% CPU"
                )
    return results


_MEDIAN_KEYS = ("rps", "p50_ms", "p99_ms", "rss_mb", "srv_cpu_us_per_req",
                "gen_cpu_us_per_req", "gen_cpu_pct", "others_cpu_pct")
TABLE_HEADERS = ("name", "req/s", "p50 ms", "p99 ms", "peak RSS MB", "srv CPU us/req",
                 "gen CPU us/req", "gen busy %", "others %", "errors", "ratio")


def format_table(results: Sequence[CaseResult], baseline: str | None = None) -> str:
    """Render medians as a text table; ``ratio`` is each row's req/s over the baseline row's.

    Columns: :data:`TABLE_HEADERS`. ``srv CPU us/req`` is the server's CPU time
    per request (all its threads and children), a figure that other load on a
    shared machine disturbs less than req/s. ``gen ...`` is the load generator:
    if it is near 100 % busy, it, not the server, set the pace. ``others %`` is
    the CPU that other processes on the machine took meanwhile (100 = one CPU):
    req/s of runs where it is high are not comparable.
    """
    base = next((r for r in results if r.name == baseline and r.runs), None)
    base_rps = base.median("rps") if base else 0.0
    rows: list[list[str]] = []
    for r in results:
        if not r.runs:
            why = r.skip_reason or ("; ".join(r.failures) or "no runs")
            rows.append([r.name, *["-"] * (len(TABLE_HEADERS) - 2), f"skipped: {why}"[:70]])
            continue
        ratio = f"{r.median('rps') / base_rps:.2f}" if base_rps else "-"
        rows.append([
            r.name,
            f"{r.median('rps'):,.0f}",
            f"{r.median('p50_ms'):.2f}",
            f"{r.median('p99_ms'):.2f}",
            f"{r.median('rss_mb'):.1f}",
            f"{r.median('srv_cpu_us_per_req'):.1f}",
            f"{r.median('gen_cpu_us_per_req'):.1f}",
            f"{r.median('gen_cpu_pct'):.0f}",
            f"{r.median('others_cpu_pct'):.0f}",
            str(sum(x.errors for x in r.runs)),
            ratio,
        ])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(TABLE_HEADERS)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    out = [line(TABLE_HEADERS), line(["-" * w for w in widths])]
    out.extend(line(row) for row in rows)
    if baseline:
        out.append(f"ratio: req/s relative to {baseline!r}")
    return "\n".join(out)


def write_json(
    path: str | os.PathLike[str],
    results: Sequence[CaseResult],
    params: LoadParams,
    baseline: str | None = None,
    extra: Mapping[str, object] | None = None,
) -> None:
    """Write every run, the medians and the run's parameters to ``path`` as JSON."""
    base = next((r for r in results if r.name == baseline and r.runs), None)
    base_rps = base.median("rps") if base else 0.0
    doc = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "argv": sys.argv,
        "params": asdict(params),
        "baseline": baseline,
        "extra": dict(extra or {}),
        "results": [
            {
                "name": r.name,
                "skip_reason": r.skip_reason,
                "failures": r.failures,
                "median": {k: r.median(k) for k in _MEDIAN_KEYS},
                "ratio": (r.median("rps") / base_rps) if base_rps and r.runs else None,
                "runs": [asdict(x) for x in r.runs],
            }
            for r in results
        ],
    }
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")


# --------------------------------------------------------------------------- command line


def add_arguments(
    parser: argparse.ArgumentParser,
    *,
    clients: int,
    requests: int,
    runs: int = 5,
    time_limit: float = 60.0,
    quick_requests: int | None = None,
    quick_runs: int = 1,
) -> None:
    """Add the common options: --clients --requests --runs --time-limit --quick --json --only."""
    parser.add_argument("--clients", type=int, default=clients,
                        help=f"concurrent clients ({clients})")
    parser.add_argument("--requests", type=int, default=None,
                        help=f"requests per client ({requests}; --quick: {quick_requests})")
    parser.add_argument("--runs", type=int, default=None,
                        help=f"runs per case, medians reported ({runs}; --quick: {quick_runs})")
    parser.add_argument("--time-limit", type=float, default=time_limit,
                        help=f"wall-clock cap of one load run in seconds ({time_limit})")
    parser.add_argument("--quick", action="store_true", help="fewer requests and runs")
    parser.add_argument("--json", metavar="FILE", help="also write all runs and medians as JSON")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only the cases whose name contains NAME (repeatable)")
    parser.set_defaults(_bench_defaults=(requests, runs, quick_requests or max(1, requests // 10),
                                         quick_runs))


def params_from_args(args: argparse.Namespace) -> LoadParams:
    """Turn parsed options (see :func:`add_arguments`) into LoadParams, applying --quick."""
    requests, runs, quick_requests, quick_runs = args._bench_defaults
    if args.quick:
        requests, runs = quick_requests, quick_runs
    return LoadParams(
        clients=args.clients,
        requests=args.requests if args.requests is not None else requests,
        time_limit=args.time_limit,
        runs=args.runs if args.runs is not None else runs,
    )


def main(
    cases: Sequence[Case],
    args: argparse.Namespace,
    baseline: str | None = None,
    title: str = "",
    out: Callable[[str], None] = print,
) -> list[CaseResult]:
    """Run ``cases`` as the options say, print progress and the table, write --json."""
    params = params_from_args(args)
    selected = [c for c in cases if not args.only or any(o in c.name for o in args.only)]
    out(f"{title}: {params.clients} clients x {params.requests} requests, "
        f"{params.runs} run(s) per case, cap {params.time_limit:g} s/run"
        f" ({os.cpu_count()} CPUs, Python {platform.python_version()})")
    results = run_bench(selected, params, progress=lambda s: out("  " + s))
    out("")
    out(f"medians of {params.runs} run(s):")
    out(format_table(results, baseline))
    if args.json:
        write_json(args.json, results, params, baseline)
        out(f"JSON written to {args.json}")
    return results

"""The shared benchmark harness: start servers, drive a bounded load, report medians.

A bench script builds a list of :class:`Case` objects (a server command line and
a load) and hands them to :func:`main`. For each case and each of R runs the
harness starts the server as a subprocess, waits until its port accepts, drives
the load, samples the peak RSS of the server's process tree, and stops it.
Runs are interleaved (A1 B1 C1 A2 B2 C2 ...) so that drift of a shared machine
hits every case alike. The table shows medians and each row's ratio to a
baseline row.

The built-in load generator, :func:`bench.loadgen.run_load` (re-exported
here with its :class:`Step` and :class:`Dialogue`), is one epoll loop over
non-blocking sockets in one thread. Its own CPU time per request is measured
and reported so that a reader can tell whether it was the bottleneck; so are
the server's CPU time per request and the CPU that other processes took.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO

from bench.loadgen import (
    Dialogue,
    LoadResult,
    Step,
    http_response_complete,
    percentile,
    run_load,
)

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
    "case_params",
    "dialogue_load",
    "format_table",
    "free_port",
    "http_response_complete",
    "main",
    "paired_ratios",
    "params_from_args",
    "percentile",
    "process_tree",
    "raise_nofile_limit",
    "read_busy_seconds",
    "read_cpu_seconds",
    "read_peak_rss",
    "run_bench",
    "run_case_once",
    "run_load",
    "wait_for_port",
    "wait_until_quiet",
    "write_json",
]

_POLL_INTERVAL = 0.02
_CLK_TCK = os.sysconf("SC_CLK_TCK")


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


def wait_until_quiet(max_wait: float, threshold: float = 25.0, window: float = 0.5) -> float:
    """Wait (at most ``max_wait`` s) until the machine is nearly idle; return its last busy %.

    Busy % is :func:`read_busy_seconds` over ``window`` seconds, in % of one
    CPU; call this between runs, when nothing of the benchmark is running,
    so that a burst of other work (a test suite, a build) can pass first.
    """
    deadline = time.monotonic() + max_wait
    while True:
        busy0, t0 = read_busy_seconds(), time.monotonic()
        time.sleep(window)
        pct = 100.0 * (read_busy_seconds() - busy0) / (time.monotonic() - t0)
        if pct <= threshold or time.monotonic() >= deadline:
            return pct


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


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago, for peers that need a fixed port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def raise_nofile_limit(needed: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to at least ``needed``; return the new soft limit.

    Servers started afterwards inherit it.  Raises :class:`ValueError` when
    the hard limit is below ``needed`` (raising that takes privileges).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return int(soft)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ValueError(f"{needed} file descriptors needed, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed


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


# --------------------------------------------------------------------------- cases and runs


@dataclass(frozen=True)
class LoadParams:
    """The size of a load: clients, requests per client, wall-clock cap, runs, settle time."""

    clients: int
    requests: int
    time_limit: float
    runs: int
    #: Before each run, wait up to this many seconds for other load to pass.
    settle: float = 0.0
    #: Redo a run (twice at most, keeping the quietest) when other processes
    #: took more than this % of one CPU during it; 0: never.
    max_others: float = 0.0


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
    #: The table this row belongs to (one table per group, each with its own baseline).
    group: str = ""
    #: Concurrent clients and requests per client of this row, instead of the options'.
    clients: int | None = None
    requests: int | None = None


def case_params(case: Case, params: LoadParams) -> LoadParams:
    """Return ``params`` with the case's own client and request counts, where it has them."""
    return replace(
        params,
        clients=case.clients if case.clients is not None else params.clients,
        requests=case.requests if case.requests is not None else params.requests,
    )


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
    #: The interleaving round (0-based) this run belongs to: runs of one round ran side by side.
    round_index: int = 0


@dataclass
class CaseResult:
    """All runs of one case and their medians."""

    name: str
    runs: list[RunResult] = field(default_factory=list)
    skip_reason: str | None = None
    failures: list[str] = field(default_factory=list)
    group: str = ""

    def median(self, attr: str) -> float:
        """Median of one RunResult attribute over the runs (0.0 without runs)."""
        values = [float(getattr(r, attr)) for r in self.runs]
        return statistics.median(values) if values else 0.0


def paired_ratios(row: CaseResult, base: CaseResult, attr: str = "rps") -> list[float]:
    """Return ``attr`` of each run of ``row`` over that of ``base``'s run of the same round.

    Rounds where either has no run, or the base's figure is 0, are left out.
    The median of these per-round ratios is steadier than the ratio of the
    medians when the machine's speed drifts between rounds.
    """
    base_by_round = {r.round_index: float(getattr(r, attr)) for r in base.runs}
    out = []
    for r in row.runs:
        b = base_by_round.get(r.round_index)
        if b:
            out.append(float(getattr(r, attr)) / b)
    return out


def run_case_once(case: Case, params: LoadParams) -> RunResult:
    """Start the case's server, drive its load once, sample RSS, stop it."""
    params = case_params(case, params)
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


def _quietest_run(
    case: Case, params: LoadParams, progress: Callable[[str], None] | None
) -> RunResult:
    """One run of ``case``, redone (twice at most) while other load disturbed it."""
    best: RunResult | None = None
    for attempt in range(3):
        if params.settle > 0:
            wait_until_quiet(params.settle)
        r = run_case_once(case, params)
        if best is None or r.others_cpu_pct < best.others_cpu_pct:
            best = r
        if not params.max_others or r.others_cpu_pct <= params.max_others:
            break
        if progress and attempt < 2:
            progress(f"{case.name}: other processes took {r.others_cpu_pct:.0f}% CPU, again")
    assert best is not None
    return best


def run_bench(
    cases: Sequence[Case],
    params: LoadParams,
    progress: Callable[[str], None] | None = None,
) -> list[CaseResult]:
    """Run every case ``params.runs`` times, interleaved; a failed run is recorded, not fatal."""
    results = [CaseResult(c.name, skip_reason=c.skip_reason, group=c.group) for c in cases]
    for run in range(params.runs):
        for case, res in zip(cases, results, strict=True):
            if case.skip_reason is not None:
                continue
            try:
                r = _quietest_run(case, params, progress)
            except Exception as e:  # one broken peer must not end the bench
                res.failures.append(f"run {run + 1}: {type(e).__name__}: {e}")
                if progress:
                    progress(f"{case.name} run {run + 1}: FAILED {type(e).__name__}: {e}")
                continue
            r.round_index = run
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
    if base_rps:
        out.append(f"ratio: req/s relative to {baseline!r}")
    return "\n".join(out)


Baseline = str | Mapping[str, str] | None


def _baseline_of(baseline: Baseline, group: str) -> str | None:
    """The baseline row's name for ``group`` (a mapping gives one per group)."""
    if baseline is None or isinstance(baseline, str):
        return baseline
    return baseline.get(group)


def write_json(
    path: str | os.PathLike[str],
    results: Sequence[CaseResult],
    params: LoadParams,
    baseline: Baseline = None,
    extra: Mapping[str, object] | None = None,
    cases: Sequence[Case] = (),
) -> None:
    """Write every run, the medians and the run's parameters to ``path`` as JSON.

    ``baseline`` is a row name, or a mapping from group to row name; a row's
    ``ratio`` is to its group's baseline.  ``cases`` (optional) adds each
    row's own client and request counts.
    """
    sizes = {c.name: case_params(c, params) for c in cases}

    def base_rps(group: str) -> float:
        name = _baseline_of(baseline, group)
        base = next((r for r in results if r.name == name and r.group == group and r.runs), None)
        return base.median("rps") if base else 0.0

    def entry(r: CaseResult) -> dict[str, object]:
        b = base_rps(r.group)
        size = sizes.get(r.name)
        return {
            "name": r.name,
            "group": r.group,
            "clients": size.clients if size else params.clients,
            "requests": size.requests if size else params.requests,
            "skip_reason": r.skip_reason,
            "failures": r.failures,
            "median": {k: r.median(k) for k in _MEDIAN_KEYS},
            "ratio": (r.median("rps") / b) if b and r.runs else None,
            "runs": [asdict(x) for x in r.runs],
        }

    doc = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "argv": sys.argv,
        "params": asdict(params),
        "baseline": baseline if baseline is None or isinstance(baseline, str) else dict(baseline),
        "extra": dict(extra or {}),
        "results": [entry(r) for r in results],
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
    parser.add_argument("--settle", type=float, default=10.0, metavar="S",
                        help="before each run, wait up to S seconds for the machine to be "
                             "idle (10; 0: don't)")
    parser.add_argument("--max-others", type=float, default=30.0, metavar="PCT",
                        help="redo a run (twice at most) when other processes took more than "
                             "PCT %% of one CPU during it (30; 0: don't)")
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
        settle=args.settle,
        max_others=args.max_others,
    )


def main(
    cases: Sequence[Case],
    args: argparse.Namespace,
    baseline: Baseline = None,
    title: str = "",
    out: Callable[[str], None] = print,
    extra: Mapping[str, object] | None = None,
) -> list[CaseResult]:
    """Run ``cases`` as the options say, print progress and the table(s), write --json.

    Rows of one :attr:`Case.group` share a table; ``baseline`` names the
    baseline row (a mapping: one per group).  All rows of all groups are
    interleaved, round by round.
    """
    params = params_from_args(args)
    selected = [c for c in cases if not args.only or any(o in c.name for o in args.only)]
    out(f"{title}: {params.clients} clients x {params.requests} requests, "
        f"{params.runs} run(s) per case, cap {params.time_limit:g} s/run"
        f" ({os.cpu_count()} CPUs, Python {platform.python_version()})")
    results = run_bench(selected, params, progress=lambda s: out("  " + s))
    groups = list(dict.fromkeys(c.group for c in selected))
    for group in groups:
        rows = [r for r in results if r.group == group]
        out("")
        size = next(case_params(c, params) for c in selected if c.group == group)
        heading = f"{group}: " if group else ""
        if group or len(groups) > 1:
            heading += f"{size.clients} clients x {size.requests} requests, "
        out(f"{heading}medians of {params.runs} run(s):")
        out(format_table(rows, _baseline_of(baseline, group)))
    if args.json:
        write_json(args.json, results, params, baseline, extra, selected)
        out(f"JSON written to {args.json}")
    return results


def steps_use_first_tree() -> None:
    """With ``--steps`` and ``--tree DIR``: import ``netproto_twisted`` from the first DIR.

    For scripts whose ``--steps`` mode measures a source tree's code in this
    process (``bench/pop3_login.py``, ``bench/imap_cold.py``); call before ``main()``.
    """
    if "--tree" in sys.argv and "--steps" in sys.argv:
        tree = sys.argv[sys.argv.index("--tree") + 1]
        sys.path.insert(0, str(Path(tree).resolve()))
        for name in [m for m in sys.modules if m.startswith("netproto_twisted")]:
            del sys.modules[name]

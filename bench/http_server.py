"""HTTP server benchmark with wrk: ours against twistd web, http.server, nginx and waitress.

Three tables from one run; within each, every row runs once per round and
the rounds interleave the rows, so that a noisy minute hits all of them:

(a) a 1 KB static file, ``wrk -c50``: ``twistd -n netproto-http --path``
    (one process, and ``--workers 2``, measured once the daemon logged its
    worker ready),
    ``twistd web --path`` (as shipped: it logs every request),
    ``python -m http.server`` and nginx (one worker, sendfile, no access log:
    the ceiling).  Targets: >= 1.5x twistd web, >= 3x http.server, no wrk
    errors; --workers 2 >= 1.7x one process.
(b) a 100 MB file, ``wrk -c4``: ours against nginx in MB/s (target >= 0.7x).
(c) a WSGI "hello" app, ``wrk -c50``: ``--wsgi`` against ``twistd web
    --wsgi`` (twisted.web.wsgi) and waitress with its default four threads
    (targets: >= 1.3x and >= 1.0x).

Each row also shows the CPU time (user + system, all processes of the
server) per request, which a loaded machine distorts less than the rates:
with many runnable processes the scheduler shares CPU per thread, so a
server with a thread per connection gets a larger share than one reactor.

Run from a checkout: ``python bench/http_server.py [--runs N] [--duration S]``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import typing
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
BOOT = (
    "import sys, twisted.plugins; "
    f"twisted.plugins.__path__.append({str(REPO / 'twisted_plugins')!r}); "
    f"sys.path.insert(0, {str(REPO)!r}); "
    "from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
)
HELLO_APP = """
def hello(environ, start_response):
    body = b"Hello, world!\\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    types {{ text/plain txt; application/octet-stream bin; }}
    server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def wait_log(log: typing.IO[bytes], line: str, proc: subprocess.Popen[bytes]) -> None:
    """Wait until the server's log (a file) has ``line`` (a loaded machine starts slowly)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        log.seek(0)
        if line.encode() in log.read():
            return
        time.sleep(0.2)
    raise RuntimeError(f"the server never logged {line!r}")


@dataclass
class Row:
    """One server configuration: how to start it, given a port."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    #: A line the server logs once it is ready (worker processes started), waited for.
    ready_line: str | None = None


@dataclass
class WrkResult:
    requests_per_s: float
    mb_per_s: float
    errors: int
    cpu_us_per_request: float = 0.0


_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(group: int) -> dict[int, float]:
    """User + system CPU seconds of each live process in process group ``group``, by pid."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # pgrp; utime and stime are fields 11 and 12 after ")"
            found[int(entry)] = (int(fields[11]) + int(fields[12])) / _TICKS
    return found


def group_cpu_seconds(group: int) -> float:
    """User + system CPU seconds of every live process in process group ``group``."""
    return sum(process_cpu_seconds(group).values())


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this script's waited-for children (wrk)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_SIZES = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def run_wrk(url: str, connections: int, duration: float) -> WrkResult:
    seconds = max(1, round(duration))
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    size = re.search(r"Transfer/sec:\s+([\d.]+)([KMG]?B)", out)
    mb = float(size.group(1)) * _SIZES[size.group(2)] / 1024**2 if size else 0.0
    errors = 0
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    return WrkResult(rps, mb, errors)


@contextmanager
def started(row: Row, port: int) -> Iterator[int]:
    argv = [a.replace("{port}", str(port)) for a in row.argv]
    env = dict(os.environ, **row.env)
    log = tempfile.TemporaryFile()  # noqa: SIM115
    proc = subprocess.Popen(
        argv, env=env, cwd=row.cwd, stdout=log, stderr=log, start_new_session=True
    )
    try:
        wait_port(port, proc)
        if row.ready_line is not None:
            wait_log(log, row.ready_line, proc)
        time.sleep(0.3)
        yield proc.pid  # the process group of the server (its own session)
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def twistd(*args: str) -> list[str]:
    return [PY, "-c", BOOT, "-n", "--pidfile=", *args]


def measure(
    rows: Sequence[Row], path: str, connections: int, runs: int, duration: float
) -> dict[str, list[WrkResult]]:
    results: dict[str, list[WrkResult]] = {row.name: [] for row in rows}
    for round_no in range(runs):
        for row in rows:
            port = free_port()
            with started(row, port) as group:
                run_wrk(f"http://127.0.0.1:{port}{path}", connections, 1)  # warm up
                before = process_cpu_seconds(group)
                wrk_before = children_cpu_seconds()
                result = run_wrk(f"http://127.0.0.1:{port}{path}", connections, duration)
                wrk_cpu = children_cpu_seconds() - wrk_before
                after = process_cpu_seconds(group)
                each = sorted(
                    (after[pid] - before.get(pid, 0.0) for pid in after), reverse=True
                )
                cpu = sum(each)
                done = result.requests_per_s * max(1, round(duration))
                result.cpu_us_per_request = cpu / done * 1e6 if done else 0.0
            results[row.name].append(result)
            seconds = max(1, round(duration))
            # Each process's share of a CPU during the run (several for --workers),
            # and wrk's: on 2 CPUs their sum says how much CPU was left.
            busy = " + ".join(f"{c / seconds:.0%}" for c in each if c > 0.01) or "0%"
            print(f"  round {round_no + 1} {row.name}: {result.requests_per_s:,.0f} req/s "
                  f"{result.mb_per_s:,.1f} MB/s errors {result.errors} "
                  f"CPU {result.cpu_us_per_request:,.0f} us/req; "
                  f"server CPU {busy}, wrk {wrk_cpu / seconds:.0%}", flush=True)  # fmt: skip
    return results


def table(title: str, results: dict[str, list[WrkResult]], baseline: str, unit: str) -> str:
    lines = [
        f"\n{title}",
        f"| server | median {unit} | errors | vs {baseline} | CPU us/request |",
        "|---|---:|---:|---:|---:|",
    ]

    def value(r: WrkResult) -> float:
        return r.mb_per_s if unit == "MB/s" else r.requests_per_s

    base = statistics.median(value(r) for r in results[baseline])
    for name, runs in results.items():
        med = statistics.median(value(r) for r in runs)
        errors = sum(r.errors for r in runs)
        cpu = statistics.median(r.cpu_us_per_request for r in runs)
        lines.append(f"| {name} | {med:,.0f} | {errors} | {med / base:.2f}x | {cpu:,.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--only", choices=("static", "big", "wsgi"), action="append")
    args = parser.parse_args()
    parts = args.only or ["static", "big", "wsgi"]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed")
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        os.chmod(tmp, 0o755)  # nginx's worker runs as nobody
        root = Path(tmp) / "www"
        root.mkdir()
        (root / "1k.txt").write_bytes(b"x" * 1024)
        with open(root / "big.bin", "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(100):
                f.write(block)
        (Path(tmp) / "bench_hello.py").write_text(HELLO_APP)
        data = Path(tmp) / "data"
        listen = "tcp:{port}:interface=127.0.0.1"
        ours_argv = twistd(
            "netproto-http", "--data-dir", str(data), "--path", str(root), "--listen", listen
        )
        ours = Row("netproto-http", ours_argv)
        ours2 = Row(
            "netproto-http --workers 2",
            [*ours_argv, "--workers", "2"],
            ready_line="worker(s) ready",  # measured once the worker accepts too
        )
        web_argv = twistd("web", "--path", str(root), "--listen", listen)
        web = Row("twistd web --path", web_argv, cwd=tmp)
        stdlib_argv = [PY, "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
        stdlib = Row("python -m http.server", [*stdlib_argv, "--directory", str(root)])
        ngx_rows = []
        if nginx:
            conf_in = Path(tmp) / "nginx.conf.in"
            conf_in.write_text(NGINX_CONF.format(tmp=tmp, port="PORT", root=root))
            conf = f"{tmp}/nginx-{{port}}.conf"
            script = f"sed s/PORT/{{port}}/ {conf_in} > {conf} && exec {nginx} -c {conf}"
            ngx_rows = [Row("nginx (1 worker)", ["sh", "-c", script])]
        report = []
        if "static" in parts:
            rows = [ours, ours2, web, stdlib, *ngx_rows]
            print("(a) 1 KB static file, wrk -c50", flush=True)
            res = measure(rows, "/1k.txt", 50, args.runs, args.duration)
            report.append(
                table("(a) 1 KB static file, 50 connections", res, "twistd web --path", "req/s")
            )
        if "big" in parts:
            rows = [ours, *ngx_rows]
            print("(b) 100 MB file, wrk -c4", flush=True)
            res = measure(rows, "/big.bin", 4, args.runs, args.duration)
            base = ngx_rows[0].name if ngx_rows else ours.name
            report.append(table("(b) 100 MB file, 4 connections", res, base, "MB/s"))
        if "wsgi" in parts:
            env = {"PYTHONPATH": tmp}
            ours_wsgi = twistd(
                "netproto-http", "--data-dir", str(data), "--wsgi", "bench_hello:hello",
                "--listen", listen,
            )  # fmt: skip
            web_wsgi = twistd("web", "--wsgi", "bench_hello.hello", "--listen", listen)
            waitress = [PY, "-m", "waitress", "--listen=127.0.0.1:{port}", "bench_hello:hello"]
            rows = [
                Row("netproto-http --wsgi", ours_wsgi, env=env, cwd=tmp),
                Row("twistd web --wsgi", web_wsgi, env=env, cwd=tmp),
                Row("waitress (4 threads)", waitress, env=env, cwd=tmp),
            ]
            print("(c) WSGI hello, wrk -c50", flush=True)
            res = measure(rows, "/", 50, args.runs, args.duration)
            report.append(
                table("(c) WSGI hello, 50 connections", res, "twistd web --wsgi", "req/s")
            )
        print("\n".join(report))


if __name__ == "__main__":
    main()

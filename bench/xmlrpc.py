"""XML-RPC benchmark: our server and client against the stdlib's and twisted.web.xmlrpc.

Server tables, every row interleaved round by round (bench/harness.py):

(a) ``add(1, 2)`` and (b) ``structs()`` (100 small structs), 20 concurrent
    clients, each one a load-generator process of its own with one
    connection (the epoll loop of bench/loadgen.py, a few microseconds of
    CPU per call, so that the clients do not starve the servers of the two
    CPUs).  Each request is the one ``xmlrpc.client.ServerProxy`` sends,
    ``Accept-Encoding: gzip`` included.  A client reuses its connection
    where the server allows (ours, twisted.web: HTTP/1.1) and reconnects
    where it closes after each response (the stdlib: HTTP/1.0), as
    ServerProxy does.  Rows:

    - ``netproto-xmlrpc``: ``twistd -n netproto-xmlrpc --module bench.xmlrpc_methods``;
    - ``stdlib SimpleXMLRPCServer`` and ``stdlib ThreadingMixIn``
      (bench/xmlrpc_servers.py);
    - ``twisted.web.xmlrpc`` (the same file: an ``XMLRPC`` resource on a Site
      without access log).

    Targets: at least 1.5x the faster stdlib row and 1.5x twisted.web.xmlrpc.

(c) Client: 5,000 ``add`` calls, 20 in flight, against one
    ``netproto-xmlrpc`` server: our :class:`~netproto_twisted.xmlrpc.Proxy`
    (one process, 20 coroutines, on its default DirectTransport) against
    ``xmlrpc.client.ServerProxy`` in 20 threads (one proxy per thread), and,
    for comparison, our Proxy on PoolTransport (the HTTP client's pool).
    Each row runs in a fresh process; the runs alternate.  Besides the
    client's CPU per call, the table shows the server's (every row shares
    the one server and the machine's CPUs with it).  Target: at least 2x
    ServerProxy's calls/s.

Run from a checkout: ``python bench/xmlrpc.py [--quick] [--runs N] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, this directory comes first on sys.path, and this file would
# shadow the standard library's xmlrpc package, imported in the functions below.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
REPO = _HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import (  # noqa: E402
    Case,
    Dialogue,
    LoadParams,
    LoadResult,
    ServerProcess,
    ServerSpec,
    Step,
    add_arguments,
    main,
    paired_ratios,
    read_cpu_seconds,
    wait_until_quiet,
)
from bench.loadgen import http_response_complete, run_load  # noqa: E402
from tests.twistd import twistd_argv  # noqa: E402

OURS = "netproto-xmlrpc"
STDLIB = "stdlib SimpleXMLRPCServer"
THREADING = "stdlib ThreadingMixIn"
TWISTED_WEB = "twisted.web.xmlrpc"
ADD = "(a) add(1, 2)"
STRUCTS = "(b) 100 structs"
_PORT_RX = r"listening on (?:tcp \S+:)?(\d+)"
#: The 100-struct call costs more; its clients make this many times fewer calls.
STRUCTS_DIVISOR = 5


def request_bytes(method: str, params: tuple[Any, ...]) -> bytes:
    """The HTTP request xmlrpc.client.ServerProxy sends for ``method(*params)``."""
    import xmlrpc.client

    body = xmlrpc.client.dumps(params, method).encode("utf-8")
    head = (
        "POST /RPC2 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\n"
        f"Content-Type: text/xml\r\nUser-Agent: Python-xmlrpc/3.11\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


def _one_client(args: tuple[str, int, Dialogue, int, float]) -> tuple[float, float, LoadResult]:
    host, port, dialogue, requests, time_limit = args
    start = time.monotonic()
    result = run_load(host, port, dialogue, 1, requests, time_limit)
    return start, time.monotonic(), result


def process_load(dialogue: Dialogue) -> Any:
    """A load function: ``params.clients`` processes, one connection and one loop each."""

    def load(host: str, port: int, params: LoadParams) -> LoadResult:
        context = multiprocessing.get_context("fork")
        jobs = [(host, port, dialogue, params.requests, params.time_limit)] * params.clients
        with context.Pool(params.clients) as pool:
            parts = pool.map(_one_client, jobs)
        start = min(p[0] for p in parts)
        end = max(p[1] for p in parts)
        latencies = [lat for p in parts for lat in p[2].latencies]
        return LoadResult(
            requests=sum(p[2].requests for p in parts),
            errors=sum(p[2].errors for p in parts),
            elapsed=end - start,
            cpu=sum(p[2].cpu for p in parts),
            latencies=latencies,
            timed_out=any(p[2].timed_out for p in parts),
        )

    return load


def _ours(data_dir: str) -> ServerSpec:
    argv = twistd_argv(
        "--nodaemon", "--pidfile=", "--logfile=-", "netproto-xmlrpc", "--data-dir", data_dir,
        "--module", "bench.xmlrpc_methods", "--listen", "tcp:0:interface=127.0.0.1",
        "--max-connections", "10000", "--max-per-ip", "10000",
    )  # fmt: skip
    return ServerSpec(OURS, argv, cwd=str(REPO), port_regex=r"xmlrpc listening on tcp \S+:(\d+)")


def _peer(name: str, kind: str) -> ServerSpec:
    argv = [sys.executable, str(REPO / "bench" / "xmlrpc_servers.py"), kind, "0"]
    return ServerSpec(name, argv, cwd=str(REPO), port_regex=_PORT_RX)


def build_cases(data_dir: str, requests: int) -> list[Case]:
    """The rows of tables (a) and (b)."""
    cases = []
    for group, method, params, divisor in (
        (ADD, "add", (1, 2), 1),
        (STRUCTS, "structs", (), STRUCTS_DIVISOR),
    ):
        step = Step(request_bytes(method, params), http_response_complete)
        keep = process_load(Dialogue(request=[step]))
        once = process_load(Dialogue(request=[step], requests_per_connection=1))
        size = max(1, requests // divisor)
        suffix = "" if group == ADD else " "
        cases += [
            Case(OURS + suffix, _ours(data_dir), keep, group=group, requests=size),
            Case(STDLIB + suffix, _peer(STDLIB, "stdlib"), once, group=group, requests=size),
            Case(THREADING + suffix, _peer(THREADING, "stdlib-threading"), once, group=group,
                 requests=size),
            Case(TWISTED_WEB + suffix, _peer(TWISTED_WEB, "twisted-web"), keep, group=group,
                 requests=size),
        ]  # fmt: skip
    return cases


# --------------------------------------------------------------------------- the client table


def _client_ours(url: str, calls: int, in_flight: int, pool: bool = False) -> None:
    from twisted.internet import defer, task

    from netproto_twisted.xmlrpc import PoolTransport, Proxy

    async def run(reactor: Any) -> None:
        proxy = Proxy(url, reactor, transport=PoolTransport(reactor) if pool else None)
        await proxy.add(0, 0)  # connect before the clock starts
        share = [calls // in_flight + (i < calls % in_flight) for i in range(in_flight)]

        async def worker(n: int) -> None:
            for i in range(n):
                assert await proxy.add(i, 1) == i + 1

        cpu0, t0 = time.process_time(), time.monotonic()
        await defer.gatherResults([defer.ensureDeferred(worker(n)) for n in share])
        _report(time.monotonic() - t0, time.process_time() - cpu0, calls)
        await proxy.close()

    task.react(lambda reactor: defer.ensureDeferred(run(reactor)))


def _client_stdlib(url: str, calls: int, in_flight: int) -> None:
    import threading
    import xmlrpc.client

    share = [calls // in_flight + (i < calls % in_flight) for i in range(in_flight)]
    proxies = [xmlrpc.client.ServerProxy(url) for _ in share]
    for proxy in proxies:
        proxy.add(0, 0)
    barrier = threading.Barrier(in_flight + 1)

    def worker(proxy: Any, n: int) -> None:
        barrier.wait()
        for i in range(n):
            assert proxy.add(i, 1) == i + 1

    threads = [
        threading.Thread(target=worker, args=(p, n)) for p, n in zip(proxies, share, strict=True)
    ]
    for t in threads:
        t.start()
    cpu0, t0 = time.process_time(), time.monotonic()
    barrier.wait()
    for t in threads:
        t.join()
    _report(time.monotonic() - t0, time.process_time() - cpu0, calls)


def _report(elapsed: float, cpu: float, calls: int) -> None:
    print(json.dumps({"elapsed": elapsed, "cpu": cpu, "calls": calls}), flush=True)


CLIENT_ROWS = {
    "netproto Proxy (20 in flight)": "ours",
    "ServerProxy (20 threads)": "stdlib",
    "netproto Proxy on PoolTransport": "pool",
}
#: The row the others are compared with.
CLIENT_BASE = "ServerProxy (20 threads)"


def run_client_table(calls: int, runs: int, settle: float, data_dir: str) -> dict[str, Any]:
    """Run the client rows against one netproto-xmlrpc server; print and return medians."""
    results: dict[str, list[dict[str, float]]] = {name: [] for name in CLIENT_ROWS}
    with ServerProcess(_ours(data_dir)) as server:
        port = server.wait_ready()
        url = f"http://127.0.0.1:{port}/RPC2"
        for run in range(runs):
            for name, kind in CLIENT_ROWS.items():
                if settle:
                    wait_until_quiet(settle)
                server_cpu = read_cpu_seconds(server.pid)
                out = subprocess.run(
                    [sys.executable, __file__, "--client-row", kind, "--url", url,
                     "--calls", str(calls)],
                    capture_output=True, text=True, check=True, cwd=str(REPO), timeout=600,
                )  # fmt: skip
                figures = json.loads(out.stdout.strip().splitlines()[-1])
                # The server's CPU over the whole row (its warm-up call included).
                figures["server_cpu"] = read_cpu_seconds(server.pid) - server_cpu
                results[name].append(figures)
                rate = figures["calls"] / figures["elapsed"]
                cpu = figures["cpu"] / figures["calls"] * 1e6
                srv = figures["server_cpu"] / figures["calls"] * 1e6
                print(f"  {name} run {run + 1}/{runs}: {rate:,.0f} calls/s, "
                      f"client CPU {cpu:.0f} us/call, server CPU {srv:.0f} us/call",
                      flush=True)  # fmt: skip
    base_rates = [r["calls"] / r["elapsed"] for r in results[CLIENT_BASE]]
    print(f"\n(c) client: {calls} add() calls, 20 in flight, medians of {runs} run(s):")
    print("| client | calls/s | client CPU us/call | server CPU us/call "
          "| vs ServerProxy (per-run ratios) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    summary: dict[str, Any] = {}
    for name, rows in results.items():
        rates = [r["calls"] / r["elapsed"] for r in rows]
        cpu = statistics.median(r["cpu"] / r["calls"] * 1e6 for r in rows)
        srv = statistics.median(r["server_cpu"] / r["calls"] * 1e6 for r in rows)
        ratios = [a / b for a, b in zip(rates, base_rates, strict=True)]
        shown = ", ".join(f"{x:.2f}" for x in ratios)
        print(f"| {name} | {statistics.median(rates):,.0f} | {cpu:.0f} | {srv:.0f} | "
              f"{statistics.median(ratios):.2f}x ({shown}) |")  # fmt: skip
        summary[name] = {
            "calls_per_s": rates,
            "cpu_us_per_call": cpu,
            "server_cpu_us_per_call": srv,
            "ratios": ratios,
        }
    return summary


def _server_summary(results: list[Any]) -> None:
    for group in (ADD, STRUCTS):
        rows = {r.name.strip(): r for r in results if r.group == group and r.runs}
        if OURS not in rows:
            continue
        print(f"\n{group}: per-round ratios of {OURS} (req/s; server CPU per request):")
        for peer in (STDLIB, THREADING, TWISTED_WEB):
            if peer in rows:
                ratios = paired_ratios(rows[OURS], rows[peer])
                cpu = [
                    b.srv_cpu_us_per_req / a.srv_cpu_us_per_req
                    for a, b in zip(rows[OURS].runs, rows[peer].runs, strict=False)
                    if a.srv_cpu_us_per_req
                ]
                print(f"  vs {peer}: req/s {statistics.median(ratios):.2f}x "
                      f"({', '.join(f'{x:.2f}' for x in ratios)}); "
                      f"CPU/req {statistics.median(cpu):.2f}x less")  # fmt: skip


def main_cli() -> None:
    """Parse the options; run the server tables, then the client table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser, clients=20, requests=250, runs=3, quick_requests=50)
    parser.add_argument("--calls", type=int, default=5000, help="client table: calls (5000)")
    parser.add_argument("--no-server", action="store_true", help="skip tables (a) and (b)")
    parser.add_argument("--no-client", action="store_true", help="skip table (c)")
    parser.add_argument("--client-row", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_row:
        if args.client_row == "stdlib":
            _client_stdlib(args.url, args.calls, 20)
        else:
            _client_ours(args.url, args.calls, 20, pool=args.client_row == "pool")
        return
    with tempfile.TemporaryDirectory(prefix="bench-xmlrpc-") as data_dir:
        if not args.no_server:
            requests = args.requests or (50 if args.quick else 250)
            results = main(
                build_cases(data_dir, requests),
                args,
                baseline={ADD: STDLIB, STRUCTS: STDLIB + " "},
                title="XML-RPC servers",
            )
            _server_summary(results)
        if not args.no_client:
            runs = args.runs or (1 if args.quick else 3)
            calls = 1000 if args.quick and args.calls == 5000 else args.calls
            run_client_table(calls, runs, args.settle, data_dir)


if __name__ == "__main__":
    main_cli()

"""Echo benchmark: our ``netproto-socket`` daemon against stdlib ``socketserver``.

Two tables from one run, every row of both interleaved round by round:

(a) 50 concurrent clients each send a 64-byte line, wait for its echo, and
    repeat (N requests per client). The figure is the server's CPU time per
    request (utime + stime of the server process, all threads). Rows:

    - ``netproto async echo``: ``twistd -n netproto-socket --handler echo``
      (the built-in ``async def handle`` echo, run on the reactor);
    - ``stdlib ThreadingTCPServer``: a ``BaseRequestHandler`` recv/sendall
      echo (bench/stdlib_echo.py), the baseline;
    - ``Twisted Protocol echo``: bare Twisted, ``dataReceived`` ->
      ``transport.write`` (bench/twisted_echo.py).

    Targets: the async echo uses no more CPU per request than the stdlib
    server, and at most 1.15x what bare Twisted uses.

(b) 2,000 concurrent connections (``--conns``), each doing request/response
    (``--conn-requests`` requests each), at the same three servers, every one
    listening with a backlog of at least ``--conns``. Targets: the async
    echo serves at least 1.5x the stdlib server's requests/s, with a lower
    peak RSS (VmHWM of the server process).

The summary under the tables gives the per-round ratios (each run against the
baseline's run of the same round) and their medians.  ``--all`` adds the
reference rows to table (a):

- ``netproto threaded echo``: the daemon hosting a plain
  ``socketserver.StreamRequestHandler`` (bench/handlers.py) on 50 threads;
- ``stdlib ThreadingTCPServer stream``: the stdlib server with that very
  handler; ``..., poll first``: the same handler waiting in ``poll()``
  before each read, as sockserv's threaded direct reads once did;
- ``Twisted eager-write echo``: bare Twisted sending at once when nothing is
  queued (the write path sockserv uses);
- ``C epoll echo``: a trivial C server (bench/c_echo.c, built with ``cc`` if
  present) showing the ceiling of the load generator itself.

Run from a checkout: ``python bench/sockserv.py [--quick] [--json FILE]``;
``--profile`` instead runs the async daemon once under cProfile (50
clients) and prints where its time goes.
"""

from __future__ import annotations

import argparse
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import (  # noqa: E402
    Case,
    CaseResult,
    Dialogue,
    ServerSpec,
    Step,
    add_arguments,
    dialogue_load,
    main,
    paired_ratios,
    params_from_args,
    raise_nofile_limit,
    run_case_once,
    write_json,
)
from tests.twistd import twistd_argv  # noqa: E402

__all__ = ["BASELINE", "BASELINES", "CONNS_GROUP", "ECHO_GROUP", "LINE", "build_cases",
           "run", "summarize"]

#: The request: a 64-byte line; the response is the same 64 bytes.
LINE = b"x" * 62 + b"\r\n"
BASELINE = "stdlib ThreadingTCPServer"
ASYNC = "netproto async echo"
TWISTED = "Twisted Protocol echo"
ECHO_GROUP = "(a) 50 clients"
CONNS_GROUP = "(b) many connections"
#: Suffix of the rows of table (b): row names stay unique, ``--only`` matches both tables.
CONNS_SUFFIX = " x conns"
BASELINES = {ECHO_GROUP: BASELINE, CONNS_GROUP: BASELINE + CONNS_SUFFIX}
#: Targets: (a) CPU per request over the stdlib's and over bare Twisted's; (b) req/s over stdlib's.
MAX_CPU_VS_STDLIB = 1.0
MAX_CPU_VS_TWISTED = 1.15
MIN_RPS_VS_STDLIB_CONNS = 1.5
_PORT_RX = r"listening on tcp 127\.0\.0\.1:(\d+)"
_LIMITS = ("--max-connections", "10000", "--max-per-ip", "10000")


def _daemon(name: str, *args: str, backlog: int = 50, profile: str | None = None) -> ServerSpec:
    prof = ("--profile", profile, "--profiler", "cprofile", "--savestats") if profile else ()
    argv = twistd_argv("--nodaemon", "--pidfile=", "--logfile=-", *prof, "netproto-socket",
                       "--listen", f"tcp:0:interface=127.0.0.1:backlog={backlog}", *_LIMITS,
                       *args)
    return ServerSpec(name, argv, cwd=str(REPO), port_regex=_PORT_RX, stop_timeout=30.0)


def _c_echo(workdir: Path) -> tuple[list[str], str | None]:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return [], "no C compiler"
    exe = workdir / "c_echo"
    proc = subprocess.run([cc, "-O2", "-o", str(exe), str(REPO / "bench" / "c_echo.c")],
                          capture_output=True, text=True, check=False)
    if proc.returncode:
        return [], f"cc failed: {proc.stderr.strip()[:80]}"
    return [str(exe), "0"], None


def build_cases(
    workdir: Path, *, conns: int = 2000, conn_requests: int = 50, reference: bool = False
) -> list[Case]:
    """Return the rows of tables (a) and (b); ``reference`` adds (a)'s reference rows.

    The C reference is built in ``workdir``.  Every server listens with a
    backlog of ``max(128, conns)``, so that the connections of (b) need no
    SYN retry.
    """
    load = dialogue_load(Dialogue(request=[Step(LINE, len(LINE))]))
    backlog = max(128, conns)
    stdlib = [sys.executable, str(REPO / "bench" / "stdlib_echo.py"), "--backlog", str(backlog)]
    twisted = [sys.executable, str(REPO / "bench" / "twisted_echo.py"), "--backlog", str(backlog)]

    def trio(group: str, suffix: str = "", **size: int) -> list[Case]:
        return [
            Case(ASYNC + suffix, _daemon("async", "--handler", "echo", backlog=backlog), load,
                 group=group, **size),
            Case(BASELINE + suffix, ServerSpec("stdlib", stdlib, port_regex=_PORT_RX), load,
                 group=group, **size),
            Case(TWISTED + suffix, ServerSpec("twisted", twisted, port_regex=_PORT_RX), load,
                 group=group, **size),
        ]

    cases = trio(ECHO_GROUP)
    if reference:
        c_argv, c_skip = _c_echo(workdir)
        cases += [
            Case("netproto threaded echo",
                 _daemon("threaded", "--handler", "bench.handlers:ThreadedEcho",
                         "--threads", "50", backlog=backlog), load, group=ECHO_GROUP),
            Case(f"{BASELINE} stream",
                 ServerSpec("stdlib-stream", [*stdlib, "--stream"], port_regex=_PORT_RX), load,
                 group=ECHO_GROUP),
            Case(f"{BASELINE} stream, poll first",
                 ServerSpec("stdlib-poll", [*stdlib, "--stream", "--poll-first"],
                            port_regex=_PORT_RX), load, group=ECHO_GROUP),
            Case("Twisted eager-write echo",
                 ServerSpec("twisted-eager", [*twisted, "--eager"], port_regex=_PORT_RX), load,
                 group=ECHO_GROUP),
            Case("C epoll echo (generator ceiling)",
                 ServerSpec("c-echo", c_argv, port_regex=_PORT_RX), load, skip_reason=c_skip,
                 group=ECHO_GROUP),
        ]
    if conns > 0:
        cases += trio(CONNS_GROUP, CONNS_SUFFIX, clients=conns, requests=conn_requests)
    return cases


def _fmt(ratios: list[float]) -> str:
    return " / ".join(f"{x:.2f}" for x in ratios) or "-"


def summarize(results: list[CaseResult]) -> tuple[list[str], dict[str, object]]:
    """Return the targets' lines and figures: per-round ratios, their medians, met or not."""
    by_name = {r.name: r for r in results}
    lines: list[str] = []
    figures: dict[str, object] = {}

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    ours, base, bare = (by_name.get(n) for n in (ASYNC, BASELINE, TWISTED))
    if ours and ours.runs and base and base.runs:
        attr = "srv_cpu_us_per_req"
        vs_base = paired_ratios(ours, base, attr)
        med = statistics.median(vs_base) if vs_base else 0.0
        figures["a_cpu_vs_stdlib"] = {"runs": vs_base, "median": med}
        lines.append(
            f"(a) server CPU/request: async {ours.median(attr):.1f} us, stdlib "
            f"{base.median(attr):.1f} us; async/stdlib per round {_fmt(vs_base)}, median "
            f"{med:.2f} (target <= {MAX_CPU_VS_STDLIB:.2f}: {verdict(med <= MAX_CPU_VS_STDLIB)})")
        if bare and bare.runs:
            vs_bare = paired_ratios(ours, bare, attr)
            med = statistics.median(vs_bare) if vs_bare else 0.0
            figures["a_cpu_vs_twisted"] = {"runs": vs_bare, "median": med}
            lines.append(
                f"    bare Twisted {bare.median(attr):.1f} us; async/Twisted per round "
                f"{_fmt(vs_bare)}, median {med:.2f} "
                f"(target <= {MAX_CPU_VS_TWISTED:.2f}: {verdict(med <= MAX_CPU_VS_TWISTED)})")
    ours, base = by_name.get(ASYNC + CONNS_SUFFIX), by_name.get(BASELINE + CONNS_SUFFIX)
    if ours and ours.runs and base and base.runs:
        vs_base = paired_ratios(ours, base, "rps")
        med = statistics.median(vs_base) if vs_base else 0.0
        rss = paired_ratios(ours, base, "rss_mb")
        figures["b_rps_vs_stdlib"] = {"runs": vs_base, "median": med}
        figures["b_rss_vs_stdlib"] = {"runs": rss, "median": statistics.median(rss)}
        lines.append(
            f"(b) req/s: async {ours.median('rps'):,.0f}, stdlib {base.median('rps'):,.0f}; "
            f"async/stdlib per round {_fmt(vs_base)}, median {med:.2f} "
            f"(target >= {MIN_RPS_VS_STDLIB_CONNS:.2f}: "
            f"{verdict(med >= MIN_RPS_VS_STDLIB_CONNS)})")
        lower = ours.median("rss_mb") < base.median("rss_mb")
        lines.append(
            f"    peak RSS: async {ours.median('rss_mb'):.1f} MB, stdlib "
            f"{base.median('rss_mb'):.1f} MB; async/stdlib per round {_fmt(rss)} "
            f"(target < 1: {verdict(lower)})")
    return lines, figures


def _profile(args: argparse.Namespace, workdir: Path) -> None:
    stats_path = workdir / "async.pstats"
    load = dialogue_load(Dialogue(request=[Step(LINE, len(LINE))]))
    case = Case("netproto async echo (cProfile)",
                _daemon("async-profiled", "--handler", "echo", profile=str(stats_path)), load)
    params = params_from_args(args)
    r = run_case_once(case, params)
    print(f"{case.name}: {r.rps:,.0f} req/s over {r.requests} requests (with profiler overhead)")
    stats = pstats.Stats(str(stats_path))
    stats.sort_stats("tottime").print_stats(30)


def run(argv: list[str] | None = None) -> int:
    """Parse options, run the benchmark (or the profile) and print the tables and targets."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, clients=50, requests=2000, runs=5, quick_requests=200, quick_runs=1)
    parser.add_argument("--conns", type=int, default=2000,
                        help="concurrent connections of table (b) (2000; 0: no table (b))")
    parser.add_argument("--conn-requests", type=int, default=None,
                        help="requests per connection in table (b) (50; --quick: 5)")
    parser.add_argument("--all", action="store_true", help="add the reference rows to table (a)")
    parser.add_argument("--profile", action="store_true",
                        help="run the async daemon once under cProfile and print the top 30")
    args = parser.parse_args(argv)
    conn_requests = args.conn_requests or (5 if args.quick else 50)
    # Table (b): the generator holds --conns sockets, each server as many.
    raise_nofile_limit(max(1024, args.conns + 512))
    json_path, args.json = args.json, None
    with tempfile.TemporaryDirectory(prefix="bench-sockserv-") as tmp:
        if args.profile:
            _profile(args, Path(tmp))
            return 0
        cases = build_cases(Path(tmp), conns=args.conns, conn_requests=conn_requests,
                            reference=args.all)
        results = main(cases, args, baseline=BASELINES,
                       title="echo, 64-byte lines, request/response")
    lines, figures = summarize(results)
    if lines:
        print("")
        print("targets (ratios of runs of the same round):")
        for line in lines:
            print(line)
    if json_path:
        selected = [c for c in cases if not args.only or any(o in c.name for o in args.only)]
        write_json(json_path, results, params_from_args(args), BASELINES, figures, selected)
        print(f"JSON written to {json_path}")
    return 0 if all(r.runs or r.skip_reason for r in results) else 1


if __name__ == "__main__":
    sys.exit(run())

"""Echo benchmark: our ``netproto-socket`` daemon against stdlib ``socketserver``.

50 concurrent clients each send a 64-byte line, wait for its echo, and repeat
(N requests per client). Rows:

- ``netproto async echo``: ``twistd -n netproto-socket --handler echo``;
- ``netproto threaded echo``: the same daemon hosting a plain
  ``socketserver.StreamRequestHandler`` (bench/handlers.py) on 50 threads;
- ``stdlib ThreadingTCPServer``: a ``BaseRequestHandler`` recv/sendall echo
  (bench/stdlib_echo.py), the baseline;
- ``stdlib ThreadingTCPServer stream``: the stdlib server with the very
  handler of the threaded row, for a like-for-like pair; ``..., poll first``:
  the same handler waiting in ``poll()`` before each read, as sockserv's
  threaded direct reads did before they owned the socket (a reference point);
- ``Twisted Protocol echo``: bare Twisted, ``dataReceived`` -> ``transport.write``
  (bench/twisted_echo.py), to tell Twisted's own cost from our layers';
- ``Twisted eager-write echo``: the same, sending at once when nothing is
  queued (the write path sockserv adopted after this bench measured it);
- ``C epoll echo``: a trivial C server (bench/c_echo.c, built with ``cc`` if
  present) showing the ceiling of the load generator itself.

Run from a checkout: ``python bench/sockserv.py [--quick] [--json FILE]``;
``--profile`` instead runs the async daemon once under cProfile and prints
where its time goes.
"""

from __future__ import annotations

import argparse
import pstats
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import (  # noqa: E402
    Case,
    Dialogue,
    ServerSpec,
    Step,
    add_arguments,
    dialogue_load,
    main,
    params_from_args,
    run_case_once,
)
from tests.twistd import twistd_argv  # noqa: E402

__all__ = ["BASELINE", "LINE", "build_cases", "run"]

#: The request: a 64-byte line; the response is the same 64 bytes.
LINE = b"x" * 62 + b"\r\n"
BASELINE = "stdlib ThreadingTCPServer"
_PORT_RX = r"listening on tcp 127\.0\.0\.1:(\d+)"
_LIMITS = ("--max-connections", "10000", "--max-per-ip", "10000")


def _daemon(name: str, *args: str, profile: str | None = None) -> ServerSpec:
    prof = ("--profile", profile, "--profiler", "cprofile", "--savestats") if profile else ()
    argv = twistd_argv("--nodaemon", "--pidfile=", "--logfile=-", *prof, "netproto-socket",
                       "--listen", "tcp:0:interface=127.0.0.1", *_LIMITS, *args)
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


def build_cases(workdir: Path) -> list[Case]:
    """Return the rows of the echo benchmark (the C reference built in ``workdir``)."""
    load = dialogue_load(Dialogue(request=[Step(LINE, len(LINE))]))
    stdlib = [sys.executable, str(REPO / "bench" / "stdlib_echo.py")]
    twisted = [sys.executable, str(REPO / "bench" / "twisted_echo.py")]
    c_argv, c_skip = _c_echo(workdir)
    return [
        Case("netproto async echo", _daemon("async", "--handler", "echo"), load),
        Case("netproto threaded echo",
             _daemon("threaded", "--handler", "bench.handlers:ThreadedEcho", "--threads", "50"),
             load),
        Case(BASELINE, ServerSpec("stdlib", stdlib, port_regex=_PORT_RX), load),
        Case(f"{BASELINE} stream",
             ServerSpec("stdlib-stream", [*stdlib, "--stream"], port_regex=_PORT_RX), load),
        Case(f"{BASELINE} stream, poll first",
             ServerSpec("stdlib-poll", [*stdlib, "--stream", "--poll-first"],
                        port_regex=_PORT_RX), load),
        Case("Twisted Protocol echo", ServerSpec("twisted", twisted, port_regex=_PORT_RX), load),
        Case("Twisted eager-write echo",
             ServerSpec("twisted-eager", [*twisted, "--eager"], port_regex=_PORT_RX), load),
        Case("C epoll echo (generator ceiling)",
             ServerSpec("c-echo", c_argv, port_regex=_PORT_RX), load, skip_reason=c_skip),
    ]


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
    """Parse options, run the benchmark (or the profile) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, clients=50, requests=2000, runs=5, quick_requests=200, quick_runs=1)
    parser.add_argument("--profile", action="store_true",
                        help="run the async daemon once under cProfile and print the top 30")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-sockserv-") as tmp:
        if args.profile:
            _profile(args, Path(tmp))
            return 0
        results = main(build_cases(Path(tmp)), args, baseline=BASELINE,
                       title="echo, 64-byte lines, request/response")
    return 0 if all(r.runs or r.skip_reason for r in results) else 1


if __name__ == "__main__":
    sys.exit(run())

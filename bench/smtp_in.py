"""Inbound SMTP benchmark: Postfix's smtp-source against our server and its peers.

``smtp-source -s 20 -m 5000 -l 5120 -f from@example.org -t to@localhost``
(20 parallel sessions, 5,000 messages with a 5 KB payload, one connection per
message as smtp-source does by default; ``--reuse`` adds ``-d``: many messages
per connection) drives each server in turn. Rows:

- ``netproto-smtp``: ``twistd -n netproto-smtp`` delivering to a Maildir
  (``250`` only after the file and the directory are fsync'd);
- ``netproto-smtp --workers 2``: the same with one worker process beside the
  master, both accepting on the same socket (the load starts once the worker
  is ready); server CPU counts both processes;
- ``aiosmtpd`` (baseline): bench/peers/aiosmtpd_maildir.py, a handler that
  writes each message to a Maildir with fsync of the file and of ``new/``
  (in the loop's thread pool) before ``250``;
- ``twisted.mail ESMTP``: bench/peers/twisted_maildir.py, Twisted's own
  ESMTP server and ``MaildirMessage``, plus the same fsyncs;
- ``smtp-sink``: Postfix's sink, which stores nothing: the ceiling.

After every run the row's Maildir must hold exactly the number of messages
sent, each at least as large as the payload: a run that lost mail fails
(``FAILED`` in the progress lines, no figures for that run). smtp-source
itself exits non-zero on any reply other than the expected one.

Run from a checkout::

    python bench/smtp_in.py                  # 5 runs per row, medians
    python bench/smtp_in.py --quick          # 1 run of 500 messages
    python bench/smtp_in.py --reuse          # smtp-source -d (session reuse)
    python bench/smtp_in.py --profile        # our daemon once under cProfile
    python bench/smtp_in.py --py-spy         # our daemon once under py-spy (if installed)
"""

from __future__ import annotations

import argparse
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import (  # noqa: E402
    Case,
    CaseResult,
    LoadFn,
    LoadParams,
    LoadResult,
    ServerSpec,
    add_arguments,
    free_port,
    params_from_args,
    run_bench,
    run_case_once,
    write_json,
)
from tests.twistd import twistd_argv  # noqa: E402

__all__ = ["BASELINE", "build_cases", "count_maildir", "format_rows", "run", "smtp_source_load"]

BASELINE = "aiosmtpd + Maildir fsync"
SENDER = "from@example.org"
RECIPIENT = "to@localhost"
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
_PEERS = REPO / "bench" / "peers"
_PORT_RX = r"listening on (?:tcp )?127\.0\.0\.1:(\d+)"
_LIMITS = ("--max-connections", "10000", "--max-per-ip", "10000", "--command-rate", "100000")


def count_maildir(maildir: Path, min_size: int) -> tuple[int, int]:
    """Return (messages in ``maildir/new``, how many of them are smaller than ``min_size``)."""
    count = small = 0
    with os.scandir(maildir / "new") as it:
        for entry in it:
            count += 1
            if entry.stat().st_size < min_size:
                small += 1
    return count, small


def _empty_maildir(maildir: Path) -> None:
    """Move the messages out of the way without deleting them (see below); recreate the dirs.

    Deleting thousands of files between runs made the next runs slower for
    every server: on an ext4 file system without a journal (as on the
    development machine) the kernel will not reuse an inode deleted in the
    last 60-360 s, and each new file's inode allocation then walks past all
    of them (``recently_deleted`` took about half of all CPU in ``perf``).
    The directories are moved into ``<maildir>/../.trash/`` and deleted with
    the bench's temporary directory at the end.
    """
    trash = maildir.parent / ".trash" / f"{maildir.name}-{time.monotonic_ns()}"
    trash.mkdir(parents=True)
    for sub in ("new", "cur", "tmp"):
        d = maildir / sub
        if d.is_dir():
            d.rename(trash / sub)
            d.mkdir()


def smtp_source_load(
    maildir: Path | None, size: int, reuse: bool, argv_out: list[str] | None = None
) -> LoadFn:
    """Return a load that runs smtp-source once, then checks that ``maildir`` got every message.

    ``params.clients`` is smtp-source's ``-s`` and ``params.clients *
    params.requests`` its ``-m``. Without a Maildir (smtp-sink) only
    smtp-source's exit status is checked.
    """

    def load(host: str, port: int, params: LoadParams) -> LoadResult:
        total = params.clients * params.requests
        if maildir is not None:
            _empty_maildir(maildir)
        argv = [SMTP_SOURCE, *(["-d"] if reuse else []), "-s", str(params.clients),
                "-m", str(total), "-l", str(size), "-f", SENDER, "-t", RECIPIENT,
                f"{host}:{port}"]
        if argv_out is not None:
            argv_out[:] = argv
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=params.time_limit,
                              check=False)
        elapsed = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            raise RuntimeError(
                f"smtp-source exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
        delivered = total
        if maildir is not None:
            delivered, small = count_maildir(maildir, size)
            _empty_maildir(maildir)
            if delivered != total or small:
                raise RuntimeError(f"Maildir holds {delivered} of {total} messages "
                                   f"({small} shorter than {size} bytes): mail was lost")
        return LoadResult(requests=delivered, errors=0, elapsed=elapsed, cpu=cpu)

    return load


def _netproto(
    workdir: Path, profile: str | None = None, workers: int = 1
) -> tuple[ServerSpec, Path]:
    base = workdir / ("netproto" if workers == 1 else f"netproto-w{workers}")
    (base / "mail" / "to").mkdir(parents=True, exist_ok=True)  # the local user "to"
    prof = ("--profile", profile, "--profiler", "cprofile", "--savestats") if profile else ()
    argv = twistd_argv("--nodaemon", "--pidfile=", "--logfile=-", *prof, "netproto-smtp",
                       "--listen", "tcp:0:interface=127.0.0.1", "--domain", "localhost",
                       "--hostname", "netproto.bench", "--maildir", str(base / "mail"),
                       "--queue", str(base / "queue"), "--data-dir", str(base / "data"),
                       "--workers", str(workers), *_LIMITS)
    port_regex = r"smtp " + _PORT_RX
    if workers > 1:  # the load starts once every worker accepts too
        port_regex += r"[\s\S]*smtp-workers: \d+ worker\(s\) ready"
    spec = ServerSpec("netproto" if workers == 1 else f"netproto-w{workers}", argv,
                      cwd=str(REPO), port_regex=port_regex, stop_timeout=30.0)
    return spec, base / "mail" / "to"


def build_cases(workdir: Path, size: int, reuse: bool) -> list[Case]:
    """Return the rows (servers and smtp-source loads), their Maildirs under ``workdir``."""
    skip = None if os.path.exists(SMTP_SOURCE) else "Postfix's smtp-source not installed"
    spec, ours = _netproto(workdir)
    cases = [Case("netproto-smtp + Maildir fsync", spec, smtp_source_load(ours, size, reuse),
                  skip_reason=skip)]
    spec2, ours2 = _netproto(workdir, workers=2)
    cases.append(Case("netproto-smtp --workers 2 + Maildir fsync", spec2,
                      smtp_source_load(ours2, size, reuse), skip_reason=skip))
    for name, script, label in (
        ("aiosmtpd", "aiosmtpd_maildir.py", BASELINE),
        ("twisted", "twisted_maildir.py", "twisted.mail ESMTP + Maildir fsync"),
    ):
        maildir = workdir / name
        argv = [sys.executable, str(_PEERS / script), "--maildir", str(maildir)]
        cases.append(Case(label, ServerSpec(name, argv, port_regex=_PORT_RX),
                          smtp_source_load(maildir, size, reuse), skip_reason=skip))
    sink_port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    sink_skip = skip or (
        None if os.path.exists(SMTP_SINK) else "Postfix's smtp-sink not installed")
    cases.append(Case("smtp-sink (ceiling, stores nothing)",
                      ServerSpec("smtp-sink", [SMTP_SINK, *user, "-m", "1024",
                                               f"127.0.0.1:{sink_port}", "1024"],
                                 port=sink_port),
                      smtp_source_load(None, size, reuse), skip_reason=sink_skip))
    return cases


_HEADERS = ("server", "msg/s", "peak RSS MB", "srv CPU us/msg", "others %", "runs", "ratio")


def format_rows(results: Sequence[CaseResult], baseline: str = BASELINE) -> str:
    """Render medians: messages/s, peak RSS, server CPU per message, ratio to ``baseline``."""
    base = next((r for r in results if r.name == baseline and r.runs), None)
    base_rate = base.median("rps") if base else 0.0
    rows = []
    for r in results:
        if not r.runs:
            why = r.skip_reason or "; ".join(r.failures) or "no runs"
            rows.append([r.name, "-", "-", "-", "-", "0", f"skipped: {why}"[:90]])
            continue
        failed = f"+{len(r.failures)} failed" if r.failures else ""
        rows.append([
            r.name,
            f"{r.median('rps'):,.0f}",
            f"{r.median('rss_mb'):.1f}",
            f"{r.median('srv_cpu_us_per_req'):,.0f}",
            f"{r.median('others_cpu_pct'):.0f}",
            f"{len(r.runs)}{failed}",
            f"{r.median('rps') / base_rate:.2f}" if base_rate else "-",
        ])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(_HEADERS)]

    def line(cells: Sequence[str]) -> str:
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([cells[0].ljust(widths[0]), *rest]).rstrip()

    out = [line(_HEADERS), line(["-" * w for w in widths]), *(line(row) for row in rows)]
    if base_rate:
        out.append(f"ratio: msg/s relative to {baseline!r}")
    return "\n".join(out)


def _profile(args: argparse.Namespace, workdir: Path) -> None:
    stats_path = workdir / "netproto.pstats"
    spec, maildir = _netproto(workdir, profile=str(stats_path))
    case = Case("netproto-smtp (cProfile)", spec, smtp_source_load(maildir, args.size, args.reuse))
    r = run_case_once(case, params_from_args(args))
    print(f"{case.name}: {r.rps:,.0f} msg/s over {r.requests} messages (with profiler overhead), "
          f"server CPU {r.srv_cpu_us_per_req:,.0f} us/msg")
    stats = pstats.Stats(str(stats_path))
    stats.sort_stats("tottime").print_stats(35)
    stats.sort_stats("cumulative").print_stats(45)


def _py_spy(args: argparse.Namespace, workdir: Path) -> None:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.path.exists(spy):
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    spec, maildir = _netproto(workdir)
    load = smtp_source_load(maildir, args.size, args.reuse)
    out = Path(args.py_spy_out or "smtp_in.speedscope.json").resolve()

    def spied(host: str, port: int, params: LoadParams) -> LoadResult:
        from bench.harness import process_tree

        pids = [p for p in process_tree(os.getpid()) if p != os.getpid()]
        rec = subprocess.Popen([spy, "record", "--pid", str(max(pids)), "--rate", "250",
                                "--format", args.py_spy_format, "--threads",
                                "--output", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)  # py-spy attaches
        try:
            return load(host, port, params)
        finally:
            rec.send_signal(2)
            rec.wait(30)

    r = run_case_once(Case("netproto-smtp (py-spy)", spec, spied), params_from_args(args))
    print(f"netproto-smtp under py-spy: {r.rps:,.0f} msg/s over {r.requests} messages; "
          f"profile written to {out}")


def run(argv: list[str] | None = None) -> int:
    """Parse options, run the benchmark (or a profile) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, clients=20, requests=250, runs=5, time_limit=300.0,
                  quick_requests=25, quick_runs=1)
    # The fsyncs' work runs in the kernel's journal and writeback threads, which
    # the harness counts as "others": redoing disturbed runs would redo them all.
    parser.set_defaults(max_others=0.0)
    parser.add_argument("--size", type=int, default=5120, help="payload bytes (smtp-source -l)")
    parser.add_argument("--reuse", action="store_true",
                        help="smtp-source -d: many messages per connection")
    parser.add_argument("--profile", action="store_true",
                        help="run our daemon once under cProfile and print the top functions")
    parser.add_argument("--py-spy", action="store_true",
                        help="run our daemon once under py-spy record")
    parser.add_argument("--py-spy-out", metavar="FILE", help="py-spy output file")
    parser.add_argument("--py-spy-format", default="speedscope",
                        choices=("speedscope", "flamegraph", "raw"))
    args = parser.parse_args(argv)
    params = params_from_args(args)
    with tempfile.TemporaryDirectory(prefix="bench-smtp-in-", dir=args_dir()) as tmp:
        if args.profile:
            _profile(args, Path(tmp))
            return 0
        if args.py_spy:
            _py_spy(args, Path(tmp))
            return 0
        cases = build_cases(Path(tmp), args.size, args.reuse)
        selected = [c for c in cases if not args.only or any(o in c.name for o in args.only)]
        total = params.clients * params.requests
        print(f"inbound SMTP: smtp-source {'-d ' if args.reuse else ''}-s {params.clients} "
              f"-m {total} -l {args.size}, {params.runs} run(s) per row "
              f"({os.cpu_count()} CPUs, Python {sys.version.split()[0]}, Maildirs in {tmp})")
        results = run_bench(selected, params, progress=lambda s: print("  " + s, flush=True))
        print()
        print(f"medians of {params.runs} run(s); every Maildir checked after every run:")
        print(format_rows(results))
        if args.json:
            write_json(args.json, results, params, BASELINE,
                       extra={"messages": total, "size": args.size, "reuse": args.reuse})
            print(f"JSON written to {args.json}")
    return 0 if all(r.runs or r.skip_reason for r in results) else 1


def args_dir() -> str | None:
    """Where the Maildirs live: $BENCH_TMPDIR, else the system's temporary directory.

    It must be a real disk for fsync to mean anything (not tmpfs).
    """
    return os.environ.get("BENCH_TMPDIR") or None


if __name__ == "__main__":
    sys.exit(run())

"""One FTP session at a time, step by step: where a session's latency goes, ours and others'.

``bench/ftp.py``'s ``clients`` row runs 100 sessions at once, so a server's
latency hides behind the others' work and the figure swings with
scheduling.  Here one client (stdlib :mod:`ftplib` and a raw data socket)
runs sessions one after the other against each server in turn, and times
each step from the client's side: ``connect`` (to the 220 greeting),
``USER``, ``PASS``, ``TYPE I``, ``PASV``, the data connection's
``connect``, ``RETR`` until its 150 reply, the 1 MB download, the 226
reply, ``QUIT``.  It prints the median of each step in microseconds, the
sum, and the server process's CPU time per session (``/proc/<pid>/stat``).

The servers are ``bench/ftp.py``'s (same setup, same file); run from a
checkout::

    python bench/ftp_phases.py --sessions 300 --only netproto --only pyftpdlib
"""

from __future__ import annotations

import argparse
import ftplib
import itertools
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.ftp import Server, available  # noqa: E402
from bench.harness import read_cpu_seconds  # noqa: E402

STEPS = ("connect", "USER", "PASS", "TYPE", "PASV", "data connect", "RETR-150", "data",
         "226", "QUIT")  # fmt: skip


def one_session(server: Server) -> list[float]:
    """Run one session; return the seconds each of :data:`STEPS` took."""
    marks = [time.perf_counter()]
    f = ftplib.FTP(timeout=30)
    f.connect("127.0.0.1", server.port)
    marks.append(time.perf_counter())
    f.sendcmd("USER " + server.user)
    marks.append(time.perf_counter())
    f.sendcmd("PASS " + server.password)
    marks.append(time.perf_counter())
    f.voidcmd("TYPE I")
    marks.append(time.perf_counter())
    host, port = ftplib.parse227(f.sendcmd("PASV"))
    marks.append(time.perf_counter())
    data = socket.create_connection((host, port), timeout=30)
    marks.append(time.perf_counter())
    f.sendcmd("RETR small.bin")
    marks.append(time.perf_counter())
    got = 0
    while chunk := data.recv(256 * 1024):
        got += len(chunk)
    marks.append(time.perf_counter())
    data.close()
    f.voidresp()
    marks.append(time.perf_counter())
    f.quit()
    marks.append(time.perf_counter())
    if got != 1_000_000:
        raise RuntimeError(f"{server.name}: {got} bytes instead of 1,000,000")
    return [b - a for a, b in itertools.pairwise(marks)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=300, help="sessions per server")
    parser.add_argument("--only", action="append", help="servers (default netproto, pyftpdlib)")
    args = parser.parse_args()
    names = args.only or ["netproto", "pyftpdlib"]
    base = Path(tempfile.mkdtemp(prefix="ftp-phases-"))
    servers = []
    try:
        for name in names:
            why = available(name)
            if why:
                print(f"{name}: skipped ({why})")
                continue
            server = Server(name, base)
            (server.files / "small.bin").write_bytes(os.urandom(1_000_000))
            server.start()
            servers.append(server)
        steps: dict[str, list[list[float]]] = {s.name: [] for s in servers}
        cpu = {s.name: 0.0 for s in servers}
        for _ in range(args.sessions):
            for server in servers:  # interleaved, one session each
                before = read_cpu_seconds(server.proc.pid)
                steps[server.name].append(one_session(server))
                cpu[server.name] += read_cpu_seconds(server.proc.pid) - before
    finally:
        for server in servers:
            server.stop()
    print("| server | " + " | ".join(STEPS) + " | sum | server CPU per session |")
    print("|---|" + "---:|" * (len(STEPS) + 2))
    for name, runs in steps.items():
        medians = [statistics.median(run[i] for run in runs) * 1e6 for i in range(len(STEPS))]
        cells = " | ".join(f"{m:,.0f}" for m in medians)
        per_session = cpu[name] / max(1, len(runs)) * 1e6
        print(f"| {name} | {cells} | {sum(medians):,.0f} | {per_session:,.0f} |")
    print("(microseconds; medians over", args.sessions, "sessions per server)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

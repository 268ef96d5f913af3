"""Telnet side by side: bulk reads, read_until after 100/200 MB, 1,000 idle shell sessions.

Run from the repository root::

    python bench/telnet.py --runs 3              # about three minutes on 2 cores

A feed server (a subprocess of this script, ``--serve``) sends, on each
connection, ``IAC WILL ECHO`` and ``IAC WILL SGA``, then N bytes of text
lines with an ``IAC IAC`` pair every 64 KiB, then a prompt, then closes.
Each client runs in a fresh subprocess (``--client``), connects, reads
until the prompt and reports the seconds from connect to prompt:

- ``netproto``: :func:`connect_telnet`, then ``read_some`` until the prompt
  arrives for the bulk rows and ``read_until`` for the 100/200 MB rows
  (options answered by the RFC 1143 engine, IAC found with ``bytes.find``);
- ``telnetlib3``: ``open_connection(encoding=False)``, ``read`` until the prompt
  arrives (its ``readuntil`` needs a buffer limit as large as the stream);
- ``asyncio``: a bare ``asyncio.open_connection`` reader (no Telnet at all:
  the ceiling), ``read`` until the prompt arrives;
- ``telnetlib``: the stdlib's ``read_until``, at 0.25, 0.5 and 1 MiB only
  (it is quadratic: each chunk rescans the whole buffer).

Rows are interleaved run by run; the table shows medians.  The last part
starts ``twistd netproto-telnet`` (Python shells), logs 1,000 sessions in
over loopback, leaves them idle and reads the server's RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROMPT = b"\r\nPROMPT> "
#: How the netproto client reads: "bulk" (read_some until the prompt) or "until" (read_until).
MODE = os.environ.get("TELNET_BENCH_MODE", "until")
MB = 1_000_000
MIB = 1 << 20


def _block() -> bytes:
    line = b"".join(bytes([33 + (i % 90)]) for i in range(78)) + b"\r\n"
    block = bytearray(line * (MIB // len(line) + 1))[:MIB]
    for at in range(0, MIB, 64 * 1024):
        block[at : at + 1] = b"\xff\xff"  # an escaped 0xff in the text (IAC IAC)
    return bytes(block[:MIB])


# --- the feed server --------------------------------------------------------------------


def serve(size: int) -> None:
    """Listen on loopback; print the port; feed every connection ``size`` bytes and a prompt."""
    block = _block()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(listener.getsockname()[1], flush=True)

    def feed(conn: socket.socket) -> None:
        with conn:
            conn.sendall(b"\xff\xfb\x01\xff\xfb\x03")  # IAC WILL ECHO, IAC WILL SGA
            left = size
            while left > 0:
                chunk = block if left >= len(block) else block[:left]
                conn.sendall(chunk)
                left -= len(chunk)
            conn.sendall(PROMPT)
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(10)
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=feed, args=(conn,), daemon=True).start()


# --- the clients ------------------------------------------------------------------------


def client_netproto(port: int) -> float:
    from twisted.internet import reactor

    sys.path.insert(0, str(REPO))
    from netproto_twisted.telnet import connect_telnet

    result: list[float] = []

    async def run() -> None:
        start = time.perf_counter()
        client = await connect_telnet(reactor, "127.0.0.1", port)
        if MODE == "bulk":  # as the asyncio row: read chunks until the prompt arrives
            tail = b""
            while True:
                chunk = await client.read_some()
                if not chunk:
                    break
                tail = (tail + chunk)[-len(PROMPT) :]
                if tail == PROMPT:
                    break
        else:
            data = await client.read_until(PROMPT)
            assert data.endswith(PROMPT)
        result.append(time.perf_counter() - start)
        await client.close()

    from twisted.internet.defer import ensureDeferred

    def done(outcome: object) -> None:
        reactor.stop()

    reactor.callWhenRunning(lambda: ensureDeferred(run()).addBoth(done))
    reactor.run()
    return result[0]


def client_telnetlib3(port: int) -> float:
    import telnetlib3

    async def run() -> float:
        start = time.perf_counter()
        reader, writer = await telnetlib3.open_connection(
            "127.0.0.1", port, encoding=False, connect_minwait=0, connect_maxwait=0.01
        )
        tail = b""
        while True:  # readuntil would need a buffer limit as large as the stream
            chunk = await reader.read(1 << 20)
            if not chunk:
                break
            tail = (tail + chunk)[-len(PROMPT) :]
            if tail == PROMPT:
                break
        elapsed = time.perf_counter() - start
        writer.close()
        return elapsed

    return asyncio.run(run())


def client_asyncio(port: int) -> float:
    async def run() -> float:
        start = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        tail = b""
        while True:
            chunk = await reader.read(1 << 20)
            if not chunk:
                break
            tail = (tail + chunk)[-len(PROMPT) :]
            if tail == PROMPT:
                break
        elapsed = time.perf_counter() - start
        writer.close()
        return elapsed

    return asyncio.run(run())


def client_telnetlib(port: int) -> float:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import telnetlib
    start = time.perf_counter()
    tn = telnetlib.Telnet("127.0.0.1", port, timeout=600)
    tn.read_until(PROMPT)
    elapsed = time.perf_counter() - start
    tn.close()
    return elapsed


CLIENTS = {
    "netproto": client_netproto,
    "telnetlib3": client_telnetlib3,
    "asyncio": client_asyncio,
    "telnetlib": client_telnetlib,
}


# --- driving ----------------------------------------------------------------------------


class Feed:
    """A feed server subprocess for one size."""

    def __init__(self, size: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(size)], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def run_client(name: str, port: int, mode: str = "until") -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--client", name, str(port)],
        env={**os.environ, "TELNET_BENCH_MODE": mode},
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def bulk(size: int, runs: int, names: list[str], mode: str = "until") -> dict[str, list[float]]:
    feed = Feed(size)
    times: dict[str, list[float]] = {n: [] for n in names}
    try:
        for _ in range(runs):
            for name in names:
                times[name].append(run_client(name, feed.port, mode))
    finally:
        feed.stop()
    return times


def idle_sessions(count: int) -> dict[str, float]:
    """Start twistd netproto-telnet, log ``count`` sessions in, read the server's RSS."""
    sys.path.insert(0, str(REPO))
    from netproto_twisted.core.passwords import PasswordFile

    work = Path(tempfile.mkdtemp(prefix="telnet-bench-"))
    PasswordFile(work / "users").add("bench", "bench-password", iterations=4096)
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    number = port.getsockname()[1]
    port.close()
    boot = (
        "import sys, twisted.plugins; "
        f"twisted.plugins.__path__.append({str(REPO / 'twisted_plugins')!r}); "
        f"sys.path.insert(0, {str(REPO)!r}); "
        "import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192)); "
        "from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"
    )
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            boot,
            "-n",
            "--pidfile=",
            "netproto-telnet",
            "--data-dir",
            str(work),
            "--passwords",
            str(work / "users"),
            "--listen",
            f"tcp:{number}:interface=127.0.0.1",
            "--max-connections",
            str(count + 100),
            "--max-per-ip",
            str(count + 100),
        ],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", number), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        base = _rss_kb(server.pid)
        out = subprocess.run(
            [sys.executable, __file__, "--sessions", str(count), str(number), str(server.pid)],
            capture_output=True,
            text=True,
            timeout=900,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["rss_before_mb"] = base / 1024
        return result
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_sessions(count: int, port: int, pid: int) -> None:
    """Log ``count`` sessions in (our client), keep them open, print RSS as JSON."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
    sys.path.insert(0, str(REPO))
    from twisted.internet import reactor
    from twisted.internet.defer import DeferredSemaphore, ensureDeferred, gatherResults

    from netproto_twisted.telnet import ScriptedSession, connect_telnet

    clients = []
    gate = DeferredSemaphore(50)

    async def one() -> None:
        client = await connect_telnet(reactor, "127.0.0.1", port)
        clients.append(client)
        await ScriptedSession(client, prompt=rb">>> $", timeout=120).login(
            b"bench", b"bench-password"
        )

    async def main() -> None:
        start = time.perf_counter()
        await gatherResults([gate.run(lambda: ensureDeferred(one())) for _ in range(count)])
        elapsed = time.perf_counter() - start
        await asyncio_sleep(reactor, 2.0)  # let the server settle
        rss = _rss_kb(pid)
        print(json.dumps({"sessions": len(clients), "login_s": elapsed, "rss_mb": rss / 1024}))

    def done(outcome: object) -> None:
        if hasattr(outcome, "printTraceback"):
            outcome.printTraceback()
        reactor.stop()

    reactor.callWhenRunning(lambda: ensureDeferred(main()).addBoth(done))
    reactor.run()


def asyncio_sleep(reactor: object, seconds: float) -> object:
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)  # type: ignore[arg-type]


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bulk-mb", type=int, default=256)
    parser.add_argument("--sessions", nargs="*")
    parser.add_argument("--serve", type=int)
    parser.add_argument("--client", nargs=2)
    parser.add_argument("--skip-sessions", action="store_true")
    parser.add_argument("--session-count", type=int, default=1000)
    parser.add_argument("--only-sessions", action="store_true")
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return
    if args.client:
        print(CLIENTS[args.client[0]](int(args.client[1])))
        return
    if args.sessions:
        open_sessions(*(int(x) for x in args.sessions))
        return

    runs = args.runs
    if args.only_sessions:
        report_sessions(args.session_count)
        return
    print(f"# bulk: {args.bulk_mb} MB with options negotiated, median of {runs}")
    size = args.bulk_mb * MB
    times = bulk(size, runs, ["netproto", "telnetlib3", "asyncio"], "bulk")
    rates = {n: size / median(t) / MB for n, t in times.items()}
    print("| client | MB/s | vs netproto |")
    print("|---|---:|---:|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:,.1f} | {rate / rates['netproto']:.2f}x |")
    print(
        f"netproto / telnetlib3 = {rates['netproto'] / rates['telnetlib3']:.1f}x (target >= 5x); "
        f"netproto / asyncio = {rates['netproto'] / rates['asyncio']:.2f}x (target >= 0.5x)"
    )

    print(f"\n# read_until of a prompt after 100 MB and 200 MB, median of {runs} (seconds)")
    rows = {}
    for mb in (100, 200):
        rows[mb] = {
            n: median(t) for n, t in bulk(mb * MB, runs, ["netproto", "telnetlib3"]).items()
        }
    print("| client | 100 MB | 200 MB | ratio |")
    print("|---|---:|---:|---:|")
    for name in ("netproto", "telnetlib3"):
        a, b = rows[100][name], rows[200][name]
        print(f"| {name} | {a:.2f} | {b:.2f} | {b / a:.2f}x |")
    small = {}
    for mib in (0.25, 0.5, 1):
        small[mib] = median(bulk(int(mib * MIB), runs, ["telnetlib"])["telnetlib"])
    print(
        "| telnetlib | "
        + " | ".join(f"{m} MiB: {s:.2f} s" for m, s in small.items())
        + f" | 1 MiB / 0.5 MiB = {small[1] / small[0.5]:.2f}x |"
    )

    if not args.skip_sessions:
        report_sessions(args.session_count)


def report_sessions(count: int) -> None:
    """Print the idle-sessions line."""
    print(f"\n# {count:,} idle Python-shell sessions on twistd netproto-telnet")
    result = idle_sessions(count)
    print(
        f"sessions {result['sessions']}, login of all {result['login_s']:.1f} s, "
        f"server RSS {result['rss_before_mb']:.0f} MB before, {result['rss_mb']:.0f} MB with "
        f"them open (target < 200 MB)"
    )


if __name__ == "__main__":
    main()

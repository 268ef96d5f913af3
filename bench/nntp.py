"""NNTP side by side: ``twistd netproto-nntp`` and a private INN 2 (tradspool), in one run.

Rows, each on a fresh server with a fresh directory, servers alternating:

* **TAKETHIS**: ``--articles`` (10,000) articles of ~2 KB fed on 4
  connections with ``--window`` (100) articles in flight in all (MODE
  STREAM, pipelined TAKETHIS, a reader per connection); articles/s from the
  first byte sent to the last ``239``.  Ours acknowledges only after the
  group commit's fsync; INN fsyncs nothing.
* **IHAVE**: the same articles, lock-step IHAVE/335/article/235 on 4 connections.
* **OVER**: ``OVER 1-N`` of a group of ``--over-articles`` (100,000) read by
  nntplib (seconds) and, on our server, by our client (parsing every line);
  the server's RSS growth while serving nntplib's read.

Needs root for INN (it switches to the news user); without inn2 the INN rows
are skipped.  Run: ``python bench/nntp.py [--runs 3]``; prints a table of
medians and ratios.  ``BENCH_TMPDIR`` chooses where the stores go.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from netproto_twisted import cli  # noqa: E402
from tests.nntp.inn import PrivateINN, inn_missing  # noqa: E402
from tests.twistd import Daemon  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import nntplib

GROUP = "bench.test"
BODY_LINE = b"x" * 70 + b"\r\n"


def article(i: int, tag: str) -> tuple[bytes, bytes]:
    """``(Message-ID, ~2 KB article)``."""
    mid = f"<{i}.{tag}@bench.test>".encode()
    head = (
        b"Path: bench.test!not-for-mail\r\nFrom: Bench <bench@bench.test>\r\n"
        b"Newsgroups: " + GROUP.encode() + b"\r\nSubject: article " + str(i).encode()
        + b"\r\nMessage-ID: " + mid + b"\r\nDate: Mon, 07 Dec 2026 10:00:00 GMT\r\n\r\n"
    )  # fmt: skip
    return mid, head + BODY_LINE * 26


class Server:
    """One server of a row: ours (twistd) or INN."""

    name = ""
    port = 0
    pid = 0

    def stop(self) -> None:
        """Stop it and remove its files."""


class Ours(Server):
    name = "netproto-nntp"

    def __init__(self, base: Path, preload: int = 0) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="nntp-ours-", dir=base))
        database = str(self.dir / "data" / "news" / "news.db")
        with contextlib.redirect_stdout(io.StringIO()):
            cli.main(["news", "group", "add", "--db", database, GROUP])
        if preload:
            _preload(database, preload)
        self.daemon = Daemon(
            ["netproto-nntp", "--data-dir", "data", "--open-posting",
             "--listen", "tcp:0:interface=127.0.0.1", "--max-per-ip", "100"],
            self.dir,
        )  # fmt: skip
        self.port = int(self.daemon.wait_for(r"nntp listening on tcp \S+:(\d+)").group(1))
        self.pid = self.daemon.proc.pid

    def stop(self) -> None:
        self.daemon.stop(signal.SIGTERM)
        shutil.rmtree(self.dir, ignore_errors=True)


def _preload(database: str, count: int) -> None:
    """File ``count`` articles straight into a store (checked as a feed would be)."""
    from netproto_twisted.nntp.interfaces import Incoming
    from netproto_twisted.nntp.server import prepare_transit
    from netproto_twisted.nntp.store import NewsDatabase

    db = NewsDatabase(database, durable=False)
    db.db.execute("BEGIN")
    for i in range(count):
        mid, data = article(i, "over")
        p = prepare_transit(data, offered_id=mid.decode(), path_host="localhost")
        db.file(Incoming(p.message_id, p.data, p.groups, p.overview, time.time()), "localhost")
    db.db.execute("COMMIT")
    db.close()


class INN(Server):
    name = "INN 2 tradspool"

    def __init__(self, base: Path) -> None:
        self.inn = PrivateINN({GROUP: "bench"})
        self.inn.start()
        self.port = self.inn.port
        assert self.inn.process is not None
        self.pid = self.inn.process.pid

    def stop(self) -> None:
        self.inn.stop()


# -- load ------------------------------------------------------------------------------------


async def _takethis(port: int, items: list[tuple[bytes, bytes]], window: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()
    writer.write(b"MODE STREAM\r\n")
    await reader.readline()
    room = asyncio.Semaphore(window)
    ok = 0

    async def replies() -> None:
        nonlocal ok
        for _ in items:
            line = await reader.readline()
            ok += line.startswith(b"239")
            room.release()

    task = asyncio.ensure_future(replies())
    for mid, data in items:
        await room.acquire()
        writer.write(b"TAKETHIS " + mid + b"\r\n" + data + b".\r\n")
        await writer.drain()
    await task
    writer.write(b"QUIT\r\n")
    writer.close()
    return ok


async def _ihave(port: int, items: list[tuple[bytes, bytes]]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()
    ok = 0
    for mid, data in items:
        writer.write(b"IHAVE " + mid + b"\r\n")
        if not (await reader.readline()).startswith(b"335"):
            continue
        writer.write(data + b".\r\n")
        ok += (await reader.readline()).startswith(b"235")
    writer.write(b"QUIT\r\n")
    writer.close()
    return ok


def feed(port: int, items: list[tuple[bytes, bytes]], mode: str, window: int) -> tuple[float, int]:
    """Feed ``items`` on 4 connections; return (seconds, accepted)."""
    parts = [items[i::4] for i in range(4)]

    async def run() -> list[int]:
        if mode == "takethis":
            jobs = [_takethis(port, p, max(1, window // 4)) for p in parts]
        else:
            jobs = [_ihave(port, p) for p in parts]
        return list(await asyncio.gather(*jobs))

    start = time.perf_counter()
    accepted = sum(asyncio.run(run()))
    return time.perf_counter() - start, accepted


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children so far (seconds)."""
    total = 0
    for p in [pid, *_children(pid)]:
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident set of a process and its children (KiB)."""
    total = 0
    for p in [pid, *_children(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def _children(pid: int) -> Iterator[int]:
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                yield int(child)
                yield from _children(int(child))


def nntplib_over(port: int, count: int) -> tuple[float, float]:
    """Seconds (wall, client CPU) for nntplib to read ``OVER 1-count`` (MODE READER first)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        s = nntplib.NNTP("127.0.0.1", port, readermode=True, timeout=120)
    s.group(GROUP)
    start, cpu = time.perf_counter(), time.process_time()
    _, lines = s.over((1, count))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert len(lines) == count, len(lines)
    s.quit()
    return seconds, cpu


def ours_over(port: int, count: int) -> tuple[float, float]:
    """Seconds (wall, client CPU) for our client to read and parse ``OVER 1-count``."""
    from twisted.internet import defer, reactor

    from netproto_twisted.nntp import connect_nntp

    result: list[float] = []

    async def run() -> None:
        client = await connect_nntp(reactor, "127.0.0.1", port, reader_mode=True, timeout=120)
        await client.group(GROUP)
        seen = [0]
        start, cpu = time.perf_counter(), time.process_time()
        got = await client.over(
            (1, count), on_lines=lambda b: seen.__setitem__(0, seen[0] + len(b))
        )
        result.extend((time.perf_counter() - start, time.process_time() - cpu))
        assert got == count == seen[0], (got, seen)
        await client.quit()

    def main() -> None:
        d = defer.ensureDeferred(run())
        d.addErrback(lambda f: (result.extend((-1.0, -1.0)), f.printTraceback()))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(main)
    reactor.run()
    return result[0], result[1]


# -- the run ----------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument(
        "--over-articles",
        type=int,
        default=100_000,
        help="articles in the group ours serves OVER from (filed directly)",
    )
    parser.add_argument(
        "--inn-over-articles",
        type=int,
        default=10_000,
        help="articles fed to INN for its OVER row (TAKETHIS: slow here)",
    )
    parser.add_argument("--skip-over", action="store_true")
    args = parser.parse_args(argv)
    base = Path(os.environ.get("BENCH_TMPDIR") or tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o755)
    kinds: list[Callable[[Path], Server]] = [Ours]
    why = inn_missing()
    if why is None:
        kinds.append(INN)
    else:
        print(f"INN rows skipped: {why}")
    rows: dict[tuple[str, str], list[float]] = {}
    for run in range(args.runs):
        for mode in ("takethis", "ihave"):
            for kind in kinds if run % 2 == 0 else kinds[::-1]:
                server = kind(base)
                try:
                    items = [article(i, f"{mode}{run}") for i in range(args.articles)]
                    cpu = cpu_seconds(server.pid)
                    seconds, accepted = feed(server.port, items, mode, args.window)
                    cpu = cpu_seconds(server.pid) - cpu
                    assert accepted == args.articles, (server.name, mode, accepted)
                finally:
                    server.stop()
                rate = args.articles / seconds
                per = cpu / args.articles * 1e6
                rows.setdefault((mode, server.name), []).append(rate)
                rows.setdefault((mode + " cpu", server.name), []).append(per)
                print(
                    f"run {run + 1} {mode:8} {server.name:16} {rate:8.0f} articles/s "
                    f"{per:6.0f} us CPU/article",
                    flush=True,
                )
    over: dict[str, float] = {}
    if not args.skip_over:
        for kind in kinds:
            count = args.over_articles if kind is Ours else args.inn_over_articles
            server = Ours(base, preload=count) if kind is Ours else kind(base)
            try:
                if kind is not Ours:
                    items = [article(i, "over") for i in range(count)]
                    feed(server.port, items, "takethis", args.window)
                before = rss_kib(server.pid)
                server_cpu = cpu_seconds(server.pid)
                seconds, client_cpu = nntplib_over(server.port, count)
                server_cpu = cpu_seconds(server.pid) - server_cpu
                over[f"OVER 1-{count}, nntplib, {server.name}: s"] = seconds
                over[f"OVER 1-{count}, nntplib, {server.name}: client CPU s"] = client_cpu
                over[f"OVER 1-{count}, nntplib, {server.name}: server CPU s"] = server_cpu
                over[f"OVER 1-{count}, nntplib, {server.name}: lines/s"] = count / seconds
                growth = (rss_kib(server.pid) - before) / 1024
                over[f"OVER 1-{count}, nntplib, {server.name}: RSS growth MiB"] = growth
                if kind is Ours:
                    mine, mine_cpu = ours_over(server.port, count)
                    over[f"OVER 1-{count}, our client, {server.name}: s"] = mine
                    over[f"OVER 1-{count}, our client, {server.name}: client CPU s"] = mine_cpu
                    over["nntplib CPU / our client CPU"] = client_cpu / mine_cpu
            finally:
                server.stop()
    print()
    print(
        f"| load ({args.articles} x 2 KB, 4 connections) | server | articles/s (median of "
        f"{args.runs}) | ratio to INN | server CPU us/article | ratio to INN |"
    )
    print("|---|---|---|---|---|---|")
    for mode in ("takethis", "ihave"):
        inn = median(rows.get((mode, INN.name), []))
        inn_cpu = median(rows.get((mode + " cpu", INN.name), []))
        for name in (Ours.name, INN.name):
            if (mode, name) in rows:
                value = median(rows[(mode, name)])
                cpu = median(rows[(mode + " cpu", name)])
                ratio = value / inn if inn == inn else float("nan")
                cpu_ratio = cpu / inn_cpu if inn_cpu == inn_cpu else float("nan")
                print(
                    f"| {mode.upper()} | {name} | {value:,.0f} | {ratio:.2f} | {cpu:,.0f} "
                    f"| {cpu_ratio:.2f} |"
                )
    print()
    for key, value in over.items():
        print(f"| {key} | {value:,.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""1,000 IMAP sessions in IDLE on one mailbox: server RSS, and how fast a delivery reaches them.

``twistd -n netproto-imap`` serves a small Maildir; one asyncio process
opens ``--sessions`` connections (``LOGIN``, ``SELECT INBOX``, ``IDLE``), in
batches of ``--batch``, and waits for each ``+ idling``.  The server's RSS
(VmRSS) is read before the first connection and with every session idle.
Then, ``--deliveries`` times, another process (this one, not the server)
delivers one message the way an MDA does (written to ``tmp/``, renamed into
``new/``), and the script times until every session has read its
``* n EXISTS``: the latency of the last session is the figure.  The target
(issue 9): RSS under 200 MB with 1,000 sessions, every session told within
1 s.

Run: ``python bench/imap_idle.py [--sessions 1000] [--deliveries 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import ServerProcess, ServerSpec, raise_nofile_limit  # noqa: E402
from bench.imap_pop3 import PASSWORD, USER, make_template  # noqa: E402
from netproto_twisted.core.passwords import PasswordFile  # noqa: E402
from tests.twistd import twistd_argv  # noqa: E402

_PORT_RX = r"listening on (?:tcp )?127\.0\.0\.1:(\d+)"
_EXISTS = re.compile(rb"\* (\d+) EXISTS\r\n")


def vm_rss(pid: int) -> int:
    """The current RSS of ``pid`` in bytes."""
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Session:
    """One idling IMAP connection that records when it saw a given EXISTS count."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.exists = 0
        self.seen: dict[int, float] = {}
        self.changed = asyncio.Event()

    async def command(self, tag: bytes, text: bytes, until: bytes) -> bytes:
        self.writer.write(tag + b" " + text + b"\r\n")
        data = b""
        while until not in data:
            chunk = await self.reader.read(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            data += chunk
        return data

    async def open(self) -> None:
        await self.reader.readline()
        await self.command(b"a", f'LOGIN {USER} "{PASSWORD}"'.encode(), b"a OK")
        data = await self.command(b"b", b"SELECT INBOX", b"b OK")
        self.exists = max(int(m) for m in _EXISTS.findall(data))
        self.writer.write(b"c IDLE\r\n")
        line = await self.reader.readline()
        if not line.startswith(b"+"):
            raise RuntimeError(f"IDLE refused: {line!r}")

    async def listen(self) -> None:
        buffer = b""
        while True:
            chunk = await self.reader.read(65536)
            if not chunk:
                return
            buffer += chunk
            for m in _EXISTS.finditer(buffer):
                count = int(m.group(1))
                if count > self.exists:
                    self.exists = count
                    self.seen[count] = time.perf_counter()
                    self.changed.set()
            buffer = buffer[buffer.rfind(b"\n") + 1 :]


def deliver(maildir: Path, n: int) -> None:
    """Deliver one message as an MDA does: write it in tmp/, rename it into new/."""
    name = f"{int(time.time())}.M{n}P{os.getpid()}.bench-idle"
    data = f"From: a@example.net\nTo: {USER}@example.org\nSubject: idle {n}\n\nhello {n}\n"
    tmp = maildir / "tmp" / name
    tmp.write_text(data)
    os.rename(tmp, maildir / "new" / name)


async def run(port: int, pid: int, args: argparse.Namespace, maildir: Path) -> dict[str, object]:
    rss_before = vm_rss(pid)
    sessions: list[Session] = []
    start = time.perf_counter()
    while len(sessions) < args.sessions:
        batch = min(args.batch, args.sessions - len(sessions))
        opened = await asyncio.gather(
            *(asyncio.open_connection("127.0.0.1", port) for _ in range(batch))
        )
        new = [Session(r, w) for r, w in opened]
        await asyncio.gather(*(s.open() for s in new))
        sessions.extend(new)
    login_seconds = time.perf_counter() - start
    listeners = [asyncio.create_task(s.listen()) for s in sessions]
    await asyncio.sleep(1.0)
    rss_idle = vm_rss(pid)
    latencies: list[float] = []
    count = sessions[0].exists
    for n in range(args.deliveries):
        count += 1
        sent = time.perf_counter()
        deliver(maildir, n)
        deadline = sent + args.wait
        while True:
            missing = [s for s in sessions if count not in s.seen]
            if not missing or time.perf_counter() > deadline:
                break
            await asyncio.sleep(0.01)
        if missing:
            raise RuntimeError(f"{len(missing)} sessions not told within {args.wait} s")
        latencies.append(max(s.seen[count] for s in sessions) - sent)
        await asyncio.sleep(0.5)
    for s in sessions:
        s.writer.write(b"DONE\r\nz LOGOUT\r\n")
    for task in listeners:
        task.cancel()
    for s in sessions:
        s.writer.close()
    return {
        "sessions": len(sessions),
        "login_seconds": login_seconds,
        "rss_before": rss_before,
        "rss_idle": rss_idle,
        "latencies": latencies,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--deliveries", type=int, default=3)
    parser.add_argument("--wait", type=float, default=30.0, help="give up after (s)")
    args = parser.parse_args()
    raise_nofile_limit(2 * args.sessions + 200)
    work = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    try:
        base = work / "mail"
        make_template(base, 20)
        users = work / "users"
        PasswordFile(users, iterations=4096).add(USER, PASSWORD)
        limit = str(args.sessions + 100)
        argv = twistd_argv(
            "--nodaemon", "--pidfile=", "--logfile=-", "netproto-imap",
            "--listen", "tcp:0:interface=127.0.0.1", "--maildir", str(base),
            "--passwords", str(users), "--data-dir", str(work / "data"),
            "--allow-insecure-auth", "--max-connections", limit, "--max-per-ip", limit,
        )  # fmt: skip
        spec = ServerSpec("netproto-imap", argv, cwd=str(REPO), port_regex=_PORT_RX)
        with ServerProcess(spec) as proc:
            port = proc.wait_ready()
            result = asyncio.run(run(port, proc.pid, args, base / USER))
    finally:
        shutil.rmtree(work, True)
    mb = 1024 * 1024
    latencies = result["latencies"]
    assert isinstance(latencies, list)
    print(f"| sessions in IDLE | {result['sessions']:,} |")
    print(f"| logging them in (LOGIN + SELECT + IDLE), s | {result['login_seconds']:.2f} |")
    print(f"| server RSS before, MB | {result['rss_before'] / mb:.1f} |")  # type: ignore[operator]
    print(f"| server RSS with all idle, MB | {result['rss_idle'] / mb:.1f} |")  # type: ignore[operator]
    shown = ", ".join(f"{x:.3f}" for x in latencies)
    print(f"| delivery to the last session told, s (median; runs) | "
          f"{statistics.median(latencies):.3f} ({shown}) |")  # fmt: skip


if __name__ == "__main__":
    main()

"""``twistd -n netproto-smtp`` receives 100 concurrent 25 MB messages with its RSS under 150 MB.

The issue's memory target: messages are streamed to disk, never held whole.
100 asyncio clients (one loop, one thread) connect at once, all reach
``354`` before any sends a byte of data (so all 100 messages are in flight
together), then stream their 25 MiB from one shared 80 KB block: the client
holds no message either. Each body starts every block with a line that
begins with ``.``, so the server must undo dot-stuffing on the way; the
stored sizes prove it did. Afterwards the daemon's peak RSS (VmHWM) must be
under 150 MB and the Maildir must hold the 100 messages, each exactly the
size sent (plus the server's Received header) with the right head and tail.
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from pathlib import Path

from twisted.python import log
from twisted.trial.unittest import SynchronousTestCase

from tests.twistd import Daemon

CLIENTS = 100
LINE = 80  # bytes per body line, CRLF included
LINES_PER_BLOCK = 1024
BLOCKS = 320  # 320 x 1024 x 80 = 25 MiB of body per message
BODY_SIZE = BLOCKS * LINES_PER_BLOCK * LINE
RSS_LIMIT = 150 * 1000 * 1000
#: Wall-clock cap of the whole exchange (2.5 GB over loopback, then fsync).
DEADLINE = 240.0


def _block() -> tuple[bytes, bytes]:
    """One block of body lines as stored, and as sent (its first line dot-stuffed)."""
    first = b"." + b"d" * (LINE - 3) + b"\r\n"
    rest = b"".join(
        b"%07d " % i + b"m" * (LINE - 10) + b"\r\n" for i in range(1, LINES_PER_BLOCK)
    )
    assert len(first) == LINE and len(rest) == (LINES_PER_BLOCK - 1) * LINE
    return first + rest, b"." + first + rest


STORED_BLOCK, WIRE_BLOCK = _block()


def _header(n: int) -> bytes:
    return (
        b"From: sender@client.example\r\nTo: alice@example.org\r\n"
        b"Subject: memory test %03d\r\nX-Memory-Test: %03d\r\n\r\n" % (n, n)
    )


class _Gate:
    """Opens once ``parties`` coroutines wait at it (``asyncio.Barrier`` is 3.11+)."""

    def __init__(self, parties: int) -> None:
        self._left = parties
        self._open = asyncio.Event()

    async def wait(self) -> None:
        self._left -= 1
        if self._left <= 0:
            self._open.set()
        await self._open.wait()


async def _reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one (possibly multi-line) SMTP reply; return its code and text."""
    text = b""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        text += line
        if line[3:4] != b"-":
            return int(line[:3]), text


async def _expect(reader: asyncio.StreamReader, code: int, what: str) -> None:
    got, text = await _reply(reader)
    if got != code:
        raise AssertionError(f"{what}: expected {code}, got {text!r}")


async def _send_one(n: int, port: int, at_data: _Gate) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await _expect(reader, 220, "greeting")
        writer.write(b"EHLO client.example\r\n")
        await _expect(reader, 250, "EHLO")
        size = len(_header(n)) + BODY_SIZE
        writer.write(b"MAIL FROM:<sender@client.example> SIZE=%d\r\n" % size)
        await _expect(reader, 250, "MAIL")
        writer.write(b"RCPT TO:<alice@example.org>\r\n")
        await _expect(reader, 250, "RCPT")
        writer.write(b"DATA\r\n")
        await _expect(reader, 354, "DATA")
        await at_data.wait()  # all 100 transactions are open before any data flows
        writer.write(_header(n))
        for _ in range(BLOCKS):
            writer.write(WIRE_BLOCK)
            await writer.drain()
        writer.write(b".\r\n")
        await _expect(reader, 250, f"end of data of message {n}")
        writer.write(b"QUIT\r\n")
        await _expect(reader, 221, "QUIT")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _send_all(port: int) -> None:
    barrier = _Gate(CLIENTS)
    tasks = [asyncio.create_task(_send_one(n, port, barrier)) for n in range(CLIENTS)]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _vm_hwm(pid: int) -> int:
    """The peak resident set size of ``pid`` in bytes (VmHWM in /proc/PID/status)."""
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


class MemoryTests(SynchronousTestCase):
    def test_100_concurrent_25mb_messages(self) -> None:
        cwd = Path(self.mktemp()).absolute()
        (cwd / "mail" / "alice").mkdir(parents=True)  # a Maildir made by hand: user alice
        # 2.5 GB must not stay behind in _trial_temp.
        self.addCleanup(shutil.rmtree, cwd / "mail", ignore_errors=True)
        daemon = Daemon(
            [
                "--logfile=-", "netproto-smtp",
                "--listen", "tcp:0:interface=127.0.0.1",
                "--domain", "example.org", "--hostname", "mx.example.org",
                "--maildir", "mail", "--queue", "queue", "--data-dir", "data",
                "--max-size", str(30 * 1024 * 1024),
                "--max-per-ip", str(2 * CLIENTS),
            ],
            cwd,
        )  # fmt: skip
        self.addCleanup(daemon.stop)
        port = int(daemon.wait_for(r"smtp listening on tcp 127\.0\.0\.1:(\d+)").group(1))
        start_rss = _vm_hwm(daemon.proc.pid)
        started = time.monotonic()
        asyncio.run(_send_all(port))
        elapsed = time.monotonic() - started
        peak = _vm_hwm(daemon.proc.pid)
        log.msg(f"peak RSS {peak / 1e6:.1f} MB (at start {start_rss / 1e6:.1f} MB) "
                f"after {CLIENTS} x {BODY_SIZE} bytes in {elapsed:.1f} s")
        self.assertLess(
            peak,
            RSS_LIMIT,
            f"peak RSS {peak / 1e6:.1f} MB (at start {start_rss / 1e6:.1f} MB) "
            f"after {CLIENTS} x {BODY_SIZE} bytes in {elapsed:.1f} s",
        )

        stored = sorted((cwd / "mail" / "alice" / "new").iterdir())
        self.assertEqual(len(stored), CLIENTS)
        seen = set()
        # The store writes LF line endings: one octet less per line than sent.
        body_lines = BLOCKS * LINES_PER_BLOCK
        last_block = STORED_BLOCK.replace(b"\r\n", b"\n")
        for path in stored:
            with open(path, "rb") as f:
                head = f.read(4096)
                start = head.index(b"From: sender@client.example\n")
                self.assertTrue(head.startswith(b"Received: "), head[:100])
                n = int(head[head.index(b"X-Memory-Test: ") + 15 :][:3])
                header = _header(n).replace(b"\r\n", b"\n")
                self.assertEqual(head[start : start + len(header)], header)
                self.assertEqual(
                    os.fstat(f.fileno()).st_size - start, len(header) + BODY_SIZE - body_lines
                )
                f.seek(-len(last_block), os.SEEK_END)
                self.assertEqual(f.read(), last_block)
            seen.add(n)
        self.assertEqual(seen, set(range(CLIENTS)))
        self.assertNotIn("Traceback", daemon.output())

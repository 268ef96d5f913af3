"""Per-session bandwidth limits and the data-connection stall timeout, over loopback."""

from __future__ import annotations

import ftplib
import io
import os
import socket
import time

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.ftp.server import FTPSettings
from netproto_twisted.ftp.server.connection import FTPConnection
from netproto_twisted.ftp.users import UserTable
from tests.ftp.helpers import ServerTestCase

#: A sparse file far larger than loopback's socket buffers (sent from a thread).
BIG = 64 * 1024 * 1024
#: Larger than the buffers (4 MiB at most), below core.sendfile.THREAD_MINIMUM.
MEDIUM = 7 * 1024 * 1024


class StalledReaderTests(ServerTestCase):
    """A peer that stops reading during RETR: 426 after ``data_timeout``, the connection closed."""

    settings = FTPSettings(data_timeout=0.5)

    async def _stall(self, transfer_type: str, size: int = BIG) -> tuple[str, float, bytes]:
        server = await self.start()
        with open(server.path("alice", "big.bin"), "wb") as f:
            f.truncate(size)

        def run() -> tuple[str, float, bytes]:
            f = self.ftp()
            f.voidcmd(f"TYPE {transfer_type}")
            host, port = f.makepasv()
            data = socket.socket()
            data.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read
            data.settimeout(10)
            data.connect((host, port))
            f.putcmd("RETR big.bin")
            self.assertEqual(f.getresp()[:3], "150")
            start = time.monotonic()
            try:
                reply = f.getresp()
            except ftplib.error_temp as e:
                reply = str(e)
            elapsed = time.monotonic() - start
            # The server closed the data connection: reading drains to the end (or a reset).
            tail = b"?"
            try:
                while tail:
                    tail = data.recv(1 << 20)
            except OSError:
                tail = b""
            data.close()
            f.voidcmd("NOOP")  # the session goes on
            f.quit()
            return reply, elapsed, tail

        result: tuple[str, float, bytes] = await self.in_thread(run)
        return result

    async def test_sendfile_thread_path(self) -> None:
        reply, elapsed, tail = await self._stall("I")
        self.assertEqual(reply[:3], "426")
        self.assertIn("no progress", reply)
        self.assertLess(elapsed, 10)
        self.assertEqual(tail, b"")

    async def test_sendfile_reactor_path(self) -> None:
        reply, elapsed, tail = await self._stall("I", MEDIUM)
        self.assertEqual(reply[:3], "426")
        self.assertLess(elapsed, 10)
        self.assertEqual(tail, b"")

    async def test_producer_path(self) -> None:
        reply, elapsed, _ = await self._stall("A")
        self.assertEqual(reply[:3], "426")
        self.assertLess(elapsed, 10)


class RateLimitTests(ServerTestCase):
    """``max_download_rate`` / ``max_upload_rate``: a transfer takes at least size/rate."""

    RATE = 400_000  # bytes/s; the default burst is a quarter of a second's worth
    SIZE = 300_000  # so at least (300,000 - 100,000) / 400,000 = 0.5 s

    settings = FTPSettings(max_download_rate=RATE, max_upload_rate=RATE)

    async def test_download_paced(self) -> None:
        server = await self.start()
        payload = os.urandom(self.SIZE)
        server.path("alice", "f.bin").write_bytes(payload)

        def run() -> tuple[bytes, float]:
            f = self.ftp()
            out = io.BytesIO()
            start = time.monotonic()
            f.retrbinary("RETR f.bin", out.write)
            elapsed = time.monotonic() - start
            f.quit()
            return out.getvalue(), elapsed

        data, elapsed = await self.in_thread(run)
        self.assertEqual(data, payload)
        self.assertGreaterEqual(elapsed, 0.45)

    async def test_upload_paced(self) -> None:
        server = await self.start()
        payload = os.urandom(self.SIZE)

        def run() -> float:
            f = self.ftp()
            start = time.monotonic()
            f.storbinary("STOR up.bin", io.BytesIO(payload))
            elapsed = time.monotonic() - start
            f.quit()
            return elapsed

        elapsed = await self.in_thread(run)
        self.assertEqual(server.path("alice", "up.bin").read_bytes(), payload)
        # Input is paused once the bucket is in debt, but the last read (up to one
        # socket read, 64 KiB) ends the upload without waiting for that debt: at
        # least (300,000 - 100,000 - 65,536) / 400,000 = 0.34 s.
        self.assertGreaterEqual(elapsed, 0.3)

    async def test_unlimited_is_not_paced(self) -> None:
        """Without a limit the same download is not held (sendfile, no pacing)."""
        server = await self.start(settings=FTPSettings())
        server.path("alice", "f.bin").write_bytes(bytes(self.SIZE * 10))

        def run() -> int:
            f = self.ftp()
            out = io.BytesIO()
            f.retrbinary("RETR f.bin", out.write)
            f.quit()
            return len(out.getvalue())

        self.assertEqual(await self.in_thread(run), self.SIZE * 10)


class SessionBucketTests(SynchronousTestCase):
    """One bucket per session and direction: back-to-back transfers share the rate."""

    def _connection(self, settings: FTPSettings) -> FTPConnection:
        conn = FTPConnection(
            settings, UserTable(self.mktemp()), lambda user: None,  # type: ignore[arg-type,return-value]
            None, Clock(), peer="127.0.0.1", local_host="127.0.0.1",  # type: ignore[arg-type]
        )  # fmt: skip
        return conn

    def test_buckets(self) -> None:
        conn = self._connection(FTPSettings(max_download_rate=1000))
        bucket = conn.throttle("download")
        assert bucket is not None
        self.assertEqual(bucket.rate, 1000)
        self.assertIs(conn.throttle("download"), bucket)
        self.assertIsNone(conn.throttle("upload"))
        self.assertIsNone(self._connection(FTPSettings()).throttle("download"))


class DataConnectionFailureTests(ServerTestCase):
    """A data connection that cannot be taken gets its 425 at once, not after the data timeout."""

    settings = FTPSettings(data_timeout=60)

    async def test_425_at_once(self) -> None:
        from netproto_twisted.ftp.server import data as data_module

        server = await self.start()
        with open(server.path("alice", "f.bin"), "wb") as f:
            f.write(b"x" * 100)

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("cannot build the data channel")

        def run() -> str:
            f = self.ftp()  # its socket timeout (10 s) is far below the data timeout
            host, port = f.makepasv()
            data = socket.create_connection((host, port), timeout=10)
            f.putcmd("RETR f.bin")
            try:
                reply = f.getresp()
            except ftplib.error_temp as e:
                reply = str(e)
            data.close()
            f.voidcmd("NOOP")  # the session goes on
            f.quit()
            return reply

        self.patch(data_module, "DataChannel", broken)
        reply = await self.in_thread(run)
        self.assertEqual(reply[:3], "425")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

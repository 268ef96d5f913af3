"""Downloads under PROT P encrypted and sent by a thread (core.tls_sendfile): clients, faults."""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import socket
import struct
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater

from netproto_twisted.core.tls_sendfile import ThreadedTLSSend
from netproto_twisted.ftp.server import FTPSettings
from netproto_twisted.ftp.server import data as data_module
from tests.ftp.helpers import ReusingFTP_TLS, ServerTestCase
from tests.ftp.test_server_tools import run

BIG = 24 * 1024 * 1024  # more than loopback's socket buffers hold: a reader that stops stalls


class ThreadedTLSTestCase(ServerTestCase):
    """Records every threaded TLS send the server starts (``self.threads``)."""

    tls = True

    def setUp(self) -> None:
        self.threads: list[ThreadedTLSSend] = []
        self.baseline = ThreadedTLSSend.running()
        real = data_module.send_tls_in_thread

        def recording(*args: Any, **kw: Any) -> ThreadedTLSSend:
            thread = real(*args, **kw)
            self.threads.append(thread)
            return thread

        self.patch(data_module, "send_tls_in_thread", recording)

    async def settled(self) -> None:
        """Until every session and sending thread is gone (10 s at most)."""
        for _ in range(200):
            live = self.server.factory.live  # type: ignore[attr-defined]
            if not live and ThreadedTLSSend.running() == self.baseline:
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(ThreadedTLSSend.running(), self.baseline)

    def tls_ftp(self) -> ReusingFTP_TLS:
        f = ReusingFTP_TLS(timeout=10)
        f.connect(self.server.host, self.server.port)
        f.login("alice", "secret")
        f.prot_p()
        return f

    def big_file(self, name: str = "big.bin") -> None:
        with open(self.server.path("alice", name), "wb") as f:
            f.truncate(BIG)  # sparse: cheap to make, and read as zeros


class ThreadedTLSRetrTests(ThreadedTLSTestCase):
    async def test_retr_rest_and_small_file_with_ftplib(self) -> None:
        server = await self.start()
        payload = os.urandom(3 * 1024 * 1024 + 7)
        server.path("alice", "big.bin").write_bytes(payload)
        server.path("alice", "small.bin").write_bytes(payload[:200_000])

        def session() -> list[bytes]:
            f = self.tls_ftp()
            got = []
            for command, rest in (("RETR big.bin", None), ("RETR big.bin", 1000),
                                  ("RETR small.bin", None)):  # fmt: skip
                out = io.BytesIO()
                reply = f.retrbinary(command, out.write, rest=rest)
                self.assertEqual(reply[:3], "226")
                got.append(out.getvalue())
            self.assertEqual(f.sendcmd("NOOP")[:3], "200")
            f.quit()
            return got

        whole, rest, small = await self.in_thread(session)
        digest = hashlib.sha256
        self.assertEqual(digest(whole).hexdigest(), digest(payload).hexdigest())
        self.assertEqual(digest(rest).hexdigest(), digest(payload[1000:]).hexdigest())
        self.assertEqual(small, payload[:200_000])
        self.assertEqual(len(self.threads), 2)  # the small file streamed through the reactor
        await self.settled()

    async def test_lftp_get_over_ftps(self) -> None:
        server = await self.start()
        payload = os.urandom(5 * 1024 * 1024 + 3)
        server.path("alice", "l.bin").write_bytes(payload)
        local = self.mktemp()
        os.makedirs(local)
        script = (
            "set ssl:verify-certificate no; set ftp:ssl-force true; "
            "set ftp:ssl-protect-data true; set net:max-retries 1; set net:timeout 10; "
            "get l.bin; bye"
        )
        _out, err, code = await run(
            "lftp", "-u", "alice,secret", "-p", str(server.port), "-e", script, server.host,
            cwd=local,
        )  # fmt: skip
        self.assertEqual(code, 0, err)
        with open(os.path.join(local, "l.bin"), "rb") as f:
            got = f.read()
        self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(payload).hexdigest())
        self.assertEqual(len(self.threads), 1)
        await self.settled()

    async def test_data_connection_without_session_reuse_gets_no_thread(self) -> None:
        server = await self.start()
        server.path("alice", "big.bin").write_bytes(b"b" * (2 * 1024 * 1024))

        def session() -> None:
            f = ftplib.FTP_TLS(timeout=10)  # stock: a new TLS session on the data connection
            f.connect(server.host, server.port)
            f.login("alice", "secret")
            f.prot_p()
            with self.assertRaises((ftplib.error_perm, ftplib.error_temp, OSError)):
                f.retrbinary("RETR big.bin", lambda block: None)
            f.close()

        await self.in_thread(session)
        self.assertEqual(self.threads, [])  # refused (522) before any byte of the file
        await self.settled()

    async def test_ascii_and_rate_limited_retr_stay_on_the_reactor(self) -> None:
        server = await self.start(settings=FTPSettings(max_download_rate=50_000_000))
        server.path("alice", "t.txt").write_bytes(b"line\n" * 300_000)

        def session() -> tuple[int, int]:
            f = self.tls_ftp()
            lines: list[str] = []
            f.retrlines("RETR t.txt", lines.append)
            out = io.BytesIO()
            f.retrbinary("RETR t.txt", out.write)  # a rate limit: ThrottledConsumer
            f.quit()
            return len(lines), len(out.getvalue())

        self.assertEqual(await self.in_thread(session), (300_000, 1_500_000))
        self.assertEqual(self.threads, [])


class ThreadedTLSRetrFaultTests(ThreadedTLSTestCase):
    async def test_abor_mid_retr(self) -> None:
        await self.start()
        self.big_file()

        def session() -> None:
            f = self.tls_ftp()
            f.voidcmd("TYPE I")
            conn = f.transfercmd("RETR big.bin")
            got = 0
            while got < 1_000_000:
                got += len(conn.recv(65536))
            reply = f.abort()
            if reply[:3] == "426":
                reply = f.voidresp()
            self.assertIn(reply[:3], ("226", "225"))
            conn.close()
            self.assertEqual(f.sendcmd("NOOP")[:3], "200")
            f.quit()

        await self.in_thread(session)
        await self.settled()
        self.assertEqual(len(self.threads), 1)
        self.assertLess(self.threads[0].sent, BIG)

    async def test_data_connection_reset_mid_retr(self) -> None:
        await self.start()
        self.big_file()

        def session() -> str:
            f = self.tls_ftp()
            f.voidcmd("TYPE I")
            conn = f.transfercmd("RETR big.bin")
            conn.recv(65536)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # a reset
            try:
                reply = f.getresp()
            except ftplib.error_temp as e:
                reply = str(e)
            self.assertEqual(f.sendcmd("NOOP")[:3], "200")
            f.quit()
            return reply

        self.assertEqual((await self.in_thread(session))[:3], "426")
        await self.settled()
        self.assertEqual(len(self.threads), 1)

    async def test_control_connection_closing_stops_the_thread(self) -> None:
        await self.start()
        self.big_file()
        client: list[socket.socket] = []

        def session() -> None:
            f = self.tls_ftp()
            f.voidcmd("TYPE I")
            conn = f.transfercmd("RETR big.bin")
            conn.recv(65536)
            client.append(conn)  # still open, not read: only the session goes
            f.sock.close()

        await self.in_thread(session)
        self.addCleanup(client[0].close)
        await self.settled()  # the session saw its control connection go, stopped the thread
        self.assertEqual(len(self.threads), 1)
        self.assertLess(self.threads[0].sent, BIG)

    async def test_stalled_retr_times_out(self) -> None:
        await self.start(settings=FTPSettings(data_timeout=0.5))
        self.big_file()

        def session() -> str:
            f = self.tls_ftp()
            f.voidcmd("TYPE I")
            conn = f.transfercmd("RETR big.bin")  # then reads nothing
            try:
                reply = f.getresp()
            except ftplib.error_temp as e:
                reply = str(e)
            conn.close()
            f.quit()
            return reply

        reply = await self.in_thread(session)
        self.assertEqual(reply[:3], "426")
        self.assertIn("no progress", reply)
        self.assertEqual(len(self.threads), 1)
        await self.settled()

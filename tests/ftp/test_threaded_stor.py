"""Uploads received by a thread (core.recvfile): real clients, faults, limits, the fallbacks."""

from __future__ import annotations

import ftplib
import io
import os
import socket
import ssl
import struct
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater

from netproto_twisted.core import recvfile
from netproto_twisted.core.recvfile import ThreadedReceive
from netproto_twisted.ftp.fs import LocalWriteHandle
from netproto_twisted.ftp.server import FTPSettings
from netproto_twisted.ftp.server import data as data_module
from tests.ftp.helpers import ReusingFTP_TLS, ServerTestCase
from tests.ftp.test_server_tools import run


class ThreadedTestCase(ServerTestCase):
    """Records every threaded receive the server starts (``self.threads``)."""

    def setUp(self) -> None:
        self.threads: list[ThreadedReceive] = []
        self.baseline = recvfile.ThreadedReceive.running()
        real = data_module.receive_in_thread

        def recording(*args: Any, **kw: Any) -> ThreadedReceive:
            thread = real(*args, **kw)
            self.threads.append(thread)
            return thread

        self.patch(data_module, "receive_in_thread", recording)

    async def settled(self) -> None:
        """Until every session and receiving thread is gone, and what they leave is done.

        A thread counts itself out before its outcome reaches the reactor, and
        the session discards (or commits) the temporary file only then: so
        this also waits for no ``.partial-`` file (10 s at most in all; a file
        left for good still fails the test's own check of the directory).
        """
        for _ in range(200):
            live = self.server.factory.live  # type: ignore[attr-defined]
            partial = any(".partial-" in name for name in self.home())
            if not live and recvfile.ThreadedReceive.running() == self.baseline and not partial:
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(recvfile.ThreadedReceive.running(), self.baseline)

    def home(self) -> list[str]:
        return sorted(os.listdir(self.server.path("alice")))


class ThreadedStorTests(ThreadedTestCase):
    async def test_stor_appe_rest_stou_with_ftplib(self) -> None:
        server = await self.start()
        payload = os.urandom(3 * 1024 * 1024 + 5)

        def session() -> None:
            f = self.ftp()
            f.storbinary("STOR big.bin", io.BytesIO(payload))
            f.storbinary("APPE big.bin", io.BytesIO(b"tail"))
            f.storbinary("STOR r.bin", io.BytesIO(b"0123456789"))
            f.storbinary("STOR r.bin", io.BytesIO(b"abc"), rest=4)
            self.assertIn("stored as", f.storbinary("STOU", io.BytesIO(b"u")))
            f.quit()

        await self.in_thread(session)
        self.assertEqual(server.path("alice", "big.bin").read_bytes(), payload + b"tail")
        self.assertEqual(server.path("alice", "r.bin").read_bytes(), b"0123abc")
        self.assertEqual(server.path("alice", "upload").read_bytes(), b"u")
        self.assertEqual(self.home(), ["big.bin", "r.bin", "upload"])  # no temporary left
        self.assertEqual(len(self.threads), 5)
        self.assertFalse(any(t.spliced for t in self.threads))  # recv_into + write (measured)
        await self.settled()

    async def test_lftp_put(self) -> None:
        server = await self.start()
        local = self.mktemp()
        os.makedirs(local)
        payload = os.urandom(2_000_000)
        with open(os.path.join(local, "l.bin"), "wb") as f:
            f.write(payload)
        script = "set ftp:ssl-allow no; set net:max-retries 1; set net:timeout 10; put l.bin; bye"
        _out, err, code = await run(
            "lftp", "-u", "alice,secret", "-p", str(server.port), "-e", script, server.host,
            cwd=local,
        )  # fmt: skip
        self.assertEqual(code, 0, err)
        self.assertEqual(server.path("alice", "l.bin").read_bytes(), payload)
        self.assertEqual(len(self.threads), 1)

    async def test_fallbacks_ascii_tls_and_rate(self) -> None:
        server = await self.start(tls=True, settings=FTPSettings(max_upload_rate=50_000_000))

        def session() -> None:
            f = self.ftp()
            f.storlines("STOR a.txt", io.BytesIO(b"one\r\ntwo\r\n"))  # ASCII: converted
            f.storbinary("STOR rated.bin", io.BytesIO(b"r" * 100_000))  # a rate limit
            f.quit()
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            t = ReusingFTP_TLS(context=context, timeout=10)
            t.connect(server.host, server.port)
            t.login("alice", "secret")
            t.prot_p()
            t.storbinary("STOR tls.bin", io.BytesIO(b"t" * 100_000))
            t.quit()

        await self.in_thread(session)
        self.assertEqual(server.path("alice", "a.txt").read_bytes(), b"one\ntwo\n")
        self.assertEqual(server.path("alice", "rated.bin").read_bytes(), b"r" * 100_000)
        self.assertEqual(server.path("alice", "tls.bin").read_bytes(), b"t" * 100_000)
        self.assertEqual(self.threads, [])  # every one streamed through the reactor

    async def test_unlimited_binary_upload_in_the_same_session_is_threaded(self) -> None:
        await self.start()
        await self.in_thread(lambda: self.ftp().storbinary("STOR x", io.BytesIO(b"x")))
        self.assertEqual(len(self.threads), 1)


class ThreadedStorFaultTests(ThreadedTestCase):
    async def test_abor_mid_stor(self) -> None:
        await self.start()

        def session() -> None:
            f = self.ftp()
            f.voidcmd("TYPE I")
            conn = f.transfercmd("STOR big.bin")
            conn.sendall(b"x" * 1_000_000)
            for _ in range(100):  # STAT shows the thread's running count
                status = f.sendcmd("STAT")
                if "1000000 bytes so far" in status:
                    break
            self.assertIn("1000000 bytes so far", status)
            reply = f.abort()
            if reply[:3] == "426":
                reply = f.voidresp()
            self.assertIn(reply[:3], ("226", "225"))
            conn.close()
            self.assertEqual(f.sendcmd("NOOP")[:3], "200")
            f.quit()

        await self.in_thread(session)
        await self.settled()
        self.assertEqual(self.home(), [])
        self.assertEqual(len(self.threads), 1)

    async def test_data_connection_reset_mid_stor(self) -> None:
        await self.start()

        def session() -> str:
            f = self.ftp()
            f.voidcmd("TYPE I")
            conn = f.transfercmd("STOR big.bin")
            conn.sendall(b"x" * 1_000_000)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # a reset, not the orderly close that ends an upload well
            try:
                reply = f.getresp()
            except ftplib.error_temp as e:
                reply = str(e)
            f.quit()
            return reply

        self.assertEqual((await self.in_thread(session))[:3], "426")
        await self.settled()
        self.assertEqual(self.home(), [])

    async def test_control_connection_closing_stops_the_thread(self) -> None:
        await self.start()
        client: list[socket.socket] = []

        def session() -> None:
            f = self.ftp()
            f.voidcmd("TYPE I")
            conn = f.transfercmd("STOR big.bin")
            conn.sendall(b"x" * 500_000)
            client.append(conn)  # still open: only the session goes
            f.sock.close()

        await self.in_thread(session)
        self.addCleanup(client[0].close)
        await self.settled()  # the session saw its control connection go, stopped the thread
        self.assertEqual(self.home(), [])
        self.assertEqual(len(self.threads), 1)

    async def test_stalled_threaded_upload_times_out(self) -> None:
        await self.start(settings=FTPSettings(data_timeout=0.5))

        def session() -> str:
            f = self.ftp()
            f.voidcmd("TYPE I")
            conn = f.transfercmd("STOR slow.bin")
            conn.sendall(b"x" * 1000)  # then nothing more
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
        self.assertEqual(self.home(), [])

    async def test_disk_full(self) -> None:
        await self.start()
        full = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
        self.addCleanup(os.close, full)
        self.patch(LocalWriteHandle, "fileno", lambda handle: full)

        def session() -> str:
            f = self.ftp()
            try:
                f.storbinary("STOR big.bin", io.BytesIO(b"x" * 2_000_000))
            except (ftplib.error_perm, OSError) as e:  # 552, or the reset that cut sendall
                reply = str(e)
                if not reply[:1].isdigit():
                    reply = f.getresp()
            else:
                reply = "226"
            f.quit()
            return reply

        try:
            reply = await self.in_thread(session)
        except ftplib.error_perm as e:
            reply = str(e)
        self.assertEqual(reply[:3], "552")
        await self.settled()
        self.assertEqual(self.home(), [])  # the temporary file removed, nothing committed

    async def test_upload_size_limit_on_both_paths(self) -> None:
        await self.start(settings=FTPSettings(max_upload_size=100_000))

        def store(f: ftplib.FTP, command: str, payload: bytes, ascii: bool) -> str:
            try:
                if ascii:
                    return f.storlines(command, io.BytesIO(payload))
                return f.storbinary(command, io.BytesIO(payload))
            except ftplib.error_perm as e:
                return str(e)
            except OSError:  # the server closed the data connection mid-sendall
                try:
                    return f.getresp()
                except ftplib.error_perm as e:
                    return str(e)

        def session() -> list[str]:
            f = self.ftp()
            replies = [
                store(f, "STOR exact.bin", b"e" * 100_000, False),
                store(f, "STOR big.bin", b"b" * 3_000_000, False),
                store(f, "STOR big.txt", b"line\n" * 100_000, True),
            ]
            f.quit()
            return replies

        replies = await self.in_thread(session)
        self.assertEqual([r[:3] for r in replies], ["226", "552", "552"])
        await self.settled()
        self.assertEqual(self.home(), ["exact.bin"])
        self.assertEqual(len(self.threads), 2)  # the ASCII one went through the reactor

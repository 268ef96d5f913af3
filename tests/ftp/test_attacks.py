"""Hostile clients: bounce, passive-port theft, traversal, brute force, ABOR, vanishing, floods."""

from __future__ import annotations

import contextlib
import ftplib
import io
import os
import socket
import subprocess
import sys
import time

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.task import deferLater

from netproto_twisted.ftp import FTPPermanentError, connect_ftp
from netproto_twisted.ftp.server import FTPSettings
from tests.ftp.helpers import ServerTestCase


class BounceTests(ServerTestCase):
    async def test_port_and_eprt_only_to_the_peer_and_high_ports(self) -> None:
        await self.start()

        def run() -> None:
            f = self.ftp()
            for command in ("PORT 10,1,2,3,100,0", "PORT 127,0,0,2,100,0",
                            "EPRT |1|10.1.2.3|25600|", "EPRT |2|::1|25600|",
                            "PORT 127,0,0,1,0,25", "EPRT |1|127.0.0.1|21|"):  # fmt: skip
                with self.assertRaises(ftplib.error_perm) as e:
                    f.sendcmd(command)
                self.assertEqual(str(e.exception)[:3], "501", command)
            self.assertEqual(f.sendcmd("PORT 127,0,0,1,100,0")[:3], "200")
            self.assertEqual(f.sendcmd("EPSV ALL")[:3], "200")
            for command in ("PORT 127,0,0,1,100,0", "PASV"):
                with self.assertRaises(ftplib.error_perm) as e:
                    f.sendcmd(command)
                self.assertEqual(str(e.exception)[:3], "503")
            f.quit()

        await self.in_thread(run)


class PassiveTheftTests(ServerTestCase):
    async def test_other_address_cannot_take_the_passive_port(self) -> None:
        server = await self.start()
        server.path("alice", "secret.txt").write_bytes(b"for alice only")

        def run() -> None:
            f = self.ftp()
            port = int(f.sendcmd("EPSV").split("|")[3])
            thief = socket.socket()
            thief.bind(("127.0.0.2", 0))
            thief.settimeout(5)
            thief.connect(("127.0.0.1", port))
            stolen = b""
            with contextlib.suppress(OSError):
                stolen = thief.recv(100)  # the server closes it at once
            thief.close()
            self.assertEqual(stolen, b"")
            data = socket.create_connection(("127.0.0.1", port), timeout=5)
            f.sendcmd("TYPE I")
            self.assertEqual(f.sendcmd("RETR secret.txt")[:3], "150")
            got = data.makefile("rb").read()
            data.close()
            self.assertEqual(f.voidresp()[:3], "226")
            self.assertEqual(got, b"for alice only")
            f.quit()

        await self.in_thread(run)


class TraversalTests(ServerTestCase):
    async def test_every_trick_stays_inside(self) -> None:
        server = await self.start()
        outside = server.root.parent / "outside.txt"
        outside.write_bytes(b"OUTSIDE")
        os.symlink(str(server.root.parent), server.path("alice", "escape"))
        os.symlink(str(outside), server.path("alice", "file-link"))
        os.symlink("/etc", server.path("alice", "etc"))
        server.path("alice", "inside.txt").write_bytes(b"inside")

        def run() -> None:
            f = self.ftp()
            got: list[bytes] = []
            for path in ("../../outside.txt", "..\\..\\outside.txt", "/../outside.txt",
                         "escape/outside.txt", "file-link", "etc/passwd", "%2e%2e/outside.txt",
                         "\uff0e\uff0e/outside.txt", "../alice/../../outside.txt"):
                with self.assertRaises(ftplib.error_perm, msg=path) as e:
                    f.retrbinary("RETR " + path, got.append)
                self.assertEqual(str(e.exception)[:3], "550", path)
            self.assertEqual(got, [])
            with self.assertRaises(ftplib.error_perm):
                f.cwd("escape")
            f.cwd("../../..")
            self.assertEqual(f.pwd(), "/")
            self.assertEqual(f.nlst(), ["inside.txt"])  # links leading out are not listed
            with self.assertRaises(ftplib.error_perm):
                f.storbinary("STOR escape/evil.txt", io.BytesIO(b"evil"))
            with self.assertRaises(ftplib.error_perm):
                f.rename("inside.txt", "escape/moved")
            f.sock.sendall(b"RETR inside\x00.txt\r\n")
            self.assertEqual(f.getline()[:3], "500")
            f.quit()

        await self.in_thread(run)
        self.assertFalse((server.root.parent / "evil.txt").exists())
        self.assertFalse((server.root.parent / "moved").exists())
        self.assertEqual(outside.read_bytes(), b"OUTSIDE")


class BruteForceTests(ServerTestCase):
    async def test_growing_delay_then_disconnect(self) -> None:
        await self.start(login_delay=0.1)

        def run() -> list[float]:
            f = ftplib.FTP(timeout=10)
            f.connect(self.server.host, self.server.port)
            times = []
            for _ in range(4):
                start = time.monotonic()
                with self.assertRaises(ftplib.error_perm):
                    f.login("alice", "wrong")
                times.append(time.monotonic() - start)
            f.close()
            return times

        times = await self.in_thread(run)
        # 0, then at least 0.1, 0.2, 0.4 s after each failure (the penalty doubles)
        self.assertGreaterEqual(times[1], 0.09)
        self.assertGreaterEqual(times[2], 0.19)
        self.assertGreaterEqual(times[3], 0.39)

    async def test_disconnect_after_max_failures(self) -> None:
        await self.start()

        def run() -> None:
            f = ftplib.FTP(timeout=10)
            f.connect(self.server.host, self.server.port)
            for _ in range(4):
                with self.assertRaises(ftplib.error_perm):
                    f.login("alice", "wrong")
            f.sendcmd("USER alice")
            with self.assertRaises(ftplib.error_perm):
                f.sendcmd("PASS wrong")
            self.assertEqual(f.getline()[:3], "421")
            self.assertEqual(f.sock.recv(10), b"")
            f.close()

        await self.in_thread(run)


class TransferAttackTests(ServerTestCase):
    async def test_abor_mid_transfer(self) -> None:
        server = await self.start()
        with open(server.path("alice", "big.bin"), "wb") as f:
            f.truncate(64 * 1024 * 1024)  # sparse

        def run() -> None:
            f = self.ftp()
            f.voidcmd("TYPE I")
            conn = f.transfercmd("RETR big.bin")
            self.assertTrue(len(conn.recv(65536)) > 0)
            reply = f.abort()  # ABOR sent as urgent data, as ftplib does
            if reply[:3] == "426":  # the transfer's end, then ABOR's own reply
                reply = f.voidresp()
            self.assertIn(reply[:3], ("226", "225"))
            conn.close()
            self.assertEqual(f.sendcmd("NOOP")[:3], "200")
            self.assertEqual(f.nlst(), ["big.bin"])
            f.quit()

        await self.in_thread(run)

    async def test_client_vanishing_mid_stor_leaves_no_file(self) -> None:
        server = await self.start()
        # The client dies mid-transfer: its sockets are reset, not closed in order
        # (an orderly close of the data connection is how a STOR ends well).
        script = (
            "import ftplib, os, socket, struct, sys\n"
            "f = ftplib.FTP(timeout=10); f.connect('127.0.0.1', int(sys.argv[1]))\n"
            "f.login('alice', 'secret'); f.voidcmd('TYPE I')\n"
            "c = f.transfercmd('STOR big.bin'); c.sendall(b'x' * 3_000_000)\n"
            "for s in (c, f.sock):\n"
            "    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n"
            "os._exit(0)\n"
        )
        proc = await self.in_thread(
            lambda: subprocess.run([sys.executable, "-c", script, str(server.port)], timeout=30)
        )
        self.assertEqual(proc.returncode, 0)
        for _ in range(200):  # until the server has seen both connections go (10 s at most)
            if not server.factory.live:  # type: ignore[attr-defined]
                break
            await deferLater(reactor, 0.05, lambda: None)
        for _ in range(40):  # and its disk work is done
            if not os.listdir(server.path("alice")):
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(os.listdir(server.path("alice")), [], server.factory.live)

    async def test_rest_upload_keeps_the_partial_file(self) -> None:
        server = await self.start()
        server.path("alice", "r.bin").write_bytes(b"a" * 10)
        script = (
            "import ftplib, os, sys\n"
            "f = ftplib.FTP(timeout=10); f.connect('127.0.0.1', int(sys.argv[1]))\n"
            "f.login('alice', 'secret'); f.voidcmd('TYPE I')\n"
            "c = f.transfercmd('STOR r.bin', rest=10); c.sendall(b'b' * 1000)\n"
            "os._exit(0)\n"
        )
        await self.in_thread(
            lambda: subprocess.run([sys.executable, "-c", script, str(server.port)], timeout=30)
        )
        for _ in range(200):
            if not server.factory.live:  # type: ignore[attr-defined]
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(server.path("alice", "r.bin").read_bytes()[:10], b"a" * 10)

    async def test_half_open_tls_is_closed(self) -> None:
        server = await self.start(tls=True, settings=FTPSettings(tls_handshake_timeout=0.3))

        def run() -> bytes:
            s = socket.create_connection((server.host, server.port), timeout=10)
            s.recv(100)
            s.sendall(b"AUTH TLS\r\n")
            s.recv(100)  # 234, then never a ClientHello
            start = time.monotonic()
            try:
                rest = s.recv(100)
            except ConnectionResetError:
                rest = b""
            self.assertLess(time.monotonic() - start, 5)
            s.close()
            return rest

        self.assertEqual(await self.in_thread(run), b"")

    async def test_garbage_and_long_lines(self) -> None:
        await self.start()

        def run() -> None:
            s = socket.create_connection((self.server.host, self.server.port), timeout=10)
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"\x00\x01\x02 junk\r\n" + b"A" * 5000 + b"\r\nNOOP\r\n")
            self.assertEqual(f.readline()[:3], b"500")
            self.assertEqual(f.readline()[:3], b"500")
            self.assertEqual(f.readline()[:3], b"200")  # and the session goes on
            s.close()

        await self.in_thread(run)


class FloodTests(ServerTestCase):
    async def test_300_logins_at_once(self) -> None:
        await self.start()

        async def one(i: int) -> str:
            client = await connect_ftp(
                reactor, "127.0.0.1", self.server.port, user="alice", password="secret"
            )
            name = await client.pwd()
            await client.quit()
            return name

        names = await gatherResults([ensureDeferred(one(i)) for i in range(300)])
        self.assertEqual(set(names), {"/"})

    async def test_bad_login_refused_through_client(self) -> None:
        await self.start()
        with self.assertRaises(FTPPermanentError) as e:
            await connect_ftp(reactor, "127.0.0.1", self.server.port, user="alice", password="x")
        self.assertEqual(e.exception.code, 530)


class StallTests(ServerTestCase):
    async def test_stalled_upload_is_dropped(self) -> None:
        server = await self.start(settings=FTPSettings(data_timeout=0.5))

        def run() -> str:
            f = self.ftp()
            f.voidcmd("TYPE I")
            conn = f.transfercmd("STOR slow.bin")
            conn.sendall(b"x" * 1000)  # then nothing more
            start = time.monotonic()
            try:
                reply = f.getresp()
            except ftplib.error_temp as e:
                reply = str(e)
            self.assertLess(time.monotonic() - start, 10)
            conn.close()
            f.quit()
            return reply

        self.assertEqual((await self.in_thread(run))[:3], "426")
        self.assertEqual(os.listdir(server.path("alice")), [])

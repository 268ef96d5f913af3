"""Our server with the stdlib's ftplib: FTP, FTP_TLS with PROT P, active and passive modes."""

from __future__ import annotations

import ftplib
import io
import os
import time

from twisted.internet import reactor
from twisted.internet.defer import Deferred

from netproto_twisted.ftp.server import FTPSettings
from tests.ftp.helpers import ReusingFTP_TLS, ServerTestCase


class FtplibTests(ServerTestCase):
    async def test_session(self) -> None:
        server = await self.start()

        def run() -> None:
            f = self.ftp()
            self.assertEqual(f.pwd(), "/")
            f.storbinary("STOR a.bin", io.BytesIO(b"\x00\xff" * 100_000))
            self.assertEqual(f.size("a.bin"), 200_000)
            out = io.BytesIO()
            f.retrbinary("RETR a.bin", out.write)
            self.assertEqual(out.getvalue(), b"\x00\xff" * 100_000)
            f.mkd("sub dir")
            f.cwd("sub dir")
            self.assertEqual(f.pwd(), "/sub dir")
            f.storlines("STOR t.txt", io.BytesIO(b"one\ntwo\r\nthree\n"))
            lines: list[str] = []
            f.retrlines("RETR t.txt", lines.append)
            self.assertEqual(lines, ["one", "two", "three"])
            f.cwd("..")
            self.assertEqual(sorted(f.nlst()), ["a.bin", "sub dir"])
            facts = dict(f.mlsd())
            self.assertEqual(facts["a.bin"]["size"], "200000")
            self.assertEqual(facts["sub dir"]["type"], "dir")
            listing: list[str] = []
            f.dir(listing.append)
            dirs = [line for line in listing if line.startswith("d")]
            self.assertTrue(dirs and dirs[0].endswith("sub dir"), listing)
            f.rename("a.bin", "b.bin")
            f.delete("b.bin")
            f.delete("sub dir/t.txt")
            f.rmd("sub dir")
            self.assertEqual(f.nlst(), [])
            f.quit()

        await self.in_thread(run)
        self.assertEqual(os.listdir(server.path("alice")), [])

    async def test_ascii_conversion(self) -> None:
        server = await self.start()
        server.path("alice", "u.txt").write_bytes(b"a\nb\n")

        def run() -> None:
            f = self.ftp()
            f.sendcmd("TYPE A")
            with f.transfercmd("RETR u.txt") as conn:
                data = conn.makefile("rb").read()
            f.voidresp()
            self.assertEqual(data, b"a\r\nb\r\n")
            f.sendcmd("TYPE A")
            with f.transfercmd("STOR v.txt") as conn:
                conn.sendall(b"x\r\ny\r")
                conn.sendall(b"\nz")
            f.voidresp()
            f.quit()

        await self.in_thread(run)
        self.assertEqual(server.path("alice", "v.txt").read_bytes(), b"x\ny\nz")

    async def test_active_mode(self) -> None:
        await self.start()

        def run() -> None:
            f = self.ftp()
            f.set_pasv(False)
            f.storbinary("STOR p.bin", io.BytesIO(b"p" * 5000))
            self.assertEqual(f.nlst(), ["p.bin"])
            f.quit()

        await self.in_thread(run)

    async def test_rest_appe_stou_allo_site_mfmt(self) -> None:
        server = await self.start()
        server.path("alice", "r.bin").write_bytes(b"0123456789")

        def run() -> None:
            f = self.ftp()
            out = io.BytesIO()
            f.retrbinary("RETR r.bin", out.write, rest=4)
            self.assertEqual(out.getvalue(), b"456789")
            f.storbinary("APPE r.bin", io.BytesIO(b"AB"))
            f.storbinary("STOR r.bin", io.BytesIO(b"xyz"), rest=3)  # resume: kept in place
            self.assertEqual(f.sendcmd("ALLO 100")[:3], "202")
            f.quit()

        await self.in_thread(run)
        self.assertEqual(server.path("alice", "r.bin").read_bytes(), b"012xyz")

    async def test_stou_site_mfmt_help_feat_stat(self) -> None:
        server = await self.start()
        server.path("alice", "m.txt").write_bytes(b"m")

        def run() -> None:
            f = self.ftp()
            f.storbinary("STOU", io.BytesIO(b"one"))
            f.storbinary("STOU", io.BytesIO(b"two"))
            self.assertEqual(f.sendcmd("MFMT 20200102030405 m.txt")[:3], "213")
            self.assertEqual(f.sendcmd("MDTM m.txt"), "213 20200102030405")
            self.assertEqual(f.sendcmd("SITE CHMOD 600 m.txt")[:3], "200")
            help_text = f.sendcmd("HELP")
            self.assertIn("RETR", help_text)
            self.assertIn("MLSD", f.sendcmd("HELP MLSD"))
            feat = f.sendcmd("FEAT")
            for feature in ("EPSV", "MLST", "REST STREAM", "SIZE", "UTF8", "MFMT"):
                self.assertIn(feature, feat)
            self.assertEqual(f.sendcmd("OPTS UTF8 ON")[:3], "200")
            self.assertIn("logged in as alice", f.sendcmd("STAT"))
            self.assertIn("m.txt", f.sendcmd("STAT ."))
            self.assertEqual(f.sendcmd("SYST"), "215 UNIX Type: L8")
            self.assertEqual(f.sendcmd("NOOP")[:3], "200")
            with self.assertRaises(ftplib.error_perm) as e:
                f.sendcmd("XYZZY")
            self.assertEqual(str(e.exception)[:3], "500")
            mlst = f.sendcmd("MLST m.txt")
            self.assertIn("type=file;", mlst)
            f.quit()

        await self.in_thread(run)
        names = sorted(os.listdir(server.path("alice")))
        self.assertEqual(len([n for n in names if n.startswith("upload")]), 2)
        self.assertEqual(os.stat(server.path("alice", "m.txt")).st_mode & 0o777, 0o600)
        self.assertEqual(
            time.gmtime(os.stat(server.path("alice", "m.txt")).st_mtime)[:6], (2020, 1, 2, 3, 4, 5)
        )

    async def test_permissions(self) -> None:
        server = await self.start()
        server.path("reader", "f.txt").write_bytes(b"f")

        def run() -> None:
            f = self.ftp("reader", "pw")
            self.assertEqual(f.nlst(), ["f.txt"])
            for call in (lambda: f.storbinary("STOR g", io.BytesIO(b"")),
                         lambda: f.delete("f.txt"), lambda: f.mkd("d"),
                         lambda: f.rename("f.txt", "g"),
                         lambda: f.sendcmd("SITE CHMOD 777 f.txt")):  # fmt: skip
                with self.assertRaises(ftplib.error_perm) as e:
                    call()
                self.assertEqual(str(e.exception)[:3], "550")
            f.quit()

        await self.in_thread(run)
        self.assertEqual(os.listdir(server.path("reader")), ["f.txt"])

    async def test_anonymous_read_only(self) -> None:
        server = await self.start(anonymous=True)
        server.root.joinpath("pub", "readme").write_bytes(b"hi")

        def run() -> None:
            f = ftplib.FTP(timeout=10)
            f.connect(server.host, server.port)
            f.login()
            out = io.BytesIO()
            f.retrbinary("RETR readme", out.write)
            self.assertEqual(out.getvalue(), b"hi")
            with self.assertRaises(ftplib.error_perm):
                f.storbinary("STOR x", io.BytesIO(b"x"))
            f.quit()

        await self.in_thread(run)

    async def test_anonymous_off_by_default(self) -> None:
        await self.start()

        def run() -> None:
            f = ftplib.FTP(timeout=10)
            f.connect(self.server.host, self.server.port)
            with self.assertRaises(ftplib.error_perm):
                f.login()
            f.quit()

        await self.in_thread(run)

    async def test_login_required(self) -> None:
        await self.start()

        def run() -> None:
            f = ftplib.FTP(timeout=10)
            f.connect(self.server.host, self.server.port)
            for command in ("PWD", "LIST", "RETR x", "PASV", "CWD /"):
                with self.assertRaises(ftplib.error_perm) as e:
                    f.sendcmd(command)
                self.assertEqual(str(e.exception)[:3], "530")
            f.quit()

        await self.in_thread(run)


class FtplibTLSTests(ServerTestCase):
    tls = True

    async def test_prot_p_with_session_reuse(self) -> None:
        server = await self.start()

        def run() -> None:
            f = ReusingFTP_TLS(timeout=10)
            f.connect(server.host, server.port)
            f.login("alice", "secret")  # AUTH TLS first (ftplib does it)
            f.prot_p()
            f.storbinary("STOR s.bin", io.BytesIO(b"s" * 300_000))
            out = io.BytesIO()
            f.retrbinary("RETR s.bin", out.write)
            self.assertEqual(len(out.getvalue()), 300_000)
            self.assertEqual(f.nlst(), ["s.bin"])
            f.quit()

        await self.in_thread(run)

    async def test_stock_ftplib_without_reuse_is_refused(self) -> None:
        server = await self.start()

        def run() -> None:
            f = ftplib.FTP_TLS(timeout=10)
            f.connect(server.host, server.port)
            f.login("alice", "secret")
            f.prot_p()
            with self.assertRaises((ftplib.error_perm, OSError)):
                f.nlst()
            f.close()

        await self.in_thread(run)

    async def test_stock_ftplib_when_reuse_not_required(self) -> None:
        server = await self.start(settings=FTPSettings(require_session_reuse=False))

        def run() -> None:
            f = ftplib.FTP_TLS(timeout=10)
            f.connect(server.host, server.port)
            f.login("alice", "secret")
            f.prot_p()
            f.storbinary("STOR s.bin", io.BytesIO(b"s" * 1000))
            self.assertEqual(f.nlst(), ["s.bin"])
            f.quit()

        await self.in_thread(run)

    async def test_password_needs_tls_off_loopback_policy(self) -> None:
        server = await self.start(settings=FTPSettings(require_tls=True))

        def run() -> None:
            f = ftplib.FTP(timeout=10)
            f.connect(server.host, server.port)
            with self.assertRaises(ftplib.error_perm) as e:
                f.login("alice", "secret")
            self.assertEqual(str(e.exception)[:3], "534")
            f.close()
            t = ReusingFTP_TLS(timeout=10)
            t.connect(server.host, server.port)
            t.login("alice", "secret")
            with self.assertRaises(ftplib.error_perm):
                t.nlst()  # PROT C under require_tls
            t.prot_p()
            self.assertEqual(t.nlst(), [])
            t.quit()

        await self.in_thread(run)

    async def test_implicit_tls(self) -> None:
        server = await self.start(tls=False, implicit_tls=True)

        def run() -> None:
            import ssl

            class Implicit(ReusingFTP_TLS):
                def connect(self, host: str = "", port: int = 0, timeout: float = -999,
                            source_address: object = None) -> str:
                    import socket

                    self.host, self.port = host, port
                    raw = socket.create_connection((host, port), 10)
                    self.sock = self.context.wrap_socket(raw, server_hostname=host)
                    self.af = self.sock.family
                    self.file = self.sock.makefile("r", encoding=self.encoding)
                    self.welcome = self.getresp()
                    return self.welcome

            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            f = Implicit(context=ctx, timeout=10)
            f.connect(server.host, server.port)
            f.login("alice", "secret")
            f.prot_p()
            self.assertEqual(f.nlst(), [])
            f.quit()

        await self.in_thread(run)


_ = (reactor, Deferred)


class ProtAfterPassiveTests(ServerTestCase):
    tls = True

    async def test_prot_p_after_epsv_still_protects(self) -> None:
        server = await self.start()
        server.path("alice", "p.txt").write_bytes(b"private")

        def run() -> bytes:
            f = ReusingFTP_TLS(timeout=10)
            f.connect(server.host, server.port)
            f.login("alice", "secret")
            port = int(f.sendcmd("EPSV").split("|")[3])
            f.prot_p()
            import socket

            raw = socket.create_connection((server.host, port), timeout=10)
            f.voidcmd("TYPE I")
            f.sendcmd("RETR p.txt")
            conn = f.context.wrap_socket(raw, server_hostname=server.host,
                                         session=f.sock.session)  # fmt: skip
            data = conn.makefile("rb").read()
            conn.close()
            f.voidresp()
            f.quit()
            return data

        self.assertEqual(await self.in_thread(run), b"private")

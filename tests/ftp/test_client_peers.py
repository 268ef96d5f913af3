"""Our client against real servers: vsftpd (TLS with require_ssl_reuse) and pyftpdlib."""

from __future__ import annotations

import io
import os
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from netproto_twisted.core.tls import client_options
from netproto_twisted.ftp import FTPPermanentError, connect_ftp
from netproto_twisted.ftp.mirror import mirror_download
from tests.ftp.peers import Pyftpdlib, Vsftpd

_INSECURE = client_options("localhost", verify=False)


class VsftpdTests(TestCase):
    async def _server(self) -> Vsftpd:
        server = Vsftpd(Path(self.mktemp()).absolute())
        self.addCleanup(server.stop)
        await server.started()
        (server.root / "hello.txt").write_bytes(b"hello vsftpd\n")
        return server

    async def test_plain(self) -> None:
        server = await self._server()
        client = await connect_ftp(reactor, "127.0.0.1", server.port, user="anonymous")
        self.assertIn("vsFTPd", client.welcome)
        out = io.BytesIO()
        await client.retrbinary("RETR hello.txt", out)
        self.assertEqual(out.getvalue(), b"hello vsftpd\n")
        await client.cwd("up")
        await client.storbinary("STOR a.bin", io.BytesIO(b"a" * 200_000))
        self.assertEqual(await client.size("a.bin"), 200_000)
        self.assertEqual(await client.nlst(), ["a.bin"])
        entries = await client.list_entries()
        self.assertEqual([(e.name, e.size) for e in entries], [("a.bin", 200_000)])
        await client.quit()
        self.assertEqual((server.root / "up" / "a.bin").read_bytes(), b"a" * 200_000)

    async def test_explicit_tls_with_required_session_reuse(self) -> None:
        server = await self._server()
        client = await connect_ftp(
            reactor, "127.0.0.1", server.port, tls="explicit", tls_options=_INSECURE,
            user="anonymous",
        )  # fmt: skip
        self.assertTrue(client.is_secure)
        self.assertTrue(client.prot_private)
        out = io.BytesIO()
        await client.retrbinary("RETR hello.txt", out)
        self.assertEqual(out.getvalue(), b"hello vsftpd\n")
        payload = os.urandom(300_000)
        await client.storbinary("STOR up/t.bin", io.BytesIO(payload))
        back = io.BytesIO()
        await client.retrbinary("RETR up/t.bin", back)
        self.assertEqual(back.getvalue(), payload)
        part = io.BytesIO()
        await client.retrbinary("RETR up/t.bin", part, rest=299_000)
        self.assertEqual(part.getvalue(), payload[299_000:])
        await client.quit()


    async def test_mirror_download_without_mlsd(self) -> None:
        server = await self._server()  # vsftpd has no MLSD: LIST is parsed instead
        (server.root / "up" / "d").mkdir()
        (server.root / "up" / "d" / "f.bin").write_bytes(b"f" * 5000)
        (server.root / "up" / "g.txt").write_bytes(b"g")
        local = Path(self.mktemp())

        def connect():  # type: ignore[no-untyped-def]
            return connect_ftp(reactor, "127.0.0.1", server.port, user="anonymous")

        result = await mirror_download(connect, "/up", local, parallel=2)
        self.assertEqual(len(result.files), 2)
        self.assertEqual((local / "d" / "f.bin").read_bytes(), b"f" * 5000)
        self.assertEqual((local / "g.txt").read_bytes(), b"g")


class PyftpdlibTests(TestCase):
    async def _server(self, tls: bool = False) -> Pyftpdlib:
        server = Pyftpdlib(Path(self.mktemp()).absolute(), tls=tls)
        self.addCleanup(server.stop)
        await server.started()
        return server

    async def test_ftplib_parity(self) -> None:
        server = await self._server()
        client = await connect_ftp(reactor, "127.0.0.1", server.port, user="bob", password="pw")
        self.assertEqual(await client.pwd(), "/")
        self.assertEqual(await client.mkd("d"), "/d")
        await client.cwd("d")
        await client.storbinary("STOR x.bin", io.BytesIO(b"x" * 100_000))
        await client.storlines("STOR t.txt", io.BytesIO(b"l1\nl2\n"))
        lines: list[str] = []
        await client.retrlines("RETR t.txt", lines.append)
        self.assertEqual(lines, ["l1", "l2"])
        facts = dict(await client.mlsd())
        self.assertEqual(facts["x.bin"]["type"], "file")
        self.assertEqual(facts["x.bin"]["size"], "100000")
        await client.rename("x.bin", "y.bin")
        self.assertEqual(sorted(await client.nlst()), ["t.txt", "y.bin"])
        self.assertEqual(len(await client.list()), 2)
        # resume an upload with REST
        await client.storbinary("STOR y.bin", io.BytesIO(b"Z" * 10), rest=99_990)
        self.assertEqual((server.root / "d" / "y.bin").read_bytes(), b"x" * 99_990 + b"Z" * 10)
        await client.delete("y.bin")
        await client.delete("t.txt")
        await client.cwd("..")
        await client.rmd("d")
        with self.assertRaises(FTPPermanentError) as e:
            await client.cwd("nope")
        self.assertEqual(e.exception.code, 550)
        self.assertEqual((await client.sendcmd("NOOP"))[:3], "200")
        await client.quit()

    async def test_tls(self) -> None:
        server = await self._server(tls=True)
        client = await connect_ftp(
            reactor, "127.0.0.1", server.port, tls="explicit", tls_options=_INSECURE,
            user="bob", password="pw",
        )  # fmt: skip
        await client.storbinary("STOR s.bin", io.BytesIO(b"s" * 50_000))
        out = io.BytesIO()
        await client.retrbinary("RETR s.bin", out)
        self.assertEqual(out.getvalue(), b"s" * 50_000)
        await client.quit()

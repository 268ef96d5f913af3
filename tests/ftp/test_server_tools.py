"""Our server with real clients: curl (ftp://, --ssl-reqd) and lftp (mirror, FTPS)."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue

from tests.ftp.helpers import ServerTestCase, need


async def run(program: str, *args: str, cwd: str | None = None) -> tuple[bytes, bytes, int]:
    out, err, code = await getProcessOutputAndValue(
        need(program), args, env=dict(os.environ, HOME=cwd or os.getcwd()), path=cwd,
        reactor=reactor,
    )  # fmt: skip
    return out, err, code


class CurlTests(ServerTestCase):
    tls = True

    async def test_plain_and_tls(self) -> None:
        server = await self.start()
        server.path("alice", "f.txt").write_bytes(b"hello curl\n")
        base = f"ftp://alice:secret@{server.host}:{server.port}/"
        out, err, code = await run("curl", "-sS", base + "f.txt")
        self.assertEqual((code, out), (0, b"hello curl\n"), err)
        upload = self.mktemp()
        with open(upload, "wb") as f:
            f.write(b"u" * 100_000)
        out, err, code = await run("curl", "-sS", "-T", upload, base + "up.bin")
        self.assertEqual(code, 0, err)
        self.assertEqual(server.path("alice", "up.bin").read_bytes(), b"u" * 100_000)
        # FTPS: AUTH TLS, PROT P, data channels resuming the session (required by default).
        out, err, code = await run("curl", "-sS", "--ssl-reqd", "-k", base + "up.bin")
        self.assertEqual(code, 0, err)
        self.assertEqual(out, b"u" * 100_000)
        out, err, code = await run("curl", "-sS", "--ssl-reqd", "-k", "-T", upload,
                                   base + "up2.bin")  # fmt: skip
        self.assertEqual(code, 0, err)
        out, err, code = await run("curl", "-sS", "--ssl-reqd", "-k", "--list-only", base)
        self.assertEqual(sorted(out.decode().split()), ["f.txt", "up.bin", "up2.bin"], err)
        out, err, code = await run("curl", "-sS", "--ftp-port", "127.0.0.1", base + "f.txt")
        self.assertEqual((code, out), (0, b"hello curl\n"), err)

    async def test_bad_password(self) -> None:
        server = await self.start()
        _out, err, code = await run(
            "curl", "-sS", f"ftp://alice:wrong@{server.host}:{server.port}/"
        )
        self.assertEqual(code, 67, err)  # CURLE_LOGIN_DENIED


class LftpTests(ServerTestCase):
    tls = True

    async def test_mirror_both_ways_over_ftps(self) -> None:
        server = await self.start()
        local = self.mktemp()
        os.makedirs(os.path.join(local, "tree", "sub"))
        for name, size in (("a.bin", 70_000), ("sub/b.txt", 10), ("sub/c", 0)):
            with open(os.path.join(local, "tree", name), "wb") as f:
                f.write(os.urandom(size))
        script = (
            "set ssl:verify-certificate no; set ftp:ssl-force true; "
            "set ftp:ssl-protect-data true; set net:max-retries 1; set net:timeout 10; "
            "mirror -R tree up; mirror up down; bye"
        )
        _out, err, code = await run(
            "lftp", "-u", "alice,secret", "-p", str(server.port), "-e", script, server.host,
            cwd=local,
        )
        self.assertEqual(code, 0, err)
        for name in ("a.bin", "sub/b.txt", "sub/c"):
            original = Path(local, "tree", name).read_bytes()
            self.assertEqual(server.path("alice", "up", name).read_bytes(), original)
            self.assertEqual(Path(local, "down", name).read_bytes(), original)

"""Recursive mirrors both ways against our server, with parallel sessions."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.internet import reactor

from netproto_twisted.ftp import connect_ftp
from netproto_twisted.ftp.mirror import mirror_download, mirror_upload
from tests.ftp.helpers import ServerTestCase


def _tree(root: Path) -> dict[str, bytes]:
    out = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


class MirrorTests(ServerTestCase):
    async def test_up_then_down(self) -> None:
        server = await self.start()
        local = Path(self.mktemp())
        (local / "a" / "b").mkdir(parents=True)
        (local / "empty").mkdir()
        files = {"top.bin": os.urandom(70_000), "a/x.txt": b"x", "a/b/deep": b"",
                 "a/b/sp ace": b"s" * 10}  # fmt: skip
        for name, data in files.items():
            (local / name).write_bytes(data)

        def connect():  # type: ignore[no-untyped-def]
            return connect_ftp(reactor, server.host, server.port, user="alice", password="secret")

        up = await mirror_upload(connect, local, "/copy", parallel=3)
        self.assertEqual(sorted(up.files), sorted("/copy/" + n for n in files))
        self.assertEqual(_tree(server.path("alice", "copy")), files)
        self.assertTrue(server.path("alice", "copy", "empty").is_dir())
        back = Path(self.mktemp())
        down = await mirror_download(connect, "/copy", back, parallel=3)
        self.assertEqual(len(down.files), len(files))
        self.assertEqual(_tree(back), files)
        self.assertTrue((back / "empty").is_dir())

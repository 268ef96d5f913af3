"""Finished FTP sessions leave no reference cycle behind on the server.

An object cycle per session (a closure that schedules itself, a turn and the
closure it runs...) leaves every session to Python's cyclic garbage
collector, whose passes then cost CPU time on a busy server.  The sessions
here (login, ``SIZE``, ``MDTM``, ``CWD``, a passive download, quit) run with
the collector off once the server is warm, and ``gc.collect()`` must then
find nothing: everything was freed by reference counting.  (Work handed to
Twisted's thread pool -- a password check, listings, uploads' writes --
leaves one cycle per call inside the pool itself, so these sessions log in
as ``anonymous`` and only download.)
"""

from __future__ import annotations

import ftplib
import threading

from twisted.internet import reactor
from twisted.internet.task import deferLater

from tests.ftp.helpers import ServerTestCase
from tests.gccheck import collector_finds_nothing


class NoCycleTests(ServerTestCase):
    anonymous = True  # no password to check (a check runs in the thread pool)

    def session(self) -> None:
        f = ftplib.FTP(timeout=10)
        f.connect(self.server.host, self.server.port)
        f.login()  # anonymous
        self.assertEqual(f.size("f.bin"), 100_000)
        f.sendcmd("MDTM f.bin")
        f.cwd("/")
        got = bytearray()
        f.retrbinary("RETR f.bin", got.extend)
        self.assertEqual(len(got), 100_000)
        f.quit()

    async def sessions(self, count: int) -> None:
        """Run ``count`` sessions in a plain thread (no thread-pool call of the test's own)."""
        errors: list[BaseException] = []

        def run() -> None:
            try:
                for _ in range(count):
                    self.session()
            except BaseException as e:  # reported below
                errors.append(e)

        thread = threading.Thread(target=run)
        thread.start()
        while thread.is_alive():
            await deferLater(reactor, 0.01, lambda: None)
        if errors:
            raise errors[0]

    async def test_sessions(self) -> None:
        server = await self.start()
        (server.root / "pub" / "f.bin").write_bytes(b"x" * 100_000)
        await self.sessions(2)
        with collector_finds_nothing(self):
            await self.sessions(3)

"""Shared pieces of the FTP tests: a server per test, blocking peers run in threads."""

from __future__ import annotations

import ftplib
import shutil
from typing import Any

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from netproto_twisted.ftp.server import FTPSettings
from netproto_twisted.testing.ftp import FTPTestServer, start_ftp_server

ALL = "elradfmwMT"


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """ftplib's FTP_TLS whose data connections resume the control session (as curl does)."""

    def ntransfercmd(self, cmd: str, rest: Any = None) -> tuple[Any, Any]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            conn = self.context.wrap_socket(
                conn, server_hostname=self.host, session=self.sock.session
            )
        return conn, size


def need(program: str) -> str:
    """The program's path, or skip."""
    path = shutil.which(program)
    if path is None:
        from twisted.trial.unittest import SkipTest

        raise SkipTest(f"{program} is not installed (Debian package; .ci/peers installs it)")
    return path


class ServerTestCase(TestCase):
    """Starts our server over a temporary root for each test; ``self.server``."""

    users: dict[str, tuple[str, str]] = {"alice": ("secret", ALL), "reader": ("pw", "elr")}
    anonymous = False
    tls = False
    settings: FTPSettings | None = None
    login_delay = 0.0

    async def start(self, **kw: Any) -> FTPTestServer:
        server = await start_ftp_server(
            reactor,
            self.mktemp(),
            kw.pop("users", self.users),
            anonymous=kw.pop("anonymous", self.anonymous),
            tls=kw.pop("tls", self.tls),
            settings=kw.pop("settings", self.settings),
            login_delay=kw.pop("login_delay", self.login_delay),
            **kw,
        )
        self.addCleanup(server.stop)
        self.server = server
        return server

    def in_thread(self, f: Any, *args: Any) -> Any:
        return deferToThread(f, *args)

    def ftp(self, user: str = "alice", password: str = "secret") -> ftplib.FTP:
        f = ftplib.FTP(timeout=10)
        f.connect(self.server.host, self.server.port)
        f.login(user, password)
        return f

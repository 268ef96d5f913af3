"""The FTP server's Twisted side: the control Protocol and its Factory."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime

from netproto_twisted.core.connection import ConnectionProtocol
from netproto_twisted.core.framing import LineEndings
from netproto_twisted.core.lineproto import LineFactory
from netproto_twisted.core.net import is_loopback, peer_host
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.core.streaming import BlockRunner, thread_block_runner
from netproto_twisted.core.threads import InlineUnlessSlow
from netproto_twisted.ftp.fs import LocalFilesystem
from netproto_twisted.ftp.interfaces import IFTPFilesystem
from netproto_twisted.ftp.server.commands import State
from netproto_twisted.ftp.server.connection import FTPConnection
from netproto_twisted.ftp.server.data import DataPorts
from netproto_twisted.ftp.server.settings import FTPSettings
from netproto_twisted.ftp.users import FTPUser, UserTable

__all__ = ["HOME_MEMO_SECONDS", "FTPServerFactory", "FTPServerProtocol", "local_filesystems"]

#: How long a resolved home is reused by the next logins (a changed link is seen after it).
HOME_MEMO_SECONDS = 1.0
_HOME_MEMO_SIZE = 4096


def local_filesystems(
    runner: BlockRunner, file_ops: BlockRunner | None = None
) -> Callable[[FTPUser], IFTPFilesystem]:
    """Open each user's home on the local disk (created if missing).

    *runner* takes listings and file contents, *file_ops* single-file calls
    (default: *runner*); see :class:`~netproto_twisted.ftp.fs.LocalFilesystem`.
    A home found (and its links resolved) is taken as it is for the next
    :data:`HOME_MEMO_SECONDS`: logins in a burst do not resolve it again.
    """
    homes: dict[str, tuple[float, str]] = {}

    def open_home(user: FTPUser) -> IFTPFilesystem:
        now = time.monotonic()
        known = homes.get(user.home)
        if known is not None and known[0] > now:
            return LocalFilesystem(known[1], runner, file_ops=file_ops, resolved=True)
        if not os.path.isdir(user.home):  # one stat per login when it exists
            os.makedirs(user.home, exist_ok=True)
        fs = LocalFilesystem(user.home, runner, file_ops=file_ops)
        if len(homes) >= _HOME_MEMO_SIZE:
            homes.clear()
        homes[user.home] = (now + HOME_MEMO_SECONDS, fs.home)
        return fs

    return open_home


class FTPServerProtocol(ConnectionProtocol):
    """One control connection: the plumbing around an :class:`FTPConnection`."""

    factory: FTPServerFactory
    connection: FTPConnection

    def configure(self) -> None:
        """Line limit, LF accepted, timeouts and command rate from the settings."""
        self.apply_settings(self.factory.settings)
        self.line_endings = LineEndings.ACCEPT_LF

    def connectionMade(self) -> None:
        """Take urgent data inline: ftplib sends ABOR's last byte as TCP urgent data."""
        handle = getattr(self.transport, "getHandle", None)
        sock = handle() if handle is not None else None
        if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
        super().connectionMade()

    def make_connection(self) -> FTPConnection:
        """The session object, told the peer's and our own address."""
        factory = self.factory
        host = peer_host(self.transport) or ""
        local = getattr(self.transport.getHost(), "host", "") or "127.0.0.1"
        return FTPConnection(
            factory.settings,
            factory.users,
            factory.filesystems,
            factory.data,
            factory.reactor,
            peer=host,
            local_host=local,
            peer_is_loopback=is_loopback(host) if host else True,
            secure=self.is_secure,
            tls=factory.tls,
            authenticator=factory.authenticator,
        )

    def timeout_expired(self) -> None:
        """Idle: not while a transfer runs (the data connection has its own timers)."""
        if self.connection.state is State.TRANSFER:
            self.reset_idle_timer()
            return
        super().timeout_expired()


class FTPServerFactory(LineFactory[FTPServerProtocol]):
    """Builds :class:`FTPServerProtocol` sessions sharing users, files, logins and TLS.

    :param reactor: the clock, the listener of passive ports and the thread pool.
    :param users: homes and permissions.
    :param authenticator: checks passwords (``None``: only anonymous, if enabled).
    :param settings: :class:`FTPSettings`.
    :param tls: server TLS options for AUTH TLS and PROT P (made resumable by
        the caller: :func:`~netproto_twisted.core.tls_sessions.resumable_server_options`).
    :param filesystems: opens a user's filesystem (default: the local disk).
    :param runner: runs blocking file work (default: the reactor's thread pool);
        single-file calls run inline until one is slow, then through it
        (``settings.inline_file_ops``).
    """

    protocol = FTPServerProtocol

    def __init__(
        self,
        reactor: IReactorTime,
        users: UserTable,
        authenticator: Authenticator | None,
        settings: FTPSettings | None = None,
        *,
        tls: Any | None = None,
        filesystems: Callable[[FTPUser], IFTPFilesystem] | None = None,
        runner: BlockRunner | None = None,
    ) -> None:
        super().__init__(reactor)
        self.users = users
        self.authenticator = authenticator
        self.settings = settings if settings is not None else FTPSettings()
        self.tls = tls
        self.runner = runner if runner is not None else thread_block_runner(reactor)
        self.file_ops = InlineUnlessSlow(reactor, self.runner, slow=self.settings.inline_file_ops)
        self.filesystems = filesystems or local_filesystems(self.runner, self.file_ops)
        self.data = DataPorts(reactor, self.runner, self.settings.passive_ports)

    def __repr__(self) -> str:
        return "<FTPServerFactory>"

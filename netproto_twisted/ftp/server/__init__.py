"""The FTP server: a command table, a sans-I/O control session, data channels, a thin Protocol.

- :class:`FTPConnection` (``connection``): one control session, sans-I/O;
  the file commands' handlers are in ``files``;
- :class:`FTPServerProtocol` and :class:`FTPServerFactory` (``protocol``);
- ``data``: passive listeners, active connections, :class:`DataChannel`
  (sendfile, TLS, uploads received by a thread or with backpressure);
- ``commands``: :data:`FTP_COMMANDS` and :class:`State`; ``settings``: :class:`FTPSettings`.
"""

from __future__ import annotations

from netproto_twisted.ftp.server.commands import FTP_COMMANDS, State
from netproto_twisted.ftp.server.connection import FTPConnection
from netproto_twisted.ftp.server.data import DataChannel, DataPorts, TransferFailed
from netproto_twisted.ftp.server.protocol import (
    FTPServerFactory,
    FTPServerProtocol,
    local_filesystems,
)
from netproto_twisted.ftp.server.settings import FTPSettings

__all__ = [
    "FTP_COMMANDS",
    "DataChannel",
    "DataPorts",
    "FTPConnection",
    "FTPServerFactory",
    "FTPServerProtocol",
    "FTPSettings",
    "State",
    "TransferFailed",
    "local_filesystems",
]

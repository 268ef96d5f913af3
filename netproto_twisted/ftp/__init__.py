"""FTP and FTPS (RFC 959, 2228, 2389, 2428, 2577, 2640, 3659, 4217): client and server.

- the server (:mod:`netproto_twisted.ftp.server`): users from the shared
  password file with homes and permission letters (:mod:`.users`), a
  filesystem behind :class:`~netproto_twisted.ftp.interfaces.IFTPFilesystem`
  (the local disk by default, :mod:`.fs`), FTPS explicit and implicit with
  data-channel session reuse, RFC 2577's safety rules, sendfile for RETR;
- the client (:mod:`netproto_twisted.ftp.client`): ftplib's calls as Deferreds, and
  recursive mirrors both ways (:mod:`.mirror`);
- the wire format (:mod:`netproto_twisted.ftp._wire`, :mod:`.listing`, :mod:`.paths`).
"""

from __future__ import annotations

from netproto_twisted.ftp._wire import FTPReply, ReplyParser
from netproto_twisted.ftp.client import FTPClient, connect_ftp
from netproto_twisted.ftp.errors import (
    FTPConnectionLost,
    FTPError,
    FTPPermanentError,
    FTPProtocolError,
    FTPReplyError,
    FTPTemporaryError,
)
from netproto_twisted.ftp.interfaces import (
    FileInfo,
    IFileWriteHandle,
    IFTPFilesystem,
    IWriteHandle,
)
from netproto_twisted.ftp.listing import ListEntry, format_list_line, parse_list_line
from netproto_twisted.ftp.mirror import MirrorResult, mirror_download, mirror_upload
from netproto_twisted.ftp.server import FTPServerFactory, FTPSettings
from netproto_twisted.ftp.users import FTPUser, UserTable

__all__ = [
    "FTPClient",
    "FTPConnectionLost",
    "FTPError",
    "FTPPermanentError",
    "FTPProtocolError",
    "FTPReply",
    "FTPReplyError",
    "FTPServerFactory",
    "FTPSettings",
    "FTPTemporaryError",
    "FTPUser",
    "FileInfo",
    "IFTPFilesystem",
    "IFileWriteHandle",
    "IWriteHandle",
    "ListEntry",
    "MirrorResult",
    "ReplyParser",
    "UserTable",
    "connect_ftp",
    "format_list_line",
    "mirror_download",
    "mirror_upload",
    "parse_list_line",
]

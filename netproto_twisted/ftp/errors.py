"""FTP errors: the server's failure replies (client side), and the filesystem's refusals.

The counterparts of :mod:`ftplib`'s ``error_reply``, ``error_temp``,
``error_perm`` and ``error_proto``: :class:`FTPReplyError`,
:class:`FTPTemporaryError`, :class:`FTPPermanentError` and
:class:`FTPProtocolError`.  Each reply error carries ``code`` and ``text``.
"""

from __future__ import annotations

import errno

from netproto_twisted.core.errors import (
    NetprotoError,
    PermanentError,
    ProtocolError,
    RemoteProtocolError,
    TemporaryError,
)

__all__ = [
    "FTPConnectionLost",
    "FTPError",
    "FTPPermanentError",
    "FTPProtocolError",
    "FTPReplyError",
    "FTPTemporaryError",
    "FileSystemError",
    "PathOutsideRoot",
    "PermissionDenied",
    "error_for_reply",
]


class FTPError(NetprotoError):
    """Base class of the FTP package's own errors."""


class FTPReplyError(ProtocolError, FTPError):
    """An unexpected reply (ftplib's ``error_reply``): a 1yz/2yz/3yz where another was due."""


class FTPTemporaryError(TemporaryError, FTPError):
    """A 4yz reply (ftplib's ``error_temp``)."""


class FTPPermanentError(PermanentError, FTPError):
    """A 5yz reply (ftplib's ``error_perm``)."""


class FTPProtocolError(RemoteProtocolError, FTPError):
    """The server sent something that is not an FTP reply (ftplib's ``error_proto``)."""


class FTPConnectionLost(FTPError):
    """The control connection closed before the reply came."""


def error_for_reply(code: int, text: str) -> ProtocolError:
    """The error for a reply code: 4yz temporary, 5yz permanent, else unexpected."""
    if 400 <= code < 500:
        return FTPTemporaryError(code, text)
    if 500 <= code < 600:
        return FTPPermanentError(code, text)
    return FTPReplyError(code, text)


class FileSystemError(FTPError):
    """A filesystem operation failed; ``code`` is the reply the server sends (550 by default)."""

    def __init__(self, text: str, code: int = 550) -> None:
        super().__init__(text)
        self.code = code
        self.text = text

    @classmethod
    def from_os_error(cls, error: OSError) -> FileSystemError:
        """The refusal for a failed system call (552 for a full disk or quota, else 550)."""
        code = 552 if error.errno in (errno.ENOSPC, errno.EDQUOT) else 550
        return cls(_MESSAGES.get(error.errno or 0, "file system error"), code)


_MESSAGES = {
    errno.ENOENT: "no such file or directory",
    errno.EEXIST: "file exists",
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "is a directory",
    errno.ENOTEMPTY: "directory not empty",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "no space left",
    errno.EDQUOT: "disk quota exceeded",
}


class PathOutsideRoot(FileSystemError):
    """A path that would leave the user's root (``..``, a symlink out, NUL)."""


class PermissionDenied(FileSystemError):
    """The user's permission letters do not allow the operation."""

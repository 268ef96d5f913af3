"""The FTP server's backends: the filesystem contract every backend implements.

Paths are *virtual*: absolute, ``/``-separated, already normalised and
confined by :func:`~netproto_twisted.ftp.paths.resolve_virtual` (the root
``/`` is the user's home).  Every method returns a Deferred, so that a
backend may run blocking work in a thread pool (the local disk does) or talk
to a remote store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO

from twisted.internet.defer import Deferred
from zope.interface import Interface

__all__ = ["FileInfo", "IFTPFilesystem", "IFileWriteHandle", "IWriteHandle"]


@dataclass(frozen=True)
class FileInfo:
    """What ``stat`` says about one entry.

    :ivar name: the entry's name (the last path component).
    :ivar is_dir: a directory.
    :ivar size: bytes.
    :ivar mtime: modification time, POSIX seconds.
    :ivar mode: ``st_mode`` (type and permission bits).
    :ivar nlink: link count.
    """

    name: str
    is_dir: bool
    size: int
    mtime: float
    mode: int
    nlink: int = 1


class IWriteHandle(Interface):
    """An upload in progress: blocks written in order, then committed or discarded."""

    def write(data: bytes) -> Deferred[None]:  # noqa: N805 (zope interface)
        """Append ``data``."""

    def commit() -> Deferred[None]:
        """The upload ended well: make the file visible under its name."""

    def discard() -> Deferred[None]:
        """The upload failed: remove what was written (or keep it, for a REST upload)."""


class IFileWriteHandle(IWriteHandle):
    """A write handle over a local file: the server may write to its descriptor directly.

    A plain binary upload is then received into the file by a thread of its
    own (:mod:`netproto_twisted.core.recvfile`) instead of through
    :meth:`IWriteHandle.write`; :meth:`~IWriteHandle.commit` and
    :meth:`~IWriteHandle.discard` are called as usual, after the last write.
    """

    def fileno() -> int:
        """The descriptor, positioned where the upload goes (or opened with ``O_APPEND``)."""


class IFTPFilesystem(Interface):
    """One user's view of a file tree (see the module docstring)."""

    def stat(path: str) -> Deferred[FileInfo]:  # noqa: N805 (zope interface)
        """Facts about ``path``; fails with FileSystemError if it does not exist."""

    def list_dir(path: str) -> Deferred[list[FileInfo]]:  # noqa: N805 (zope interface)
        """The entries of the directory ``path``, sorted by name."""

    def open_read(path: str, offset: int) -> Deferred[BinaryIO]:  # noqa: N805 (zope interface)
        """A binary file positioned at ``offset``; the caller closes it."""

    def open_write(
        path: str,  # noqa: N805 (zope interface)
        offset: int = 0,
        append: bool = False,
        unique: bool = False,
    ) -> Deferred[Any]:
        """An :class:`IWriteHandle` for ``path`` (``unique``: a new name next to it)."""

    def mkdir(path: str) -> Deferred[None]:  # noqa: N805 (zope interface)
        """Create a directory."""

    def rmdir(path: str) -> Deferred[None]:  # noqa: N805 (zope interface)
        """Remove an empty directory."""

    def remove(path: str) -> Deferred[None]:  # noqa: N805 (zope interface)
        """Remove a file."""

    def rename(source: str, destination: str) -> Deferred[None]:  # noqa: N805 (zope interface)
        """Rename within the tree."""

    def set_mtime(path: str, mtime: float) -> Deferred[None]:  # noqa: N805 (zope interface)
        """Set a file's modification time (MFMT)."""

    def chmod(path: str, mode: int) -> Deferred[None]:  # noqa: N805 (zope interface)
        """Change permission bits (SITE CHMOD)."""

    def real_path(path: str) -> str | None:  # noqa: N805 (zope interface)
        """The local file behind ``path`` if there is one (for sendfile), else ``None``."""

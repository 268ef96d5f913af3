"""The local disk as an :class:`~netproto_twisted.ftp.interfaces.IFTPFilesystem`.

Every path is resolved under the user's home and checked *after* symbolic
links are followed (``os.path.realpath``): a link that leads out of the home
is refused as if it did not exist.  Blocking calls run through a runner (the
reactor's thread pool in the server); calls on one file (``stat``, ``open``,
``mkdir``, ``rename``, ``delete``...) through a second one, which the server
makes run them inline unless the disk is slow
(:class:`~netproto_twisted.core.threads.InlineUnlessSlow`).

Uploads (``STOR``, ``STOU``) are written to a hidden temporary name in the
target's directory (``.<name>.partial-<random>``) and renamed over the name
only when the transfer ends well, so an upload cut short never leaves a file
that looks complete.  ``APPE`` and an upload after ``REST`` write into the
file itself: what arrived is kept, which is what a resuming client needs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat as stat_module
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

from twisted.internet.defer import Deferred
from zope.interface import implementer

from netproto_twisted.ftp.errors import FileSystemError, PathOutsideRoot
from netproto_twisted.ftp.interfaces import FileInfo, IFileWriteHandle, IFTPFilesystem

__all__ = ["LocalFilesystem", "LocalWriteHandle"]

_T = TypeVar("_T")
Runner = Callable[[Callable[[], Any]], "Deferred[Any]"]


def _fs_error(e: OSError) -> FileSystemError:
    return FileSystemError.from_os_error(e)


@implementer(IFileWriteHandle)
class LocalWriteHandle:
    """An upload to the local disk: to a temporary name, renamed on :meth:`commit`."""

    def __init__(
        self, run: Runner, fd: int, final: str, temporary: str | None, unique: bool
    ) -> None:
        self._run = run
        self._fd = fd
        self.final = final
        self._temporary = temporary
        self._unique = unique
        self.bytes_written = 0

    def fileno(self) -> int:
        """The file's descriptor (a plain upload is received into it by a thread)."""
        return self._fd

    def write(self, data: bytes) -> Deferred[None]:
        """Append ``data`` (in the runner)."""
        fd = self._fd

        def write() -> None:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]

        self.bytes_written += len(data)
        return self._run(_guard(write))

    def commit(self) -> Deferred[None]:
        """Close, then rename the temporary file onto its name (STOU: onto a free name)."""
        fd, temporary, final, unique = self._fd, self._temporary, self.final, self._unique

        def commit() -> None:
            os.close(fd)
            if temporary is None:
                return
            if not unique:
                os.rename(temporary, final)
                return
            base, n = final, 0
            while True:
                candidate = base if n == 0 else f"{base}.{n}"
                try:
                    os.link(temporary, candidate)
                except FileExistsError:
                    n += 1
                    continue
                os.unlink(temporary)
                self.final = candidate
                return

        return self._run(_guard(commit))

    def discard(self) -> Deferred[None]:
        """Close, and remove the temporary file (an in-place write keeps what arrived)."""
        fd, temporary = self._fd, self._temporary

        def discard() -> None:
            try:
                os.close(fd)
            finally:
                if temporary is not None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(temporary)

        return self._run(_guard(discard))


def _guard(f: Callable[[], _T]) -> Callable[[], _T]:
    def run() -> _T:
        try:
            return f()
        except OSError as e:
            raise _fs_error(e) from None

    return run


@implementer(IFTPFilesystem)
class LocalFilesystem:
    """One user's home on the local disk (see the module docstring).

    :param home: the local directory that is the user's ``/`` (created if missing).
    :param run: runs a blocking callable, returns a Deferred of its result
        (listings, and the writes of an upload).
    :param file_ops: runs the calls on one file (default: *run*).
    :param resolved: *home* is a path ``os.path.realpath`` gave already.
    """

    def __init__(
        self,
        home: str | os.PathLike[str],
        run: Runner,
        *,
        file_ops: Runner | None = None,
        resolved: bool = False,
    ) -> None:
        self.home = os.fspath(home) if resolved else os.path.realpath(home)
        self._run = run
        self._file_ops = file_ops if file_ops is not None else run

    # -- paths ----------------------------------------------------------------------------

    def local(self, path: str, *, follow_last: bool = True) -> str:
        """The local path behind virtual ``path``, symlinks resolved and checked.

        :raises PathOutsideRoot: if it resolves outside the home.
        """
        joined = os.path.join(self.home, path.lstrip("/"))
        if follow_last:
            real = os.path.realpath(joined)
        else:
            parent, name = os.path.split(joined)
            real = os.path.join(os.path.realpath(parent), name)
        if real != self.home and not real.startswith(self.home + os.sep):
            raise PathOutsideRoot("no such file or directory")
        return real

    def real_path(self, path: str) -> str | None:
        """The checked local path (sendfile reads it)."""
        try:
            return self.local(path)
        except PathOutsideRoot:
            return None

    def _call(self, f: Callable[[], _T]) -> Deferred[_T]:
        return self._file_ops(_guard(f))

    # -- IFTPFilesystem -------------------------------------------------------------------

    def stat(self, path: str) -> Deferred[FileInfo]:
        """Facts about ``path``."""
        return self._call(lambda: self._info(self.local(path), os.path.basename(path) or "/"))

    @staticmethod
    def _info(local: str, name: str) -> FileInfo:
        st = os.stat(local)
        return FileInfo(
            name=name,
            is_dir=stat_module.S_ISDIR(st.st_mode),
            size=st.st_size,
            mtime=st.st_mtime,
            mode=st.st_mode,
            nlink=st.st_nlink,
        )

    def list_dir(self, path: str) -> Deferred[list[FileInfo]]:
        """The directory's entries (links followed; links leading out are left out)."""

        def list_dir() -> list[FileInfo]:
            local = self.local(path)
            out = []
            for name in sorted(os.listdir(local)):
                try:
                    target = self.local(path.rstrip("/") + "/" + name)
                    out.append(self._info(target, name))
                except (OSError, PathOutsideRoot):
                    continue  # a dangling link, or one leading out
            return out

        return self._run(_guard(list_dir))

    def open_read(self, path: str, offset: int) -> Deferred[BinaryIO]:
        """Open a regular file for reading at ``offset``."""

        def open_read() -> BinaryIO:
            local = self.local(path)
            f = open(local, "rb")  # noqa: SIM115 (the caller closes it)
            try:
                if not stat_module.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise FileSystemError("not a plain file")
                f.seek(offset)
            except BaseException:
                f.close()
                raise
            return f

        return self._call(open_read)

    def open_write(
        self, path: str, offset: int = 0, append: bool = False, unique: bool = False
    ) -> Deferred[Any]:
        """An upload handle: a temporary file, or the file itself for APPE and REST."""

        def open_write() -> LocalWriteHandle:
            final = self.local(path)
            if os.path.isdir(final):
                raise FileSystemError("is a directory")
            directory, name = os.path.split(final)
            if append or offset:
                flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else 0)
                fd = os.open(final, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
                if offset:
                    os.ftruncate(fd, offset)
                    os.lseek(fd, offset, os.SEEK_SET)
                return LocalWriteHandle(self._run, fd, final, None, unique=False)
            temporary = os.path.join(directory, f".{name}.partial-{secrets.token_hex(6)}")
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(temporary, flags, 0o644)
            return LocalWriteHandle(self._run, fd, final, temporary, unique=unique)

        return self._call(open_write)

    def mkdir(self, path: str) -> Deferred[None]:
        """Create a directory."""
        return self._call(lambda: os.mkdir(self.local(path, follow_last=False)))

    def rmdir(self, path: str) -> Deferred[None]:
        """Remove an empty directory (not the home)."""

        def rmdir() -> None:
            local = self.local(path, follow_last=False)
            if local == self.home:
                raise FileSystemError("cannot remove the root")
            os.rmdir(local)

        return self._call(rmdir)

    def remove(self, path: str) -> Deferred[None]:
        """Remove a file (a symlink itself, not its target)."""

        def remove() -> None:
            local = self.local(path, follow_last=False)
            if os.path.isdir(local) and not os.path.islink(local):
                raise FileSystemError("is a directory")
            os.unlink(local)

        return self._call(remove)

    def rename(self, source: str, destination: str) -> Deferred[None]:
        """Rename within the home."""

        def rename() -> None:
            src = self.local(source, follow_last=False)
            if not os.path.lexists(src):
                raise FileSystemError("no such file or directory")
            if src == self.home:
                raise FileSystemError("cannot rename the root")
            os.rename(src, self.local(destination, follow_last=False))

        return self._call(rename)

    def set_mtime(self, path: str, mtime: float) -> Deferred[None]:
        """Set the modification time (the access time follows)."""
        return self._call(lambda: os.utime(self.local(path), (mtime, mtime)))

    def chmod(self, path: str, mode: int) -> Deferred[None]:
        """Change the permission bits (0o7777 at most)."""
        return self._call(lambda: os.chmod(self.local(path), mode & 0o7777))

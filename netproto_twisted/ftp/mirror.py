"""Recursive mirrors of directory trees over FTP, both ways, with bounded parallelism.

A transfer occupies a whole control connection, so parallel transfers need
several sessions: both functions take ``connect``, a callable returning a
Deferred of a logged-in :class:`~netproto_twisted.ftp.client.FTPClient`
(``lambda: connect_ftp(reactor, host, port, user=..., password=...)``), and
open ``parallel`` sessions, plus one to walk the remote tree.  Directories
are listed with ``MLSD``, or ``LIST`` parsed (Unix and MS-DOS styles) when
the server lacks it.  Files are copied whole, never held in memory; names
that could climb out of the target (``..``, ``/``) are skipped.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.python.failure import Failure

from netproto_twisted.ftp.client import FTPClient
from netproto_twisted.ftp.errors import FTPPermanentError

__all__ = ["MirrorResult", "mirror_download", "mirror_upload"]

Connect = Callable[[], "Deferred[FTPClient]"]


class MirrorResult:
    """What a mirror did: the files copied and the directories made."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.directories: list[str] = []


def _safe(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\x00" not in name


async def _entries(client: FTPClient, path: str) -> list[tuple[str, bool]]:
    """``(name, is_dir)`` of a remote directory."""
    try:
        listed = await client.mlsd(path)
        return [(n, f.get("type", "").lower() == "dir") for n, f in listed
                if f.get("type", "").lower() in ("dir", "file")]  # fmt: skip
    except FTPPermanentError as e:
        if e.code not in (500, 501, 502, 504):
            raise
    return [(e.name, e.type == "dir") for e in await client.list_entries(path)]


async def _run_pool(connect: Connect, parallel: int, jobs: list[Any], work: Any) -> None:
    """Run ``work(client, job)`` for every job on ``parallel`` sessions."""
    queue = list(reversed(jobs))

    async def worker() -> None:
        client = await connect()
        try:
            while queue:
                await work(client, queue.pop())
        finally:
            await client.quit()

    count = max(1, min(parallel, len(jobs)))
    results = await DeferredList(
        [ensureDeferred(worker()) for _ in range(count)], consumeErrors=True
    )
    for ok, value in results:
        if not ok and isinstance(value, Failure):
            value.raiseException()


def mirror_download(
    connect: Connect, remote: str, local: str | os.PathLike[str], *, parallel: int = 4
) -> Deferred[MirrorResult]:
    """Copy the remote tree ``remote`` into the local directory ``local`` (created)."""

    async def run() -> MirrorResult:
        result = MirrorResult()
        files: list[tuple[str, str]] = []
        walker = await connect()
        try:
            pending = [(remote, str(local))]
            while pending:
                rdir, ldir = pending.pop()
                os.makedirs(ldir, exist_ok=True)
                result.directories.append(ldir)
                for name, is_dir in await _entries(walker, rdir):
                    if not _safe(name):
                        continue
                    rpath, lpath = posixpath.join(rdir, name), os.path.join(ldir, name)
                    if is_dir:
                        pending.append((rpath, lpath))
                    else:
                        files.append((rpath, lpath))
        finally:
            await walker.quit()

        async def fetch(client: FTPClient, job: tuple[str, str]) -> None:
            rpath, lpath = job
            with open(lpath, "wb") as f:
                await client.retrbinary("RETR " + rpath, f)
            result.files.append(lpath)

        await _run_pool(connect, parallel, files, fetch)
        return result

    return ensureDeferred(run())


def mirror_upload(
    connect: Connect, local: str | os.PathLike[str], remote: str, *, parallel: int = 4
) -> Deferred[MirrorResult]:
    """Copy the local tree ``local`` into the remote directory ``remote`` (created)."""

    async def run() -> MirrorResult:
        result = MirrorResult()
        files: list[tuple[str, str]] = []
        directories: list[str] = []
        for ldir, dirnames, filenames in os.walk(local):
            dirnames.sort()
            rel = os.path.relpath(ldir, local)
            rdir = remote if rel == "." else posixpath.join(remote, *rel.split(os.sep))
            directories.append(rdir)
            files.extend(
                (os.path.join(ldir, n), posixpath.join(rdir, n)) for n in sorted(filenames)
            )
        maker = await connect()
        try:
            for rdir in directories:
                with contextlib.suppress(FTPPermanentError):  # it exists, or STOR says why
                    await maker.mkd(rdir)
                result.directories.append(rdir)
        finally:
            await maker.quit()

        async def send(client: FTPClient, job: tuple[str, str]) -> None:
            lpath, rpath = job
            with open(lpath, "rb") as f:
                await client.storbinary("STOR " + rpath, f)
            result.files.append(rpath)

        await _run_pool(connect, parallel, files, send)
        return result

    return ensureDeferred(run())

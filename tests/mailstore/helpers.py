"""Test helpers: runners that replace the thread pool, a recording FsOps."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred

from netproto_twisted.mailstore.fsops import FsOps


def sync_runner(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
    """Run the job at once in the calling thread."""
    return maybeDeferred(f, *args, **kwargs)


class ManualRunner:
    """Queue jobs; the test runs them one at a time with :meth:`run_next`."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], Deferred[Any]]]
        self.jobs = []

    def __call__(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.jobs.append((f, args, kwargs, d))
        return d

    def run_next(self) -> None:
        f, args, kwargs, d = self.jobs.pop(0)
        maybeDeferred(f, *args, **kwargs).chainDeferred(d)

    def run_all(self) -> None:
        while self.jobs:
            self.run_next()


class RecordingFs(FsOps):
    """An FsOps that records fsync/link/rename/unlink calls in order."""

    def __init__(self) -> None:
        super().__init__(fsync=True)
        self.events: list[tuple[str, str]] = []

    def fsync(self, fd: int) -> None:
        self.events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        super().fsync(fd)

    def fsync_dir(self, path: str) -> None:
        self.events.append(("fsync_dir", path))
        super().fsync_dir(path)

    def link(self, src: str, dst: str) -> None:
        self.events.append(("link", dst))
        super().link(src, dst)

    def rename(self, src: str, dst: str) -> None:
        self.events.append(("rename", dst))
        super().rename(src, dst)

    def unlink(self, path: str) -> None:
        self.events.append(("unlink", path))
        super().unlink(path)


def make_maildir(path: str) -> None:
    """Create cur/ new/ tmp/ under ``path``."""
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)


def put(path: str, subdir: str, name: str, data: bytes = b"Subject: t\n\nbody\n") -> str:
    """Write a message file directly (as another program would)."""
    full = os.path.join(path, subdir, name)
    with open(full, "wb") as f:
        f.write(data)
    return full

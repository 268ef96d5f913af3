"""Bounded, event-driven waits for tests that drive real processes (no sleep-and-poll).

- :func:`wait_for_files`: until a condition on some directories holds, woken by
  inotify each time an entry in them is created, written, renamed or removed;
- :func:`wait_for_exit`: until a process (not only a child) has exited, woken by
  its pidfd;
- :func:`wait_for_listener`: until a child program accepts connections on a port,
  trying again when the program writes to its log file or exits.

Each takes a deadline and raises :class:`AssertionError` when it passes.
Linux only, as the interop tests are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["wait_for_exit", "wait_for_files", "wait_for_listener"]

_IN_MODIFY = 0x002
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_MASK = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise AssertionError(f"{what}: not met in time")
    return left


def wait_for_files(
    directories: Iterable[str | os.PathLike[str]],
    condition: Callable[[], bool],
    timeout: float = 30.0,
    what: str = "condition on files",
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Return once ``condition()`` is true, checking it again at every change in ``directories``.

    The directories must exist.  ``condition`` is checked once the watches
    are in place, so no change is missed between the check and the wait.
    With ``process``, fail with :class:`RuntimeError` as soon as it exits
    (while the condition is false).
    """
    deadline = time.monotonic() + timeout
    fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    pidfd = -1
    try:
        for directory in directories:
            path = os.fsencode(Path(directory))
            if _libc.inotify_add_watch(fd, path, _MASK) < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory}")
        watched = [fd]
        if process is not None:
            pidfd = os.pidfd_open(process.pid)
            watched.append(pidfd)
        while not condition():
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{what}: the process exited ({process.returncode})")
            readable, _, _ = select.select(watched, [], [], _remaining(deadline, what))
            if fd in readable:
                _drain(fd)
    finally:
        os.close(fd)
        if pidfd >= 0:
            os.close(pidfd)


def _drain(fd: int) -> None:
    """Read (and forget) the pending inotify events."""
    while True:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if len(data) < struct.calcsize("iIII"):
            return


def wait_for_exit(pid: int, timeout: float = 30.0) -> None:
    """Return once process ``pid`` has exited (a zombie counts); it need not be our child."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if not select.select([fd], [], [], timeout)[0]:
            raise AssertionError(f"process {pid} still runs after {timeout} s")
    finally:
        os.close(fd)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return True
    except ConnectionRefusedError:
        return False


#: After the program said it is about to listen, how long to wait before trying again.
_LISTEN_GAP = 0.05


def wait_for_listener(
    port: int,
    process: subprocess.Popen[bytes],
    log: str | os.PathLike[str],
    timeout: float = 10.0,
    name: str = "peer",
    about_to_listen: bytes = b"trying... ",
) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; fail if ``process`` exits first.

    ``process`` writes its diagnostics to the file ``log`` and says
    ``about_to_listen`` right before it listens (Postfix programs with
    ``-v``: ``trying... [127.0.0.1]:port``).  The port is tried again each
    time the file changes or the process exits (inotify, pidfd); once the
    line is there, ``listen()`` follows at once, and the port is tried again
    after :data:`_LISTEN_GAP` too, should the first try have come between
    the two.
    """
    deadline = time.monotonic() + timeout
    log_path = Path(log)
    fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    pidfd = -1
    try:
        if _libc.inotify_add_watch(fd, os.fsencode(log_path.parent), _MASK) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {log_path.parent}")
        pidfd = os.pidfd_open(process.pid)
        while not _accepts(port):
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with status {process.returncode}: "
                    + _tail(log_path).decode(errors="replace")
                )
            wait = _remaining(deadline, f"{name} listening on 127.0.0.1:{port}")
            if about_to_listen in _tail(log_path):
                wait = min(wait, _LISTEN_GAP)
            readable, _, _ = select.select([fd, pidfd], [], [], wait)
            if fd in readable:
                _drain(fd)
    finally:
        os.close(fd)
        if pidfd >= 0:
            os.close(pidfd)


def _tail(path: Path) -> bytes:
    """The last bytes of the file (``b""`` if it cannot be read)."""
    try:
        return path.read_bytes()[-2000:]
    except OSError:
        return b""

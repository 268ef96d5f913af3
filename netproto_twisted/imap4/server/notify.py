"""Folder change notification: sessions of one process, and deliveries by any process.

:class:`ChangeHub` keeps, per folder directory, the sessions that have it
selected.  A session that changed a folder tells the others at once
(:meth:`ChangeHub.changed`); a file appearing in or leaving ``new/`` or
``cur/`` (SMTP delivering in this process or another, Dovecot, a mail
filter) is seen through one inotify watch per folder, shared by every
session on it, or by one poll per folder where inotify is missing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.filepath import FilePath

__all__ = ["ChangeHub"]

_log = Logger(namespace="netproto.imap4.notify")
Listener = Callable[[], None]

try:
    from twisted.internet import inotify as _inotify
except ImportError:  # pragma: no cover - not Linux
    _inotify = None  # type: ignore[assignment]

_MASK = 0
if _inotify is not None:
    _MASK = _inotify.IN_CREATE | _inotify.IN_MOVED_TO | _inotify.IN_DELETE | _inotify.IN_MOVED_FROM


class ChangeHub:
    """Who watches which folder, and the watches themselves (see the module docstring).

    :param reactor: schedules the coalescing delay (and the poll without inotify).
    :param delay: seconds to gather a burst of file events into one notification.
    :param watch_files: watch the directories (False: only in-process notifications).
    :param poll_interval: seconds between scans where inotify is missing.
    """

    def __init__(
        self,
        reactor: IReactorTime,
        *,
        delay: float = 0.05,
        watch_files: bool = True,
        poll_interval: float = 5.0,
    ) -> None:
        self.reactor = reactor
        self.delay = delay
        self.watch_files = watch_files
        self.poll_interval = poll_interval
        self._listeners: dict[str, set[Listener]] = {}
        self._pending: dict[str, IDelayedCall] = {}
        self._notifier: Any = None
        self._polls: dict[str, IDelayedCall] = {}
        self._stamps: dict[str, tuple[float, float]] = {}

    def subscribe(self, path: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener()`` when the folder at ``path`` changes; return the unsubscriber."""
        listeners = self._listeners.setdefault(path, set())
        if not listeners:
            self._watch(path)
        listeners.add(listener)

        def unsubscribe() -> None:
            current = self._listeners.get(path)
            if current is None:
                return
            current.discard(listener)
            if not current:
                del self._listeners[path]
                self._unwatch(path)

        return unsubscribe

    def changed(self, path: str, origin: Listener | None = None) -> None:
        """The folder at ``path`` changed: tell every listener but ``origin``, now."""
        for listener in list(self._listeners.get(path, ())):
            if listener is not origin:
                try:
                    listener()
                except Exception:
                    _log.failure("a change listener failed")

    def _soon(self, path: str) -> None:
        if path in self._pending or path not in self._listeners:
            return

        def fire() -> None:
            self._pending.pop(path, None)
            self.changed(path)

        self._pending[path] = self.reactor.callLater(self.delay, fire)

    # -- watching ----------------------------------------------------------------------

    def _watch(self, path: str) -> None:
        if not self.watch_files:
            return
        if _inotify is not None:
            try:
                if self._notifier is None:
                    self._notifier = _inotify.INotify(self.reactor)
                    self._notifier.startReading()
                for sub in ("new", "cur"):
                    self._notifier.watch(
                        FilePath(os.path.join(path, sub)),
                        mask=_MASK,
                        callbacks=[lambda _w, _p, _m, path=path: self._soon(path)],
                    )
                return
            except Exception:
                _log.failure("inotify unavailable; polling {path}", path=path)
        self._poll(path)

    def _poll(self, path: str) -> None:
        def tick() -> None:
            self._polls.pop(path, None)
            if path not in self._listeners:
                return
            stamp = _stamp(path)
            if self._stamps.get(path) not in (None, stamp):
                self.changed(path)
            self._stamps[path] = stamp
            self._poll(path)

        self._stamps.setdefault(path, _stamp(path))
        self._polls[path] = self.reactor.callLater(self.poll_interval, tick)

    def _unwatch(self, path: str) -> None:
        pending = self._pending.pop(path, None)
        if pending is not None and pending.active():
            pending.cancel()
        poll = self._polls.pop(path, None)
        if poll is not None and poll.active():
            poll.cancel()
        self._stamps.pop(path, None)
        if self._notifier is not None:
            for sub in ("new", "cur"):
                with contextlib.suppress(KeyError):
                    self._notifier.ignore(FilePath(os.path.join(path, sub)))

    def stop(self) -> None:
        """Drop every watch (at shutdown)."""
        for path in list(self._listeners):
            self._unwatch(path)
        self._listeners.clear()
        if self._notifier is not None:
            self._notifier.loseConnection()
            self._notifier = None


def _stamp(path: str) -> tuple[float, float]:
    try:
        return (
            os.stat(os.path.join(path, "new")).st_mtime,
            os.stat(os.path.join(path, "cur")).st_mtime,
        )
    except OSError:
        return (0.0, 0.0)

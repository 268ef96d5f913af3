"""Open a URL in the user's browser without blocking the reactor (the role of :mod:`webbrowser`).

:func:`open_url` honours ``BROWSER`` as :mod:`webbrowser` does: a list of
commands separated by ``os.pathsep``, each run in turn until one succeeds;
``%s`` in a command is replaced by the URL, otherwise the URL is appended.
Commands are split with :mod:`shlex` and run directly (no shell) through
``spawnProcess``.  Without ``BROWSER``, :mod:`webbrowser` itself is asked,
in a thread, since it may wait for the browser it starts.
"""

from __future__ import annotations

import os
import shlex
import shutil
import webbrowser
from collections.abc import Sequence
from typing import Any

from twisted.internet import defer, threads
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = ["browser_commands", "open_url"]

_log = Logger(namespace="netproto.browser")


def browser_commands(url: str, environ: dict[str, str] | None = None) -> list[list[str]]:
    """The argument lists ``BROWSER`` names for ``url`` (empty when it is unset)."""
    value = (environ if environ is not None else os.environ).get("BROWSER", "")
    commands = []
    for text in value.split(os.pathsep):
        if not text.strip():
            continue
        try:
            argv = shlex.split(text)
        except ValueError:
            continue
        if any("%s" in arg for arg in argv):
            argv = [arg.replace("%s", url) for arg in argv]
        else:
            argv.append(url)
        commands.append(argv)
    return commands


class _Exit(ProcessProtocol):
    def __init__(self) -> None:
        self.done: defer.Deferred[int] = defer.Deferred()

    def processEnded(self, reason: Failure) -> None:
        code = getattr(reason.value, "exitCode", None)
        self.done.callback(1 if code is None else int(code))  # a signal counts as failure


async def _run(reactor: Any, commands: Sequence[list[str]], url: str) -> bool:
    for argv in commands:
        protocol = _Exit()
        try:
            executable = shutil.which(argv[0]) or argv[0]  # spawnProcess searches no PATH
            reactor.spawnProcess(protocol, executable, argv, dict(os.environ))
        except OSError as e:
            _log.warn("cannot run browser {argv}: {error}", argv=argv, error=e)
            continue
        status = await protocol.done
        if status == 0:
            return True
        _log.warn("browser {argv} exited with status {status}", argv=argv, status=status)
    if commands:
        return False
    return bool(
        await threads.deferToThreadPool(reactor, reactor.getThreadPool(), webbrowser.open, url)
    )


def open_url(
    reactor: Any, url: str, *, environ: dict[str, str] | None = None
) -> defer.Deferred[bool]:
    """Open ``url``; fires with whether a browser accepted it (never blocks the reactor)."""
    return defer.ensureDeferred(_run(reactor, browser_commands(url, environ), url))

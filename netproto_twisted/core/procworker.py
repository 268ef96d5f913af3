"""What a :class:`~netproto_twisted.core.procpool.ProcessPool` worker runs first.

Kept apart from :mod:`~netproto_twisted.core.procpool` (which needs
Twisted) so that a worker starts by importing only this and its ``preload``
modules.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import threading
import time
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

__all__ = ["PARENT_CHECK_INTERVAL", "BarePackages", "nothing", "preload", "watch_parent"]


class BarePackages(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports the packages under ``roots`` without running their ``__init__`` modules.

    A worker needs a few plain modules, not what the packages re-export: a
    package's ``__init__`` may import most of the project (and Twisted),
    seconds of a worker's start when no bytecode is cached.  Plain modules
    load as usual.
    """

    def __init__(self, roots: Sequence[str]) -> None:
        self._roots = tuple(roots)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        """A package under the roots gets this loader; anything else is not ours."""
        if not any(fullname == r or fullname.startswith(r + ".") for r in self._roots):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.submodule_search_locations is None:
            return None
        spec.loader = self
        return spec

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        """The default module object."""
        return None

    def exec_module(self, module: ModuleType) -> None:
        """Nothing: the package's ``__init__`` is not run (``__path__`` is set already)."""


#: Seconds between a worker's checks that its parent is still there.
PARENT_CHECK_INTERVAL = 1.0


def watch_parent(parent: int, interval: float = PARENT_CHECK_INTERVAL) -> threading.Thread:
    """End this process soon after ``parent`` is gone (a daemon thread; returned).

    A worker waits for tasks on a pipe whose writing end it holds too, so it
    would not notice a parent killed without a word (``SIGKILL``): it
    checks every ``interval`` seconds that it was not handed to another
    parent.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(0)

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


def preload(modules: Sequence[str], bare: Sequence[str], parent: int | None = None) -> None:
    """A worker's initializer: watch ``parent``, import the modules its tasks will need."""
    if parent is not None:
        watch_parent(parent)
    if bare:
        sys.meta_path.insert(0, BarePackages(bare))
    for name in modules:
        importlib.import_module(name)


def nothing() -> None:
    """The task that starts the workers."""

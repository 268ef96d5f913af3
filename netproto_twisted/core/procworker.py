"""What a :class:`~netproto_twisted.core.procpool.ProcessPool` worker runs first.

Kept apart from :mod:`~netproto_twisted.core.procpool` (which needs
Twisted) so that a worker starts by importing only this and its ``preload``
modules.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

__all__ = ["BarePackages", "nothing", "preload"]


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


def preload(modules: Sequence[str], bare: Sequence[str]) -> None:
    """A worker's initializer: import the modules its tasks will need."""
    if bare:
        sys.meta_path.insert(0, BarePackages(bare))
    for name in modules:
        importlib.import_module(name)


def nothing() -> None:
    """The task that starts the workers."""

"""Find the handler class a ``--handler`` names, and tell how it must be run."""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

from netproto_twisted.core.errors import ConfigError
from netproto_twisted.sockserv.builtins import BUILTIN_HANDLERS

__all__ = ["HandlerLoadError", "is_reactor_handler", "resolve_handler"]


class HandlerLoadError(ConfigError):
    """The ``--handler`` value does not name a usable handler class (one-line reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__("", reason)


def is_reactor_handler(handler_class: type) -> bool:
    """Return whether a handler runs on the reactor (async ``handle`` or ``run_on_reactor``)."""
    handle = getattr(handler_class, "handle", None)
    return bool(
        inspect.iscoroutinefunction(handle) or getattr(handler_class, "run_on_reactor", False)
    )


def resolve_handler(spec: str, app_dir: str | Path | None = None) -> type:
    """Return the class ``spec`` names: a built-in name or ``package.module:Class``.

    ``app_dir``, when given, is put first on ``sys.path`` (like the current
    directory for ``python -m``) so that a user's module is found.
    Raises :class:`HandlerLoadError` with a one-line reason.
    """
    spec = spec.strip()
    if spec in BUILTIN_HANDLERS:
        return BUILTIN_HANDLERS[spec]
    module_name, sep, attr = spec.partition(":")
    if not sep:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        names = ", ".join(sorted(BUILTIN_HANDLERS))
        raise HandlerLoadError(
            f"--handler {spec!r}: expected one of {names} or package.module:HandlerClass"
        )
    if app_dir is not None:
        path = str(Path(app_dir).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if (
            e.name is not None
            and module_name.startswith(e.name)
            and (module_name == e.name or module_name.startswith(e.name + "."))
        ):
            reason = f"no module named {module_name!r}"
            raise HandlerLoadError(f"--handler {spec!r}: {reason}") from None
        reason = f"importing {module_name!r} failed: {e}"
        raise HandlerLoadError(f"--handler {spec!r}: {reason}") from None
    except Exception as e:
        reason = " ".join(f"importing {module_name!r} failed: {type(e).__name__}: {e}".split())
        raise HandlerLoadError(f"--handler {spec!r}: {reason}") from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise HandlerLoadError(
            f"--handler {spec!r}: module {module_name!r} has no attribute {attr!r}"
        ) from None
    if not isinstance(obj, type) or not callable(getattr(obj, "handle", None)):
        raise HandlerLoadError(
            f"--handler {spec!r}: {attr!r} is not a request handler class"
            " (a socketserver.BaseRequestHandler subclass with a handle() method)"
        )
    return obj

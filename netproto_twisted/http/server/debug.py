"""Debug mode: a failure as an HTML page with each frame's source line and local variables.

The role :mod:`cgitb` had.  Only ever shown when the operator asked for it
(``--debug``): the page reveals file names, source and variable values.
:class:`DebugMiddleware` does the same for a WSGI application's exceptions.
"""

from __future__ import annotations

import html
import linecache
import reprlib
import sys
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from twisted.python.failure import Failure

__all__ = ["DebugMiddleware", "traceback_page"]

_repr = reprlib.Repr()
_repr.maxstring = 200
_repr.maxother = 200
_repr.maxlevel = 3


def _frames(tb: TracebackType | None) -> Iterator[TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def _safe_repr(value: object) -> str:
    try:
        return _repr.repr(value)
    except Exception as exc:  # a __repr__ that raises must not break the page
        return f"<unrepresentable: {type(exc).__name__}>"


def exception_page(exc: BaseException) -> bytes:
    """Render an exception (with its traceback) as a page with frames and locals."""
    title = html.escape(f"{type(exc).__name__}: {exc}")
    parts = [
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>500: '
        f"{title}</title></head>\n<body><h1>{title}</h1>\n"
        "<p>Most recent call last. Debug mode is on: do not run it in production.</p>\n"
    ]
    for tb in _frames(exc.__traceback__):
        frame = tb.tb_frame
        code = frame.f_code
        line = linecache.getline(code.co_filename, tb.tb_lineno).strip()
        parts.append(
            f"<h3>{html.escape(code.co_filename)}, line {tb.tb_lineno}, "
            f"in {html.escape(code.co_name)}</h3>\n<pre>{html.escape(line)}</pre>\n<table>\n"
        )
        for name, value in sorted(frame.f_locals.items()):
            parts.append(
                f"<tr><td>{html.escape(name)}</td><td><code>"
                f"{html.escape(_safe_repr(value))}</code></td></tr>\n"
            )
        parts.append("</table>\n")
    parts.append("</body></html>\n")
    return "".join(parts).encode("utf-8", "replace")


def traceback_page(reason: Failure) -> bytes:
    """Render a failure as :func:`exception_page` does (its exception's own traceback)."""
    exc = reason.value
    if isinstance(exc, BaseException) and exc.__traceback__ is None:
        tb = reason.getTracebackObject()
        if isinstance(tb, TracebackType):
            exc = exc.with_traceback(tb)
    if not isinstance(exc, BaseException):  # pragma: no cover - a Failure always has one
        exc = RuntimeError(str(exc))
    return exception_page(exc)


StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class DebugMiddleware:
    """Wrap a WSGI application: an exception before the response started becomes a debug page."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Call the application; render its exception if nothing was sent yet."""
        started = False

        def tracking_start(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            nonlocal started
            started = True
            return start_response(status, headers, exc_info)

        try:
            result = self.app(environ, tracking_start)
            body = list(result)
            close = getattr(result, "close", None)
            if close is not None:
                close()
            return body
        except Exception as exc:
            page = exception_page(exc)
            start_response(
                "500 Internal Server Error",
                [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(page)))],
                sys.exc_info() if started else None,
            )
            return [page]

"""The opener and its handler chain, urllib's design made asynchronous.

An :class:`Opener` holds handlers; each handler offers methods named after
a URL scheme, exactly as in :mod:`urllib.request`:

* ``<scheme>_request(req)`` -- pre-process a request (add cookies, pick a proxy);
* ``<scheme>_open(req)`` -- open it (``default_open`` first, ``unknown_open`` last);
* ``<scheme>_response(req, resp)`` -- post-process the response (decode, store cookies);
* ``http_error_<code>(req, resp, code, msg, hdrs)`` and ``http_error_default``
  -- answer an error status (follow a redirect, authenticate, raise HTTPError).

Any of them may return a :class:`~twisted.internet.defer.Deferred` (or be a
coroutine function); the opener waits for it.  Handlers run in
``handler_order`` (lower first), as urllib's do, and a handler that returns
``None`` from an ``*_open`` or ``*_error_*`` method passes to the next.
"""

from __future__ import annotations

import contextlib
import inspect
import urllib.request
from collections.abc import Callable
from typing import Any, cast

from twisted.internet.defer import Deferred, ensureDeferred

from netproto_twisted.http.client.errors import URLError
from netproto_twisted.http.client.request import Request
from netproto_twisted.http.client.response import Response

__all__ = ["DEFAULT", "BaseHandler", "Opener", "install_opener", "installed_opener"]

#: The ``timeout`` argument when none is given (the opener's default applies).
DEFAULT: Any = object()
_DEFAULT = DEFAULT


class BaseHandler:
    """Base class of handlers; ``parent`` is the opener once added."""

    handler_order = 500
    parent: Opener

    def add_parent(self, parent: Opener) -> None:
        """Remember the opener (urllib's name)."""
        self.parent = parent

    def close(self) -> Deferred[None] | None:
        """Release what the handler holds (connections); may return a Deferred."""
        return None

    def __lt__(self, other: object) -> bool:
        if not hasattr(other, "handler_order"):
            return True
        return bool(self.handler_order < cast(Any, other).handler_order)


#: Results that are never awaitable (checked first: ``inspect.isawaitable`` is dear).
_PLAIN = (Request, Response, type(None))


async def _settle(value: Any) -> Any:
    """Wait for a Deferred or a coroutine; pass anything else through."""
    if isinstance(value, Deferred) or inspect.isawaitable(value):
        return await value
    return value


def _pending(value: Any) -> bool:
    """True when ``value`` must be awaited (a Deferred, a coroutine, an awaitable)."""
    return not isinstance(value, _PLAIN) and (
        isinstance(value, Deferred) or inspect.isawaitable(value)
    )


class Opener:
    """Open URLs through a chain of handlers (urllib's OpenerDirector, asynchronous).

    :ivar reactor: the reactor handlers use (connections, timers).
    :ivar addheaders: ``(name, value)`` pairs added to every request that
        lacks them, as urllib's.
    """

    def __init__(self, reactor: Any = None) -> None:
        self.reactor = reactor
        self.addheaders: list[tuple[str, str]] = []
        self.handlers: list[BaseHandler] = []
        self.handle_open: dict[str, list[BaseHandler]] = {}
        self.handle_error: dict[str, dict[int | str, list[BaseHandler]]] = {}
        self.process_request: dict[str, list[BaseHandler]] = {}
        self.process_response: dict[str, list[BaseHandler]] = {}

    def add_handler(self, handler: BaseHandler) -> None:
        """Register ``handler``'s methods by their names (see the module docstring)."""
        added = False
        for meth in dir(handler):
            if meth in ("redirect_request", "do_open", "proxy_open"):
                continue
            i = meth.find("_")
            if i < 0:
                continue
            protocol, condition = meth[:i], meth[i + 1 :]
            if condition.startswith("error"):
                j = condition.find("_") + i + 1
                kind: int | str = meth[j + 1 :]
                with contextlib.suppress(ValueError):
                    kind = int(kind)
                lookup = self.handle_error.setdefault(protocol, {})
                handlers = lookup.setdefault(kind, [])
            elif condition == "open":
                handlers = self.handle_open.setdefault(protocol, [])
            elif condition == "response":
                handlers = self.process_response.setdefault(protocol, [])
            elif condition == "request":
                handlers = self.process_request.setdefault(protocol, [])
            else:
                continue
            if handler not in handlers:
                handlers.append(handler)
                handlers.sort()
            added = True
        if added:
            self.handlers.append(handler)
            self.handlers.sort()
            handler.add_parent(self)

    def handler(self, kind: type[BaseHandler]) -> BaseHandler | None:
        """The first handler that is an instance of ``kind``, if any."""
        for h in self.handlers:
            if isinstance(h, kind):
                return h
        return None

    def open(
        self,
        url_or_request: str | urllib.request.Request,
        data: object = None,
        timeout: float | object | None = _DEFAULT,
    ) -> Deferred[Response]:
        """Open a URL or a :class:`Request`; fire with the :class:`Response`.

        ``timeout`` is urllib's: seconds for connecting, for the response
        headers, and between two chunks of the body.
        """
        req = Request.coerce(url_or_request, data)
        if timeout is not _DEFAULT:
            req.timeout = cast("float | None", timeout)
        return ensureDeferred(self._open(req))

    async def _open(self, req: Request) -> Response:
        for name, value in self.addheaders:
            if not req.has_header(name.capitalize()):
                req.add_unredirected_header(name, value)
        scheme = req.type
        for processor in self.process_request.get(scheme, []):
            processed: Any = getattr(processor, scheme + "_request")(req)
            req = await processed if _pending(processed) else processed
        response = await self._call_chain(self.handle_open, "default", "default_open", req)
        if response is None:
            response = await self._call_chain(self.handle_open, scheme, scheme + "_open", req)
        if response is None:
            response = await self._call_chain(self.handle_open, "unknown", "unknown_open", req)
        if response is None:
            raise URLError(f"unknown url type: {scheme}")
        for processor in self.process_response.get(scheme, []):
            response = getattr(processor, scheme + "_response")(req, response)
            if _pending(response):
                response = await response
        return cast(Response, response)

    async def _call_chain(
        self, chain: dict[Any, list[BaseHandler]], kind: Any, meth_name: str, *args: Any
    ) -> Any:
        for handler in chain.get(kind, []):
            func: Callable[..., Any] = getattr(handler, meth_name)
            result = func(*args)
            if _pending(result):
                result = await result
            if result is not None:
                return result
        return None

    async def error(self, proto: str, req: Request, response: Response) -> Response:
        """Let the ``http_error_<code>`` handlers answer an error status, else the default."""
        chain = self.handle_error.get("http" if proto in ("http", "https") else proto, {})
        code = response.status
        args = (req, response, code, response.reason, response.headers)
        result = await self._call_chain(chain, code, f"http_error_{code}", *args)
        if result is None:
            result = await self._call_chain(chain, "default", "http_error_default", *args)
        return cast(Response, result)

    def close(self) -> Deferred[None]:
        """Close every handler (and their kept-alive connections)."""

        async def run() -> None:
            for handler in self.handlers:
                await _settle(handler.close())

        return ensureDeferred(run())


_installed: list[Opener] = []


def install_opener(opener: Opener | None) -> None:
    """Make ``opener`` the one :func:`urlopen` uses without an ``opener`` argument."""
    _installed[:] = [opener] if opener is not None else []


def installed_opener() -> Opener | None:
    """The opener :func:`install_opener` installed, if any."""
    return _installed[0] if _installed else None

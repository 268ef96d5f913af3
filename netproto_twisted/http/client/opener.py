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
from typing import Any, cast

from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed

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


def _deferred(value: Any) -> Deferred[Any]:
    """A Deferred for a pending handler result (a Deferred, a coroutine, any awaitable)."""
    if isinstance(value, Deferred):
        return value
    if inspect.iscoroutine(value):
        return ensureDeferred(value)
    return ensureDeferred(_settle(value))


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
        # The chain runs as plain calls, and as Deferred callbacks where a
        # handler answers later: no coroutine per request on the hot path.
        try:
            for name, value in self.addheaders:
                if not req.has_header(name.capitalize()):
                    req.add_unredirected_header(name, value)
            result = self._process_request(req, req.type, 0)
        except BaseException:
            return fail()
        return result if isinstance(result, Deferred) else succeed(result)

    def _process_request(self, req: Request, scheme: str, start: int) -> Any:
        """Run the ``<scheme>_request`` processors from ``start``, then open."""
        processors = self.process_request.get(scheme, ())
        for i in range(start, len(processors)):
            processed: Any = getattr(processors[i], scheme + "_request")(req)
            if _pending(processed):
                return _deferred(processed).addCallback(self._process_request_at, scheme, i + 1)
            req = processed
        chain = [(h, "default_open") for h in self.handle_open.get("default", ())]
        chain += [(h, scheme + "_open") for h in self.handle_open.get(scheme, ())]
        chain += [(h, "unknown_open") for h in self.handle_open.get("unknown", ())]
        return self._open_chain(req, scheme, chain, 0)

    def _process_request_at(self, req: Request, scheme: str, start: int) -> Any:
        return self._process_request(req, scheme, start)

    def _open_chain(
        self, req: Request, scheme: str, chain: list[tuple[BaseHandler, str]], start: int
    ) -> Any:
        """Ask the open handlers from ``start`` in turn; process the first response."""
        for i in range(start, len(chain)):
            handler, meth_name = chain[i]
            result = getattr(handler, meth_name)(req)
            if result is None:
                continue
            if _pending(result):
                return _deferred(result).addCallback(self._opened, req, scheme, chain, i)
            return self._process_response(result, req, scheme, 0)
        raise URLError(f"unknown url type: {scheme}")

    def _opened(
        self,
        result: Any,
        req: Request,
        scheme: str,
        chain: list[tuple[BaseHandler, str]],
        index: int,
    ) -> Any:
        if result is None:
            return self._open_chain(req, scheme, chain, index + 1)
        return self._process_response(result, req, scheme, 0)

    def _process_response(self, response: Any, req: Request, scheme: str, start: int) -> Any:
        """Run the ``<scheme>_response`` processors from ``start``."""
        processors = self.process_response.get(scheme, ())
        for i in range(start, len(processors)):
            response = getattr(processors[i], scheme + "_response")(req, response)
            if _pending(response):
                d = _deferred(response)
                if i + 1 < len(processors):
                    d.addCallback(self._process_response, req, scheme, i + 1)
                return d
        return response

    def error(self, proto: str, req: Request, response: Response) -> Deferred[Response]:
        """Let the ``http_error_<code>`` handlers answer an error status, else the default.

        Fires with the first handler's answer (``None`` if none answers).
        """
        chain = self.handle_error.get("http" if proto in ("http", "https") else proto, {})
        code = response.status
        calls = [(h, f"http_error_{code}") for h in chain.get(code, ())]
        calls += [(h, "http_error_default") for h in chain.get("default", ())]
        args = (req, response, code, response.reason, response.headers)
        try:
            result = self._first_answer(None, calls, 0, args)
        except BaseException:
            return fail()
        return result if isinstance(result, Deferred) else succeed(result)

    def _first_answer(
        self, previous: Any, calls: list[tuple[BaseHandler, str]], start: int, args: Any
    ) -> Any:
        """The first non-``None`` answer of ``calls[start:]`` (``previous`` when not ``None``)."""
        if previous is not None:
            return previous
        for i in range(start, len(calls)):
            handler, meth_name = calls[i]
            result = getattr(handler, meth_name)(*args)
            if result is None:
                continue
            if _pending(result):
                return _deferred(result).addCallback(self._first_answer, calls, i + 1, args)
            return result
        return None

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

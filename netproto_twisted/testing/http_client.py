"""Answer an opener's requests from an in-memory twisted.web resource, for users' trial suites.

:class:`StubOpener` is treq's ``StubTreq`` idea applied to our opener: the
http and https handlers send every request to a resource tree through
treq's :class:`~treq.testing.RequestTraversalAgent` (in memory, no socket,
no real time), while every other handler -- redirects, cookies, content
decoding, authentication, robots.txt -- runs as in production.  Call
:meth:`StubOpener.flush` to let the bytes move, or use the shortcuts that
flush for you::

    from twisted.trial.unittest import SynchronousTestCase
    from twisted.web.resource import Resource
    from twisted.web.static import Data
    from netproto_twisted.testing.http_client import StubOpener

    class ClientCodeTests(SynchronousTestCase):
        def test_fetch(self):
            root = Resource()
            root.putChild(b"hello", Data(b"hi there", "text/plain"))
            stub = StubOpener(root)
            response, body = stub.get("http://example.test/hello")
            self.assertEqual((response.status, body), (200, b"hi there"))

Timers (timeouts) run on :attr:`StubOpener.clock`, a ``MemoryReactorClock``
that only moves when the test calls ``clock.advance``.
"""

from __future__ import annotations

from typing import Any

from treq.testing import RequestTraversalAgent
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.web.resource import IResource

from netproto_twisted.http.client import BaseHandler, Opener, ProxyHandler, Response, build_opener

__all__ = ["StubNotSettled", "StubOpener"]

_MAX_FLUSHES = 1000


class StubNotSettled(AssertionError):
    """A request did not finish after flushing (the resource never finished it)."""


class StubOpener:
    """An opener whose http(s) requests are served by ``resource`` in memory.

    ``handlers`` and ``options`` are :func:`build_opener`'s.
    """

    def __init__(
        self,
        resource: IResource,
        *handlers: BaseHandler | type[BaseHandler],
        clock: MemoryReactorClock | None = None,
        **options: Any,
    ) -> None:
        self.resource = resource
        self.clock = clock if clock is not None else MemoryReactorClock()
        self.agent = RequestTraversalAgent(resource)  # type: ignore[no-untyped-call]
        if not any(isinstance(h, ProxyHandler) or h is ProxyHandler for h in handlers):
            handlers = (ProxyHandler({}), *handlers)  # never the environment's proxies
        self.opener: Opener = build_opener(
            *handlers, reactor=self.clock, agent=self.agent, **options
        )

    def open(self, url: Any, data: object = None, **kwargs: Any) -> Deferred[Response]:
        """Open a URL or Request (the Deferred moves on with :meth:`flush`)."""
        return self.opener.open(url, data, **kwargs)

    def flush(self) -> None:
        """Deliver every byte waiting between the client and the resource."""
        for _ in range(3):
            self.agent.flush()  # type: ignore[no-untyped-call]
            self.clock.advance(0)

    def settle(self, d: Deferred[Any]) -> Any:
        """Flush until ``d`` has fired; return its result or raise its failure."""
        box: list[Any] = []
        d.addBoth(box.append)
        for _ in range(_MAX_FLUSHES):
            if box:
                break
            self.flush()
            if not box:
                self.clock.advance(0)
        if not box:
            raise StubNotSettled("the request did not finish (is the resource answering?)")
        result = box[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result

    def get(self, url: Any, data: object = None, **kwargs: Any) -> tuple[Response, bytes]:
        """Open ``url`` and read its body: ``(response, body)``; raises as the opener does."""
        response: Response = self.settle(self.open(url, data, **kwargs))
        body: bytes = self.settle(response.read())
        return response, body

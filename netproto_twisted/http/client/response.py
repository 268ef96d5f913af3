"""The response, like :mod:`urllib.response`: status, reason, headers, url, a body read on demand.

Nothing of the body is read when the opener hands a :class:`Response` over:
the connection stays paused until the caller picks one of

* :meth:`Response.read` -- a Deferred firing with the whole (decoded) body,
  refused with :class:`~netproto_twisted.http.client.errors.BodyTooLarge`
  past ``max_size`` (the opener's ``max_body``, 64 MiB by default), so a huge
  body is never buffered by accident;
* :meth:`Response.deliver_body` -- Twisted's way: an
  :class:`~twisted.internet.interfaces.IProtocol` gets ``dataReceived`` per
  chunk and ``connectionLost`` at the end, and may pause the transport;
* :meth:`Response.collect` and :meth:`Response.save` -- a callback per
  chunk, or a file object to write to.

Whichever is used, the body passes through the content decoder (with its
bomb limit), the stall timer (no byte for ``idle_timeout`` seconds) and the
whole-request deadline; a body cut short surfaces as
:class:`~netproto_twisted.http.client.errors.ContentTooShortError`.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from typing import IO, Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IProtocol, IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from zope.interface import implementer

from netproto_twisted.core.errors import NetprotoError
from netproto_twisted.http.client.decoding import Decoder
from netproto_twisted.http.client.errors import BodyTooLarge, ContentTooShortError, RequestTimeout

__all__ = ["DEFAULT_MAX_BODY", "BodySource", "Response", "headers_message"]

#: What :meth:`Response.read` buffers at most unless told otherwise (64 MiB).
DEFAULT_MAX_BODY = 64 << 20
#: Bodies up to this size are drained (to keep the connection) by :meth:`Response.close`.
_DRAIN_LIMIT = 64 * 1024
#: The end of every complete body (a Failure is not cheap to build).
_DONE = Failure(ResponseDone())

BodySource = Any
"""Anything with Twisted's ``deliverBody(protocol)`` and a ``length`` attribute (an IResponse)."""


def headers_message(pairs: list[tuple[str, str]]) -> http.client.HTTPMessage:
    """An :class:`http.client.HTTPMessage` holding ``pairs`` in order (urllib's ``headers``)."""
    msg = http.client.HTTPMessage()
    # What ``msg[name] = value`` stores under HTTPMessage's compat32 policy, pair by pair.
    msg._headers = list(pairs)  # type: ignore[attr-defined]
    return msg


@implementer(IPushProducer)
class _NoTransport:
    """The transport given to a body consumer when the source gave none."""

    def pauseProducing(self) -> None:
        """Nothing to pause."""

    def resumeProducing(self) -> None:
        """Nothing to resume."""

    def stopProducing(self) -> None:
        """Nothing to stop."""


class _Pump(Protocol):
    """Between the source and the consumer: decodes, times, counts, and maps the end."""

    def __init__(self, response: Response, target: IProtocol, complete: bool = False) -> None:
        self.response = response
        self.target = target
        #: The source holds the whole body: nothing can stall, no stall timer.
        self.complete = complete
        self.done = False
        self.stopped_because: BaseException | None = None
        self.timer: IDelayedCall | None = None
        self.deadline_call: IDelayedCall | None = None
        self.raw = 0

    def connectionMade(self) -> None:
        r = self.response
        transport = self.transport if self.transport is not None else _NoTransport()
        self.target.makeConnection(transport)  # type: ignore[arg-type]
        if r.idle_timeout is not None and not self.complete:
            self.timer = r.reactor.callLater(r.idle_timeout, self._stalled)
        if r.deadline is not None:
            left = max(0.0, r.deadline - r.reactor.seconds())
            self.deadline_call = r.reactor.callLater(left, self._overdue)

    def _stop(self, why: BaseException) -> None:
        if self.stopped_because is None:
            self.stopped_because = why
            if self.transport is not None:
                self.transport.stopProducing()  # type: ignore[attr-defined]
            # A source that does not end on stopProducing still ends here.
            self._finish(Failure(why))

    def _stalled(self) -> None:
        self.timer = None
        seconds = self.response.idle_timeout or 0.0
        self._stop(RequestTimeout("body stalled: no data", seconds))

    def _overdue(self) -> None:
        self.deadline_call = None
        self._stop(RequestTimeout("whole request", self.response.total_timeout or 0.0))

    def dataReceived(self, data: bytes) -> None:
        if self.done:
            return
        if self.timer is not None:
            self.timer.reset(self.response.idle_timeout or 0.0)
        self.raw += len(data)
        decoder = self.response.decoder
        try:
            if decoder is None:
                self.target.dataReceived(data)
            else:
                decoder.feed(data, self.target.dataReceived)
        except NetprotoError as e:
            self._stop(e)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        if self.done:
            return
        if self.stopped_because is not None:
            reason = Failure(self.stopped_because)
        elif isinstance(reason.value, (ResponseDone, PotentialDataLoss)):
            decoder = self.response.decoder
            try:
                if decoder is not None:
                    decoder.flush(self.target.dataReceived)
            except NetprotoError as e:
                reason = Failure(e)
            else:
                reason = _DONE
        elif not reason.check(NetprotoError):
            expected = self.response.length
            said = f" of {expected}" if expected is not None else ""
            reason = Failure(
                ContentTooShortError(
                    f"body ended after {self.raw}{said} bytes: {reason.getErrorMessage()}"
                )
            )
        self._finish(reason)

    def _finish(self, reason: Failure) -> None:
        if self.done:
            return
        self.done = True
        for call in (self.timer, self.deadline_call):
            if call is not None and call.active():
                call.cancel()
        self.timer = self.deadline_call = None
        try:
            self.target.connectionLost(reason)
        finally:
            self.response._body_finished()


class _Collector(Protocol):
    def __init__(self, sink: Callable[[bytes], object], max_size: int | None) -> None:
        self.sink = sink
        self.max_size = max_size
        self.size = 0
        self.finished: Deferred[int] = Deferred()
        self.error: BaseException | None = None

    def dataReceived(self, data: bytes) -> None:
        if self.error is not None:
            return
        self.size += len(data)
        if self.max_size is not None and self.size > self.max_size:
            self.error = BodyTooLarge(self.max_size)
            if self.transport is not None:
                self.transport.stopProducing()  # type: ignore[attr-defined]
            return
        try:
            self.sink(data)
        except Exception as e:
            self.error = e
            if self.transport is not None:
                self.transport.stopProducing()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        if self.finished.called:
            return
        if self.error is not None:
            self.finished.errback(Failure(self.error))
        elif isinstance(reason.value, ResponseDone):
            self.finished.callback(self.size)
        else:
            self.finished.errback(reason)


class Response:
    """A response whose body is read on demand (see the module docstring).

    :ivar status: the status code (``code`` and ``getcode()`` too).
    :ivar reason: the reason phrase.
    :ivar headers: an :class:`http.client.HTTPMessage` (also ``msg`` and ``info()``).
    :ivar url: the URL that answered, after redirects.
    :ivar version: ``(1, 1)`` and so on; ``None`` for file: and data:.
    :ivar request: the request that got this response.
    :ivar history: the redirect responses that led here, oldest first.
    """

    def __init__(
        self,
        *,
        url: str,
        status: int,
        reason: str,
        headers: http.client.HTTPMessage,
        source: BodySource,
        reactor: IReactorTime,
        version: tuple[int, int] | None = (1, 1),
        request: object = None,
        length: int | None = None,
        max_body: int | None = DEFAULT_MAX_BODY,
        idle_timeout: float | None = None,
        total_timeout: float | None = None,
        deadline: float | None = None,
        on_finished: Callable[[], None] | None = None,
    ) -> None:
        self.url = url
        self.status = status
        self.reason = reason
        self.headers = headers
        self.version = version
        self.request = request
        self.length = length
        self.max_body = max_body
        self.reactor = reactor
        self.idle_timeout = idle_timeout
        self.total_timeout = total_timeout
        self.deadline = deadline
        self.decoder: Decoder | None = None
        self.history: list[Response] = []
        self._source = source
        self._delivered = False
        self._body_ended = False
        self._buffered: bytes | None = None
        self._on_finished: list[Callable[[], None]] = [on_finished] if on_finished else []

    # -- urllib.response's face ---------------------------------------------------------

    @property
    def code(self) -> int:
        """The status code (urllib's name)."""
        return self.status

    @property
    def msg(self) -> http.client.HTTPMessage:
        """The headers (http.client's name)."""
        return self.headers

    def getcode(self) -> int:
        """The status code."""
        return self.status

    def geturl(self) -> str:
        """The URL that answered, after redirects."""
        return self.url

    def info(self) -> http.client.HTTPMessage:
        """The headers, as :func:`http.cookiejar.CookieJar.extract_cookies` reads them."""
        return self.headers

    def getheader(self, name: str, default: str | None = None) -> str | None:
        """All values of header ``name`` joined with ``", "``, or ``default``."""
        values = self.headers.get_all(name)
        return ", ".join(values) if values else default

    def getheaders(self) -> list[tuple[str, str]]:
        """Every header as ``(name, value)`` pairs."""
        return list(self.headers.items())

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason!r} {self.url}>"

    # -- the body ------------------------------------------------------------------------

    def add_finished_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the body has ended, failed or been discarded."""
        if self._body_ended:
            callback()
        else:
            self._on_finished.append(callback)

    def _body_finished(self) -> None:
        if self._body_ended:
            return
        self._body_ended = True
        callbacks, self._on_finished = self._on_finished, []
        for callback in callbacks:
            callback()

    def deliver_body(self, protocol: IProtocol) -> None:
        """Stream the decoded body to ``protocol`` (once per response).

        ``protocol.transport`` is a push producer: pause and resume it for
        flow control, ``stopProducing()`` it to abandon the body.  Its
        ``connectionLost`` gets :class:`~twisted.web.client.ResponseDone` at
        a complete end, else the failure (ContentTooShortError,
        RequestTimeout, DecompressionBomb ...).
        """
        if self._delivered:
            raise RuntimeError("the body of this response was already consumed")
        self._delivered = True
        if self._buffered is not None:
            body = self._buffered
            protocol.makeConnection(_NoTransport())  # type: ignore[arg-type]
            if body:
                protocol.dataReceived(body)
            protocol.connectionLost(Failure(ResponseDone()))
            return
        source = self._source
        source.deliverBody(_Pump(self, protocol, getattr(source, "complete", False)))

    def collect(
        self, sink: Callable[[bytes], object], max_size: int | None = None
    ) -> Deferred[int]:
        """Pass each body chunk to ``sink``; fire with the byte count at the end."""
        collector = _Collector(sink, max_size)
        self.deliver_body(collector)
        return collector.finished

    def save(self, file: IO[bytes]) -> Deferred[int]:
        """Write the body to a binary file object; fire with the byte count."""
        return self.collect(file.write)

    def read(self, max_size: int | None = -1) -> Deferred[bytes]:
        """Fire with the whole decoded body; refused past ``max_size`` (default: ``max_body``).

        Calling it again returns the same bytes.  ``max_size=None`` means no
        limit at all.
        """
        if self._buffered is not None:
            return succeed(self._buffered)
        limit = self.max_body if max_size == -1 else max_size
        parts: list[bytes] = []
        d = self.collect(parts.append, limit)

        def joined(_: int) -> bytes:
            self._buffered = b"".join(parts)
            return self._buffered

        def short(failure: Failure) -> Failure:
            if failure.check(ContentTooShortError):
                err = failure.value
                assert isinstance(err, ContentTooShortError)
                err.content = b"".join(parts)
            return failure

        return d.addCallbacks(joined, short)

    def json(self, max_size: int | None = -1) -> Deferred[Any]:
        """Fire with the body parsed as JSON."""
        return self.read(max_size).addCallback(_json)

    def text(self, encoding: str | None = None, max_size: int | None = -1) -> Deferred[str]:
        """Fire with the body decoded with ``encoding`` (default: the charset, else UTF-8)."""
        charset = encoding or self.headers.get_content_charset() or "utf-8"
        return self.read(max_size).addCallback(lambda b: b.decode(charset, "replace"))

    def keep_body(self, body: bytes) -> None:
        """Make ``body`` what :meth:`read` returns from now on (an error's first bytes)."""
        self._buffered = body
        self._delivered = False

    def close(self) -> Deferred[None]:
        """Discard the body: drain a small one (the connection is kept), abandon a big one."""
        if self._delivered:
            return succeed(None)
        big = self.length is not None and self.length > _DRAIN_LIMIT
        limit = 0 if big else _DRAIN_LIMIT
        return self.collect(lambda _: None, limit).addCallbacks(lambda _: None, lambda _: None)


def _json(body: bytes) -> Any:
    return json.loads(body)

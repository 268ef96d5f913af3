"""``HTTPConnection`` and ``HTTPSConnection``: http.client's interface, answers as Deferreds.

For code written against :mod:`http.client`: one connection to one host
(kept alive), ``request()`` then ``getresponse()``, or the long way
``putrequest``/``putheader``/``endheaders``/``send``.  ``getresponse()``
returns a Deferred firing with a
:class:`~netproto_twisted.http.client.response.Response` whose ``read()`` is
a Deferred too.  Underneath is the same transport as the opener's (no
redirects, cookies or decoding: http.client has none either).
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from netproto_twisted.http.client.request import ProxyInfo, Request
from netproto_twisted.http.client.response import Response
from netproto_twisted.http.client.transport import HTTPTransport

__all__ = ["HTTPConnection", "HTTPSConnection"]

HTTP_PORT = 80
HTTPS_PORT = 443


@implementer(IBodyProducer)
class _Pipe:
    """A body fed by ``send()`` calls: written as it comes, ended at ``length`` or by ``close``."""

    def __init__(self, length: int | None) -> None:
        self.length = length if length is not None else UNKNOWN_LENGTH
        self.sent = 0
        self.pending: list[bytes] = []
        self.consumer: IConsumer | None = None
        self.done: Deferred[None] = Deferred()
        self.closed = False

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        """Write what was sent so far; the rest as it is sent."""
        self.consumer = consumer
        pending, self.pending = self.pending, []
        for data in pending:
            consumer.write(data)
        if self.closed and not self.done.called:
            self.done.callback(None)
        return self.done

    def write(self, data: bytes) -> None:
        if self.closed:
            raise http.client.CannotSendRequest("the request body is complete")
        self.sent += len(data)
        if self.consumer is not None:
            self.consumer.write(data)
        else:
            self.pending.append(data)
        if isinstance(self.length, int) and self.sent >= self.length:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.consumer is not None and not self.done.called:
            self.done.callback(None)

    def pauseProducing(self) -> None:
        """The caller's ``send`` calls decide the pace."""

    def resumeProducing(self) -> None:
        """The caller's ``send`` calls decide the pace."""

    def stopProducing(self) -> None:
        """The request was abandoned."""
        self.closed = True


class HTTPConnection:
    """One kept-alive connection to ``host:port`` with http.client's methods.

    ``timeout`` is http.client's (connect, and each wait for data);
    ``reactor`` is required.
    """

    default_port = HTTP_PORT
    scheme = "http"

    def __init__(
        self,
        host: str,
        port: int | None = None,
        timeout: float | None = 60.0,
        *,
        reactor: Any,
        **transport_options: Any,
    ) -> None:
        if port is None and host.count(":") == 1:
            host, _, port_text = host.partition(":")
            port = int(port_text)
        self.host = host.strip("[]")
        self.port = port if port is not None else self.default_port
        self.timeout = timeout
        self.reactor = reactor
        transport_options.setdefault("max_per_host", 1)
        transport_options.setdefault("connect_timeout", timeout or 30.0)
        self._transport = HTTPTransport(reactor, idle_timeout=timeout, **transport_options)
        self._tunnel: tuple[str, int, dict[str, str]] | None = None
        self._method: str | None = None
        self._url = ""
        self._headers: list[tuple[str, str]] = []
        self._pipe: _Pipe | None = None
        self._response: Deferred[Response] | None = None
        self.debuglevel = 0

    def set_debuglevel(self, level: int) -> None:
        """Kept for compatibility; use twisted.logger for tracing."""
        self.debuglevel = level

    def set_tunnel(
        self, host: str, port: int | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Reach ``host:port`` through CONNECT to this connection's host (a proxy)."""
        if self._method is not None:
            raise RuntimeError("cannot set up a tunnel for an established connection")
        if port is None and host.count(":") == 1:
            host, _, port_text = host.partition(":")
            port = int(port_text)
        self._tunnel = (host.strip("[]"), port or self.default_port, dict(headers or {}))

    def _target(self) -> tuple[str, int, ProxyInfo | None]:
        if self._tunnel is None:
            return self.host, self.port, None
        host, port, headers = self._tunnel
        proxy_host = f"[{self.host}]" if ":" in self.host else self.host
        proxy = ProxyInfo(
            f"http://{proxy_host}:{self.port}", headers=tuple(headers.items()), tunnel=True
        )
        return host, port, proxy

    def putrequest(
        self, method: str, url: str, skip_host: bool = False, skip_accept_encoding: bool = False
    ) -> None:
        """Start a request line (headers and body follow)."""
        if self._method is not None:
            raise http.client.CannotSendRequest("a request is already being built")
        self._method = method
        self._url = url or "/"
        self._headers = []
        if not skip_accept_encoding:
            self._headers.append(("Accept-Encoding", "identity"))

    def putheader(self, header: str | bytes, *values: str | bytes | int) -> None:
        """Add a header line (several values are joined with a comma and a space)."""
        if self._method is None or self._pipe is not None:
            raise http.client.CannotSendHeader()
        name = header.decode("latin-1") if isinstance(header, bytes) else header
        parts = [v.decode("latin-1") if isinstance(v, bytes) else str(v) for v in values]
        self._headers.append((name, ", ".join(parts)))

    def endheaders(
        self, message_body: bytes | None = None, *, encode_chunked: bool = False
    ) -> None:
        """Send the request head (and ``message_body``); more body may follow with :meth:`send`."""
        if self._method is None or self._pipe is not None:
            raise http.client.CannotSendHeader()
        length = None
        for name, value in self._headers:
            if name.lower() == "content-length":
                length = int(value)
        if message_body is not None and length is None and not encode_chunked:
            length = len(message_body)
        host, port, proxy = self._target()
        shown = f"[{host}]" if ":" in host else host
        default = port == self.default_port
        url = (
            self._url
            if "://" in self._url
            else (f"{self.scheme}://{shown}{'' if default else f':{port}'}{self._url}")
        )
        has_body = length is not None or encode_chunked or message_body is not None
        pipe = _Pipe(length) if has_body else None
        request = Request(url, pipe, method=self._method)
        for name, value in self._headers:
            if name.lower() not in ("content-length", "transfer-encoding"):
                request.add_header(name, value)
        request.proxy = proxy
        self._pipe = pipe if pipe is not None else _Pipe(0)
        if pipe is None:
            self._pipe.close()
        self._response = self._transport.send(request)
        if message_body is not None:
            self.send(message_body)

    def send(self, data: bytes | str) -> None:
        """Send part of the request body."""
        if self._pipe is None:
            raise http.client.CannotSendRequest("no request started")
        self._pipe.write(data.encode("latin-1") if isinstance(data, str) else data)

    def request(
        self,
        method: str,
        url: str,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        encode_chunked: bool = False,
    ) -> None:
        """Send a whole request; :meth:`getresponse` gives its answer."""
        headers = dict(headers or {})
        names = {k.lower() for k in headers}
        self.putrequest(
            method, url, skip_host="host" in names, skip_accept_encoding="accept-encoding" in names
        )
        if isinstance(body, str):
            body = body.encode("iso-8859-1")
        if body is not None and "content-length" not in names and not encode_chunked:
            headers["Content-Length"] = str(len(body))
        elif body is None and method.upper() in ("POST", "PUT", "PATCH"):
            headers.setdefault("Content-Length", "0")
        for name, value in headers.items():
            self.putheader(name, value)
        self.endheaders(body, encode_chunked=encode_chunked)

    def getresponse(self) -> Deferred[Response]:
        """Fire with the response to the request sent (the body stays to be read)."""
        if self._response is None or self._pipe is None:
            raise http.client.ResponseNotReady("no request sent")
        self._pipe.close()
        d, self._response = self._response, None
        self._method = None
        self._pipe = None
        return d

    def close(self) -> Deferred[None]:
        """Close the connection."""
        if self._response is not None:
            self._response.cancel()
            self._response = None
        self._method = None
        self._pipe = None
        return self._transport.close() if self._transport else succeed(None)


class HTTPSConnection(HTTPConnection):
    """:class:`HTTPConnection` over TLS, verified unless ``verify=False``."""

    default_port = HTTPS_PORT
    scheme = "https"

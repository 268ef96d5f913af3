"""A small twisted.web server (and raw TCP servers) for the HTTP client tests, on loopback."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.web import resource, server

from netproto_twisted.core.tls import ensure_dev_certificate, server_context

reactor: Any = _reactor

#: 64 MiB of zeros, gzipped (about 64 KB): a decompression bomb.
_bomb: list[bytes] = []


def bomb() -> bytes:
    if not _bomb:
        c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        block = bytes(1 << 20)
        _bomb.append(b"".join(c.compress(block) for _ in range(64)) + c.flush())
    return _bomb[0]


class App(resource.Resource):
    """Routes by path; records what it saw."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []
        self.held: list[server.Request] = []
        self.robots: tuple[int, bytes] = (404, b"")
        self.other: str = ""  # base URL of another origin, for cross-origin redirects

    def render(self, request: server.Request) -> Any:
        path = request.path.decode()
        args = {k.decode(): v[0].decode() for k, v in request.args.items()}
        body = request.content.read() if request.content is not None else b""
        info = {
            "method": request.method.decode(),
            "path": path,
            "authorization": (request.getHeader(b"authorization") or b"").decode(),
            "cookie": (request.getHeader(b"cookie") or b"").decode(),
            "proxy-authorization": (request.getHeader(b"proxy-authorization") or b"").decode(),
            "body": body.decode("latin-1"),
            "content-type": (request.getHeader(b"content-type") or b"").decode(),
            "client-port": getattr(request.getClientAddress(), "port", None),
        }
        self.seen.append(info)
        if path == "/robots.txt":
            request.setResponseCode(self.robots[0])
            return self.robots[1]
        if path == "/echo":
            request.setHeader(b"content-type", b"application/json")
            return json.dumps(info).encode()
        if path == "/loop":
            request.redirect(b"/loop")
            return b""
        if path == "/redirect":
            code = int(args.get("code", "302"))
            to = args.get("to", "/echo")
            if to.startswith("OTHER"):
                to = self.other + to[5:]
            request.setResponseCode(code)
            request.setHeader(b"location", to.encode())
            return b"moved"
        if path == "/setcookie":
            for value in request.args.get(b"c", []):
                request.responseHeaders.addRawHeader(b"set-cookie", value)
            return b"ok"
        if path == "/gzip":
            request.setHeader(b"content-encoding", b"gzip")
            return gzip.compress(b"x" * 10000)
        if path == "/deflate":
            request.setHeader(b"content-encoding", b"deflate")
            return zlib.compress(b"y" * 5000)
        if path == "/bomb":
            request.setHeader(b"content-encoding", b"gzip")
            return bomb()
        if path == "/stall":
            request.setHeader(b"content-length", b"100")
            request.write(b"part")
            return server.NOT_DONE_YET
        if path == "/endless":
            self._endless(request)
            return server.NOT_DONE_YET
        if path == "/held":
            self.held.append(request)
            return server.NOT_DONE_YET
        if path == "/bigerror":
            request.setResponseCode(500)
            return b"e" * (3 << 20)
        if path == "/status":
            request.setResponseCode(int(args.get("code", "500")))
            return b"status body"
        return b"hello"

    def _endless(self, request: server.Request) -> None:
        gone: list[bool] = []
        request.notifyFinish().addBoth(gone.append)
        chunk = b"z" * 16384

        def more() -> None:
            if not gone:
                request.write(chunk)
                reactor.callLater(0, more)

        more()


class _TrackingSite(server.Site):
    #: Whether TLS offers HTTP/2 (twisted.web does when h2 is installed).
    offer_h2 = True

    def acceptableProtocols(self) -> list[bytes]:
        protocols: list[bytes] = super().acceptableProtocols()
        return protocols if self.offer_h2 else [p for p in protocols if p != b"h2"]

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        channels.append(protocol)
        return protocol


#: Every server connection made, so that a test can close them all.
channels: list[Any] = []


class _Stopper:
    """Stop listening and close every server connection; fire when all are gone."""

    def __init__(self, port: IListeningPort) -> None:
        self.port = port

    def getHost(self) -> Any:
        return self.port.getHost()

    async def stopListening(self) -> None:
        from twisted.internet.defer import maybeDeferred
        from twisted.internet.task import deferLater

        await maybeDeferred(self.port.stopListening)
        for protocol in list(channels):
            transport = getattr(protocol, "transport", None)
            if transport is not None and transport.connected:
                transport.abortConnection()
        for _ in range(200):
            if not any(getattr(getattr(p, "transport", None), "connected", 0) for p in channels):
                break
            await deferLater(reactor, 0.001)


def listen(app: App, tls_dir: Path | None = None, *, h2: bool = True) -> tuple[Any, str]:
    """Listen on 127.0.0.1 (TLS with the dev cert when ``tls_dir``); return (port, base URL).

    With TLS, twisted.web offers HTTP/2 by ALPN (when h2 is installed)
    unless ``h2`` is false.
    """
    site = _TrackingSite(app)
    site.offer_h2 = h2
    if tls_dir is None:
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        return _Stopper(port), f"http://127.0.0.1:{port.getHost().port}"
    cert, key = ensure_dev_certificate(tls_dir)
    port = reactor.listenSSL(0, site, server_context(cert, key), interface="127.0.0.1")
    return _Stopper(port), f"https://localhost:{port.getHost().port}"


def dev_ca(tls_dir: Path) -> str:
    """The dev certificate (its own CA) as a ca_file."""
    cert, _ = ensure_dev_certificate(tls_dir)
    return str(cert)


class Canned(Protocol):
    """Answer each request with the factory's ``respond(protocol, data)``."""

    def connectionMade(self) -> None:
        self.factory.connections += 1  # type: ignore[attr-defined]
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self.factory.requests += 1  # type: ignore[attr-defined]
            self.factory.respond(self, head)  # type: ignore[attr-defined]


def listen_raw(respond: Callable[[Protocol, bytes], None]) -> tuple[IListeningPort, Factory, str]:
    """A raw TCP server whose answers ``respond`` writes; returns (port, factory, base URL)."""
    factory = Factory.forProtocol(Canned)
    factory.respond = respond  # type: ignore[attr-defined]
    factory.connections = 0  # type: ignore[attr-defined]
    factory.requests = 0  # type: ignore[attr-defined]
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    return port, factory, f"http://127.0.0.1:{port.getHost().port}"

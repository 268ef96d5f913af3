"""netproto_twisted.testing: in-process servers that leave a clean reactor behind."""

from __future__ import annotations

import socketserver

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase

from netproto_twisted.core.errors import ConfigError
from netproto_twisted.testing import serve_handler, start_service


class UpperHandler(socketserver.StreamRequestHandler):
    """A blocking stdlib handler: one line in, the same line upper-cased out."""

    def handle(self) -> None:
        self.wfile.write(self.rfile.readline().upper())


class _Collect(Protocol):
    def __init__(self) -> None:
        self.data = b""
        from twisted.internet.defer import Deferred

        self.closed: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: object) -> None:
        self.closed.callback(self.data)


class ServeHandlerTests(TestCase):
    async def _roundtrip(self, host: str, port: int, payload: bytes) -> bytes:
        proto = _Collect()
        await connectProtocol(TCP4ClientEndpoint(reactor, host, port), proto)
        proto.transport.write(payload)  # type: ignore[union-attr]
        return await proto.closed

    async def test_threaded_stdlib_handler(self) -> None:
        server = await serve_handler(reactor, UpperHandler)
        self.addCleanup(server.stop)
        self.assertEqual(server.host, "127.0.0.1")
        self.assertEqual(await self._roundtrip(server.host, server.port, b"hi there\n"),
                         b"HI THERE\n")

    async def test_builtin_by_name_and_udp(self) -> None:
        server = await serve_handler(
            reactor, "daytime", listen=["tcp:0:interface=127.0.0.1", "udp:0:interface=127.0.0.1"]
        )
        self.addCleanup(server.stop)
        self.assertEqual([k for k, _ in server.addresses], ["tcp", "udp"])
        self.assertEqual(server.address("udp")[0], "127.0.0.1")
        self.assertRegex(await self._roundtrip(*server.address(), b""), rb"-UTC\r\n$")
        with self.assertRaises(LookupError):
            server.address("ssl")

    async def test_stop_closes_live_connections(self) -> None:
        server = await serve_handler(reactor, "echo")
        proto = _Collect()
        await connectProtocol(TCP4ClientEndpoint(reactor, server.host, server.port), proto)
        await server.stop()
        self.assertEqual(await proto.closed, b"")

    def test_bad_handler_is_a_config_error(self) -> None:
        with self.assertRaises(ConfigError):
            serve_handler(reactor, "no.such.module:Handler")

    async def test_listen_failure_leaves_nothing_running(self) -> None:
        first = await serve_handler(reactor, "echo")
        self.addCleanup(first.stop)
        from netproto_twisted.sockserv import make_sockserv_service

        busy = make_sockserv_service(
            reactor, handler="echo", listen=[f"tcp:{first.port}:interface=127.0.0.1"], name="x"
        )
        with self.assertRaises(ConfigError):
            await start_service(busy)

    def test_start_service_needs_a_reporting_service(self) -> None:
        from twisted.application.service import Service

        failure = self.failureResultOf(start_service(Service()))
        failure.trap(TypeError)

"""Tests for netproto_twisted.core.tls_alpn: TLS servers reachable by clients that offer ALPN.

The client is the stdlib's ``ssl`` module (OpenSSL through another binding)
in a thread, offering ALPN names the way curl and browsers do.
"""

from __future__ import annotations

import socket
import ssl as stdlib_ssl

from twisted.internet import reactor, threads
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from netproto_twisted.core.service import EndpointsService
from netproto_twisted.core.tls import (
    ensure_dev_certificate,
    server_context,
    tls_server_endpoint_args,
)
from netproto_twisted.core.tls_alpn import prepare_tls_options


class _Greeter(Protocol):
    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(b"hello\r\n")


def _handshake(port: int, offer: list[str], read: bool = True) -> tuple[str | None, bytes]:
    """Connect with the stdlib, offering ``offer`` by ALPN: (the name chosen, the first bytes).

    The handshake is complete when ``wrap_socket`` returns; ``read=False``
    (a server that waits for the client) reads nothing.
    """
    context = stdlib_ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = stdlib_ssl.CERT_NONE
    context.set_alpn_protocols(offer)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.selected_alpn_protocol(), tls.recv(100) if read else b""


class ALPNTests(TestCase):
    def setUp(self) -> None:
        self.cert, self.key = ensure_dev_certificate(self.mktemp())

    async def _listen_string(self, factory: Factory) -> int:
        """Listen on an ``ssl:`` endpoint string the way every daemon does; return the port."""
        args = tls_server_endpoint_args(self.cert, self.key)
        service = EndpointsService("test", reactor, [f"ssl:0:interface=127.0.0.1:{args}"], factory)
        service.startService()
        self.addCleanup(service.stopService)
        addresses = await service.when_listening()
        return int(addresses[0][1].rsplit(":", 1)[1])

    async def test_ssl_endpoint_accepts_clients_offering_alpn(self) -> None:
        port = await self._listen_string(Factory.forProtocol(_Greeter))
        for offer in (["h2", "http/1.1"], ["imap"], []):
            chosen, first = await threads.deferToThread(_handshake, port, offer)
            self.assertIsNone(chosen)
            self.assertEqual(first, b"hello\r\n")

    async def test_server_context_offers_its_list_and_tolerates_others(self) -> None:
        options = server_context(self.cert, self.key, alpn=[b"h2", b"http/1.1"])
        endpoint = SSL4ServerEndpoint(reactor, 0, options, interface="127.0.0.1")
        listening = await endpoint.listen(Factory.forProtocol(_Greeter))
        self.addCleanup(listening.stopListening)
        port = listening.getHost().port
        chosen, first = await threads.deferToThread(_handshake, port, ["foo", "http/1.1"])
        self.assertEqual((chosen, first), ("http/1.1", b"hello\r\n"))
        chosen, first = await threads.deferToThread(_handshake, port, ["pop3"])
        self.assertEqual((chosen, first), (None, b"hello\r\n"))

    async def test_factory_protocols_come_first(self) -> None:
        # twisted.web's Site speaks h2 (with the http2 extra) and http/1.1 by ALPN.
        site = Site(Resource())
        port = await self._listen_string(site)
        offered = [name.decode() for name in site.acceptableProtocols()]
        chosen, _ = await threads.deferToThread(_handshake, port, [*offered, "x"], False)
        self.assertEqual(chosen, offered[0])
        chosen, _ = await threads.deferToThread(_handshake, port, ["x"], False)
        self.assertIsNone(chosen)

    def test_prepare_leaves_other_creators_alone(self) -> None:
        prepare_tls_options(object())  # no getContext(): nothing to do, no error
        options = server_context(self.cert, self.key)
        prepare_tls_options(options)  # already tolerant: still usable
        TLSMemoryBIOFactory(options, False, Factory.forProtocol(_Greeter))

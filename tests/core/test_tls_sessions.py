"""core.tls_sessions: a second connection resumes the first one's session, and the server tells."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from netproto_twisted.core.tls import client_options, ensure_dev_certificate, server_context
from netproto_twisted.core.tls_sessions import (
    CAN_CHECK_REUSE,
    ResumingClientCreator,
    resumable_server_options,
    session_reused,
    tls_session,
)


@implementer(IHandshakeListener)
class _Server(Protocol):
    def __init__(self, seen: list[bool | None], gone: list[Deferred[None]]) -> None:
        self.seen = seen
        self.gone: Deferred[None] = Deferred()
        gone.append(self.gone)

    def connectionLost(self, reason: object = None) -> None:
        self.gone.callback(None)

    def handshakeCompleted(self) -> None:
        self.seen.append(session_reused(self.transport))
        self.transport.write(b"x")  # TLS 1.3 tickets travel after the handshake


@implementer(IHandshakeListener)
class _Client(Protocol):
    def __init__(self) -> None:
        self.got: Deferred[None] = Deferred()
        self.lost: Deferred[None] = Deferred()

    def connectionLost(self, reason: object = None) -> None:
        self.lost.callback(None)

    def handshakeCompleted(self) -> None:
        pass

    def dataReceived(self, data: bytes) -> None:
        if not self.got.called:
            self.got.callback(None)


class ResumptionTests(TestCase):
    async def test_resumed_only_when_offered(self) -> None:
        if not CAN_CHECK_REUSE:
            self.skipTest("pyOpenSSL does not expose SSL_session_reused")
        cert, key = ensure_dev_certificate(self.mktemp())
        options = resumable_server_options(server_context(cert, key))
        seen: list[bool | None] = []
        gone: list[Deferred[None]] = []
        port = await SSL4ServerEndpoint(reactor, 0, options, interface="127.0.0.1").listen(
            Factory.forProtocol(lambda: _Server(seen, gone))
        )
        self.addCleanup(port.stopListening)
        creator = client_options("localhost", verify=False)
        tcp = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)

        async def connect(tls: Any) -> _Client:
            client: _Client = await wrapClientTLS(tls, tcp).connect(
                Factory.forProtocol(_Client)
            )
            await client.got
            return client

        first = await connect(creator)
        resuming = ResumingClientCreator(creator, lambda: tls_session(first.transport))
        second = await connect(resuming)
        third = await connect(creator)  # a fresh handshake
        for c in (first, second, third):
            c.transport.abortConnection()
            await c.lost
        for d in gone:
            await d
        self.assertEqual(seen, [False, True, False])

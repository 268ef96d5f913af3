"""Interop: our SMTP client against Twisted's own twisted.mail ESMTP server, in process.

Covers a server without PIPELINING (one command at a time), STARTTLS and
implicit TLS with verification against the test CA, and AUTH PLAIN/LOGIN
through twisted.cred.
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import IRealm, Portal
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import ServerFactory
from twisted.mail import smtp
from twisted.mail._cred import LOGINCredentials, PLAINCredentials
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from netproto_twisted.core.tls import client_options, ensure_dev_certificate, server_context
from netproto_twisted.smtp.client import connect_smtp, send_mail
from netproto_twisted.smtp.errors import SMTPAuthenticationError

reactor: Any = _reactor


def _port(listening: Any) -> int:
    port: int = listening.getHost().port
    return port


@implementer(smtp.IMessage)
class _Message:
    def __init__(self, store: list[bytes]) -> None:
        self.lines: list[bytes] = []
        self.store = store

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)

    def eomReceived(self) -> Deferred[bytes]:
        header, *lines = self.lines
        assert header == b"Received: by the test"
        self.store.append(b"\n".join(lines))
        return succeed(b"stored")

    def connectionLost(self) -> None:
        self.lines = []


@implementer(smtp.IMessageDelivery)
class _Delivery:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def receivedHeader(self, helo: Any, origin: Any, recipients: Any) -> bytes:
        return b"Received: by the test"

    def validateFrom(self, helo: Any, origin: Any) -> Any:
        return origin

    def validateTo(self, user: Any) -> Callable[[], _Message]:
        if user.dest.local == b"nobody":
            raise smtp.SMTPBadRcpt(user)
        return lambda: _Message(self.messages)


@implementer(IRealm)
class _Realm:
    def __init__(self, delivery: _Delivery) -> None:
        self.delivery = delivery

    def requestAvatar(self, avatar_id: Any, mind: Any, *interfaces: Any) -> Any:
        return smtp.IMessageDelivery, self.delivery, lambda: None


class TwistedESMTPTests(TestCase):
    def setUp(self) -> None:
        self.cert, key = ensure_dev_certificate(tempfile.mkdtemp(prefix="twisted-esmtp-"))
        self.server_tls = server_context(self.cert, key)
        self.delivery = _Delivery()
        portal = Portal(_Realm(self.delivery))
        portal.registerChecker(InMemoryUsernamePasswordDatabaseDontUse(alice=b"secret"))
        factory = ServerFactory()
        tls = self.server_tls

        def build(addr: Any) -> smtp.ESMTP:
            proto = smtp.ESMTP(
                {b"PLAIN": PLAINCredentials, b"LOGIN": LOGINCredentials}, contextFactory=tls
            )
            proto.factory = factory
            proto.host = b"localhost"
            proto.delivery = self.delivery
            proto.portal = portal  # type: ignore[assignment]
            return proto

        factory.buildProtocol = build  # type: ignore[method-assign]
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.tls_port = reactor.listenSSL(0, factory, self.server_tls, interface="127.0.0.1")
        self.addCleanup(self.tls_port.stopListening)

    def options(self) -> Any:
        return client_options("127.0.0.1", ca_file=self.cert)

    def test_plain_session_without_pipelining(self) -> Deferred[None]:
        async def run() -> None:
            port = _port(self.port)
            client = await connect_smtp(reactor, "127.0.0.1", port, tls="none")
            self.assertTrue(client.esmtp)
            self.assertFalse(client.extensions.has("PIPELINING"))
            result = await client.send_message(
                "a@example.org",
                ["b@example.org", "nobody@example.org"],
                b"Subject: one\r\n\r\n.dotted\r\n",
            )
            self.assertEqual(result.refused_dict()["nobody@example.org"][0], 550)
            for i in range(3):
                await client.send_message("a@example.org", "b@example.org", b"X-N: %d\n\nn\n" % i)
            await client.quit()
            self.assertEqual(
                self.delivery.messages,
                [b"Subject: one\n\n.dotted", b"X-N: 0\n\nn", b"X-N: 1\n\nn", b"X-N: 2\n\nn"],
            )

        return Deferred.fromCoroutine(run())

    def test_starttls_then_auth(self) -> Deferred[None]:
        async def run() -> None:
            port = _port(self.port)
            client = await connect_smtp(
                reactor,
                "127.0.0.1",
                port,
                tls_options=self.options(),
                username="alice",
                password="secret",
            )
            self.assertTrue(client.is_secure)
            self.assertEqual(client.authenticated_as, "alice")
            await client.send_message(
                "a@example.org", ["b@example.org"], b"X: 1\r\n\nsecret stuff\r\n"
            )
            await client.quit()
            self.assertEqual(self.delivery.messages, [b"X: 1\n\nsecret stuff"])

        return Deferred.fromCoroutine(run())

    def test_login_mechanism_and_refusal(self) -> Deferred[None]:
        async def run() -> None:
            port = _port(self.port)
            client = await connect_smtp(reactor, "127.0.0.1", port, tls_options=self.options())
            with self.assertRaises(SMTPAuthenticationError) as caught:
                await client.login("alice", "wrong", mechanism="LOGIN")
            self.assertEqual(caught.exception.code, 535)
            await client.login("alice", "secret", mechanism="LOGIN")
            await client.quit()

        return Deferred.fromCoroutine(run())

    def test_implicit_tls_send_mail(self) -> Deferred[None]:
        async def run() -> None:
            refused = await send_mail(
                reactor,
                "127.0.0.1",
                _port(self.tls_port),
                "a@example.org",
                ["b@example.org"],
                b"X: 2\r\n\r\nover implicit TLS\r\n",
                tls="implicit",
                tls_options=self.options(),
            )
            self.assertEqual(refused, {})
            self.assertEqual(self.delivery.messages, [b"X: 2\n\nover implicit TLS"])

        return Deferred.fromCoroutine(run())

"""Interop: our SMTP client against aiosmtpd (STARTTLS with verification, AUTH, SMTPUTF8, SIZE)."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import io
import logging
import smtplib
import ssl
import tempfile
from typing import Any

from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from netproto_twisted.core.tls import client_options, ensure_dev_certificate
from netproto_twisted.smtp.client import connect_smtp, send_mail
from netproto_twisted.smtp.errors import (
    SMTPAuthenticationError,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPTLSRequired,
)
from tests.interop.test_smtp_client_helpers import free_port

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    HAVE_AIOSMTPD = True
except ImportError:  # pragma: no cover - the peer is missing
    HAVE_AIOSMTPD = False


class _Handler:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 2.0.0 OK queued"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> Any:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == b"alice"
        and auth_data.password == b"wonder land"
    )
    return AuthResult(success=ok, handled=False)


class AiosmtpdTests(TestCase):
    if not HAVE_AIOSMTPD:
        skip = "aiosmtpd is not installed (pip install aiosmtpd)"

    def setUp(self) -> None:
        log = logging.getLogger("mail.log")  # aiosmtpd logs failed handshakes loudly
        level = log.level
        log.setLevel(logging.CRITICAL)
        self.addCleanup(log.setLevel, level)
        directory = tempfile.mkdtemp(prefix="aiosmtpd-")
        self.cert, key = ensure_dev_certificate(directory)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(self.cert), str(key))
        self.handler = _Handler()
        self.port = free_port()
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            server_hostname="localhost",
            tls_context=context,
            require_starttls=True,
            authenticator=_authenticator,
            auth_require_tls=True,
            enable_SMTPUTF8=True,
            data_size_limit=100_000,
        )
        self.controller.start()
        self.addCleanup(self.controller.stop)

    def options(self) -> Any:
        return client_options("127.0.0.1", ca_file=self.cert)

    def test_starttls_auth_and_send(self) -> Deferred[None]:
        async def run() -> None:
            client = await connect_smtp(
                reactor,
                "127.0.0.1",
                self.port,
                tls_options=self.options(),
                username="alice",
                password="wonder land",
            )
            self.assertTrue(client.is_secure)
            self.assertEqual(client.authenticated_as, "alice")
            self.assertFalse(client.extensions.has("STARTTLS"))
            result = await client.send_message(
                "sender@example.org",
                ["j\u00fcrgen@example.org", "nobody@example.org", "bob@example.org"],
                io.BytesIO(b"Subject: t\r\n\r\n.dot\r\nbody\r\n"),
            )
            self.assertEqual(list(result.refused), ["nobody@example.org"])
            self.assertEqual(result.refused["nobody@example.org"].code, 550)
            result = await client.send_message("s@example.org", ["bob@example.org"], b"two\r\n")
            await client.quit()
            first, second = self.handler.envelopes
            self.assertEqual(first.rcpt_tos, ["j\u00fcrgen@example.org", "bob@example.org"])
            self.assertIn("SMTPUTF8", first.mail_options)
            self.assertEqual(first.content, b"Subject: t\r\n\r\n.dot\r\nbody\r\n")
            self.assertEqual(second.content, b"two\r\n")

        return Deferred.fromCoroutine(run())

    def test_certificate_verified_by_default(self) -> Deferred[None]:
        async def run() -> None:
            # The dev certificate is not in the platform's trust store: refused.
            with self.assertRaises(SMTPTLSRequired):
                await connect_smtp(reactor, "127.0.0.1", self.port)
            # Trusted, but issued for other names: refused too.
            with self.assertRaises(SMTPTLSRequired):
                await connect_smtp(
                    reactor,
                    "127.0.0.1",
                    self.port,
                    tls_options=client_options("mail.example.org", ca_file=self.cert),
                )
            self.assertEqual(self.handler.envelopes, [])

        return Deferred.fromCoroutine(run())

    def test_refused_dict_matches_smtplib(self) -> Deferred[None]:
        recipients = ["bob@example.org", "nobody@example.org", "nobody@example.net"]
        message = b"Subject: parity\r\n\r\nsame for both\r\n"

        def with_smtplib() -> dict[str, tuple[int, bytes]]:
            context = ssl.create_default_context(cafile=str(self.cert))
            with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as s:
                s.starttls(context=context)
                return s.sendmail("a@example.org", recipients, message)

        async def run() -> None:
            theirs = await threads.deferToThread(with_smtplib)
            ours = await send_mail(
                reactor,
                "127.0.0.1",
                self.port,
                "a@example.org",
                recipients,
                message,
                tls_options=self.options(),
            )
            self.assertEqual(sorted(ours), sorted(theirs))
            for address, (code, text) in theirs.items():
                self.assertEqual(ours[address], (code, text.decode()))
            self.assertEqual(len(self.handler.envelopes), 2)
            self.assertEqual(self.handler.envelopes[0].content, self.handler.envelopes[1].content)

        return Deferred.fromCoroutine(run())

    def test_bad_password(self) -> Deferred[None]:
        async def run() -> None:
            with self.assertRaises(SMTPAuthenticationError) as caught:
                await connect_smtp(
                    reactor,
                    "127.0.0.1",
                    self.port,
                    tls_options=self.options(),
                    username="alice",
                    password="wrong",
                )
            self.assertEqual(caught.exception.code, 535)

        return Deferred.fromCoroutine(run())

    def test_size_limit_and_all_refused(self) -> Deferred[None]:
        async def run() -> None:
            client = await connect_smtp(
                reactor, "127.0.0.1", self.port, tls_options=self.options()
            )
            self.assertEqual(client.extensions.max_size, 100_000)
            with self.assertRaises(SMTPSenderRefused) as caught:
                await client.send_message("a@example.org", ["b@example.org"], b"x" * 200_000)
            self.assertEqual(caught.exception.code, 552)
            with self.assertRaises(SMTPRecipientsRefused) as refused:
                await client.send_message("a@example.org", ["nobody@example.org"], b"x\r\n")
            self.assertEqual(refused.exception.recipients["nobody@example.org"][0], 550)
            await client.send_message("a@example.org", ["b@example.org"], b"ok\r\n")
            await client.quit()
            self.assertEqual([e.content for e in self.handler.envelopes], [b"ok\r\n"])

        return Deferred.fromCoroutine(run())

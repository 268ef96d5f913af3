"""Interop: our SMTP client against Postfix's smtp-sink (pipelining, refusals, 421, streaming)."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import io

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from netproto_twisted.core.errors import PermanentError, TemporaryError
from netproto_twisted.smtp.client import connect_smtp, send_mail
from netproto_twisted.smtp.errors import (
    SMTPRecipientsRefused,
    SMTPResponseError,
    SMTPSenderRefused,
    SMTPTLSRequired,
)
from tests.interop.test_smtp_client_helpers import SinkMixin, body_lines


class SmtpSinkTests(SinkMixin, TestCase):
    def test_many_messages_on_one_pipelined_connection(self) -> Deferred[None]:
        sink = self.sink()

        async def run() -> None:
            client = await connect_smtp(reactor, "127.0.0.1", sink.port, tls="none")
            self.assertTrue(client.extensions.has("PIPELINING"))
            for i in range(30):
                body = b"Subject: %d\r\n\r\n.leading dot\r\nline %d\r\n" % (i, i)
                result = await client.send_message(
                    "from@example.org", ["to@example.org", "cc@example.org"], body
                )
                self.assertEqual(sorted(result.accepted), ["cc@example.org", "to@example.org"])
            await client.quit()
            self.assertFalse(client.connected)
            transactions = sink.transactions()
            self.assertEqual(len(transactions), 30)
            self.assertEqual(transactions[7]["rcpt"], ["<to@example.org>", "<cc@example.org>"])
            self.assertEqual(
                body_lines(transactions[7]), [b"Subject: 7", b"", b".leading dot", b"line 7"]
            )

        return Deferred.fromCoroutine(run())

    def test_8bit_and_streamed_file(self) -> Deferred[None]:
        sink = self.sink()
        body = "Subject: caf\u00e9\n\n".encode() + b"x" * 998 + b"\n" + b"..\n" * 20000

        async def run() -> None:
            refused = await send_mail(
                reactor,
                "127.0.0.1",
                sink.port,
                "from@example.org",
                ["to@example.org"],
                io.BytesIO(body),
                tls="none",
            )
            self.assertEqual(refused, {})
            (transaction,) = sink.transactions()
            self.assertEqual(body_lines(transaction), body.rstrip(b"\n").split(b"\n"))

            refused = await send_mail(
                reactor, "127.0.0.1", sink.port, "a@example.org", "b@example.org",
                "Subject: caf\u00e9\r\n\r\nhi\r\n".encode(), tls="none",
            )  # fmt: skip
            self.assertIn("BODY=8BITMIME", str(sink.transactions()[1]["mail"]))

        return Deferred.fromCoroutine(run())

    def test_hard_rejected_recipients(self) -> Deferred[None]:
        # -f RCPT rejects every RCPT (and turns PIPELINING off).
        sink = self.sink("-f", "RCPT")

        async def run() -> None:
            client = await connect_smtp(reactor, "127.0.0.1", sink.port, tls="none")
            self.assertFalse(client.extensions.has("PIPELINING"))
            with self.assertRaises(SMTPRecipientsRefused) as caught:
                await client.send_message(
                    "a@example.org", ["b@example.org", "c@example.org"], b"x"
                )
            error = caught.exception
            self.assertIsInstance(error, PermanentError)
            self.assertEqual(sorted(error.recipients), ["b@example.org", "c@example.org"])
            self.assertEqual(error.recipients["b@example.org"][0], 500)
            self.assertTrue(client.connected)
            self.assertIsNotNone(await client.noop())
            await client.quit()

        return Deferred.fromCoroutine(run())

    def test_soft_rejected_sender_then_reuse(self) -> Deferred[None]:
        sink = self.sink("-r", "MAIL")

        async def run() -> None:
            client = await connect_smtp(reactor, "127.0.0.1", sink.port, tls="none")
            for _ in range(2):
                with self.assertRaises(SMTPSenderRefused) as caught:
                    await client.send_message("a@example.org", ["b@example.org"], b"x\r\n")
                self.assertEqual(caught.exception.code, 450)
                self.assertIsInstance(caught.exception, TemporaryError)
            await client.quit()

        return Deferred.fromCoroutine(run())

    def test_421_on_data(self) -> Deferred[None]:
        sink = self.sink("-Q", "DATA")

        async def run() -> None:
            client = await connect_smtp(reactor, "127.0.0.1", sink.port, tls="none")
            with self.assertRaises(SMTPResponseError) as caught:
                await client.send_message("a@example.org", ["b@example.org"], b"x\r\n")
            self.assertEqual(caught.exception.code, 421)
            self.assertIsInstance(caught.exception, TemporaryError)
            self.assertFalse(client.connected)
            await client.quit()
            self.assertEqual(sink.transactions(), [])

        return Deferred.fromCoroutine(run())

    def test_starttls_required_is_refused_without_sending(self) -> Deferred[None]:
        sink = self.sink()

        async def run() -> None:
            with self.assertRaises(SMTPTLSRequired):
                await connect_smtp(reactor, "127.0.0.1", sink.port)  # tls="starttls" by default

        return Deferred.fromCoroutine(run())

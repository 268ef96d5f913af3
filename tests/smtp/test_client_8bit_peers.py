"""The client's 8-bit detection for files, against our capture server, aiosmtpd and smtp-sink."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.smtp.client import connect_smtp, send_mail
from netproto_twisted.smtp.errors import SMTPNotSupportedError
from netproto_twisted.testing import memory_smtp_capture
from tests.interop.test_smtp_client_helpers import (
    SinkMixin,
    body_lines,
    free_port,
)

try:
    from aiosmtpd.controller import Controller

    HAVE_AIOSMTPD = True
except ImportError:  # pragma: no cover - the peer is missing
    HAVE_AIOSMTPD = False

# 8-bit content well after the first 64 KiB block, so that the scan reads several blocks.
EIGHT_BIT = b"Subject: late\r\n\r\n" + b"ascii line\r\n" * 12000 + "na\u00efve\r\n".encode()
SEVEN_BIT = b"Subject: plain\r\n\r\n" + b"ascii line\r\n" * 12000


def _files(case: SynchronousTestCase) -> tuple[Path, Path]:
    """The two messages as files, in a directory of the test case's."""
    directory = Path(case.mktemp())
    directory.mkdir()
    eight, seven = directory / "eight.eml", directory / "seven.eml"
    eight.write_bytes(EIGHT_BIT)
    seven.write_bytes(SEVEN_BIT)
    return eight, seven


class _Files(TestCase):
    def files(self) -> tuple[Path, Path]:
        """The two messages as files."""
        return _files(self)


class CaptureTests(SynchronousTestCase):
    """Our own server (the capture server of netproto_twisted.testing, in memory)."""

    def test_file_and_path_declared_8bit_only_when_8bit(self) -> None:
        capture = memory_smtp_capture()
        run = capture.endpoint.result_of
        eight, seven = _files(self)
        client = run(
            connect_smtp(
                capture.clock, capture.host, capture.port, tls="none", endpoint=capture.endpoint
            )
        )
        with eight.open("rb") as f:
            run(client.send_message("a@example.org", ["b@example.org"], f))
        run(client.send_message("a@example.org", ["b@example.org"], seven))
        run(client.send_message("a@example.org", ["b@example.org"], eight))
        run(client.quit())
        self.assertEqual(len(self.successResultOf(capture.wait_for_messages(3))), 3)
        bodies = [m.envelope.mail_from.body for m in capture.messages]
        self.assertEqual(bodies, ["8BITMIME", None, "8BITMIME"])
        self.assertEqual([m.raw for m in capture.messages], [EIGHT_BIT, SEVEN_BIT, EIGHT_BIT])


class AiosmtpdTests(_Files):
    """aiosmtpd, which offers 8BITMIME."""

    if not HAVE_AIOSMTPD:
        skip = "aiosmtpd is not installed (pip install aiosmtpd)"

    async def test_8bit_file_declared(self) -> None:
        envelopes: list[Any] = []

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                envelopes.append(envelope)
                return "250 2.0.0 OK"

        port = free_port()
        controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        controller.start()
        self.addCleanup(controller.stop)
        eight, seven = self.files()
        for path in (eight, seven):
            refused = await send_mail(
                reactor, "127.0.0.1", port, "a@example.org", "b@example.org", path, tls="none"
            )
            self.assertEqual(refused, {})
        first, second = envelopes
        self.assertIn("BODY=8BITMIME", first.mail_options)
        self.assertEqual(first.original_content, EIGHT_BIT)
        self.assertFalse([o for o in second.mail_options if o.startswith("BODY=")])
        self.assertEqual(second.original_content, SEVEN_BIT)


class SmtpSinkTests(SinkMixin, _Files):
    """Postfix's smtp-sink, with 8BITMIME and without it (``-8``)."""

    async def test_without_8bitmime_8bit_file_refused_locally(self) -> None:
        sink = self.sink("-8")
        eight, seven = self.files()
        client = await connect_smtp(reactor, "127.0.0.1", sink.port, tls="none")
        self.assertFalse(client.extensions.has("8BITMIME"))
        with self.assertRaises(SMTPNotSupportedError) as caught:
            await client.send_message("a@example.org", ["b@example.org"], eight)
        self.assertEqual(caught.exception.code, 554)
        self.assertTrue(caught.exception.text.startswith("5.6.3 "))
        self.assertTrue(client.connected)
        await client.send_message("a@example.org", ["b@example.org"], seven)
        await client.quit()
        (transaction,) = sink.transactions()
        self.assertNotIn("BODY", str(transaction["mail"]))
        self.assertEqual(body_lines(transaction), SEVEN_BIT.rstrip(b"\r\n").split(b"\r\n"))

    async def test_with_8bitmime(self) -> None:
        sink = self.sink()
        eight, _ = self.files()
        await send_mail(
            reactor, "127.0.0.1", sink.port, "a@example.org", "b@example.org", eight, tls="none"
        )
        (transaction,) = sink.transactions()
        self.assertIn("BODY=8BITMIME", str(transaction["mail"]))

"""The SMTP server on a UNIX socket: smtplib over AF_UNIX, and the Received header."""

from __future__ import annotations

import smtplib
import socket
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from netproto_twisted.testing import start_smtp_capture


class _UnixSMTP(smtplib.SMTP):
    """smtplib's client, connected to a UNIX socket path instead of host:port."""

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(host)
        return sock


def _send(path: str) -> dict[str, Any]:
    with _UnixSMTP(timeout=10) as client:
        client.connect(path, 0)
        return client.sendmail("a@example.org", ["bob@example.org"], b"Subject: s\r\n\r\nhi\r\n")


class UnixSocketTests(TestCase):
    timeout = 30

    async def test_received_header_names_the_local_socket(self) -> None:
        directory = tempfile.mkdtemp(dir=".")  # a short path: sun_path holds ~100 bytes
        path = f"{directory}/smtp.sock"
        capture = await start_smtp_capture(reactor, listen=f"unix:{path}")
        self.addCleanup(capture.stop)
        refused = await deferToThread(_send, path)
        self.assertEqual(refused, {})
        await capture.wait_for_messages(1)
        received = capture.messages[0].received
        self.assertTrue(received.startswith("Received: from "), received)
        self.assertIn("(via local socket)", received)
        self.assertNotIn("(unknown [", received)  # no made-up peer address

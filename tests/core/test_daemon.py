"""core.daemon: completing ``ssl:`` endpoint strings with the daemon's certificate and key."""

from __future__ import annotations

from pathlib import Path

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.daemon import DaemonContext, TLSFiles
from netproto_twisted.core.tls import tls_server_endpoint_args


class CompleteEndpointTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.files = TLSFiles.resolve(Path(self.mktemp()))

    def test_ssl_without_key_gets_the_pair(self) -> None:
        completed = self.files.complete_endpoint("ssl:2465:interface=127.0.0.1")
        args = tls_server_endpoint_args(self.files.cert, self.files.key)
        self.assertEqual(completed, f"ssl:2465:interface=127.0.0.1:{args}")
        self.assertIn("privateKey=", completed)
        self.assertIn("certKey=", completed)

    def test_other_endpoints_unchanged(self) -> None:
        for text in (
            "tcp:2525:interface=127.0.0.1",
            "tcp6:2525:interface=\\:\\:1",
            "unix:/tmp/smtp.sock",
            "ssl:2465:privateKey=/etc/key.pem:certKey=/etc/cert.pem",
            "SSL:2465:privateKey=k.pem",
        ):
            self.assertEqual(self.files.complete_endpoint(text), text)

    def test_daemon_context_uses_its_pair(self) -> None:
        context = DaemonContext(MemoryReactorClock(), Path(self.mktemp()), self.files)
        text = "ssl:2993"
        self.assertEqual(context.endpoint(text), self.files.complete_endpoint(text))
        self.assertNotEqual(context.endpoint(text), text)

"""Outbound TLS of the relay: opportunistic, required and verified STARTTLS against real servers.

The next hop is ``twistd netproto-smtp`` (STARTTLS with its development
certificate, which names localhost, 127.0.0.1 and ::1) delivering to
Maildir, or Postfix's smtp-sink (no STARTTLS at all).
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from netproto_twisted.smtp import MailFrom, RcptTo
from netproto_twisted.smtp.interfaces import Envelope
from netproto_twisted.smtp.relay import Relay, RelaySettings
from netproto_twisted.smtp.relay.queue import PENDING, Spool
from tests.interop.test_smtp_relay_sink import Sink, spool_empty, wait_until
from tests.twistd import Daemon

TIMEOUT = 30.0
BODY = b"From: a@example.net\r\nSubject: over TLS\r\n\r\nsecret body\r\n"


class RelayTLSTests(TestCase):
    timeout = 90

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)

    def start_server(self) -> int:
        """Run netproto-smtp (local domain example.org, Maildir) and return its port."""
        daemon = Daemon(
            [
                "netproto-smtp",
                "--listen", "tcp:0:interface=127.0.0.1",
                "--submission", "tcp:0:interface=127.0.0.1",
                "--domain", "example.org", "--hostname", "mx.example.org",
                "--maildir", "mail", "--queue", "queue", "--data-dir", "data",
                "--smarthost", "127.0.0.1:9", "--smarthost-tls", "none",
            ],
            self.dir,
        )  # fmt: skip
        self.addCleanup(daemon.stop)
        match = daemon.wait_for(r"smtp listening on tcp 127\.0\.0\.1:(\d+)", TIMEOUT)
        (self.dir / "mail" / "alice").mkdir(parents=True, exist_ok=True)
        return int(match.group(1))

    async def relay(self, port: int, **options: object) -> tuple[Relay, Spool, str]:
        spool = Spool(self.dir / "out", reactor)
        settings = RelaySettings(
            hostname="relay.example.net",
            smarthost=("127.0.0.1", port),
            poll_interval=0,
            timeout=TIMEOUT,
            **options,  # type: ignore[arg-type]
        )
        relay = Relay(spool, reactor, settings)
        relay.startService()
        self.addCleanup(relay.stopService)
        await relay.ready
        rcpt = RcptTo("alice@example.org")
        env = Envelope(MailFrom("a@example.net"), (rcpt,), received_at=time.time())
        sink = spool.open(env, [rcpt])
        sink.write(BODY)
        entry_id = await sink.commit()
        return relay, spool, entry_id

    def delivered(self) -> list[bytes]:
        new = self.dir / "mail" / "alice" / "new"
        return [p.read_bytes() for p in new.iterdir()] if new.is_dir() else []

    async def test_opportunistic_uses_starttls_when_offered(self) -> None:
        port = self.start_server()
        await self.relay(port)  # default: opportunistic, not verified
        await wait_until(lambda: spool_empty(self.dir / "out"), TIMEOUT)
        await wait_until(lambda: bool(self.delivered()), TIMEOUT)
        [stored] = self.delivered()
        self.assertIn(b"secret body", stored)
        self.assertIn(b"ESMTPS", stored)  # the server's Received header: TLS was used

    async def test_verified_tls_with_the_right_ca(self) -> None:
        port = self.start_server()
        ca = self.dir / "data" / "tls" / "dev-cert.pem"
        await self.relay(port, tls="require", verify=True, ca_file=str(ca))
        await wait_until(lambda: spool_empty(self.dir / "out"), TIMEOUT)
        await wait_until(lambda: bool(self.delivered()), TIMEOUT)
        self.assertIn(b"ESMTPS", self.delivered()[0])

    async def test_verification_failure_defers(self) -> None:
        port = self.start_server()
        relay, spool, entry_id = await self.relay(port, tls="require", verify=True)
        await wait_until(
            lambda: relay.attempts + relay.connections > 0 and self.tried(spool, entry_id)
        )
        [r] = spool.directory.load(entry_id).recipients
        assert r.reply is not None
        self.assertEqual(r.status, PENDING)
        self.assertEqual(r.reply[0] // 100, 4)
        self.assertEqual(self.delivered(), [])

    async def test_required_tls_without_starttls_defers(self) -> None:
        sink = Sink(self.dir / "dumps")
        self.addCleanup(sink.stop)
        _, spool, entry_id = await self.relay(sink.port, tls="require")
        await wait_until(lambda: self.tried(spool, entry_id))
        [r] = spool.directory.load(entry_id).recipients
        assert r.reply is not None
        self.assertEqual((r.status, r.reply[0] // 100), (PENDING, 4))
        self.assertEqual(sink.complete(), {})

    def tried(self, spool: Spool, entry_id: str) -> bool:
        return spool.directory.load(entry_id).recipients[0].attempts > 0

"""The relay's BODY labelling through the real client, against Postfix's smtp-sink.

``smtp-sink -8`` is a next hop without 8BITMIME.
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from netproto_twisted.smtp import MailFrom, RcptTo
from netproto_twisted.smtp.interfaces import Envelope
from netproto_twisted.smtp.relay import Relay, RelaySettings
from netproto_twisted.smtp.relay.queue import Spool
from tests.interop.test_smtp_relay_sink import (
    FixedResolver,
    Sink,
    message,
    spool_empty,
    wait_until,
)


def eight_bit(seq: int) -> bytes:
    """A message like :func:`message` with one 8-bit line."""
    return message(seq).replace(b"\r\n\r\n", "\r\n\r\nna\u00efve caf\u00e9\r\n".encode(), 1)


class RelayBodyTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)

    async def relay_to(self, sink: Sink, **options: str) -> Spool:
        spool = Spool(self.dir / "queue", reactor)
        settings = RelaySettings(
            hostname="relay.test",
            port=sink.port,
            tls="none",
            poll_interval=0,
            timeout=30,
            **options,  # type: ignore[arg-type]
        )
        relay = Relay(spool, reactor, settings, resolver=FixedResolver())
        relay.startService()
        self.addCleanup(relay.stopService)
        await relay.ready
        return spool

    async def store(self, spool: Spool, data: bytes, **params: str) -> str:
        rcpt = RcptTo("b@sink.test")
        env = Envelope(MailFrom("a@example.org", dict(params)), (rcpt,), received_at=time.time())
        sink = spool.open(env, [rcpt])
        sink.write(data)
        return await sink.commit()

    def dumps(self, sink: Sink) -> dict[int, bytes]:
        found = {}
        for name in os.listdir(sink.directory):
            data = (sink.directory / name).read_bytes()
            for seq in range(10):
                if f"END-OF-MESSAGE {seq}\n".encode() in data:
                    found[seq] = data
        return found

    async def test_labelled_by_content(self) -> None:
        sink = Sink(self.dir / "dumps")
        self.addCleanup(sink.stop)
        spool = await self.relay_to(sink)
        await self.store(spool, message(1), BODY="8BITMIME")  # declared 8-bit, 7-bit content
        await self.store(spool, eight_bit(2))  # 8-bit content, not declared
        await wait_until(lambda: spool_empty(self.dir / "queue"))
        await wait_until(lambda: len(sink.complete()) == 2)
        dumps = self.dumps(sink)
        self.assertIn(b"BODY=7BIT", dumps[1])
        self.assertIn(b"BODY=8BITMIME", dumps[2])
        self.assertIn("na\u00efve".encode(), dumps[2])

    async def test_next_hop_without_8bitmime(self) -> None:
        """7-bit content goes (no BODY); 8-bit content bounces with 5.6.3.

        The bounce (to a@example.org, at the same sink) returns the 8-bit
        original, so it fails in turn; that double bounce reaches the
        postmaster as a copy with the header only, which is 7-bit and goes.
        """
        sink = Sink(self.dir / "dumps", "-8")
        self.addCleanup(sink.stop)
        spool = await self.relay_to(sink, postmaster="postmaster@sink.test")
        await self.store(spool, message(1), BODY="8BITMIME")
        await self.store(spool, eight_bit(2), BODY="8BITMIME")
        await wait_until(lambda: spool_empty(self.dir / "queue"))
        await wait_until(lambda: 1 in sink.complete() and len(os.listdir(sink.directory)) == 2)
        self.assertEqual(sink.complete(), {1: 1})
        dumps = [(sink.directory / n).read_bytes() for n in os.listdir(sink.directory)]
        [plain] = [d for d in dumps if b"END-OF-MESSAGE 1" in d]
        [copy] = [d for d in dumps if b"Postmaster Copy" in d]
        self.assertNotIn(b"BODY=", plain)
        self.assertIn(b"X-Rcpt-Args: <postmaster@sink.test>", copy)
        self.assertIn(b"Status: 5.6.3", copy)  # the bounce's own failure
        self.assertIn(b"Subject: Undelivered Mail Returned to Sender", copy)  # its header

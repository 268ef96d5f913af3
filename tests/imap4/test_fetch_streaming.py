"""FETCH is produced, not built whole: paced by the client's reading, large literals streamed.

The server runs on a transport that, like a TCP transport, pauses its
producer once more than :data:`HIGH_WATER` octets wait to be sent; the test
plays a client that reads only when told.  Everything runs synchronously
(the store's blocking work inline), so each bound is checked exactly.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.passwords import PasswordFile
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.imap4.server.fetch import MessageCache
from netproto_twisted.imap4.server.fetchsend import BATCH_BUDGET, STREAM_OVER
from netproto_twisted.imap4.server.notify import ChangeHub
from netproto_twisted.imap4.server.protocol import IMAPServerFactory, IMAPServerProtocol
from netproto_twisted.imap4.server.settings import IMAPSettings
from netproto_twisted.mailstore.folder import MaildirFolder
from netproto_twisted.mailstore.fsops import FsOps
from netproto_twisted.mailstore.maildir import MaildirStore
from tests.mailstore.helpers import sync_runner

HIGH_WATER = 64 * 1024


class PacedTransport(StringTransport):
    """A transport that pauses a streaming producer when too much waits to be sent."""

    def __init__(self) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", "127.0.0.1", 4321))
        self.most = 0
        self.producer_paused = False

    def write(self, data: bytes) -> None:
        super().write(data)
        waiting = len(self.io.getvalue())
        self.most = max(self.most, waiting)
        producer = self.producer
        if producer is not None and self.streaming and waiting > HIGH_WATER:
            if self.producer_paused:
                return
            self.producer_paused = True
            producer.pauseProducing()

    def drain(self) -> bytes:
        """The client reads all that waits; the producer is resumed."""
        data = self.value()
        self.clear()
        if self.producer is not None and self.producer_paused:
            self.producer_paused = False
            self.producer.resumeProducing()
        return data


def _lf_message(n: int, size: int) -> bytes:
    line = b"%d abcdefghijklmnopqrstuvwxyz0123456789 .dot\n" % n
    body = line * (size // len(line))
    return b"Subject: message %d\nFrom: a@example.com\n\n" % n + body


class FetchStreamingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        self.base = os.path.join(self.dir, "mail")
        self.cur = os.path.join(self.base, "alice", "cur")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(self.base, "alice", sub))
        users = PasswordFile(Path(self.dir) / "users", iterations=4096)
        users.add("alice", "pw")
        self.clock = MemoryReactorClock()
        self.store = MaildirStore(self.base, fs=FsOps(), runner=sync_runner, sync="file")
        auth = Authenticator.for_password_file(
            users, sync_runner, LoginDelay(self.clock), allow_insecure=True
        )
        self.factory = IMAPServerFactory(
            self.clock, self.store, auth, IMAPSettings(allow_insecure_auth=True),
            hub=ChangeHub(self.clock, watch_files=False), cache=MessageCache(),
        )  # fmt: skip
        self.files: list[bytes] = []

    def put(self, content: bytes) -> None:
        n = len(self.files) + 1
        virtual = len(content) + content.count(b"\n")
        name = f"{1_700_000_000 + n}.M{n}P1.h,S={len(content)},W={virtual}:2,S"
        with open(os.path.join(self.cur, name), "wb") as f:
            f.write(content)
        self.files.append(content)

    def connect(self) -> tuple[IMAPServerProtocol, PacedTransport]:
        proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 4321))
        assert isinstance(proto, IMAPServerProtocol)
        transport = PacedTransport()
        proto.makeConnection(transport)
        proto.dataReceived(b"a LOGIN alice pw\r\nb SELECT INBOX\r\n")
        self.assertIn(b"b OK [READ-WRITE]", transport.drain())
        self.addCleanup(proto.connectionLost, None)  # type: ignore[arg-type]
        return proto, transport

    def read_all(self, transport: PacedTransport, tag: bytes, first: bytes) -> bytes:
        """Read as a client would until the tagged reply; count the rounds."""
        out = [first]
        done = re.compile(rb"(^|\r\n)" + tag + rb" (OK|NO|BAD)[^\r\n]*\r\n\Z")
        for _round in range(10_000):
            tail = b"".join(out[-2:])[-300:]
            if done.search(tail) and (len(out) > 1 or tail == b"".join(out)):
                return b"".join(out)
            data = transport.drain()
            if not data:
                break
            out.append(data)
        self.fail(f"no tagged reply; got {b''.join(out)[-200:]!r}")

    def test_many_messages_are_paced_by_the_client(self) -> None:
        for n in range(60):
            self.put(_lf_message(n, 100_000))
        total = sum(len(f) + f.count(b"\n") for f in self.files)
        self.assertGreater(total, 5 * BATCH_BUDGET)
        proto, transport = self.connect()
        proto.dataReceived(b"f FETCH 1:* BODY.PEEK[]\r\n")
        first = transport.value()
        # The client has read nothing: the server stopped after about one batch.
        self.assertLess(len(first), BATCH_BUDGET + 2 * HIGH_WATER + 200_000)
        self.assertLess(first.count(b" FETCH (BODY[] {"), 60)
        transcript = self.read_all(transport, b"f", transport.drain())
        self.assertLess(transport.most, BATCH_BUDGET + 2 * HIGH_WATER + 200_000)
        bodies = re.findall(rb"\* (\d+) FETCH \(BODY\[\] \{(\d+)\}\r\n", transcript)
        self.assertEqual([int(n) for n, _ in bodies], list(range(1, 61)))
        for content in self.files:
            crlf = content.replace(b"\n", b"\r\n")
            self.assertIn(b"{%d}\r\n" % len(crlf) + crlf + b")\r\n", transcript)
        self.assertIsNone(transport.producer)  # unregistered at the end

    def test_huge_message_streamed_from_its_file(self) -> None:
        self.put(_lf_message(1, 6_000_000))
        self.put(b"Subject: small\n\nsmall body\n")
        crlf = self.files[0].replace(b"\n", b"\r\n")
        self.assertGreater(len(crlf), 4 * STREAM_OVER)

        read_message = MaildirFolder.read_message

        def whole(folder: MaildirFolder, info: Any) -> bytes:
            if info.uid == 1:
                raise AssertionError("a huge message was read whole")
            return read_message(folder, info)

        self.patch(MaildirFolder, "read_message", whole)
        proto, transport = self.connect()
        proto.dataReceived(b"f FETCH 1:2 (UID BODY.PEEK[])\r\n")
        first = transport.value()
        self.assertTrue(first.startswith(b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % len(crlf)))
        self.assertLess(len(first), 2 * HIGH_WATER + 70_000)
        transcript = self.read_all(transport, b"f", transport.drain())
        self.assertLess(transport.most, 2 * HIGH_WATER + 70_000)
        self.assertEqual(
            transcript,
            b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % len(crlf) + crlf + b")\r\n"
            b"* 2 FETCH (UID 2 BODY[] {30}\r\nSubject: small\r\n\r\nsmall body\r\n)\r\n"
            b"f OK FETCH completed\r\n",
        )
        # A partial fetch streams just its octets; RFC822 streams too (and sets \Seen).
        proto.dataReceived(b"g FETCH 1 (BODY.PEEK[]<1000001.300000> RFC822)\r\n")
        transcript = self.read_all(transport, b"g", transport.drain())
        self.assertEqual(
            transcript,
            b"* 1 FETCH (BODY[]<1000001> {300000}\r\n" + crlf[1000001:1300001]
            + b" RFC822 {%d}\r\n" % len(crlf) + crlf + b")\r\n"
            b"g OK FETCH completed\r\n",
        )  # fmt: skip

    def test_client_gone_mid_stream(self) -> None:
        self.put(_lf_message(1, 3_000_000))
        proto, transport = self.connect()
        proto.dataReceived(b"f FETCH 1 BODY.PEEK[]\r\n")
        producer = transport.producer
        self.assertIsNotNone(producer)
        sent = len(transport.value())
        producer.stopProducing()
        proto.connectionLost(None)  # type: ignore[arg-type]
        self.assertLess(sent, 2 * HIGH_WATER + 70_000)
        self.assertEqual(transport.drain()[sent:], b"")  # nothing more after the loss
        self.assertEqual(self.flushLoggedErrors(), [])

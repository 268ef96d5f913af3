"""core.sendfile: a file sent on a real loopback TCP connection by the kernel."""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core.sendfile import can_sendfile, sendfile_transport


class _Sender(Protocol):
    def __init__(self, path: str, offset: int, result: Deferred[int]) -> None:
        self.path, self.offset, self.result = path, offset, result
        self.progress: list[int] = []

    def connectionMade(self) -> None:
        self.file = open(self.path, "rb")  # noqa: SIM115 (closed when sent)
        d = sendfile_transport(
            reactor, self.transport, self.file.fileno(), self.offset, progress=self.progress.append
        )

        def sent(count: int) -> int:
            self.file.close()
            self.transport.loseConnection()
            return count

        d.addCallback(sent).chainDeferred(self.result)


class _Collector(Protocol):
    def __init__(self, done: Deferred[bytes]) -> None:
        self.data = bytearray()
        self.done = done

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: object = None) -> None:
        self.done.callback(bytes(self.data))


class SendfileTests(TestCase):
    async def _send(self, payload: bytes, offset: int) -> tuple[int, bytes]:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(payload)
        sent: Deferred[int] = Deferred()
        self.senders: list[_Sender] = []

        def sender() -> _Sender:
            self.senders.append(_Sender(path, offset, sent))
            return self.senders[-1]

        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Factory.forProtocol(sender)
        )
        self.addCleanup(port.stopListening)
        received: Deferred[bytes] = Deferred()
        await TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(
            Factory.forProtocol(lambda: _Collector(received))
        )
        return await sent, await received

    async def test_whole_file(self) -> None:
        payload = os.urandom(3 * 1024 * 1024 + 17)
        count, data = await self._send(payload, 0)
        self.assertEqual(count, len(payload))
        self.assertEqual(data, payload)
        progress = self.senders[0].progress
        self.assertEqual(sum(progress), len(payload))
        self.assertNotIn(0, progress)

    async def test_from_offset(self) -> None:
        payload = os.urandom(100_000)
        count, data = await self._send(payload, 99_000)
        self.assertEqual((count, data), (1000, payload[99_000:]))


class EligibilityTests(SynchronousTestCase):
    def test_not_for_test_transports(self) -> None:
        self.assertFalse(can_sendfile(StringTransport()))
        with self.assertRaises(ValueError):
            sendfile_transport(reactor, StringTransport(), 0)

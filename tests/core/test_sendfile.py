"""core.sendfile: a file sent on a real loopback TCP connection by the kernel."""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core import sendfile as sendfile_module
from netproto_twisted.core.sendfile import (
    can_sendfile,
    can_sendfile_in_thread,
    sendfile_in_thread,
    sendfile_transport,
)


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


class _ThreadSender(Protocol):
    """Sends the file from a thread as soon as connected; ``sender`` is the handle."""

    def __init__(self, path: str, offset: int, count: int | None, result: Deferred[int]) -> None:
        self.path, self.offset, self.count, self.result = path, offset, count, result

    def connectionMade(self) -> None:
        with open(self.path, "rb") as f:  # closed at once: the thread has its own descriptor
            self.sender = sendfile_in_thread(
                reactor, self.transport, f.fileno(), self.offset, self.count
            )

        def sent(count: int) -> int:
            self.transport.loseConnection()
            return count

        self.sender.done.addCallback(sent).chainDeferred(self.result)


class _Stalled(Protocol):
    """Reads nothing at all."""

    def connectionMade(self) -> None:
        self.transport.pauseProducing()


class ThreadedSendfileTests(TestCase):
    async def _connect(
        self, path: str, offset: int, count: int | None, client: Factory
    ) -> tuple[_ThreadSender, Deferred[int]]:
        sent: Deferred[int] = Deferred()
        senders: list[_ThreadSender] = []

        def build() -> _ThreadSender:
            senders.append(_ThreadSender(path, offset, count, sent))
            return senders[-1]

        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Factory.forProtocol(build)
        )
        self.addCleanup(port.stopListening)
        protocol = await TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(
            client
        )
        self.addCleanup(lambda: protocol.transport.abortConnection())
        while not senders:  # the server side's connectionMade runs on the next turn
            await _turn()
        return senders[0], sent

    async def test_whole_file_and_a_range(self) -> None:
        payload = os.urandom(5 * 1024 * 1024 + 3)
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(payload)
        for offset, count, want in ((0, None, payload), (1000, 70_000, payload[1000:71_000])):
            received: Deferred[bytes] = Deferred()
            sender, sent = await self._connect(
                path, offset, count, Factory.forProtocol(lambda r=received: _Collector(r))
            )
            self.assertEqual(await sent, len(want))
            self.assertEqual(await received, want)
            self.assertEqual(sender.sender.sent, len(want))

    async def test_cancel_wakes_a_thread_stuck_on_a_peer_that_does_not_read(self) -> None:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.truncate(64 * 1024 * 1024)
        self.patch(sendfile_module, "_POLL_SECONDS", 30.0)  # only the shutdown can wake it
        before = sendfile_module.ThreadedSendfile.running()
        sender, sent = await self._connect(path, 0, None, Factory.forProtocol(_Stalled))
        for _ in range(200):  # until the buffers are full and the thread waits
            await _turn(0.01)
            if sendfile_module.ThreadedSendfile.running() == before + 1 and sender.sender.sent > 0:
                break
        sender.sender.done.cancel()
        sender.transport.abortConnection()
        with self.assertRaises(CancelledError):
            await sent
        for _ in range(500):  # the thread ends (shut down wakes it at once)
            if sendfile_module.ThreadedSendfile.running() == before:
                break
            await _turn(0.01)
        self.assertEqual(sendfile_module.ThreadedSendfile.running(), before)
        self.assertLess(sender.sender.sent, 64 * 1024 * 1024)


def _turn(seconds: float = 0) -> Deferred[None]:
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)


class EligibilityTests(SynchronousTestCase):
    def test_thread_cap(self) -> None:
        self.assertFalse(can_sendfile_in_thread(StringTransport()))
        self.patch(
            sendfile_module.ThreadedSendfile,
            "running",
            classmethod(lambda cls: sendfile_module.MAX_THREADS),
        )
        with self.assertRaises(ValueError):
            sendfile_in_thread(reactor, StringTransport(), 0)

    def test_not_for_test_transports(self) -> None:
        self.assertFalse(can_sendfile(StringTransport()))
        with self.assertRaises(ValueError):
            sendfile_transport(reactor, StringTransport(), 0)

"""core.recvfile: bytes from a real loopback TCP connection written into a file by a thread."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core import recvfile
from netproto_twisted.core.recvfile import (
    FileWriteError,
    ReceiveTooLarge,
    ThreadedReceive,
    can_receive_in_thread,
    receive_in_thread,
)


class _Receiving(Protocol):
    """Hands its connection to a receiving thread as soon as connected."""

    def __init__(self, fd: int, kw: dict[str, Any], started: Deferred[_Receiving]) -> None:
        self.fd, self.kw, self.started = fd, kw, started
        self.after = bytearray()  # what the reactor read once the thread was done
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.thread: ThreadedReceive = receive_in_thread(
            reactor, self.transport, self.fd, **self.kw
        )
        self.started.callback(self)

    def dataReceived(self, data: bytes) -> None:
        self.after += data

    def connectionLost(self, reason: object = None) -> None:
        self.lost.callback(None)


def _open_fds() -> list[str]:
    out = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            out.append(name + " " + os.readlink("/proc/self/fd/" + name))
    return sorted(out)


class ThreadedReceiveTests(TestCase):
    async def _serve(self, fd: int, **kw: Any) -> tuple[int, Deferred[_Receiving]]:
        started: Deferred[_Receiving] = Deferred()
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Factory.forProtocol(lambda: _Receiving(fd, kw, started))
        )
        self.addCleanup(port.stopListening)
        return port.getHost().port, started

    def _file(self, initial: bytes = b"", flags: int = 0) -> tuple[str, int]:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(initial)
        fd = os.open(path, os.O_WRONLY | flags)
        self.addCleanup(os.close, fd)
        return path, fd

    async def _client(self, port: int, action: Callable[[socket.socket], Any]) -> Any:
        def run() -> Any:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                return action(s)

        return await deferToThread(run)

    async def _failed(self, started: Deferred[_Receiving], error: type[Exception]) -> Exception:
        """The thread's failure (``error``); then the server side closed and gone."""
        receiving = await started
        with self.assertRaises(error) as e:
            await receiving.thread.done
        receiving.transport.abortConnection()
        await receiving.lost
        return e.exception

    async def _upload(self, fd: int, payload: bytes, **kw: Any) -> tuple[_Receiving, int]:
        port, started = await self._serve(fd, **kw)
        await self._client(port, lambda s: s.sendall(payload))
        receiving = await started
        return receiving, await receiving.thread.done

    async def test_until_eof_by_splice_and_by_copy(self) -> None:
        payload = os.urandom(5 * 1024 * 1024 + 7)
        for use_splice in (True, False):
            path, fd = self._file(b"keep")
            os.lseek(fd, 4, os.SEEK_SET)  # written from the file's own position
            receiving, count = await self._upload(fd, payload, use_splice=use_splice)
            self.assertEqual(count, len(payload))
            self.assertEqual(receiving.thread.received, len(payload))
            self.assertEqual(receiving.thread.spliced, use_splice and hasattr(os, "splice"))
            with open(path, "rb") as f:
                self.assertEqual(f.read(), b"keep" + payload)
            await receiving.lost  # the reactor read again, saw the end, closed

    async def test_count_hands_the_connection_back(self) -> None:
        path, fd = self._file()
        port, started = await self._serve(fd, count=70_000)
        await self._client(port, lambda s: s.sendall(b"a" * 70_000 + b"tail"))
        receiving = await started
        self.assertEqual(await receiving.thread.done, 70_000)
        await receiving.lost
        self.assertEqual(bytes(receiving.after), b"tail")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"a" * 70_000)

    async def test_eof_before_count(self) -> None:
        _, fd = self._file()
        port, started = await self._serve(fd, count=10_000)
        await self._client(port, lambda s: s.sendall(b"b" * 100))
        await self._failed(started, EOFError)

    async def test_too_large_writes_nothing_past_the_limit(self) -> None:
        for use_splice in (True, False):
            path, fd = self._file()
            port, started = await self._serve(fd, max_bytes=100_000, use_splice=use_splice)

            def send(s: socket.socket) -> None:
                with contextlib.suppress(OSError):  # the server gave up and closed
                    s.sendall(b"c" * 3_000_000)

            await self._client(port, send)
            await self._failed(started, ReceiveTooLarge)
            self.assertLessEqual(os.path.getsize(path), 100_000)

    async def test_exactly_the_limit_is_fine(self) -> None:
        _path, fd = self._file()
        _, count = await self._upload(fd, b"d" * 100_000, max_bytes=100_000)
        self.assertEqual(count, 100_000)

    async def test_append_mode_copies(self) -> None:
        path, fd = self._file(b"start-", os.O_APPEND)
        receiving, _count = await self._upload(fd, b"e" * 300_000, use_splice=True)
        self.assertFalse(receiving.thread.spliced)  # splice refuses O_APPEND
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"start-" + b"e" * 300_000)

    async def test_disk_error_is_a_file_write_error(self) -> None:
        for use_splice in (True, False):
            fd = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
            self.addCleanup(os.close, fd)
            port, started = await self._serve(fd, use_splice=use_splice)

            def send(s: socket.socket) -> None:
                with contextlib.suppress(OSError):
                    s.sendall(b"f" * 500_000)

            await self._client(port, send)
            error = await self._failed(started, FileWriteError)
            self.assertIsInstance(error.error, OSError)  # type: ignore[attr-defined]

    async def test_reset_by_the_peer(self) -> None:
        _, fd = self._file()

        def reset(s: socket.socket) -> None:
            s.sendall(b"g" * 200_000)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

        port, started = await self._serve(fd)
        await self._client(port, reset)  # closed with a reset, not a FIN
        await self._failed(started, OSError)

    async def test_stop_wakes_a_waiting_thread_and_leaks_nothing(self) -> None:
        _, fd = self._file()
        self.patch(recvfile, "_POLL_SECONDS", 30.0)  # only the shutdown can wake it
        await deferToThread(lambda: None)  # the reactor's waker exists from here on
        for use_splice in (True, False):
            port, started = await self._serve(fd, use_splice=use_splice)
            before_threads, before_fds = recvfile.ThreadedReceive.running(), _open_fds()
            client = socket.create_connection(("127.0.0.1", port), timeout=10)
            self.addCleanup(client.close)
            client.sendall(b"h" * 1000)  # then nothing: the thread waits in poll
            receiving = await started
            for _ in range(200):
                if receiving.thread.received == 1000:
                    break
                await deferLater(reactor, 0.01, lambda: None)
            self.assertEqual(recvfile.ThreadedReceive.running(), before_threads + 1)
            receiving.thread.stop()
            receiving.transport.abortConnection()
            with self.assertRaises(ConnectionAbortedError):
                await receiving.thread.done
            # done comes after the thread
            self.assertEqual(recvfile.ThreadedReceive.running(), before_threads)
            await receiving.lost
            client.close()
            self.assertEqual(_open_fds(), before_fds)


class EligibilityTests(SynchronousTestCase):
    def test_not_for_test_transports(self) -> None:
        self.assertFalse(can_receive_in_thread(StringTransport()))
        with self.assertRaises(ValueError):
            receive_in_thread(reactor, StringTransport(), 0)

    def test_thread_cap(self) -> None:
        self.patch(recvfile, "raw_tcp_connection", lambda transport: object())
        self.assertTrue(can_receive_in_thread(StringTransport()))
        full = classmethod(lambda cls: recvfile.MAX_THREADS)
        self.patch(recvfile.ThreadedReceive, "running", full)
        self.assertFalse(can_receive_in_thread(StringTransport()))

"""core.tls_sendfile: a file encrypted and sent by a thread on a real loopback TLS connection.

The peer is the stdlib's ``ssl`` (OpenSSL through another binding), reading
with ``suppress_ragged_eofs=False``: a connection that ends without the TLS
close fails the read, so the tests see that the thread sent ``close_notify``.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import struct
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from netproto_twisted.core import tls_sendfile
from netproto_twisted.core.tls import ensure_dev_certificate, server_context
from netproto_twisted.core.tls_sendfile import (
    ThreadedTLSSend,
    can_send_tls_in_thread,
    send_tls_in_thread,
)


@implementer(IHandshakeListener)
class _TLSServer(Protocol):
    """Starts TLS at once; when the handshake is done, writes ``head`` and hands over."""

    def __init__(self, owner: _Setup) -> None:
        self.owner = owner
        self.lost: Deferred[BaseException] = Deferred()

    def connectionMade(self) -> None:
        self.owner.before = can_send_tls_in_thread(self.transport)  # plain TCP yet
        self.transport.startTLS(self.owner.options)  # type: ignore[attr-defined]
        self.owner.protocol.callback(self)

    def handshakeCompleted(self) -> None:
        owner = self.owner
        if owner.head:
            self.transport.write(owner.head)  # queued as ciphertext: must go first
        owner.ready = can_send_tls_in_thread(self.transport)
        if not owner.start_at_once:
            return
        with open(owner.path, "rb") as f:  # closed at once: the thread has its own descriptor
            owner.sender = send_tls_in_thread(
                reactor, self.transport, f.fileno(), owner.offset, owner.count
            )
        owner.started.callback(owner.sender)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(reason.value)


class _Setup:
    def __init__(self, path: str, options: Any) -> None:
        self.path = path
        self.options = options
        self.head = b""
        self.offset = 0
        self.count: int | None = None
        self.start_at_once = True
        self.before: bool | None = None
        self.ready: bool | None = None
        self.sender: ThreadedTLSSend | None = None
        self.protocol: Deferred[_TLSServer] = Deferred()
        self.started: Deferred[ThreadedTLSSend] = Deferred()


def _client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class ThreadedTLSSendTests(TestCase):
    def setUp(self) -> None:
        self.baseline = ThreadedTLSSend.running()
        cert, key = ensure_dev_certificate(self.mktemp())
        self.options = server_context(cert, key)

    async def serve(self, payload: bytes, **kw: Any) -> tuple[_Setup, int]:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(payload)
        setup = _Setup(path, self.options)
        for name, value in kw.items():
            setattr(setup, name, value)
        port = reactor.listenTCP(  # type: ignore[attr-defined]
            0, Factory.forProtocol(lambda: _TLSServer(setup)), interface="127.0.0.1"
        )
        self.addCleanup(port.stopListening)
        return setup, port.getHost().port

    def read_all(self, port: int) -> tuple[bytes, bool]:
        """Connect, read to the TLS close, answer it; (data, whether the close was TLS's)."""
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn = _client_context().wrap_socket(raw, suppress_ragged_eofs=False)
        data = bytearray()
        try:
            while True:
                block = conn.recv(1024 * 1024)
                if not block:  # close_notify (a bare EOF raises: no ragged EOFs)
                    break
                data += block
            conn.unwrap().close()  # our close_notify; the server's came first
            return bytes(data), True
        finally:
            conn.close()

    async def test_whole_file_then_the_tls_close(self) -> None:
        payload = os.urandom(3 * 1024 * 1024 + 17)
        setup, port = await self.serve(payload, head=b"HEAD")
        data, closed = await deferToThread(self.read_all, port)
        self.assertTrue(closed)
        self.assertEqual(hashlib.sha256(data).digest(), hashlib.sha256(b"HEAD" + payload).digest())
        sender = await setup.started
        self.assertEqual(await sender.done, len(payload))
        self.assertEqual(sender.sent, len(payload))
        self.assertIs(setup.before, False)
        self.assertIs(setup.ready, True)
        protocol = await setup.protocol
        protocol.transport.loseConnection()  # Twisted's TLS layer ends the close it started
        self.assertIsInstance(await protocol.lost, ConnectionDone)
        self.assertEqual(ThreadedTLSSend.running(), self.baseline)
        self.assertEqual(tls_sendfile._pending, 0)

    async def test_offset_and_count(self) -> None:
        payload = os.urandom(700_000)
        setup, port = await self.serve(payload, offset=123, count=500_000)
        data, closed = await deferToThread(self.read_all, port)
        self.assertEqual(data, payload[123:500_123])
        self.assertTrue(closed)
        self.assertEqual(await (await setup.started).done, 500_000)
        (await setup.protocol).transport.loseConnection()

    async def test_small_chunks(self) -> None:
        self.patch(tls_sendfile, "TLS_CHUNK", 1000)
        payload = os.urandom(10_001)
        setup, port = await self.serve(payload)
        data, _ = await deferToThread(self.read_all, port)
        self.assertEqual(data, payload)
        (await setup.protocol).transport.loseConnection()

    async def test_client_vanishing_fails_the_send(self) -> None:
        payload = os.urandom(24 * 1024 * 1024)
        setup, port = await self.serve(payload)

        def vanish() -> None:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            conn = _client_context().wrap_socket(raw)
            conn.recv(1000)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # a reset, the rest unread

        await deferToThread(vanish)
        sender = await setup.started
        with self.assertRaises(OSError):
            await sender.done
        self.assertLess(sender.sent, len(payload))
        protocol = await setup.protocol
        protocol.transport.abortConnection()  # the TLS layer is the reactor's again
        await protocol.lost
        self.assertEqual(ThreadedTLSSend.running(), self.baseline)

    async def test_stop_ends_a_stalled_send(self) -> None:
        payload = os.urandom(24 * 1024 * 1024)  # more than loopback's socket buffers hold
        setup, port = await self.serve(payload)
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.addCleanup(raw.close)
        conn = _client_context().wrap_socket(raw, do_handshake_on_connect=False)
        await deferToThread(conn.do_handshake)  # then reads nothing
        sender = await setup.started
        for _ in range(100):  # until the socket is full and the thread waits
            before = sender.sent
            await deferToThread(lambda: None)
            if sender.sent and sender.sent == before:
                break
        sender.stop()
        with self.assertRaises((OSError, ConnectionAbortedError)):
            await sender.done
        self.assertLess(sender.sent, len(payload))
        (await setup.protocol).transport.abortConnection()
        self.assertEqual(ThreadedTLSSend.running(), self.baseline)

    async def test_refused_before_the_handshake_and_on_plain_tcp(self) -> None:
        setup, port = await self.serve(b"x", start_at_once=False)

        def handshake() -> ssl.SSLSocket:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            return _client_context().wrap_socket(raw)

        conn = await deferToThread(handshake)
        self.addCleanup(conn.close)
        protocol = await setup.protocol
        self.assertIs(setup.before, False)  # plain TCP: no TLS layer to take
        for _ in range(100):
            if setup.ready is not None:
                break
            await deferToThread(lambda: None)
        self.assertIs(setup.ready, True)
        self.patch(tls_sendfile, "MAX_THREADS", 0)
        self.assertFalse(can_send_tls_in_thread(protocol.transport))  # no thread free
        self.patch(tls_sendfile, "MAX_THREADS", 16)
        self.assertTrue(can_send_tls_in_thread(protocol.transport))
        protocol.transport.write(b"more")
        protocol.transport.loseConnection()  # closing: no longer idle
        self.assertFalse(can_send_tls_in_thread(protocol.transport))
        with self.assertRaises(ValueError):
            send_tls_in_thread(reactor, protocol.transport, 0)
        protocol.transport.abortConnection()
        await protocol.lost

"""RPCConnection on a StringTransport: the prebuilt head, every framing h11 knows, bad answers."""

from __future__ import annotations

from typing import Any

import h11
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from netproto_twisted.http.client.http11 import StaleConnection
from netproto_twisted.xmlrpc._connection import RPCConnection, request_head
from netproto_twisted.xmlrpc.errors import BodyTooLarge

_HEAD = request_head(b"/RPC2", [(b"Host", b"example.com"), (b"Content-Type", b"text/xml")])


class _Owner:
    def __init__(self) -> None:
        self.answers: list[tuple[int, str, dict[str, str], bytes]] = []
        self.failures: list[tuple[Failure, bool]] = []

    def answered(self, status: int, reason: str, headers: dict[str, str], body: bytes) -> None:
        self.answers.append((status, reason, headers, body))

    def request_failed(self, failure: Failure, stale: bool) -> None:
        self.failures.append((failure, stale))


class _Conn:
    """A connection on a StringTransport, and what it told its pool."""

    def __init__(self, max_response: int = 1000, max_header_bytes: int = 4096) -> None:
        self.idle: list[RPCConnection] = []
        self.lost: list[RPCConnection] = []
        self.conn = RPCConnection(
            self.idle.append,
            self.lost.append,
            max_response=max_response,
            max_header_bytes=max_header_bytes,
        )
        self.transport = StringTransport()
        self.conn.makeConnection(self.transport)

    def call(self, body: bytes = b"<x/>") -> _Owner:
        owner = _Owner()
        self.transport.clear()
        self.conn.request(owner, _HEAD, body)
        return owner


class RequestTests(TestCase):
    def test_head_and_body_in_one_write(self) -> None:
        c = _Conn()
        c.call(b"<hello/>")
        self.assertEqual(
            c.transport.value(),
            b"POST /RPC2 HTTP/1.1\r\nHost: example.com\r\nContent-Type: text/xml\r\n"
            b"Content-Length: 8\r\n\r\n<hello/>",
        )

    def test_bad_header_refused_when_the_head_is_built(self) -> None:
        with self.assertRaises(h11.LocalProtocolError):
            request_head(b"/", [(b"Host", b"h"), (b"X-Bad", b"a\r\nInjected: yes")])


class AnswerTests(TestCase):
    def test_content_length_in_pieces_then_reuse(self) -> None:
        c = _Conn()
        owner = c.call()
        c.conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nX-A: 1\r\n\r\nabc")
        self.assertEqual(owner.answers, [])
        c.conn.dataReceived(b"def")
        expected = (200, "OK", {"content-length": "6", "x-a": "1"}, b"abcdef")
        self.assertEqual(owner.answers, [expected])
        self.assertEqual(c.idle, [c.conn])
        self.assertTrue(c.conn.reusable)
        second = c.call()
        c.conn.dataReceived(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(second.answers[0][:2], (500, "Oops"))

    def test_next_call_sent_from_on_idle(self) -> None:
        """The pool sends the next call as soon as the connection is idle, before the answer."""
        c = _Conn()
        owner = c.call()
        nxt = _Owner()
        c.conn.on_idle = lambda conn: conn.request(nxt, _HEAD, b"<y/>")
        c.conn.dataReceived(b"HTTP/1.1 201 Made\r\nContent-Length: 2\r\nX-A: 1\r\n\r\nok")
        first = (201, "Made", {"content-length": "2", "x-a": "1"}, b"ok")
        self.assertEqual(owner.answers, [first])
        c.conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno")
        self.assertEqual(nxt.answers, [(200, "OK", {"content-length": "2"}, b"no")])

    def test_chunked(self) -> None:
        c = _Conn()
        owner = c.call()
        c.conn.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        c.conn.dataReceived(b"2\r\nde\r\n0\r\n\r\n")
        self.assertEqual(owner.answers[0][3], b"abcde")
        self.assertEqual(c.idle, [c.conn])

    def test_http10_close_delimited(self) -> None:
        c = _Conn()
        owner = c.call()
        c.conn.dataReceived(b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\nhello")
        self.assertEqual(owner.answers, [])
        c.conn.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(owner.answers[0][3], b"hello")
        self.assertEqual(c.idle, [])
        self.assertEqual(c.lost, [c.conn])

    def test_connection_close_is_honoured(self) -> None:
        c = _Conn()
        owner = c.call()
        c.conn.dataReceived(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        self.assertEqual(owner.answers[0][3], b"ok")
        self.assertEqual(c.idle, [])
        self.assertTrue(c.transport.disconnecting)

    def test_interim_answers_skipped(self) -> None:
        c = _Conn()
        owner = c.call()
        c.conn.dataReceived(b"HTTP/1.1 102 Processing\r\n\r\n")
        c.conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        self.assertEqual(owner.answers, [(200, "OK", {"content-length": "2"}, b"ok")])

    def test_more_than_content_length_closes(self) -> None:
        c = _Conn()
        owner = c.call()
        c.conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
        self.assertEqual(owner.answers[0][3], b"ok")
        self.assertEqual(c.idle, [])
        self.assertTrue(c.transport.disconnecting)

    def test_unasked_bytes_close(self) -> None:
        c = _Conn()
        c.conn.dataReceived(b"HTTP/1.1 200 OK\r\n")
        self.assertTrue(c.transport.disconnecting)


class BadAnswerTests(TestCase):
    def test_declared_length_over_limit(self) -> None:
        c = _Conn(max_response=10)
        owner = c.call()
        c.conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")
        owner.failures[0][0].trap(BodyTooLarge)

    def test_chunked_over_limit(self) -> None:
        c = _Conn(max_response=10)
        owner = c.call()
        c.conn.dataReceived(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        c.conn.dataReceived(b"8\r\n12345678\r\n8\r\n12345678\r\n")
        owner.failures[0][0].trap(BodyTooLarge)
        self.assertEqual(len(owner.failures), 1)

    def test_head_too_large(self) -> None:
        c = _Conn(max_header_bytes=100)
        owner = c.call()
        c.conn.dataReceived(b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 200)
        self.assertIn("exceed 100 bytes", str(owner.failures[0][0].value))

    def test_lost_before_answer_on_reused_connection_is_stale(self) -> None:
        c = _Conn()
        c.call()
        c.conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        second = c.call()
        c.conn.connectionLost(Failure(ConnectionDone()))
        failure, stale = second.failures[0]
        self.assertTrue(stale)
        failure.trap(StaleConnection)

    def test_lost_mid_body(self) -> None:
        c = _Conn()
        owner = c.call()
        c.conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
        c.conn.connectionLost(Failure(ConnectionDone()))
        failure, stale = owner.failures[0]
        self.assertFalse(stale)
        failure.trap(ConnectionDone)

    @given(st.binary(max_size=300))
    def test_junk_never_crashes(self, junk: bytes) -> None:
        c = _Conn()
        owner = c.call()
        c.conn.dataReceived(junk)
        c.conn.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(len(owner.answers) + len(owner.failures), 1)


class DirectWriteTests(TestCase):
    async def test_plain_tcp_writes_straight_to_the_socket(self) -> None:
        """Over loopback TCP the request goes out through core's write_now; not over others."""
        received: list[bytes] = []

        class _Keep(Protocol):
            def dataReceived(self, data: bytes) -> None:
                received.append(data)

        port = reactor.listenTCP(0, Factory.forProtocol(_Keep), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        conn = RPCConnection(lambda c: None, lambda c: None, max_response=100)
        await TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(
            _OneFactory(conn)
        )
        self.addCleanup(conn.close)
        self.assertIsNotNone(conn.raw)
        conn.request(_Owner(), _HEAD, b"x")
        for _ in range(100):
            if received:
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertTrue(b"".join(received).startswith(b"POST /RPC2 HTTP/1.1\r\n"))
        other = RPCConnection(lambda c: None, lambda c: None, max_response=100)
        other.makeConnection(StringTransport())
        self.assertIsNone(other.raw)
        other.request(_Owner(), _HEAD, b"x")
        self.assertTrue(other.transport.value().startswith(b"POST /RPC2"))  # type: ignore[union-attr]


class _OneFactory(Factory):
    def __init__(self, protocol: Protocol) -> None:
        self.one = protocol

    def buildProtocol(self, addr: Any) -> Protocol:
        return self.one

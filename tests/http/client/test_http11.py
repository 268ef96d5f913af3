"""The h11-based HTTP/1.1 connection and the pool, driven with bytes (no sockets)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IConsumer
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from netproto_twisted.http.client import h11cache, http11
from netproto_twisted.http.client.errors import URLError
from netproto_twisted.http.client.http11 import HTTP11Connection, RawResponse, StaleConnection
from netproto_twisted.http.client.pool import ConnectionPool
from tests.gccheck import collector_finds_nothing

HEAD = [(b"Host", b"example.test")]


class Owner:
    """Records what a connection reports."""

    def __init__(self) -> None:
        self.responses: list[RawResponse] = []
        self.failures: list[tuple[Failure, bool]] = []

    def response_received(self, response: RawResponse) -> None:
        self.responses.append(response)

    def request_failed(self, failure: Failure, stale: bool) -> None:
        self.failures.append((failure, stale))


class Sink(Protocol):
    """A body consumer that can pause its producer."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.ended: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.data.append(data)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        self.ended = reason


class ConnectionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.idle: list[HTTP11Connection] = []
        self.lost: list[HTTP11Connection] = []
        self.conn = HTTP11Connection(self.idle.append, self.lost.append, max_header_bytes=4096)
        self.transport = StringTransport()
        self.conn.makeConnection(self.transport)

    def send(self, method: bytes = b"GET", body: Any = None) -> Owner:
        owner = Owner()
        self.transport.clear()
        self.conn.request(owner, method, b"/x", HEAD, body)
        return owner

    def test_content_length_body_and_keepalive(self) -> None:
        owner = self.send()
        self.assertEqual(self.transport.value(), b"GET /x HTTP/1.1\r\nHost: example.test\r\n\r\n")
        self.conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-A: b\r\n\r\nhello")
        [response] = owner.responses
        self.assertEqual((response.status, response.reason, response.length), (200, b"OK", 10))
        self.assertEqual(response.headers[1], (b"X-A", b"b"))
        sink = Sink()
        response.deliverBody(sink)
        self.assertEqual(sink.data, [b"hello"])
        self.assertEqual(self.idle, [])
        self.conn.dataReceived(b"world")
        self.assertEqual(b"".join(sink.data), b"helloworld")
        assert sink.ended is not None
        self.assertTrue(sink.ended.check(ResponseDone))
        self.assertEqual(self.idle, [self.conn])
        self.assertTrue(self.conn.reusable)
        # the same connection carries the next request
        owner = self.send(b"POST", b"abc")
        self.assertEqual(
            self.transport.value(),
            b"POST /x HTTP/1.1\r\nHost: example.test\r\nContent-Length: 3\r\n\r\nabc",
        )
        self.conn.dataReceived(b"HTTP/1.1 204 No Content\r\n\r\n")
        self.assertEqual(owner.responses[0].length, 0)
        self.assertEqual(len(self.idle), 2)

    def test_repeated_head_is_parsed_once(self) -> None:
        h11cache.HEADS.clear()
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"
        first = self.send()
        self.conn.dataReceived(answer)
        self.assertEqual(len(h11cache.HEADS), 1)

        def no_parse(data: bytes) -> None:
            raise AssertionError("h11 parsed a head it had parsed before")

        second = self.send()
        self.patch(self.conn._h11, "receive_data", no_parse)
        self.conn.dataReceived(answer)
        [a], [b] = first.responses, second.responses
        self.assertEqual(
            (a.status, a.reason, a.version, a.headers, a.length),
            (b.status, b.reason, b.version, b.headers, b.length),
        )
        sink = Sink()
        b.deliverBody(sink)
        self.assertEqual(sink.data, [b"hello"])
        assert sink.ended is not None and sink.ended.check(ResponseDone)
        self.assertEqual(self.idle, [self.conn, self.conn])

    def test_head_cache_tells_requests_apart(self) -> None:
        """The same head after a HEAD request has no body; after Connection: close, no reuse."""
        h11cache.HEADS.clear()
        answer = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
        self.send()
        self.conn.dataReceived(answer + b"hello")
        owner = self.send(b"HEAD")
        self.conn.dataReceived(answer)
        self.assertEqual(owner.responses[0].length, 0)
        self.assertEqual(len(self.idle), 2)
        owner = Owner()
        self.conn.request(owner, b"GET", b"/x", [*HEAD, (b"Connection", b"close")], None)
        self.conn.dataReceived(answer + b"hello")
        owner.responses[0].deliverBody(Sink())
        self.assertEqual(len(self.idle), 2)
        self.assertTrue(self.transport.disconnecting)

    def test_body_in_hand_is_complete_before_the_owner_hears(self) -> None:
        seen: list[tuple[bool, list[bytes], bool]] = []

        class Eager(Owner):
            def response_received(inner, response: RawResponse) -> None:
                sink = Sink()
                response.deliverBody(sink)
                seen.append((response.complete, sink.data, sink.ended is not None))

        owner = Eager()
        self.conn.request(owner, b"GET", b"/x", HEAD, None)
        self.conn.dataReceived(b"HTTP/1.1 302 Found\r\nContent-Length: 3\r\n\r\nabc")
        self.assertEqual(seen, [(True, [b"abc"], True)])
        self.assertEqual(self.idle, [self.conn])
        self.assertEqual(self.transport.producerState, "producing")

    def test_big_body_read_in_big_pieces(self) -> None:
        owner = self.send()
        raw = SimpleNamespace(bufferSize=65536)  # the TCP connection beneath
        self.conn._raw, self.conn._read_size = raw, 65536
        size = http11.BIG_BODY + 10
        self.conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nab" % size)
        self.assertEqual(raw.bufferSize, http11.BIG_READ)
        sink = Sink()
        owner.responses[0].deliverBody(sink)
        self.conn.dataReceived(b"x" * (size - 2))
        assert sink.ended is not None and sink.ended.check(ResponseDone)
        self.assertEqual(raw.bufferSize, 65536)
        self.conn._raw = None
        owner = self.send()
        self.conn._raw = raw
        self.conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
        self.assertEqual(raw.bufferSize, 65536)

    def test_body_arriving_before_it_is_asked_for_is_held(self) -> None:
        owner = self.send()
        self.conn.dataReceived(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
        )
        self.assertEqual(self.transport.producerState, "paused")
        self.conn.dataReceived(b"0\r\n\r\n")
        # the body is all in: the connection is free although nobody read it
        self.assertEqual(self.idle, [self.conn])
        self.assertEqual(self.transport.producerState, "producing")
        sink = Sink()
        owner.responses[0].deliverBody(sink)
        self.assertEqual(sink.data, [b"abc"])
        assert sink.ended is not None and sink.ended.check(ResponseDone)

    def test_slow_consumer_pauses_the_socket(self) -> None:
        owner = self.send()
        self.conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
        sink = Sink()
        owner.responses[0].deliverBody(sink)
        assert sink.transport is not None
        sink.transport.pauseProducing()  # type: ignore[attr-defined]
        self.assertEqual(self.transport.producerState, "paused")
        self.conn.dataReceived(b"abc")
        self.assertEqual(sink.data, [])
        sink.transport.resumeProducing()  # type: ignore[attr-defined]
        self.assertEqual(sink.data, [b"abc"])
        self.assertEqual(self.transport.producerState, "producing")

    def test_close_delimited_body_ends_at_close(self) -> None:
        owner = self.send()
        self.conn.dataReceived(b"HTTP/1.0 200 OK\r\n\r\nsome")
        response = owner.responses[0]
        self.assertEqual((response.version, response.length), ((1, 0), None))
        sink = Sink()
        response.deliverBody(sink)
        self.conn.dataReceived(b" body")
        self.conn.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(b"".join(sink.data), b"some body")
        assert sink.ended is not None and sink.ended.check(ResponseDone)
        self.assertEqual(self.idle, [])

    def test_connection_close_is_not_reused(self) -> None:
        owner = self.send()
        self.conn.dataReceived(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
        )
        owner.responses[0].deliverBody(Sink())
        self.assertEqual(self.idle, [])
        self.assertTrue(self.transport.disconnecting)

    def test_body_cut_short(self) -> None:
        owner = self.send()
        self.conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc")
        sink = Sink()
        owner.responses[0].deliverBody(sink)
        self.conn.connectionLost(Failure(ConnectionLost()))
        assert sink.ended is not None
        self.assertTrue(sink.ended.check(ConnectionLost))

    def test_more_than_content_length_closes(self) -> None:
        owner = self.send()
        self.conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
        sink = Sink()
        owner.responses[0].deliverBody(sink)
        self.assertEqual(sink.data, [b"ok"])
        self.assertEqual(self.idle, [])
        self.assertTrue(self.transport.disconnecting)

    def test_oversized_head_refused(self) -> None:
        owner = self.send()
        self.conn.dataReceived(b"HTTP/1.1 200 OK\r\n" + b"X-Flood: 12345678\r\n" * 400)
        [(failure, stale)] = owner.failures
        self.assertFalse(stale)
        self.assertIn("header fields exceed 4096 bytes", str(failure.value))

    def test_garbage_refused(self) -> None:
        owner = self.send()
        self.conn.dataReceived(b"SSH-2.0-OpenSSH\r\n\r\n")
        self.assertIsInstance(owner.failures[0][0].value, URLError)

    def test_stale_only_on_a_reused_connection(self) -> None:
        owner = self.send()
        self.conn.connectionLost(Failure(ConnectionLost()))
        self.assertFalse(owner.failures[0][1])  # first request: not stale
        conn = HTTP11Connection(self.idle.append, self.lost.append)
        conn.makeConnection(StringTransport())
        first = Owner()
        conn.request(first, b"GET", b"/", HEAD, None)
        conn.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        second = Owner()
        conn.request(second, b"GET", b"/", HEAD, None)
        conn.connectionLost(Failure(ConnectionLost()))
        failure, stale = second.failures[0]
        self.assertTrue(stale)
        self.assertIsInstance(failure.value, StaleConnection)

    def test_streamed_request_body_is_chunked(self) -> None:
        producer = Producer(UNKNOWN_LENGTH)
        owner = self.send(b"PUT", producer)
        producer.consumer.write(b"abc")
        producer.done.callback(None)
        self.assertEqual(
            self.transport.value(),
            b"PUT /x HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n",
        )
        self.assertIs(self.transport.producer, producer)
        self.conn.dataReceived(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(owner.responses[0].status, 201)
        self.assertEqual(self.idle, [self.conn])

    def test_producer_short_of_its_length_fails_the_request(self) -> None:
        producer = Producer(5)
        owner = self.send(b"PUT", producer)
        producer.consumer.write(b"abc")
        producer.done.callback(None)
        self.assertIn("request body", str(owner.failures[0][0].value))


@implementer(IBodyProducer)
class Producer:
    def __init__(self, length: Any) -> None:
        self.length = length
        self.done: Deferred[None] = Deferred()
        self.consumer: Any = None

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        self.consumer = consumer
        consumer.registerProducer(self, True)
        return self.done

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class FakeEndpoint:
    """Connects at once (or when told) over StringTransports."""

    def __init__(self) -> None:
        self.connections: list[tuple[Any, StringTransport]] = []

    def connect(self, factory: Any) -> Deferred[Any]:
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.connections.append((protocol, transport))
        return succeed(protocol)


class PoolTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.pool = ConnectionPool(max_per_host=2)
        self.endpoint = FakeEndpoint()

    def get(self, method: bytes = b"GET", body: Any = None) -> Deferred[RawResponse]:
        return self.pool.request(
            "k", self.endpoint, method, b"/", HEAD, body, retryable=method != b"POST"
        )  # type: ignore[arg-type]

    def answer(self, index: int) -> None:
        protocol, _ = self.endpoint.connections[index]
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def test_cap_queue_and_reuse(self) -> None:
        ds = [self.get() for _ in range(4)]
        self.assertEqual(len(self.endpoint.connections), 2)
        self.assertNoResult(ds[2])
        self.answer(0)
        self.successResultOf(ds[0])
        ds[3].cancel()  # a queued request leaves the line
        self.failureResultOf(ds[3])
        self.answer(0)  # the first queued request went out on the freed connection
        self.successResultOf(ds[2])
        self.assertEqual(len(self.endpoint.connections), 2)
        self.answer(1)
        self.successResultOf(ds[1])
        self.assertEqual(self.pool.idle_count("k"), 2)

    def test_a_finished_exchange_leaves_no_garbage_cycles(self) -> None:
        """Once its body is delivered, a request's objects are freed by refcounting alone.

        (A cycle per request -- the call and its Deferred, the exchange and its
        response, the consumer and its transport -- made the garbage collector
        a good part of the client's CPU time.)
        """

        def one() -> None:
            d = self.get()
            self.answer(0)
            sink = Sink()
            self.successResultOf(d).deliverBody(sink)
            self.assertEqual((sink.data, sink.ended.check(ResponseDone)), ([b"ok"], ResponseDone))

        one()  # the connection is made and kept
        with collector_finds_nothing(self):
            for _ in range(3):
                one()

    def test_a_body_producer_keeping_its_consumer_leaves_no_cycle(self) -> None:
        """A producer that keeps its consumer once done does not tie the request in a cycle."""

        def one() -> None:
            producer = Producer(2)
            d = self.get(b"PUT", producer)
            producer.consumer.write(b"hi")
            producer.consumer.unregisterProducer()
            producer.done.callback(None)
            self.answer(0)
            sink = Sink()
            self.successResultOf(d).deliverBody(sink)
            self.assertEqual(sink.data, [b"ok"])

        one()  # the connection is made and kept
        with collector_finds_nothing(self):
            for _ in range(3):
                one()

    def test_stale_connection_retried_once_for_idempotent(self) -> None:
        d = self.get()
        self.answer(0)
        self.successResultOf(d)
        put = self.get(b"PUT", b"data")
        protocol, _ = self.endpoint.connections[0]
        protocol.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(len(self.endpoint.connections), 2)  # sent again, on a new one
        self.assertIn(b"PUT / HTTP/1.1", self.endpoint.connections[1][1].value())
        self.answer(1)
        self.assertEqual(self.successResultOf(put).status, 200)

    def test_post_not_retried(self) -> None:
        self.answer_first()
        post = self.get(b"POST", b"data")
        protocol, _ = self.endpoint.connections[0]
        protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(post, StaleConnection)
        self.assertEqual(len(self.endpoint.connections), 1)

    def answer_first(self) -> None:
        d = self.get()
        self.answer(0)
        self.successResultOf(d)

    def test_cancel_in_flight_closes_the_connection(self) -> None:
        d = self.get()
        d.cancel()
        self.failureResultOf(d)
        self.assertTrue(self.endpoint.connections[0][1].disconnecting)

    def test_close(self) -> None:
        self.answer_first()
        d = self.pool.close()
        protocol, _ = self.endpoint.connections[0]
        protocol.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(d)
        self.assertEqual(self.pool.connection_count("k"), 0)

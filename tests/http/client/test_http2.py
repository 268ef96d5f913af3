"""The HTTP/2 connection and the pool's ALPN path, against h2's own server side in memory."""

from __future__ import annotations

from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
from hyperframe.frame import ContinuationFrame, HeadersFrame
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IConsumer
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from netproto_twisted.http.client.alpn import ALPNCreator, Negotiator
from netproto_twisted.http.client.errors import URLError
from netproto_twisted.http.client.http2 import HTTP2Connection, StreamReset
from netproto_twisted.http.client.http11 import HTTP11Connection, RawResponse, StaleConnection
from netproto_twisted.http.client.pool import ConnectionPool
from tests.gccheck import collector_finds_nothing

HEAD = [(b"Host", b"example.test"), (b"Connection", b"keep-alive"), (b"X-A", b"1")]


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
    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.ended: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.data.append(data)

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: B008
        self.ended = reason


class Peer:
    """h2's server side, wired to a client connection through a StringTransport."""

    def __init__(self, client: Any, transport: StringTransport, **settings: int) -> None:
        self.client = client
        self.transport = transport
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        self.h2.initiate_connection()
        if settings:
            self.h2.update_settings(
                {getattr(h2.settings.SettingCodes, k.upper()): v for k, v in settings.items()}
            )
        self.events: list[Any] = []
        self.bodies: dict[int, bytes] = {}

    def pump(self) -> None:
        """Move bytes both ways until both sides are quiet."""
        for _ in range(100):
            sent = self.transport.value()
            self.transport.clear()
            if sent:
                for event in self.h2.receive_data(sent):
                    self.events.append(event)
                    if isinstance(event, h2.events.DataReceived):
                        sid = event.stream_id
                        self.bodies[sid] = self.bodies.get(sid, b"") + event.data
            back = self.h2.data_to_send()
            if back and not self.client.lost:
                self.client.dataReceived(back)
            if not sent and not back:
                return

    def goaway(self, last_stream_id: int) -> None:
        """A graceful GOAWAY; the server goes on answering the streams up to ``last_stream_id``."""
        self.h2.close_connection(last_stream_id=last_stream_id)
        # h2 (like the client side) takes GOAWAY as the end of everything.
        self.h2.state_machine.state = h2.connection.ConnectionState.SERVER_OPEN
        self.pump()

    def requests(self) -> list[h2.events.RequestReceived]:
        return [e for e in self.events if isinstance(e, h2.events.RequestReceived)]

    def respond(self, sid: int, body: bytes = b"", status: bytes = b"200", end: bool = True,
                headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:  # fmt: skip
        fields = [(b":status", status), *headers]
        if body and end:
            fields.append((b"content-length", b"%d" % len(body)))
        self.h2.send_headers(sid, fields, end_stream=end and not body)
        if body:
            self.h2.send_data(sid, body, end_stream=end)
        self.pump()


def connect(**options: Any) -> tuple[HTTP2Connection, StringTransport, list[Any]]:
    lost: list[Any] = []
    conn = HTTP2Connection(lost.append, **options)
    transport = StringTransport()
    conn.makeConnection(transport)
    return conn, transport, lost


class ConnectionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.conn, self.transport, self.lost = connect(stream_window=16384)
        self.peer = Peer(self.conn, self.transport)
        self.peer.pump()

    def send(self, method: bytes = b"GET", body: Any = None, path: bytes = b"/x") -> Owner:
        owner = Owner()
        self.conn.request(owner, method, path, HEAD, body)
        self.peer.pump()
        return owner

    def test_many_requests_share_the_connection(self) -> None:
        owners = [self.send(path=b"/%d" % i) for i in range(3)]
        requests = self.peer.requests()
        self.assertEqual([r.stream_id for r in requests], [1, 3, 5])
        headers = dict(requests[0].headers)
        self.assertEqual(headers[b":authority"], b"example.test")
        self.assertEqual(headers[b":scheme"], b"https")
        self.assertEqual(headers[b":path"], b"/0")
        self.assertEqual(headers[b"x-a"], b"1")
        self.assertNotIn(b"connection", headers)
        self.assertNotIn(b"host", headers)
        for sid in (5, 1, 3):  # answered out of order
            self.peer.respond(sid, b"body %d" % sid)
        for owner, sid in zip(owners, (1, 3, 5), strict=True):
            [response] = owner.responses
            self.assertEqual(
                (response.status, response.reason, response.version), (200, b"OK", (2, 0))
            )
            self.assertEqual(response.length, len(b"body %d" % sid))
            sink = Sink()
            response.deliverBody(sink)
            self.assertEqual(b"".join(sink.data), b"body %d" % sid)
            assert sink.ended is not None
            self.assertTrue(sink.ended.check(ResponseDone))
        self.assertEqual(self.conn.completed, 3)
        self.assertTrue(self.conn.available)

    def test_a_paused_stream_stalls_alone(self) -> None:
        slow, fast = self.send(path=b"/slow"), self.send(path=b"/fast")
        self.peer.respond(1, end=False)
        self.peer.respond(3, end=False)
        sink_slow, sink_fast = Sink(), Sink()
        slow.responses[0].deliverBody(sink_slow)
        fast.responses[0].deliverBody(sink_fast)
        assert sink_slow.transport is not None
        sink_slow.transport.pauseProducing()  # type: ignore[attr-defined]
        # The server fills the slow stream's window: nothing is acknowledged.
        self.peer.h2.send_data(1, b"s" * 16384)
        self.peer.pump()
        self.assertEqual(self.peer.h2.local_flow_control_window(1), 0)
        self.assertEqual(sink_slow.data, [])
        # The other stream goes on, several windows' worth.
        for _ in range(4):
            window = self.peer.h2.local_flow_control_window(3)
            self.assertEqual(window, 16384)
            self.peer.h2.send_data(3, b"f" * window)
            self.peer.pump()
        self.assertEqual(sum(map(len, sink_fast.data)), 4 * 16384)
        # Resumed: the slow stream's data is handed over and its window reopens.
        sink_slow.transport.resumeProducing()  # type: ignore[attr-defined]
        self.peer.pump()
        self.assertEqual(b"".join(sink_slow.data), b"s" * 16384)
        self.assertEqual(self.peer.h2.local_flow_control_window(1), 16384)

    def test_unread_body_is_held_within_the_window(self) -> None:
        owner = self.send()
        self.peer.respond(1, end=False)
        self.peer.h2.send_data(1, b"a" * 16384)
        self.peer.pump()
        self.assertEqual(self.peer.h2.local_flow_control_window(1), 0)
        sink = Sink()
        owner.responses[0].deliverBody(sink)
        self.peer.pump()
        self.assertEqual(self.peer.h2.local_flow_control_window(1), 16384)
        self.peer.h2.send_data(1, b"b", end_stream=True)
        self.peer.pump()
        self.assertEqual(b"".join(sink.data), b"a" * 16384 + b"b")
        assert sink.ended is not None and sink.ended.check(ResponseDone)

    def test_server_stream_limit_queues_the_rest(self) -> None:
        conn, transport, _ = connect()
        peer = Peer(conn, transport, max_concurrent_streams=2)
        peer.pump()
        owners = [Owner() for _ in range(5)]
        for owner in owners:
            conn.request(owner, b"GET", b"/", HEAD, None)
        peer.pump()
        self.assertEqual(len(peer.requests()), 2)
        self.assertEqual(conn.active_streams, 5)
        peer.respond(1, b"one")
        self.assertEqual(len(peer.requests()), 3)
        for sid in (3, 5, 7, 9):
            peer.respond(sid, b"x")
        self.assertEqual(len(peer.requests()), 5)
        self.assertEqual([len(o.responses) for o in owners], [1] * 5)

    def test_request_body_follows_the_send_window(self) -> None:
        conn, transport, _ = connect()
        peer = Peer(conn, transport, initial_window_size=1000)
        peer.pump()
        owner = Owner()
        body = bytes(range(256)) * 40  # 10,240 bytes
        conn.request(owner, b"POST", b"/up", HEAD, body)
        peer.pump()
        self.assertEqual(len(peer.bodies[1]), 1000)
        self.assertEqual(dict(peer.requests()[0].headers)[b"content-length"], b"10240")
        for _ in range(20):
            peer.h2.acknowledge_received_data(1000, 1)
            peer.h2.increment_flow_control_window(1000, 1)
            peer.pump()
        self.assertEqual(peer.bodies[1], body)
        self.assertTrue(any(isinstance(e, h2.events.StreamEnded) for e in peer.events))

    def test_body_producer_is_paused_without_window(self) -> None:
        conn, transport, _ = connect()
        peer = Peer(conn, transport, initial_window_size=100)
        peer.pump()
        producer = Producer()
        conn.request(Owner(), b"PUT", b"/up", HEAD, producer)
        peer.pump()
        assert producer.consumer is not None
        producer.consumer.write(b"p" * 200_000)
        peer.pump()
        self.assertEqual(len(peer.bodies[1]), 100)
        self.assertTrue(producer.paused)
        self.assertEqual(dict(peer.requests()[0].headers)[b"content-length"], b"200000")
        peer.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
        peer.h2.increment_flow_control_window(1 << 20)
        peer.pump()
        self.assertEqual(len(peer.bodies[1]), 200_000)
        self.assertFalse(producer.paused)
        producer.done.callback(None)
        peer.pump()
        self.assertTrue(any(isinstance(e, h2.events.StreamEnded) for e in peer.events))

    def test_goaway_fails_unprocessed_streams_as_stale(self) -> None:
        owners = [self.send(path=b"/%d" % i) for i in range(3)]
        self.peer.goaway(1)
        self.assertFalse(self.conn.available)
        for owner in owners[1:]:
            [(failure, stale)] = owner.failures
            self.assertTrue(stale)
            self.assertIsInstance(failure.value, StaleConnection)
        # The stream the server took is still answered.
        self.peer.respond(1, b"done")
        [response] = owners[0].responses
        sink = Sink()
        response.deliverBody(sink)
        self.assertEqual(sink.data, [b"done"])
        self.assertTrue(self.transport.disconnecting)
        # New requests on a retired connection go elsewhere.
        late = Owner()
        self.conn.request(late, b"GET", b"/", HEAD, None)
        self.assertTrue(late.failures[0][1])

    def test_goaway_with_an_error_fails_everything(self) -> None:
        owner = self.send()
        self.peer.respond(1, end=False)
        sink = Sink()
        owner.responses[0].deliverBody(sink)
        self.peer.h2.close_connection(error_code=h2.errors.ErrorCodes.INTERNAL_ERROR,
                                      last_stream_id=1)  # fmt: skip
        self.peer.pump()
        assert sink.ended is not None
        self.assertIsInstance(sink.ended.value, StreamReset)

    def test_rst_stream_before_and_after_the_head(self) -> None:
        first, second, third = self.send(), self.send(), self.send()
        self.peer.h2.reset_stream(1, h2.errors.ErrorCodes.INTERNAL_ERROR)
        self.peer.pump()
        [(failure, stale)] = first.failures
        self.assertFalse(stale)
        self.assertIsInstance(failure.value, URLError)
        self.assertIn("INTERNAL_ERROR", str(failure.value))
        self.peer.h2.reset_stream(3, h2.errors.ErrorCodes.REFUSED_STREAM)
        self.peer.pump()
        self.assertTrue(second.failures[0][1])  # not processed: may be retried
        self.peer.respond(5, end=False)
        self.peer.h2.send_data(5, b"part")
        sink = Sink()
        third.responses[0].deliverBody(sink)
        self.peer.h2.reset_stream(5, h2.errors.ErrorCodes.CANCEL)
        self.peer.pump()
        self.assertEqual(sink.data, [b"part"])
        assert sink.ended is not None
        self.assertIsInstance(sink.ended.value, StreamReset)
        self.assertTrue(self.conn.available)  # the connection lives on

    def test_lost_mid_body_ends_the_body_with_the_reason(self) -> None:
        owner, waiting = self.send(), self.send()
        self.peer.respond(1, end=False)
        sink = Sink()
        owner.responses[0].deliverBody(sink)
        self.conn.connectionLost(Failure(ConnectionLost("gone")))
        assert sink.ended is not None
        self.assertFalse(sink.ended.check(ResponseDone))
        self.assertEqual(len(waiting.failures), 1)
        self.assertEqual(self.lost, [self.conn])

    def test_abandoned_body_resets_only_its_stream(self) -> None:
        first, second = self.send(), self.send()
        self.peer.respond(1, end=False)
        first.responses[0].abort()
        self.peer.pump()
        resets = [e for e in self.peer.events if isinstance(e, h2.events.StreamReset)]
        self.assertEqual([(e.stream_id, e.error_code) for e in resets],
                         [(1, h2.errors.ErrorCodes.CANCEL)])  # fmt: skip
        self.peer.respond(3, b"fine")
        self.assertEqual(len(second.responses), 1)

    def test_cancel_request_resets_its_stream(self) -> None:
        first, second = self.send(), self.send()
        self.conn.cancel_request(first)
        self.peer.pump()
        self.assertTrue(any(isinstance(e, h2.events.StreamReset) for e in self.peer.events))
        self.peer.respond(3, b"ok")
        self.assertEqual(len(second.responses), 1)

    def test_oversized_header_list_is_refused(self) -> None:
        conn, transport, _ = connect(max_header_bytes=1024)
        peer = Peer(conn, transport)
        peer.pump()
        owner = Owner()
        conn.request(owner, b"GET", b"/", HEAD, None)
        peer.pump()
        peer.respond(1, b"x", headers=((b"x-big", b"v" * 4000),))
        [(failure, _stale)] = owner.failures
        self.assertIn("exceed 1024 bytes", str(failure.value))
        self.assertTrue(conn.lost or transport.disconnecting or conn.closing)

    def test_endless_continuation_frames_are_cut_off(self) -> None:
        owner = self.send()
        head = HeadersFrame(1)
        head.data = b"\x88"  # :status 200, END_HEADERS not set
        self.conn.dataReceived(head.serialize())
        for _ in range(200):
            if self.conn.closing:
                break
            cont = ContinuationFrame(1)
            cont.data = b"\x40\x01a\x01b" * 1000
            self.conn.dataReceived(cont.serialize())
        self.assertTrue(self.conn.closing)
        self.assertEqual(len(owner.failures), 1)

    def test_full_send_buffer_stops_reading(self) -> None:
        # A server flooding PINGs but reading none of the answers fills our send
        # buffer; the transport then pauses us and we stop reading its frames.
        self.assertIs(self.transport.producer, self.conn)
        self.conn.pauseProducing()
        self.assertEqual(self.transport.producerState, "paused")
        self.conn.resumeProducing()
        self.assertEqual(self.transport.producerState, "producing")

    def test_ping_and_settings_answers_go_out(self) -> None:
        self.peer.h2.ping(b"12345678")
        self.peer.pump()
        self.assertTrue(any(isinstance(e, h2.events.PingAckReceived) for e in self.peer.events))


@implementer(IBodyProducer)
class Producer:
    length = 200_000

    def __init__(self) -> None:
        self.consumer: IConsumer | None = None
        self.paused = False
        self.done: Deferred[None] = Deferred()

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        self.consumer = consumer
        return self.done

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        pass


class TLSLikeTransport(StringTransport):
    """A StringTransport that says what ALPN settled."""

    negotiatedProtocol: bytes | None = None


class FakeEndpoint:
    """Connects at once; each connection negotiates ``protocol`` and gets an h2 server peer."""

    def __init__(self, protocol: bytes | None, **settings: int) -> None:
        self.protocol = protocol
        self.settings = settings
        self.connections: list[tuple[Any, TLSLikeTransport, Peer | None]] = []

    def connect(self, factory: Any) -> Deferred[Any]:
        proto = factory.buildProtocol(None)
        transport = TLSLikeTransport()
        transport.negotiatedProtocol = self.protocol
        proto.makeConnection(transport)
        self.connections.append((proto, transport, None))
        return succeed(proto)

    def handshake(self, index: int) -> Peer | None:
        proto, transport, _ = self.connections[index]
        proto.handshakeCompleted()
        peer = None
        if self.protocol == b"h2":
            peer = Peer(proto.inner, transport, **self.settings)
            peer.pump()
        self.connections[index] = (proto, transport, peer)
        return peer


class PoolTests(SynchronousTestCase):
    def request(self, pool: ConnectionPool, endpoint: FakeEndpoint, path: bytes = b"/",
                retryable: bool = True) -> list[Any]:  # fmt: skip
        got: list[Any] = []
        pool.request("k", endpoint, b"GET", path, HEAD, None, retryable=retryable,
                     http2=True).addBoth(got.append)  # fmt: skip
        return got

    def test_one_connection_for_all_when_h2(self) -> None:
        pool = ConnectionPool(max_per_host=4)
        endpoint = FakeEndpoint(b"h2")
        results = [self.request(pool, endpoint, b"/%d" % i) for i in range(10)]
        self.assertEqual(len(endpoint.connections), 1)  # the others wait for the probe
        peer = endpoint.handshake(0)
        assert peer is not None
        self.assertEqual(len(peer.requests()), 10)
        for request in peer.requests():
            peer.respond(request.stream_id, b"hi")
        self.assertTrue(all(isinstance(r[0], RawResponse) for r in results))
        self.assertEqual(pool.connection_count("k"), 1)
        # Later requests reuse it.
        later = self.request(pool, endpoint)
        peer.pump()
        self.assertEqual(len(endpoint.connections), 1)
        peer.respond(21, b"again")
        self.assertEqual(later[0].version, (2, 0))

    def test_a_finished_stream_leaves_no_garbage_cycles(self) -> None:
        """Once its body is delivered, a stream's objects are freed by refcounting alone.

        (The stream and its response, and the consumer whose transport is the
        stream's flow control, referred to each other: every request was left
        to the cyclic garbage collector.)
        """
        pool = ConnectionPool()
        endpoint = FakeEndpoint(b"h2")
        peer: Peer | None = None
        sids = iter(range(1, 100, 2))

        def one() -> None:
            nonlocal peer
            got = self.request(pool, endpoint)
            if peer is None:
                peer = endpoint.handshake(0)
            assert peer is not None
            peer.pump()
            peer.respond(next(sids), b"ok")
            sink = Sink()
            got[0].deliverBody(sink)
            self.assertEqual(b"".join(sink.data), b"ok")
            assert sink.ended is not None
            self.assertTrue(sink.ended.check(ResponseDone))

        one()  # the connection is made and kept
        with collector_finds_nothing(self):
            for _ in range(3):
                one()

    def test_a_body_producer_keeping_its_consumer_leaves_no_cycle(self) -> None:
        """A producer that keeps its consumer once done does not tie the stream in a cycle."""
        pool = ConnectionPool()
        endpoint = FakeEndpoint(b"h2")
        peer: Peer | None = None
        sids = iter(range(1, 100, 2))

        def one() -> None:
            nonlocal peer
            producer = Producer()
            producer.length = 2
            got: list[Any] = []
            pool.request("k", endpoint, b"PUT", b"/", HEAD, producer,
                         retryable=False, http2=True).addBoth(got.append)  # fmt: skip
            if peer is None:
                peer = endpoint.handshake(0)
            assert peer is not None and producer.consumer is not None
            producer.consumer.write(b"hi")
            producer.done.callback(None)
            peer.pump()
            sid = next(sids)
            self.assertEqual(peer.bodies[sid], b"hi")
            peer.respond(sid, b"ok")
            sink = Sink()
            got[0].deliverBody(sink)
            self.assertEqual(b"".join(sink.data), b"ok")

        one()  # the connection is made and kept
        with collector_finds_nothing(self):
            for _ in range(3):
                one()

    def test_goaway_retries_idempotent_requests_on_a_new_connection(self) -> None:
        pool = ConnectionPool()
        endpoint = FakeEndpoint(b"h2")
        first = self.request(pool, endpoint, b"/a")
        second = self.request(pool, endpoint, b"/b")
        once = self.request(pool, endpoint, b"/c", retryable=False)
        peer = endpoint.handshake(0)
        assert peer is not None
        peer.goaway(1)
        self.assertEqual(len(endpoint.connections), 2)
        self.assertIsInstance(once[0], Failure)  # not idempotent: fails cleanly
        peer2 = endpoint.handshake(1)
        assert peer2 is not None
        self.assertEqual([dict(r.headers)[b":path"] for r in peer2.requests()], [b"/b"])
        peer.respond(1, b"a")
        peer2.respond(1, b"b")
        self.assertEqual([first[0].status, second[0].status], [200, 200])

    def test_http11_when_the_server_does_not_pick_h2(self) -> None:
        pool = ConnectionPool(max_per_host=3)
        endpoint = FakeEndpoint(None)
        results = [self.request(pool, endpoint, b"/%d" % i) for i in range(5)]
        self.assertEqual(len(endpoint.connections), 1)
        endpoint.handshake(0)
        # Known to be HTTP/1.1: the waiting requests spread over more connections.
        self.assertEqual(len(endpoint.connections), 3)
        for index in (1, 2):
            endpoint.handshake(index)
        for proto, transport, _ in endpoint.connections:
            self.assertIsInstance(proto.inner, HTTP11Connection)
            self.assertTrue(transport.value().startswith(b"GET /"))
            proto.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        for proto, _, _ in endpoint.connections[:2]:
            proto.dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        self.assertEqual([r[0].version for r in results], [(1, 1)] * 5)

    def test_handshake_failure_fails_the_request_and_frees_the_slot(self) -> None:
        pool = ConnectionPool()
        endpoint = FakeEndpoint(b"h2")
        got = self.request(pool, endpoint)
        waiting = self.request(pool, endpoint)
        proto, _, _ = endpoint.connections[0]
        proto.connectionLost(Failure(ConnectionLost("bad certificate")))
        self.assertIsInstance(got[0].value, URLError)
        self.assertEqual(len(endpoint.connections), 2)  # the next one probes
        self.assertEqual(waiting, [])
        endpoint.handshake(1)
        self.assertEqual(pool.connection_count("k"), 1)

    def test_close_closes_h2_connections(self) -> None:
        pool = ConnectionPool()
        endpoint = FakeEndpoint(b"h2")
        self.request(pool, endpoint)
        peer = endpoint.handshake(0)
        assert peer is not None
        peer.respond(1, b"x")
        closed: list[Any] = []
        pool.close().addBoth(closed.append)
        proto, transport, _ = endpoint.connections[0]
        self.assertTrue(transport.disconnecting)
        proto.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(closed, [None])


class ALPNCreatorTests(SynchronousTestCase):
    def test_offers_h2_and_http11(self) -> None:
        seen: list[Any] = []

        class Conn:
            def set_alpn_protos(self, protos: list[bytes]) -> None:
                seen.append(protos)

        class Inner:
            def clientConnectionForTLS(self, tls: Any) -> Conn:
                return Conn()

        ALPNCreator(Inner()).clientConnectionForTLS(None)
        self.assertEqual(seen, [[b"h2", b"http/1.1"]])

    def test_negotiator_fails_ready_when_lost_first(self) -> None:
        negotiator = Negotiator(lambda p: None)
        negotiator.makeConnection(StringTransport())
        failures: list[Failure] = []
        negotiator.ready.addErrback(failures.append)
        negotiator.connectionLost(Failure(ConnectionLost("x")))
        self.assertIsInstance(failures[0].value, URLError)

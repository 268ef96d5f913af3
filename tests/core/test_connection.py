"""core.connection: the sans-I/O connection base, its test driver and the thin Protocol."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.connection import (
    Close,
    ConnectionBase,
    ConnectionDriver,
    ConnectionProtocol,
    Framing,
    StartTLS,
    Wait,
)


class Toy(ConnectionBase):
    """A toy protocol: ``RAW n`` takes n counted bytes, ``BLOCK`` raw bytes up to ``END``,
    ``WAIT`` holds input on a Deferred, ``TLS`` starts TLS, ``BYE`` closes."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: Deferred[str] | None = None
        self.block = b""
        self.send(b"hello\r\n")

    def line_received(self, line: bytes) -> None:
        verb, _, arg = line.partition(b" ")
        if verb == b"RAW":
            self.send(b"go\r\n")
            self.expect_counted(int(arg))
        elif verb == b"BLOCK":
            self.expect_raw()
        elif verb == b"WAIT":
            self.pending = Deferred()
            self.wait(self.pending, lambda r: self.send(f"waited {r}\r\n".encode()))
        elif verb == b"NOW":
            self.wait(succeed("now"), lambda r: self.send(f"at once {r}\r\n".encode()))
        elif verb == b"TLS":
            self.send(b"tls\r\n")
            self.start_tls("ctx")
        elif verb == b"BYE":
            self.send(b"bye\r\n")
            self.close()
        else:
            self.send(b"line " + line + b"\r\n")

    def raw_received(self, data: bytes) -> None:
        if self.framing is Framing.COUNTED:
            self.send(b"raw " + data + b"\r\n")
            return
        self.block += data
        end = self.block.find(b"END")
        if end >= 0:
            self.block, rest = self.block[:end], self.block[end + 3 :]
            self.send(b"block " + self.block + b"\r\n")
            self.end_raw(rest)

    def raw_complete(self) -> None:
        self.send(b"complete\r\n")


class BaseAndDriverTests(SynchronousTestCase):
    def test_output_and_framing(self) -> None:
        d = ConnectionDriver(Toy())
        self.assertEqual(d.take_output(), b"hello\r\n")
        self.assertEqual(d.feed(b"a\r\nRAW 5\r\nab"), b"line a\r\ngo\r\nraw ab\r\n")
        self.assertEqual((d.connection.framing, d.connection.raw_remaining), (Framing.COUNTED, 3))
        self.assertEqual(d.feed(b"cdeb\r\n"), b"raw cde\r\ncomplete\r\nline b\r\n")

    def test_raw_until_the_decoder_says_done(self) -> None:
        d = ConnectionDriver(Toy())
        d.take_output()
        self.assertEqual(d.feed(b"BLOCK\r\nxx\r\nyE"), b"")
        self.assertEqual(d.feed(b"NDc\r\n"), b"block xx\r\ny\r\nline c\r\n")

    def test_counted_zero_completes_at_once(self) -> None:
        d = ConnectionDriver(Toy())
        d.take_output()
        self.assertEqual(d.feed(b"RAW 0\r\nx\r\n"), b"go\r\ncomplete\r\nline x\r\n")

    def test_wait_holds_input_and_fired_deferreds_do_not(self) -> None:
        toy = Toy()
        d = ConnectionDriver(toy)
        d.take_output()
        self.assertEqual(d.feed(b"NOW\r\nWAIT\r\nafter\r\n"), b"at once now\r\n")
        assert toy.pending is not None
        toy.pending.callback("x")
        self.assertEqual(d.take_output(), b"waited x\r\nline after\r\n")

    def test_tls_and_close_actions(self) -> None:
        d = ConnectionDriver(Toy())
        d.take_output()
        self.assertEqual(d.feed(b"TLS\r\ninjected\r\n"), b"tls\r\n")
        self.assertEqual(d.actions, [StartTLS("ctx")])
        self.assertEqual(d.feed(b"BYE\r\nmore\r\n"), b"bye\r\n")
        self.assertEqual(d.actions[-1], Close())
        self.assertTrue(d.closed)

    def test_nothing_is_sent_after_the_connection_is_lost(self) -> None:
        toy = Toy()
        toy.line_received(b"WAIT")
        self.assertIsInstance(toy.take_actions()[0], Wait)
        toy.connection_lost()
        assert toy.pending is not None
        toy.pending.callback("late")
        self.assertEqual(toy.data_to_send(), b"")

    def test_handler_failure_closes(self) -> None:
        toy = Toy()
        toy.data_to_send()

        def boom(result: object) -> None:
            raise RuntimeError("boom")

        toy.wait(succeed(None), boom)
        self.assertEqual(toy.take_actions(), [Close()])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class ToyProtocol(ConnectionProtocol):
    def make_connection(self) -> Toy:
        return Toy()


class TLSTransport(StringTransport):
    def __init__(self) -> None:
        super().__init__()
        self.tls: list[object] = []

    def startTLS(self, context: object, normal: bool = True) -> None:
        self.tls.append(context)


class AdapterTests(SynchronousTestCase):
    def _connect(self) -> tuple[ToyProtocol, TLSTransport]:
        proto = ToyProtocol()
        proto.clock = MemoryReactorClock()
        proto.tls_handshake_timeout = None
        transport = TLSTransport()
        proto.makeConnection(transport)
        return proto, transport

    def test_the_protocol_follows_the_objects_framing(self) -> None:
        proto, transport = self._connect()
        proto.dataReceived(b"RAW 3\r\nabcBLOCK\r\nzzEN")
        proto.dataReceived(b"Dtail\r\n")
        self.assertEqual(
            transport.value(),
            b"hello\r\ngo\r\nraw abc\r\ncomplete\r\nblock zz\r\nline tail\r\n",
        )

    def test_wait_pauses_input_until_the_deferred_fires(self) -> None:
        proto, transport = self._connect()
        proto.dataReceived(b"WAIT\r\nnext\r\n")
        self.assertTrue(proto.input_paused)
        self.assertEqual(transport.value(), b"hello\r\n")
        assert isinstance(proto.connection, Toy) and proto.connection.pending is not None
        proto.connection.pending.callback("ok")
        self.assertFalse(proto.input_paused)
        self.assertEqual(transport.value(), b"hello\r\nwaited ok\r\nline next\r\n")

    def test_start_tls_and_close(self) -> None:
        proto, transport = self._connect()
        proto.dataReceived(b"TLS\r\nplaintext\r\n")
        self.assertEqual(transport.tls, ["ctx"])
        self.assertEqual(transport.value(), b"hello\r\ntls\r\n")
        self.assertTrue(proto.is_secure)
        proto.dataReceived(b"BYE\r\n")
        self.assertTrue(transport.disconnecting)

    def test_command_rate_paces_lines(self) -> None:
        proto = ToyProtocol()
        proto.command_rate = 1.0
        proto.command_burst = 1
        clock = MemoryReactorClock()
        proto.clock = clock
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(b"a\r\nb\r\n")
        self.assertEqual(transport.value(), b"hello\r\nline a\r\n")
        clock.advance(1)
        self.assertEqual(transport.value(), b"hello\r\nline a\r\nline b\r\n")

    def test_connection_lost_reaches_the_object(self) -> None:
        proto, _ = self._connect()
        proto.connectionLost(None)
        self.assertTrue(proto.connection.lost)

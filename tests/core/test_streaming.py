"""Tests for netproto_twisted.core.streaming: StreamProducer."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import io
import re
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from netproto_twisted.core.dotstuff import EolNormalizer, dot_stuff
from netproto_twisted.core.streaming import (
    CHUNK_SIZE,
    StreamProducer,
    StreamStopped,
    block_reader,
    reads_inline,
    thread_block_runner,
)
from tests.smtp.test_client_8bit import ThreadedClock

_EOL = re.compile(rb"\r\n|\r|\n")


@implementer(IConsumer)
class Consumer:
    """Collects writes; pauses the producer after each write when ``pause_every`` is set."""

    def __init__(self, pause_every: bool = False) -> None:
        self.data = bytearray()
        self.writes: list[bytes] = []
        self.producer: Any = None
        self.registered: list[tuple[Any, bool]] = []
        self.unregistered = 0
        self.pause_every = pause_every

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.registered.append((producer, streaming))
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.unregistered += 1
        self.producer = None

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.data += data
        if self.pause_every and self.producer is not None:
            self.producer.pauseProducing()


class FakeRunner:
    """Runs blocking work only when the test says so (a thread pool under control)."""

    def __init__(self) -> None:
        self.pending: list[tuple[Deferred[Any], Callable[[], Any]]] = []
        self.calls = 0

    def __call__(self, f: Callable[[], Any]) -> Deferred[Any]:
        self.calls += 1
        d: Deferred[Any] = Deferred()
        self.pending.append((d, f))
        return d

    def run_one(self) -> bool:
        if not self.pending:
            return False
        d, f = self.pending.pop(0)
        try:
            result = f()
        except BaseException as e:
            d.errback(e)
        else:
            d.callback(result)
        return True

    def run_all(self) -> int:
        ran = 0
        while self.run_one():
            ran += 1
        return ran


class File(io.RawIOBase):
    """A readable, non-seekable binary file recording its reads (not read inline)."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        self._data = io.BytesIO(data)
        self.sizes: list[int] = []
        self._fail_after = fail_after

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._fail_after is not None and len(self.sizes) >= self._fail_after:
            raise OSError("disk on fire")
        self.sizes.append(size)
        return self._data.read(size)


class Generated(io.RawIOBase):
    """``total`` bytes of text made on demand: a large file that takes no memory."""

    LINE = b".a line of a large message, with a leading dot\n"

    def __init__(self, total: int) -> None:
        self.left = total
        self.largest_read = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.largest_read = max(self.largest_read, size)
        self.left -= size
        line = self.LINE
        return (line * (size // len(line) + 1))[:size]


def cut_sizes() -> st.SearchStrategy[bytes]:
    return st.lists(
        st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b".", b"..", b"\n.", b"\x80"]), max_size=40
    ).map(b"".join)


class BasicTests(SynchronousTestCase):
    def test_provides_ipushproducer(self) -> None:
        self.assertTrue(verifyObject(IPushProducer, StreamProducer(b"")))

    def test_bytes_as_they_are(self) -> None:
        consumer = Consumer()
        data = b"x" * (2 * CHUNK_SIZE + 5)
        producer = StreamProducer(data)
        self.assertEqual(self.successResultOf(producer.start(consumer)), len(data))
        self.assertEqual(bytes(consumer.data), data)
        self.assertEqual([len(w) for w in consumer.writes], [CHUNK_SIZE, CHUNK_SIZE, 5])
        self.assertEqual(consumer.registered, [(producer, True)])
        self.assertEqual(consumer.unregistered, 1)
        self.assertEqual(producer.bytes_written, len(data))

    def test_empty_source_dot_stuffed_is_the_dot_line(self) -> None:
        consumer = Consumer()
        self.successResultOf(StreamProducer(b"", dot_stuff=True).start(consumer))
        self.assertEqual(bytes(consumer.data), b".\r\n")

    def test_dot_stuff_and_trailer(self) -> None:
        consumer = Consumer()
        producer = StreamProducer(b".top\n.\nend", dot_stuff=True)
        self.successResultOf(producer.start(consumer))
        self.assertEqual(bytes(consumer.data), b"..top\r\n..\r\nend\r\n.\r\n")

    def test_trailer_left_to_the_caller(self) -> None:
        consumer = Consumer()
        producer = StreamProducer(b"body", dot_stuff=True, write_trailer=False)
        self.successResultOf(producer.start(consumer))
        self.assertEqual(bytes(consumer.data), b"body")
        self.assertEqual(producer.trailer(), b"\r\n.\r\n")
        self.assertEqual(producer.trailer(), b"\r\n.\r\n")  # the same, asked twice

    def test_crlf_only(self) -> None:
        consumer = Consumer()
        self.successResultOf(StreamProducer(b"a\nb\r\n.c\rd", crlf=True).start(consumer))
        self.assertEqual(bytes(consumer.data), b"a\r\nb\r\n.c\r\nd")

    def test_own_encoder(self) -> None:
        class Upper:
            def encode(self, chunk: bytes) -> bytes:
                return chunk.upper()

            def finish(self) -> bytes:
                return b"<end>"

        consumer = Consumer()
        self.successResultOf(StreamProducer(b"abc", encoder=Upper()).start(consumer))
        self.assertEqual(bytes(consumer.data), b"ABC<end>")

    def test_arguments_checked(self) -> None:
        with self.assertRaises(TypeError):
            StreamProducer(42)  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            StreamProducer(b"", dot_stuff=True, encoder=EolNormalizer())
        with self.assertRaises(ValueError):
            StreamProducer(b"", chunk_size=0)
        producer = StreamProducer(b"x")
        self.successResultOf(producer.start(Consumer()))
        with self.assertRaises(RuntimeError):
            producer.start(Consumer())

    def test_text_file_refused(self) -> None:
        consumer = Consumer()
        failure = self.failureResultOf(StreamProducer(io.StringIO("text")).start(consumer))
        failure.trap(TypeError)
        self.assertEqual(consumer.data, b"")

    def test_not_registered_when_told(self) -> None:
        consumer = Consumer()
        self.successResultOf(StreamProducer(b"x", register=False).start(consumer))
        self.assertEqual((consumer.registered, consumer.unregistered), ([], 0))

    def test_with_a_string_transport(self) -> None:
        """A real Twisted consumer: the transport takes the producer and the bytes."""
        transport = StringTransport()
        producer = StreamProducer(b"line\n" * 3, crlf=True)
        self.successResultOf(producer.start(transport))
        self.assertEqual(transport.value(), b"line\r\n" * 3)
        self.assertIsNone(transport.producer)

    def test_helpers(self) -> None:
        self.assertTrue(reads_inline(b"x"))
        self.assertTrue(reads_inline(io.BytesIO()))
        self.assertFalse(reads_inline(File(b"")))
        read = block_reader(memoryview(b"abcde"), 2)
        self.assertEqual([read(), read(), read(), read()], [b"ab", b"cd", b"e", b""])
        with self.assertRaises(TypeError):
            block_reader(3)


class BoundaryTests(SynchronousTestCase):
    """Encoding is the same however the source is cut into blocks."""

    @settings(max_examples=300, deadline=None)
    @given(cut_sizes(), st.integers(1, 9), st.booleans())
    def test_dot_stuffed_output_is_the_one_shot_encoding(
        self, data: bytes, size: int, as_file: bool
    ) -> None:
        consumer = Consumer()
        runner = FakeRunner()
        source: Any = File(data) if as_file else data
        d = StreamProducer(source, dot_stuff=True, chunk_size=size, runner=runner).start(consumer)
        runner.run_all()
        self.assertEqual(self.successResultOf(d), len(data))
        self.assertEqual(bytes(consumer.data), dot_stuff(data))

    @settings(max_examples=300, deadline=None)
    @given(cut_sizes(), st.integers(1, 9))
    def test_crlf_output_is_the_one_shot_encoding(self, data: bytes, size: int) -> None:
        consumer = Consumer()
        self.successResultOf(StreamProducer(data, crlf=True, chunk_size=size).start(consumer))
        self.assertEqual(bytes(consumer.data), _EOL.sub(b"\r\n", data))

    def test_lone_cr_at_a_boundary(self) -> None:
        """A CR ending one block and no LF starting the next is a line end of its own."""
        for options, expected in (
            ({"crlf": True}, b"ab\r\n.c\r\n\r\nd"),
            ({"dot_stuff": True}, b"ab\r\n..c\r\n\r\nd\r\n.\r\n"),
        ):
            consumer = Consumer()
            self.successResultOf(
                StreamProducer(b"ab\r.c\r\rd", chunk_size=3, **options).start(consumer)
            )
            self.assertEqual(bytes(consumer.data), expected, options)

    def test_crlf_cut_between_cr_and_lf(self) -> None:
        consumer = Consumer()
        self.successResultOf(
            StreamProducer(b"ab\r\n.c", dot_stuff=True, chunk_size=3).start(consumer)
        )
        self.assertEqual(consumer.writes, [b"ab\r\n", b"..c", b"\r\n.\r\n"])


class BackpressureTests(SynchronousTestCase):
    def test_paused_producer_reads_nothing_more(self) -> None:
        consumer = Consumer(pause_every=True)
        f = File(b"a" * 10)
        runner = FakeRunner()
        producer = StreamProducer(f, chunk_size=4, runner=runner)
        d = producer.start(consumer)
        self.assertTrue(runner.run_one())
        self.assertEqual(consumer.writes, [b"aaaa"])
        self.assertTrue(producer.is_paused)
        self.assertEqual(runner.pending, [])  # no read while paused
        self.assertEqual(f.sizes, [4])
        producer.resumeProducing()
        self.assertTrue(runner.run_one())
        self.assertEqual(consumer.writes, [b"aaaa", b"aaaa"])
        self.assertEqual(runner.pending, [])
        producer.resumeProducing()
        runner.run_one()
        producer.resumeProducing()
        runner.run_one()  # the end of the file
        self.assertEqual(self.successResultOf(d), 10)
        self.assertEqual(f.sizes, [4, 4, 4, 4])

    def test_pause_during_a_read_holds_the_next(self) -> None:
        consumer = Consumer()
        runner = FakeRunner()
        producer = StreamProducer(File(b"abcdef"), chunk_size=3, runner=runner)
        d = producer.start(consumer)
        producer.pauseProducing()
        runner.run_one()  # the read in flight completes and is written
        self.assertEqual(consumer.writes, [b"abc"])
        self.assertEqual(runner.pending, [])
        producer.resumeProducing()
        runner.run_all()
        self.assertEqual(self.successResultOf(d), 6)
        self.assertEqual(bytes(consumer.data), b"abcdef")

    def test_consumer_write_deferred_is_waited_for(self) -> None:
        gates: list[Deferred[None]] = []

        @implementer(IConsumer)
        class Slow(Consumer):
            def write(self, data: bytes) -> Deferred[None]:  # type: ignore[override]
                super().write(data)
                gate: Deferred[None] = Deferred()
                gates.append(gate)
                return gate

        consumer = Slow()
        d = StreamProducer(b"abcdef", chunk_size=2).start(consumer)
        self.assertEqual(consumer.writes, [b"ab"])
        gates[0].callback(None)
        self.assertEqual(consumer.writes, [b"ab", b"cd"])
        gates[1].errback(ValueError("refused"))
        self.failureResultOf(d, ValueError)
        self.assertEqual(consumer.writes, [b"ab", b"cd"])
        self.assertEqual(consumer.unregistered, 1)

    def test_memory_stays_bounded_for_a_large_file(self) -> None:
        """16 MiB through a consumer that pauses at 64 KiB buffered: memory stays near a block."""
        total = 16 * 1024 * 1024
        source = Generated(total)
        buffered = 0
        most_buffered = 0

        @implementer(IConsumer)
        class Transport(Consumer):
            def write(self, data: bytes) -> None:
                nonlocal buffered, most_buffered
                buffered += len(data)
                most_buffered = max(most_buffered, buffered)
                if buffered >= CHUNK_SIZE:
                    self.producer.pauseProducing()

        consumer = Transport()
        runner = FakeRunner()
        producer = StreamProducer(source, dot_stuff=True, runner=runner)
        tracemalloc.start()
        try:
            d = producer.start(consumer)
            for _ in range(total // CHUNK_SIZE + 10):  # bounded: one read per round
                if not runner.run_one():
                    break
                buffered = 0  # the kernel took it all
                producer.resumeProducing()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        self.assertEqual(self.successResultOf(d), total)
        self.assertEqual(source.left, 0)
        self.assertEqual(source.largest_read, CHUNK_SIZE)
        self.assertLessEqual(most_buffered, 2 * CHUNK_SIZE + 5)
        self.assertLess(peak, 1024 * 1024)  # a sixteenth of the file
        # Every line starts with a dot, so every line was stuffed.
        self.assertGreater(producer.bytes_written, total + total // len(Generated.LINE))


class StopAndErrorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(self.mktemp())
        self.dir.mkdir()

    def test_stop_while_paused(self) -> None:
        consumer = Consumer(pause_every=True)
        f = File(b"a" * 10)
        producer = StreamProducer(f, chunk_size=4, runner=FakeRunner(), close=True)
        runner = producer._run
        d = producer.start(consumer)
        runner.run_one()  # type: ignore[attr-defined]
        producer.stopProducing()
        self.failureResultOf(d, StreamStopped)
        self.assertTrue(f.closed)
        self.assertEqual(consumer.writes, [b"aaaa"])
        self.assertEqual(consumer.unregistered, 0)  # the consumer dropped it

    def test_stop_during_a_read(self) -> None:
        consumer = Consumer()
        runner = FakeRunner()
        f = File(b"abcdef")
        producer = StreamProducer(f, chunk_size=3, runner=runner)
        d = producer.start(consumer)
        producer.stopProducing()
        self.assertNoResult(d)  # the file is not closed under a running read
        runner.run_one()
        self.failureResultOf(d, StreamStopped)
        self.assertEqual(consumer.writes, [])
        self.assertFalse(f.closed)  # given without close=True: the caller's to close

    def test_read_error(self) -> None:
        consumer = Consumer()
        runner = FakeRunner()
        f = File(b"abcdef", fail_after=1)
        d = StreamProducer(f, chunk_size=3, runner=runner, close=True).start(consumer)
        runner.run_all()
        self.assertEqual(str(self.failureResultOf(d, OSError).value), "disk on fire")
        self.assertEqual(consumer.writes, [b"abc"])
        self.assertTrue(f.closed)
        self.assertEqual(consumer.unregistered, 1)

    def test_path_opened_in_the_runner_and_closed(self) -> None:
        path = self.dir / "message"
        path.write_bytes(b"one\n.two\n")
        opened: list[Any] = []
        runner = FakeRunner()

        def spying(f: Callable[[], Any]) -> Deferred[Any]:
            def run() -> Any:
                result = f()
                if hasattr(result, "close"):
                    opened.append(result)
                return result

            return runner(run)

        consumer = Consumer()
        d = StreamProducer(path, dot_stuff=True, runner=spying).start(consumer)
        self.assertEqual(consumer.registered, [])  # registered once the file is open
        self.assertEqual(runner.run_all(), 3)  # open, the data, the end of the file
        self.assertEqual(self.successResultOf(d), 9)
        self.assertEqual(bytes(consumer.data), b"one\r\n..two\r\n.\r\n")
        self.assertTrue(opened[0].closed)

    def test_str_path(self) -> None:
        path = self.dir / "m"
        path.write_bytes(b"x\n")
        consumer = Consumer()
        self.successResultOf(StreamProducer(str(path), crlf=True).start(consumer))
        self.assertEqual(bytes(consumer.data), b"x\r\n")

    def test_missing_path_fails_before_registering(self) -> None:
        consumer = Consumer()
        d = StreamProducer(self.dir / "absent").start(consumer)
        self.failureResultOf(d, FileNotFoundError)
        self.assertEqual(consumer.registered, [])

    def test_path_closed_when_stopped(self) -> None:
        path = self.dir / "big"
        path.write_bytes(b"z" * 100)
        handles: list[Any] = []
        runner = FakeRunner()

        def spying(f: Callable[[], Any]) -> Deferred[Any]:
            return runner(lambda: _keep(f(), handles))

        consumer = Consumer(pause_every=True)
        producer = StreamProducer(path, chunk_size=10, runner=spying)
        d = producer.start(consumer)
        runner.run_one()  # open
        runner.run_one()  # first block
        producer.stopProducing()
        self.failureResultOf(d, StreamStopped)
        self.assertTrue(handles[0].closed)


def _keep(result: Any, into: list[Any]) -> Any:
    if hasattr(result, "close"):
        into.append(result)
    return result


class ThreadPoolTests(SynchronousTestCase):
    """Files are read through the reactor's thread pool; bytes and BytesIO inline."""

    def test_file_reads_go_to_the_pool(self) -> None:
        clock = ThreadedClock()
        consumer = Consumer()
        d = StreamProducer(File(b"abc"), clock).start(consumer)
        self.assertEqual(consumer.writes, [])
        self.assertEqual(len(clock.pool.pending), 1)
        self.assertEqual(clock.pool.run_all(), 2)  # the data, then the end of the file
        self.assertEqual(consumer.writes, [b"abc"])
        self.assertEqual(self.successResultOf(d), 3)

    def test_bytes_and_bytesio_stay_inline(self) -> None:
        clock = ThreadedClock()
        for source in (b"abc", bytearray(b"abc"), io.BytesIO(b"abc")):
            consumer = Consumer()
            self.assertEqual(
                self.successResultOf(StreamProducer(source, clock).start(consumer)), 3
            )
            self.assertEqual(clock.pool.pending, [])

    def test_without_a_thread_pool_work_runs_inline(self) -> None:
        consumer = Consumer()
        self.successResultOf(StreamProducer(File(b"abc"), object()).start(consumer))
        self.assertEqual(bytes(consumer.data), b"abc")
        run = thread_block_runner(None)
        self.assertEqual(self.successResultOf(run(lambda: 5)), 5)
        self.failureResultOf(run(lambda: 1 // 0), ZeroDivisionError)

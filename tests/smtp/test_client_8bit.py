"""The client's BODY choice: 8-bit bytes, files scanned in a thread before MAIL, producers."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from netproto_twisted.core.errors import LocalProtocolError
from netproto_twisted.smtp.client import SMTPClient, connect_smtp
from netproto_twisted.smtp.client.body import CHUNK_SIZE, file_has_8bit
from netproto_twisted.smtp.client.transaction import Transaction
from netproto_twisted.smtp.errors import SMTPNotSupportedError, SMTPSenderRefused
from tests.smtp.test_client import _ListProducer
from tests.smtp.test_client_helpers import DEFAULT_EXTENSIONS, IOEndpoint, ScriptedServer

EIGHT_BIT = "Subject: caf\u00e9\r\n\r\nna\u00efve\r\n".encode()
SEVEN_BIT = b"Subject: plain\r\n\r\nascii only\r\n"
NO_8BITMIME = tuple(x for x in DEFAULT_EXTENSIONS if x != "8BITMIME")


class FakePool:
    """A thread pool whose work runs only when the test says so."""

    def __init__(self) -> None:
        self.pending: list[tuple[Callable[[bool, Any], None], Callable[[], Any]]] = []

    def callInThreadWithCallback(
        self, on_result: Callable[[bool, Any], None], f: Callable[..., Any], *a: Any, **kw: Any
    ) -> None:
        self.pending.append((on_result, lambda: f(*a, **kw)))

    def run_all(self) -> int:
        """Run the queued work; return how many jobs ran."""
        ran = 0
        while self.pending:
            on_result, work = self.pending.pop(0)
            try:
                result = work()
            except BaseException:
                on_result(False, Failure())
            else:
                on_result(True, result)
            ran += 1
        return ran


@implementer(IReactorThreads)
class ThreadedClock(MemoryReactorClock):
    """A memory reactor with a thread pool under the test's control."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = FakePool()

    def getThreadPool(self) -> Any:
        return self.pool

    def callFromThread(
        self, callable: Callable[..., Any], *args: object, **kwargs: object
    ) -> None:
        callable(*args, **kwargs)

    def callInThread(self, callable: Callable[..., Any], *args: object, **kwargs: object) -> None:
        self.pool.callInThreadWithCallback(lambda ok, result: None, callable, *args, **kwargs)

    def suggestThreadPoolSize(self, size: int) -> None:
        pass


def _Producer(*chunks: bytes) -> _ListProducer:
    """A body producer that writes its chunks at once (content unknown to the client)."""
    return _ListProducer(list(chunks))


class _Pipe(io.RawIOBase):
    """A readable, non-seekable binary stream (like a pipe)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


class _Base(SynchronousTestCase):
    def connect(
        self, extensions: tuple[str, ...] = DEFAULT_EXTENSIONS, threaded: bool = False
    ) -> tuple[SMTPClient, ScriptedServer]:
        server = ScriptedServer(extensions=extensions)
        self.clock = ThreadedClock() if threaded else MemoryReactorClock()
        self.endpoint = IOEndpoint(server, self.clock)
        d = connect_smtp(self.clock, "127.0.0.1", endpoint=self.endpoint, tls="none")
        self.endpoint.flush()
        return self.successResultOf(d), server

    def send(self, client: SMTPClient, message: Any, **kwargs: Any) -> Deferred[Any]:
        d = client.send_message("a@example.org", ["b@example.org"], message, **kwargs)
        self.endpoint.flush()
        return d

    def mail_line(self, server: ScriptedServer) -> str:
        [line] = [c for c in server.commands if c.startswith("MAIL ")]
        return line

    def mail_params(self, server: ScriptedServer) -> set[str]:
        """The MAIL parameters sent, in any order."""
        return set(self.mail_line(server).split()[2:])


class FileScanTests(_Base):
    """A file's content is scanned for 8-bit bytes before MAIL."""

    def test_8bit_file_gets_body_8bitmime(self) -> None:
        client, server = self.connect()
        self.successResultOf(self.send(client, io.BytesIO(EIGHT_BIT)))
        self.assertEqual(self.mail_params(server), {"BODY=8BITMIME", f"SIZE={len(EIGHT_BIT)}"})
        self.assertEqual(server.messages, [EIGHT_BIT])

    def test_7bit_file_gets_no_body_parameter(self) -> None:
        client, server = self.connect()
        self.successResultOf(self.send(client, io.BytesIO(SEVEN_BIT)))
        self.assertEqual(
            self.mail_line(server), f"MAIL FROM:<a@example.org> SIZE={len(SEVEN_BIT)}"
        )
        self.assertEqual(server.messages, [SEVEN_BIT])

    def test_scan_starts_at_the_current_position_and_rewinds(self) -> None:
        """Bytes before the file's position are not sent, so they do not count."""
        client, server = self.connect()
        f = io.BytesIO(b"\xe9\xe9\xe9" + SEVEN_BIT)
        f.seek(3)
        self.successResultOf(self.send(client, f))
        self.assertNotIn("BODY", self.mail_line(server))
        self.assertEqual(server.messages, [SEVEN_BIT])

    def test_late_8bit_byte_found_in_bounded_reads(self) -> None:
        """A byte above 127 after many blocks is found; no read asks for more than a block."""
        data = b"x" * (5 * CHUNK_SIZE + 17) + b"\x80\r\n"
        sizes: list[int] = []

        class Recording(io.BytesIO):
            def read(self, size: int | None = -1) -> bytes:
                sizes.append(-1 if size is None else size)
                return super().read(size)

        f = Recording(data)
        self.assertTrue(file_has_8bit(f))
        self.assertEqual(f.tell(), 0)
        self.assertEqual(sizes, [CHUNK_SIZE] * 6)
        self.assertFalse(file_has_8bit(io.BytesIO(data[:-3])))
        self.assertFalse(file_has_8bit(io.BytesIO(b"")))

    def test_8bit_file_refused_without_8bitmime(self) -> None:
        """No 8BITMIME: the call fails with 554 5.6.3 and nothing of the transaction is sent."""
        client, server = self.connect(NO_8BITMIME)
        error = self.failureResultOf(
            self.send(client, io.BytesIO(EIGHT_BIT)), SMTPNotSupportedError
        )
        self.assertEqual(error.value.code, 554)
        self.assertTrue(error.value.text.startswith("5.6.3 "), error.value.text)
        self.assertIn("8BITMIME", error.value.text)
        self.assertEqual(server.commands, ["EHLO localhost"])
        self.successResultOf(self.send(client, io.BytesIO(SEVEN_BIT)))
        self.assertEqual(server.messages, [SEVEN_BIT])

    def test_scan_runs_in_the_thread_pool_before_mail(self) -> None:
        client, server = self.connect(threaded=True)
        d = self.send(client, io.BytesIO(EIGHT_BIT))
        self.assertNoResult(d)
        self.assertEqual(server.commands, ["EHLO localhost"])  # MAIL waits for the scan
        self.assertEqual(self.clock.pool.run_all(), 1)  # type: ignore[attr-defined]
        self.endpoint.flush()
        self.successResultOf(d)
        self.assertIn("BODY=8BITMIME", self.mail_line(server))

    def test_declared_body_skips_the_scan(self) -> None:
        client, server = self.connect(threaded=True)
        d = self.send(client, io.BytesIO(EIGHT_BIT), mail_params={"BODY": "8bitmime"})
        self.assertEqual(self.clock.pool.pending, [])  # type: ignore[attr-defined]
        self.successResultOf(d)
        self.assertIn("BODY=8BITMIME", self.mail_line(server))

    def test_body_argument_declares_like_mail_params(self) -> None:
        client, server = self.connect(threaded=True)
        d = self.send(client, io.BytesIO(SEVEN_BIT), body="7BIT")
        self.assertEqual(self.clock.pool.pending, [])  # type: ignore[attr-defined]
        self.successResultOf(d)
        self.assertIn("BODY=7BIT", self.mail_line(server))

    def test_unseekable_file_is_unknown_content(self) -> None:
        """A stream that cannot be rewound is not scanned: a producer's rule applies."""
        client, server = self.connect()
        self.successResultOf(self.send(client, io.BufferedReader(_Pipe(SEVEN_BIT))))
        self.assertEqual(self.mail_line(server), "MAIL FROM:<a@example.org> BODY=8BITMIME")
        self.assertEqual(server.messages, [SEVEN_BIT])

    def test_with_bdat(self) -> None:
        client, server = self.connect((*DEFAULT_EXTENSIONS, "CHUNKING"))
        self.successResultOf(self.send(client, io.BytesIO(EIGHT_BIT), use_bdat=True))
        self.assertIn("BODY=8BITMIME", self.mail_line(server))
        self.assertEqual(server.messages, [EIGHT_BIT])


class PathTests(_Base):
    """A message given as a path is opened (and scanned) in a thread, and closed afterwards."""

    def setUp(self) -> None:
        self.dir = Path(self.mktemp())
        self.dir.mkdir()

    def test_path_is_opened_scanned_sized_and_closed(self) -> None:
        path = self.dir / "m.eml"
        path.write_bytes(EIGHT_BIT)
        client, server = self.connect(threaded=True)
        opened: list[Any] = []
        original = Transaction.close

        def spy(tx: Transaction) -> None:
            opened.append(tx._opened)
            original(tx)

        self.patch(Transaction, "close", spy)
        d = self.send(client, path)
        self.assertEqual(server.commands, ["EHLO localhost"])
        self.assertEqual(self.clock.pool.run_all(), 2)  # type: ignore[attr-defined]
        self.endpoint.flush()
        reads = 0  # the message's chunks are read in the pool too
        for _ in range(20):
            ran = self.clock.pool.run_all()  # type: ignore[attr-defined]
            self.endpoint.flush()
            if not ran:
                break
            reads += ran
        self.successResultOf(d)
        self.assertEqual(reads, 2)  # the data, then the end of the file
        self.assertEqual(self.mail_params(server), {"BODY=8BITMIME", f"SIZE={len(EIGHT_BIT)}"})
        self.assertEqual(server.messages, [EIGHT_BIT])
        self.assertTrue(opened[0].closed)

    def test_missing_file_fails_before_mail(self) -> None:
        client, server = self.connect()
        self.failureResultOf(self.send(client, self.dir / "absent.eml"), FileNotFoundError)
        self.assertEqual(server.commands, ["EHLO localhost"])
        self.assertTrue(client.connected)

    def test_path_over_the_size_limit(self) -> None:
        path = self.dir / "big.eml"
        path.write_bytes(b"x" * 1_000_001)
        client, server = self.connect()
        error = self.failureResultOf(self.send(client, path), SMTPSenderRefused).value
        self.assertEqual((error.code, error.sender), (552, "a@example.org"))
        self.assertEqual(server.commands, ["EHLO localhost"])

    def test_data_verb_takes_a_path(self) -> None:
        path = self.dir / "m.eml"
        path.write_bytes(SEVEN_BIT)
        client, server = self.connect()
        client.mail("a@example.org")
        client.rcpt("b@example.org")
        d = client.data(path)
        self.endpoint.flush()
        self.assertEqual(self.successResultOf(d).code, 250)
        self.assertEqual(server.messages, [SEVEN_BIT])


class InMemoryAndProducerTests(_Base):
    """Bytes are looked at directly; a producer's content is unknown."""

    def test_8bit_bytes_refused_without_8bitmime(self) -> None:
        client, server = self.connect(NO_8BITMIME)
        with self.assertRaises(SMTPNotSupportedError) as caught:
            client.send_message("a@example.org", ["b@example.org"], EIGHT_BIT)
        self.assertEqual(caught.exception.code, 554)
        self.assertTrue(caught.exception.text.startswith("5.6.3 "))
        with self.assertRaises(SMTPNotSupportedError):
            client.send_message("a@example.org", ["b@example.org"], memoryview(EIGHT_BIT))
        self.assertEqual(server.commands, ["EHLO localhost"])

    def test_producer_defaults_to_8bitmime_when_offered(self) -> None:
        client, server = self.connect()
        self.successResultOf(self.send(client, _Producer(SEVEN_BIT)))
        self.assertEqual(self.mail_line(server), "MAIL FROM:<a@example.org> BODY=8BITMIME")
        self.assertEqual(server.messages, [SEVEN_BIT])

    def test_producer_without_8bitmime_is_sent_as_it_is(self) -> None:
        client, server = self.connect(NO_8BITMIME)
        self.successResultOf(self.send(client, _Producer(SEVEN_BIT)))
        self.assertEqual(self.mail_line(server), "MAIL FROM:<a@example.org>")

    def test_declared_7bit(self) -> None:
        """BODY=7BIT is sent to a server that knows BODY, and left out otherwise."""
        client, server = self.connect()
        self.successResultOf(self.send(client, _Producer(SEVEN_BIT), mail_params={"BODY": "7bit"}))
        self.assertEqual(self.mail_line(server), "MAIL FROM:<a@example.org> BODY=7BIT")
        client, server = self.connect(NO_8BITMIME)
        self.successResultOf(self.send(client, _Producer(SEVEN_BIT), mail_params={"BODY": "7BIT"}))
        self.assertEqual(self.mail_line(server), "MAIL FROM:<a@example.org>")

    def test_declared_8bit_refused_without_8bitmime(self) -> None:
        client, server = self.connect(NO_8BITMIME)
        with self.assertRaises(SMTPNotSupportedError) as caught:
            client.send_message(
                "a@example.org", ["b@example.org"], _Producer(), mail_params={"BODY": "8BITMIME"}
            )
        self.assertEqual(caught.exception.code, 554)
        self.assertEqual(server.commands, ["EHLO localhost"])

    def test_body_argument(self) -> None:
        """Transaction.prepare(body=...) declares the body; other values are refused."""
        client, server = self.connect()
        tx = Transaction(client, _Producer(SEVEN_BIT))
        tx.prepare("a@example.org", ["b@example.org"], None, body="7BIT")
        d = Deferred.fromCoroutine(tx.run())
        self.endpoint.flush()
        self.successResultOf(d)
        self.assertEqual(self.mail_line(server), "MAIL FROM:<a@example.org> BODY=7BIT")
        tx = Transaction(client, SEVEN_BIT)
        with self.assertRaises(LocalProtocolError):
            tx.prepare("a@example.org", ["b@example.org"], None, body="QUOTED")

"""The relay end to end against Postfix's smtp-sink: delivery, DSN pass-through, and SIGKILL.

Run as a script (``python test_smtp_relay_sink.py child QUEUE PORT N``), this
module is the child of the SIGKILL test: it spools N messages (printing
``C <seq>`` once each commit has fired) while a Relay delivers them.
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import defer, protocol, reactor, task
from twisted.logger import Logger
from twisted.names import dns
from twisted.trial.unittest import SkipTest, TestCase

from netproto_twisted.smtp import MailFrom, RcptTo
from netproto_twisted.smtp.interfaces import Envelope
from netproto_twisted.smtp.queue import Spool
from netproto_twisted.smtp.relay import Relay
from tests.waiting import wait_for_listener

SMTP_SINK = "/usr/sbin/smtp-sink"
ROOT = Path(__file__).resolve().parent.parent.parent
_log = Logger()
_END = re.compile(rb"^END-OF-MESSAGE (\d+)$", re.MULTILINE)


def message(seq: int, size: int = 5000) -> bytes:
    """A test message whose last line names it (so complete dumps can be told apart)."""
    head = f"From: a@example.org\r\nTo: b@sink.test\r\nSubject: message {seq}\r\n\r\n".encode()
    line = b"0123456789" * 7 + b"\r\n"
    body = line * (size // len(line))
    return head + body + b"..leading dot\r\n" + f"END-OF-MESSAGE {seq}\r\n".encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Sink:
    """An smtp-sink process dumping every transaction into ``directory``."""

    def __init__(self, directory: Path, *extra: str) -> None:
        if not os.access(SMTP_SINK, os.X_OK):
            raise SkipTest(f"{SMTP_SINK} not installed (Debian package postfix)")
        self.directory = directory
        directory.mkdir(exist_ok=True)
        directory.chmod(0o777)
        directory.parent.chmod(0o711)  # smtp-sink runs as nobody when we are root
        self.port = free_port()
        args = [SMTP_SINK, "-v", "-d", f"{directory}/%M.", *extra]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        args += [f"127.0.0.1:{self.port}", "64"]
        # Its diagnostics go beside the dumps (-v: "trying..." right before it listens).
        self.log = directory.parent / f"{directory.name}.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_for_listener(self.port, self.process, self.log, name="smtp-sink")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def complete(self) -> dict[int, int]:
        """How many complete copies of each message the sink holds."""
        counts: dict[int, int] = {}
        for name in os.listdir(self.directory):
            data = (self.directory / name).read_bytes()
            for match in _END.finditer(data):
                seq = int(match.group(1))
                counts[seq] = counts.get(seq, 0) + 1
        return counts


async def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``condition`` every 20 ms (bounded); fail if it stays false."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await task.deferLater(reactor, 0.02, lambda: None)


def spool_empty(directory: Path) -> bool:
    entries = directory / "entries"
    return entries.is_dir() and not any(n.endswith(".env") for n in os.listdir(entries))


async def spool_messages(spool: Spool, count: int, first: int = 0, **params: str) -> list[str]:
    ids = []
    for seq in range(first, first + count):
        rcpts = (RcptTo("b@sink.test", dict(params)), RcptTo("c@sink.test", dict(params)))
        env = Envelope(
            MailFrom("a@example.org", {"ENVID": f"e{seq}"}), rcpts, received_at=time.time()
        )
        sink = spool.open(env, rcpts)
        sink.write(message(seq))
        ids.append(await sink.commit())
    return ids


class FixedResolver:
    """Every domain's MX is 127.0.0.1."""

    def lookupMailExchange(self, name: str) -> defer.Deferred[Any]:
        record = dns.RRHeader(name=name, type=dns.MX, payload=dns.Record_MX(10, "127.0.0.1"))
        return defer.succeed(([record], [], []))


class RelayToSinkTests(TestCase):
    timeout = 120

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)

    def sink(self, *extra: str) -> Sink:
        sink = Sink(self.dir / "dumps", *extra)
        self.addCleanup(sink.stop)
        return sink

    async def test_mx_delivery_with_dsn_parameters(self) -> None:
        """Spool -> Relay (MX lookup, opportunistic STARTTLS) -> smtp-sink: each message once."""
        sink = self.sink()
        spool = Spool(self.dir / "queue", reactor)
        relay = Relay(
            spool,
            reactor,
            hostname="relay.test",
            resolver=FixedResolver(),
            port=sink.port,
            per_destination=3,
            poll_interval=0,
            timeout=30,
        )
        relay.startService()
        self.addCleanup(relay.stopService)
        await relay.ready
        await spool_messages(spool, 20, NOTIFY="SUCCESS,FAILURE")
        await wait_until(lambda: spool_empty(self.dir / "queue"))
        await wait_until(lambda: len(sink.complete()) == 20)
        self.assertEqual(sink.complete(), dict.fromkeys(range(20), 1))
        self.assertLessEqual(relay.connections, 3)
        dump = next(
            (sink.directory / n).read_bytes()
            for n in os.listdir(sink.directory)
            if b"END-OF-MESSAGE 7\n" in (sink.directory / n).read_bytes()
        )
        self.assertIn(b"X-Mail-Args: <a@example.org> ", dump)
        self.assertIn(b"ENVID=e7", dump)
        self.assertIn(b"X-Rcpt-Args: <b@sink.test> NOTIFY=SUCCESS,FAILURE", dump)
        self.assertIn(b"X-Rcpt-Args: <c@sink.test>", dump)
        body = message(7).replace(b"\r\n", b"\n")
        self.assertIn(body, dump)  # dot-stuffing undone by the sink: the text is intact

    async def test_sigkill_mid_relay(self) -> None:
        """Kill the relay with SIGKILL mid-way: a new one delivers every committed message.

        The sink delays its DATA reply by a second, so the kill lands while
        messages are in flight.  Each committed message must then arrive at
        least once, and more than once only if it was in flight at the kill
        (between the sink's 250 and the durable state save): at most
        ``per_destination`` messages.
        """
        total, parallel = 30, 3
        slow = self.sink("-w", "1")
        queue = self.dir / "queue"
        child = ChildRelay(queue, slow.port, total, parallel)
        await child.started
        self.addCleanup(child.kill)
        await wait_until(lambda: len(child.committed) == total, 60)
        await wait_until(lambda: len(slow.complete()) >= parallel, 60)
        child.kill()
        await child.ended
        delivered_before = slow.complete()
        self.assertLess(len(delivered_before), total, "the kill came too late to test anything")
        slow.stop()

        fast = self.sink()
        spool = Spool(queue, reactor)
        relay = Relay(
            spool,
            reactor,
            hostname="relay.test",
            smarthost=("127.0.0.1", fast.port),
            tls="none",
            per_destination=parallel,
            poll_interval=0,
            timeout=30,
        )
        relay.startService()
        self.addCleanup(relay.stopService)
        await relay.ready
        await wait_until(lambda: spool_empty(queue), 60)
        counts = fast.complete()
        missing = [seq for seq in child.committed if counts.get(seq, 0) == 0]
        self.assertEqual(missing, [])
        duplicates = [seq for seq, n in counts.items() if n > 1]
        _log.info(
            "sigkill test: {before} complete before the kill, {after} after, duplicates {dups}",
            before=len(delivered_before),
            after=len(counts),
            dups=duplicates,
        )
        self.assertLessEqual(len(duplicates), parallel, f"sent twice: {duplicates}")


class _ChildProtocol(protocol.ProcessProtocol):
    def __init__(self, owner: ChildRelay) -> None:
        self.owner = owner
        self.buffer = b""

    def connectionMade(self) -> None:
        self.owner.started.callback(None)

    def outReceived(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            if line.startswith(b"C "):
                self.owner.committed.add(int(line[2:]))

    def errReceived(self, data: bytes) -> None:
        self.owner.stderr += data

    def processEnded(self, reason: Any) -> None:
        self.owner.running = False
        self.owner.ended.callback(None)


class ChildRelay:
    """This module run as a child process: it spools and relays until killed."""

    def __init__(self, queue: Path, port: int, total: int, parallel: int) -> None:
        self.committed: set[int] = set()
        self.stderr = b""
        self.started: defer.Deferred[None] = defer.Deferred()
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.running = True
        args = [
            sys.executable,
            __file__,
            "child",
            str(queue),
            str(port),
            str(total),
            str(parallel),
        ]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.transport = reactor.spawnProcess(
            _ChildProtocol(self), sys.executable, args, env=env, path=str(ROOT)
        )

    def kill(self) -> None:
        if self.running:
            self.transport.signalProcess(signal.SIGKILL)


def _child(queue: str, port: int, total: int, parallel: int) -> None:
    """Spool ``total`` messages while a Relay sends them to the sink; run until killed."""
    from twisted.internet import reactor as child_reactor

    spool = Spool(Path(queue), child_reactor)
    relay = Relay(
        spool,
        child_reactor,
        hostname="relay.test",
        smarthost=("127.0.0.1", port),
        tls="none",
        per_destination=parallel,
        poll_interval=0,
        timeout=30,
    )

    async def run() -> None:
        relay.startService()
        await relay.ready
        for seq in range(total):
            await spool_messages(spool, 1, first=seq)
            sys.stdout.write(f"C {seq}\n")
            sys.stdout.flush()

    child_reactor.callWhenRunning(lambda: defer.ensureDeferred(run()))
    child_reactor.run()


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "child":
    _child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))

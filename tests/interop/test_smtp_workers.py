"""``twistd -n netproto-smtp --workers 2``: smtplib clients, Maildir, relay to smtp-sink.

Every message must land in the Maildir (local) or at the sink (relayed),
whichever process accepted it; a relayed message accepted by the worker
reaches the sink only if the worker told the master (``queued ID``) and the
master's relay picked it up.
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import os
import re
import shutil
import signal
import smtplib
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.interop.test_smtp_relay_sink import Sink, message
from tests.twistd import Daemon, run_twistd, usage_error_exit
from tests.waiting import wait_for_exit, wait_for_files

TIMEOUT = 30.0
_ACCEPTED = re.compile(r"^.*\[netproto\.smtp\.server\S*\] (\w+): accepted from=", re.MULTILINE)
_WORKER_ACCEPTED = re.compile(
    r"^.*\[worker (\d+)\] \[netproto\.smtp\.server\] (\w+): accepted from=", re.MULTILINE
)


def children(pid: int) -> list[int]:
    """The live child processes of ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2 :].split()
            if int(fields[1]) == pid and fields[0] != b"Z":
                found.append(int(entry))
    return found


class SMTPWorkersDaemonTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.cwd = Path(self.mktemp()).absolute()
        (self.cwd / "mail" / "bob").mkdir(parents=True)  # a local user made by hand

    def sink(self) -> Sink:
        dumps = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, dumps, True)
        sink = Sink(dumps / "dumps")
        self.addCleanup(sink.stop)
        return sink

    def daemon(self, *extra: str) -> tuple[Daemon, int]:
        daemon = Daemon(
            [
                "netproto-smtp",
                "--listen", "tcp:0:interface=127.0.0.1",
                "--submission", "tcp:0:interface=127.0.0.1",
                "--domain", "localhost", "--hostname", "mx.example.org",
                "--relay-network", "127.0.0.1/32",
                "--maildir", "mail", "--queue", "queue", "--data-dir", "data",
                *extra,
            ],
            self.cwd,
        )  # fmt: skip
        self.addCleanup(daemon.stop)
        port = int(daemon.wait_for(r"smtp listening on tcp 127\.0\.0\.1:(\d+)", TIMEOUT).group(1))
        return daemon, port

    def send(self, port: int, first: int, count: int, rcpt: str) -> None:
        """Send ``count`` messages, one connection each, from 6 threads."""

        def one(seq: int) -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as client:
                self.assertEqual(client.sendmail("a@client.example", [rcpt], message(seq)), {})

        with ThreadPoolExecutor(6) as pool:
            list(pool.map(one, range(first, first + count)))

    def test_local_and_relayed_mail_through_two_processes(self) -> None:
        sink = self.sink()
        daemon, port = self.daemon(
            "--workers", "2", "--smarthost", f"127.0.0.1:{sink.port}", "--smarthost-tls", "none"
        )
        found = daemon.wait_for(r"smtp-workers: 1 worker\(s\) ready: (\d+)", TIMEOUT)
        worker = int(found.group(1))
        self.assertEqual(children(daemon.proc.pid), [worker])
        sent_local = sent_relay = 0
        # Batches until the worker accepted local and relayed mail (bounded).
        for _ in range(10):
            self.send(port, sent_local, 12, "bob@localhost")
            sent_local += 12
            self.send(port, 1000 + sent_relay, 12, "x@far.example")
            sent_relay += 12
            by_worker = {i for _, i in _WORKER_ACCEPTED.findall(daemon.output())}
            relayed = self._relayed_ids(sink)
            if by_worker & relayed and len(by_worker) < len(_ACCEPTED.findall(daemon.output())):
                break
        wait_for_files([sink.directory], lambda: len(sink.complete()) == sent_relay, TIMEOUT)
        self.assertEqual(
            sorted(sink.complete()), list(range(1000, 1000 + sent_relay))
        )  # every relayed message once
        self.assertEqual(len(os.listdir(self.cwd / "mail" / "bob" / "new")), sent_local)
        output = daemon.output()
        accepted = set(_ACCEPTED.findall(output))
        by_worker = {i for pid, i in _WORKER_ACCEPTED.findall(output) if int(pid) == worker}
        self.assertEqual(len(accepted), sent_local + sent_relay)
        self.assertTrue(by_worker, "the worker accepted nothing")
        self.assertTrue(accepted - by_worker, "the master accepted nothing")
        self.assertTrue(by_worker & self._relayed_ids(sink), "no relayed mail came via the worker")
        self.assertIn(daemon.stop(), (0, -signal.SIGTERM))
        wait_for_exit(worker, TIMEOUT)
        self.assertNotIn("Traceback", daemon.output())

    def _relayed_ids(self, sink: Sink) -> set[str]:
        ids: set[str] = set()
        for name in os.listdir(sink.directory):
            data = (sink.directory / name).read_bytes()
            ids.update(m.decode() for m in re.findall(rb"\bid (\w+)", data))
        return ids

    def test_one_process_by_default(self) -> None:
        daemon, port = self.daemon()
        self.send(port, 0, 3, "bob@localhost")
        self.assertEqual(len(os.listdir(self.cwd / "mail" / "bob" / "new")), 3)
        self.assertEqual(children(daemon.proc.pid), [])
        self.assertIn(daemon.stop(), (0, -signal.SIGTERM))
        self.assertNotIn("smtp-workers", daemon.output())
        self.assertNotIn("[worker ", daemon.output())

    def test_bad_worker_count_is_one_line(self) -> None:
        result = run_twistd(["netproto-smtp", "--workers", "0"], self.cwd)
        self.assertTrue(usage_error_exit(result.returncode))
        self.assertIn("--workers: must be 1 to 64, got 0", result.stdout + result.stderr)

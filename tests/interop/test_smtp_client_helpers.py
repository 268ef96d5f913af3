"""Shared helpers for the SMTP client's interop tests (real peers over loopback)."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.waiting import wait_for_listener

SMTP_SINK = shutil.which("smtp-sink") or (
    "/usr/sbin/smtp-sink" if os.path.exists("/usr/sbin/smtp-sink") else None
)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1, capturing every transaction to a dump file."""

    def __init__(self, *options: str) -> None:
        assert SMTP_SINK is not None
        self.dir = Path(tempfile.mkdtemp(prefix="smtp-sink-"))
        os.chmod(self.dir, 0o777)
        self.dump = self.dir / "dump"
        self.port = free_port()
        self.log = self.dir / "log"
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        args = [SMTP_SINK, "-v", *user, "-D", str(self.dump), *options]
        args += [f"127.0.0.1:{self.port}", "100"]
        with open(self.log, "wb") as log:  # -v: "trying..." says when it is about to listen
            self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_for_listener(self.port, self.process, self.log, name="smtp-sink")
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the sink and remove its files."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def transactions(self) -> list[dict[str, object]]:
        """Parse the dump: one dict per transaction (mail args, rcpt args, message lines)."""
        if not self.dump.exists():
            return []
        out: list[dict[str, object]] = []
        current: dict[str, object] | None = None
        for line in self.dump.read_bytes().split(b"\n"):
            if line.startswith(b"X-Client-Addr: "):
                current = {"mail": "", "rcpt": [], "lines": []}
                out.append(current)
                continue
            if current is None:
                continue
            if line.startswith(b"X-Mail-Args: "):
                current["mail"] = line[13:].decode()
            elif line.startswith(b"X-Rcpt-Args: "):
                rcpts = current["rcpt"]
                assert isinstance(rcpts, list)
                rcpts.append(line[13:].decode())
            elif not line.startswith((b"X-Client-Proto: ", b"X-Helo-Args: ")):
                lines = current["lines"]
                assert isinstance(lines, list)
                lines.append(line)
        return out


class SinkMixin:
    """For test cases against Postfix's smtp-sink: skipped without it; ``sink()`` starts one."""

    if SMTP_SINK is None:
        skip = "Postfix's smtp-sink is not installed"

    def sink(self, *options: str) -> SmtpSink:
        """Start an smtp-sink with ``options``, stopped when the test ends."""
        sink = SmtpSink(*options)
        self.addCleanup(sink.stop)  # type: ignore[attr-defined]
        return sink


def body_lines(transaction: dict[str, object]) -> list[bytes]:
    """Return the message lines of a dumped transaction, without smtp-sink's Received header."""
    lines = transaction["lines"]
    assert isinstance(lines, list)
    at = 0
    while at < len(lines) and (lines[at].startswith(b"Received: ") or lines[at][:1] == b"\t"):
        at += 1
    rest = lines[at:]
    while rest and rest[-1] == b"":
        rest.pop()
    return rest

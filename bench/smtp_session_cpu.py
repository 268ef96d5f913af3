"""CPU per inbound SMTP session on the event loop, in process: no sockets, no disk writes.

Builds the SMTP server exactly as ``twistd netproto-smtp`` does (the tap's
``_build_parts``: guard, factory, recipient policy, Maildir target), with a
committer that completes each message without touching the disk, and runs
whole sessions through it as smtp-source does them: connect, greeting,
HELO (or EHLO), MAIL, RCPT, DATA, a 5 KB message, ``250``, QUIT, close.
Every session's replies are checked.  What it measures is the Python work
of one message on the event-loop thread, without the kernel's share and
without Twisted's reactor dispatch: the part our code decides.
``bench/smtp_in.py`` measures the whole thing against the peers.

Run from a checkout::

    python bench/smtp_session_cpu.py               # 5 x 5,000 sessions, median us
    python bench/smtp_session_cpu.py --ehlo        # EHLO instead of HELO
    python bench/smtp_session_cpu.py --profile F   # cProfile stats of one pass into F
"""

from __future__ import annotations

import argparse
import cProfile
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from twisted.application.service import MultiService  # noqa: E402
from twisted.internet.address import IPv4Address  # noqa: E402
from twisted.internet.defer import Deferred  # noqa: E402
from twisted.internet.testing import MemoryReactorClock, StringTransport  # noqa: E402

from netproto_twisted.core.limits import DEFAULT_LIMITS  # noqa: E402
from netproto_twisted.smtp import tap  # noqa: E402

__all__ = ["MESSAGE", "SessionRunner", "run"]

#: What smtp-source -l 5120 sends: a few headers, then lines of 79 characters.
MESSAGE = (
    b"From: <from@example.org>\r\nTo: <to@localhost>\r\n"
    b"Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMessage-Id: <1.2@example.org>\r\n\r\n"
    + (b"X" * 79 + b"\r\n") * 64
    + b".\r\n"
)


class _InstantCommitter:
    """Completes every commit at the end of the session, without any file system call."""

    def __init__(self) -> None:
        self.pending: list[tuple[Any, Deferred[None]]] = []

    def commit(self, job: Any) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.pending.append((job, d))
        return d

    def complete(self) -> None:
        pending, self.pending = self.pending, []
        for job, d in pending:
            job.name = job.base
            d.callback(None)


class SessionRunner:
    """The server as the tap builds it, and one client session at a time through it."""

    def __init__(self, workdir: Path, ehlo: bool = False) -> None:
        reactor = MemoryReactorClock()
        reactor.getThreadPool = lambda: None  # type: ignore[attr-defined]  # AUTH is not used
        for sub in ("new", "cur", "tmp"):
            (workdir / "mail" / "to" / sub).mkdir(parents=True, exist_ok=True)
        config = tap.Config(hostname="netproto.bench", maildir=str(workdir / "mail"))
        limits = replace(DEFAULT_LIMITS, max_connections=10_000,
                         max_connections_per_ip=10_000, command_rate=100_000)
        self.committer = _InstantCommitter()
        guards = tap._build_parts(
            config, reactor, MultiService(), data_dir=workdir, tls=None, policy=None,
            limits=limits, targets={"relay": object()},  # type: ignore[dict-item]
            committer=self.committer,  # type: ignore[arg-type]
        )
        self.guard = guards["smtp"]
        greeting = b"EHLO client.example.org\r\n" if ehlo else b"HELO client.example.org\r\n"
        self.commands = (greeting, b"MAIL FROM:<from@example.org>\r\n",
                         b"RCPT TO:<to@localhost>\r\n", b"DATA\r\n")

    def session(self, number: int) -> None:
        """Run one session; raise if a reply is missing."""
        addr = IPv4Address("TCP", "127.0.0.1", 1024 + number % 60_000)
        protocol = self.guard.buildProtocol(addr)
        assert protocol is not None
        transport = StringTransport(peerAddress=addr,
                                    hostAddress=IPv4Address("TCP", "127.0.0.1", 25))
        protocol.makeConnection(transport)
        for line in self.commands:
            protocol.dataReceived(line)
        protocol.dataReceived(MESSAGE)
        self.committer.complete()
        protocol.dataReceived(b"QUIT\r\n")
        out = transport.value()
        if b"\r\n250 2.0.0 Ok: queued as " not in out or not out.endswith(b"221 2.0.0 Bye\r\n"):
            raise AssertionError(f"unexpected replies: {out[-300:]!r}")
        protocol.connectionLost(None)  # type: ignore[arg-type]


def run(argv: list[str] | None = None) -> int:
    """Parse options, time the sessions and print the median."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=5000, help="sessions per pass")
    parser.add_argument("--passes", type=int, default=5, help="timed passes (median)")
    parser.add_argument("--ehlo", action="store_true", help="EHLO instead of HELO")
    parser.add_argument("--profile", metavar="FILE", help="write cProfile stats of one pass")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-smtp-cpu-") as tmp:
        runner = SessionRunner(Path(tmp), ehlo=args.ehlo)
        for number in range(300):  # warm-up: caches, first-use imports
            runner.session(number)
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for number in range(args.sessions):
                runner.session(number)
            profiler.disable()
            profiler.dump_stats(args.profile)
            print(f"cProfile stats of {args.sessions} sessions written to {args.profile}")
            return 0
        per_session = []
        for _ in range(args.passes):
            start = time.process_time()
            for number in range(args.sessions):
                runner.session(number)
            per_session.append((time.process_time() - start) / args.sessions * 1e6)
    print(f"{args.passes} passes of {args.sessions} sessions: median "
          f"{statistics.median(per_session):.1f} us of CPU per session "
          f"(min {min(per_session):.1f}, max {max(per_session):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(run())

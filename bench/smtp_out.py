"""Outbound SMTP benchmark: our client against smtplib, aiosmtplib and Twisted's ESMTPClient.

Every row sends the same messages (default 2,000 of 5 KB, one recipient) to
one Postfix ``smtp-sink`` on loopback, over 1 connection and over 20
connections (each connection sends its share of the messages one after the
other, reusing the session). Rows:

- ``netproto`` (:mod:`netproto_twisted.smtp.client`): ``connect_smtp`` then
  ``send_message`` per message (PIPELINING: MAIL+RCPT+DATA in one write);
- ``aiosmtplib``: ``SMTP.sendmail`` per message on asyncio, one task per
  connection (the target: netproto >= 1.5x aiosmtplib at 20 connections);
- ``smtplib``: ``SMTP.sendmail`` per message, one thread per connection;
- ``twisted.mail ESMTPClient``: Twisted's own client (``SMTPSenderFactory``
  style, several messages per connection through ``getMailFrom``), as
  shipped (no TCP_NODELAY).

Each row runs in a fresh subprocess (its own event loop and interpreter), in
interleaved order (A1 B1 C1 A2 ...), ``--runs`` times; the table shows the
median messages/s, the client's CPU time per message, and the ratio to the
``aiosmtplib`` row with the same number of connections. Absolute numbers on
a shared machine are noise; ratios within one run are the figure.

Run from a checkout::

    python bench/smtp_out.py                 # 2,000 messages, 3 runs per row
    python bench/smtp_out.py --quick         # 400 messages, 1 run
    python bench/smtp_out.py --messages 5000 --runs 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import free_port, wait_for_port  # noqa: E402

KINDS = ("netproto", "aiosmtplib", "smtplib", "twisted")
LABELS = {
    "netproto": "netproto client",
    "aiosmtplib": "aiosmtplib",
    "smtplib": "smtplib (threads)",
    "twisted": "twisted.mail ESMTPClient",
}
SENDER = "bench@example.org"
RECIPIENT = "sink@example.net"


def make_message(size: int = 5 * 1024) -> bytes:
    """Return a message of ``size`` bytes: a few headers and 76-character lines."""
    head = (
        b"From: bench@example.org\r\nTo: sink@example.net\r\nSubject: benchmark\r\n"
        b"Message-ID: <bench@example.org>\r\n\r\n"
    )
    line = b"x" * 74 + b"\r\n"
    body = line * ((size - len(head)) // len(line) + 1)
    return (head + body)[: size - 2] + b"\r\n"


def shares(total: int, connections: int) -> list[int]:
    """Split ``total`` messages over ``connections`` as evenly as possible."""
    base, extra = divmod(total, connections)
    return [base + (1 if i < extra else 0) for i in range(connections)]


# --- the clients (run in a child process) ---------------------------------------------------


def run_netproto(port: int, counts: list[int], message: bytes) -> int:
    from twisted.internet import defer
    from twisted.internet import reactor as _reactor

    from netproto_twisted.smtp.client import connect_smtp

    reactor: object = _reactor
    sent = 0

    async def one(count: int) -> None:
        nonlocal sent
        client = await connect_smtp(reactor, "127.0.0.1", port, tls="none")
        for _ in range(count):
            await client.send_message(SENDER, [RECIPIENT], message)
            sent += 1
        await client.quit()

    failures: list[object] = []

    def main() -> None:
        ds = [defer.Deferred.fromCoroutine(one(c)) for c in counts]
        d = defer.gatherResults(ds, consumeErrors=True)
        d.addErrback(failures.append)
        d.addBoth(lambda _: _reactor.stop())

    _reactor.callWhenRunning(main)
    _reactor.run()
    if failures:
        raise SystemExit(f"netproto failed: {failures[0]}")
    return sent


def run_aiosmtplib(port: int, counts: list[int], message: bytes) -> int:
    import asyncio

    import aiosmtplib

    sent = 0

    async def one(count: int) -> None:
        nonlocal sent
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        for _ in range(count):
            await client.sendmail(SENDER, [RECIPIENT], message)
            sent += 1
        await client.quit()

    async def main() -> None:
        await asyncio.gather(*(one(c) for c in counts))

    asyncio.run(main())
    return sent


def run_smtplib(port: int, counts: list[int], message: bytes) -> int:
    import smtplib
    import threading

    sent = [0] * len(counts)
    errors: list[BaseException] = []

    def one(i: int, count: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port) as client:
                for _ in range(count):
                    client.sendmail(SENDER, [RECIPIENT], message)
                    sent[i] += 1
        except BaseException as e:  # reported by the parent
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i, c)) for i, c in enumerate(counts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"smtplib failed: {errors[0]!r}")
    return sum(sent)


def run_twisted(port: int, counts: list[int], message: bytes) -> int:
    import io

    from twisted.internet import defer, protocol
    from twisted.internet import reactor as _reactor
    from twisted.mail import smtp

    sent = 0
    failures: list[object] = []

    class Client(smtp.ESMTPClient):
        remaining = 0
        done: defer.Deferred[None]

        def getMailFrom(self) -> bytes | None:
            if self.remaining <= 0:
                return None
            self.remaining -= 1
            return SENDER.encode()

        def getMailTo(self) -> list[bytes]:
            return [RECIPIENT.encode()]

        def getMailData(self) -> io.BytesIO:
            return io.BytesIO(message)

        def sentMail(self, code, resp, numOk, addresses, log):  # type: ignore[no-untyped-def]
            nonlocal sent
            if numOk:
                sent += 1

    class Factory(protocol.ClientFactory):
        def __init__(self, count: int, done: defer.Deferred[None]) -> None:
            self.count = count
            self.done = done

        def buildProtocol(self, addr):  # type: ignore[no-untyped-def]
            p = Client(secret=None, identity=b"bench.example.org")  # type: ignore[no-untyped-call]
            p.requireAuthentication = False
            p.requireTransportSecurity = False
            p.remaining = self.count
            p.factory = self
            return p

        def clientConnectionLost(self, connector, reason):  # type: ignore[no-untyped-def]
            if not self.done.called:
                self.done.callback(None)

        def clientConnectionFailed(self, connector, reason):  # type: ignore[no-untyped-def]
            if not self.done.called:
                self.done.errback(reason)

    def main() -> None:
        ds = []
        for count in counts:
            done: defer.Deferred[None] = defer.Deferred()
            _reactor.connectTCP("127.0.0.1", port, Factory(count, done))
            ds.append(done)
        d = defer.gatherResults(ds, consumeErrors=True)
        d.addErrback(failures.append)
        d.addBoth(lambda _: _reactor.stop())

    _reactor.callWhenRunning(main)
    _reactor.run()
    if failures:
        raise SystemExit(f"twisted failed: {failures[0]}")
    return sent


PRELOAD = {
    "netproto": ("twisted.internet.reactor", "netproto_twisted.smtp.client"),
    "aiosmtplib": ("asyncio", "aiosmtplib"),
    "smtplib": ("smtplib", "threading"),
    "twisted": ("twisted.internet.reactor", "twisted.mail.smtp"),
}

RUNNERS = {
    "netproto": run_netproto,
    "aiosmtplib": run_aiosmtplib,
    "smtplib": run_smtplib,
    "twisted": run_twisted,
}


def child(args: argparse.Namespace) -> None:
    """Run one client row and print its result as one JSON line."""
    message = make_message(args.size)
    counts = shares(args.messages, args.connections[-1])
    for module in PRELOAD[args.child]:  # imports are not part of the measurement
        __import__(module)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    sent = RUNNERS[args.child](args.port, counts, message)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    print(json.dumps({"sent": sent, "seconds": seconds, "cpu": cpu}))


# --- the parent ----------------------------------------------------------------------------------


def start_sink(port: int) -> subprocess.Popen[bytes]:
    """Start Postfix's smtp-sink on 127.0.0.1:port."""
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not os.path.exists(sink):
        raise SystemExit("Postfix's smtp-sink is needed (apt-get install postfix)")
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    proc = subprocess.Popen(
        [sink, *user, "-m", "512", f"127.0.0.1:{port}", "256"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port("127.0.0.1", port, proc=proc)
    return proc


def run_row(kind: str, port: int, connections: int, args: argparse.Namespace) -> dict[str, float]:
    """Run one row once in a child process; return its result."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        kind,
        "--port",
        str(port),
        "--connections",
        str(connections),
        "--messages",
        str(args.messages),
        "--size",
        str(args.size),
    ]
    out = subprocess.run(cmd, capture_output=True, check=False, timeout=args.time_limit)
    if out.returncode != 0:
        raise SystemExit(f"{kind} x{connections} failed:\n{out.stderr.decode()[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    if result["sent"] != args.messages:
        raise SystemExit(f"{kind} x{connections} sent {result['sent']} of {args.messages}")
    return result


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run every row ``--runs`` times interleaved, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=5 * 1024, help="message size in bytes")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, action="append", help="default: 1 and 20")
    parser.add_argument("--only", action="append", choices=KINDS)
    parser.add_argument("--quick", action="store_true", help="400 messages, 1 run")
    parser.add_argument("--json", help="write every run and the medians to this file")
    parser.add_argument("--time-limit", type=float, default=600.0)
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return
    if args.quick:
        args.messages, args.runs = 400, 1
    connection_counts = args.connections or [1, 20]
    kinds = args.only or list(KINDS)
    port = free_port()
    sink = start_sink(port)
    runs: dict[tuple[str, int], list[dict[str, float]]] = {}
    try:
        for _ in range(args.runs):
            for connections in connection_counts:
                for kind in kinds:
                    result = run_row(kind, port, connections, args)
                    runs.setdefault((kind, connections), []).append(result)
    finally:
        sink.kill()
        sink.wait()
    rows = []
    for (kind, connections), results in runs.items():
        rate = statistics.median(r["sent"] / r["seconds"] for r in results)
        cpu = statistics.median(r["cpu"] / r["sent"] * 1e6 for r in results)
        rows.append((kind, connections, rate, cpu))
    baseline = {c: rate for kind, c, rate, _ in rows if kind == "aiosmtplib"}
    print(
        f"{args.messages} messages of {args.size} bytes to smtp-sink, "
        f"median of {args.runs} run(s), python {sys.version.split()[0]}"
    )
    header = f"{'client':<26} {'conns':>5} {'msg/s':>9} {'CPU us/msg':>11} {'vs aiosmtplib':>14}"
    print(header)
    print("-" * len(header))
    for kind, connections, rate, cpu in sorted(rows, key=lambda r: (r[1], -r[2])):
        base = baseline.get(connections)
        ratio = f"{rate / base:.2f}x" if base else "-"
        print(f"{LABELS[kind]:<26} {connections:>5} {rate:>9.0f} {cpu:>11.0f} {ratio:>14}")
    if args.json:
        data = {
            "messages": args.messages,
            "size": args.size,
            "runs": {f"{k}x{c}": v for (k, c), v in runs.items()},
            "medians": [
                {"client": k, "connections": c, "msg_per_s": r, "cpu_us_per_msg": u}
                for k, c, r, u in rows
            ],
        }
        Path(args.json).write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()

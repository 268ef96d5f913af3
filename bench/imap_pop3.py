"""IMAP and POP3 side by side with Dovecot, on copies of one Maildir.

Rows (each server on its own copy of the same generated Maildir, with a
fresh process, interleaved, ``--runs`` times; medians):

- ``SELECT`` + ``FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE)`` on 10,000 messages,
  cold (the first access: UIDs assigned, nothing cached or indexed; Dovecot
  with an on-disk index that does not exist yet) and warm (the same again
  on a second connection);
- ``UID SEARCH HEADER Subject`` and ``SEARCH SUBJECT``, warm (each timed five
  times in a row, the median kept);
- POP3 ``LIST`` + ``RETR`` of 1,000 messages (poplib);
- client parsing: ``FETCH 1:* (FLAGS ENVELOPE)`` from Dovecot to a parsed
  result with our client and with imapclient (each in a fresh subprocess).

The raw IMAP rows use one blocking socket client that only frames the
responses (literals included), so the time is the server's.

Run: ``python bench/imap_pop3.py [--messages 10000] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import poplib
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.harness import ServerProcess, ServerSpec  # noqa: E402
from netproto_twisted.core.passwords import PasswordFile  # noqa: E402
from tests.dovecot import Dovecot, missing  # noqa: E402
from tests.twistd import twistd_argv  # noqa: E402

USER, PASSWORD = "bench", "bench password"
_PORT_RX = r"listening on (?:tcp )?127\.0\.0\.1:(\d+)"
_LITERAL = re.compile(rb"\{(\d+)\}\r\n\Z")
_WORDS = ("report", "meeting", "invoice", "holiday", "release", "question", "lunch", "build")


def make_template(path: Path, count: int) -> None:
    """A Maildir INBOX of ``count`` varied messages in ``cur/`` (no uidlist yet)."""
    rng = random.Random(7)
    cur = path / USER / "cur"
    for sub in ("cur", "new", "tmp"):
        (path / USER / sub).mkdir(parents=True, exist_ok=True)
    now = 1_780_000_000
    for i in range(count):
        words = " ".join(rng.choice(_WORDS) for _ in range(4))
        body = "".join(f"line {n} of message {i} {words}\n" for n in range(rng.randint(5, 60)))
        data = (
            f"Return-Path: <sender{i % 97}@example.net>\n"
            f"From: Sender {i % 97} <sender{i % 97}@example.net>\n"
            f"To: {USER}@example.org, other{i % 13}@example.org\n"
            f"Cc: list{i % 5}@lists.example.org\n"
            f"Subject: {words} #{i}\n"
            f"Date: Mon, 7 Dec 2026 10:{i % 60:02d}:00 +0000\n"
            f"Message-ID: <{i}.{rng.randrange(10**9)}@example.net>\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n"
            f"{body}"
        ).encode()
        flags = "S" if i % 3 else ""
        crlf_size = len(data) + data.count(b"\n")
        name = f"{now + i}.M{i}P1.bench,S={len(data)},W={crlf_size}:2,{flags}"
        (cur / name).write_bytes(data)


def copy_tree(template: Path, target: Path, limit: int | None = None) -> None:
    """A copy of the template (the first ``limit`` messages only, if given)."""
    if limit is None:
        shutil.copytree(template, target)
        return
    for sub in ("cur", "new", "tmp"):
        (target / USER / sub).mkdir(parents=True, exist_ok=True)
    for name in sorted(os.listdir(template / USER / "cur"))[:limit]:
        shutil.copy2(template / USER / "cur" / name, target / USER / "cur" / name)


class Raw:
    """A blocking IMAP peer that frames responses (literals too) and parses nothing."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=300)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb", buffering=1 << 20)
        self.file.readline()
        self.n = 0

    def command(self, text: str) -> int:
        """Send a command; return the octets of its responses."""
        self.n += 1
        tag = b"B%d" % self.n
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        total = 0
        readline, read = self.file.readline, self.file.read
        while True:
            line = readline()
            if not line:
                raise ConnectionError("closed")
            total += len(line)
            m = _LITERAL.search(line)
            if m:
                total += len(read(int(m.group(1))))
                continue
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(line)
                return total

    def close(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            self.command("LOGOUT")
        self.sock.close()


#: Timings of each search per run (their median is the run's figure).
SEARCH_REPEATS = 5


def timed(f: object, *args: object) -> float:
    start = time.perf_counter()
    f(*args)  # type: ignore[operator]
    return time.perf_counter() - start


def imap_rows(port: int) -> dict[str, float]:
    """Cold then warm SELECT+FETCH, then the searches, on one server just started."""
    out = {}

    def select_fetch() -> None:
        c = Raw(port)
        c.command(f'LOGIN {USER} "{PASSWORD}"')
        c.command("SELECT INBOX")
        c.command("FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE)")
        c.close()

    out["SELECT + FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE), cold"] = timed(select_fetch)
    out["SELECT + FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE), warm"] = timed(select_fetch)
    c = Raw(port)
    c.command(f'LOGIN {USER} "{PASSWORD}"')
    c.command("SELECT INBOX")
    c.command("UID SEARCH HEADER Subject holiday")  # warms what a header search reads
    # One search can take twice its usual time on any server (a collection, a scheduling
    # delay): each is timed SEARCH_REPEATS times and the median kept.
    for row, command in (
        ("UID SEARCH HEADER Subject, warm", "UID SEARCH HEADER Subject invoice"),
        ("SEARCH SUBJECT, warm", "SEARCH SUBJECT meeting"),
    ):
        out[row] = statistics.median(timed(c.command, command) for _ in range(SEARCH_REPEATS))
    c.close()
    return out


def pop3_row(port: int, count: int) -> float:
    def run() -> None:
        pop = poplib.POP3("127.0.0.1", port, timeout=300)
        pop.user(USER)
        pop.pass_(PASSWORD)
        pop.list()
        for i in range(1, count + 1):
            pop.retr(i)
        pop.quit()

    return timed(run)


_CLIENT = r"""
import sys, time
sys.path.insert(0, sys.argv[3])
port, which = int(sys.argv[1]), sys.argv[2]
if which == "imapclient":
    import imapclient
    start = time.perf_counter()
    c = imapclient.IMAPClient("127.0.0.1", port=port, ssl=False)
    c.login("bench", "bench password")
    c.use_uid = False
    exists = c.select_folder("INBOX")[b"EXISTS"]
    result = c.fetch(list(range(1, exists + 1)), ["FLAGS", "ENVELOPE"])
    elapsed = time.perf_counter() - start
    assert all(v[b"ENVELOPE"].subject for v in result.values())
    c.logout()
else:
    from twisted.internet import defer, task
    from netproto_twisted.imap4 import connect_imap
    async def main(reactor):
        start = time.perf_counter()
        c = await connect_imap(reactor, "127.0.0.1", port, tls="none",
                               username="bench", password="bench password")
        await c.select("INBOX")
        result = await c.fetch("1:*", ["FLAGS", "ENVELOPE"])
        elapsed = time.perf_counter() - start
        assert all(v["ENVELOPE"].subject for v in result.values())
        await c.logout()
        print(elapsed)
    task.react(lambda r: defer.ensureDeferred(main(r)))
    sys.exit(0)
print(elapsed)
"""


def client_row(port: int, which: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _CLIENT, str(port), which, str(REPO)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    if out.returncode:
        raise RuntimeError(f"{which} failed: {out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def ours(work: Path, base: Path, protocol: str) -> ServerSpec:
    users = work / "users"
    if not users.exists():
        PasswordFile(users, iterations=4096).add(USER, PASSWORD)
    argv = twistd_argv(
        "--nodaemon", "--pidfile=", "--logfile=-", f"netproto-{protocol}",
        "--listen", "tcp:0:interface=127.0.0.1", "--maildir", str(base), "--passwords", str(users),
        "--data-dir", str(work / "data"), "--allow-insecure-auth",
    )  # fmt: skip
    return ServerSpec(f"netproto-{protocol}", argv, cwd=str(REPO), port_regex=_PORT_RX)


def dovecot(work: Path, base: Path, protocols: tuple[str, ...]) -> Dovecot:
    index = work / f"index-{os.urandom(4).hex()}"
    index.mkdir()
    d = Dovecot(str(base), {USER: PASSWORD}, protocols, index=str(index) + "/%u")
    if os.getuid() == 0:
        os.chown(index, d.uid, d.gid)
    d.start()
    return d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--pop3-messages", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if missing("imap") or missing("pop3"):
        sys.exit(missing("imap") or missing("pop3"))
    work = Path(tempfile.mkdtemp(prefix="bench-imap-"))
    os.chmod(work, 0o755)
    template = work / "template"
    make_template(template, args.messages)
    results: dict[tuple[str, str], list[float]] = {}

    def add(server: str, rows: dict[str, float]) -> None:
        for row, value in rows.items():
            results.setdefault((row, server), []).append(value)

    try:
        for run in range(args.runs):
            for server in ("netproto", "dovecot") if run % 2 == 0 else ("dovecot", "netproto"):
                base = work / f"{server}-{run}"
                copy_tree(template, base)
                if server == "netproto":
                    with ServerProcess(ours(work, base, "imap")) as proc:
                        add(server, imap_rows(proc.wait_ready()))
                else:
                    d = dovecot(work, base, ("imap",))
                    try:
                        add(server, imap_rows(d.ports["imap"]))
                    finally:
                        d.cleanup()
                pbase = work / f"{server}-pop3-{run}"
                copy_tree(template, pbase, args.pop3_messages)
                label = f"POP3 LIST + RETR of {args.pop3_messages} messages"
                if server == "netproto":
                    with ServerProcess(ours(work, pbase, "pop3")) as proc:
                        add(server, {label: pop3_row(proc.wait_ready(), args.pop3_messages)})
                else:
                    d = dovecot(work, pbase, ("pop3",))
                    try:
                        add(server, {label: pop3_row(d.ports["pop3"], args.pop3_messages)})
                    finally:
                        d.cleanup()
            base = work / f"client-{run}"
            copy_tree(template, base)
            d = dovecot(work, base, ("imap",))
            try:
                port = d.ports["imap"]
                client_row(port, "imapclient")  # Dovecot's index built, caches warm
                label = "client: FETCH 1:* (FLAGS ENVELOPE) from Dovecot, parsed"
                for which in ("ours", "imapclient") if run % 2 == 0 else ("imapclient", "ours"):
                    add("netproto client" if which == "ours" else "imapclient",
                        {label: client_row(port, which)})  # fmt: skip
            finally:
                d.cleanup()
            shutil.rmtree(work / f"netproto-{run}", True)
            shutil.rmtree(work / f"dovecot-{run}", True)
    finally:
        shutil.rmtree(work, True)
    print(f"{args.messages} messages, {args.runs} runs, medians (seconds)\n")
    print("| measurement | netproto | Dovecot | ratio (ours / Dovecot) |")
    print("|---|---:|---:|---:|")
    rows = dict.fromkeys(row for row, _ in results)
    for row in rows:
        if row.startswith("client:"):
            a = statistics.median(results[row, "netproto client"])
            b = statistics.median(results[row, "imapclient"])
            print(
                f"| {row} (ours vs imapclient) | {a:.3f} | {b:.3f} (imapclient) | {a / b:.2f}x |"
            )
            continue
        a = statistics.median(results[row, "netproto"])
        b = statistics.median(results[row, "dovecot"])
        print(f"| {row} | {a:.3f} | {b:.3f} | {a / b:.2f}x |")


if __name__ == "__main__":
    main()

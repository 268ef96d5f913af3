"""CI smoke test: start the installed ``twistd -n netproto`` and reach every port it prints.

Run from an empty directory with the CI virtualenv active: the daemon must
start on embedded defaults, print its table, answer on every TCP/TLS port
(and every UDP port: echo and daytime reply, discard swallows), and stop on
SIGTERM within a few seconds.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

ROW = re.compile(r"^\s*(?P<name>\S+)\s+(?P<kind>tcp6?|ssl|udp|unix)\s+(?P<where>\S+)\s*$", re.M)


def split(where: str) -> tuple[str, int]:
    host, _, port = where.rpartition(":")
    return host.strip("[]"), int(port)


def main() -> int:
    twistd = Path(sys.executable).with_name("twistd")
    log = open("smoke.out", "wb")  # noqa: SIM115
    proc = subprocess.Popen(  # noqa: S603 - our own twistd
        [str(twistd), "--nodaemon", "--pidfile=", "netproto"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    text = ""
    while time.monotonic() < deadline:
        text = Path("smoke.out").read_text(errors="replace")
        if "TLS fingerprint:" in text or proc.poll() is not None:
            break
        time.sleep(0.1)
    print(text)
    rows = [m.groupdict() for m in ROW.finditer(text)]
    if proc.poll() is not None or not rows:
        print("smoke: the daemon did not start and print its table")
        proc.kill()
        return 1
    problems = []
    for row in rows:
        host, port = split(row["where"])
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            if row["kind"] == "udp":
                with socket.socket(family, socket.SOCK_DGRAM) as s:
                    s.settimeout(5)
                    s.sendto(b"smoke\r\n", (host, port))
                    if row["name"] != "discard":
                        data, _ = s.recvfrom(2048)
                        assert data, "empty reply"
            else:
                with socket.create_connection((host, port), timeout=5) as s:
                    if row["kind"] == "ssl":
                        ctx = ssl.create_default_context()
                        ctx.check_hostname = False
                        ctx.verify_mode = ssl.CERT_NONE
                        ctx.wrap_socket(s, server_hostname="localhost").close()
            print(f"smoke: {row['name']} {row['kind']} {row['where']} ok")
        except (OSError, AssertionError) as exc:
            problems.append(f"{row['name']} {row['kind']} {row['where']}: {exc}")
    held = socket.create_connection(split(rows[0]["where"]), timeout=5) \
        if rows[0]["kind"] in ("tcp", "tcp6") else None
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        problems.append("did not stop within 15 s of SIGTERM")
        code = -1
    print(f"smoke: stopped in {time.monotonic() - started:.2f} s with exit status {code}")
    if held is not None:
        held.settimeout(5)
        try:
            if held.recv(100) != b"":
                problems.append("held connection got data instead of a close")
        except OSError:
            pass  # reset: closed as well
        held.close()
    # twistd ends a clean shutdown by re-raising the signal that asked for it.
    clean = "Server Shut Down." in Path("smoke.out").read_text()
    if code not in (0, -signal.SIGTERM) or not clean:
        problems.append(f"unclean stop: exit status {code}")
    for p in problems:
        print("smoke: FAIL", p)
    print(Path("smoke.out").read_text(errors="replace")[len(text):])
    return 1 if problems else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

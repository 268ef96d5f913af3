"""Bad input against our IMAP server over loopback: literal bombs, nesting, huge lines, STARTTLS
injection, a client vanishing mid-APPEND, failed logins."""

from __future__ import annotations

import os
import socket
import ssl
import time
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from .loopback import PASSWORD, USER, LoopbackServer, password_file


class Peer:
    """A blocking raw IMAP peer (run in a thread)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.file: Any = self.sock.makefile("rb")
        self.greeting = self.file.readline()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def until(self, tag: bytes) -> list[bytes]:
        """Lines up to and including the one tagged ``tag`` (or EOF)."""
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                return lines
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def command(self, line: bytes) -> list[bytes]:
        tag = line.split(b" ", 1)[0]
        self.send(line + b"\r\n")
        return self.until(tag)

    def login(self) -> None:
        assert self.command(
            b"L LOGIN %s {%d+}\r\n%s" % (USER.encode(), len(PASSWORD), PASSWORD.encode())
        )[-1].startswith(b"L OK")

    def close(self) -> None:
        self.sock.close()


class HostileTests(TestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.base = os.path.join(self.dir, "mail")
        self.server = LoopbackServer(self.dir, self.base, password_file(self.dir))
        self.addCleanup(self.server.stop)

    def peer(self) -> Peer:
        return Peer(self.server.number)

    async def test_literal_sizes(self) -> None:
        def session() -> list[list[bytes]]:
            p = self.peer()
            out = [
                p.command(b"a1 LOGIN {-1}"),
                p.command(b"a2 LOGIN {99999999999999999999999999}"),
                p.command(b"a3 LOGIN {100000}"),  # too big before login: refused, no "+"
            ]
            p.send(b"a4 LOGIN {5000+}\r\n" + b"x" * 5000 + b" pw\r\n")  # read and dropped
            out.append(p.until(b"a4"))
            out.append(p.command(b"a5 NOOP"))
            p.send(b"a6 LOGIN {2000000000+}\r\n")
            out.append(p.until(b"a6") + p.until(b"*"))
            p.close()
            return out

        out = await deferToThread(session)
        self.assertTrue(out[0][-1].startswith(b"a1 BAD"), out[0])
        self.assertTrue(out[1][-1].startswith(b"a2 BAD"), out[1])
        self.assertEqual(out[2], [b"a3 BAD [TOOBIG] literal too large\r\n"])
        self.assertIn(b"[TOOBIG]", out[3][-1])
        self.assertEqual(out[4], [b"a5 OK NOOP completed\r\n"])
        self.assertIn(b"* BYE literal too large\r\n", out[5])

    async def test_nesting_long_lines_and_big_sets(self) -> None:
        def session() -> list[list[bytes]]:
            p = self.peer()
            p.login()
            out = [p.command(b"s SELECT INBOX")]
            out.append(p.command(b"n1 SEARCH " + b"(" * 5000 + b"ALL" + b")" * 5000))
            out.append(p.command(b"n2 SEARCH " + b"NOT " * 5000 + b"ALL"))
            p.send(b"n3 NOOP " + b"x" * (10 * 1024 * 1024) + b"\r\n")
            out.append(p.until(b"*"))  # the tag was in the part skipped
            p.send(
                b"n4 FETCH " + ",".join(str(i) for i in range(1, 100_001)).encode() + b" FLAGS\r\n"
            )
            out.append(p.until(b"*"))
            out.append(
                p.command(
                    b"n5 UID FETCH "
                    + ",".join(str(i) for i in range(1, 8000)).encode()
                    + b" FLAGS"
                )
            )
            out.append(p.command(b"n6 UID SEARCH UID 1:4294967295"))
            out.append(p.command(b"n7 NOOP"))
            p.close()
            return out

        out = await deferToThread(session)
        self.assertIn(b"nested too deeply", out[1][-1])
        self.assertTrue(out[2][-1].startswith(b"n2 BAD"))
        self.assertEqual(out[3], [b"* BAD command line too long\r\n"])
        self.assertIn(b"too long", out[4][0])
        self.assertEqual(out[5][-1], b"n5 OK FETCH completed\r\n")
        self.assertEqual(out[6][-1], b"n6 OK SEARCH completed\r\n")
        self.assertEqual(out[7][-1], b"n7 OK NOOP completed\r\n")

    async def test_plaintext_pipelined_after_starttls_is_dropped(self) -> None:
        cert = str(self.server.cert)

        def session() -> list[bytes]:
            p = self.peer()
            p.send(b"t STARTTLS\r\nx LOGIN alice {13+}\r\ncorrect horse\r\n")
            reply = p.until(b"t")
            context = ssl.create_default_context(cafile=cert)
            tls = context.wrap_socket(p.sock, server_hostname="localhost")
            f = tls.makefile("rb")
            tls.sendall(b"c CAPABILITY\r\n")
            lines = []
            while True:
                line = f.readline()
                lines.append(line)
                if not line or line.startswith(b"c "):
                    break
            tls.close()
            return reply + lines

        lines = await deferToThread(session)
        self.assertEqual(lines[0], b"t OK Begin TLS negotiation now\r\n")
        self.assertFalse(any(line.startswith(b"x ") for line in lines), lines)
        self.assertIn(b"AUTH=PLAIN", lines[1])  # not logged in: the capabilities of the start
        self.assertEqual(lines[-1], b"c OK CAPABILITY completed\r\n")

    async def test_vanishing_mid_append_leaves_nothing(self) -> None:
        root = os.path.join(self.base, USER)

        def session() -> tuple[list[bytes], list[str]]:
            p = self.peer()
            p.login()
            p.send(b"a APPEND INBOX {100000}\r\n")
            go = p.file.readline()
            p.send(b"Subject: partial\r\n\r\n" + b"y" * 50_000)
            p.close()
            q = self.peer()
            q.login()
            left: list[str] = []
            for _ in range(100):  # until the server has seen the first connection go
                q.command(b"n NOOP")
                left = os.listdir(os.path.join(root, "tmp"))
                if not left:
                    break
            status = q.command(b"s STATUS INBOX (MESSAGES)")
            q.close()
            return [go, *status], left

        lines, left = await deferToThread(session)
        self.assertEqual(lines[0], b"+ Ready for literal data\r\n")
        self.assertIn(b"(MESSAGES 0)", lines[1])
        self.assertEqual(left, [])
        self.assertEqual(os.listdir(os.path.join(root, "cur")), [])

    async def test_append_streams_and_commits(self) -> None:
        body = b"Subject: big\r\n\r\n" + b"z" * 300_000 + b"\r\n"

        def session() -> list[bytes]:
            p = self.peer()
            p.login()
            p.send(b"a APPEND INBOX (\\Seen) {%d}\r\n" % len(body))
            p.file.readline()
            p.send(body + b"\r\n")
            out = p.until(b"a")
            out += p.command(b"b SELECT INBOX")
            out += p.command(b"c FETCH 1 (RFC822.SIZE FLAGS)")
            p.close()
            return out

        lines = await deferToThread(session)
        self.assertTrue(lines[0].startswith(b"a OK [APPENDUID "), lines[0])
        self.assertIn(b"* 1 FETCH (RFC822.SIZE %d FLAGS (\\Seen))\r\n" % len(body), lines)

    async def test_failed_logins_are_delayed(self) -> None:
        def session() -> list[float]:
            p = self.peer()
            times = []
            for i in range(3):
                start = time.monotonic()
                reply = p.command(b"f%d LOGIN alice wrong" % i)
                assert b"AUTHENTICATIONFAILED" in reply[-1], reply
                times.append(time.monotonic() - start)
            p.close()
            return times

        times = await deferToThread(session)
        self.assertGreaterEqual(min(times[1:]), 0.15, times)

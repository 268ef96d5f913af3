"""A 25 MB message (DATA and BDAT) is streamed to the Maildir, never held whole in memory.

The client is a child process (so that its copy of the message is not
counted); the server runs in this process under :mod:`tracemalloc`.
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import sys
import tracemalloc

from twisted.internet.defer import Deferred
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from .test_smtp_server_peers import LiveServerMixin, maildir_messages

SIZE = 25 * 1024 * 1024
#: Python objects the server may allocate while 25 MB pass through it.
BUDGET = 8 * 1024 * 1024

CLIENT = r"""
import smtplib, socket, sys
port, mode, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
line = b"x" * 78 + b"\r\n"
body = b"Subject: big\r\n\r\n" + line * (size // len(line))
if mode == "data":
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        refused = s.sendmail("big@client.example", ["alice@example.org"], body)
        assert not refused, refused
else:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
        f = raw.makefile("rb")
        f.readline()
        raw.sendall(b"EHLO c\r\nMAIL FROM:<big@client.example> BODY=BINARYMIME\r\n"
                    b"RCPT TO:<alice@example.org>\r\n")
        chunk = 1024 * 1024
        for offset in range(0, len(body), chunk):
            piece = body[offset:offset + chunk]
            last = b" LAST" if offset + chunk >= len(body) else b""
            raw.sendall(b"BDAT %d%s\r\n" % (len(piece), last) + piece)
        replies = []
        while True:
            line_ = f.readline()
            replies.append(line_)
            if b"queued as" in line_ or not line_ or line_[:1] in (b"4", b"5"):
                break
        assert b"queued as" in replies[-1], replies[-3:]
        raw.sendall(b"QUIT\r\n")
print(len(body))
"""


class StreamingTests(LiveServerMixin, TestCase):
    timeout = 120

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return self.start_server(self, max_size=SIZE + 1024 * 1024)

    async def send_big(self, mode: str) -> None:
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-c", CLIENT, str(self.mx), mode, str(SIZE)]
        )
        _, peak = tracemalloc.get_traced_memory()
        self.assertEqual(code, 0, err.decode("utf-8", "replace"))
        sent = int(out)
        [stored] = maildir_messages(self.maildir, "alice")
        self.assertTrue(stored.startswith(b"Received: "))
        self.assertTrue(stored.endswith(b"x" * 78 + b"\r\n"))
        self.assertGreater(len(stored), sent)
        self.assertLess(peak - base, BUDGET, f"peak {peak - base} bytes for a {sent} byte message")

    async def test_data_25mb(self) -> None:
        await self.send_big("data")

    async def test_bdat_25mb(self) -> None:
        await self.send_big("bdat")

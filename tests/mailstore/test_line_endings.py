"""End to end over loopback: mail sent through SMTP is stored with LF and read back with CRLF.

smtplib sends, poplib and imaplib read (in threads, against our servers of
:func:`netproto_twisted.testing.start_mail_servers`): the files hold no CR,
their ``W=`` is the CRLF size, and both readers get exactly the bytes SMTP
carried.  Files stored with CRLF by earlier versions read the same.
"""

from __future__ import annotations

import imaplib
import os
import poplib
import re
import smtplib
import socket
from typing import Any

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from netproto_twisted.mailstore.filenames import parse_filename
from netproto_twisted.testing import MailServers, start_mail_servers

USER, PASSWORD = "alice", "secret"
ADDRESS = "alice@example.org"

PLAIN = b"Subject: plain\r\nFrom: bob@example.org\r\n\r\nline one\r\n.dot line\r\n\r\nend\r\n"
EIGHT_BIT = (
    b"Subject: caf\xc3\xa9\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\n\xff\xfe\x80\x00 binary\r\n\xc3\xa9t\xc3\xa9\r\n"
)
# Given as str, smtplib turns a bare LF and a lone CR into CRLF (as RFC 5321 asks).
ODD_ENDINGS = b"Subject: odd\r\n\r\nbare LF\nlone CR\rafter\r\n"
NO_FINAL_NEWLINE = b"Subject: unfinished\r\n\r\nno newline at the end"


def _wire(message: bytes) -> bytes:
    """What smtplib puts on the wire for ``message`` (dot-stuffing undone)."""
    fixed = re.sub(rb"(?:\r\n|\n|\r(?!\n))", b"\r\n", message)
    return fixed if fixed.endswith(b"\r\n") else fixed + b"\r\n"


def _files(base: str, folder: str = "") -> dict[str, bytes]:
    """The message files of a folder (``""``: INBOX), by name, with their contents."""
    out: dict[str, bytes] = {}
    root = os.path.join(base, USER, folder)
    for sub in ("new", "cur"):
        for name in os.listdir(os.path.join(root, sub)):
            with open(os.path.join(root, sub, name), "rb") as f:
                out[name] = f.read()
    return out


def _same(got: list[bytes], expected: list[bytes]) -> str | None:
    """Where two lists of messages first differ (None: equal); no slow diff of large bytes."""
    if len(got) != len(expected):
        return f"{len(got)} messages, expected {len(expected)}"
    for index, (a, b) in enumerate(zip(got, expected, strict=True)):
        if a != b:
            at = next(
                (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)),
            )
            return f"message {index}: {a[at - 20 : at + 20]!r} != {b[at - 20 : at + 20]!r}"
    return None


class _Servers(TestCase):
    def assert_messages(self, got: list[bytes], expected: list[bytes]) -> None:
        """Assert two lists of messages are equal, telling where they differ."""
        problem = _same(got, expected)
        if problem is not None:
            self.fail(problem)

    async def start(self) -> MailServers:
        servers = await start_mail_servers(reactor, self.mktemp(), {USER: PASSWORD})
        self.addCleanup(servers.stop)
        return servers

    def imap(self, servers: MailServers) -> imaplib.IMAP4:
        c = imaplib.IMAP4(servers.host, servers.imap_port, timeout=30)
        c.login(USER, PASSWORD)
        return c


def _fetch_all(c: imaplib.IMAP4, items: str) -> list[tuple[bytes, bytes]]:
    """``FETCH 1:* items``: [(response head, literal)] per message."""
    typ, data = c.fetch("1:*", items)
    assert typ == "OK", data
    return [d for d in data if isinstance(d, tuple)]


class SMTPToReadersTests(_Servers):
    async def test_smtp_pop3_imap_bytes_and_sizes(self) -> None:
        servers = await self.start()
        messages = [PLAIN, EIGHT_BIT, ODD_ENDINGS, NO_FINAL_NEWLINE]

        def send() -> None:
            with smtplib.SMTP(servers.host, servers.smtp_port, timeout=30) as s:
                for message in messages:
                    # As str, smtplib fixes the line endings (not as bytes: our server
                    # refuses a bare CR or LF).
                    sent = message.decode() if message is ODD_ENDINGS else message
                    s.sendmail("bob@example.org", [ADDRESS], sent, ["BODY=8BITMIME"])

        await deferToThread(send)
        files = _files(servers.base)
        self.assertEqual(len(files), len(messages))
        for name, content in files.items():
            self.assertNotIn(b"\r", content, name)  # LF on disk, as Dovecot and mutt expect
            parsed = parse_filename(name)
            self.assertEqual(parsed.size, len(content))
            self.assertEqual(parsed.virtual_size, len(content) + content.count(b"\n"))

        def pop3() -> tuple[list[int], list[bytes]]:
            c = poplib.POP3(servers.host, servers.pop3_port, timeout=30)
            try:
                c.user(USER)
                c.pass_(PASSWORD)
                _, listing, _ = c.list()
                sizes = [int(line.split()[1]) for line in listing]
                bodies = []
                for number in range(1, len(listing) + 1):
                    _, lines, _octets = c.retr(number)
                    bodies.append(b"\r\n".join(lines) + b"\r\n")
                return sizes, bodies
            finally:
                c.quit()

        sizes, popped = await deferToThread(pop3)

        def imap() -> list[tuple[bytes, bytes]]:
            c = self.imap(servers)
            try:
                c.select("INBOX", readonly=True)
                return _fetch_all(c, "(RFC822.SIZE BODY.PEEK[])")
            finally:
                c.logout()

        fetched = await deferToThread(imap)
        virtual = sorted(parse_filename(name).virtual_size or 0 for name in files)
        self.assertEqual(sorted(sizes), virtual)
        for message, size, body, (head, literal) in zip(
            messages, sizes, popped, fetched, strict=True
        ):
            self.assertTrue(body.startswith(b"Received: "))  # the SMTP server's trace
            self.assertTrue(body.endswith(_wire(message)), body)
            self.assertEqual(len(body), size)
            self.assertEqual(literal, body)  # IMAP serves the same octets
            self.assertIn(b"RFC822.SIZE %d " % size, head)

    async def test_partial_fetches_count_crlf_offsets(self) -> None:
        servers = await self.start()
        body = b"".join(b"line %d of the body\r\n" % i for i in range(3000))  # > 64 KiB
        message = b"Subject: long\r\n\r\n" + body

        def send() -> None:
            with smtplib.SMTP(servers.host, servers.smtp_port, timeout=30) as s:
                s.sendmail("bob@example.org", [ADDRESS], message)

        await deferToThread(send)

        def imap() -> tuple[bytes, list[bytes]]:
            c = self.imap(servers)
            try:
                c.select("INBOX", readonly=True)
                whole = _fetch_all(c, "(BODY.PEEK[])")[0][1]
                parts = [
                    _fetch_all(c, f"(BODY.PEEK[]<{start}.{count}>)")[0][1]
                    for start, count in ((0, 10), (5, 100), (70_000, 500), (len(whole) - 7, 50))
                ]
                _fetch_all(c, "(BODY.PEEK[HEADER])")  # the header is now known
                parts.append(_fetch_all(c, "(BODY.PEEK[TEXT]<40000.30>)")[0][1])
                parts.append(_fetch_all(c, "(BINARY.PEEK[]<100.30>)")[0][1])
                return whole, parts
            finally:
                c.logout()

        whole, parts = await deferToThread(imap)
        text = whole[whole.index(b"\r\n\r\n") + 4 :]
        self.assert_messages(
            parts,
            [whole[0:10], whole[5:105], whole[70_000:70_500], whole[-7:], text[40000:40030],
             whole[100:130]],
        )  # fmt: skip

    async def test_bdat_lone_cr_and_no_final_newline_through_imap(self) -> None:
        """BDAT carries any bytes: a lone CR (and CR CR LF) and no final CRLF come back as sent."""
        servers = await self.start()
        message = b"Subject: bdat\r\n\r\na\rb\r\nx\r\r\n\x00\xff binary\r\nno final newline"

        def send() -> None:
            with socket.create_connection((servers.host, servers.smtp_port), timeout=30) as s:
                f = s.makefile("rb")
                f.readline()
                s.sendall(b"EHLO client.example\r\n")
                while not f.readline().startswith(b"250 "):
                    pass
                s.sendall(
                    b"MAIL FROM:<bob@example.org> BODY=BINARYMIME\r\n"
                    b"RCPT TO:<%s>\r\nBDAT %d LAST\r\n"
                    % (ADDRESS.encode(), len(message))
                    + message
                )
                replies = [f.readline() for _ in range(3)]
                s.sendall(b"QUIT\r\n")
                f.readline()
            assert all(r.startswith(b"250") for r in replies), replies

        await deferToThread(send)

        def imap() -> list[tuple[bytes, bytes]]:
            c = self.imap(servers)
            try:
                c.select("INBOX", readonly=True)
                return _fetch_all(c, "(RFC822.SIZE BODY.PEEK[])")
            finally:
                c.logout()

        [(head, literal)] = await deferToThread(imap)
        self.assertTrue(literal.endswith(message), literal)
        self.assertIn(b"RFC822.SIZE %d " % len(literal), head)
        [name] = _files(servers.base)
        self.assertEqual(parse_filename(name).virtual_size, len(literal))


class AppendCopyTests(_Servers):
    async def test_append_and_copy_store_lf_and_read_back_identically(self) -> None:
        servers = await self.start()
        messages = [PLAIN, EIGHT_BIT, NO_FINAL_NEWLINE, b"Subject: cr\r\n\r\nlone\rCR\r\r\n"]

        def session() -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
            c = self.imap(servers)
            try:
                c.create("Archive")
                for message in messages:
                    # Not c.append(): imaplib would turn the lone CR into CRLF.
                    c.literal = message  # type: ignore[attr-defined]
                    typ, data = c._simple_command("APPEND", "INBOX", "(\\Seen)")
                    assert typ == "OK", data
                c.select("INBOX")
                typ, data = c.copy("1:*", "Archive")
                assert typ == "OK", data
                inbox = _fetch_all(c, "(RFC822.SIZE BODY.PEEK[])")
                c.select("Archive", readonly=True)
                return inbox, _fetch_all(c, "(RFC822.SIZE BODY.PEEK[])")
            finally:
                c.logout()

        inbox, archive = await deferToThread(session)
        for fetched in (inbox, archive):
            self.assert_messages([literal for _, literal in fetched], messages)
            for (head, _), message in zip(fetched, messages, strict=True):
                self.assertIn(b"RFC822.SIZE %d " % len(message), head)
        for folder in ("", ".Archive"):
            files = _files(servers.base, folder)
            self.assertEqual(len(files), len(messages))
            stored = [m.replace(b"\r\n", b"\n") for m in messages[:3]]
            stored.append(b"Subject: cr\n\nlone\rCR\r\r\n")  # the CR before CRLF stays
            self.assertEqual(sorted(files.values()), sorted(stored))
            for name, content in files.items():
                parsed = parse_filename(name)
                self.assertEqual(parsed.size, len(content))
                if b"lone" not in content:
                    self.assertNotIn(b"\r", content)


class OldCRLFFileTests(_Servers):
    """Files stored with CRLF (by earlier versions, or other programs) read unchanged."""

    async def test_old_crlf_files_read_without_doubled_cr(self) -> None:
        servers = await self.start()
        old = b"Subject: from an older version\r\n\r\n" + b"body line\r\n" * 10000
        cur = os.path.join(servers.base, USER, "cur")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(servers.base, USER, sub), exist_ok=True)
        with open(os.path.join(cur, f"1700000000.M1P1.old,S={len(old)}:2,S"), "wb") as f:
            f.write(old)
        lf_only = b"Subject: another program\n\nno size in my name\n"
        with open(os.path.join(cur, "1700000001.M2P2.postfix:2,"), "wb") as f:
            f.write(lf_only)
        expected = [old, lf_only.replace(b"\n", b"\r\n")]

        def read() -> tuple[Any, ...]:
            c = self.imap(servers)
            try:
                c.select("INBOX", readonly=True)
                fetched = _fetch_all(c, "(RFC822.SIZE BODY.PEEK[])")
                partial = _fetch_all(c, "(BODY.PEEK[]<40.25>)")
                _typ, larger = c.search(None, "LARGER", str(len(expected[1]) - 1))
            finally:
                c.logout()
            p = poplib.POP3(servers.host, servers.pop3_port, timeout=30)
            try:
                p.user(USER)
                p.pass_(PASSWORD)
                _, listing, _ = p.list()
                popped = [b"\r\n".join(p.retr(n)[1]) + b"\r\n" for n in (1, 2)]
            finally:
                p.quit()
            return fetched, partial, larger, listing, popped

        fetched, partial, larger, listing, popped = await deferToThread(read)
        self.assert_messages([literal for _, literal in fetched], expected)
        for (head, _), message in zip(fetched, expected, strict=True):
            self.assertIn(b"RFC822.SIZE %d" % len(message), head)
        self.assertEqual([literal for _, literal in partial], [m[40:65] for m in expected])
        self.assertEqual(larger, [b"1 2"])
        self.assert_messages(popped, expected)
        self.assertEqual(listing, [b"1 %d" % len(expected[0]), b"2 %d" % len(expected[1])])

"""Real peers against our server over loopback: poplib (in a thread), curl, raw sockets."""

from __future__ import annotations

import os
import poplib
import shutil
import socket
import ssl
import subprocess

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from netproto_twisted.mailstore.maildrop_lock import SESSION_LOCK_NAME
from tests.waiting import wait_for_files

from .helpers import MESSAGES, PASSWORD, USER, maildir_files, make_maildir, password_file
from .loopback import LoopbackServer

CURL = shutil.which("curl")


class PoplibTests(TestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.base = os.path.join(self.dir, "mail")
        make_maildir(self.base)
        self.users = password_file(self.dir)
        self.server = LoopbackServer(self.dir, self.base, self.users)
        self.addCleanup(self.server.stop)

    def client(self) -> poplib.POP3:
        return poplib.POP3("127.0.0.1", self.server.number, timeout=30)

    async def test_user_pass_and_every_command_deletion_after_quit(self) -> None:
        base = self.base

        def session() -> dict[str, object]:
            pop = self.client()
            seen: dict[str, object] = {"welcome": pop.getwelcome()}
            seen["capa"] = pop.capa()
            pop.user(USER)
            pop.pass_(PASSWORD)
            seen["stat"] = pop.stat()
            seen["list"] = pop.list()[1]
            seen["uidl"] = pop.uidl()[1]
            seen["retr"] = [pop.retr(i)[1] for i in (1, 2, 3)]
            seen["top"] = pop.top(2, 1)[1]
            pop.dele(1)
            pop.dele(3)
            seen["files_before_quit"] = len(maildir_files(base))
            seen["quit"] = pop.quit()
            return seen

        seen = await deferToThread(session)
        self.assertEqual(seen["welcome"], b"+OK pop.test POP3 server ready")
        capa = seen["capa"]
        assert isinstance(capa, dict)
        self.assertIn("UIDL", capa)
        self.assertIn("TOP", capa)
        self.assertEqual(capa["SASL"], ["SCRAM-SHA-256", "PLAIN", "LOGIN"])
        self.assertEqual(seen["stat"], (3, 168))
        self.assertEqual(seen["list"], [b"1 51", b"2 71", b"3 46"])
        retrieved = seen["retr"]
        assert isinstance(retrieved, list)
        self.assertEqual(retrieved[1], MESSAGES[1].split(b"\r\n")[:-1])
        self.assertEqual(retrieved[2], MESSAGES[2].split(b"\n")[:-1])  # LF file, CRLF wire
        self.assertEqual(
            seen["top"], [b"From: carol@example.org", b"Subject: two", b"", b".leading dot"]
        )
        self.assertEqual(seen["files_before_quit"], 3)
        self.assertTrue(str(seen["quit"]).startswith("b'+OK signing off (2 messages deleted"))
        self.assertEqual(len(maildir_files(self.base)), 1)

    async def test_stls(self) -> None:
        cert = str(self.server.cert)

        def session() -> tuple[object, ...]:
            pop = self.client()
            context = ssl.create_default_context(cafile=cert)
            context.check_hostname = False
            pop.stls(context)
            capa = pop.capa()
            pop.user(USER)
            pop.pass_(PASSWORD)
            cipher = pop.sock.cipher()  # type: ignore[attr-defined]
            stat = pop.stat()
            body = pop.retr(2)[1]
            pop.quit()
            return capa, stat, cipher, body

        capa, stat, cipher, body = await deferToThread(session)
        self.assertEqual(body, MESSAGES[1].split(b"\r\n")[:-1])  # streamed through TLS
        assert isinstance(capa, dict)
        self.assertNotIn("STLS", capa)
        self.assertEqual(stat, (3, 168))
        self.assertIsNotNone(cipher)

    async def test_second_session_in_use_and_wrong_password(self) -> None:
        def session() -> tuple[str, str]:
            first = self.client()
            first.user(USER)
            first.pass_(PASSWORD)
            second = self.client()
            second.user(USER)
            try:
                second.pass_(PASSWORD)
                in_use = "no error"
            except poplib.error_proto as e:
                in_use = str(e)
            second.user(USER)
            try:
                second.pass_("wrong")
                wrong = "no error"
            except poplib.error_proto as e:
                wrong = str(e)
            first.quit()
            second.quit()
            return in_use, wrong

        in_use, wrong = await deferToThread(session)
        self.assertIn("-ERR [IN-USE]", in_use)
        self.assertIn("-ERR [AUTH]", wrong)

    async def test_abrupt_disconnect_mid_retr_deletes_nothing(self) -> None:
        big = b"Subject: big\r\n\r\n" + b"x" * 1000 + b"\r\n"
        make_maildir(self.base, [big * 4000])  # about 4 MB
        port = self.server.number
        lock = os.path.join(self.base, USER, SESSION_LOCK_NAME)

        def session() -> int:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                f = s.makefile("rb")
                f.readline()
                s.sendall(b"USER alice\r\nPASS correct horse\r\nDELE 1\r\nDELE 2\r\nRETR 4\r\n")
                lines = [f.readline() for _ in range(5)]
                assert lines[-1].startswith(b"+OK"), lines
                got = len(f.read(65536))
                linger = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # close with a reset
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            return got

        got = await deferToThread(session)
        self.assertGreater(got, 0)
        # Released once the server saw the reset: woken by inotify, bounded.
        await deferToThread(
            wait_for_files, [os.path.dirname(lock)], lambda: not os.path.exists(lock), 30
        )
        self.assertEqual(len(maildir_files(self.base)), 4)

    async def test_pipelined_commands_and_junk_over_a_socket(self) -> None:
        port = self.server.number

        def session() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                s.sendall(
                    b"\x00\xff\xfe junk\r\n" + b"A" * 5000 + b"\r\nUSER alice\r\n"
                    b"PASS correct horse\r\nSTAT\r\nNOOP\r\nQUIT\r\n"
                )
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        return data
                    data += chunk

        data = await deferToThread(session)
        self.assertEqual(
            data.split(b"\r\n"),
            [
                b"+OK pop.test POP3 server ready",
                b"-ERR command is not UTF-8",
                b"-ERR line too long",
                b"+OK send PASS",
                b"+OK maildrop has 3 messages (168 octets)",
                b"+OK 3 168",
                b"+OK",
                b"+OK signing off (0 messages deleted, 3 left)",
                b"",
            ],
        )

    async def test_curl_pop3_url(self) -> None:
        if CURL is None:
            raise self.skipTest("curl is not installed (apt-get install curl)")
        url = f"pop3://127.0.0.1:{self.server.number}/"

        def run(*args: str) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(
                [CURL, "-s", "-S", "--user", f"{USER}:{PASSWORD}", *args],
                capture_output=True,
                timeout=60,
                check=False,
            )

        listing = await deferToThread(run, url)
        self.assertEqual(listing.returncode, 0, listing.stderr)
        self.assertEqual(listing.stdout, b"1 51\r\n2 71\r\n3 46\r\n")
        message = await deferToThread(run, url + "2")
        self.assertEqual(message.returncode, 0, message.stderr)
        self.assertEqual(message.stdout, MESSAGES[1])
        sasl = await deferToThread(run, "--login-options", "AUTH=PLAIN", url + "3")
        self.assertEqual(sasl.returncode, 0, sasl.stderr)
        self.assertEqual(sasl.stdout, MESSAGES[2].replace(b"\n", b"\r\n"))
        tls = await deferToThread(
            run,
            "--ssl-reqd",
            "--cacert",
            str(self.server.cert),
            "--resolve",
            f"localhost:{self.server.number}:127.0.0.1",
            "-k",
            url + "1",
        )
        self.assertEqual(tls.returncode, 0, tls.stderr)
        self.assertEqual(tls.stdout, MESSAGES[0])

    async def test_plaintext_pipelined_after_stls_is_not_answered(self) -> None:
        port, cert = self.server.number, str(self.server.cert)

        def session() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
                f = raw.makefile("rb")
                f.readline()
                raw.sendall(b"STLS\r\nCAPA\r\n")  # CAPA injected in clear, before the handshake
                assert f.readline().startswith(b"+OK")
                context = ssl.create_default_context(cafile=cert)
                context.check_hostname = False
                with context.wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.sendall(b"NOOP\r\nQUIT\r\n")
                    data = b""
                    while True:
                        chunk = tls.recv(4096)
                        if not chunk:
                            return data
                        data += chunk

        data = await deferToThread(session)
        self.assertEqual(
            data,
            b"-ERR command not valid in this state\r\n+OK pop.test POP3 server signing off\r\n",
        )

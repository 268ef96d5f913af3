"""Our SMTP server over loopback with real peers: smtplib, swaks, Postfix's smtp-source.

The server runs in-process on the real reactor (``build_service``, as the
daemon builds it) with Maildir delivery; relayed mail goes to a capture
target.  Blocking clients run in threads, programs as child processes.
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import os
import shutil
import smtplib
import socket
import ssl
import subprocess
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase

from netproto_twisted.core.passwords import PasswordFile
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.core.tls import ensure_dev_certificate, server_context
from netproto_twisted.mailstore.eol import to_crlf
from netproto_twisted.smtp.delivery import CaptureTarget
from netproto_twisted.smtp.tap import Config, build_service

reactor: Any = _reactor
T = TypeVar("T")
SWAKS = shutil.which("swaks")
SMTP_SOURCE = shutil.which("smtp-source") or (
    "/usr/sbin/smtp-source" if os.path.exists("/usr/sbin/smtp-source") else None
)
PASSWORD = "secret-pw"


def _perl_has_tls() -> bool:
    try:
        return (
            subprocess.run(
                ["perl", "-MNet::SSLeay", "-MIO::Socket::SSL", "-e1"],
                capture_output=True,
                check=False,
                timeout=30,
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


SWAKS_TLS = bool(SWAKS) and _perl_has_tls()


def maildir_messages(base: Path, user: str) -> list[bytes]:
    """The messages in ``user``'s ``new/``, as readers get them: with CRLF (the files hold LF)."""
    new = base / user / "new"
    if not new.is_dir():
        return []
    return [to_crlf(p.read_bytes()) for p in sorted(new.iterdir())]


class LiveServerMixin:
    """Starts the SMTP service on ephemeral loopback ports for each test."""

    config_overrides: dict[str, Any] = {}

    def start_server(
        self, test: TestCase, complete: Callable[[str], str] | None = None, **overrides: Any
    ) -> Deferred[None]:
        self.tmp = Path(test.mktemp()).absolute()
        self.tmp.mkdir(parents=True)
        users = PasswordFile(self.tmp / "users", iterations=4096)
        users.add("alice", PASSWORD, cram_md5=True)
        users.add("bob", PASSWORD)
        self.cert, self.key = ensure_dev_certificate(self.tmp)
        self.maildir = self.tmp / "mail"
        self.relay = CaptureTarget()
        settings: dict[str, Any] = {
            "listen": ("tcp:0:interface=127.0.0.1",),
            "submission": ("tcp:0:interface=127.0.0.1",),
            "domains": ("example.org",),
            "maildir": str(self.maildir),
            "users": str(self.tmp / "users"),
            "queue": str(self.tmp / "queue"),
            **self.config_overrides,
            **overrides,
        }
        self.service = build_service(
            Config(**settings),
            reactor,
            data_dir=self.tmp,
            tls=server_context(self.cert, self.key),
            complete_endpoint=complete or (lambda text: text),
            targets={"relay": self.relay},
        )
        self.service.startService()
        test.addCleanup(self.service.stopService)
        listeners = {s.name: s for s in self.service if isinstance(s, EndpointsService)}

        async def ports() -> None:
            self.ports: dict[str, int] = {}
            for name, listener in listeners.items():
                addresses = await listener.when_listening()
                self.ports[str(name)] = int(addresses[0][1].rsplit(":", 1)[1])

        return ensureDeferred(ports())

    @property
    def mx(self) -> int:
        return self.ports["smtp"]

    @property
    def submission(self) -> int:
        return self.ports["submission"]


def in_thread(f: Callable[[], T]) -> Deferred[T]:
    return deferToThread(f)


def tls_client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class SmtplibTests(LiveServerMixin, TestCase):
    timeout = 60

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return self.start_server(self)

    async def test_sendmail_to_local_user(self) -> None:
        message = b"Subject: hello\r\n\r\nfirst line\r\n.starts with a dot\r\n"

        def send() -> dict[str, tuple[int, bytes]]:
            with smtplib.SMTP("127.0.0.1", self.mx, timeout=10) as s:
                return s.sendmail(
                    "sender@client.example", ["alice@example.org", "nobody@example.org"], message
                )

        refused = await in_thread(send)
        self.assertEqual(list(refused), ["nobody@example.org"])
        self.assertEqual(refused["nobody@example.org"][0], 550)
        [stored] = maildir_messages(self.maildir, "alice")
        self.assertTrue(stored.startswith(b"Received: from "))
        self.assertTrue(stored.endswith(message))

    async def test_not_an_open_relay(self) -> None:
        def send() -> None:
            with smtplib.SMTP("127.0.0.1", self.mx, timeout=10) as s:
                s.sendmail("spammer@client.example", ["victim@far.example"], b"Subject: x\r\n\r\n")

        with self.assertRaises(smtplib.SMTPRecipientsRefused) as caught:
            await in_thread(send)
        code, text = caught.exception.recipients["victim@far.example"]
        self.assertEqual((code, text[:5]), (554, b"5.7.1"))
        self.assertEqual(self.relay.opened, 0)

    async def test_starttls_login_and_relay_on_submission(self) -> None:
        def send() -> tuple[bool, dict[str, tuple[int, bytes]]]:
            with smtplib.SMTP("127.0.0.1", self.submission, timeout=10) as s:
                s.ehlo()
                before = s.has_extn("auth")
                s.starttls(context=tls_client_context())
                s.login("alice", PASSWORD)
                return before, s.sendmail(
                    "alice@example.org", ["friend@far.example"], b"Subject: out\r\n\r\nhi\r\n"
                )

        auth_before_tls, refused = await in_thread(send)
        self.assertFalse(auth_before_tls)
        self.assertEqual(refused, {})
        [message] = self.relay.messages
        self.assertEqual(message.envelope.authenticated_as, "alice")
        self.assertTrue(message.envelope.tls)

    async def test_submission_refuses_unauthenticated_mail(self) -> None:
        def send() -> None:
            with smtplib.SMTP("127.0.0.1", self.submission, timeout=10) as s:
                s.sendmail("a@example.org", ["alice@example.org"], b"x")

        with self.assertRaises(smtplib.SMTPSenderRefused) as caught:
            await in_thread(send)
        self.assertEqual(caught.exception.smtp_code, 530)

    async def test_wrong_password(self) -> None:
        def login() -> None:
            with smtplib.SMTP("127.0.0.1", self.submission, timeout=10) as s:
                s.starttls(context=tls_client_context())
                s.login("alice", "wrong")

        with self.assertRaises(smtplib.SMTPAuthenticationError) as caught:
            await in_thread(login)
        self.assertEqual(caught.exception.smtp_code, 535)

    async def test_smtputf8_message(self) -> None:
        msg = EmailMessage()
        msg["From"] = "jörg@client.example"
        msg["To"] = "bob@example.org"
        msg["Subject"] = "grüße"
        msg.set_content("ünïcödé body\n")

        def send() -> dict[str, tuple[int, bytes]]:
            with smtplib.SMTP("127.0.0.1", self.mx, timeout=10) as s:
                return s.send_message(msg)

        self.assertEqual(await in_thread(send), {})
        [stored] = maildir_messages(self.maildir, "bob")
        self.assertIn("grüße".encode(), stored)
        self.assertIn(b"with UTF8SMTP", stored)

    async def test_size_enforced_before_and_during_data(self) -> None:
        await self.service.stopService()
        await self.start_server(self, max_size=10_000)
        big = b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 200

        def declared() -> None:
            with smtplib.SMTP("127.0.0.1", self.mx, timeout=10) as s:
                s.sendmail("a@client.example", ["alice@example.org"], big)

        with self.assertRaises(smtplib.SMTPSenderRefused) as caught:
            await in_thread(declared)
        self.assertEqual(caught.exception.smtp_code, 552)

        def undeclared() -> tuple[int, bytes]:
            with smtplib.SMTP("127.0.0.1", self.mx, timeout=10) as s:
                s.ehlo()
                s.mail("a@client.example")
                s.rcpt("alice@example.org")
                reply = s.data(big)
                s.noop()
                return reply

        code, text = await in_thread(undeclared)
        self.assertEqual((code, text[:5]), (552, b"5.3.4"))
        self.assertEqual(maildir_messages(self.maildir, "alice"), [])


class RawSocketAttackTests(LiveServerMixin, TestCase):
    timeout = 60

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return self.start_server(self)

    async def test_starttls_injection(self) -> None:
        """CVE-2011-0411 over a real TLS upgrade: the piggy-backed command is discarded."""

        def attack() -> list[bytes]:
            with socket.create_connection(("127.0.0.1", self.mx), timeout=10) as raw:
                f = raw.makefile("rb")
                f.readline()
                raw.sendall(b"EHLO attacker.example\r\n")
                while not f.readline().startswith(b"250 "):
                    pass
                raw.sendall(b"STARTTLS\r\nMAIL FROM:<injected@x.example>\r\n")
                ready = f.readline()
                tls = tls_client_context().wrap_socket(raw, server_hostname="localhost")
                g = tls.makefile("rb")
                tls.sendall(b"EHLO attacker.example\r\n")
                first_after = g.readline()
                while not g.readline().startswith(b"250 "):
                    pass
                tls.sendall(b"MAIL FROM:<real@x.example>\r\n")
                mail = g.readline()
                tls.sendall(b"QUIT\r\n")
                return [ready, first_after, mail]

        ready, first_after, mail = await in_thread(attack)
        self.assertTrue(ready.startswith(b"220 "))
        # Had the injected MAIL run inside TLS, its 503 would come before the EHLO reply.
        self.assertTrue(first_after.startswith(b"250-"), first_after)
        self.assertTrue(mail.startswith(b"250 "), mail)

    async def test_abrupt_disconnect_mid_data_leaves_nothing(self) -> None:
        def half() -> bytes:
            with socket.create_connection(("127.0.0.1", self.mx), timeout=10) as raw:
                f = raw.makefile("rb")
                f.readline()
                raw.sendall(
                    b"EHLO c\r\nMAIL FROM:<a@client.example>\r\nRCPT TO:<alice@example.org>\r\n"
                    b"DATA\r\n"
                )
                lines = [f.readline() for _ in range(13)]
                raw.sendall(b"Subject: half\r\n\r\n" + b"y" * 200_000)
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                return lines[-1]

        self.assertTrue((await in_thread(half)).startswith(b"354"))

        # Then a full message on a new connection: once it is stored, the first
        # connection's loss has long been handled (one reactor, one order).
        def full() -> None:
            with smtplib.SMTP("127.0.0.1", self.mx, timeout=10) as s:
                s.sendmail("a@client.example", ["bob@example.org"], b"Subject: whole\r\n\r\n")

        await in_thread(full)
        self.assertEqual(maildir_messages(self.maildir, "alice"), [])
        tmp = self.maildir / "alice" / "tmp"
        self.assertEqual(list(tmp.iterdir()) if tmp.is_dir() else [], [])

    async def test_binary_junk(self) -> None:
        def junk() -> bytes:
            with socket.create_connection(("127.0.0.1", self.mx), timeout=10) as raw:
                raw.recv(1000)
                raw.sendall(bytes(range(256)) * 40 + b"\r\n" * 30)
                data = b""
                while True:
                    chunk = raw.recv(65536)
                    if not chunk:
                        return data
                    data += chunk

        data = await in_thread(junk)
        lines = data.split(b"\r\n")
        self.assertIn(b"421 4.5.0 Error: too many errors", lines)  # then the server closed


def _need(program: str | None, name: str) -> str:
    if program is None:
        raise SkipTest(f"{name} is not installed (.ci/peers installs it)")
    return program


class SwaksTests(LiveServerMixin, TestCase):
    timeout = 60

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        _need(SWAKS, "swaks")
        return self.start_server(self)

    async def swaks(self, *args: str) -> tuple[str, int]:
        out, err, code = await getProcessOutputAndValue(
            _need(SWAKS, "swaks"),
            ["--server", "127.0.0.1", "--helo", "swaks.example", *args],
            env=dict(os.environ),
        )
        return (out + err).decode("utf-8", "replace"), code

    async def test_plain(self) -> None:
        output, code = await self.swaks(
            "--port", str(self.mx), "--from", "s@client.example", "--to", "alice@example.org"
        )
        self.assertEqual(code, 0, output)
        self.assertEqual(len(maildir_messages(self.maildir, "alice")), 1)

    async def test_pipelining(self) -> None:
        output, code = await self.swaks(
            "--port", str(self.mx), "--pipeline",
            "--from", "s@client.example", "--to", "alice@example.org,bob@example.org",
        )  # fmt: skip
        self.assertEqual(code, 0, output)
        self.assertIn("<-  250 2.0.0 Ok: queued as", output)
        self.assertEqual(len(maildir_messages(self.maildir, "alice")), 1)
        self.assertEqual(len(maildir_messages(self.maildir, "bob")), 1)

    async def test_pipelined_partial_refusal(self) -> None:
        output, _code = await self.swaks(
            "--port", str(self.mx), "--pipeline",
            "--from", "s@client.example", "--to", "nobody@example.org,bob@example.org",
        )  # fmt: skip
        self.assertIn("550 5.1.1", output)
        self.assertEqual(len(maildir_messages(self.maildir, "bob")), 1, output)

    async def _tls_auth(self, mechanism: str) -> None:
        if not SWAKS_TLS:
            raise SkipTest("swaks needs Net::SSLeay and IO::Socket::SSL for TLS")
        output, code = await self.swaks(
            "--port", str(self.submission), "-tls",
            "--auth", mechanism, "--auth-user", "alice", "--auth-password", PASSWORD,
            "--from", "alice@example.org", "--to", "friend@far.example",
        )  # fmt: skip
        self.assertEqual(code, 0, output)
        self.assertIn("235 2.7.0 Authentication successful", output)
        self.assertEqual(len(self.relay.messages), 1)
        self.assertEqual(self.relay.messages[0].envelope.authenticated_as, "alice")

    async def test_starttls_auth_plain(self) -> None:
        await self._tls_auth("PLAIN")

    async def test_starttls_auth_login(self) -> None:
        await self._tls_auth("LOGIN")

    async def test_starttls_auth_cram_md5(self) -> None:
        await self._tls_auth("CRAM-MD5")

    async def test_auth_refused_without_tls(self) -> None:
        output, code = await self.swaks(
            "--port", str(self.submission),
            "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", PASSWORD,
            "--from", "alice@example.org", "--to", "friend@far.example",
        )  # fmt: skip
        self.assertNotEqual(code, 0)
        self.assertIn("Host did not advertise authentication", output)
        self.assertEqual(self.relay.opened, 0)


class SmtpSourceTests(LiveServerMixin, TestCase):
    timeout = 120

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        _need(SMTP_SOURCE, "Postfix's smtp-source")
        return self.start_server(self)

    async def test_sessions_of_many_messages(self) -> None:
        out, err, code = await getProcessOutputAndValue(
            _need(SMTP_SOURCE, "smtp-source"),
            [
                "-s", "5", "-m", "100", "-l", "5000", "-c",
                "-f", "load@client.example", "-t", "alice@example.org",
                f"127.0.0.1:{self.mx}",
            ],
        )  # fmt: skip
        self.assertEqual(code, 0, (out + err).decode("utf-8", "replace"))
        messages = maildir_messages(self.maildir, "alice")
        self.assertEqual(len(messages), 100)
        self.assertTrue(all(m.startswith(b"Received: ") for m in messages))
        self.assertTrue(all(len(m) > 5000 for m in messages))

    async def test_many_messages_per_connection(self) -> None:
        out, err, code = await getProcessOutputAndValue(
            _need(SMTP_SOURCE, "smtp-source"),
            [
                "-s", "3", "-m", "30", "-l", "2000", "-d",
                "-f", "load@client.example", "-t", "bob@example.org",
                f"127.0.0.1:{self.mx}",
            ],
        )  # fmt: skip
        self.assertEqual(code, 0, (out + err).decode("utf-8", "replace"))
        self.assertEqual(len(maildir_messages(self.maildir, "bob")), 30)

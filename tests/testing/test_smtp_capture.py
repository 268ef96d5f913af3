"""netproto_twisted.testing.smtp: the SMTP capture server, used as users' suites use it."""

from __future__ import annotations

import re
import smtplib
import ssl
import textwrap
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core.tls import client_options
from netproto_twisted.smtp import SMTPAuthenticationError, connect_smtp, send_mail
from netproto_twisted.testing import (
    CapturedMail,
    SMTPCapture,
    SMTPCaptureStopped,
    SMTPCaptureTimeout,
    start_smtp_capture,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "testing.rst"


def make_message(subject: str, to: str = "bob@example.org", body: str = "Hello.\n") -> bytes:
    """A message as applications build it, serialised for SMTP (CRLF)."""
    msg = EmailMessage()
    msg["From"] = "ann@example.com"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    return msg.as_bytes(policy=SMTP_POLICY)


def in_thread(function: Callable[[], Any]) -> Deferred[Any]:
    """Run blocking stdlib client code off the reactor thread."""
    return deferToThread(function)


class _Raw(Protocol):
    """A bare TCP client: collects what the server says, notes when the connection ends."""

    def __init__(self) -> None:
        self.received = b""
        self.lost: Deferred[bytes] = Deferred()
        self._want: tuple[bytes, Deferred[bytes]] | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if self._want is not None and self._want[0] in self.received:
            d = self._want[1]
            self._want = None
            d.callback(self.received)

    def wait_for(self, marker: bytes) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        if marker in self.received:
            d.callback(self.received)
        else:
            self._want = (marker, d)
        return d

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost.callback(self.received)


async def connect_raw(capture: SMTPCapture) -> _Raw:
    proto = _Raw()
    await connectProtocol(TCP4ClientEndpoint(reactor, capture.host, capture.port), proto)
    await proto.wait_for(b"220 ")
    return proto


class SmtplibTests(TestCase):
    """The stdlib client against the capture."""

    async def test_message_headers_body_and_envelope(self) -> None:
        capture = await start_smtp_capture(reactor)
        self.addCleanup(capture.stop)
        self.assertEqual(capture.host, "127.0.0.1")
        self.assertNotEqual(capture.port, 0)
        self.assertEqual(capture.address, (capture.host, capture.port))
        data = make_message("Report", body="Line one.\n.leading dot\n")

        def send() -> dict[str, Any]:
            with smtplib.SMTP(capture.host, capture.port, timeout=10) as client:
                return client.sendmail(
                    "sender@example.com", ["bob@example.org", "hidden@example.net"], data
                )

        refused = await in_thread(send)
        self.assertEqual(refused, {})
        [message] = await capture.wait_for_messages(1)
        self.assertIsInstance(message, EmailMessage)
        self.assertEqual(message["Subject"], "Report")
        self.assertEqual(message["To"], "bob@example.org")
        self.assertIsNone(message["Received"])
        self.assertEqual(message.get_content(), "Line one.\n.leading dot\n")
        [mail] = capture.messages
        self.assertIsInstance(mail, CapturedMail)
        self.assertIs(mail.message, message)
        self.assertEqual(mail.mail_from, "sender@example.com")
        self.assertEqual(mail.rcpt_to, ["bob@example.org", "hidden@example.net"])
        self.assertEqual(mail.raw, data)  # dot-unstuffed: what the client meant to send
        self.assertRegex(mail.received, r"^Received: from \S+ \(\S* ?\[127\.0\.0\.1\]\)")
        self.assertEqual(mail.envelope.peer, "127.0.0.1")
        self.assertFalse(mail.envelope.tls)
        self.assertIsNone(mail.envelope.authenticated_as)

    async def test_several_messages_in_order_on_one_connection(self) -> None:
        capture = await start_smtp_capture(reactor)
        self.addCleanup(capture.stop)
        waiting = capture.wait_for_messages(5)
        self.assertNoResult(waiting)

        def send() -> None:
            with smtplib.SMTP(capture.host, capture.port, timeout=10) as client:
                for i in range(5):
                    client.sendmail("a@example.com", [f"r{i}@example.org"], make_message(f"n{i}"))

        await in_thread(send)
        messages = await waiting
        self.assertEqual([m["Subject"] for m in messages], [f"n{i}" for i in range(5)])
        self.assertEqual([m.rcpt_to for m in capture.messages], [[f"r{i}@example.org"]
                                                                 for i in range(5)])
        # Fewer than arrived: the first ones, at once.
        first_two = await capture.wait_for_messages(2)
        self.assertEqual([m["Subject"] for m in first_two], ["n0", "n1"])

    async def test_clear_restarts_the_count(self) -> None:
        capture = await start_smtp_capture(reactor)
        self.addCleanup(capture.stop)
        await send_mail(reactor, capture.host, capture.port, "a@example.com", "b@example.org",
                        make_message("before"), tls="none")
        self.assertEqual(len(capture.messages), 1)
        capture.clear()
        self.assertEqual(capture.messages, [])
        self.assertEqual(capture.target.messages, [])
        waiting = capture.wait_for_messages(1)
        self.assertNoResult(waiting)
        await send_mail(reactor, capture.host, capture.port, "a@example.com", "b@example.org",
                        make_message("after"), tls="none")
        [message] = await waiting
        self.assertEqual(message["Subject"], "after")

    async def test_null_sender_and_utf8(self) -> None:
        capture = await start_smtp_capture(reactor)
        self.addCleanup(capture.stop)
        msg = EmailMessage()
        msg["Subject"] = "Grüße"
        msg["To"] = "jürgen@example.de"
        msg.set_content("Schöne Grüße\n")

        def send() -> None:
            with smtplib.SMTP(capture.host, capture.port, timeout=10) as client:
                # smtplib adds SMTPUTF8 itself for the non-ASCII address.
                client.send_message(msg, from_addr="", to_addrs=["jürgen@example.de"])

        await in_thread(send)
        [message] = await capture.wait_for_messages(1)
        self.assertEqual(message["Subject"], "Grüße")
        self.assertEqual(message.get_content(), "Schöne Grüße\n")
        self.assertEqual(capture.messages[0].mail_from, "")
        self.assertEqual(capture.messages[0].rcpt_to, ["jürgen@example.de"])
        self.assertTrue(capture.messages[0].envelope.mail_from.smtputf8)


class OwnClientTests(TestCase):
    """The project's own client against the capture."""

    async def test_send_mail(self) -> None:
        capture = await start_smtp_capture(reactor)
        self.addCleanup(capture.stop)
        refused = await send_mail(
            reactor, capture.host, capture.port, "ann@example.com",
            ["bob@example.org", "carol@example.org"], make_message("ours"), tls="none",
        )
        self.assertEqual(refused, {})
        [message] = await capture.wait_for_messages(1)
        self.assertEqual(message["Subject"], "ours")
        self.assertEqual(capture.messages[0].rcpt_to, ["bob@example.org", "carol@example.org"])

    async def test_bdat_and_dsn_parameters_reach_the_envelope(self) -> None:
        capture = await start_smtp_capture(reactor)
        self.addCleanup(capture.stop)
        client = await connect_smtp(reactor, capture.host, capture.port, tls="none")
        try:
            await client.send_message(
                "ann@example.com", "bob@example.org", make_message("chunked"),
                mail_params={"RET": "HDRS", "ENVID": "abc123"}, use_bdat=True,
            )
        finally:
            await client.quit()
        [message] = await capture.wait_for_messages(1)
        self.assertEqual(message["Subject"], "chunked")
        mail_from = capture.messages[0].envelope.mail_from
        self.assertEqual((mail_from.ret, mail_from.envid), ("HDRS", "abc123"))


class PolicyTests(TestCase):
    """Recipients, sizes and delivery failures a test can ask for."""

    async def test_domains_limit_the_recipients(self) -> None:
        capture = await start_smtp_capture(reactor, domains=["example.org"])
        self.addCleanup(capture.stop)

        def send() -> dict[str, Any]:
            with smtplib.SMTP(capture.host, capture.port, timeout=10) as client:
                return client.sendmail(
                    "a@example.com", ["in@example.org", "out@elsewhere.test"], make_message("d")
                )

        refused = await in_thread(send)
        self.assertEqual(list(refused), ["out@elsewhere.test"])
        self.assertEqual(refused["out@elsewhere.test"][0], 554)
        await capture.wait_for_messages(1)
        self.assertEqual(capture.messages[0].rcpt_to, ["in@example.org"])

    async def test_max_size_is_advertised_and_enforced(self) -> None:
        capture = await start_smtp_capture(reactor, max_size=2000)
        self.addCleanup(capture.stop)

        def send() -> tuple[str, int]:
            with smtplib.SMTP(capture.host, capture.port, timeout=10) as client:
                client.ehlo()
                advertised = client.esmtp_features["size"]
                try:
                    # Without SIZE in MAIL FROM: refused while the data streams.
                    client.mail("a@example.com")
                    client.rcpt("b@example.org")
                    code, _ = client.data(make_message("big", body="x" * 70 + "\n") * 40)
                except smtplib.SMTPDataError as e:
                    code = e.smtp_code
                return advertised, code

        advertised, code = await in_thread(send)
        self.assertEqual((advertised, code), ("2000", 552))
        self.assertEqual(capture.messages, [])
        self.assertEqual(capture.target.aborted, 1)

    async def test_fail_commits_answers_451(self) -> None:
        capture = await start_smtp_capture(reactor)
        self.addCleanup(capture.stop)
        capture.target.fail_commits = True

        def send() -> int:
            with smtplib.SMTP(capture.host, capture.port, timeout=10) as client:
                try:
                    client.sendmail("a@example.com", ["b@example.org"], make_message("x"))
                except smtplib.SMTPDataError as e:
                    return e.smtp_code
                return 250

        self.assertEqual(await in_thread(send), 451)
        self.assertEqual(capture.messages, [])
        # The server logs why it said 451; trial counts logged failures as errors.
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)


class WaitTests(TestCase):
    """wait_for_messages: timeouts, cancellation, stop."""

    async def test_timeout_is_a_clear_error(self) -> None:
        capture = await start_smtp_capture(reactor)
        self.addCleanup(capture.stop)
        await send_mail(reactor, capture.host, capture.port, "a@example.com", "b@example.org",
                        make_message("only one"), tls="none")
        with self.assertRaises(SMTPCaptureTimeout) as caught:
            await capture.wait_for_messages(2, timeout=0.05)
        text = str(caught.exception)
        self.assertIn("2 message(s)", text)
        self.assertIn(f"127.0.0.1:{capture.port}", text)
        self.assertIn("1 arrived", text)
        self.assertIsInstance(caught.exception, TimeoutError)
        self.assertEqual(capture._waiters, [])

    async def test_cancel_forgets_the_wait(self) -> None:
        capture = await start_smtp_capture(reactor)
        self.addCleanup(capture.stop)
        waiting = capture.wait_for_messages(1, timeout=60)
        waiting.cancel()
        with self.assertRaises(CancelledError):
            await waiting
        self.assertEqual(capture._waiters, [])
        # A message arriving afterwards must not touch the cancelled Deferred.
        await send_mail(reactor, capture.host, capture.port, "a@example.com", "b@example.org",
                        make_message("late"), tls="none")
        self.assertEqual(len(await capture.wait_for_messages(1)), 1)

    def test_bad_arguments(self) -> None:
        async def run() -> None:
            capture = await start_smtp_capture(reactor)
            try:
                with self.assertRaises(ValueError):
                    capture.wait_for_messages(-1)
                with self.assertRaises(ValueError):
                    capture.wait_for_messages(1, timeout=0)
                self.assertEqual(self.successResultOf(capture.wait_for_messages(0)), [])
            finally:
                await capture.stop()

        return Deferred.fromCoroutine(run())  # type: ignore[return-value]

    async def test_stop_fails_pending_waits_and_later_ones(self) -> None:
        capture = await start_smtp_capture(reactor)
        waiting = capture.wait_for_messages(3, timeout=60)
        await capture.stop()
        failure = self.failureResultOf(waiting, SMTPCaptureStopped)
        self.assertIn("waiting for 3 message(s)", failure.getErrorMessage())
        self.failureResultOf(capture.wait_for_messages(1), SMTPCaptureStopped)
        # stop again: same outcome, nothing else to do
        await capture.stop()

    async def test_start_options_are_checked(self) -> None:
        with self.assertRaises(ValueError):
            await start_smtp_capture(reactor, require_tls=True)
        with self.assertRaises(ValueError):
            await start_smtp_capture(reactor, require_auth=True)


class IsolationAndStopTests(TestCase):
    """Two captures at once; stop with clients connected."""

    async def test_two_captures_are_independent(self) -> None:
        first = await start_smtp_capture(reactor)
        self.addCleanup(first.stop)
        second = await start_smtp_capture(reactor)
        self.addCleanup(second.stop)
        self.assertNotEqual(first.port, second.port)
        second_waits = second.wait_for_messages(1)
        await send_mail(reactor, first.host, first.port, "a@example.com", "b@example.org",
                        make_message("to first"), tls="none")
        await first.wait_for_messages(1)
        self.assertNoResult(second_waits)
        self.assertEqual(second.messages, [])
        await send_mail(reactor, second.host, second.port, "a@example.com", "b@example.org",
                        make_message("to second"), tls="none")
        [message] = await second_waits
        self.assertEqual(message["Subject"], "to second")
        self.assertEqual([m.message["Subject"] for m in first.messages], ["to first"])
        first.clear()
        self.assertEqual(len(second.messages), 1)

    async def test_stop_with_an_idle_client_connected(self) -> None:
        capture = await start_smtp_capture(reactor)
        client = await connect_raw(capture)
        client.transport.write(b"EHLO test\r\n")  # type: ignore[union-attr]
        await client.wait_for(b"250 ")
        await capture.stop()
        said = await client.lost
        self.assertTrue(said.startswith(b"220 localhost "))
        # The port is closed: a new connection is refused.
        with self.assertRaises(Exception):  # noqa: B017 (ConnectionRefusedError's Twisted flavour)
            await connect_raw(capture)

    async def test_stop_mid_data_delivers_nothing(self) -> None:
        capture = await start_smtp_capture(reactor)
        client = await connect_raw(capture)
        client.transport.write(  # type: ignore[union-attr]
            b"EHLO test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
        )
        await client.wait_for(b"354 ")
        client.transport.write(b"Subject: half\r\n\r\nhalf a messa")  # type: ignore[union-attr]
        waiting = capture.wait_for_messages(1, timeout=60)
        await capture.stop()
        await client.lost
        self.assertEqual(capture.messages, [])
        self.assertEqual(capture.target.aborted, 1)
        self.failureResultOf(waiting, SMTPCaptureStopped)

    async def test_nothing_left_in_the_reactor(self) -> None:
        calls_before = set(reactor.getDelayedCalls())
        readers_before = set(reactor.getReaders())
        capture = await start_smtp_capture(reactor, tls=True, auth_users={"u": "p"})
        client = await connect_raw(capture)
        waiting = capture.wait_for_messages(1, timeout=60)
        self.assertGreater(len(set(reactor.getDelayedCalls()) - calls_before), 0)
        await capture.stop()
        await client.lost
        self.failureResultOf(waiting, SMTPCaptureStopped)
        left = [c for c in reactor.getDelayedCalls() if c not in calls_before and c.active()]
        # trial's own timeout for this test is scheduled once the test method has started.
        ours = [c for c in left if not c.func.__module__.startswith("twisted.trial")]
        self.assertEqual(ours, [])
        sockets = [r for r in set(reactor.getReaders()) - readers_before if hasattr(r, "socket")]
        self.assertEqual(sockets, [])  # (the reactor's own wakers may appear meanwhile)

    async def test_waiters_run_after_the_client_got_its_250(self) -> None:
        capture = await start_smtp_capture(reactor)
        client = await connect_raw(capture)
        stopped: list[Deferred[None]] = []
        waiting = capture.wait_for_messages(1)
        # A test that stops the capture as soon as the message is there...
        waiting.addCallback(lambda _: stopped.append(capture.stop()))
        client.transport.write(  # type: ignore[union-attr]
            b"EHLO t\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
        )
        await client.wait_for(b"354 ")
        client.transport.write(b"Subject: s\r\n\r\nbody\r\n.\r\n")  # type: ignore[union-attr]
        said = await client.lost
        await stopped[0]
        # ...does not cut the client off before the server's answer.
        self.assertRegex(said, rb"\r\n250 2\.0\.0 Ok: queued as \w+\r\n")
        self.assertEqual(len(capture.messages), 1)

    async def test_ipv6_loopback(self) -> None:
        try:
            capture = await start_smtp_capture(reactor, listen="tcp6:0:interface=\\:\\:1")
        except Exception as e:  # no IPv6 on this machine
            self.skipTest(f"no IPv6 loopback: {e}")
        self.addCleanup(capture.stop)
        self.assertEqual(capture.host, "::1")
        await send_mail(reactor, capture.host, capture.port, "a@example.com", "b@example.org",
                        make_message("six"), tls="none")
        [message] = await capture.wait_for_messages(1)
        self.assertEqual(message["Subject"], "six")
        self.assertEqual(capture.messages[0].envelope.peer, "::1")

    async def test_async_with_stops(self) -> None:
        async with await start_smtp_capture(reactor) as capture:
            client = await connect_raw(capture)
        await client.lost
        self.assertIsNotNone(capture._stopping)


class TLSTests(TestCase):
    """STARTTLS with a development certificate made for the capture."""

    async def test_starttls_with_smtplib_verifying_the_certificate(self) -> None:
        capture = await start_smtp_capture(reactor, tls=True)
        self.addCleanup(capture.stop)
        cert = capture.tls_certificate
        assert cert is not None
        self.assertTrue(cert.is_file())
        context = ssl.create_default_context(cafile=str(cert))

        def send() -> tuple[bool, bool]:
            with smtplib.SMTP(capture.host, capture.port, timeout=10) as client:
                client.ehlo()
                offered = client.has_extn("starttls")
                client.starttls(context=context)
                client.sendmail("a@example.com", ["b@example.org"], make_message("secret"))
                return offered, client.sock is not None and isinstance(client.sock, ssl.SSLSocket)

        offered, wrapped = await in_thread(send)
        self.assertTrue(offered and wrapped)
        [message] = await capture.wait_for_messages(1)
        self.assertEqual(message["Subject"], "secret")
        self.assertTrue(capture.messages[0].envelope.tls)
        self.assertIn("ESMTPS", capture.messages[0].received)
        await capture.stop()
        self.assertFalse(cert.exists())  # the temporary directory is gone

    async def test_require_tls_and_our_client_verifying(self) -> None:
        capture = await start_smtp_capture(
            reactor, tls=True, require_tls=True, auth_users={"ann": "pw-ann-1"}
        )
        self.addCleanup(capture.stop)
        client = await connect_raw(capture)
        client.transport.write(b"EHLO x\r\nMAIL FROM:<a@example.com>\r\n")  # type: ignore[union-attr]
        said = await client.wait_for(b"530 ")
        self.assertNotIn(b"AUTH", said)  # no AUTH before TLS when TLS is required
        client.transport.loseConnection()  # type: ignore[union-attr]
        await client.lost
        options = client_options("127.0.0.1", ca_file=capture.tls_certificate)
        await send_mail(
            reactor, capture.host, capture.port, "ann@example.com", "b@example.org",
            make_message("verified"), tls="starttls", tls_options=options,
            username="ann", password="pw-ann-1",
        )
        await capture.wait_for_messages(1)
        self.assertEqual(capture.messages[0].envelope.authenticated_as, "ann")

    async def test_stop_with_a_tls_client_connected(self) -> None:
        capture = await start_smtp_capture(reactor, tls=True)
        options = client_options("localhost", ca_file=capture.tls_certificate)
        client = await connect_smtp(reactor, capture.host, capture.port, tls_options=options)
        self.assertTrue(client.is_secure)
        started = reactor.seconds()
        await capture.stop()
        await client.when_closed()
        self.assertFalse(client.connected)
        # Closed by the server's goodbye, not by the abort after the close timeout.
        self.assertLess(reactor.seconds() - started, 1.5)

    async def test_given_certificate_files_are_kept(self) -> None:
        from netproto_twisted.core.tls import ensure_dev_certificate

        cert, key = ensure_dev_certificate(self.mktemp())
        capture = await start_smtp_capture(reactor, tls=(cert, key))
        self.assertEqual(capture.tls_certificate, cert)
        await capture.stop()
        self.assertTrue(cert.exists() and key.exists())


class AuthTests(TestCase):
    """AUTH against the in-memory users."""

    async def test_smtplib_login_and_refusals(self) -> None:
        capture = await start_smtp_capture(reactor, auth_users={"ann": "s3cret", "bob": "x"})
        self.addCleanup(capture.stop)

        def send() -> tuple[int, int, str]:
            with smtplib.SMTP(capture.host, capture.port, timeout=10) as client:
                client.ehlo()
                mechanisms = client.esmtp_features["auth"]
                mail_code, _ = client.mail("ann@example.com")  # AUTH required first
                client.rset()
                try:
                    client.login("ann", "wrong")
                    bad = 235
                except smtplib.SMTPAuthenticationError as e:
                    bad = e.smtp_code
                client.login("ann", "s3cret")
                client.sendmail("ann@example.com", ["b@example.org"], make_message("authed"))
                return mail_code, bad, mechanisms

        mail_code, bad, mechanisms = await in_thread(send)
        self.assertEqual((mail_code, bad), (530, 535))
        self.assertEqual(
            set(mechanisms.split()), {"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"}
        )
        await capture.wait_for_messages(1)
        self.assertEqual(capture.messages[0].envelope.authenticated_as, "ann")

    async def test_our_client_with_each_mechanism(self) -> None:
        capture = await start_smtp_capture(reactor, auth_users={"ann": "s3cret"})
        self.addCleanup(capture.stop)
        for mechanism in ("SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN"):
            client = await connect_smtp(reactor, capture.host, capture.port, tls="none")
            try:
                await client.login("ann", "s3cret", mechanism=mechanism)
                await client.send_message("ann@example.com", "b@example.org",
                                          make_message(mechanism))
            finally:
                await client.quit()
            client = await connect_smtp(reactor, capture.host, capture.port, tls="none")
            try:
                with self.assertRaises(SMTPAuthenticationError):
                    await client.login("ann", "not it", mechanism=mechanism)
                with self.assertRaises(SMTPAuthenticationError):
                    await client.login("nobody", "s3cret", mechanism=mechanism)
            finally:
                await client.quit()
        messages = await capture.wait_for_messages(4)
        self.assertEqual([m["Subject"] for m in messages],
                         ["SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN"])

    async def test_auth_offered_but_optional(self) -> None:
        capture = await start_smtp_capture(reactor, auth_users={"ann": "s3cret"},
                                           require_auth=False)
        self.addCleanup(capture.stop)
        await send_mail(reactor, capture.host, capture.port, "a@example.com", "b@example.org",
                        make_message("anonymous"), tls="none")
        await capture.wait_for_messages(1)
        self.assertIsNone(capture.messages[0].envelope.authenticated_as)


# -- the examples of docs/testing.rst, run as they are written there --------------------


def _doc_examples(path: Path) -> dict[str, str]:
    """Return the ``.. code-block:: python`` blocks of a page that carry ``:name: example-*``."""
    text = path.read_text(encoding="utf-8")
    blocks: dict[str, str] = {}
    pattern = re.compile(
        r"^\.\. code-block:: python\n   :name: (example-[\w-]+)\n\n((?:   .*\n|\n)+)", re.M
    )
    for match in pattern.finditer(text):
        blocks[match.group(1)] = textwrap.dedent(match.group(2))
    return blocks


def _load_doc_tests() -> dict[str, type]:
    found: dict[str, type] = {}
    for name, source in _doc_examples(DOCS).items():
        namespace: dict[str, Any] = {"__name__": __name__}
        exec(compile(source, f"{DOCS}:{name}", "exec"), namespace)
        for key, value in namespace.items():
            if (
                isinstance(value, type)
                and issubclass(value, SynchronousTestCase)
                and value not in (TestCase, SynchronousTestCase)
            ):
                if key in found or key in globals():
                    raise RuntimeError(f"{name}: {key} is defined twice")
                found[key] = value
    return found


_DOC_TESTS = _load_doc_tests() if DOCS.exists() else {}
globals().update(_DOC_TESTS)


class DocExamplesTests(TestCase):
    """The documentation's examples exist and are collected above as test cases."""

    def test_examples_are_collected(self) -> None:
        if not DOCS.exists():
            self.skipTest(f"{DOCS} is not in this tree")
        names = set(_doc_examples(DOCS))
        self.assertGreaterEqual(
            names,
            {
                "example-smtp-capture",
                "example-smtplib-app",
                "example-serve-handler",
                "example-memory-smtp",
                "example-memory-pair",
            },
        )
        self.assertIn("ShippingMailTests", _DOC_TESTS)
        self.assertIn("ShoutTests", _DOC_TESTS)
        self.assertTrue(any("SMTP" in n or "Mail" in n for n in _DOC_TESTS), _DOC_TESTS)


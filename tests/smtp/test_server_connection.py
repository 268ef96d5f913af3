"""The SMTP server session without a transport: SMTPConnection driven with bytes."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.connection import Close, ConnectionDriver, Framing, StartTLS
from netproto_twisted.core.framing import LineEndings
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.smtp import SMTP_COMMANDS, MailFrom, State
from netproto_twisted.smtp.delivery import CaptureTarget, DefaultPolicy
from netproto_twisted.smtp.interfaces import SessionInfo
from netproto_twisted.smtp.server import ServerSettings, SMTPConnection, authenticator

from .test_server_support import USERS, make_portal, plain_auth

TLS_CONTEXT = object()


class Session:
    """An SMTPConnection and its driver; :meth:`send` returns the reply lines."""

    def __init__(
        self,
        settings: ServerSettings | None = None,
        *,
        tls: object | None = None,
        auth: Authenticator | None = None,
        secure: bool = False,
        policy: object | None = None,
    ) -> None:
        self.local = CaptureTarget()
        self.policy = policy or DefaultPolicy(
            ["example.org"], self.local, CaptureTarget(), user_exists=USERS.__contains__
        )
        self.settings = settings or ServerSettings(hostname="mx.example.org")
        self.conn = SMTPConnection(
            self.settings,
            self.policy,  # type: ignore[arg-type]
            peer="192.0.2.10",
            secure=secure,
            tls=tls,
            auth=auth,
        )
        endings = (
            LineEndings.NORMALIZE if self.settings.bare_lf == "normalize" else LineEndings.STRICT
        )
        self.driver = ConnectionDriver(
            self.conn, max_line_length=self.settings.max_line_length, endings=endings
        )

    def lines(self, data: bytes) -> list[str]:
        return [line for line in data.decode("utf-8").split("\r\n") if line]

    def output(self) -> list[str]:
        return self.lines(self.driver.take_output())

    def send(self, data: bytes | str) -> list[str]:
        if isinstance(data, str):
            data = data.encode("utf-8")
        return self.lines(self.driver.feed(data))

    def ehlo(self) -> list[str]:
        self.output()
        return self.send("EHLO client.example\r\n")


def keywords(lines: list[str]) -> list[str]:
    return [line[4:] for line in lines[1:]]


def envelope(rcpts: Sequence[str] = ("bob@example.org",)) -> str:
    return "MAIL FROM:<a@client.example>\r\n" + "".join(f"RCPT TO:<{r}>\r\n" for r in rcpts)


class GreetingAndCommandTests(SynchronousTestCase):
    def test_greeting_is_the_first_output(self) -> None:
        s = Session()
        self.assertEqual(s.output(), ["220 mx.example.org ESMTP netproto"])
        self.assertIs(s.conn.framing, Framing.LINE)
        self.assertIs(s.conn.session.state, State.CONNECTED)

    def test_ehlo_keywords(self) -> None:
        s = Session()
        lines = s.ehlo()
        self.assertEqual(lines[0], "250-mx.example.org Hello client.example")
        self.assertIn("250-PIPELINING", lines)
        self.assertIn("250 ENHANCEDSTATUSCODES", lines)
        self.assertFalse([k for k in lines if "STARTTLS" in k or "AUTH" in k])
        self.assertIs(s.conn.session.state, State.GREETED)

    def test_starttls_offered_only_with_a_context_and_until_tls(self) -> None:
        self.assertIn("STARTTLS", keywords(Session(tls=TLS_CONTEXT).ehlo()))
        self.assertNotIn("STARTTLS", keywords(Session(tls=TLS_CONTEXT, secure=True).ehlo()))

    def test_bad_sequence_replies_come_from_the_table(self) -> None:
        s = Session()
        s.output()
        self.assertEqual(s.send("MAIL FROM:<a@b>\r\n"), ["503 5.5.1 Error: send HELO/EHLO first"])
        s.send("EHLO c\r\n")
        self.assertEqual(
            s.send("RCPT TO:<bob@example.org>\r\n"), ["503 5.5.1 Error: need MAIL command"]
        )
        s.send("MAIL FROM:<a@b.example>\r\n")
        self.assertEqual(
            s.send("MAIL FROM:<a@b.example>\r\n"), ["503 5.5.1 Error: nested MAIL command"]
        )
        self.assertEqual(
            s.send("STARTTLS\r\n"),
            ["503 5.5.1 Error: STARTTLS not permitted during a mail transaction"],
        )

    def test_argument_rules_come_from_the_table(self) -> None:
        s = Session()
        s.ehlo()
        self.assertEqual(
            s.send("DATA now\r\n"), ["501 5.5.4 Syntax error: DATA takes no argument"]
        )
        self.assertEqual(s.send("MAIL\r\n"), ["501 5.5.4 Syntax error: MAIL needs an argument"])
        self.assertEqual(s.send("NOOP anything\r\n"), ["250 2.0.0 Ok"])  # optional

    def test_help_is_generated_from_the_table(self) -> None:
        s = Session()
        s.output()
        listed = [c.verb for c in SMTP_COMMANDS if c.help]
        self.assertEqual(s.send("HELP\r\n"), [f"214 2.0.0 Commands: {' '.join(listed)}"])
        self.assertNotIn("EXPN", listed)
        self.assertEqual(s.send("HELP rcpt\r\n"), [f"214 2.0.0 {SMTP_COMMANDS['RCPT'].help}"])

    def test_quit_closes(self) -> None:
        s = Session()
        s.output()
        self.assertEqual(s.send("QUIT\r\nNOOP\r\n"), ["221 2.0.0 Bye"])
        self.assertEqual(s.driver.actions, [Close()])
        self.assertIs(s.conn.session.state, State.CLOSED)


class DataTests(SynchronousTestCase):
    def test_data_framing_follows_the_state(self) -> None:
        s = Session()
        s.ehlo()
        s.send(envelope())
        self.assertEqual(s.send("DATA\r\n"), ["354 End data with <CR><LF>.<CR><LF>"])
        self.assertEqual(s.conn.framing_state, (State.DATA, Framing.RAW))
        s.send("Subject: x\r\n\r\nbody\r\n.\r\n")
        self.assertEqual(s.conn.framing_state, (State.GREETED, Framing.LINE))
        self.assertEqual(len(s.local.messages), 1)

    def test_dot_stuffing_split_across_chunks(self) -> None:
        s = Session()
        s.ehlo()
        s.send(envelope() + "DATA\r\n")
        replies: list[str] = []
        for piece in (b"a\r\n.", b".dot\r", b"\n", b".", b"\r", b"\nNOOP\r\n"):
            replies += s.send(piece)
        self.assertEqual([r[:3] for r in replies], ["250", "250"])
        self.assertTrue(s.local.messages[0].data.endswith(b"a\r\n.dot\r\n"))

    def test_lf_dot_lf_does_not_end_data_in_strict_mode(self) -> None:
        s = Session()
        s.ehlo()
        s.send(envelope() + "DATA\r\n")
        self.assertEqual(s.send("x\n.\nMAIL FROM:<a@b>\r\n"), [])
        self.assertIs(s.conn.framing, Framing.RAW)
        self.assertEqual(s.send("\r\n.\r\n"), ["500 5.5.2 Bare CR or LF not allowed"])
        self.assertEqual(s.local.messages, [])

    def test_normalize_ends_data_at_lenient_terminators(self) -> None:
        for terminator in ("\n.\n", "\n.\r\n", "\r\n.\n"):
            s = Session(ServerSettings(hostname="mx.example.org", bare_lf="normalize"))
            s.ehlo()
            s.send(envelope() + "DATA\r\n")
            replies = s.send(f"line{terminator}NOOP\r\n")
            self.assertEqual([r[:3] for r in replies], ["250", "250"], terminator)
            self.assertTrue(s.local.messages[0].data.endswith(b"\r\nline\r\n"))

    def test_pipelined_transaction_in_one_chunk(self) -> None:
        s = Session()
        s.ehlo()
        replies = s.send(
            envelope(("bob@example.org", "alice@example.org")) + "DATA\r\nhi\r\n.\r\nQUIT\r\n"
        )
        self.assertEqual([r[:3] for r in replies], ["250", "250", "250", "354", "250", "221"])
        self.assertEqual(len(s.local.messages[0].recipients), 2)

    def test_bdat_counted_framing(self) -> None:
        s = Session()
        s.ehlo()
        s.send(envelope())
        self.assertEqual(s.send("BDAT 5\r\nab"), [])
        self.assertEqual((s.conn.framing, s.conn.raw_remaining), (Framing.COUNTED, 3))
        self.assertEqual(
            s.send("c\r\nBDAT 3 LAST\r\nxyz"),
            [
                "250 2.0.0 Ok: 5 octets received",
                f"250 2.0.0 Ok: queued as {s.local.messages[0].envelope.id}",
            ],
        )
        self.assertTrue(s.local.messages[0].data.endswith(b"abc\r\nxyz"))
        self.assertIs(s.conn.framing, Framing.LINE)

    def test_refused_bdat_chunk_is_skipped(self) -> None:
        s = Session()
        s.ehlo()
        self.assertEqual(
            s.send("BDAT 4\r\nNOOPNOOP\r\n"),
            ["503 5.5.1 Error: need MAIL command", "250 2.0.0 Ok"],
        )

    def test_bdat_zero_last(self) -> None:
        s = Session()
        s.ehlo()
        s.send(envelope())
        replies = s.send("BDAT 0 LAST\r\n")
        self.assertTrue(replies[0].startswith("250 2.0.0 Ok: queued as"), replies)


class WaitTests(SynchronousTestCase):
    def test_input_waits_for_a_pending_policy(self) -> None:
        pending: Deferred[None] = Deferred()

        class SlowSender(DefaultPolicy):
            def check_sender(self, session: SessionInfo, mail_from: MailFrom) -> Deferred[None]:
                return pending

        local = CaptureTarget()
        s = Session(policy=SlowSender(["example.org"], local, user_exists=USERS.__contains__))
        s.ehlo()
        self.assertEqual(s.send(envelope() + "NOOP\r\n"), [])
        self.assertEqual(len(s.driver.pending), 1)
        pending.callback(None)
        self.assertEqual(s.output(), ["250 2.1.0 Ok", "250 2.1.5 Ok", "250 2.0.0 Ok"])

    def test_a_fired_deferred_needs_no_wait(self) -> None:
        s = Session()
        s.ehlo()
        s.conn.wait(succeed(7), lambda result: s.conn.send(b"%d\r\n" % result))  # type: ignore[str-bytes-safe]
        self.assertEqual(s.conn.actions, [])
        self.assertEqual(s.conn.data_to_send(), b"7\r\n")


class StartTLSAndAuthTests(SynchronousTestCase):
    def test_starttls_action_after_the_go_ahead(self) -> None:
        s = Session(tls=TLS_CONTEXT)
        s.ehlo()
        self.assertEqual(
            s.send("STARTTLS\r\nMAIL FROM:<injected@x>\r\n"), ["220 2.0.0 Ready to start TLS"]
        )
        self.assertEqual(s.driver.actions, [StartTLS(TLS_CONTEXT)])
        self.assertTrue(s.conn.session.tls)
        self.assertIs(s.conn.session.state, State.CONNECTED)
        self.assertEqual(s.send("MAIL FROM:<a@b>\r\n"), ["503 5.5.1 Error: send HELO/EHLO first"])

    def _auth_session(self) -> Session:
        directory = Path(self.mktemp())
        directory.mkdir(parents=True)
        portal, _ = make_portal(directory)
        backend = authenticator(
            portal, LoginDelay(MemoryReactorClock()), ServerSettings(hostname="mx.example.org")
        )
        return Session(auth=backend, secure=True)

    def test_auth_plain(self) -> None:
        s = self._auth_session()
        lines = s.ehlo()
        self.assertIn("AUTH CRAM-MD5 PLAIN LOGIN", keywords(lines))
        self.assertEqual(
            s.send(f"AUTH PLAIN {plain_auth('alice', 'secret-pw')}\r\n"),
            ["235 2.7.0 Authentication successful"],
        )
        self.assertEqual(s.conn.authenticated_as, "alice")
        self.assertEqual(s.send("AUTH PLAIN x\r\n"), ["503 5.5.1 Error: already authenticated"])
        self.assertFalse([k for k in keywords(s.send("EHLO again\r\n")) if k.startswith("AUTH")])

    def test_auth_login_exchange_and_cancel(self) -> None:
        s = self._auth_session()
        s.ehlo()
        self.assertEqual(s.send("AUTH LOGIN\r\n"), ["334 VXNlcm5hbWU6"])
        self.assertIs(s.conn.session.state, State.AUTH)
        self.assertEqual(s.send("*\r\n"), ["501 5.5.0 Authentication cancelled"])
        self.assertIs(s.conn.session.state, State.GREETED)


class LimitTests(SynchronousTestCase):
    def test_recipient_limit_refusals_are_not_errors(self) -> None:
        s = Session()
        s.ehlo()
        replies = s.send(envelope(["bob@example.org"] * 1025) + "DATA\r\nx\r\n.\r\n")
        self.assertEqual(replies.count("250 2.1.5 Ok"), 1000)
        self.assertEqual(replies.count("452 4.5.3 Too many recipients"), 25)
        self.assertNotIn("421", " ".join(r[:3] for r in replies))
        self.assertTrue(replies[-1].startswith("250 2.0.0 Ok: queued as"), replies[-3:])
        self.assertEqual(len(s.local.messages[0].recipients), 1000)

    def test_errors_still_close_the_session(self) -> None:
        s = Session(ServerSettings(max_errors=3))
        s.output()
        self.assertEqual(
            s.send("X\r\nY\r\nZ\r\nW\r\n"),
            [
                "500 5.5.1 Command unrecognized",
                "500 5.5.1 Command unrecognized",
                "421 4.5.0 Error: too many errors",
            ],
        )
        self.assertTrue(s.driver.closed)

    def test_line_too_long_and_timeout(self) -> None:
        s = Session(ServerSettings(max_line_length=20))
        s.output()
        self.assertEqual(
            s.send("NOOP " + "x" * 30 + "\r\nNOOP\r\n"),
            ["500 5.5.2 Line too long", "250 2.0.0 Ok"],
        )
        s.conn.timeout()
        self.assertEqual(s.lines(s.conn.data_to_send()), ["421 4.4.2 Error: timeout exceeded"])
        self.assertTrue(s.conn.closing)

    def test_message_too_big(self) -> None:
        s = Session(ServerSettings(max_size=100))
        s.ehlo()
        s.send(envelope() + "DATA\r\n")
        self.assertEqual(
            s.send("x" * 200 + "\r\n.\r\n"),
            ["552 5.3.4 Message size exceeds fixed maximum message size"],
        )
        self.assertEqual(s.local.messages, [])


class ChunkingProperties(SynchronousTestCase):
    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
    def test_any_split_gives_the_same_replies_and_message(self, cuts: list[int]) -> None:
        stream = (
            "EHLO c\r\n" + envelope() + "DATA\r\nSubject: x\r\n\r\n..a\r\n.\r\n"
            "MAIL FROM:<b@c.example>\r\nRCPT TO:<alice@example.org>\r\nBDAT 3 LAST\r\nxyzQUIT\r\n"
        ).encode()
        whole = Session()
        expected = [r[:3] for r in whole.send(stream)]
        s = Session()
        got: list[str] = []
        rest = stream
        for cut in cuts:
            got += [r[:3] for r in s.send(rest[:cut])]
            rest = rest[cut:]
        got += [r[:3] for r in s.send(rest)]
        self.assertEqual(got, expected)
        self.assertEqual(len(s.local.messages), 2)
        self.assertTrue(s.local.messages[0].data.endswith(b"\r\nSubject: x\r\n\r\n.a\r\n"))
        self.assertTrue(s.local.messages[1].data.endswith(b"\r\nxyz"))


_LINES = [
    "EHLO c.example",
    "HELO c.example",
    "MAIL FROM:<a@b.example>",
    "RCPT TO:<bob@example.org>",
    "RCPT TO:<nobody@example.org>",
    "DATA",
    "RSET",
    "NOOP",
    "VRFY bob",
    "HELP",
    "STARTTLS",
    "AUTH PLAIN",
    "QUIT",
]


class StateTableProperties(SynchronousTestCase):
    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.sampled_from(_LINES), max_size=25))
    def test_the_table_decides_every_refusal(self, lines: list[str]) -> None:
        s = Session(ServerSettings(hostname="mx.example.org", max_errors=1000), tls=TLS_CONTEXT)
        s.output()
        for line in lines:
            if s.driver.closed:
                break
            verb = line.split()[0]
            expected = s.conn.session.refusal(verb)
            replies = s.send(line + "\r\n")
            if expected is not None:
                self.assertEqual(replies, [str(expected)], (line, s.conn.session.state))
            else:
                self.assertFalse([r for r in replies if r.startswith("503")], (line, replies))
            if s.conn.session.state is State.DATA:
                self.assertIs(s.conn.framing, Framing.RAW)
                s.send(".\r\n")
            self.assertIs(s.conn.framing, Framing.LINE)

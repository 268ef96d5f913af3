"""The SMTP server under attack: STARTTLS injection, smuggling, AUTH before TLS, junk, limits."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.sasl import client_mechanism, encode_response
from netproto_twisted.smtp.server import ServerSettings

from .test_server_support import Harness, make_portal, plain_auth

TLS = object()  # the fake transport records it; never used for real crypto
REPLY_LINE = re.compile(r"\A[2-5][0-9][0-9][ -]")


class StartTLSTests(SynchronousTestCase):
    def test_offered_only_with_a_certificate(self) -> None:
        self.assertIn("250 STARTTLS", Harness(tls=TLS).ehlo())
        self.assertFalse([line for line in Harness().ehlo() if "STARTTLS" in line])
        h = Harness()
        h.ehlo()
        self.assertEqual(h.send("STARTTLS\r\n"), ["502 5.7.4 STARTTLS not available"])

    def test_injected_plaintext_after_starttls_is_discarded(self) -> None:
        """CVE-2011-0411: commands pipelined behind STARTTLS must not run after the upgrade."""
        h = Harness(tls=TLS, relay_networks=())
        h.ehlo()
        replies = h.send("STARTTLS\r\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<bob@example.org>\r\n")
        self.assertEqual(replies, ["220 2.0.0 Ready to start TLS"])
        self.assertEqual(len(h.transport.tls_started), 1)
        self.assertIs(h.transport.tls_started[0][0], TLS)
        self.assertTrue(h.proto.is_secure)
        # The session was reset: EHLO is needed again, no transaction is open.
        self.assertEqual(h.send("RCPT TO:<bob@example.org>\r\n")[0][:3], "503")
        lines = h.send("EHLO again.example\r\n")
        self.assertFalse([line for line in lines if "STARTTLS" in line])
        self.assertEqual(h.send("DATA\r\n"), ["503 5.5.1 Error: need MAIL command"])

    def test_starttls_refused_in_transaction_and_twice(self) -> None:
        h = Harness(tls=TLS)
        h.ehlo()
        h.send("MAIL FROM:<a@b.example>\r\n")
        self.assertEqual(h.send("STARTTLS\r\n")[0][:3], "503")
        h.send("RSET\r\nSTARTTLS\r\n")
        h.send("EHLO c\r\n")
        self.assertEqual(h.send("STARTTLS\r\n"), ["503 5.5.1 Error: TLS already active"])

    def test_envelope_and_received_record_tls(self) -> None:
        h = Harness(tls=TLS)
        h.ehlo()
        h.send("STARTTLS\r\n")
        h.send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.org>\r\n")
        h.send("DATA\r\nx\r\n.\r\n")
        message = h.local.messages[0]
        self.assertTrue(message.envelope.tls)
        self.assertIn(b"with ESMTPS", message.data)


class AuthTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.portal, self.users = make_portal(Path(self.mktemp()).absolute().parent / "u")

    def harness(self, settings: ServerSettings | None = None, **kwargs: Any) -> Harness:
        return Harness(settings, portal=self.portal, scram_store=self.users, **kwargs)

    def secure(self, settings: ServerSettings | None = None, **kwargs: Any) -> Harness:
        h = self.harness(settings, tls=TLS, **kwargs)
        h.ehlo()
        h.send("STARTTLS\r\n")
        h.send("EHLO client.example\r\n")
        return h

    def test_no_auth_before_tls(self) -> None:
        h = self.harness(tls=TLS)
        self.assertFalse([line for line in h.ehlo() if "AUTH" in line])
        self.assertEqual(
            h.send(f"AUTH PLAIN {plain_auth('alice', 'secret-pw')}\r\n"),
            ["538 5.7.11 Must issue a STARTTLS command first"],
        )
        self.assertIsNone(h.proto.authenticated_as)

    def test_no_auth_before_tls_on_loopback_unless_allowed(self) -> None:
        h = self.harness(peer="127.0.0.1")
        self.assertFalse([line for line in h.ehlo() if "AUTH" in line])
        h = self.harness(ServerSettings(allow_insecure_auth=True), peer="198.51.100.3")
        self.assertFalse([line for line in h.ehlo() if "AUTH" in line])
        h = self.harness(ServerSettings(allow_insecure_auth=True), peer="::1")
        auth = [line for line in h.ehlo() if "AUTH" in line]
        self.assertEqual(auth, ["250 AUTH SCRAM-SHA-256 CRAM-MD5 PLAIN LOGIN"])
        self.assertEqual(
            h.send(f"AUTH PLAIN {plain_auth('alice', 'secret-pw')}\r\n"),
            ["235 2.7.0 Authentication successful"],
        )

    def test_auth_offered_after_tls(self) -> None:
        h = self.harness(tls=TLS)
        h.ehlo()
        h.send("STARTTLS\r\n")
        lines = h.send("EHLO c\r\n")
        self.assertIn("250 AUTH SCRAM-SHA-256 CRAM-MD5 PLAIN LOGIN", lines)

    def test_plain_then_relay(self) -> None:
        h = self.secure()
        self.assertEqual(
            h.send(f"AUTH PLAIN {plain_auth('alice', 'secret-pw')}\r\n"),
            ["235 2.7.0 Authentication successful"],
        )
        self.assertEqual(h.proto.authenticated_as, "alice")
        self.assertEqual(h.send("AUTH PLAIN x\r\n"), ["503 5.5.1 Error: already authenticated"])
        h.send("MAIL FROM:<alice@example.org>\r\n")
        self.assertEqual(h.send("RCPT TO:<friend@far.example>\r\n"), ["250 2.1.5 Ok"])
        h.send("DATA\r\nx\r\n.\r\n")
        message = h.relay.messages[0]
        self.assertEqual(message.envelope.authenticated_as, "alice")
        self.assertIn(b"with ESMTPSA", message.data)

    def test_plain_without_initial_response(self) -> None:
        h = self.secure()
        self.assertEqual(h.send("AUTH PLAIN\r\n"), ["334 "])
        self.assertEqual(
            h.send(plain_auth("bob", "secret-pw") + "\r\n"),
            ["235 2.7.0 Authentication successful"],
        )

    def test_login(self) -> None:
        h = self.secure()
        self.assertEqual(h.send("AUTH LOGIN\r\n"), ["334 VXNlcm5hbWU6"])
        self.assertEqual(
            h.send(base64.b64encode(b"alice").decode() + "\r\n"), ["334 UGFzc3dvcmQ6"]
        )
        self.assertEqual(
            h.send(base64.b64encode(b"secret-pw").decode() + "\r\n"),
            ["235 2.7.0 Authentication successful"],
        )

    def run_mechanism(self, h: Harness, name: str, user: str, password: str) -> list[str]:
        mech = client_mechanism(name, user, password)
        initial = mech.initial_response()
        line = f"AUTH {name}"
        if initial is not None:
            line += " " + encode_response(initial, initial=True).decode()
        replies = h.send(line + "\r\n")
        while replies and replies[0].startswith("334 "):
            challenge = base64.b64decode(replies[0][4:])
            if challenge.startswith(b"v="):
                mech.verify_final(challenge)
                replies = h.send("\r\n")
                continue
            replies = h.send(encode_response(mech.respond(challenge)).decode() + "\r\n")
        return replies

    def test_cram_md5(self) -> None:
        h = self.secure()
        self.assertEqual(
            self.run_mechanism(h, "CRAM-MD5", "alice", "secret-pw"),
            ["235 2.7.0 Authentication successful"],
        )

    def test_scram_sha_256(self) -> None:
        h = self.secure()
        self.assertEqual(
            self.run_mechanism(h, "SCRAM-SHA-256", "bob", "secret-pw"),
            ["235 2.7.0 Authentication successful"],
        )
        self.assertEqual(h.proto.authenticated_as, "bob")

    def test_failed_auth_is_delayed_then_disconnects(self) -> None:
        h = self.secure()
        h.send(f"AUTH PLAIN {plain_auth('alice', 'wrong')}\r\n")
        self.assertEqual(h.output(), [])  # held for the per-address delay
        h.clock.advance(1.0)
        self.assertEqual(h.output(), ["535 5.7.8 Authentication credentials invalid"])
        for attempt in range(2, 5):
            h.send(f"AUTH PLAIN {plain_auth('alice', 'wrong')}\r\n")
            h.clock.advance(2.0 ** (attempt - 1))
            self.assertEqual(h.output(), ["535 5.7.8 Authentication credentials invalid"])
        self.assertFalse(h.closed)
        h.send(f"AUTH PLAIN {plain_auth('alice', 'wrong')}\r\n")
        h.clock.advance(30.0)
        self.assertEqual(
            h.output(),
            ["535 5.7.8 Authentication credentials invalid", "421 4.7.0 Too many failed logins"],
        )
        self.assertTrue(h.closed)
        self.assertIsNone(h.proto.authenticated_as)

    def test_delay_is_per_address_across_sessions(self) -> None:
        first = self.secure()
        first.send(f"AUTH PLAIN {plain_auth('alice', 'wrong')}\r\n")
        first.clock.advance(1.0)
        second = self.secure(factory=first.factory)
        second.clock = first.clock
        second.send(f"AUTH PLAIN {plain_auth('alice', 'wrong')}\r\n")
        first.clock.advance(1.9)
        self.assertEqual(second.output(), [])  # 2 s for the second failure from this address
        first.clock.advance(0.2)
        self.assertEqual(second.output(), ["535 5.7.8 Authentication credentials invalid"])

    def test_cancel(self) -> None:
        h = self.secure()
        h.send("AUTH LOGIN\r\n")
        self.assertEqual(h.send("*\r\n"), ["501 5.5.0 Authentication cancelled"])
        self.assertEqual(h.send("NOOP\r\n"), ["250 2.0.0 Ok"])

    def test_unknown_mechanism_and_bad_base64(self) -> None:
        h = self.secure()
        self.assertEqual(h.send("AUTH GSSAPI\r\n"), ["504 5.5.4 Unrecognized authentication type"])
        self.assertEqual(h.send("AUTH PLAIN\r\n"), ["334 "])
        self.assertEqual(h.send("!!!\r\n"), ["501 5.5.4 Cannot decode response"])

    def test_submission_requires_auth(self) -> None:
        h = self.secure(settings=ServerSettings(require_auth=True))
        self.assertEqual(
            h.send("MAIL FROM:<a@example.org>\r\n"), ["530 5.7.0 Authentication required"]
        )
        h.send(f"AUTH PLAIN {plain_auth('alice', 'secret-pw')}\r\n")
        self.assertEqual(h.send("MAIL FROM:<a@example.org>\r\n"), ["250 2.1.0 Ok"])

    def test_require_tls(self) -> None:
        h = self.harness(ServerSettings(require_tls=True), tls=TLS)
        h.ehlo()
        self.assertEqual(
            h.send("MAIL FROM:<a@example.org>\r\n"),
            ["530 5.7.0 Must issue a STARTTLS command first"],
        )

    def test_auth_line_too_long(self) -> None:
        h = self.secure()
        h.send("AUTH PLAIN\r\n")
        self.assertEqual(h.send("A" * 5000 + "\r\n"), ["501 5.5.6 Authentication line too long"])
        self.assertEqual(h.send("NOOP\r\n"), ["250 2.0.0 Ok"])


class SmugglingTests(SynchronousTestCase):
    """CVE-2023-51764 class: only <CRLF>.<CRLF> ends the data; bare LF/CR is refused."""

    def smuggle(self, end: str, h: Harness | None = None) -> tuple[Harness, list[str]]:
        h = h or Harness()
        h.ehlo()
        replies = h.send(
            "MAIL FROM:<a@client.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
            f"Subject: innocent\r\n\r\nhello{end}"
            "MAIL FROM:<ceo@example.org>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n"
            "Subject: smuggled\r\n\r\nevil\r\n.\r\nNOOP\r\n"
        )
        return h, replies

    def test_smuggling_variants_are_refused_whole(self) -> None:
        for end in ("\n.\r\n", "\r\n.\n", "\n.\n", "\r.\r\n", "\r\n.\r"):
            h, replies = self.smuggle(end)
            self.assertEqual(
                replies[-2:], ["500 5.5.2 Bare CR or LF not allowed", "250 2.0.0 Ok"], end
            )
            self.assertEqual(h.local.messages, [], end)
            self.assertEqual(
                [r for r in replies if r.startswith("354")],
                ["354 End data with <CR><LF>.<CR><LF>"],
            )

    def test_bare_lf_in_command(self) -> None:
        h = Harness()
        h.ehlo()
        self.assertEqual(
            h.send("NOOP\nNOOP\r\n"), ["500 5.5.2 Bare CR or LF not allowed", "250 2.0.0 Ok"]
        )

    def test_normalize_mode_accepts_and_fixes_line_endings(self) -> None:
        h = Harness(ServerSettings(bare_lf="normalize"))
        h.ehlo()
        replies = h.send(
            "MAIL FROM:<a@b.example>\nRCPT TO:<bob@example.org>\nDATA\nline1\nline2\r\n.\n"
        )
        self.assertTrue(replies[-1].startswith("250 2.0.0 Ok: queued"), replies)
        self.assertTrue(h.local.messages[0].data.endswith(b"\r\nline1\r\nline2\r\n"))

    def test_data_line_limit(self) -> None:
        h = Harness(ServerSettings(max_data_line_length=100))
        h.ehlo()
        replies = h.send(transaction_with("x" * 101))
        self.assertEqual(replies[-1], "500 5.5.2 Message line too long")
        self.assertEqual(h.local.messages, [])


def transaction_with(body_line: str) -> str:
    return (
        "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
        + body_line
        + "\r\n.\r\n"
    )


class JunkTests(SynchronousTestCase):
    def test_long_command_line_refused_session_continues(self) -> None:
        h = Harness()
        h.ehlo()
        self.assertEqual(h.send("NOOP " + "x" * 5000 + "\r\n"), ["500 5.5.2 Line too long"])
        self.assertEqual(h.send("NOOP\r\n"), ["250 2.0.0 Ok"])

    def test_long_line_in_pieces(self) -> None:
        h = Harness()
        h.ehlo()
        for _ in range(100):
            h.proto.dataReceived(b"y" * 1000)
        self.assertEqual(h.send("\r\nNOOP\r\n"), ["500 5.5.2 Line too long", "250 2.0.0 Ok"])

    def test_nul_and_binary_in_commands(self) -> None:
        h = Harness()
        h.ehlo()
        self.assertEqual(h.send(b"NOOP\0\r\n")[0][:3], "500")
        self.assertEqual(h.send(b"\xff\xfe\x80\r\n")[0][:3], "500")
        self.assertEqual(h.send(b"MAIL FROM:<\xff@x>\r\n")[0][:3], "500")

    def test_too_many_errors_close_the_session(self) -> None:
        h = Harness(ServerSettings(max_errors=3))
        h.ehlo()
        replies = h.send("A\r\nB\r\nC\r\nD\r\n")
        self.assertEqual(
            replies,
            ["500 5.5.1 Command unrecognized"] * 2 + ["421 4.5.0 Error: too many errors"],
        )
        self.assertTrue(h.closed)

    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=12))
    def test_arbitrary_input_gets_well_formed_replies(self, chunks: list[bytes]) -> None:
        h = Harness()
        h.output()
        for chunk in chunks:
            h.proto.dataReceived(chunk)
        for line in h.output():
            self.assertRegex(line, REPLY_LINE)
        self.assertEqual(h.local.messages, [])

    @settings(max_examples=100, deadline=None)
    @given(
        st.lists(
            st.sampled_from(
                [
                    b"EHLO x\r\n",
                    b"MAIL FROM:<a@b.example>\r\n",
                    b"RCPT TO:<bob@example.org>\r\n",
                    b"DATA\r\n",
                    b"body\r\n",
                    b".\r\n",
                    b"BDAT 4\r\n",
                    b"BDAT 2 LAST\r\n",
                    b"RSET\r\n",
                    b"\n.\r\n",
                    b"abcd",
                ]
            ),
            max_size=25,
        )
    )
    def test_command_soup_never_crashes(self, pieces: list[bytes]) -> None:
        h = Harness()
        h.proto.dataReceived(b"".join(pieces))
        for line in h.output():
            self.assertRegex(line, REPLY_LINE)
        for message in h.local.messages:
            self.assertTrue(message.data.startswith(b"Received: "))

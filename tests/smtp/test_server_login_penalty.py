"""SMTP AUTH on core's SASL driver: the login penalty before each check, and what is offered."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.auth import password_portal
from netproto_twisted.core.passwords import PasswordFile
from netproto_twisted.smtp.delivery import CaptureTarget, DefaultPolicy
from netproto_twisted.smtp.server import SMTPServerFactory
from netproto_twisted.smtp.session import ServerSettings

from ..core.test_sasl_exchange import ManualRunner
from .test_server_support import Harness, plain_auth

TLS = object()  # the fake transport records it; never used for real crypto
PW = "secret-pw"
REFUSED = "535 5.7.8 Authentication credentials invalid"
ACCEPTED = "235 2.7.0 Authentication successful"


class PenaltyTestBase(SynchronousTestCase):
    cram_user = True

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.users = PasswordFile(Path(self.mktemp()), iterations=4096)
        self.users.add("alice", PW, cram_md5=self.cram_user)
        self.users.add("bob", PW)
        self.runner = ManualRunner()
        self.settings = ServerSettings(hostname="mx.example.org")

    def factory(self) -> SMTPServerFactory:
        policy = DefaultPolicy(["example.org"], CaptureTarget(), CaptureTarget())
        return SMTPServerFactory(
            self.clock,
            policy,
            self.settings,
            tls=TLS,
            portal=password_portal(self.users, self.runner),
            scram_store=self.users,
        )

    def connect(self, factory: SMTPServerFactory, peer: str = "192.0.2.10") -> Harness:
        """A connection from *peer*, after STARTTLS and a second EHLO."""
        h = Harness(factory=factory, peer=peer)
        h.ehlo()
        h.send("STARTTLS\r\n")
        h.send("EHLO client.example\r\n")
        return h

    def hang_up(self, h: Harness) -> None:
        h.proto.connectionLost(Failure(ConnectionDone()))


class LoginPenaltyTests(PenaltyTestBase):
    def test_right_password_after_a_failure_waits_for_the_penalty(self) -> None:
        """The hang-up trick: no answer within the penalty is no longer a 'wrong'."""
        factory = self.factory()
        first = self.connect(factory)
        self.assertEqual(first.send(f"AUTH PLAIN {plain_auth('bob', 'guess-1')}\r\n"), [])
        self.runner.finish()  # refused: a 1 s penalty starts
        self.clock.advance(0.25)
        self.assertEqual(first.output(), [])
        self.hang_up(first)
        second = self.connect(factory)
        self.assertEqual(second.send(f"AUTH PLAIN {plain_auth('bob', PW)}\r\n"), [])
        for _ in range(2):
            self.clock.advance(0.25)
            self.assertEqual(second.output(), [])  # not answered early, although right
            self.assertEqual(self.runner.pending, [])  # not even checked yet
        self.clock.advance(0.25)
        self.assertEqual(len(self.runner.pending), 1)  # checked once the penalty is over
        self.runner.finish()
        self.assertEqual(second.output(), [ACCEPTED])
        self.assertEqual(second.proto.authenticated_as, "bob")

    def test_sixty_hang_up_guesses_get_five_checks(self) -> None:
        """60 guesses, each on a new connection dropped 0.375 s after AUTH: 5 are checked."""
        factory = self.factory()
        checked_at = []
        for n in range(60):
            h = self.connect(factory)
            h.send(f"AUTH PLAIN {plain_auth('bob', f'guess-{n}')}\r\n")
            for _step in range(3):
                while self.runner.pending:
                    checked_at.append(self.clock.seconds())
                    self.runner.finish()
                self.clock.advance(0.125)
            self.assertEqual(h.output(), [])
            self.hang_up(h)
        self.assertEqual(checked_at, [0.0, 1.0, 3.0, 7.0, 15.0])
        self.assertEqual(factory.login_delay.waiting("192.0.2.10"), 0)
        self.assertEqual(factory.login_delay.failures("192.0.2.10"), 5)

    def test_parallel_connections_are_answered_one_penalty_apart(self) -> None:
        factory = self.factory()
        conns = [self.connect(factory) for _ in range(5)]
        passwords = ["guess-1", "guess-2", "guess-3", "guess-4", PW]
        for h, password in zip(conns, passwords, strict=True):
            self.assertEqual(h.send(f"AUTH PLAIN {plain_auth('bob', password)}\r\n"), [])
        answers: list[tuple[float, int, list[str]]] = []
        for _ in range(80):
            self.assertLessEqual(len(self.runner.pending), 1)  # one check at a time
            if self.runner.pending:
                self.runner.finish()
            for i, h in enumerate(conns):
                lines = h.output()
                if lines:
                    answers.append((self.clock.seconds(), i, lines))
            self.clock.advance(0.25)
        self.assertEqual(
            answers,
            [
                (1.0, 0, [REFUSED]),
                (3.0, 1, [REFUSED]),
                (7.0, 2, [REFUSED]),
                (15.0, 3, [REFUSED]),
                (15.0, 4, [ACCEPTED]),
            ],
        )

    def test_refusal_on_the_same_connection_waits_once(self) -> None:
        factory = self.factory()
        h = self.connect(factory)
        h.send(f"AUTH PLAIN {plain_auth('bob', 'wrong')}\r\n")
        self.runner.finish()
        self.clock.advance(1.0)
        self.assertEqual(h.output(), [REFUSED])
        # The penalty is over when the refusal arrives: the retry is checked at once.
        h.send(f"AUTH PLAIN {plain_auth('bob', PW)}\r\n")
        self.assertEqual(len(self.runner.pending), 1)
        self.runner.finish()
        self.assertEqual(h.output(), [ACCEPTED])


class OfferedMechanismTests(PenaltyTestBase):
    cram_user = False

    def test_no_cram_md5_without_a_cram_secret(self) -> None:
        """curl prefers CRAM-MD5: it must not be offered when no user can use it."""
        h = self.connect(self.factory())
        lines = h.send("EHLO again.example\r\n")
        self.assertIn("250 AUTH SCRAM-SHA-256 PLAIN LOGIN", lines)
        unknown = ["504 5.5.4 Unrecognized authentication type"]
        self.assertEqual(h.send("AUTH CRAM-MD5\r\n"), unknown)
        self.assertEqual(self.runner.started, 0)
        self.users.add("carol", PW, cram_md5=True)
        lines = h.send("EHLO again.example\r\n")
        self.assertIn("250 AUTH SCRAM-SHA-256 CRAM-MD5 PLAIN LOGIN", lines)

    def test_operator_list(self) -> None:
        self.settings = replace(self.settings, auth_mechanisms=("PLAIN", "SCRAM-SHA-256"))
        h = self.connect(self.factory())
        self.assertIn("250 AUTH PLAIN SCRAM-SHA-256", h.send("EHLO again.example\r\n"))
        self.assertEqual(h.send("AUTH LOGIN\r\n"), ["504 5.5.4 Unrecognized authentication type"])
        h.send(f"AUTH PLAIN {plain_auth('bob', PW)}\r\n")
        self.runner.finish()
        self.assertEqual(h.output(), [ACCEPTED])

    def test_still_nothing_before_tls(self) -> None:
        h = Harness(factory=self.factory())
        self.assertFalse([line for line in h.ehlo() if "AUTH" in line])


class TapOptionTests(SynchronousTestCase):
    def test_auth_mechanisms_reach_every_listener(self) -> None:
        from twisted.internet import reactor

        from netproto_twisted.smtp import tap as smtp_tap

        options = smtp_tap.Options()
        options.parseOptions(["--auth-mechanisms", "scram-sha-256,plain"])
        self.assertEqual(options["limits"].auth_mechanisms, ("SCRAM-SHA-256", "PLAIN"))
        built: list[SMTPServerFactory] = []

        class Recording(SMTPServerFactory):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, **kwargs)  # type: ignore[arg-type]
                built.append(self)

        self.patch(smtp_tap, "SMTPServerFactory", Recording)
        smtp_tap.build_service(
            options.config, reactor, data_dir=Path(self.mktemp()), tls=None,
            complete_endpoint=lambda text: text, limits=options["limits"],
        )  # fmt: skip
        self.assertEqual(len(built), 2)  # MX and submission
        for factory in built:
            self.assertEqual(factory.settings.auth_mechanisms, ("SCRAM-SHA-256", "PLAIN"))
        with self.assertRaises(usage.UsageError):
            smtp_tap.Options().parseOptions(["--auth-mechanisms", "PLAIN,GSSAPI"])

"""The SASL exchange driver, driven with SMTP-, POP3- and IMAP-style framings (no transport)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, fail
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.auth import (
    IAuthenticated,
    UserNameRealm,
    password_portal,
    store_mechanisms,
)
from netproto_twisted.core.passwords import PasswordFile, PasswordFileChecker
from netproto_twisted.core.sasl import client_mechanism, encode_response
from netproto_twisted.core.sasl_exchange import (
    IMAP_FRAMING,
    NNTP_FRAMING,
    POP3_FRAMING,
    SMTP_FRAMING,
    Authenticated,
    Authenticator,
    FailureKind,
    Framing,
    Outcome,
    Refused,
    SASLExchange,
    SendChallenge,
)

PEER = "192.0.2.7"
PW = "secret-pw"
FRAMINGS = {"smtp": SMTP_FRAMING, "pop3": POP3_FRAMING, "imap": IMAP_FRAMING}


class ManualRunner:
    """A password-check runner whose checks finish only when the test says so (a thread pool)."""

    def __init__(self) -> None:
        self.pending: list[tuple[Callable[[], bool], Deferred[bool]]] = []
        self.started = 0

    def __call__(self, function: Callable[[], bool]) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        self.pending.append((function, d))
        self.started += 1
        return d

    def finish(self) -> None:
        function, d = self.pending.pop(0)
        d.callback(function())


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def plain(user: str, password: str) -> bytes:
    return b64(f"\0{user}\0{password}".encode())


def challenge_of(framing: Framing, line: bytes) -> bytes:
    """The decoded challenge of a framed line (and check the framing)."""
    assert line.startswith(framing.prefix) and line.endswith(b"\r\n"), line
    return base64.b64decode(line[len(framing.prefix) : -2], validate=True)


class ExchangeTestBase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.users = PasswordFile(Path(self.mktemp()), iterations=4096)
        self.users.add("alice", PW, cram_md5=True)
        self.users.add("bob", PW)
        self.runner = ManualRunner()
        self.delay = LoginDelay(self.clock)

    def authenticator(self, **kwargs: Any) -> Authenticator:
        return Authenticator.for_password_file(self.users, self.runner, self.delay, **kwargs)

    def exchange(
        self, framing: Framing = SMTP_FRAMING, peer: str = PEER, **kwargs: Any
    ) -> SASLExchange:
        return self.authenticator(**kwargs).exchange(framing, peer=peer)

    def result(self, d: Deferred[Outcome]) -> Outcome:
        """The outcome, running any password check the step started and serving any penalty."""
        for _ in range(100):
            if d.called:
                break
            if self.runner.pending:
                self.runner.finish()
            else:
                self.clock.advance(1.0)
        return self.successResultOf(d)

    def run_client(
        self, ex: SASLExchange, framing: Framing, mechanism: str, user: str, password: str
    ) -> Outcome:
        """Drive a whole exchange with the stdlib-free client side of core.sasl."""
        mech = client_mechanism(mechanism, user, password)
        initial = mech.initial_response()
        wire = None if initial is None else encode_response(initial, initial=True)
        outcome = self.result(ex.start(mechanism, wire, secure=True))
        while isinstance(outcome, SendChallenge):
            challenge = challenge_of(framing, outcome.line)
            self.assertEqual(challenge, outcome.data)
            if challenge.startswith(b"v="):
                mech.verify_final(challenge)
                outcome = self.result(ex.feed(b""))
                continue
            outcome = self.result(ex.feed(encode_response(mech.respond(challenge))))
        if isinstance(outcome, Authenticated) and outcome.final_data is not None:
            mech.verify_final(outcome.final_data)
        return outcome


class FramingTests(ExchangeTestBase):
    """Every mechanism through each protocol's framing."""

    def test_every_mechanism_in_every_framing(self) -> None:
        for name, framing in FRAMINGS.items():
            for mechanism in ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"):
                ex = self.exchange(framing)
                outcome = self.run_client(ex, framing, mechanism, "alice", PW)
                self.assertIsInstance(outcome, Authenticated, (name, mechanism))
                assert isinstance(outcome, Authenticated)
                self.assertEqual(outcome.username, "alice")
                self.assertEqual(outcome.avatar, "alice")
                self.assertIs(outcome.interface, IAuthenticated)
                self.assertFalse(ex.active)

    def test_challenge_lines(self) -> None:
        expected = {"smtp": b"334 ", "pop3": b"+ ", "imap": b"+ "}
        for name, framing in FRAMINGS.items():
            ex = self.exchange(framing)
            outcome = self.result(ex.start("PLAIN", None, secure=True))
            self.assertEqual(outcome, SendChallenge(b"", expected[name] + b"\r\n"))
            self.assertTrue(ex.active)
            outcome = self.result(ex.start("LOGIN", None, secure=True))
            busy = Refused(FailureKind.MALFORMED, "an exchange is already running")
            self.assertEqual(outcome, busy)
            ex.abort()
            outcome = self.result(ex.start("LOGIN", None, secure=True))
            line = expected[name] + b"VXNlcm5hbWU6\r\n"
            self.assertEqual(outcome, SendChallenge(b"Username:", line))
        ex = self.exchange(NNTP_FRAMING)
        outcome = self.result(ex.start("LOGIN", None, secure=True))
        assert isinstance(outcome, SendChallenge)
        self.assertEqual(outcome.line, b"383 VXNlcm5hbWU6\r\n")

    def test_cram_md5_by_hand(self) -> None:
        ex = self.exchange(POP3_FRAMING, hostname="pop.example.org")
        outcome = self.result(ex.start("CRAM-MD5", None, secure=True))
        assert isinstance(outcome, SendChallenge)
        challenge = challenge_of(POP3_FRAMING, outcome.line)
        self.assertTrue(challenge.endswith(b"@pop.example.org>"))
        digest = hmac.new(PW.encode(), challenge, hashlib.md5).hexdigest()
        outcome = self.result(ex.feed(b64(f"alice {digest}".encode())))
        self.assertIsInstance(outcome, Authenticated)

    def test_scram_final_data_with_success(self) -> None:
        """A framing whose success carries data gets SCRAM's v= in Authenticated.final_data."""
        framing = Framing(b"+ ", final_as_challenge=False)
        outcome = self.run_client(self.exchange(framing), framing, "SCRAM-SHA-256", "bob", PW)
        assert isinstance(outcome, Authenticated)
        assert outcome.final_data is not None
        self.assertTrue(outcome.final_data.startswith(b"v="))

    def test_scram_wrong_password(self) -> None:
        outcome = self.run_client(self.exchange(), SMTP_FRAMING, "SCRAM-SHA-256", "bob", "nope")
        self.assertEqual(outcome, Refused(FailureKind.BAD_CREDENTIALS, "credentials refused"))

    def test_initial_responses(self) -> None:
        ex = self.exchange()
        outcome = self.result(ex.start("PLAIN", plain("bob", PW), secure=True))
        self.assertIsInstance(outcome, Authenticated)
        # "=" is an empty initial response: PLAIN cannot be empty.
        outcome = self.result(ex.start("plain", b"=", secure=True))
        assert isinstance(outcome, Refused)
        self.assertEqual(outcome.kind, FailureKind.MALFORMED)
        self.assertFalse(ex.active)
        # LOGIN with the user name as initial response asks for the password next.
        outcome = self.result(ex.start("LOGIN", b64(b"bob"), secure=True))
        self.assertEqual(outcome, SendChallenge(b"Password:", b"334 UGFzc3dvcmQ6\r\n"))

    def test_imap_without_sasl_ir_refuses_initial_response(self) -> None:
        framing = Framing(b"+ ", initial_response=False)
        ex = self.exchange(framing)
        outcome = self.result(ex.start("PLAIN", plain("bob", PW), secure=True))
        assert isinstance(outcome, Refused)
        self.assertEqual(outcome.kind, FailureKind.MALFORMED)
        self.assertEqual(self.runner.started, 0)

    def test_cancel_and_bad_base64(self) -> None:
        for framing in FRAMINGS.values():
            ex = self.exchange(framing)
            self.result(ex.start("LOGIN", None, secure=True))
            outcome = self.result(ex.feed(b"*"))
            self.assertEqual(outcome, Refused(FailureKind.CANCELLED, "cancelled by the client"))
            self.assertFalse(ex.active)
            self.result(ex.start("PLAIN", None, secure=True))
            outcome = self.result(ex.feed(b"!!!"))
            assert isinstance(outcome, Refused)
            self.assertEqual(outcome.kind, FailureKind.UNDECODABLE)
            self.assertFalse(ex.active)
            outcome = self.result(ex.start("PLAIN", b"*", secure=True))
            self.assertEqual(outcome, Refused(FailureKind.CANCELLED, "cancelled by the client"))
            outcome = self.result(ex.start("PLAIN", b"%%%", secure=True))
            assert isinstance(outcome, Refused)
            self.assertEqual(outcome.kind, FailureKind.UNDECODABLE)
        self.assertEqual(ex.failures, 0)

    def test_feed_without_exchange(self) -> None:
        ex = self.exchange()
        outcome = self.result(ex.feed(b64(b"x")))
        self.assertEqual(outcome, Refused(FailureKind.MALFORMED, "no response expected now"))

    def test_malformed_mechanism_data(self) -> None:
        ex = self.exchange()
        self.result(ex.start("CRAM-MD5", None, secure=True))
        outcome = self.result(ex.feed(b64(b"no-digest-here")))
        assert isinstance(outcome, Refused)
        self.assertEqual(outcome.kind, FailureKind.MALFORMED)
        self.assertEqual(ex.failures, 0)


class OfferTests(ExchangeTestBase):
    """What is offered: TLS state, loopback allowance, store capabilities, operator list."""

    def test_nothing_before_tls(self) -> None:
        ex = self.exchange()
        self.assertEqual(ex.mechanisms(secure=False), [])
        outcome = self.result(ex.start("SCRAM-SHA-256", None, secure=False))
        assert isinstance(outcome, Refused)
        self.assertEqual(outcome.kind, FailureKind.ENCRYPTION_REQUIRED)

    def test_loopback_allowance(self) -> None:
        auth = self.authenticator(allow_insecure=True)
        remote = auth.exchange(SMTP_FRAMING, peer=PEER)
        local = auth.exchange(SMTP_FRAMING, peer="127.0.0.1", peer_is_loopback=True)
        self.assertEqual(remote.mechanisms(secure=False), [])
        all_four = ["SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN"]
        self.assertEqual(local.mechanisms(secure=False), all_four)
        outcome = self.result(local.start("PLAIN", plain("bob", PW), secure=False))
        self.assertIsInstance(outcome, Authenticated)

    def test_cram_md5_only_when_a_user_has_a_secret(self) -> None:
        users = PasswordFile(Path(self.mktemp()), iterations=4096)
        users.add("bob", PW)
        auth = Authenticator.for_password_file(users, self.runner, self.delay)
        ex = auth.exchange(SMTP_FRAMING, peer=PEER)
        self.assertEqual(ex.mechanisms(secure=True), ["SCRAM-SHA-256", "PLAIN", "LOGIN"])
        outcome = self.result(ex.start("CRAM-MD5", None, secure=True))
        assert isinstance(outcome, Refused)
        self.assertEqual(outcome.kind, FailureKind.NOT_OFFERED)
        self.assertEqual(store_mechanisms(users), {"SCRAM-SHA-256", "PLAIN", "LOGIN"})
        users.add("carol", PW, cram_md5=True)  # the file is re-read: now it can
        self.assertIn("CRAM-MD5", ex.mechanisms(secure=True))

    def test_operator_list(self) -> None:
        ex = self.exchange(mechanisms=("login", "PLAIN", "CRAM-MD5"))
        self.assertEqual(ex.mechanisms(secure=True), ["LOGIN", "PLAIN", "CRAM-MD5"])
        outcome = self.result(ex.start("SCRAM-SHA-256", None, secure=True))
        assert isinstance(outcome, Refused)
        self.assertEqual(outcome.kind, FailureKind.NOT_OFFERED)
        outcome = self.result(ex.start("GSSAPI", None, secure=True))
        assert isinstance(outcome, Refused)
        self.assertEqual(outcome.kind, FailureKind.NOT_OFFERED)
        with self.assertRaises(ValueError):
            self.authenticator(mechanisms=("PLAIN", "GSSAPI"))

    def test_no_scram_without_store(self) -> None:
        portal = Portal(UserNameRealm(), [PasswordFileChecker(self.users, self.runner)])
        auth = Authenticator(portal, self.delay)
        ex = auth.exchange(SMTP_FRAMING, peer=PEER)
        self.assertEqual(ex.mechanisms(secure=True), ["CRAM-MD5", "PLAIN", "LOGIN"])


class FailureTests(ExchangeTestBase):
    def test_bad_credentials_then_too_many(self) -> None:
        ex = self.exchange(POP3_FRAMING)
        kinds = []
        for _ in range(5):
            d = ex.start("PLAIN", plain("bob", "wrong"), secure=True)
            self.runner.finish()
            self.clock.advance(60)
            kinds.append(self.successResultOf(d))
        self.assertEqual(
            [o.kind for o in kinds if isinstance(o, Refused)],
            [FailureKind.BAD_CREDENTIALS] * 4 + [FailureKind.TOO_MANY_FAILURES],
        )
        self.assertTrue(kinds[-1].disconnect)  # type: ignore[union-attr]
        self.assertEqual(ex.failures, 5)

    def test_plain_passwords_and_exchanges_share_the_count(self) -> None:
        ex = self.exchange(POP3_FRAMING)
        outcomes: list[object] = []
        for attempt in range(5):
            if attempt % 2:
                d: Deferred[Any] = ex.start("PLAIN", plain("bob", "wrong"), secure=True)
            else:
                d = ex.check_password("bob", "wrong")
            self.runner.finish()
            self.clock.advance(60)
            outcomes.append(self.successResultOf(d))
        kinds = [o.kind for o in outcomes if isinstance(o, Refused)]
        self.assertEqual(
            kinds, [FailureKind.BAD_CREDENTIALS] * 4 + [FailureKind.TOO_MANY_FAILURES]
        )
        self.assertEqual(ex.failures, 5)

    def test_check_password_logs_in(self) -> None:
        ex = self.exchange(IMAP_FRAMING)
        d = ex.check_password("bob", PW)
        self.runner.finish()
        outcome = self.successResultOf(d)
        assert isinstance(outcome, Authenticated)
        self.assertEqual(outcome.username, "bob")
        self.assertEqual(ex.failures, 0)

    def test_check_password_waits_for_the_penalty(self) -> None:
        self.delay.failed(PEER)
        ex = self.exchange(POP3_FRAMING)
        d = ex.check_password("bob", PW)
        self.assertEqual(self.runner.started, 0)  # not checked before the penalty is over
        self.clock.advance(60)
        self.runner.finish()
        self.assertIsInstance(self.successResultOf(d), Authenticated)

    def test_store_failure_is_temporary_and_not_counted(self) -> None:
        class Broken:
            def login(self, *args: object) -> Deferred[Any]:
                return fail(OSError("disk on fire"))

        auth = Authenticator(Broken(), self.delay)  # type: ignore[arg-type]
        ex = auth.exchange(SMTP_FRAMING, peer=PEER)
        outcome = self.result(ex.start("PLAIN", plain("bob", PW), secure=True))
        assert isinstance(outcome, Refused)
        self.assertEqual(outcome.kind, FailureKind.TEMPORARY)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertEqual((ex.failures, self.delay.failures(PEER)), (0, 0))

    def test_too_many_waiting_is_temporary(self) -> None:
        self.delay = LoginDelay(self.clock, max_waiting=2)
        auth = self.authenticator()
        first = auth.exchange(SMTP_FRAMING, peer=PEER)
        first.start("PLAIN", plain("bob", PW), secure=True)  # being checked
        waiting = [auth.exchange(SMTP_FRAMING, peer=PEER) for _ in range(2)]
        for ex in waiting:
            ex.start("PLAIN", plain("bob", PW), secure=True)
        extra = auth.exchange(SMTP_FRAMING, peer=PEER)
        outcome = self.successResultOf(extra.start("PLAIN", plain("bob", PW), secure=True))
        assert isinstance(outcome, Refused)
        self.assertEqual(outcome.kind, FailureKind.TEMPORARY)


class PenaltyTests(ExchangeTestBase):
    """The hang-up trick and parallel guessing, through the driver."""

    def guess(self, auth: Authenticator, password: str) -> tuple[SASLExchange, Deferred[Outcome]]:
        ex = auth.exchange(SMTP_FRAMING, peer=PEER)
        return ex, ex.start("PLAIN", plain("bob", password), secure=True)

    def test_right_password_is_not_answered_before_the_penalty(self) -> None:
        auth = self.authenticator()
        first, d = self.guess(auth, "wrong")
        self.runner.finish()  # checked at once (no penalty yet): refused, 1 s penalty
        self.assertNoResult(d)  # the refusal is held for the penalty it caused
        self.clock.advance(0.25)
        first.abort()  # the client hangs up: "no answer in 0.25 s, so it was wrong"
        self.assertEqual(self.successResultOf(d).kind, FailureKind.CANCELLED)  # type: ignore[union-attr]
        _, d = self.guess(auth, PW)  # ...and tries the next password at once
        self.clock.advance(0.25)
        self.assertNoResult(d)  # not answered early, although right
        self.assertEqual(self.runner.pending, [])  # not even checked yet
        self.clock.advance(0.25)
        self.assertEqual(self.runner.pending, [])
        self.clock.advance(0.25)
        self.assertEqual(len(self.runner.pending), 1)  # checked once the penalty is over
        self.runner.finish()
        self.assertIsInstance(self.successResultOf(d), Authenticated)
        self.assertEqual(self.delay.failures(PEER), 0)  # success clears the address

    def test_hang_up_trick_gains_nothing(self) -> None:
        """60 guesses, hanging up 0.375 s after each unanswered one: only 5 are ever checked."""
        auth = self.authenticator()
        checked_at = []
        for _ in range(60):
            ex, d = self.guess(auth, "wrong")
            for _step in range(3):
                while self.runner.pending:
                    checked_at.append(self.clock.seconds())
                    self.runner.finish()
                self.clock.advance(0.125)
            self.assertNoResult(d)  # never an answer before hanging up: nothing learnt
            ex.abort()
        self.assertEqual(self.clock.seconds(), 22.5)
        self.assertEqual(checked_at, [0.0, 1.0, 3.0, 7.0, 15.0])
        self.assertEqual(self.delay.failures(PEER), 5)
        self.assertEqual(self.delay.waiting(PEER), 0)

    def test_hanging_up_withdraws_the_attempt(self) -> None:
        auth = self.authenticator()
        _, refused = self.guess(auth, "wrong")
        self.runner.finish()
        ex, d = self.guess(auth, PW)  # at the head, serving the 1 s penalty
        ex2, d2 = self.guess(auth, PW)  # behind it
        self.assertEqual(self.delay.waiting(PEER), 1)
        ex2.abort()
        self.assertEqual(self.delay.waiting(PEER), 0)
        self.assertEqual(self.successResultOf(d2).kind, FailureKind.CANCELLED)  # type: ignore[union-attr]
        ex.abort()
        self.assertEqual(self.successResultOf(d).kind, FailureKind.CANCELLED)  # type: ignore[union-attr]
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)  # only the refusal's hold
        self.clock.advance(10)
        self.assertEqual(self.successResultOf(refused).kind, FailureKind.BAD_CREDENTIALS)  # type: ignore[union-attr]
        self.assertEqual(self.runner.started, 1)  # the abandoned guesses were never checked
        self.assertFalse(ex.active)
        _, d3 = self.guess(auth, PW)  # the queue is free again
        self.runner.finish()
        self.assertIsInstance(self.successResultOf(d3), Authenticated)

    def test_parallel_attempts_from_one_address_are_serialised(self) -> None:
        auth = self.authenticator()
        pairs = [self.guess(auth, pw) for pw in ["wrong", "wrong", "wrong", "wrong", PW]]
        self.assertEqual(self.delay.waiting(PEER), 4)
        answered: list[tuple[float, Outcome]] = []
        checked_at = []
        for _, d in pairs:
            d.addCallback(lambda o: answered.append((self.clock.seconds(), o)))
        # Step the clock, running each check the moment it starts; never two at once.
        for _ in range(200):
            self.assertLessEqual(len(self.runner.pending), 1)
            if self.runner.pending:
                checked_at.append(self.clock.seconds())
                self.runner.finish()
            self.clock.advance(0.25)
        # Checked one at a time, each once the penalty before it is over (1, 2, 4, 8 s);
        # each refusal is answered when its own penalty ends, the right password at once.
        self.assertEqual(checked_at, [0.0, 1.0, 3.0, 7.0, 15.0])
        self.assertEqual([t for t, _ in answered], [1.0, 3.0, 7.0, 15.0, 15.0])
        kinds = [o.kind if isinstance(o, Refused) else "ok" for _, o in answered]
        self.assertEqual(kinds, [FailureKind.BAD_CREDENTIALS] * 4 + ["ok"])

    def test_ipv6_neighbours_share_a_queue(self) -> None:
        auth = self.authenticator()
        one = auth.exchange(SMTP_FRAMING, peer="2001:db8::1")
        d = one.start("PLAIN", plain("bob", "wrong"), secure=True)
        self.runner.finish()
        other = auth.exchange(SMTP_FRAMING, peer="2001:db8::2")
        d2 = other.start("PLAIN", plain("bob", PW), secure=True)
        self.clock.advance(0.9)
        self.assertEqual(self.runner.pending, [])
        self.assertNoResult(d2)
        self.clock.advance(0.1)
        self.runner.finish()
        self.assertIsInstance(self.successResultOf(d2), Authenticated)
        self.assertIsInstance(self.successResultOf(d), Refused)

    def test_abort_during_the_check_still_counts(self) -> None:
        auth = self.authenticator()
        ex = auth.exchange(SMTP_FRAMING, peer=PEER)
        d = ex.start("PLAIN", plain("bob", "wrong"), secure=True)
        self.assertEqual(len(self.runner.pending), 1)
        ex.abort()
        self.assertEqual(self.successResultOf(d).kind, FailureKind.CANCELLED)  # type: ignore[union-attr]
        self.runner.finish()
        self.assertEqual(self.delay.failures(PEER), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class RealmTests(SynchronousTestCase):
    def test_realm_gives_the_name(self) -> None:
        realm = UserNameRealm()
        interface, avatar, logout = realm.requestAvatar(b"alice", None, IAuthenticated)
        self.assertEqual((interface, avatar), (IAuthenticated, "alice"))
        logout()
        with self.assertRaises(NotImplementedError):
            realm.requestAvatar(b"alice", None)

    def test_password_portal(self) -> None:
        from twisted.cred.credentials import UsernamePassword

        from netproto_twisted.core.passwords import synchronous_runner

        users = PasswordFile(Path(self.mktemp()), iterations=4096)
        users.add("alice", PW)
        portal = password_portal(users, synchronous_runner)
        d = portal.login(UsernamePassword(b"alice", PW.encode()), None, IAuthenticated)
        self.assertEqual(self.successResultOf(d)[1], "alice")

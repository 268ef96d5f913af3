"""LoginPenalty.attempt: the wait before each check, one check at a time, cancellation, bounds."""

from __future__ import annotations

from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.internet.defer import CancelledError
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.login_delay import LoginPenalty, TooManyWaiting

HOST = "192.0.2.1"


class Checks:
    """Credential checks the test finishes by hand: ``ok`` or refused."""

    def __init__(self) -> None:
        self.running: list[defer.Deferred[str]] = []
        self.started = 0

    def check(self) -> defer.Deferred[str]:
        d: defer.Deferred[str] = defer.Deferred()
        self.running.append(d)
        self.started += 1
        return d

    def finish(self, ok: bool) -> None:
        d = self.running.pop(0)
        if ok:
            d.callback("avatar")
        else:
            d.errback(UnauthorizedLogin())


class AttemptTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.delay = LoginDelay(self.clock)
        self.checks = Checks()

    def attempt(self, host: str = HOST) -> defer.Deferred[str]:
        return self.delay.attempt(host, self.checks.check)

    def test_unpenalised_check_runs_at_once(self) -> None:
        d = self.attempt()
        self.assertEqual(self.checks.started, 1)
        self.checks.finish(True)
        self.assertEqual(self.successResultOf(d), "avatar")
        self.assertEqual((self.delay.busy_addresses, self.delay.failures(HOST)), (0, 0))

    def test_check_answered_at_once(self) -> None:
        """A check that succeeds at once (a login cache) leaves nothing behind and clears failures;
        one refused at once is still held for its penalty."""
        self.delay.failed(HOST)
        self.clock.advance(1.0)
        d = self.delay.attempt(HOST, lambda: defer.succeed("cached"))
        self.assertEqual(self.successResultOf(d), "cached")
        self.assertEqual((self.delay.busy_addresses, self.delay.failures(HOST)), (0, 0))
        refused = self.delay.attempt(HOST, lambda: defer.fail(UnauthorizedLogin()))
        self.assertNoResult(refused)
        self.assertEqual(self.delay.failures(HOST), 1)
        self.clock.advance(1.0)
        self.failureResultOf(refused, UnauthorizedLogin)

        def broken() -> defer.Deferred[str]:
            raise RuntimeError("store down")

        self.failureResultOf(self.delay.attempt(HOST, broken), RuntimeError)
        self.assertEqual((self.delay.busy_addresses, self.delay.failures(HOST)), (0, 1))

    def test_refusal_is_held_for_its_penalty_and_counted(self) -> None:
        d = self.attempt()
        self.checks.finish(False)
        self.assertNoResult(d)
        self.assertEqual(self.delay.failures(HOST), 1)
        self.assertEqual(self.delay.current_delay(HOST), 1.0)
        self.clock.advance(1.0)
        self.failureResultOf(d, UnauthorizedLogin)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_next_check_waits_for_the_penalty(self) -> None:
        first = self.attempt()
        self.checks.finish(False)
        self.clock.advance(0.5)
        second = self.attempt("::ffff:192.0.2.1")  # the same address, IPv4-mapped
        self.assertEqual(self.checks.started, 1)
        self.clock.advance(0.5)
        self.assertEqual(self.checks.started, 2)
        self.failureResultOf(first, UnauthorizedLogin)
        self.checks.finish(True)
        self.assertEqual(self.successResultOf(second), "avatar")
        self.assertEqual(self.delay.failures(HOST), 0)

    def test_penalty_is_counted_from_the_last_failure(self) -> None:
        d = self.attempt()
        self.checks.finish(False)
        self.clock.advance(5)  # long after the 1 s penalty
        self.failureResultOf(d, UnauthorizedLogin)
        self.attempt()
        self.assertEqual(self.checks.started, 2)  # no further wait

    def test_one_check_at_a_time_even_without_penalty(self) -> None:
        first, second = self.attempt(), self.attempt()
        self.assertEqual((self.checks.started, self.delay.waiting(HOST)), (1, 1))
        other = self.attempt("198.51.100.1")  # another address is not held up
        self.assertEqual(self.checks.started, 2)
        self.checks.finish(True)
        self.assertEqual(self.checks.started, 3)
        self.checks.finish(True)
        self.checks.finish(True)
        for d in (first, other, second):
            self.assertEqual(self.successResultOf(d), "avatar")

    def test_cancel_while_waiting_in_line(self) -> None:
        self.attempt()
        waiting = self.attempt()
        behind = self.attempt()
        waiting.cancel()
        self.failureResultOf(waiting, defer.CancelledError)
        self.assertEqual(self.delay.waiting(HOST), 1)
        self.checks.finish(True)
        self.assertEqual(self.checks.started, 2)  # 'behind' is next; 'waiting' never ran
        self.checks.finish(True)
        self.successResultOf(behind)
        self.assertEqual(self.delay.busy_addresses, 0)

    def test_cancel_while_serving_the_penalty(self) -> None:
        refused = self.attempt()
        self.checks.finish(False)
        d = self.attempt()
        self.assertEqual(len(self.clock.getDelayedCalls()), 2)  # the hold and this turn
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(10)
        self.assertEqual((self.checks.started, self.delay.busy_addresses), (1, 0))
        self.failureResultOf(refused, UnauthorizedLogin)

    def test_cancel_while_checking_still_counts(self) -> None:
        d = self.attempt()
        nxt = self.attempt()
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(self.checks.started, 1)  # the next waits for the running check
        self.checks.finish(False)
        self.assertEqual(self.delay.failures(HOST), 1)
        self.assertEqual(self.checks.started, 1)
        self.clock.advance(1.0)
        self.assertEqual(self.checks.started, 2)
        self.checks.finish(True)
        self.successResultOf(nxt)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancel_during_the_refusal_hold(self) -> None:
        d = self.attempt()
        self.checks.finish(False)
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.delay.failures(HOST), 1)

    def test_other_failures_do_not_count(self) -> None:
        d = self.delay.attempt(HOST, lambda: defer.fail(OSError("store down")))
        self.failureResultOf(d, OSError)
        self.assertEqual(self.delay.failures(HOST), 0)

        def broken() -> defer.Deferred[str]:
            raise ValueError("bug")

        self.failureResultOf(self.delay.attempt(HOST, broken), ValueError)
        self.assertEqual(self.delay.busy_addresses, 0)

    def test_custom_refusal(self) -> None:
        d = self.delay.attempt(
            HOST, lambda: defer.fail(KeyError("x")), is_refusal=lambda f: True
        )
        self.assertNoResult(d)
        self.clock.advance(1.0)
        self.failureResultOf(d, KeyError)
        self.assertEqual(self.delay.failures(HOST), 1)

    def test_waiting_is_bounded(self) -> None:
        delay = LoginDelay(self.clock, max_waiting=3)
        attempts = [delay.attempt(HOST, self.checks.check) for _ in range(4)]
        self.assertEqual(delay.waiting(HOST), 3)
        self.failureResultOf(delay.attempt(HOST, self.checks.check), TooManyWaiting)
        attempts[2].cancel()  # a cancelled one frees its place
        self.failureResultOf(attempts[2], CancelledError)
        more = delay.attempt(HOST, self.checks.check)
        self.assertNoResult(more)
        self.assertNoResult(attempts[3])

    def test_many_addresses_leave_nothing_behind(self) -> None:
        for i in range(1000):
            d = self.attempt(f"10.0.{i // 256}.{i % 256}")
            self.checks.finish(True)
            self.successResultOf(d)
        self.assertEqual((self.delay.busy_addresses, len(self.delay)), (0, 0))

    def test_base_penalty_keys_by_text(self) -> None:
        penalty = LoginPenalty(self.clock)
        penalty.failed("::ffff:192.0.2.1")
        self.assertEqual(penalty.failures(HOST), 0)
        self.assertEqual(penalty.failures("::ffff:192.0.2.1"), 1)

    def test_bad_max_waiting(self) -> None:
        with self.assertRaises(ConfigError):
            LoginDelay(self.clock, max_waiting=0)


class NoCycleTests(SynchronousTestCase):
    def test_finished_attempts_leave_no_cycle(self) -> None:
        """An attempt that waited its turn is freed by refcounting once it is over."""
        from tests.gccheck import collector_finds_nothing

        clock = MemoryReactorClock()
        delay = LoginDelay(clock)
        checks = Checks()
        with collector_finds_nothing(self):
            first = delay.attempt(HOST, checks.check)
            second = delay.attempt(HOST, checks.check)  # waits for the first
            checks.finish(True)
            checks.finish(True)
            self.assertEqual(self.successResultOf(first), "avatar")
            self.assertEqual(self.successResultOf(second), "avatar")
            del first, second

"""The relay's retry jitter and its cache of unreachable next-hop hosts (fake clocks)."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.smtp.client import SendResult
from netproto_twisted.smtp.errors import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPRecipientsRefused,
    SMTPTLSRequired,
)
from netproto_twisted.smtp.relay import RelaySettings
from netproto_twisted.smtp.relay._route import DeadHosts
from netproto_twisted.smtp.relay.queue import PENDING
from tests.smtp.test_relay import RelayTestsBase


def refuse_busy(host: str, sender: str, rcpts: list[str]) -> SendResult:
    raise SMTPRecipientsRefused(dict.fromkeys(rcpts, (451, "4.3.0 busy")))


def numbers(*values: float) -> Iterator[float]:
    yield from values
    raise AssertionError("more random numbers asked for than expected")


class JitterTests(RelayTestsBase):
    def delay_after_first_try(self, value: float) -> float:
        entry_id = self.store("b@remote.example")
        [r] = self.spool.directory.load(entry_id).recipients
        self.assertEqual((r.status, r.attempts), (PENDING, 1))
        return r.next_try - self.reactor.seconds()

    def test_delays_vary_within_the_jitter(self) -> None:
        self.net.answer = refuse_busy
        source = numbers(0.0, 0.999, 0.25)
        self.make_relay(min_backoff=300, jitter=0.1, random=lambda: next(source))
        self.assertAlmostEqual(self.delay_after_first_try(0.0), 270.0)
        self.assertAlmostEqual(self.delay_after_first_try(0.999), 329.94, places=2)
        self.assertAlmostEqual(self.delay_after_first_try(0.25), 285.0)

    def test_jitter_spreads_a_destinations_retries(self) -> None:
        """Messages deferred together come back at different times, each within +-10 %."""
        self.net.answer = refuse_busy
        relay = self.make_relay(min_backoff=300, max_backoff=300, random=None)
        self.assertIsNot(relay.random, None)
        ids = [self.store(f"u{i}@remote.example") for i in range(20)]
        now = self.reactor.seconds()
        delays = {self.spool.directory.load(i).recipients[0].next_try - now for i in ids}
        self.assertGreater(len(delays), 10)
        self.assertTrue(all(270.0 <= d <= 330.0 for d in delays), delays)

    def test_no_jitter_and_bad_values(self) -> None:
        self.net.answer = refuse_busy
        self.make_relay(min_backoff=300, jitter=0.0, random=lambda: 0.9)
        self.assertEqual(self.delay_after_first_try(0.9), 300.0)
        for bad in (-0.1, 1.0):
            self.assertRaises(ValueError, RelaySettings, hostname="x", jitter=bad)


class DeadHostTests(RelayTestsBase):
    def test_unreachable_host_is_skipped_for_a_while(self) -> None:
        self.net.down.add("mx1.remote.example")
        relay = self.make_relay(dead_host_time=120, max_dead_host_time=1000)
        self.store("b@remote.example")
        self.assertEqual(self.mx_connects(), 1)
        self.reactor.advance(60)
        second = self.store("c@remote.example")
        self.assertEqual(self.mx_connects(), 1)  # skipped, not connected to again
        [r] = self.spool.directory.load(second).recipients
        assert r.reply is not None
        self.assertEqual((r.status, r.reply[:2]), (PENDING, (451, "4.4.1")))
        self.assertIn("skipped", r.reply[2])
        self.assertEqual(relay.attempts, 0)
        self.reactor.advance(60)  # the hold-down is over
        self.net.down.clear()
        self.store("d@remote.example")
        self.assertEqual(self.mx_connects(), 2)
        self.assertEqual(len(self.net.sent), 1)
        self.assertIsNone(relay.dead_hosts.until(("mx1.remote.example", 25)))

    def mx_connects(self) -> int:
        return sum(1 for c in self.net.connects if c[0].startswith("mx"))

    def test_other_mx_hosts_are_still_tried(self) -> None:
        self.resolver.table["remote.example"] = [
            (10, "mx1.remote.example"),
            (20, "mx2.remote.example"),
        ]
        self.net.down.add("mx1.remote.example")
        self.make_relay(idle_timeout=1)
        self.store("b@remote.example")
        self.reactor.advance(2)  # the connection to mx2 closes
        self.store("c@remote.example")
        hosts = [c[0] for c in self.net.connects if c[0].startswith("mx")]
        self.assertEqual(hosts, ["mx1.remote.example", "mx2.remote.example", "mx2.remote.example"])
        self.assertEqual([s[0] for s in self.net.sent], ["mx2.remote.example"] * 2)

    def test_hold_down_grows_then_success_forgets(self) -> None:
        self.net.down.add("mx1.remote.example")
        relay = self.make_relay(dead_host_time=100, max_dead_host_time=300, min_backoff=10_000)
        key = ("mx1.remote.example", 25)
        holds = []
        for _ in range(4):
            self.store("b@remote.example")
            until = relay.dead_hosts.until(key)
            assert until is not None
            holds.append(until - self.reactor.seconds())
            self.reactor.advance(holds[-1])
        self.assertEqual(holds, [100, 200, 300, 300])
        self.net.down.clear()
        self.store("c@remote.example")
        self.assertEqual(len(relay.dead_hosts), 0)
        self.reactor.advance(10)  # the idle connection closes
        self.net.down.add("mx1.remote.example")
        self.store("d@remote.example")
        self.assertEqual(relay.dead_hosts.until(key), self.reactor.seconds() + 100)

    def test_flush_tries_every_host_again(self) -> None:
        self.net.down.add("mx1.remote.example")
        relay = self.make_relay()
        self.store("b@remote.example")
        self.net.down.clear()
        relay.flush()
        self.assertEqual(self.mx_connects(), 2)
        self.assertEqual(self.entries(), [])

    def test_tls_and_greeting_failures_mark_the_host(self) -> None:
        failures = iter(
            [
                SMTPTLSRequired("the server does not offer STARTTLS", 454),
                SMTPConnectError(554, "5.3.2 no service"),
            ]
        )

        def failing(reactor: Any, host: str, port: int, **kwargs: Any) -> Deferred[Any]:
            self.net.connects.append((host, port, kwargs))
            return fail(next(failures))

        self.resolver.table["other.example"] = [(10, "mx.other.example")]
        relay = self.make_relay(tls="require", connect=failing)
        self.store("b@remote.example")
        self.store("c@other.example")
        self.store("d@remote.example", "e@other.example")  # both hosts skipped now
        self.assertEqual(
            [c[0] for c in self.net.connects], ["mx1.remote.example", "mx.other.example"]
        )
        self.assertIsNotNone(relay.dead_hosts.until(("mx1.remote.example", 25)))
        self.assertIsNotNone(relay.dead_hosts.until(("mx.other.example", 25)))

    def test_authentication_failure_does_not_mark_the_host(self) -> None:
        def refuse_login(reactor: Any, host: str, port: int, **kwargs: Any) -> Deferred[Any]:
            self.net.connects.append((host, port, kwargs))
            return fail(SMTPAuthenticationError(535, "5.7.8 bad credentials"))

        relay = self.make_relay(
            smarthost=("smart.example.net", 587), username="u", password="p", connect=refuse_login
        )
        self.store("b@remote.example")
        self.store("c@remote.example")
        self.assertEqual(len(self.net.connects), 2)
        self.assertEqual(len(relay.dead_hosts), 0)


class DeadHostsUnitTests(SynchronousTestCase):
    def test_forgets_quiet_hosts_and_validates(self) -> None:
        clock = Clock()
        dead = DeadHosts(clock.seconds, base=10, maximum=40)
        for i in range(70):
            dead.failed((f"h{i}", 25))
        self.assertEqual(len(dead), 70)
        clock.advance(100)  # every hold-down ended more than ``maximum`` ago
        dead.failed(("fresh", 25))
        self.assertEqual(len(dead), 71)  # no sweep below the threshold yet
        for i in range(70, 140):
            dead.failed((f"h{i}", 25))
        self.assertEqual(len(dead), 71)  # the quiet ones went in a sweep
        clock.advance(100)
        self.assertEqual(dead.failed(("fresh", 25)), 10)  # quiet for long: from the base again
        self.assertRaises(ValueError, DeadHosts, clock.seconds, base=10, maximum=5)
        off = DeadHosts(clock.seconds, base=0, maximum=0)
        self.assertEqual(off.failed(("h", 25)), 0)
        self.assertIsNone(off.until(("h", 25)))

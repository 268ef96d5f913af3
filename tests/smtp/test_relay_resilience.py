"""The relay's retry jitter and its cache of unreachable next-hop hosts (fake clocks)."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Iterator

from netproto_twisted.smtp.client import SendResult
from netproto_twisted.smtp.errors import SMTPRecipientsRefused
from netproto_twisted.smtp.queue import PENDING
from netproto_twisted.smtp.relay import Relay
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
            self.assertRaises(
                ValueError, Relay, self.spool, self.reactor, hostname="x", jitter=bad
            )

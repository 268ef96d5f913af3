"""Tests for netproto_twisted.core.limits: defaults, validation, options, rate limiter."""

# trial's assertion methods are untyped.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import dataclasses
from typing import ClassVar

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial import unittest

from netproto_twisted.core.config import describe_section, parse_section
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import (
    DEFAULT_LIMITS,
    Limits,
    LimitsOptionsMixin,
    RateLimiter,
    limits_from_options,
    limits_options,
)


class LimitsTests(unittest.SynchronousTestCase):
    def test_defaults(self) -> None:
        limits = Limits()
        self.assertEqual(limits, DEFAULT_LIMITS)
        self.assertEqual(limits.max_connections, 1000)
        self.assertEqual(limits.max_connections_per_ip, 50)
        self.assertEqual(limits.idle_timeout, 300.0)
        self.assertEqual(limits.tls_handshake_timeout, 30.0)
        self.assertEqual(limits.max_line_length, 2048)
        self.assertEqual(limits.max_failed_logins, 5)

    def test_frozen(self) -> None:
        with self.assertRaises(dataclasses.FrozenInstanceError):
            Limits().max_connections = 5  # type: ignore[misc]

    def test_override(self) -> None:
        imap = dataclasses.replace(DEFAULT_LIMITS, idle_timeout=1800.0)
        self.assertEqual(imap.idle_timeout, 1800.0)
        self.assertEqual(imap.max_connections, 1000)

    def test_invalid_values(self) -> None:
        cases = [
            ({"max_connections": 0}, "max_connections: must be a positive integer, got 0"),
            (
                {"max_connections_per_ip": -3},
                "max_connections_per_ip: must be a positive integer, got -3",
            ),
            ({"max_line_length": True}, "max_line_length: expected an integer, got True"),
            ({"max_line_length": 2.5}, "max_line_length: expected an integer, got 2.5"),
            ({"idle_timeout": 0.0}, "idle_timeout: must be a positive number, got 0.0"),
            ({"idle_timeout": float("nan")}, "idle_timeout: must be a positive number, got nan"),
            ({"idle_timeout": "5"}, "idle_timeout: expected a number, got '5'"),
            (
                {"login_delay_base": 10.0, "login_delay_max": 5.0},
                "login_delay_max: must be >= login_delay_base (10.0), got 5.0",
            ),
        ]
        for kwargs, message in cases:
            with self.assertRaises(ConfigError) as caught:
                Limits(**kwargs)  # type: ignore[arg-type]
            self.assertEqual(str(caught.exception), message)

    def test_ints_accepted_for_floats(self) -> None:
        self.assertEqual(Limits(idle_timeout=60).idle_timeout, 60)

    def test_login_cache_may_be_off(self) -> None:
        self.assertEqual(Limits(login_cache_ttl=0).login_cache_ttl, 0)
        self.assertEqual(limits_from_options({"login-cache-ttl": "0"}).login_cache_ttl, 0)
        with self.assertRaises(ConfigError):
            Limits(login_cache_ttl=-1)


class LimitsFromOptionsTests(unittest.SynchronousTestCase):
    def test_strings_override_defaults(self) -> None:
        limits = limits_from_options(
            {"max-connections": "10", "max-per-ip": " 2 ", "idle-timeout": "1.5", "other": "x"}
        )
        self.assertEqual(limits.max_connections, 10)
        self.assertEqual(limits.max_connections_per_ip, 2)
        self.assertEqual(limits.idle_timeout, 1.5)
        self.assertEqual(limits.max_line_length, 2048)

    def test_protocol_defaults(self) -> None:
        defaults = Limits(idle_timeout=1800.0)
        self.assertEqual(limits_from_options({}, defaults), defaults)
        limits = limits_from_options({"idle-timeout": None}, defaults)
        self.assertEqual(limits.idle_timeout, 1800.0)

    def test_numbers_accepted(self) -> None:
        self.assertEqual(limits_from_options({"max-line-length": 512}).max_line_length, 512)

    def test_errors_name_the_flag(self) -> None:
        cases = [
            ({"max-connections": "-1"}, "--max-connections: must be a positive integer, got -1"),
            ({"max-per-ip": "ten"}, "--max-per-ip: expected a positive integer, got 'ten'"),
            (
                {"max-line-length": "1.5"},
                "--max-line-length: expected a positive integer, got '1.5'",
            ),
            ({"idle-timeout": "soon"}, "--idle-timeout: expected a positive number, got 'soon'"),
            ({"idle-timeout": "inf"}, "--idle-timeout: must be a positive number, got inf"),
            (
                {"login-delay": "60"},
                "--login-delay-max: must be >= login_delay_base (60.0), got 30.0",
            ),
        ]
        for opts, message in cases:
            with self.assertRaises(ConfigError) as caught:
                limits_from_options(opts)
            self.assertEqual(str(caught.exception), message)

    @given(st.dictionaries(st.sampled_from([r[0] for r in limits_options()]), st.text(max_size=8)))
    def test_any_text_gives_limits_or_one_line_error(self, opts: dict[str, str]) -> None:
        try:
            limits = limits_from_options(opts)
        except ConfigError as exc:
            self.assertNotIn("\n", str(exc))
            self.assertTrue(str(exc).startswith("--"))
        else:
            self.assertIsInstance(limits, Limits)

    def test_rows(self) -> None:
        rows = limits_options(Limits(max_connections=7))
        names = [row[0] for row in rows]
        for flag in ("max-connections", "max-per-ip", "idle-timeout",
                     "tls-handshake-timeout", "max-line-length"):
            self.assertIn(flag, names)
        self.assertTrue(all(row[2] is None for row in rows))
        self.assertIn("[default: 7]", rows[names.index("max-connections")][3])


class ProtoOptions(LimitsOptionsMixin):
    limits_defaults: ClassVar[Limits] = Limits(idle_timeout=1800.0)
    optParameters = [["listen", None, "tcp:2525", "where to listen"]]

    def postOptions(self) -> None:
        super().postOptions()
        self["checked"] = True


class LimitsOptionsMixinTests(unittest.SynchronousTestCase):
    def test_parse(self) -> None:
        opts = ProtoOptions()
        opts.parseOptions(
            ["--max-connections", "20", "--max-per-ip=3", "--max-line-length", "512"]
        )
        limits = opts["limits"]
        self.assertEqual(
            (limits.max_connections, limits.max_connections_per_ip, limits.max_line_length),
            (20, 3, 512),
        )
        self.assertEqual(limits.idle_timeout, 1800.0)
        self.assertEqual(opts["listen"], "tcp:2525")
        self.assertTrue(opts["checked"])

    def test_bad_value_is_one_line_usage_error(self) -> None:
        opts = ProtoOptions()
        with self.assertRaises(usage.UsageError) as caught:
            opts.parseOptions(["--idle-timeout", "-5"])
        self.assertEqual(
            str(caught.exception), "--idle-timeout: must be a positive number, got -5.0"
        )

    def test_help(self) -> None:
        text = str(ProtoOptions())
        self.assertIn("--tls-handshake-timeout=", text)
        self.assertIn("--max-line-length=", text)


class RateLimiterTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = MemoryReactorClock()

    def test_burst_then_rate(self) -> None:
        bucket = RateLimiter(self.clock, rate=10, burst=5)
        self.assertEqual([bucket.allow() for _ in range(6)], [True] * 5 + [False])
        self.assertAlmostEqual(bucket.wait_time(), 0.1)
        self.clock.advance(0.1)
        self.assertTrue(bucket.allow())
        self.assertFalse(bucket.allow())

    def test_refill_capped_at_burst(self) -> None:
        bucket = RateLimiter(self.clock, rate=100, burst=3)
        self.clock.advance(3600)
        self.assertEqual(bucket.tokens, 3)
        self.assertEqual(sum(bucket.allow() for _ in range(10)), 3)

    def test_cost(self) -> None:
        bucket = RateLimiter(self.clock, rate=1, burst=10)
        self.assertTrue(bucket.allow(7))
        self.assertFalse(bucket.allow(4))
        self.assertAlmostEqual(bucket.tokens, 3)
        self.assertEqual(bucket.wait_time(3), 0.0)

    def test_sustained_rate(self) -> None:
        bucket = RateLimiter(self.clock, rate=50, burst=1)
        allowed = 0
        for _ in range(10_000):
            self.clock.advance(0.001)
            allowed += bucket.allow()
        # The full bucket's token at t=0.001, then one every 0.02 s up to t=10.0.
        self.assertEqual(allowed, 500)

    def test_clock_going_backwards_does_not_mint_tokens(self) -> None:
        bucket = RateLimiter(self.clock, rate=1, burst=1)
        self.assertTrue(bucket.allow())
        self.clock.rightNow -= 100
        self.assertFalse(bucket.allow())

    def test_bad_parameters(self) -> None:
        with self.assertRaises(ConfigError):
            RateLimiter(self.clock, rate=0, burst=1)
        with self.assertRaises(ConfigError):
            RateLimiter(self.clock, rate=1, burst=0.5)


class LimitsAsConfigSectionTests(unittest.SynchronousTestCase):
    """``[limits]`` in the TOML file is parsed straight into :class:`Limits`."""

    def test_parse(self) -> None:
        limits = parse_section(Limits, {"max_connections": 5, "idle_timeout": 60}, "limits")
        self.assertEqual((limits.max_connections, limits.idle_timeout), (5, 60.0))
        self.assertIsInstance(limits.idle_timeout, float)

    def test_errors_name_the_key(self) -> None:
        cases: list[tuple[dict[str, object], str]] = [
            ({"max_connections": "5"}, "limits.max_connections: expected an integer, got '5'"),
            ({"max_connections": 0}, "limits.max_connections: must be a positive integer, got 0"),
            ({"idle_timeout": -1}, "limits.idle_timeout: must be a positive number, got -1.0"),
            (
                {"max_conections": 5},
                "limits.max_conections: unknown key (did you mean max_connections?)",
            ),
            (
                {"login_delay_base": 9.0, "login_delay_max": 3.0},
                "limits.login_delay_max: must be >= login_delay_base (9.0), got 3.0",
            ),
        ]
        for table, message in cases:
            with self.assertRaises(ConfigError) as caught:
                parse_section(Limits, table, "limits")
            self.assertEqual(str(caught.exception), message)

    def test_reference_table(self) -> None:
        rows = {key: rest for key, *rest in describe_section(Limits, "limits")}
        self.assertEqual(
            rows["limits.max_connections"],
            ["integer", "1000", "simultaneous connections in total"],
        )
        self.assertEqual(len(rows), len(dataclasses.fields(Limits)))
        self.assertTrue(all(help_text for _t, _d, help_text in rows.values()))


class IntOptionTests(unittest.SynchronousTestCase):
    """int_option: a twistd option as an int, or one line naming the option."""

    def test_number_and_refusal(self) -> None:
        from twisted.python import usage

        from netproto_twisted.core.limits import int_option

        self.assertEqual(int_option({"max-errors": "7"}, "max-errors"), 7)
        with self.assertRaises(usage.UsageError) as caught:
            int_option({"workers": "two"}, "workers")
        self.assertEqual(str(caught.exception), "--workers: not a number: 'two'")

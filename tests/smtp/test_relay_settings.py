"""RelaySettings: the relay's defaults and checks in one frozen dataclass."""

from __future__ import annotations

import dataclasses
import math

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.smtp.relay import settings as relay_settings
from netproto_twisted.smtp.relay.settings import RelaySettings, SettingError


class RelaySettingsTests(SynchronousTestCase):
    def test_defaults_are_the_named_constants(self) -> None:
        s = RelaySettings(hostname="relay.example")
        self.assertEqual(
            (s.lifetime, s.min_backoff, s.max_backoff, s.jitter, s.per_destination,
             s.max_connections, s.port, s.timeout, s.poll_interval, s.max_active_entries),
            (relay_settings.DEFAULT_LIFETIME, relay_settings.DEFAULT_MIN_BACKOFF,
             relay_settings.DEFAULT_MAX_BACKOFF, relay_settings.DEFAULT_JITTER,
             relay_settings.DEFAULT_PER_DESTINATION, relay_settings.DEFAULT_MAX_CONNECTIONS,
             relay_settings.DEFAULT_PORT, relay_settings.DEFAULT_TIMEOUT,
             relay_settings.DEFAULT_POLL_INTERVAL, relay_settings.DEFAULT_MAX_ACTIVE_ENTRIES),
        )  # fmt: skip
        self.assertEqual((s.tls, s.smarthost, s.postmaster), ("opportunistic", None, None))

    def test_frozen(self) -> None:
        s = RelaySettings(hostname="relay.example")
        with self.assertRaises(dataclasses.FrozenInstanceError):
            s.lifetime = 1.0  # type: ignore[misc]
        changed = dataclasses.replace(s, lifetime=60.0)
        self.assertEqual((changed.lifetime, s.lifetime), (60.0, relay_settings.DEFAULT_LIFETIME))

    def test_pairs_in_the_wrong_order(self) -> None:
        for low, high in relay_settings.ORDERED_PAIRS:
            value = getattr(RelaySettings(hostname="x"), high)
            with self.assertRaises(SettingError, msg=low) as caught:
                RelaySettings(hostname="x", **{low: value + 1})
            self.assertEqual(caught.exception.names, (low, high))
            self.assertIn(f"{low} (", str(caught.exception))
            self.assertIn(f"must not exceed {high} (", str(caught.exception))
        RelaySettings(hostname="x", min_backoff=60, max_backoff=60)  # equal is fine

    def test_renamed_words_the_message_with_other_names(self) -> None:
        with self.assertRaises(SettingError) as caught:
            RelaySettings(hostname="x", dead_host_time=600, max_dead_host_time=300)
        error = caught.exception
        self.assertEqual(
            str(error), "dead_host_time (600) must not exceed max_dead_host_time (300)"
        )
        self.assertEqual(
            error.renamed({"max_dead_host_time": "longest"}),
            "dead_host_time (600) must not exceed longest (300)",
        )

    def test_bad_single_values(self) -> None:
        for changes, words in (
            ({"jitter": 1.0}, "jitter must be less than 1"),
            ({"jitter": -0.1}, "jitter: must be >= 0.0"),
            ({"poll_interval": 0.05}, "poll_interval must be 0 (never) or at least 0.1"),
            ({"port": 0}, "port: must be >= 1"),
            ({"port": 65536}, "port: must be <= 65535"),
            ({"max_active_entries": 0}, "max_active_entries: must be >= 1"),
            ({"timeout": math.nan}, "timeout must be a number, not nan"),
            ({"tls": "sometimes"}, "tls must be one of"),
            ({"postmaster": "postmaster"}, "postmaster must be an address"),
        ):
            with self.assertRaises(ValueError, msg=changes) as caught:
                RelaySettings(hostname="x", **changes)  # type: ignore[arg-type]
            self.assertIn(words, str(caught.exception), changes)

    def test_edges_accepted(self) -> None:
        s = RelaySettings(
            hostname="x", jitter=0.0, poll_interval=0.0, dead_host_time=0.0,
            max_dead_host_time=0.0, port=65535, max_active_entries=1,
            per_destination=1, max_connections=1, postmaster="pm@example.org",
        )  # fmt: skip
        self.assertEqual((s.poll_interval, s.port, s.postmaster), (0.0, 65535, "pm@example.org"))
        self.assertEqual(RelaySettings(hostname="x", poll_interval=0.1).poll_interval, 0.1)

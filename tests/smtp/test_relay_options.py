"""The relay's tuning knobs: the ``netproto-smtp`` options and ``[smtp]`` keys reach the Relay."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.config import config_from_toml_text, parse_section
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import DEFAULT_LIMITS
from netproto_twisted.core.tls import ensure_dev_certificate
from netproto_twisted.smtp import tap as smtp_tap
from netproto_twisted.smtp.relay import Relay, RelaySettings
from netproto_twisted.smtp.relay._tap import RELAY_KNOBS
from netproto_twisted.smtp.tap import Config, Options

reactor: Any = _reactor

DOCS = Path(__file__).resolve().parents[2] / "docs"

#: ``[smtp]`` key -> (RelaySettings field, how to read it back from a built relay).
KNOBS: dict[str, tuple[str, Any]] = {
    "queue_lifetime": ("lifetime", lambda r: r.settings.lifetime),
    "retry_min": ("min_backoff", lambda r: r.settings.min_backoff),
    "retry_max": ("max_backoff", lambda r: r.settings.max_backoff),
    "retry_jitter": ("jitter", lambda r: r.settings.jitter),
    "delay_warning": ("delay_warning", lambda r: r.settings.delay_warning),
    "per_destination": ("per_destination", lambda r: r.settings.per_destination),
    "relay_connections": ("max_connections", lambda r: r.settings.max_connections),
    "relay_port": ("port", lambda r: r.settings.port),
    "relay_timeout": ("timeout", lambda r: r.settings.timeout),
    "relay_idle_timeout": ("idle_timeout", lambda r: r.settings.idle_timeout),
    "relay_stop_grace": ("stop_grace", lambda r: r.settings.stop_grace),
    "dead_host_time": ("dead_host_time", lambda r: r.dead_hosts.base),
    "max_dead_host_time": ("max_dead_host_time", lambda r: r.dead_hosts.maximum),
    "max_active_entries": ("max_active_entries", lambda r: r.settings.max_active_entries),
    "queue_poll_interval": ("poll_interval", lambda r: r.settings.poll_interval),
}

#: A value other than the default for every knob, consistent with the others.
CHANGED: dict[str, float] = {
    "queue_lifetime": 86400.0,
    "retry_min": 60.0,
    "retry_max": 3600.0,
    "retry_jitter": 0.25,
    "delay_warning": 0.0,
    "per_destination": 2,
    "relay_connections": 7,
    "relay_port": 2525,
    "relay_timeout": 45.0,
    "relay_idle_timeout": 0.0,
    "relay_stop_grace": 1.5,
    "dead_host_time": 30.0,
    "max_dead_host_time": 300.0,
    "max_active_entries": 50,
    "queue_poll_interval": 0.0,
}


def option(key: str) -> str:
    """The command-line option of an ``[smtp]`` key."""
    return "--" + key.replace("_", "-")


class RelayOptionsTests(SynchronousTestCase):
    def parse(self, *args: str) -> Config:
        options = Options()
        options.parseOptions(list(args))
        config: Config = options.config
        return config

    def relay(self, config: Config) -> Any:
        """Build the service tree as the daemon does; return its relay service."""
        root = smtp_tap.build_service(
            config, reactor, data_dir=Path(self.mktemp()), tls=None,
            complete_endpoint=lambda text: text,
        )  # fmt: skip
        relay = root.getServiceNamed("relay")
        self.assertIsInstance(relay, Relay)
        return relay

    def test_tables_cover_every_knob(self) -> None:
        """The tables here name exactly the numeric relay keys the daemon has options for."""
        self.assertEqual(set(KNOBS), set(RELAY_KNOBS))
        self.assertEqual(set(CHANGED), set(KNOBS))
        self.assertEqual({key: field for key, (field, _) in KNOBS.items()}, RELAY_KNOBS)

    def test_defaults_are_the_relays(self) -> None:
        parameters = {f.name: f for f in dataclasses.fields(RelaySettings)}
        defaults = Config()
        built = self.relay(self.parse())
        for key, (argument, read) in KNOBS.items():
            expected = parameters[argument].default
            self.assertEqual(getattr(defaults, key), expected, key)
            self.assertEqual(read(built), expected, key)
        self.assertIsNone(parameters["ca_file"].default)
        self.assertEqual(defaults.smarthost_ca_file, "")
        self.assertIsNone(built.settings.ca_file)

    def test_every_option_reaches_the_relay(self) -> None:
        args = [text for key, value in CHANGED.items() for text in (option(key), str(value))]
        config = self.parse(*args)
        built = self.relay(config)
        for key, (_argument, read) in KNOBS.items():
            self.assertEqual(getattr(config, key), CHANGED[key], key)
            self.assertEqual(read(built), CHANGED[key], key)
            self.assertIs(type(read(built)), type(Config.__dataclass_fields__[key].default), key)

    def test_each_option_alone(self) -> None:
        """One knob changed leaves every other at its default."""
        defaults = Config()
        for key, value in CHANGED.items():
            if key in ("retry_max", "max_dead_host_time", "relay_connections"):
                continue  # lowering these alone would contradict their partner's default
            built = self.relay(self.parse(option(key), str(value)))
            for other, (_argument, read) in KNOBS.items():
                want = value if other == key else getattr(defaults, other)
                self.assertEqual(read(built), want, f"{key} changed; {other}")

    def test_toml_keys_reach_the_relay(self) -> None:
        lines = ["[smtp]", *(f"{key} = {value!r}" for key, value in CHANGED.items())]
        sections = config_from_toml_text("\n".join(lines), {"smtp": Config}, "netproto.toml")
        config = sections["smtp"]
        assert isinstance(config, Config)
        built = self.relay(config)
        for key, (_argument, read) in KNOBS.items():
            self.assertEqual(read(built), CHANGED[key], key)

    def test_toml_integers_for_seconds(self) -> None:
        config = parse_section(Config, {"dead_host_time": 60, "relay_timeout": 30}, "smtp")
        self.assertEqual((config.dead_host_time, config.relay_timeout), (60.0, 30.0))
        self.assertIsInstance(config.dead_host_time, float)

    def test_jitter_zero_gives_exact_delays(self) -> None:
        """Behaviour, not only an attribute: with no jitter the first delay is retry_min."""
        built = self.relay(self.parse("--retry-jitter", "0", "--retry-min", "90"))
        self.assertEqual([built._backoff(1) for _ in range(5)], [90.0] * 5)
        self.assertEqual(built._backoff(2), 180.0)
        jittered = self.relay(self.parse("--retry-jitter", "0.5", "--retry-min", "100"))
        jittered.random = lambda: 1.0
        self.assertEqual(jittered._backoff(1), 150.0)
        jittered.random = lambda: 0.0
        self.assertEqual(jittered._backoff(1), 50.0)

    def test_bad_options_are_refused_clearly(self) -> None:
        for args, words in (
            (["--retry-jitter", "1"], "retry_jitter must be less than 1"),
            (["--retry-jitter", "1.5"], "retry_jitter must be less than 1"),
            (["--retry-jitter", "-0.1"], "retry_jitter: must be >= 0.0"),
            (["--retry-jitter", "some"], "--retry-jitter: expected a finite number, got 'some'"),
            (["--relay-timeout", "inf"], "--relay-timeout: expected a finite number, got 'inf'"),
            (["--dead-host-time", "nan"], "--dead-host-time: expected a finite number"),
            (["--dead-host-time", "-1"], "dead_host_time: must be >= 0.0"),
            (["--dead-host-time", "3600"], "dead_host_time (3600) must not exceed "
             "max_dead_host_time (1800)"),
            (["--dead-host-time", "600", "--max-dead-host-time", "300"],
             "dead_host_time (600) must not exceed max_dead_host_time (300)"),
            (["--max-dead-host-time", "60"], "dead_host_time (120) must not exceed"),
            (["--max-active-entries", "0"], "max_active_entries: must be >= 1"),
            (["--max-active-entries", "1.5"], "--max-active-entries: expected an integer"),
            (["--relay-connections", "0"], "relay_connections: must be >= 1"),
            (["--relay-connections", "3"], "per_destination (5) must not exceed "
             "relay_connections (3)"),
            (["--per-destination", "10", "--relay-connections", "9"],
             "per_destination (10) must not exceed relay_connections (9)"),
            (["--relay-port", "0"], "relay_port: must be >= 1"),
            (["--relay-port", "65536"], "relay_port: must be <= 65535"),
            (["--relay-timeout", "0.5"], "relay_timeout: must be >= 1.0"),
            (["--relay-idle-timeout", "-1"], "relay_idle_timeout: must be >= 0.0"),
            (["--relay-stop-grace", "-1"], "relay_stop_grace: must be >= 0.0"),
            (["--queue-poll-interval", "-1"], "queue_poll_interval: must be >= 0.0"),
            (["--queue-poll-interval", "0.01"], "queue_poll_interval must be 0 (never) or at "
             "least 0.1"),
            (["--retry-min", "600", "--retry-max", "60"], "retry_min (600) must not exceed"),
        ):  # fmt: skip
            with self.assertRaises(usage.UsageError, msg=args) as caught:
                self.parse(*args)
            self.assertIn(words, str(caught.exception), args)

    def test_edge_values_are_accepted(self) -> None:
        config = self.parse(
            "--retry-jitter", "0", "--dead-host-time", "0", "--max-dead-host-time", "0",
            "--relay-connections", "5", "--relay-port", "65535", "--queue-poll-interval", "0.1",
            "--max-active-entries", "1", "--relay-timeout", "1",
        )  # fmt: skip
        built = self.relay(config)
        dead = (built.dead_hosts.base, built.dead_hosts.maximum)
        settings = built.settings
        self.assertEqual((settings.jitter, *dead), (0, 0, 0))
        self.assertEqual(
            (settings.max_connections, settings.port, settings.poll_interval), (5, 65535, 0.1)
        )
        self.assertEqual((settings.max_active_entries, settings.timeout), (1, 1.0))

    def test_bad_toml_values_name_the_key(self) -> None:
        for table, words in (
            ({"retry_jitter": 1.0}, "smtp: retry_jitter must be less than 1"),
            ({"retry_jitter": "lots"}, "smtp.retry_jitter: expected a number"),
            ({"dead_host_time": -5}, "smtp.dead_host_time: must be >= 0.0"),
            ({"dead_host_time": 900, "max_dead_host_time": 600},
             "dead_host_time (900) must not exceed max_dead_host_time (600)"),
            ({"max_active_entries": 0}, "smtp.max_active_entries: must be >= 1"),
            ({"max_active_entries": 2.5}, "smtp.max_active_entries: expected an integer"),
            ({"relay_connections": 4, "per_destination": 6},
             "per_destination (6) must not exceed relay_connections (4)"),
            ({"relay_port": 70000}, "smtp.relay_port: must be <= 65535"),
            ({"relay_timeout": float("inf")}, "smtp.relay_timeout: expected a finite number"),
            ({"queue_poll_interval": 0.05}, "queue_poll_interval must be 0 (never)"),
            ({"smarthost_ca_file": 3}, "smtp.smarthost_ca_file: expected a string"),
            ({"relay_jitter": 0.1}, "smtp.relay_jitter: unknown key (did you mean retry_jitter?)"),
        ):  # fmt: skip
            with self.assertRaises(ConfigError, msg=table) as caught:
                parse_section(Config, table, "smtp")
            self.assertIn(words, str(caught.exception), table)
            self.assertNotIn("\n", str(caught.exception))

    def test_smarthost_ca_file_reaches_the_relay(self) -> None:
        cert, _key = ensure_dev_certificate(Path(self.mktemp()))
        config = self.parse(
            "--smarthost", "relay.example:587", "--smarthost-verify",
            "--smarthost-ca-file", str(cert),
        )  # fmt: skip
        self.assertEqual(config.smarthost_ca_file, str(cert))
        built = self.relay(config)
        self.assertEqual((built.settings.ca_file, built.settings.verify), (str(cert), True))
        self.assertIsNotNone(built._tls_options("relay.example"))
        from_toml = parse_section(Config, {"smarthost_ca_file": str(cert)}, "smtp")
        self.assertEqual(self.relay(from_toml).settings.ca_file, str(cert))

    def test_bad_smarthost_ca_file_fails_at_build(self) -> None:
        """A missing or unreadable CA file stops the daemon at start, not at the first delivery."""
        missing = Path(self.mktemp()) / "nowhere.pem"
        not_pem = Path(self.mktemp())
        not_pem.write_text("not a certificate\n")
        for path, words in ((missing, "nowhere.pem"), (not_pem, "no valid PEM certificate")):
            config = self.parse("--smarthost-ca-file", str(path))
            with self.assertRaises(ConfigError) as caught:
                self.relay(config)
            self.assertIn(words, str(caught.exception))

    def test_worker_payload_round_trips(self) -> None:
        """Worker processes re-parse the section: the new keys survive the JSON."""
        config = self.parse(*(t for k, v in CHANGED.items() for t in (option(k), str(v))))
        payload = smtp_tap.worker_config(
            config, Path("data"), (Path("cert.pem"), Path("key.pem")), None,
            DEFAULT_LIMITS,
        )  # fmt: skip
        section = json.loads(json.dumps(payload))["smtp"]
        self.assertEqual(parse_section(Config, section, "smtp"), config)

    def test_documented(self) -> None:
        """Every knob is in the options table of smtp.rst and in smtp_relay.rst."""
        options_doc = (DOCS / "smtp.rst").read_text(encoding="utf-8")
        relay_doc = (DOCS / "smtp_relay.rst").read_text(encoding="utf-8")
        for key in [*KNOBS, "smarthost_ca_file"]:
            self.assertIn(f"``{option(key)}", options_doc, key)
            self.assertIn(key, relay_doc, key)


class CombinedDaemonTests(SynchronousTestCase):
    """``twistd netproto --config FILE``: the ``[smtp]`` relay keys reach its relay."""

    def build(self, text: str) -> Any:
        from netproto_twisted import tap

        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return tap.build({"config": str(path), "data": self.mktemp()}, reactor)

    def test_keys_reach_the_relay(self) -> None:
        lines = [
            "[socket]", "enabled = false", "[pop3]", "enabled = false",
            "[nntp]", "enabled = false", "[http]", "enabled = false",
            "[ftp]", "enabled = false", "[telnet]", "enabled = false",
            "[imap]", "enabled = false", "[smtp]",
            'listen = ["tcp:0:interface=127.0.0.1"]', "submission = []",
            *(f"{key} = {value!r}" for key, value in CHANGED.items()),
        ]  # fmt: skip
        root = self.build("\n".join(lines) + "\n")
        [smtp] = list(root)
        built = smtp.getServiceNamed("relay")
        for key, (_argument, read) in KNOBS.items():
            self.assertEqual(read(built), CHANGED[key], key)

    def test_contradiction_names_the_section(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            self.build("[smtp]\ndead_host_time = 900\nmax_dead_host_time = 600\n")
        self.assertEqual(
            str(caught.exception),
            "smtp: dead_host_time (900) must not exceed max_dead_host_time (600)",
        )


class TwistdTests(SynchronousTestCase):
    """``twistd -n netproto-smtp`` with a bad relay option ends at once with one line."""

    def test_bad_values_end_the_daemon(self) -> None:
        from tests.twistd import run_twistd, usage_error_exit

        cwd = Path(self.mktemp())
        cwd.mkdir(parents=True)
        for args, words, usage_error in (
            (["--per-destination", "20", "--relay-connections", "10"],
             "per_destination (20) must not exceed relay_connections (10)", True),
            (["--listen", "tcp:0:interface=127.0.0.1", "--submission", "tcp:0:interface=127.0.0.1",
              "--smarthost-ca-file", "missing-ca.pem"], "missing-ca.pem", False),
        ):  # fmt: skip
            result = run_twistd(["netproto-smtp", "--data-dir", "data", *args], cwd)
            output = result.stdout + result.stderr
            if usage_error:
                self.assertTrue(usage_error_exit(result.returncode), output)
            else:  # refused when the service is built: non-zero on every release
                self.assertNotEqual(result.returncode, 0, output)
            self.assertIn(words, output)
            self.assertNotIn("Traceback", output)

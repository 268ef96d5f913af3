"""``netproto-smtp`` options and the ``[smtp]`` section of the combined daemon."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import reactor as _reactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core.config import parse_section
from netproto_twisted.core.daemon import DaemonContext, TLSFiles
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.mailstore.maildir import MaildirStore
from netproto_twisted.smtp import tap as smtp_tap
from netproto_twisted.smtp.tap import Config, Options, combined_service

reactor: Any = _reactor


class ConfigTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        config = Config()
        self.assertEqual(config.listen, ("tcp:2525:interface=127.0.0.1",))
        self.assertEqual(
            config.submission, ("tcp:2587:interface=127.0.0.1", "ssl:2465:interface=127.0.0.1")
        )
        self.assertEqual(config.domains, ("localhost",))
        self.assertEqual(config.relay_networks, ())  # never an open relay by default
        self.assertEqual((config.maildir, config.queue, config.users), ("", "", ""))

    def test_parse_section(self) -> None:
        config = parse_section(
            Config,
            {
                "listen": ["tcp:25"],
                "domains": ["example.org", "example.net"],
                "relay_networks": ["10.0.0.0/8"],
                "smarthost": "relay.example:587",
                "max_size": 1000,
            },
            "smtp",
        )
        self.assertEqual(config.domains, ("example.org", "example.net"))
        self.assertEqual(config.max_size, 1000)

    def test_bad_values_name_the_key(self) -> None:
        for table, words in (
            ({"bare_lf": "sometimes"}, "bare_lf"),
            ({"relay_networks": ["10.0.0.0/33"]}, "10.0.0.0/33"),
            ({"smarthost": "nohost"}, "HOST:PORT"),
            ({"smarthost_tls": "maybe"}, "smarthost_tls"),
            ({"max_size": 0}, "max_size"),
            ({"listn": []}, "did you mean listen"),
        ):
            with self.assertRaises(ConfigError) as caught:
                parse_section(Config, table, "smtp")
            self.assertIn(words, str(caught.exception))


class OptionsTests(SynchronousTestCase):
    def parse(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(list(args))
        return options

    def test_defaults(self) -> None:
        config = self.parse().config
        self.assertEqual(config.listen, Config().listen)
        self.assertEqual(config.submission, Config().submission)

    def test_repeatable_options(self) -> None:
        options = self.parse(
            "--listen", "tcp:25", "--listen", "tcp6:25:interface=\\:\\:1",
            "--submission", "tcp:587",
            "--domain", "example.org", "--domain", "example.net",
            "--relay-network", "192.0.2.0/24", "--relay-network", "2001:db8::/32",
            "--hostname", "mx.example.org", "--max-size", "5000", "--bare-lf", "normalize",
            "--maildir", "/srv/mail", "--queue", "/srv/queue", "--users", "/srv/users",
            "--smarthost", "relay.example:587", "--allow-insecure-auth",
        )  # fmt: skip
        config = options.config
        self.assertEqual(config.listen, ("tcp:25", "tcp6:25:interface=\\:\\:1"))
        self.assertEqual(config.submission, ("tcp:587",))
        self.assertEqual(config.domains, ("example.org", "example.net"))
        self.assertEqual(config.relay_networks, ("192.0.2.0/24", "2001:db8::/32"))
        self.assertEqual(config.max_size, 5000)
        self.assertEqual(config.bare_lf, "normalize")
        self.assertTrue(config.allow_insecure_auth)
        self.assertEqual(ip_network(config.relay_networks[0]).num_addresses, 256)

    def test_only_submission_means_no_mx(self) -> None:
        config = self.parse("--submission", "tcp:587").config
        self.assertEqual(config.listen, ())

    def test_bad_options(self) -> None:
        for args in (
            ["--relay-network", "not-a-net"],
            ["--max-size", "big"],
            ["--bare-lf", "yes"],
            ["--smarthost", "x"],
            ["--sync", "sometimes"],
            ["--postmaster", "not an address"],
            ["--queue-lifetime", "soon"],
            ["--queue-lifetime", "10"],
            ["--retry-min", "600", "--retry-max", "60"],
            ["--per-destination", "0"],
            ["--delay-warning", "-1"],
            ["--max-size", "0"],
        ):
            self.assertRaises(usage.UsageError, self.parse, *args)

    def test_postmaster_reaches_the_relay(self) -> None:
        self.assertEqual(self.parse().config.postmaster, "")
        config = self.parse("--postmaster", "hostmaster@example.org").config
        root = smtp_tap.build_service(config, _reactor, data_dir=Path(self.mktemp()), tls=None,
                                      complete_endpoint=lambda text: text)
        relay = root.getServiceNamed("relay")
        self.assertEqual(relay.notices.postmaster, "hostmaster@example.org")  # type: ignore[attr-defined]

    def test_queue_settings_reach_the_relay(self) -> None:
        config = self.parse(
            "--queue-lifetime", "86400", "--retry-min", "60", "--retry-max", "3600",
            "--delay-warning", "0", "--per-destination", "2",
        ).config  # fmt: skip
        root = smtp_tap.build_service(config, _reactor, data_dir=Path(self.mktemp()), tls=None,
                                      complete_endpoint=lambda text: text)
        relay: Any = root.getServiceNamed("relay")
        self.assertEqual(
            (relay.settings.lifetime, relay.settings.min_backoff, relay.settings.max_backoff,
             relay.settings.delay_warning, relay.settings.per_destination),
            (86400.0, 60.0, 3600.0, 0.0, 2),
        )
        defaults: Any = smtp_tap.build_service(
            self.parse().config, _reactor, data_dir=Path(self.mktemp()), tls=None,
            complete_endpoint=lambda text: text,
        ).getServiceNamed("relay")
        self.assertEqual(
            (defaults.settings.lifetime, defaults.settings.per_destination), (5 * 86400.0, 5)
        )

    def test_sync_mode_reaches_the_maildir_store(self) -> None:
        self.assertEqual(self.parse().config.sync, "auto")
        config = self.parse("--sync", "file").config
        self.assertEqual(config.sync, "file")
        stores: list[MaildirStore] = []

        class Recording(MaildirStore):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                stores.append(self)

        self.patch(smtp_tap, "MaildirStore", Recording)
        smtp_tap.build_service(config, _reactor, data_dir=Path(self.mktemp()), tls=None,
                               complete_endpoint=lambda text: text)
        [store] = stores
        self.assertEqual(store.committer.mode, "file")  # type: ignore[attr-defined]


class CombinedServiceTests(TestCase):
    """``combined_service`` builds listeners from ``[smtp]`` and the daemon's context."""

    timeout = 30

    def test_disabled(self) -> None:
        context = DaemonContext(reactor, Path(self.mktemp()), tls=None)  # type: ignore[arg-type]
        self.assertIsNone(combined_service(Config(enabled=False), context))
        self.assertIsNone(combined_service(Config(listen=(), submission=()), context))

    async def test_listens_with_the_daemon_certificate(self) -> None:
        data = Path(self.mktemp()).absolute()
        data.mkdir(parents=True)
        context = DaemonContext(reactor, data, TLSFiles.resolve(data))
        service = combined_service(
            Config(
                listen=("tcp:0:interface=127.0.0.1",),
                submission=("ssl:0:interface=127.0.0.1",),
                smarthost="127.0.0.1:9",
            ),
            context,
        )
        assert isinstance(service, MultiService)
        service.startService()
        self.addCleanup(service.stopService)
        names = {}
        for child in service:
            if isinstance(child, EndpointsService):
                names[child.name] = await child.when_listening()
        self.assertEqual(set(names), {"smtp", "submission"})
        self.assertEqual(names["submission"][0][0], "ssl")
        self.assertTrue((data / "queue").is_dir())
        self.assertIn("relay", [child.name for child in service])

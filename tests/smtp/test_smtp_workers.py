"""The SMTP side of ``--workers``: options, the ``[smtp] workers`` key, the service tree, the
worker's configuration and the master's handling of ``queued ID``."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.python import usage
from twisted.trial.unittest import TestCase

from netproto_twisted.core.access import AccessPolicy
from netproto_twisted.core.config import config_from_toml_text
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import Limits
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.core.tls import ensure_dev_certificate
from netproto_twisted.core.worker_process import load_builder
from netproto_twisted.core.workers import WorkerPool
from netproto_twisted.smtp import MailFrom, RcptTo
from netproto_twisted.smtp.interfaces import Envelope
from netproto_twisted.smtp.relay.queue import QueueEntry, Spool
from netproto_twisted.smtp.tap import (
    QUEUED,
    WORKER_BUILDER,
    Config,
    Options,
    _queued_handler,
    build_service,
    worker_config,
    worker_parts,
)


class FakeChannel:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, kind: str, text: str = "") -> None:
        self.sent.append((kind, text))


class OptionsTests(TestCase):
    def parse(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(list(args))
        return options

    def test_default_is_one_process(self) -> None:
        self.assertEqual(self.parse().config.workers, 1)

    def test_workers(self) -> None:
        self.assertEqual(self.parse("--workers", "3").config.workers, 3)

    def test_bad_counts(self) -> None:
        for bad in ("0", "65", "two"):
            with self.assertRaises(usage.UsageError):
                self.parse("--workers", bad)

    def test_toml_key(self) -> None:
        sections = config_from_toml_text("[smtp]\nworkers = 4\n", {"smtp": Config})
        self.assertEqual(sections["smtp"].workers, 4)  # type: ignore[attr-defined]
        with self.assertRaises(ConfigError) as e:
            config_from_toml_text("[smtp]\nworkers = 0\n", {"smtp": Config})
        self.assertEqual(str(e.exception), "smtp.workers: must be >= 1, got 0")


class ServiceTreeTests(TestCase):
    def setUp(self) -> None:
        self.data = Path(self.mktemp()).absolute()
        self.cert, self.key = ensure_dev_certificate(self.data)

    def build(self, **kwargs: Any) -> Any:
        config = Config(listen=("tcp:0:interface=127.0.0.1",), submission=(),
                        workers=kwargs.pop("workers", 1))
        return build_service(config, reactor, data_dir=self.data, tls=None,
                             complete_endpoint=lambda t: t, **kwargs)

    def test_one_process_has_no_pool(self) -> None:
        root = self.build()
        self.assertEqual([s for s in root if isinstance(s, WorkerPool)], [])

    def test_pool_after_the_listeners(self) -> None:
        root = self.build(workers=3, tls_files=(self.cert, self.key))
        services = list(root)
        pool = services[-1]
        self.assertIsInstance(pool, WorkerPool)
        self.assertEqual(pool.count, 2)
        self.assertEqual(pool.builder, WORKER_BUILDER)
        self.assertTrue(any(isinstance(s, EndpointsService) for s in services[:-1]))
        self.assertIs(load_builder(WORKER_BUILDER), worker_parts)

    def test_workers_need_tls_files_and_default_targets(self) -> None:
        with self.assertRaises(ConfigError):
            self.build(workers=2)
        with self.assertRaises(ConfigError):
            self.build(workers=2, tls_files=(self.cert, self.key), targets={"relay": object()})


class WorkerConfigTests(TestCase):
    def setUp(self) -> None:
        self.data = Path(self.mktemp()).absolute()
        self.cert, self.key = ensure_dev_certificate(self.data)

    def test_round_trip_through_json(self) -> None:
        config = Config(
            listen=("tcp:0:interface=127.0.0.1",), domains=("example.org",), workers=2,
            smarthost="127.0.0.1:25", smarthost_user="u", smarthost_password_file="/secret",
            relay_networks=("10.0.0.0/8",),
        )  # fmt: skip
        payload = json.loads(json.dumps(worker_config(
            config, self.data, (self.cert, self.key), AccessPolicy(["127.0.0.0/8"], []),
            Limits(max_connections=7),
        )))  # fmt: skip
        self.assertEqual(payload["smtp"]["smarthost_password_file"], "")  # the master's only
        self.assertEqual(payload["allow"], ["127.0.0.0/8"])
        self.assertEqual(payload["limits"]["max_connections"], 7)
        channel = FakeChannel()
        parts = worker_parts(payload, reactor, channel)  # type: ignore[arg-type]
        self.assertEqual(sorted(parts.factories), ["smtp", "submission"])
        self.assertIsNotNone(parts.service)
        self.assertTrue((self.data / "queue").is_dir())

    def test_missing_key_is_a_config_error(self) -> None:
        with self.assertRaises(ConfigError) as e:
            worker_parts({"smtp": {}}, reactor, FakeChannel())  # type: ignore[arg-type]
        self.assertIn("lacks", str(e.exception))
        with self.assertRaises(ConfigError):
            worker_parts([], reactor, FakeChannel())  # type: ignore[arg-type]


class QueuedHandlerTests(TestCase):
    async def test_master_loads_the_entry_and_tells_the_relay(self) -> None:
        directory = Path(self.mktemp())
        writer = Spool(directory, reactor)  # the worker's
        envelope = Envelope(mail_from=MailFrom("a@example.org"),
                            recipients=(RcptTo("b@far.example"),), id="")
        sink = writer.open(envelope, [RcptTo("b@far.example")])
        sink.write(b"Subject: x\r\n\r\nbody\r\n")
        entry_id = await sink.commit()

        master = Spool(directory, reactor)
        seen: list[QueueEntry] = []
        master.add_listener(seen.append)
        handle = _queued_handler(master)
        handle(123, QUEUED, entry_id)
        handle(123, QUEUED, "01nonexistent")  # logged, not raised
        handle(123, "other", "x")  # logged, not raised
        await master.list()  # the pool runs in order: the get has finished
        for _ in range(100):
            if seen:
                break
            await master.list()
        self.assertEqual([e.id for e in seen], [entry_id])
        self.assertEqual(seen[0].recipients[0].address, "b@far.example")
        self.flushLoggedErrors()

"""core.daemon: the context every protocol service gets, and the options every daemon shares."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from twisted.application.service import MultiService
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.access import AccessPolicy, ConnectionGuard
from netproto_twisted.core.daemon import DaemonContext, ServerOptions, TLSFiles, enabled_section
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import DEFAULT_LIMITS, Limits
from netproto_twisted.core.tls import tls_server_endpoint_args


class CompleteEndpointTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.files = TLSFiles.resolve(Path(self.mktemp()))

    def test_ssl_without_key_gets_the_pair(self) -> None:
        completed = self.files.complete_endpoint("ssl:2465:interface=127.0.0.1")
        args = tls_server_endpoint_args(self.files.cert, self.files.key)
        self.assertEqual(completed, f"ssl:2465:interface=127.0.0.1:{args}")
        self.assertIn("privateKey=", completed)
        self.assertIn("certKey=", completed)

    def test_other_endpoints_unchanged(self) -> None:
        for text in (
            "tcp:2525:interface=127.0.0.1",
            "tcp6:2525:interface=\\:\\:1",
            "unix:/tmp/smtp.sock",
            "ssl:2465:privateKey=/etc/key.pem:certKey=/etc/cert.pem",
            "SSL:2465:privateKey=k.pem",
        ):
            self.assertEqual(self.files.complete_endpoint(text), text)

    def test_daemon_context_uses_its_pair(self) -> None:
        context = DaemonContext(MemoryReactorClock(), Path(self.mktemp()), self.files)
        text = "ssl:2993"
        self.assertEqual(context.endpoint(text), self.files.complete_endpoint(text))
        self.assertNotEqual(context.endpoint(text), text)


class LimitsForTests(SynchronousTestCase):
    """A protocol's own limit defaults, overridden only by what ``[limits]`` changed."""

    def context(self, limits: Limits) -> DaemonContext:
        files = TLSFiles.resolve(Path(self.mktemp()))
        return DaemonContext(MemoryReactorClock(), Path(self.mktemp()), files, limits=limits)

    def test_unchanged_shared_limits_keep_the_protocol_defaults(self) -> None:
        own = replace(DEFAULT_LIMITS, idle_timeout=600.0, command_rate=5000.0)
        self.assertEqual(self.context(DEFAULT_LIMITS).limits_for(own), own)

    def test_a_changed_shared_limit_wins(self) -> None:
        own = replace(DEFAULT_LIMITS, idle_timeout=600.0, command_rate=5000.0)
        shared = replace(DEFAULT_LIMITS, command_rate=50.0, max_connections=7)
        got = self.context(shared).limits_for(own)
        self.assertEqual(got.command_rate, 50.0)
        self.assertEqual(got.max_connections, 7)
        self.assertEqual(got.idle_timeout, 600.0)


class ServerOptionsTests(SynchronousTestCase):
    """The options every protocol daemon shares."""

    class Options(ServerOptions):
        default_listen = ("tcp:2999:interface=127.0.0.1",)
        limits_defaults = replace(DEFAULT_LIMITS, idle_timeout=42.0)

    def test_listen_defaults_and_repeats(self) -> None:
        options = self.Options()
        options.parseOptions([])
        self.assertEqual(options.listen(), ("tcp:2999:interface=127.0.0.1",))
        options = self.Options()
        options.parseOptions(["--listen", "tcp:1", "--listen", "ssl:2"])
        self.assertEqual(options.listen(), ("tcp:1", "ssl:2"))

    def test_limits_and_access_are_parsed(self) -> None:
        options = self.Options()
        options.parseOptions(["--max-connections", "9", "--deny", "10.0.0.0/8"])
        self.assertEqual(options["limits"].max_connections, 9)
        self.assertEqual(options["limits"].idle_timeout, 42.0)
        self.assertFalse(options["access_policy"].permits("10.1.2.3"))
        self.assertEqual(options["data-dir"], "netproto-data")


class GuardedListenerTests(SynchronousTestCase):
    """The listener every server section builds: completed endpoints behind the guard."""

    def setUp(self) -> None:
        files = TLSFiles.resolve(Path(self.mktemp()))
        self.context = DaemonContext(
            MemoryReactorClock(),
            Path(self.mktemp()),
            files,
            policy=AccessPolicy(deny=["10.0.0.0/8"]),
        )
        self.factory = Factory.forProtocol(Protocol)

    def test_none_without_endpoints(self) -> None:
        self.assertIsNone(self.context.guarded_listener("x", self.factory, (), DEFAULT_LIMITS))

    def test_added_to_parent(self) -> None:
        root = MultiService()
        service = self.context.guarded_listener(
            "x", self.factory, ("tcp:0",), DEFAULT_LIMITS, parent=root
        )
        self.assertEqual(list(root), [service])
        self.assertIsNone(
            self.context.guarded_listener("y", self.factory, (), DEFAULT_LIMITS, parent=root)
        )
        self.assertEqual(len(list(root)), 1)

    def test_enabled_section(self) -> None:
        built: list[object] = []

        @dataclass(frozen=True)
        class Section:
            enabled: bool = True
            listen: tuple[str, ...] = ("tcp:0",)

        def build(config: Section, context: DaemonContext) -> MultiService:
            built.append(config)
            return MultiService()

        combined = enabled_section(build, "demo")
        self.assertIn("[demo]", combined.__doc__ or "")
        self.assertIsNone(combined(Section(enabled=False), self.context))
        self.assertIsNone(combined(Section(listen=()), self.context))
        self.assertIsInstance(combined(Section(), self.context), MultiService)
        self.assertEqual(built, [Section()])

    def test_udp_refused(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            self.context.guarded_listener("x", self.factory, ("udp:9",), DEFAULT_LIMITS)
        self.assertIn("x does not serve UDP", str(caught.exception))

    def test_guard_has_the_policy_limits_and_refusal(self) -> None:
        limits = replace(DEFAULT_LIMITS, max_connections=3)
        service = self.context.guarded_listener(
            "x", self.factory, ("tcp:0", "ssl:0"), limits, lambda reason: b"no\r\n"
        )
        assert service is not None
        guard = service.factory
        assert isinstance(guard, ConnectionGuard)
        self.assertIs(guard.wrappedFactory, self.factory)
        self.assertEqual(guard.limits.max_connections, 3)
        self.assertFalse(guard.policy.permits("10.1.1.1"))
        self.assertEqual(guard.refusal("full"), b"no\r\n")
        self.assertIn("privateKey=", service._listen[1])

"""Options, makeService and handler resolution, in-process."""

from __future__ import annotations

import sys
from pathlib import Path

from twisted.application.service import MultiService
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python import usage
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.access import AccessPolicy
from netproto_twisted.core.config import config_from_toml_text
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import Limits
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.core.tls import ensure_dev_certificate
from netproto_twisted.sockserv import tap
from netproto_twisted.sockserv.builtins import DaytimeHandler, DiscardHandler, EchoHandler, daytime
from netproto_twisted.sockserv.handlers import (
    HandlerLoadError,
    is_reactor_handler,
    resolve_handler,
)
from netproto_twisted.sockserv.server import HandlerFactory, SockservService, make_sockserv_service
from tests.sockserv import sample_handlers


class OptionsTests(SynchronousTestCase):
    """``twistd netproto-socket`` options and makeService."""

    def parse(self, *args: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(list(args))
        return options

    def test_parse(self) -> None:
        options = self.parse(
            "--handler", "echo", "--listen", "tcp:0:interface=127.0.0.1",
            "-l", "udp:0:interface=127.0.0.1", "--threads", "5",
            "--deny", "192.0.2.0/24", "--max-connections", "7",
        )  # fmt: skip
        self.assertEqual(
            options["listen"], ["tcp:0:interface=127.0.0.1", "udp:0:interface=127.0.0.1"]
        )
        self.assertFalse(options["access_policy"].permits("192.0.2.1"))
        self.assertEqual(options["limits"].max_connections, 7)
        service = tap.makeService(options)
        assert isinstance(service, SockservService)
        self.assertIs(service.factory.handler_class, EchoHandler)
        self.assertEqual(service.pool.max, 5)
        self.assertEqual(len(service.endpoints), 2)

    def test_bad_values_exit_with_one_line(self) -> None:
        cases = [
            (("--listen", "tcp:0"), "netproto-socket: --handler is required"),
            (("--handler", "echo", "--listen", "tcp:0", "--threads", "x"), "--threads"),
            (("--handler", "nope:X", "--listen", "tcp:0"), "no module named 'nope'"),
            (("--handler", "echo", "--listen", "bogus:1"), "unsupported endpoint"),
        ]
        for args, expected in cases:
            with self.assertRaises(SystemExit) as caught:
                tap.makeService(self.parse(*args))
            message = str(caught.exception.code)
            self.assertTrue(message.startswith("netproto-socket: "), message)
            self.assertIn(expected, message)
            self.assertNotIn("\n", message)

    def test_usage_errors(self) -> None:
        self.assertRaises(usage.UsageError, self.parse, "--allow", "not-a-network")
        self.assertRaises(usage.UsageError, self.parse, "--max-connections", "-1")


class _Context:
    """What combined_service uses of the combined daemon's DaemonContext."""

    def __init__(self, data_dir: str = "") -> None:
        self.reactor = MemoryReactorClock()
        self.policy = AccessPolicy(deny=["192.0.2.0/24"])
        self.limits = Limits(max_connections=9)
        self.data_dir = data_dir

    def endpoint(self, text: str) -> str:
        if not text.startswith("ssl:"):
            return text
        cert, key = ensure_dev_certificate(self.data_dir)
        return f"{text}:privateKey={key}:certKey={cert}"


class CombinedTests(SynchronousTestCase):
    """The ``[socket]`` section of the combined daemon."""

    def test_defaults(self) -> None:
        root = tap.combined_service(tap.Config(), _Context())  # type: ignore[arg-type]
        assert isinstance(root, MultiService)
        services = list(root)
        self.assertEqual([s.name for s in services], ["echo", "discard", "daytime"])
        handlers = [s.factory.handler_class for s in services]  # type: ignore[attr-defined]
        self.assertEqual(handlers, [EchoHandler, DiscardHandler, DaytimeHandler])
        ports = [p for s in services for p in s]
        self.assertTrue(all(isinstance(p, EndpointsService) for p in ports))
        self.assertEqual(len(ports), 6)  # a stream and a UDP listener each
        self.assertEqual({p.name for p in ports}, {"echo", "discard", "daytime"})

    def test_from_toml(self) -> None:
        text = """
[socket]
[[socket.services]]
name = "upper"
handler = "tests.sockserv.sample_handlers:LineEcho"
listen = ["tcp:0:interface=127.0.0.1", "ssl:0:interface=127.0.0.1"]
threads = 3
"""
        config = config_from_toml_text(text, {"socket": tap.Config}, "test.toml")["socket"]
        assert isinstance(config, tap.Config)
        context = _Context(self.mktemp())
        root = tap.combined_service(config, context)  # type: ignore[arg-type]
        assert root is not None
        (service,) = list(root)
        assert isinstance(service, SockservService)
        self.assertEqual(service.pool.max, 3)
        self.assertIs(service.factory.handler_class, sample_handlers.LineEcho)
        (ports,) = service.endpoints
        self.assertEqual(ports._listen[1], context.endpoint("ssl:0:interface=127.0.0.1"))

    def test_errors(self) -> None:
        dup = """
[[socket.services]]
name = "a"
[[socket.services]]
name = "a"
"""
        with self.assertRaises(ConfigError) as caught:
            config_from_toml_text(dup, {"socket": tap.Config}, "t.toml")
        self.assertIn("two services are named 'a'", str(caught.exception))
        bad = tap.Config(services=(tap.SocketService(name="x", handler="nope:Y"),))
        with self.assertRaises(ConfigError) as caught:
            tap.combined_service(bad, _Context())  # type: ignore[arg-type]
        self.assertIn("socket.services.x", str(caught.exception))
        self.assertIn("no module named 'nope'", str(caught.exception))
        self.assertIsNone(tap.combined_service(tap.Config(enabled=False), _Context()))  # type: ignore[arg-type]


class ResolveTests(SynchronousTestCase):
    """Turning ``--handler`` text into a class."""

    def test_builtins_and_forms(self) -> None:
        self.assertIs(resolve_handler("echo"), EchoHandler)
        self.assertIs(resolve_handler(" daytime "), DaytimeHandler)
        self.assertIs(resolve_handler("discard"), DiscardHandler)
        self.assertIs(
            resolve_handler("tests.sockserv.sample_handlers:LineEcho"), sample_handlers.LineEcho
        )
        self.assertIs(
            resolve_handler("tests.sockserv.sample_handlers.LineEcho"), sample_handlers.LineEcho
        )

    def test_errors(self) -> None:
        app = Path(self.mktemp())
        app.mkdir()
        (app / "raises_on_import.py").write_text("raise RuntimeError('bad\\nmodule')\n")
        (app / "needs_missing.py").write_text("import not_installed_dependency_xyz\n")
        self.addCleanup(sys.path.remove, str(app.resolve()))
        cases = [
            ("no_such_module_abc:X", "no module named 'no_such_module_abc'"),
            (
                "raises_on_import:X",
                "importing 'raises_on_import' failed: RuntimeError: bad module",
            ),
            ("needs_missing:X", "importing 'needs_missing' failed"),
            ("tests.sockserv.sample_handlers:Missing", "has no attribute 'Missing'"),
            ("tests.sockserv.sample_handlers:NotAHandler", "not a request handler class"),
            ("tests.sockserv.sample_handlers:NoHandle", "not a request handler class"),
            ("justaword", "expected one of"),
        ]
        for spec, expected in cases:
            with self.assertRaises(HandlerLoadError) as caught:
                resolve_handler(spec, app)
            self.assertIn(expected, str(caught.exception))
            self.assertIsInstance(caught.exception, ConfigError)

    def test_mode(self) -> None:
        self.assertTrue(is_reactor_handler(EchoHandler))
        self.assertTrue(is_reactor_handler(sample_handlers.RunOnReactorHello))
        self.assertFalse(is_reactor_handler(sample_handlers.LineEcho))

    def test_make_service_errors(self) -> None:
        clock = MemoryReactorClock()
        self.assertRaises(ConfigError, make_sockserv_service, clock, handler="echo", listen=[])
        self.assertRaises(
            ConfigError, make_sockserv_service, clock, handler="echo", listen=["tcp:0"], threads=0
        )
        self.assertRaises(
            ConfigError, make_sockserv_service, clock, handler="echo", listen=["udp:x"]
        )


class BuiltinTests(SynchronousTestCase):
    """Built-in handlers on a StringTransport."""

    def connect(self, handler: type, now: float = 0.0) -> StringTransport:
        clock = MemoryReactorClock()
        clock.advance(now)
        proto = HandlerFactory(handler, clock, ThreadPool()).buildProtocol(None)
        assert proto is not None
        transport = StringTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 13),
            peerAddress=IPv4Address("TCP", "127.0.0.1", 5000),
        )
        proto.makeConnection(transport)
        self.proto = proto
        return transport

    def test_daytime_format(self) -> None:
        self.assertEqual(daytime(1_795_244_340), b"Saturday, November 21, 2026 06:59:00-UTC\r\n")
        self.assertEqual(daytime(0), b"Thursday, January 1, 1970 00:00:00-UTC\r\n")

    def test_daytime_tcp_sends_and_closes(self) -> None:
        transport = self.connect(DaytimeHandler, now=1_795_244_340)
        self.assertEqual(transport.value(), b"Saturday, November 21, 2026 06:59:00-UTC\r\n")
        self.assertTrue(transport.disconnecting)

    def test_discard_reads_until_eof(self) -> None:
        transport = self.connect(DiscardHandler)
        self.proto.dataReceived(b"x" * 100_000)
        self.assertEqual(transport.value(), b"")
        self.assertFalse(transport.disconnecting)
        self.proto.readConnectionLost()  # type: ignore[attr-defined]
        self.assertTrue(transport.disconnecting)

    def test_echo_tcp(self) -> None:
        transport = self.connect(EchoHandler)
        self.proto.dataReceived(b"abc")
        self.proto.dataReceived(b"def")
        self.assertEqual(transport.value(), b"abcdef")

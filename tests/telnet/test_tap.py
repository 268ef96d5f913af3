"""``twistd netproto-telnet``, the ``[telnet]`` section, Telnet over TLS and the admin console."""

from __future__ import annotations

import signal
import socket
import warnings
from dataclasses import replace
from pathlib import Path

from twisted.application.service import MultiService
from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core.daemon import DaemonContext, TLSFiles
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.limits import DEFAULT_LIMITS
from netproto_twisted.core.passwords import PasswordFile
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.telnet import tap
from netproto_twisted.telnet.client import connect_telnet
from netproto_twisted.telnet.script import ScriptedSession
from tests.twistd import Daemon

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import telnetlib

USER, PASSWORD = "alice", "wonderland"


def users(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    PasswordFile(directory / "users").add(USER, PASSWORD, iterations=4096)


class ConfigTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        config = tap.Config()
        self.assertEqual(config.listen, ("tcp:2323:interface=127.0.0.1",))
        self.assertFalse(config.console)
        self.assertRaises(ConfigError, tap.Config, shell="zsh")

    def test_console_is_loopback_only(self) -> None:
        data = Path(self.mktemp())
        users(data)
        context = DaemonContext(reactor, data, TLSFiles.resolve(data))
        for bad in ("tcp:2324", "tcp:2324:interface=0.0.0.0", "unix:/tmp/x"):
            config = tap.Config(listen=(), console=True, console_listen=bad)
            self.assertRaises(ConfigError, tap.build_service, config, context)
        self.assertIsNone(tap.combined_service(tap.Config(enabled=False), context))

    def test_options(self) -> None:
        options = tap.Options()
        options.parseOptions(["--shell", "pty", "--command", "/bin/cat -u", "--console"])
        self.assertEqual((options.config.shell, options.config.command), ("pty", "/bin/cat -u"))
        self.assertTrue(options.config.console)


class ServiceTests(TestCase):
    async def test_tls_and_console(self) -> None:
        data = Path(self.mktemp()).absolute()
        users(data)
        context = DaemonContext(reactor, data, TLSFiles.resolve(data))
        config = tap.Config(
            listen=("ssl:0:interface=127.0.0.1",),
            console=True,
            console_listen="tcp:0:interface=127.0.0.1",
        )
        service = tap.combined_service(config, context)
        assert isinstance(service, MultiService)
        service.startService()
        self.addCleanup(service.stopService)
        telnet, console = list(service)  # type: ignore[call-overload]
        assert isinstance(telnet, EndpointsService) and isinstance(console, EndpointsService)
        [(kind, where)] = await telnet.when_listening()
        [(_, console_where)] = await console.when_listening()
        self.assertEqual(kind, "ssl")
        client = await connect_telnet(
            reactor, "127.0.0.1", int(where.rpartition(":")[2]), tls=True, tls_verify=False
        )
        self.addCleanup(client.close)
        prompt = rb">>> $"
        await ScriptedSession(client, prompt=prompt).login(USER.encode(), PASSWORD.encode())
        admin = await connect_telnet(reactor, "127.0.0.1", int(console_where.rpartition(":")[2]))
        self.addCleanup(admin.close)
        session = ScriptedSession(admin, prompt=prompt)
        await session.login(USER.encode(), PASSWORD.encode())
        status = await session.run(b"status()")
        self.assertIn(b"telnet: ssl 127.0.0.1:", status)
        self.assertIn(b"connections 1/", status)
        self.assertIn(b"shell user=alice", status)
        self.assertIn(b"telnet-console: tcp", status)
        self.assertIn(b"max_connections", await session.run(b"limits"))


class DaemonTests(SynchronousTestCase):
    """``twistd -n netproto-telnet`` as users start it, with telnetlib as the client."""

    def test_telnetlib_session(self) -> None:
        cwd = Path(self.mktemp()).absolute()
        users(cwd)
        daemon = Daemon(
            [
                "netproto-telnet",
                "--data-dir",
                "data",
                "--passwords",
                "users",
                "--listen",
                "tcp:0:interface=127.0.0.1",
            ],
            cwd,
        )
        self.addCleanup(daemon.stop, signal.SIGKILL)
        port = int(daemon.wait_for(r"telnet listening on tcp \S+:(\d+)").group(1))
        tn = telnetlib.Telnet("127.0.0.1", port, timeout=30)
        self.assertTrue(tn.read_until(b"login: ", 30).endswith(b"login: "))
        tn.write(b"alice\r\n")
        tn.read_until(b"Password: ", 30)
        tn.write(b"wonderland\r\n")
        tn.read_until(b">>> ", 30)
        tn.write(b"print(6 * 7)\r\n")
        index, _, text = tn.expect([rb"42\r\n"], 30)
        self.assertEqual(index, 0, text)
        tn.close()
        self.assertIn(daemon.stop(signal.SIGTERM), (0, -signal.SIGTERM))
        self.assertNotIn("Traceback", daemon.output())


class LimitTests(TestCase):
    async def test_connections_per_address(self) -> None:
        data = Path(self.mktemp()).absolute()
        users(data)
        limits = replace(DEFAULT_LIMITS, max_connections_per_ip=1)
        context = DaemonContext(reactor, data, TLSFiles.resolve(data), limits=limits)
        service = tap.build_service(tap.Config(listen=("tcp:0:interface=127.0.0.1",)), context)
        service.startService()
        self.addCleanup(service.stopService)
        [listener] = list(service)  # type: ignore[call-overload]
        [(_, where)] = await listener.when_listening()
        port = int(where.rpartition(":")[2])
        first = await connect_telnet(reactor, "127.0.0.1", port)
        self.addCleanup(first.close)
        await first.read_until(b"login: ", 10)
        second = await connect_telnet(reactor, "127.0.0.1", port)
        self.assertIn(b"Connection refused: ", await second.read_all())


class RawSocketTests(TestCase):
    """A client that sends no negotiation at all still gets its prompt at once."""

    async def test_prompt_without_negotiation(self) -> None:
        data = Path(self.mktemp()).absolute()
        users(data)
        context = DaemonContext(reactor, data, TLSFiles.resolve(data))
        service = tap.build_service(tap.Config(listen=("tcp:0:interface=127.0.0.1",)), context)
        service.startService()
        self.addCleanup(service.stopService)
        [listener] = list(service)  # type: ignore[call-overload]
        [(_, where)] = await listener.when_listening()
        port = int(where.rpartition(":")[2])

        def read() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                got = b""
                while not got.endswith(b"login: "):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                return got

        self.assertTrue((await deferToThread(read)).endswith(b"login: "))

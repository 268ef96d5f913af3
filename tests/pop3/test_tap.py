"""``twistd netproto-pop3`` and the ``[pop3]`` section of the combined daemon."""

from __future__ import annotations

import ast
import poplib
import signal
import ssl
from pathlib import Path

from twisted.application.service import MultiService
from twisted.internet.threads import deferToThread
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted import tap as combined
from netproto_twisted.core.config import config_from_toml_text
from netproto_twisted.core.daemon import DaemonContext, TLSFiles
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.pop3 import tap
from tests.twistd import REPO, Daemon

from .helpers import MESSAGES, PASSWORD, USER, make_maildir, password_file
from .loopback import reactor

PLUGIN_FILE = REPO / "twisted_plugins" / "netproto_pop3.py"


class OptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        options = tap.Options()
        options.parseOptions([])
        self.assertEqual(options.config.listen, tap.DEFAULT_LISTEN)
        self.assertEqual(
            options.config.listen, ("tcp:2110:interface=127.0.0.1", "ssl:2995:interface=127.0.0.1")
        )
        self.assertEqual(options["limits"].idle_timeout, 600.0)  # RFC 1939's ten minutes
        self.assertFalse(options.config.allow_insecure_auth)

    def test_options(self) -> None:
        options = tap.Options()
        options.parseOptions(
            [
                "--listen",
                "tcp:110",
                "--listen",
                "ssl:995",
                "--maildir",
                "/m",
                "--passwords",
                "/p",
                "--allow-insecure-auth",
                "--idle-timeout",
                "60",
                "--max-failed-logins",
                "3",
                "--auth-mechanisms",
                "SCRAM-SHA-256,PLAIN",
                "--max-line-length",
                "512",
            ]
        )
        config = options.config
        self.assertEqual(config.listen, ("tcp:110", "ssl:995"))
        self.assertEqual((config.maildir, config.users), ("/m", "/p"))
        self.assertTrue(config.allow_insecure_auth)
        limits = options["limits"]
        self.assertEqual((limits.idle_timeout, limits.max_failed_logins), (60.0, 3))
        self.assertEqual(limits.auth_mechanisms, ("SCRAM-SHA-256", "PLAIN"))
        self.assertEqual(limits.max_line_length, 512)

    def test_bad_options(self) -> None:
        for argv in (["--max-errors", "x"], ["--idle-timeout", "-1"], ["--max-errors", "0"]):
            self.assertRaises(usage.UsageError, tap.Options().parseOptions, argv)

    def test_plugin_file_is_a_declaration(self) -> None:
        tree = ast.parse(PLUGIN_FILE.read_text())
        calls = [n.value for n in tree.body if isinstance(n, ast.Assign)]
        self.assertEqual(len(calls), 1)
        call = calls[0]
        assert isinstance(call, ast.Call)
        self.assertEqual(ast.unparse(call.func), "ServiceMaker")
        name, module = (ast.literal_eval(a) for a in call.args[:2])
        self.assertEqual((name, module), ("netproto-pop3", "netproto_twisted.pop3.tap"))


class CombinedTests(TestCase):
    timeout = 30

    def test_section(self) -> None:
        config = config_from_toml_text(
            '[pop3]\nlisten = ["tcp:0"]\nallow_insecure_auth = true\n', {"pop3": tap.Config}
        )["pop3"]
        assert isinstance(config, tap.Config)
        self.assertEqual(config.listen, ("tcp:0",))
        self.assertTrue(config.allow_insecure_auth)
        self.assertIn("pop3", combined.COMPONENTS)

    def test_default_daemon_serves_pop3_on_2110_and_2995(self) -> None:
        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "[smtp]\nenabled = false\n[socket]\nenabled = false\n[telnet]\nenabled = false\n"
        )
        svc = combined.build({"config": str(path), "data": self.mktemp()}, reactor)  # not started
        [pop3] = [s for s in svc if s.name == "pop3"]
        [listener] = list(pop3)  # type: ignore[call-overload]
        assert isinstance(listener, EndpointsService)
        self.assertEqual(
            [e.split(":")[:2] for e in listener._listen], [["tcp", "2110"], ["ssl", "2995"]]
        )

    def test_keeps_its_own_limits_unless_the_table_changes_them(self) -> None:
        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("[smtp]\nenabled = false\n[socket]\nenabled = false\n")
        svc = combined.build({"config": str(path), "data": self.mktemp()}, reactor)
        [pop3] = [s for s in svc if s.name == "pop3"]
        [listener] = list(pop3)  # type: ignore[call-overload]
        self.assertEqual(listener._factory.limits, tap.POP3_LIMITS)
        path.write_text(path.read_text() + "[limits]\ncommand_rate = 50.0\n")
        svc = combined.build({"config": str(path), "data": self.mktemp()}, reactor)
        [pop3] = [s for s in svc if s.name == "pop3"]
        [listener] = list(pop3)  # type: ignore[call-overload]
        self.assertEqual(listener._factory.limits.command_rate, 50.0)
        self.assertEqual(listener._factory.limits.idle_timeout, 600.0)

    async def test_listens_with_the_daemon_certificate(self) -> None:
        data = Path(self.mktemp()).absolute()
        data.mkdir(parents=True)
        make_maildir(str(data / "mail"))
        password_file(str(data))
        context = DaemonContext(reactor, data, TLSFiles.resolve(data))
        service = tap.combined_service(tap.Config(listen=("ssl:0:interface=127.0.0.1",)), context)
        assert isinstance(service, MultiService)
        service.startService()
        self.addCleanup(service.stopService)
        [listener] = list(service)  # type: ignore[call-overload]
        [(kind, where)] = await listener.when_listening()
        self.assertEqual(kind, "ssl")
        port = int(where.rpartition(":")[2])
        cafile = str(context.tls.cert)

        def session() -> tuple[int, int]:
            tls = ssl.create_default_context(cafile=cafile)
            tls.check_hostname = False
            pop = poplib.POP3_SSL("127.0.0.1", port, context=tls, timeout=30)
            pop.user(USER)
            pop.pass_(PASSWORD)
            stat = pop.stat()
            pop.quit()
            return stat

        self.assertEqual(await deferToThread(session), (3, 168))
        self.assertIsNone(tap.combined_service(tap.Config(enabled=False), context))


class DaemonTests(SynchronousTestCase):
    """``twistd -n netproto-pop3`` started as users start it."""

    def test_serves_the_maildir_and_stops_on_sigterm(self) -> None:
        cwd = Path(self.mktemp()).absolute()
        cwd.mkdir(parents=True)
        make_maildir(str(cwd / "maildir"), MESSAGES[:2])
        password_file(str(cwd))
        daemon = Daemon(
            [
                "netproto-pop3",
                "--data-dir",
                "data",
                "--maildir",
                "maildir",
                "--passwords",
                "users",
                "--allow-insecure-auth",
                "--listen",
                "tcp:0:interface=127.0.0.1",
                "--listen",
                "ssl:0:interface=127.0.0.1",
            ],
            cwd,
        )
        self.addCleanup(daemon.stop, signal.SIGKILL)
        tcp = daemon.wait_for(r"pop3 listening on tcp \S+:(\d+)")
        daemon.wait_for(r"pop3 listening on ssl \S+:(\d+)")
        pop = poplib.POP3("127.0.0.1", int(tcp.group(1)), timeout=30)
        self.assertIn("STLS", pop.capa())
        pop.user(USER)
        pop.pass_(PASSWORD)
        self.assertEqual(pop.stat(), (2, 122))
        self.assertEqual(pop.retr(2)[1], MESSAGES[1].split(b"\r\n")[:-1])
        pop.quit()
        self.assertTrue((cwd / "data" / "tls").is_dir())  # the development certificate
        # twistd ends a clean shutdown by re-raising the signal that asked for it.
        self.assertIn(daemon.stop(signal.SIGTERM), (0, -signal.SIGTERM))
        self.assertIn("Server Shut Down.", daemon.output())
        self.assertNotIn("Traceback", daemon.output())

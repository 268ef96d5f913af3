"""The combined daemon, ``twistd -n netproto``: configuration, start-up table, clean stop."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import time
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted import tap
from netproto_twisted.core.errors import ConfigError
from tests.twistd import Daemon, run_twistd

ROW = re.compile(r"^\s*(?P<name>\S+)\s+(?P<kind>tcp6?|ssl|udp|unix)\s+(?P<where>\S+)\s*$", re.M)

CONFIG = """
[netproto]
data = "state"

[limits]
max_connections = 20

[smtp]
enabled = false

[pop3]
enabled = false

[nntp]
enabled = false

[http]
enabled = false

[ftp]
enabled = false

[telnet]
enabled = false

[imap]
enabled = false

[[socket.services]]
name = "echo"
handler = "echo"
listen = ["tcp:0:interface=127.0.0.1", "udp:0:interface=127.0.0.1", "ssl:0:interface=127.0.0.1"]

[[socket.services]]
name = "daytime"
handler = "daytime"
listen = ["tcp:0:interface=127.0.0.1"]
"""


def _addr(where: str) -> tuple[str, int]:
    host, _, port = where.rpartition(":")
    return host.strip("[]"), int(port)


class BuildTests(SynchronousTestCase):
    """``tap.build`` from options, without starting anything."""

    def test_embedded_defaults(self) -> None:
        cwd = Path(self.mktemp())
        cwd.mkdir()
        svc = tap.build({"data": str(cwd / "data")}, reactor)  # built, never started
        names = sorted(s.name for s in svc)
        self.assertEqual(
            names, ["ftp", "http", "imap", "nntp", "pop3", "smtp", "socket", "telnet"]
        )
        self.assertTrue((cwd / "data" / "tls" / "dev-cert.pem").exists())
        self.assertTrue(svc.context.tls.development)
        self.assertTrue(svc.context.tls.fingerprint().startswith("SHA256:"))
        sock = next(iter(svc))
        self.assertEqual(sorted(s.name for s in sock), ["daytime", "discard", "echo"])

    def _config(self, text: str) -> Path:
        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def test_bad_config_names_the_key(self) -> None:
        for text, message in [
            ("[limits]\nmax_connections = 'lots'\n", "limits.max_connections: expected an int"),
            ("[smpt]\n", "unknown"),
            ("[socket]\nenabled = 3\n", "socket.enabled"),
            ("[[socket.services]]\nname='x'\nhandler='no.such.module:X'\nlisten=['tcp:0']\n",
             "socket.services.x"),
            ("[access]\nallow = ['10.0.0.1/8']\n", "host bits set"),
            ("[tls]\ncert = '/nonexistent/cert.pem'\nkey = '/nonexistent/key.pem'\n",
             "/nonexistent/"),
        ]:
            with self.assertRaises(ConfigError, msg=text) as cm:
                tap.build({"config": str(self._config(text)), "data": self.mktemp()},
                          MemoryReactorClock())
            self.assertIn(message, str(cm.exception))
            self.assertNotIn("\n", str(cm.exception))

    def test_disabled_section_runs_nothing(self) -> None:
        path = self._config(
            "[socket]\nenabled = false\n[smtp]\nenabled = false\n[pop3]\nenabled = false\n"
            "[nntp]\nenabled = false\n"
            "[http]\nenabled = false\n"
            "[ftp]\nenabled = false\n"
            "[telnet]\nenabled = false\n"
            "[imap]\nenabled = false\n"
        )
        svc = tap.build({"config": str(path), "data": self.mktemp()}, MemoryReactorClock())
        self.assertEqual(list(svc), [])


class DaemonTests(SynchronousTestCase):
    """``twistd -n netproto`` started as users start it."""

    def _start(self, *args: str) -> Daemon:
        cwd = Path(self.mktemp())
        cwd.mkdir(parents=True)
        (cwd / "netproto.toml").write_text(CONFIG)
        daemon = Daemon(["netproto", "--config", "netproto.toml", *args], cwd)
        self.addCleanup(daemon.stop, signal.SIGKILL)
        return daemon

    def test_table_ports_and_clean_sigterm(self) -> None:
        daemon = self._start()
        daemon.wait_for(r"TLS fingerprint: SHA256:[0-9A-F:]{95}")
        out = daemon.output()
        rows = [m.groupdict() for m in ROW.finditer(out)]
        self.assertEqual(sorted((r["name"], r["kind"]) for r in rows),
                         [("daytime", "tcp"), ("echo", "ssl"), ("echo", "tcp"), ("echo", "udp")])
        where = {(r["name"], r["kind"]): _addr(r["where"]) for r in rows}
        self.assertIn("development certificate", out)
        self.assertTrue((daemon.cwd / "state" / "tls" / "dev-key.pem").exists())
        echo = socket.create_connection(where["echo", "tcp"], timeout=10)
        echo.sendall(b"hello\r\n")
        self.assertEqual(echo.recv(100), b"hello\r\n")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(10)
            udp.sendto(b"ping", where["echo", "udp"])
            self.assertEqual(udp.recvfrom(100)[0], b"ping")
        with socket.create_connection(where["daytime", "tcp"], timeout=10) as day:
            self.assertRegex(day.recv(100), rb"\d{4} \d\d:\d\d:\d\d")
        started = time.monotonic()
        code = daemon.stop(signal.SIGTERM)
        self.assertLess(time.monotonic() - started, 10)
        # twistd ends a clean shutdown by re-raising the signal that asked for it.
        self.assertIn(code, (0, -signal.SIGTERM))
        self.assertIn("Server Shut Down.", daemon.output())
        echo.settimeout(10)
        with contextlib.suppress(ConnectionResetError):  # closed, not left hanging
            self.assertEqual(echo.recv(100), b"")
        echo.close()

    def test_port_in_use_exits_nonzero_with_one_line(self) -> None:
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        self.addCleanup(busy.close)
        port = busy.getsockname()[1]
        cwd = Path(self.mktemp())
        cwd.mkdir(parents=True)
        (cwd / "netproto.toml").write_text(
            "[smtp]\nenabled = false\n[pop3]\nenabled = false\n[nntp]\nenabled = false\n"
            "[http]\nenabled = false\n"
            "[ftp]\nenabled = false\n"
            "[telnet]\nenabled = false\n"
            "[imap]\nenabled = false\n"
            f'[[socket.services]]\nname = "echo"\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n')
        daemon = Daemon(["netproto", "--config", "netproto.toml"], cwd)
        self.addCleanup(daemon.stop, signal.SIGKILL)
        daemon.proc.wait(30)
        self.assertEqual(daemon.proc.returncode, 1)
        self.assertIn("echo cannot listen", daemon.output())
        self.assertNotIn("Traceback", daemon.output())

    def test_bad_config_is_one_line(self) -> None:
        cwd = Path(self.mktemp())
        cwd.mkdir(parents=True)
        (cwd / "bad.toml").write_text("[limits]\nidle_timeout = -1\n")
        result = run_twistd(["netproto", "--config", "bad.toml"], cwd)
        self.assertNotEqual(result.returncode, 0)
        self.assertEqual(result.stdout.strip(), "")
        err = result.stderr.strip().splitlines()
        self.assertEqual(len(err), 1, result.stderr)
        self.assertTrue(err[0].startswith("netproto: limits.idle_timeout"), err[0])

    def test_implicit_tls_uses_the_dev_certificate(self) -> None:
        import ssl

        daemon = self._start()
        daemon.wait_for(r"TLS fingerprint: (SHA256:[0-9A-F:]{95})")
        where = {(m["name"], m["kind"]): _addr(m["where"]) for m in ROW.finditer(daemon.output())}
        ctx = ssl.create_default_context(cafile=str(daemon.cwd / "state/tls/dev-cert.pem"))
        with socket.create_connection(where["echo", "ssl"], timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"secret\r\n")
            self.assertEqual(tls.recv(100), b"secret\r\n")

"""``twistd netproto-ftp`` and the ``[ftp]`` section of the combined daemon."""

from __future__ import annotations

import ftplib
import io
import signal
from pathlib import Path

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted import tap as combined
from netproto_twisted.core.config import config_from_toml_text
from netproto_twisted.core.passwords import PasswordFile
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.ftp import tap
from tests.ftp.helpers import ReusingFTP_TLS
from tests.twistd import Daemon


class OptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        options = tap.Options()
        options.parseOptions([])
        self.assertEqual(options.config.listen, ("tcp:2121:interface=127.0.0.1",))
        self.assertTrue(options.config.require_session_reuse)
        self.assertFalse(options.config.anonymous)

    def test_options(self) -> None:
        options = tap.Options()
        options.parseOptions([
            "--listen", "tcp:21", "--listen", "ssl:990", "--root", "/srv/ftp", "--anonymous",
            "--passive-ports", "40000-40100", "--masquerade", "192.0.2.1", "--require-tls",
            "--no-session-reuse", "--ftp-users", "perms", "--data-timeout", "5",
            "--max-download-rate", "1000000", "--max-upload-rate", "250000",
            "--max-upload-size", "1048576", "--inline-file-ops", "0",
        ])  # fmt: skip
        config = options.config
        self.assertEqual(config.listen, ("tcp:21", "ssl:990"))
        self.assertEqual((config.root, config.ftp_users), ("/srv/ftp", "perms"))
        self.assertEqual(config.passive_ports, "40000-40100")
        self.assertTrue(config.anonymous and config.require_tls)
        self.assertFalse(config.require_session_reuse)
        self.assertEqual(
            (config.data_timeout, config.max_download_rate, config.max_upload_rate),
            (5.0, 1_000_000.0, 250_000.0),
        )
        self.assertEqual(config.max_upload_size, 1_048_576)
        self.assertEqual(config.inline_file_ops, 0.0)
        self.assertEqual(tap.Config().inline_file_ops, 0.005)

    def test_bad_options(self) -> None:
        for args in (["--passive-ports", "9-8"], ["--passive-ports", "x"],
                     ["--passive-ports", "80-90"], ["--max-download-rate", "-1"],
                     ["--max-upload-rate", "fast"], ["--data-timeout", "0"],
                     ["--max-upload-size", "-1"], ["--max-upload-size", "1.5"],
                     ["--inline-file-ops", "-1"]):  # fmt: skip
            with self.assertRaises(usage.UsageError):
                tap.Options().parseOptions(args)

    def test_section(self) -> None:
        [config] = config_from_toml_text(
            '[ftp]\nlisten = ["tcp:0"]\nanonymous = true\npassive_ports = "50000-50010"\n'
            "max_download_rate = 65536.0\nmax_upload_rate = 1000.0\n",
            {"ftp": tap.Config},
        ).values()
        assert isinstance(config, tap.Config)
        self.assertEqual(config.listen, ("tcp:0",))
        self.assertTrue(config.anonymous)
        self.assertEqual((config.max_download_rate, config.max_upload_rate), (65536.0, 1000.0))
        self.assertIn("ftp", combined.COMPONENTS)

    def test_default_daemon_serves_ftp_on_2121(self) -> None:
        from twisted.internet import reactor

        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("[smtp]\nenabled = false\n[socket]\nenabled = false\n")
        svc = combined.build({"config": str(path), "data": self.mktemp()}, reactor)
        [ftp] = [s for s in svc if s.name == "ftp"]
        [listener] = list(ftp)  # type: ignore[call-overload]
        assert isinstance(listener, EndpointsService)
        self.assertEqual([e.split(":")[:2] for e in listener.endpoints], [["tcp", "2121"]])


class DaemonTests(SynchronousTestCase):
    """``twistd -n netproto-ftp`` started as users start it."""

    def test_serves_files_over_ftps_and_stops_on_sigterm(self) -> None:
        cwd = Path(self.mktemp()).absolute()
        cwd.mkdir(parents=True)
        PasswordFile(cwd / "users", iterations=4096).add("alice", "secret")
        (cwd / "ftp-users").write_text("alice  alice  elrw\n")
        daemon = Daemon(
            ["netproto-ftp", "--data-dir", "data", "--root", "files", "--users", "users",
             "--ftp-users", "ftp-users", "--listen", "tcp:0:interface=127.0.0.1"],
            cwd,
        )  # fmt: skip
        self.addCleanup(daemon.stop, signal.SIGKILL)
        port = int(daemon.wait_for(r"ftp listening on tcp \S+:(\d+)").group(1))
        plain = ftplib.FTP(timeout=30)
        plain.connect("127.0.0.1", port)
        with self.assertRaises(ftplib.error_perm) as e:  # no password in clear by default
            plain.login("alice", "secret")
        self.assertEqual(str(e.exception)[:3], "534")
        plain.close()
        f = ReusingFTP_TLS(timeout=30)
        f.connect("127.0.0.1", port)
        f.login("alice", "secret")
        f.prot_p()
        f.storbinary("STOR hello.txt", io.BytesIO(b"hello"))
        self.assertEqual(f.nlst(), ["hello.txt"])
        with self.assertRaises(ftplib.error_perm):
            f.delete("hello.txt")  # no "d" letter
        f.quit()
        self.assertEqual((cwd / "files" / "alice" / "hello.txt").read_bytes(), b"hello")
        self.assertIn(daemon.stop(signal.SIGTERM), (0, -signal.SIGTERM))
        self.assertNotIn("Traceback", daemon.output())

"""``twistd netproto-nntp``, the ``[nntp]`` section of the combined daemon, and the plugin file."""

from __future__ import annotations

import ast
import contextlib
import io
import signal
import warnings
from pathlib import Path

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted import cli
from netproto_twisted import tap as combined
from netproto_twisted.core.config import config_from_toml_text
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.nntp import tap
from tests.twistd import REPO, Daemon

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import nntplib

PLUGIN_FILE = REPO / "twisted_plugins" / "netproto_nntp.py"


class OptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        options = tap.Options()
        options.parseOptions([])
        config = options.config
        self.assertEqual(
            config.listen, ("tcp:2119:interface=127.0.0.1", "ssl:2563:interface=127.0.0.1")
        )
        self.assertTrue(config.posting_requires_auth)
        self.assertEqual(config.feed_peers, tap.DEFAULT_FEED_PEERS)
        self.assertEqual(options["limits"].command_rate, 50000.0)

    def test_options(self) -> None:
        options = tap.Options()
        options.parseOptions(["--listen", "tcp:119", "--database", "/n.db", "--open-posting",
                              "--feed-peer", "10.0.0.0/8", "--max-article-size", "5000",
                              "--expire-days", "7", "--path-host", "news.example"])  # fmt: skip
        config = options.config
        self.assertEqual((config.listen, config.database), (("tcp:119",), "/n.db"))
        self.assertFalse(config.posting_requires_auth)
        self.assertEqual(config.feed_peers, ("10.0.0.0/8",))
        self.assertEqual((config.max_article_size, config.expire_days), (5000, 7.0))
        self.assertEqual(config.path_host, "news.example")

    def test_list_files_and_compression(self) -> None:
        options = tap.Options()
        options.parseOptions(["--motd", "/m", "--subscriptions", "/s", "--distributions", "/d",
                              "--moderators", "/o", "--distrib-pats", "/p",
                              "--no-compress"])  # fmt: skip
        config = options.config
        self.assertEqual((config.motd_file, config.subscriptions_file, config.distributions_file,
                          config.moderators_file, config.distrib_pats_file),
                         ("/m", "/s", "/d", "/o", "/p"))  # fmt: skip
        self.assertFalse(config.compression)
        self.assertTrue(tap.Config().compression)

    def test_bad_options(self) -> None:
        for argv in (["--max-errors", "x"], ["--max-article-size", "0"], ["--expire-days", "x"]):
            self.assertRaises(usage.UsageError, tap.Options().parseOptions, argv)

    def test_plugin_file_is_a_declaration(self) -> None:
        tree = ast.parse(PLUGIN_FILE.read_text())
        calls = [n.value for n in tree.body if isinstance(n, ast.Assign)]
        self.assertEqual(len(calls), 1)
        call = calls[0]
        assert isinstance(call, ast.Call)
        name, module = (ast.literal_eval(a) for a in call.args[:2])
        self.assertEqual((name, module), ("netproto-nntp", "netproto_twisted.nntp.tap"))

    def test_section(self) -> None:
        config = config_from_toml_text(
            '[nntp]\nlisten = ["tcp:0"]\nposting_requires_auth = false\n', {"nntp": tap.Config}
        )["nntp"]
        assert isinstance(config, tap.Config)
        self.assertFalse(config.posting_requires_auth)
        self.assertIn("nntp", combined.COMPONENTS)

    def test_default_daemon_serves_nntp_on_2119_and_2563(self) -> None:
        from twisted.internet import reactor

        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "[smtp]\nenabled = false\n[socket]\nenabled = false\n[pop3]\nenabled = false\n"
        )
        svc = combined.build({"config": str(path), "data": self.mktemp()}, reactor)  # not started
        [nntp] = [s for s in svc if s.name == "nntp"]
        [listener] = [s for s in nntp if isinstance(s, EndpointsService)]  # type: ignore[attr-defined]
        self.assertEqual(
            [e.split(":")[:2] for e in listener._listen], [["tcp", "2119"], ["ssl", "2563"]]
        )


class DaemonTests(SynchronousTestCase):
    """``twistd -n netproto-nntp`` as users start it, its groups made by ``netproto news``."""

    def test_serves_groups_and_stops_on_sigterm(self) -> None:
        cwd = Path(self.mktemp()).absolute()
        cwd.mkdir(parents=True)
        database = str(cwd / "data" / "news" / "news.db")
        with contextlib.redirect_stdout(io.StringIO()):
            status = cli.main(["news", "group", "add", "--db", database, "--description",
                               "Daemon tests", "comp.daemon"])  # fmt: skip
        self.assertEqual(status, 0)
        (cwd / "motd").write_text("Hello from the daemon.\n")
        daemon = Daemon(
            ["netproto-nntp", "--data-dir", "data", "--open-posting", "--motd", "motd",
             "--listen", "tcp:0:interface=127.0.0.1"],
            cwd,
        )  # fmt: skip
        self.addCleanup(daemon.stop, signal.SIGKILL)
        tcp = daemon.wait_for(r"nntp listening on tcp \S+:(\d+)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            s = nntplib.NNTP("127.0.0.1", int(tcp.group(1)), readermode=False, timeout=30)
        self.assertIn("STARTTLS", s.getcapabilities())
        self.assertEqual(s.getcapabilities()["COMPRESS"], ["DEFLATE"])
        self.assertEqual(s._longcmdstring("LIST MOTD")[1], ["Hello from the daemon."])
        self.assertEqual(s.descriptions("comp.*")[1], {"comp.daemon": "Daemon tests"})
        s.post(io.BytesIO(b"From: a@b.test\nNewsgroups: comp.daemon\nSubject: x\n\nhi\n"))
        self.assertEqual(s.group("comp.daemon")[1], 1)
        s.quit()
        self.assertIn(daemon.stop(signal.SIGTERM), (0, -signal.SIGTERM))
        self.assertIn("Server Shut Down.", daemon.output())
        self.assertNotIn("Traceback", daemon.output())

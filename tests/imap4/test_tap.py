"""``twistd netproto-imap`` and the ``[imap]`` section of the combined daemon."""

from __future__ import annotations

import ast
import imaplib
import os
import signal
from pathlib import Path

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted import tap as combined
from netproto_twisted.core.config import config_from_toml_text
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.imap4 import tap
from netproto_twisted.mailstore import MaildirStore
from netproto_twisted.mailstore.fsops import FsOps
from tests.core.test_procpool import gone_within
from tests.mailstore.helpers import sync_runner
from tests.twistd import REPO, Daemon

from .loopback import PASSWORD, USER, password_file, reactor

PLUGIN_FILE = REPO / "twisted_plugins" / "netproto_imap.py"


class OptionsTests(SynchronousTestCase):
    def test_defaults_and_options(self) -> None:
        options = tap.Options()
        options.parseOptions([])
        self.assertEqual(
            options.config.listen, ("tcp:2143:interface=127.0.0.1", "ssl:2993:interface=127.0.0.1")
        )
        self.assertEqual(options["limits"].idle_timeout, 1800.0)
        options = tap.Options()
        options.parseOptions(
            ["--listen", "tcp:143", "--append-limit", "1000", "--allow-insecure-auth"]
        )
        self.assertEqual(
            (options.config.listen, options.config.append_limit), (("tcp:143",), 1000)
        )
        for argv in (["--max-errors", "x"], ["--append-limit", "0"], ["--max-literal", "10"]):
            self.assertRaises(usage.UsageError, tap.Options().parseOptions, argv)

    def test_prefetch_workers(self) -> None:
        options = tap.Options()
        options.parseOptions([])
        self.assertEqual(options.config.prefetch_workers, 1)
        options = tap.Options()
        options.parseOptions(["--prefetch-workers", "0"])
        self.assertEqual(options.config.prefetch_workers, 0)
        for argv in (["--prefetch-workers", "-1"], ["--prefetch-workers", "x"]):
            self.assertRaises(usage.UsageError, tap.Options().parseOptions, argv)

    def test_prefetch_workers_built_only_when_wanted(self) -> None:
        from netproto_twisted.core.daemon import DaemonContext

        del DaemonContext  # the combined daemon builds the context: use it
        for workers, expected in ((0, False), (2, True)):
            path = Path(self.mktemp())
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                "[smtp]\nenabled = false\n[socket]\nenabled = false\n[pop3]\nenabled = false\n"
                f"[imap]\nprefetch_workers = {workers}\n"
            )
            svc = combined.build({"config": str(path), "data": self.mktemp()}, reactor)
            [imap] = [s for s in svc if s.name == "imap"]
            pools = [s for s in imap if type(s).__name__ == "_PoolService"]  # type: ignore[attr-defined]
            self.assertEqual(bool(pools), expected)

    def test_plugin_file_is_a_declaration(self) -> None:
        tree = ast.parse(PLUGIN_FILE.read_text())
        [call] = [n.value for n in tree.body if isinstance(n, ast.Assign)]
        assert isinstance(call, ast.Call)
        self.assertEqual(ast.unparse(call.func), "ServiceMaker")
        self.assertEqual(
            tuple(ast.literal_eval(a) for a in call.args[:2]),
            ("netproto-imap", "netproto_twisted.imap4.tap"),
        )

    def test_combined_section_and_default_ports(self) -> None:
        config = config_from_toml_text('[imap]\nlisten = ["tcp:0"]\n', {"imap": tap.Config})[
            "imap"
        ]
        assert isinstance(config, tap.Config)
        self.assertEqual(config.listen, ("tcp:0",))
        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "[smtp]\nenabled = false\n[socket]\nenabled = false\n[pop3]\nenabled = false\n"
        )
        svc = combined.build({"config": str(path), "data": self.mktemp()}, reactor)  # not started
        [imap] = [s for s in svc if s.name == "imap"]
        [listener] = [s for s in imap if isinstance(s, EndpointsService)]  # type: ignore[attr-defined]
        self.assertEqual(
            [e.split(":")[:2] for e in listener._listen], [["tcp", "2143"], ["ssl", "2993"]]
        )


class DaemonTests(SynchronousTestCase):
    """``twistd -n netproto-imap`` started as users start it."""

    def test_serves_the_maildir_and_stops_on_sigterm(self) -> None:
        cwd = Path(self.mktemp()).absolute()
        cwd.mkdir(parents=True)
        store = MaildirStore(str(cwd / "maildir"), fs=FsOps(), runner=sync_runner, sync="file")
        writer = store.deliver(USER)
        writer.write(b"Subject: hello\r\n\r\nbody\r\n")
        writer.commit()
        password_file(str(cwd))
        daemon = Daemon(
            ["netproto-imap", "--data-dir", "data", "--maildir", "maildir", "--passwords", "users",
             "--allow-insecure-auth", "--listen", "tcp:0:interface=127.0.0.1"],
            cwd,
        )  # fmt: skip
        self.addCleanup(daemon.stop, signal.SIGKILL)
        tcp = daemon.wait_for(r"imap listening on tcp \S+:(\d+)")
        c = imaplib.IMAP4("127.0.0.1", int(tcp.group(1)), timeout=30)
        self.assertIn("STARTTLS", c.capabilities)
        c.login(USER, PASSWORD)
        self.assertEqual(c.select("INBOX"), ("OK", [b"1"]))
        self.assertEqual(
            c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1][0][1],
            b"Subject: hello\r\n\r\n",
        )
        c.logout()
        workers = _children(daemon.proc.pid)
        self.assertTrue(workers)  # the read-ahead worker (--prefetch-workers 1)
        self.assertIn(daemon.stop(signal.SIGTERM), (0, -signal.SIGTERM))
        self.assertIn("Server Shut Down.", daemon.output())
        self.assertNotIn("Traceback", daemon.output())
        for pid in workers:  # gone with the daemon
            self.assertTrue(gone_within(pid, 10.0), f"worker {pid} outlived the daemon")


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rpartition(")")[2].split()[1]) == pid:
                        out.append(int(entry))
            except OSError:
                continue
    return out


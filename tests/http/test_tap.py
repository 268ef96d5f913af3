"""``twistd netproto-http``, the ``[http]`` section, curl over HTTP/1.1 and HTTP/2."""

from __future__ import annotations

import ast
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.python import usage
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase
from twisted.web.resource import Resource

from netproto_twisted import tap as combined
from netproto_twisted.core.daemon import DaemonContext, TLSFiles
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.http import tap
from tests.twistd import REPO, Daemon

from .helpers import reactor

PLUGIN_FILE = REPO / "twisted_plugins" / "netproto_http.py"
CURL = shutil.which("curl")


class Hello(Resource):
    isLeaf = True

    def render(self, request: Any) -> bytes:
        return b"mounted " + request.path


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    assert CURL is not None
    return subprocess.run(
        [CURL, "-sS", "--max-time", "20", *args], capture_output=True, check=False
    )


class OptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        options = tap.Options()
        options.parseOptions([])
        config = options.config
        self.assertEqual(
            config.listen, ("tcp:8080:interface=127.0.0.1", "ssl:8443:interface=127.0.0.1")
        )
        self.assertEqual(config.path, ".")
        self.assertFalse(config.debug)
        self.assertEqual(options["limits"].max_connections_per_ip, 256)

    def test_options(self) -> None:
        options = tap.Options()
        options.parseOptions([
            "--listen", "tcp:80", "--listen", "ssl:443", "--path", "/srv", "--cgi-dir", "/cgi",
            "--wsgi", "app:main", "--access-log", "/log", "--debug", "--max-body", "1000",
            "--header-timeout", "5", "--max-headers", "50", "--no-listings", "--cgi-timeout", "3",
        ])  # fmt: skip
        config = options.config
        self.assertEqual(config.listen, ("tcp:80", "ssl:443"))
        self.assertEqual((config.path, config.cgi_dir, config.wsgi), ("/srv", "/cgi", "app:main"))
        self.assertEqual((config.access_log, config.debug, config.listings), ("/log", True, False))
        self.assertEqual(config.limits.max_body, 1000)
        self.assertEqual((config.limits.header_timeout, config.limits.max_headers), (5.0, 50))
        self.assertEqual(config.cgi_timeout, 3.0)

    def test_wsgi_alone_serves_no_directory(self) -> None:
        options = tap.Options()
        options.parseOptions(["--wsgi", "app:main"])
        self.assertEqual(options.config.path, "")

    def test_bad_options(self) -> None:
        for argv in (["--max-body", "x"], ["--max-headers", "0"], ["--cgi-timeout", "-1"]):
            self.assertRaises(usage.UsageError, tap.Options().parseOptions, argv)

    def test_plugin_file_is_a_declaration(self) -> None:
        tree = ast.parse(PLUGIN_FILE.read_text())
        calls = [n.value for n in tree.body if isinstance(n, ast.Assign)]
        self.assertEqual(len(calls), 1)
        self.assertIsInstance(calls[0], ast.Call)

    def test_section_is_in_the_combined_daemon(self) -> None:
        self.assertEqual(combined.COMPONENTS["http"], "netproto_twisted.http.tap")
        context = DaemonContext(reactor, Path(self.mktemp()), TLSFiles(Path(), Path(), True))
        self.assertIsNone(tap.combined_service(tap.Config(enabled=False), context))


class _ServiceBase(TestCase):
    """The [http] section's services on loopback, with curl."""

    def setUp(self) -> None:
        if CURL is None:
            raise SkipTest("curl is not installed")
        self.data = Path(self.mktemp()).absolute()
        self.www = self.data / "www"
        self.www.mkdir(parents=True)
        (self.www / "index.html").write_text("<h1>home</h1>")
        self.context = DaemonContext(reactor, self.data, TLSFiles.resolve(self.data))

    async def start(self, config: tap.Config) -> dict[str, int]:
        service = tap.build_service(config, self.context)
        service.startService()
        self.addCleanup(service.stopService)
        ports = {}
        for child in service:
            if isinstance(child, EndpointsService):
                addresses = await child.when_listening()
                ports[child.name] = int(addresses[0][1].rpartition(":")[2])
        return ports


class ServiceTests(_ServiceBase):
    """Plain HTTP and HTTPS (HTTP/2 by ALPN), a mounted resource, the default directory."""

    async def test_http1_and_http2_with_curl_and_late_mounts(self) -> None:
        config = tap.Config(
            listen=("tcp:0:interface=127.0.0.1", "ssl:0:interface=127.0.0.1"), path=str(self.www)
        )
        ports = await self.start(config)
        # Another section (XML-RPC) hangs its resource after [http] was built.
        self.context.web_mounts["/RPC2"] = Hello()
        plain = await deferToThread(curl, "-i", f"http://127.0.0.1:{ports['http']}/")
        self.assertTrue(plain.stdout.startswith(b"HTTP/1.1 200 OK"), plain)
        self.assertTrue(plain.stdout.endswith(b"<h1>home</h1>"))
        h2 = await deferToThread(
            curl, "-ik", "--http2", f"https://127.0.0.1:{ports['https']}/RPC2"
        )
        self.assertTrue(h2.stdout.startswith(b"HTTP/2 200"), h2)
        self.assertTrue(h2.stdout.endswith(b"mounted /RPC2"))
        h1 = await deferToThread(curl, "-ik", "--http1.1", f"https://127.0.0.1:{ports['https']}/")
        self.assertTrue(h1.stdout.startswith(b"HTTP/1.1 200"), h1)

    async def test_default_path_is_the_data_www(self) -> None:
        (self.www / "index.html").write_text("<h1>data www</h1>")
        ports = await self.start(tap.Config(listen=("tcp:0:interface=127.0.0.1",)))
        reply = await deferToThread(curl, f"http://127.0.0.1:{ports['http']}/")
        self.assertEqual(reply.stdout, b"<h1>data www</h1>")


class DaemonTests(SynchronousTestCase):
    """``twistd -n netproto-http`` as users start it, with --open and BROWSER."""

    def test_serves_opens_the_browser_and_stops(self) -> None:
        if CURL is None:
            raise SkipTest("curl is not installed")
        cwd = Path(self.mktemp()).absolute()
        (cwd / "site").mkdir(parents=True)
        (cwd / "site" / "f.txt").write_text("file")
        opened = cwd / "opened"
        browser = cwd / "browser.py"
        browser.write_text(
            f"#!{sys.executable}\nimport sys\nopen({str(opened)!r}, 'w').write(sys.argv[1])\n"
        )
        browser.chmod(0o755)
        env = dict(os.environ, BROWSER=f"{browser} %s")
        daemon = Daemon(
            ["netproto-http", "--data-dir", "data", "--path", "site", "--open",
             "--access-log", "access.log", "--listen", "tcp:0:interface=127.0.0.1"],
            cwd,
            env=env,
        )  # fmt: skip
        self.addCleanup(daemon.stop, signal.SIGKILL)
        port = int(daemon.wait_for(r"http listening on tcp \S+:(\d+)").group(1))
        daemon.wait_for(r"opening http://127\.0\.0\.1:\d+/ in the browser")
        daemon.wait_for(r"the browser opened http://127\.0\.0\.1:\d+/")
        reply = curl("-i", f"http://127.0.0.1:{port}/f.txt")
        self.assertTrue(reply.stdout.endswith(b"\r\n\r\nfile"))
        self.assertIn(daemon.stop(signal.SIGTERM), (0, -signal.SIGTERM))
        self.assertEqual(opened.read_text(), f"http://127.0.0.1:{port}/")
        self.assertIn('"GET /f.txt HTTP/1.1" 200 4', (cwd / "access.log").read_text())
        self.assertNotIn("Traceback", daemon.output())

    def test_workers_share_the_sockets(self) -> None:
        if CURL is None:
            raise SkipTest("curl is not installed")
        cwd = Path(self.mktemp()).absolute()
        (cwd / "site").mkdir(parents=True)
        (cwd / "site" / "f.txt").write_text("file")
        daemon = Daemon(
            ["netproto-http", "--data-dir", "data", "--path", "site", "--workers", "2",
             "--listen", "tcp:0:interface=127.0.0.1", "--listen", "ssl:0:interface=127.0.0.1"],
            cwd,
        )  # fmt: skip
        self.addCleanup(daemon.stop, signal.SIGKILL)
        port = int(daemon.wait_for(r"http listening on tcp \S+:(\d+)").group(1))
        tls_port = int(daemon.wait_for(r"https listening on tcp \S+:(\d+)").group(1))
        daemon.wait_for(r"http-workers: 1 worker\(s\) ready")
        urls = [f"http://127.0.0.1:{port}/f.txt"] * 20 + [
            f"https://127.0.0.1:{tls_port}/f.txt"
        ] * 4
        reply = curl("-k", "--http2", *urls)
        self.assertEqual(reply.stdout, b"file" * 24)
        self.assertIn(daemon.stop(signal.SIGTERM), (0, -signal.SIGTERM))
        self.assertNotIn("Traceback", daemon.output())

    def test_workers_refused_in_the_combined_daemon(self) -> None:
        context = DaemonContext(reactor, Path(self.mktemp()), TLSFiles(Path(), Path(), True))
        with self.assertRaises(ConfigError):
            tap.combined_service(tap.Config(workers=2), context)


class BodyLimitTests(_ServiceBase):
    """The body limit over HTTP/1.1 and HTTP/2: 413, the body never buffered."""

    async def test_http1_and_http2(self) -> None:
        config = tap.Config(
            listen=("tcp:0:interface=127.0.0.1", "ssl:0:interface=127.0.0.1"),
            path=str(self.www),
            max_body=1000,
        )
        ports = await self.start(config)
        big = "x" * 5000
        plain = await deferToThread(
            curl, "-i", "--data-binary", big, f"http://127.0.0.1:{ports['http']}/"
        )
        self.assertTrue(plain.stdout.startswith(b"HTTP/1.1 413"), plain)
        h2 = await deferToThread(
            curl, "-ik", "--http2", "--data-binary", big, f"https://127.0.0.1:{ports['https']}/"
        )
        self.assertTrue(h2.stdout.startswith(b"HTTP/2 413"), h2)
        again = await deferToThread(curl, "-k", "--http2", f"https://127.0.0.1:{ports['https']}/")
        self.assertEqual(again.stdout, b"<h1>home</h1>")
        small = await deferToThread(
            curl,
            "-ik",
            "--http2",
            "--data-binary",
            "x" * 10,
            f"https://127.0.0.1:{ports['https']}/",
        )
        self.assertTrue(small.stdout.startswith(b"HTTP/2 405"), small)

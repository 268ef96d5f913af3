"""``twistd netproto-xmlrpc`` and the ``[xmlrpc]`` section of the combined daemon."""

from __future__ import annotations

import ast
import signal
import subprocess
import xmlrpc.client
from pathlib import Path

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted import tap as combined
from netproto_twisted.core.config import config_from_toml_text
from netproto_twisted.core.errors import ConfigError
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.xmlrpc import XMLRPCResource, tap
from tests.twistd import REPO, Daemon, twistd_argv

PLUGIN_FILE = REPO / "twisted_plugins" / "netproto_xmlrpc.py"
MODULE = "tests.xmlrpc.validator"


class OptionsTests(SynchronousTestCase):
    def test_options(self) -> None:
        options = tap.Options()
        options.parseOptions(
            ["--module", MODULE, "--path", "/api", "--allow-none", "--listen", "tcp:0"]
        )
        self.assertEqual(options.config.module, MODULE)
        self.assertEqual(options.config.path, "/api")
        self.assertEqual(options.config.listen, ("tcp:0",))
        self.assertTrue(options.config.allow_none)
        default = tap.Options()
        default.parseOptions(["--object", "tests.xmlrpc.validator:FUNCTIONS"])
        self.assertEqual(default.config.listen, tap.DEFAULT_LISTEN)

    def test_bad_options(self) -> None:
        for argv in (
            [],
            ["--module", MODULE, "--path", "RPC2"],
            ["--module", MODULE, "--max-body", "x"],
        ):
            self.assertRaises(usage.UsageError, tap.Options().parseOptions, argv)

    def test_load_object(self) -> None:
        self.assertEqual(
            tap.load_object("tests.xmlrpc.validator:FUNCTIONS")[0].__name__, "arrayOfStructsTest"
        )
        self.assertRaises(ConfigError, tap.load_object, "no.such.module")
        self.assertRaises(ConfigError, tap.load_object, "tests.xmlrpc.validator:nothing")

    def test_plugin_file_is_a_declaration(self) -> None:
        tree = ast.parse(PLUGIN_FILE.read_text())
        calls = [n.value for n in tree.body if isinstance(n, ast.Assign)]
        self.assertEqual(len(calls), 1)
        call = calls[0]
        assert isinstance(call, ast.Call)
        self.assertEqual(ast.unparse(call.func), "ServiceMaker")
        name, module = (ast.literal_eval(a) for a in call.args[:2])
        self.assertEqual((name, module), ("netproto-xmlrpc", "netproto_twisted.xmlrpc.tap"))


class CombinedTests(SynchronousTestCase):
    def test_section_mounts_on_the_web_server(self) -> None:
        from twisted.internet import reactor

        self.assertIn("xmlrpc", combined.COMPONENTS)
        config = config_from_toml_text(
            f'[xmlrpc]\nmodule = "{MODULE}"\npath = "/api"\nallow_none = true\n',
            {"xmlrpc": tap.Config},
        )["xmlrpc"]
        assert isinstance(config, tap.Config)
        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"[smtp]\nenabled = false\n[socket]\nenabled = false\n[pop3]\nenabled = false\n"
            f'[xmlrpc]\nmodule = "{MODULE}"\n'
        )
        svc = combined.build({"config": str(path), "data": self.mktemp()}, reactor)  # not started
        self.assertEqual([s for s in svc if s.name == "xmlrpc"], [])  # mounted, no port of its own
        resource = svc.context.web_mounts["/RPC2"]
        assert isinstance(resource, XMLRPCResource)
        self.assertIn("easyStructTest", resource.registry.list_methods())

    def test_own_listener_when_configured(self) -> None:
        from twisted.internet import reactor

        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "[smtp]\nenabled = false\n[socket]\nenabled = false\n[pop3]\nenabled = false\n"
            '[xmlrpc]\nlisten = ["tcp:8000:interface=127.0.0.1"]\n'
        )
        svc = combined.build({"config": str(path), "data": self.mktemp()}, reactor)
        [xmlrpc_service] = [s for s in svc if s.name == "xmlrpc"]
        [listener] = list(xmlrpc_service)  # type: ignore[call-overload]
        assert isinstance(listener, EndpointsService)
        self.assertEqual(listener.endpoints, ["tcp:8000:interface=127.0.0.1"])


class DaemonTests(SynchronousTestCase):
    """``twistd -n netproto-xmlrpc`` started as users start it, called by the stdlib client."""

    def test_serves_a_module(self) -> None:
        cwd = Path(self.mktemp()).absolute()
        cwd.mkdir(parents=True)
        daemon = Daemon(
            ["netproto-xmlrpc", "--data-dir", "data", "--module", MODULE,
             "--listen", "tcp:0:interface=127.0.0.1"],
            cwd,
            env={"PYTHONPATH": str(REPO)},
        )  # fmt: skip
        self.addCleanup(daemon.stop, signal.SIGKILL)
        port = int(daemon.wait_for(r"xmlrpc listening on tcp \S+:(\d+)").group(1))
        with xmlrpc.client.ServerProxy(f"http://127.0.0.1:{port}/RPC2") as proxy:
            self.assertEqual(proxy.easyStructTest({"moe": 1, "larry": 2, "curly": 3}), 6)
            self.assertIn("nestedStructTest", proxy.system.listMethods())
        self.assertIn(daemon.stop(signal.SIGTERM), (0, -signal.SIGTERM))
        self.assertNotIn("Traceback", daemon.output())

    def test_bad_module_is_one_line(self) -> None:
        result = subprocess.run(
            twistd_argv("-n", "--pidfile=", "netproto-xmlrpc", "--module", "no_such_module_x",
                        "--data-dir", self.mktemp(), "--listen", "tcp:0:interface=127.0.0.1"),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("netproto-xmlrpc", result.stderr + result.stdout)
        self.assertIn("no_such_module_x", result.stderr + result.stdout)
        self.assertNotIn("Traceback", result.stderr + result.stdout)

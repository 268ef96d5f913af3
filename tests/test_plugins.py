"""twistd finds our plugins, and the plugin file declares nothing but ServiceMakers."""

from __future__ import annotations

import ast
import subprocess

from twisted.trial.unittest import SynchronousTestCase

from tests.twistd import REPO, twistd_argv

PLUGIN_FILE = REPO / "twisted_plugins" / "netproto.py"
EXPECTED = {"netproto", "netproto-smtp", "netproto-socket"}


class PluginTests(SynchronousTestCase):
    def test_twistd_help_lists_plugins(self) -> None:
        result = subprocess.run(
            twistd_argv("--help"), capture_output=True, text=True, timeout=60, check=False
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        listed = {line.split()[0] for line in result.stdout.splitlines()
                  if line.startswith("    ") and line.split()}
        self.assertTrue(listed >= EXPECTED, result.stdout)

    def test_plugin_file_is_declarations_only(self) -> None:
        tree = ast.parse(PLUGIN_FILE.read_text())
        for node in tree.body:
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                continue  # docstring
            if isinstance(node, ast.ImportFrom):
                self.assertEqual(node.module, "twisted.application.service")
                continue
            self.assertIsInstance(node, ast.Assign, ast.dump(node))
            assert isinstance(node, ast.Assign)
            call = node.value
            self.assertIsInstance(call, ast.Call)
            assert isinstance(call, ast.Call)
            self.assertEqual(ast.unparse(call.func), "ServiceMaker")

    def test_every_plugin_module_exists(self) -> None:
        import importlib

        tree = ast.parse(PLUGIN_FILE.read_text())
        calls = [n.value for n in tree.body if isinstance(n, ast.Assign)]
        names = set()
        for call in calls:
            assert isinstance(call, ast.Call)
            name, module = (ast.literal_eval(a) for a in call.args[:2])
            names.add(name)
            mod = importlib.import_module(module)
            self.assertTrue(callable(mod.makeService), module)
            self.assertTrue(hasattr(mod, "Options"), module)
        self.assertEqual(names, EXPECTED)

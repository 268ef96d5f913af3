"""The wheel ships our twisted plugin file and nothing that would shadow Twisted."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

REPO = Path(__file__).resolve().parent.parent
_IGNORE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "_trial_temp*", "__pycache__",
    "docs", "bench", "tests", ".hypothesis", ".mypy_cache", ".ruff_cache", "netproto-data",
)


class WheelContentTests(SynchronousTestCase):
    def test_wheel_ships_plugin_and_no_twisted_init(self) -> None:
        tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, tmp, True)
        src = tmp / "src"
        shutil.copytree(REPO, src, ignore=_IGNORE)
        out = tmp / "wheel"
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
             "-q", "-w", str(out), str(src)],
            capture_output=True, text=True, timeout=300, check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        [wheel] = list(out.glob("netproto_twisted-*.whl"))
        names = set(zipfile.ZipFile(wheel).namelist())
        self.assertIn("twisted/plugins/netproto.py", names)
        self.assertIn("twisted/plugins/netproto_pop3.py", names)
        self.assertIn("twisted/plugins/netproto_http.py", names)
        self.assertNotIn("twisted/__init__.py", names)
        self.assertNotIn("twisted/plugins/__init__.py", names)
        self.assertIn("netproto_twisted/py.typed", names)
        self.assertIn("netproto_twisted/core/errors.py", names)
        self.assertFalse([n for n in names if n.startswith(("tests/", "bench/"))])
        # Every package directory of the source tree made it in (explicit package list).
        for init in (REPO / "netproto_twisted").rglob("__init__.py"):
            rel = init.relative_to(REPO).as_posix()
            self.assertIn(rel, names, f"{rel} missing: add its package to setup.cfg")
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        text = zipfile.ZipFile(wheel).read(entry_points).decode()
        self.assertIn("netproto = netproto_twisted.cli:main", text)

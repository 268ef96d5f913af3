"""tools.check_imports: import cycles and long modules, found by parsing alone."""

from __future__ import annotations

import io
import shutil
import tempfile
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tools import check_imports

REPO = Path(__file__).resolve().parent.parent


class SyntheticPackageTests(SynchronousTestCase):
    """The checker on small packages written to a temporary directory."""

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.root = self.tmp / "pkg"

    def write(self, files: dict[str, str]) -> Path:
        """Write ``{relative path: source}`` under the package root."""
        self.root.mkdir(exist_ok=True)
        (self.root / "__init__.py").touch()
        for name, source in files.items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source), encoding="utf-8")
        return self.root

    def run_main(self, *args: str) -> tuple[int, str]:
        out = io.StringIO()
        with redirect_stdout(out):
            status = check_imports.main([str(self.root), *args])
        return status, out.getvalue()

    def test_clean_package(self) -> None:
        self.write({
            "a.py": "from pkg import b\n",
            "b.py": "import os\n",
        })
        report = check_imports.check(self.root)
        self.assertTrue(report.ok)
        self.assertEqual(set(report.edges["pkg.a"]), {"pkg.b"})
        status, out = self.run_main()
        self.assertEqual(status, 0)
        self.assertIn("3 modules: 0 import cycle(s), 0 module(s) over 700 lines", out)

    def test_cycle_through_function_local_import(self) -> None:
        """A cycle hidden in a function body is still a cycle, printed as a path."""
        self.write({
            "a.py": "from pkg.b import thing\n",
            "b.py": """\
                thing = 1

                def later():
                    from pkg.c import other
                    return other
            """,
            "c.py": "import pkg.a\nother = 2\n",
        })
        report = check_imports.check(self.root)
        self.assertFalse(report.ok)
        [cycle] = report.cycles
        self.assertEqual([edge.source for edge in cycle], ["pkg.a", "pkg.b", "pkg.c"])
        self.assertEqual([edge.line for edge in cycle], [1, 4, 1])
        status, out = self.run_main()
        self.assertEqual(status, 1)
        self.assertIn("import cycle: pkg.a -> pkg.b -> pkg.c -> pkg.a", out)
        self.assertIn("pkg/b.py:4: imports pkg.c", out)

    def test_relative_imports_resolved(self) -> None:
        self.write({
            "sub/__init__.py": "from .x import y\n",
            "sub/x.py": "from .. import top\ny = 1\n",
            "top.py": "from .sub import x\n",
        })
        report = check_imports.check(self.root)
        self.assertEqual(set(report.edges["pkg.sub"]), {"pkg.sub.x"})
        self.assertEqual(set(report.edges["pkg.sub.x"]), {"pkg.top"})
        self.assertEqual(set(report.edges["pkg.top"]), {"pkg.sub", "pkg.sub.x"})
        [cycle] = report.cycles
        self.assertEqual([edge.source for edge in cycle], ["pkg.sub", "pkg.sub.x", "pkg.top"])

    def test_name_from_package_face_depends_on_the_face(self) -> None:
        """``from pkg.sub import Name`` (not a module) is an edge to ``pkg/sub/__init__``."""
        self.write({
            "sub/__init__.py": "from pkg.sub.impl import Name\n",
            "sub/impl.py": "from pkg.user import helper\nName = 1\n",
            "user.py": "from pkg.sub import Name\nhelper = 2\n",
        })
        report = check_imports.check(self.root)
        [cycle] = report.cycles
        self.assertEqual(
            [edge.source for edge in cycle], ["pkg.sub", "pkg.sub.impl", "pkg.user"]
        )

    def test_own_parent_package_is_not_an_edge(self) -> None:
        """A module importing its own package's names by full path adds no edge to the face."""
        self.write({
            "sub/__init__.py": "from pkg.sub.impl import Name\n",
            "sub/impl.py": "from pkg.errors import Error\nfrom pkg.sub import other\nName = 1\n",
            "sub/other.py": "import pkg.errors\n",
            "errors.py": "Error = Exception\n",
        })
        report = check_imports.check(self.root)
        self.assertEqual(set(report.edges["pkg.sub.impl"]), {"pkg.errors", "pkg.sub.other"})
        self.assertTrue(report.ok)

    def test_other_package_face_is_an_edge(self) -> None:
        """Importing ``pkg.sub.other`` from outside ``pkg.sub`` first runs ``pkg/sub/__init__``."""
        self.write({
            "sub/__init__.py": "from pkg.sub.impl import Name\n",
            "sub/impl.py": "from pkg.errors import Error\nName = 1\n",
            "sub/other.py": "",
            "errors.py": "from pkg.sub.other import *\nError = Exception\n",
        })
        report = check_imports.check(self.root)
        self.assertEqual(set(report.edges["pkg.errors"]), {"pkg.sub", "pkg.sub.other"})
        [cycle] = report.cycles
        self.assertEqual(
            [edge.source for edge in cycle], ["pkg.errors", "pkg.sub", "pkg.sub.impl"]
        )

    def test_type_checking_import_ignored(self) -> None:
        self.write({
            "a.py": "from pkg.b import thing\n",
            "b.py": """\
                from typing import TYPE_CHECKING
                import typing

                if TYPE_CHECKING:
                    from pkg.a import Foo
                if typing.TYPE_CHECKING:
                    import pkg.a
                else:
                    import pkg.c
                thing = 1
            """,
            "c.py": "",
        })
        report = check_imports.check(self.root)
        self.assertTrue(report.ok)
        self.assertEqual(set(report.edges["pkg.b"]), {"pkg.c"})
        strict = check_imports.check(self.root, type_checking=True)
        [cycle] = strict.cycles
        self.assertEqual({edge.source for edge in cycle}, {"pkg.a", "pkg.b"})
        self.assertEqual(self.run_main()[0], 0)
        self.assertEqual(self.run_main("--type-checking")[0], 1)

    def test_self_import_is_a_cycle(self) -> None:
        self.write({"a.py": "def f():\n    import pkg.a\n"})
        [cycle] = check_imports.check(self.root).cycles
        self.assertEqual([(e.source, e.target) for e in cycle], [("pkg.a", "pkg.a")])

    def test_long_module_flagged(self) -> None:
        self.write({
            "short.py": "x = 1\n" * 700,
            "long.py": "x = 1\n" * 701,
        })
        report = check_imports.check(self.root)
        self.assertEqual(report.long_modules, [("pkg.long", 701)])
        status, out = self.run_main()
        self.assertEqual(status, 1)
        self.assertIn("long module: pkg/long.py has 701 lines (limit 700)", out)
        self.assertEqual(check_imports.check(self.root, max_lines=701).long_modules, [])

    def test_directory_without_init_is_skipped(self) -> None:
        self.write({"data/script.py": "from pkg import a\n", "a.py": "import pkg.data\n"})
        self.assertNotIn("pkg.data.script", check_imports.check(self.root).modules)

    def test_not_a_package(self) -> None:
        self.tmp.joinpath("plain").mkdir()
        with (
            redirect_stdout(io.StringIO()),
            redirect_stderr(io.StringIO()),
            self.assertRaises(SystemExit) as raised,
        ):
            check_imports.main([str(self.tmp / "plain")])
        self.assertEqual(raised.exception.code, 2)


class RealTreeTests(SynchronousTestCase):
    """The project's own package."""

    def test_netproto_twisted_has_no_cycle_and_no_long_module(self) -> None:
        root = REPO / "netproto_twisted"
        report = check_imports.check(root)
        self.assertTrue(report.ok, "\n".join(check_imports.format_report(report, root, 700)))

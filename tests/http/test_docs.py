"""The examples of docs/http_server.rst, run as they are written there."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase, TestCase

DOCS = Path(__file__).resolve().parents[2] / "docs" / "http_server.rst"
_BLOCK = re.compile(
    r"^\.\. code-block:: python\n   :name: (example-[\w-]+)\n\n((?:   .*\n|\n)+)", re.M
)


def _examples() -> dict[str, str]:
    text = DOCS.read_text(encoding="utf-8")
    return {m.group(1): textwrap.dedent(m.group(2)) for m in _BLOCK.finditer(text)}


def _load() -> dict[str, type]:
    found: dict[str, type] = {}
    for name, source in _examples().items():
        namespace: dict[str, Any] = {"__name__": __name__}
        exec(compile(source, f"{DOCS}:{name}", "exec"), namespace)
        for key, value in namespace.items():
            is_test = isinstance(value, type) and issubclass(value, SynchronousTestCase)
            if is_test and value not in (TestCase, SynchronousTestCase):
                found[key] = value
    return found


_DOC_TESTS = _load() if DOCS.exists() else {}
globals().update(_DOC_TESTS)


class DocExamplesTests(SynchronousTestCase):
    def test_examples_are_collected(self) -> None:
        self.assertIn("example-serve-http", _examples())
        self.assertIn("DemoAppTests", _DOC_TESTS)

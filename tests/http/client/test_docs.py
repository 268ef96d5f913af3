"""The examples of docs/http_client.rst, run as they are written there."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase, TestCase

DOCS = Path(__file__).resolve().parents[3] / "docs" / "http_client.rst"


def _doc_examples(path: Path) -> dict[str, str]:
    """The ``.. code-block:: python`` blocks of the page named ``example-*``."""
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(
        r"^\.\. code-block:: python\n   :name: (example-[\w-]+)\n\n((?:   .*\n|\n)+)", re.M
    )
    return {m.group(1): textwrap.dedent(m.group(2)) for m in pattern.finditer(text)}


def _load() -> dict[str, type]:
    found: dict[str, type] = {}
    for name, source in _doc_examples(DOCS).items():
        namespace: dict[str, Any] = {"__name__": __name__}
        exec(compile(source, f"{DOCS}:{name}", "exec"), namespace)
        for key, value in namespace.items():
            if (
                isinstance(value, type)
                and issubclass(value, SynchronousTestCase)
                and value not in (TestCase, SynchronousTestCase)
            ):
                found[key] = value
    return found


_DOC_TESTS = _load() if DOCS.exists() else {}
globals().update(_DOC_TESTS)


class DocExamplesTests(SynchronousTestCase):
    def test_examples_are_collected(self) -> None:
        if not DOCS.exists():
            self.skipTest(f"{DOCS} is not in this tree")
        self.assertEqual(
            set(_doc_examples(DOCS)),
            {"example-opener", "example-http2", "example-robots", "example-stub-opener"},
        )
        self.assertEqual(
            set(_DOC_TESTS),
            {
                "OpenerExampleTests",
                "HTTP2ExampleTests",
                "RobotsExampleTests",
                "StubOpenerExampleTests",
            },
        )

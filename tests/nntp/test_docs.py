"""The examples of docs/nntp.rst marked ``:name: example-*``, run as they are written there."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase, TestCase

DOCS = Path(__file__).resolve().parents[2] / "docs" / "nntp.rst"
_BLOCK = re.compile(
    r"^\.\. code-block:: python\n   :name: (example-[\w-]+)\n\n((?:   .*\n|\n)+)", re.M
)


def _examples() -> dict[str, str]:
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else ""
    return {m.group(1): textwrap.dedent(m.group(2)) for m in _BLOCK.finditer(text)}


def _collect() -> dict[str, type]:
    found: dict[str, type] = {}
    for name, source in _examples().items():
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


_DOC_TESTS = _collect()
globals().update(_DOC_TESTS)


class DocExamplesTests(SynchronousTestCase):
    def test_examples_are_collected(self) -> None:
        self.assertIn("example-news-server", _examples())
        self.assertIn("NewsDigestTests", _DOC_TESTS)

"""The guide's example test (docs/ftp.rst) runs as part of the suite."""

from __future__ import annotations

import re
import textwrap

from tests.twistd import REPO

GUIDE = REPO / "docs" / "ftp.rst"


def _example() -> str:
    for block in re.finditer(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)",
                             GUIDE.read_text()):  # fmt: skip
        code = textwrap.dedent(block.group(1))
        if code.startswith("# example: tests for an application"):
            return code
    raise AssertionError("docs/ftp.rst has no example test")


_namespace: dict[str, object] = {"__name__": __name__}
exec(compile(_example(), str(GUIDE), "exec"), _namespace)  # our own guide
UploadTests = _namespace["UploadTests"]

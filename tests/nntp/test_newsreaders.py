"""Real Debian news fetchers in batch mode against our server: ``suck`` and ``slrnpull``.

``suck`` pulls every article of a group into an rnews batch file;
``slrnpull`` pulls them into its spool (one file per article, an
``.overview``).  Each article must arrive byte for byte as the server
stores it (LF line ends on their side): leading dots, a lone dot in the
text, a long line, 8-bit UTF-8 and a folded header included.  Skipped, with
the reason, when the program is not installed (``apt-get install suck
slrnpull``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from netproto_twisted.testing.nntp import NewsServer, start_news_server

SUCK = shutil.which("suck")
SLRNPULL = shutil.which("slrnpull")

#: Bodies that a careless server or client mangles.
BODIES = [
    "plain text\n",
    ".leading dot\n..two dots\n.\nlone dot above\n",
    "x" * 900 + "\n",
    "caf\u00e9 na\u00efve \u2013 \u65e5\u672c\u8a9e\n",
    "\nblank first line\n\n\nblank lines\n",
]


def _unix(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n")


class FetcherTests(TestCase):
    async def serve(self) -> tuple[NewsServer, dict[str, bytes], dict[int, bytes]]:
        """A server with the tricky articles; by Message-ID and by number, as stored."""
        news = await start_news_server(reactor, groups={"comp.test": "Tests", "alt.empty": ""})
        self.addCleanup(news.stop)
        for i, body in enumerate(BODIES):
            await news.add_article(
                "comp.test", subject=f"article {i}", body=body,
                headers={"X-Folded": "first part\r\n\tsecond part"},
            )  # fmt: skip
        by_id, by_number = {}, {}
        for number in range(1, len(BODIES) + 1):
            article = await news.store.article("comp.test", number)
            assert article is not None
            by_id[article.message_id] = article.data
            by_number[number] = article.data
        return news, by_id, by_number

    async def execute(self, argv: list[str], cwd: Path) -> bytes:
        env = {"PATH": os.environ.get("PATH", "")}
        out, err, code = await getProcessOutputAndValue(argv[0], argv[1:], env=env, path=str(cwd))
        self.assertEqual(code, 0, (out + err)[-2000:])
        return out + err

    async def test_suck_batch(self) -> None:
        if SUCK is None:
            self.skipTest("suck is not installed (apt-get install suck)")
        news, by_id, _ = await self.serve()
        work = Path(self.mktemp())
        for sub in ("data", "tmp", "msgs"):
            (work / sub).mkdir(parents=True)
        (work / "data" / "sucknewsrc").write_text("comp.test 0\nalt.empty 0\n")
        address = f"{news.host}:{news.port}"
        await self.execute([SUCK, address, "-dd", "data", "-dt", "tmp", "-dm", "msgs", "-br",
                        "batch", "-H", "-K", "-M", "-q"], work)  # fmt: skip
        batch = (work / "batch").read_bytes()
        got: dict[str, bytes] = {}
        while batch:
            header, _, rest = batch.partition(b"\n")
            self.assertTrue(header.startswith(b"#! rnews "), header)
            size = int(header.split()[2])
            article, batch = rest[:size], rest[size:]
            mid = next(line for line in article.split(b"\n") if line.startswith(b"Message-ID: "))
            got[mid[12:].decode()] = article
        self.assertEqual(sorted(got), sorted(by_id))
        for mid, data in by_id.items():
            self.assertEqual(got[mid], _unix(data), mid)
        # suck's new high-water marks, from GROUP.
        self.assertEqual((work / "tmp" / "suck.newrc").read_text().split("\n")[:2],
                         ["comp.test 5", "alt.empty 0"])  # fmt: skip

    async def test_slrnpull_spool(self) -> None:
        if SLRNPULL is None:
            self.skipTest("slrnpull is not installed (apt-get install slrnpull)")
        news, _, by_number = await self.serve()
        root = Path(self.mktemp()).absolute()
        root.mkdir(parents=True)
        (root / "slrnpull.conf").write_text("default 100 14 0\ncomp.test\n")
        await self.execute([SLRNPULL, "-d", str(root), "-h", f"{news.host}:{news.port}",
                        "--no-post"], root)  # fmt: skip
        spool = root / "news" / "comp" / "test"
        numbers = sorted(int(p.name) for p in spool.iterdir() if p.name.isdigit())
        self.assertEqual(numbers, sorted(by_number))
        for number, data in by_number.items():
            self.assertEqual((spool / str(number)).read_bytes(), _unix(data), number)
        overview = (spool / ".overview").read_text(encoding="utf-8").splitlines()
        self.assertEqual(len(overview), len(BODIES))
        self.assertIn("article 3", overview[3])

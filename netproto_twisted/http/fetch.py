"""``python -m netproto_twisted.http.fetch URL...``: download politely, with progress, resuming.

Each URL is saved under ``--output-dir`` (the last path segment names the
file, ``index.html`` when there is none).  A partial ``<file>.part`` from an
earlier run is continued with a ``Range`` request.  robots.txt is obeyed
(``--ignore-robots`` to skip it), at most ``--per-host`` downloads run per
host, ``--delay`` seconds apart.  Progress goes to standard error; the exit
status is 0 when every URL was saved, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

from twisted.internet.defer import DeferredList, ensureDeferred

from netproto_twisted.http.client.build import build_opener
from netproto_twisted.http.client.errors import URLError
from netproto_twisted.http.client.polite import DownloadResult, PoliteFetcher, Progress

__all__ = ["add_parser", "main", "parse_args", "target_name"]


def target_name(url: str) -> str:
    """The file name a URL is saved under."""
    name = os.path.basename(unquote(urlsplit(url).path)) or "index.html"
    return name.replace(os.sep, "_") if name not in (".", "..") else "index.html"


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("urls", nargs="+", metavar="URL")
    p.add_argument("-o", "--output-dir", default=".", help="where to save (default: .)")
    p.add_argument("--per-host", type=int, default=2, help="downloads per host at once (2)")
    p.add_argument("--delay", type=float, default=0.5, help="seconds between starts per host")
    p.add_argument("--user-agent", default="netproto-fetch/0.1")
    p.add_argument("--ignore-robots", action="store_true", help="do not read robots.txt")
    p.add_argument("--no-resume", action="store_true", help="start over even if a .part exists")
    p.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    p.add_argument("--ca-file", help="trust only these CA certificates (PEM)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds without data (60)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(prog="python -m netproto_twisted.http.fetch", description=__doc__)
    _add_arguments(p)
    return p.parse_args(argv)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``netproto fetch URL...``: the same downloads as ``python -m ...http.fetch``."""
    p = subparsers.add_parser(
        "fetch",
        help="download URLs politely, with progress and resumption",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(p)
    p.set_defaults(func=_fetch)


class ProgressBar:
    """A one-line progress display per download on a terminal stream."""

    def __init__(self, stream: TextIO, quiet: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.last = 0.0

    def __call__(self, p: Progress) -> None:
        now = time.monotonic()
        if self.quiet or now - self.last < 0.1:
            return
        self.last = now
        self.stream.write("\r" + self.line(p))
        self.stream.flush()

    @staticmethod
    def line(p: Progress) -> str:
        """The text of one progress line."""
        name = target_name(p.url)[:30]
        if p.total:
            frac = min(1.0, p.received / p.total)
            bar = "#" * int(frac * 30)
            return f"{name:30} [{bar:30}] {frac:6.1%} {p.received:>12,} B"
        return f"{name:30} {p.received:>12,} B"

    def finished(self, text: str) -> None:
        """Print a final line for one URL."""
        if not self.quiet:
            self.stream.write("\r" + text.ljust(79) + "\n")
            self.stream.flush()


async def run(reactor: Any, args: argparse.Namespace, err: TextIO = sys.stderr) -> int:
    """Download every URL of ``args``; return the exit status."""
    opener = build_opener(
        reactor=reactor,
        verify=not args.insecure,
        ca_file=args.ca_file,
        idle_timeout=args.timeout,
    )
    fetcher = PoliteFetcher(
        opener,
        reactor=reactor,
        per_host=args.per_host,
        delay=args.delay,
        robots=not args.ignore_robots,
        user_agent=args.user_agent,
    )
    bar = ProgressBar(err, args.quiet)
    os.makedirs(args.output_dir, exist_ok=True)
    failures = 0

    async def one(url: str) -> None:
        nonlocal failures
        path = os.path.join(args.output_dir, target_name(url))
        try:
            result: DownloadResult = await fetcher.download(
                url, path, progress=bar, resume=not args.no_resume
            )
        except URLError as e:
            failures += 1
            bar.finished(f"{url}: {e}")
            if args.quiet:
                err.write(f"{url}: {e}\n")
            return
        resumed = f" (resumed at {result.resumed_from:,})" if result.resumed_from else ""
        bar.finished(f"{path}: {result.size:,} bytes{resumed}")

    await DeferredList([ensureDeferred(one(u)) for u in args.urls])
    await opener.close()
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command-line entry; runs the reactor until every download ends."""
    return _fetch(parse_args(argv))


def _fetch(args: argparse.Namespace) -> int:
    from twisted.internet.task import react

    status = [1]

    async def go(reactor: Any) -> None:
        status[0] = await run(reactor, args)

    try:
        react(lambda r: ensureDeferred(go(r)), [])
    except SystemExit as e:
        if e.code not in (0, None):
            return int(e.code) if isinstance(e.code, int) else 1
    return status[0]


if __name__ == "__main__":
    sys.exit(main())

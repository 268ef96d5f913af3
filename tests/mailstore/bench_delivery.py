"""Measure durable Maildir deliveries per second (5 KB messages), sequential and concurrent.

Run: ``python -m tests.mailstore.bench_delivery [--count N] [--concurrency C] [--dir D]``
from the repository root.  Each delivery streams 5 KB into ``tmp/``, then
commit() fsyncs the file, links it into ``new/`` and waits for a (grouped)
fsync of ``new/``.  Prints messages/s and how many directory fsyncs served
how many commits.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

from twisted.internet import defer, task
from twisted.python.threadpool import ThreadPool

from netproto_twisted.mailstore import MaildirStore
from netproto_twisted.mailstore.fsops import FsOps

BODY = (b"Subject: bench\r\n\r\n" + b"x" * 78 + b"\r\n") * 51  # ~5 KB


async def _deliver_n(store: MaildirStore, n: int) -> None:
    for _ in range(n):
        writer = store.deliver("bench")
        writer.write(BODY)
        await writer.commit()


async def _run(reactor: Any, args: argparse.Namespace) -> None:
    pool = ThreadPool(minthreads=0, maxthreads=args.threads)
    pool.start()
    try:
        for concurrency in (1, args.concurrency):
            rates, ratios = [], []
            for _ in range(args.runs):
                base = tempfile.mkdtemp(prefix="mailbench", dir=args.dir)
                try:
                    store = MaildirStore(base, reactor, pool, fs=FsOps(fsync=not args.no_fsync))
                    await store.create_folder("bench", "INBOX")
                    per = args.count // concurrency
                    start = time.perf_counter()
                    await defer.gatherResults(
                        [defer.Deferred.fromCoroutine(_deliver_n(store, per))
                         for _ in range(concurrency)]
                    )
                    elapsed = time.perf_counter() - start
                    syncer = store.syncer(os.path.join(base, "bench", "new"))
                    rates.append(per * concurrency / elapsed)
                    ratios.append(syncer.requests / max(syncer.fsyncs, 1))
                finally:
                    shutil.rmtree(base, ignore_errors=True)
            sys.stdout.write(
                f"concurrency {concurrency:>3}: {statistics.median(rates):8.0f} msg/s "
                f"(median of {args.runs}; runs {', '.join(f'{r:.0f}' for r in rates)}); "
                f"commits per dir fsync {statistics.median(ratios):.1f}\n"
            )
    finally:
        pool.stop()


def main() -> None:
    """Parse arguments and run the benchmark on the global reactor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None, help="parent directory (file system to test)")
    parser.add_argument("--no-fsync", action="store_true")
    args = parser.parse_args()
    task.react(lambda reactor: defer.Deferred.fromCoroutine(_run(reactor, args)))


if __name__ == "__main__":
    main()

"""Measure durable Maildir deliveries per second (5 KB messages), sequential and concurrent.

Run: ``python -m tests.mailstore.bench_delivery [--count N] [--concurrency C]
[--dir D] [--sync fs|file]`` from the repository root (both sync modes by
default).  Each delivery writes 5 KB and commits through the store's group
committer (``core.durable``).  Prints messages/s, the process's CPU per
message and how many messages shared each committer round.  Each run's
directory is moved aside and deleted only at the end: deleting thousands of
files between runs slows the next run's file creation on some file systems.
"""

from __future__ import annotations

import argparse
import itertools
import resource
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

from twisted.internet import defer, task
from twisted.python.threadpool import ThreadPool

from netproto_twisted.core.durable import GroupCommitter, syncfs_supported
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
    trash = tempfile.mkdtemp(prefix="mailbench", dir=args.dir)
    modes = [args.sync] if args.sync else (["fs", "file"] if syncfs_supported() else ["file"])
    try:
        for mode, concurrency in itertools.product(modes, (1, args.concurrency)):
            rates, cpus, per_round = [], [], []
            for _ in range(args.runs):
                base = tempfile.mkdtemp(prefix="run", dir=trash)
                store = MaildirStore(base, reactor, pool, fs=FsOps(fsync=not args.no_fsync),
                                     sync=mode)
                await store.create_folder("bench", "INBOX")
                per = args.count // concurrency
                before = resource.getrusage(resource.RUSAGE_SELF)
                start = time.perf_counter()
                await defer.gatherResults(
                    [defer.Deferred.fromCoroutine(_deliver_n(store, per))
                     for _ in range(concurrency)]
                )
                elapsed = time.perf_counter() - start
                after = resource.getrusage(resource.RUSAGE_SELF)
                committer = store.committer
                assert isinstance(committer, GroupCommitter)
                await committer.stop()
                cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                rates.append(per * concurrency / elapsed)
                cpus.append(cpu / (per * concurrency) * 1e6)
                per_round.append(committer.committed / max(committer.rounds, 1))
            sys.stdout.write(
                f"{mode:>4} concurrency {concurrency:>3}: {statistics.median(rates):8.0f} msg/s "
                f"(median of {args.runs}; runs {', '.join(f'{r:.0f}' for r in rates)}); "
                f"CPU {statistics.median(cpus):.0f} us/msg; "
                f"messages per committer round {statistics.median(per_round):.1f}\n"
            )
    finally:
        pool.stop()
        shutil.rmtree(trash, ignore_errors=True)


def main() -> None:
    """Parse arguments and run the benchmark on the global reactor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None, help="parent directory (file system to test)")
    parser.add_argument("--no-fsync", action="store_true")
    parser.add_argument("--sync", choices=("fs", "file"), default=None,
                        help="the committer's mode (default: both where syncfs works)")
    args = parser.parse_args()
    task.react(lambda reactor: defer.Deferred.fromCoroutine(_run(reactor, args)))


if __name__ == "__main__":
    main()

"""Run a Python script under a garbage-collector counter: time in the collector, objects found.

A reference cycle left by every request makes Python's cyclic collector a
good part of a server's or a client's CPU time, and cProfile does not show
it (it charges the collector to whichever call happens to allocate).  This
wrapper runs a script (``twistd`` included) with a ``gc.callbacks`` timer
and prints, on exit and on SIGUSR1, the CPU time spent collecting and the
number of objects the collector freed::

    python bench/gc_count.py /path/to/venv/bin/twistd -n netproto-http --path www
    kill -USR1 <pid>      # before and after a load: the difference is the load's
    GC_SAVEALL=1 python bench/gc_count.py bench/xmlrpc.py --client-row ours --url ...

A process that leaves no cycle per request collects nothing during a load
(the figure stays where start-up left it).  With ``GC_SAVEALL=1``, the exit
report also counts the uncollected garbage by type (``gc.DEBUG_SAVEALL``),
which names what a cycle is made of.  Under twistd, the report goes to the
log (twistd redirects stderr).
"""

from __future__ import annotations

import atexit
import collections
import gc
import os
import runpy
import signal
import sys
import time
from typing import Any

_spent = 0.0
_started = 0.0
_collected = 0
_t0 = time.process_time()


def _callback(phase: str, info: dict[str, Any]) -> None:
    global _spent, _started, _collected
    if phase == "start":
        _started = time.process_time()
    else:
        _spent += time.process_time() - _started
        _collected += info.get("collected", 0)


def report(*_: object) -> None:
    """Write the figures so far to stderr."""
    total = time.process_time() - _t0
    share = 100 * _spent / total if total else 0.0
    sys.stderr.write(
        f"GC: {_spent * 1e3:.0f} ms of {total * 1e3:.0f} ms CPU ({share:.1f}%), "
        f"collected {_collected} objects\n"
    )


def _at_exit() -> None:
    report()
    if os.environ.get("GC_SAVEALL"):
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        kinds = collections.Counter(type(o).__qualname__ for o in gc.garbage)
        sys.stderr.write(f"GC garbage by type: {kinds.most_common(40)}\n")


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    gc.callbacks.append(_callback)
    atexit.register(_at_exit)
    signal.signal(signal.SIGUSR1, report)
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()

"""Checking that finished requests leave nothing to the cyclic garbage collector."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

from twisted.trial.unittest import SynchronousTestCase


@contextlib.contextmanager
def collector_finds_nothing(test: SynchronousTestCase) -> Iterator[None]:
    """Run the block with the collector off, then assert ``gc.collect()`` finds nothing.

    Whatever the block made and dropped must have been freed by refcounting
    alone: an object cycle per request leaves every request to the
    collector, whose passes then cost a good part of the CPU time.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
    test.assertEqual(gc.collect(), 0)

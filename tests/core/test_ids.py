"""Tests for netproto_twisted.core.ids: RFC 9562 UUIDv7."""

from __future__ import annotations

import os
import re
import threading

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from netproto_twisted.core.ids import RandomPool, UUID7Generator, message_id, uuid7


class UUID7Tests(SynchronousTestCase):
    def test_layout(self) -> None:
        gen = UUID7Generator(clock_ms=lambda: 0x0123456789AB)
        u = gen()
        self.assertEqual(u.version, 7)
        self.assertEqual(u.variant, "specified in RFC 4122")
        self.assertEqual(u.int >> 80, 0x0123456789AB)  # 48-bit unix_ts_ms

    def test_rfc9562_example_timestamp(self) -> None:
        # RFC 9562 appendix A.6: 2022-02-22 14:22:22 -05:00 -> 0x017F22E279B0.
        gen = UUID7Generator(clock_ms=lambda: 1645557742000)
        self.assertTrue(str(gen()).startswith("017f22e2-79b0-7"))

    def test_monotonic_within_one_millisecond(self) -> None:
        gen = UUID7Generator(clock_ms=lambda: 1000)
        ids = [gen() for _ in range(10_000)]  # overflows the 12-bit counter several times
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(set(ids)), len(ids))

    def test_clock_going_backwards_stays_monotonic(self) -> None:
        times = iter([5000, 5000, 4000, 3000, 5001])
        gen = UUID7Generator(clock_ms=lambda: next(times))
        ids = [gen() for _ in range(5)]
        self.assertEqual(ids, sorted(ids))

    @given(st.lists(st.integers(min_value=0, max_value=2**48 - 1), min_size=1, max_size=50))
    def test_monotonic_for_any_clock(self, clock: list[int]) -> None:
        it = iter(clock)
        gen = UUID7Generator(clock_ms=lambda: next(it))
        ids = [gen() for _ in clock]
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(len(set(ids)), len(ids))
        self.assertTrue(all(u.version == 7 for u in ids))

    def test_threads_get_unique_ids(self) -> None:
        out: list[object] = []
        lock = threading.Lock()

        def work() -> None:
            mine = [uuid7() for _ in range(2000)]
            with lock:
                out.extend(mine)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(set(out)), 8000)

    def test_message_id(self) -> None:
        self.assertRegex(message_id("example.org"), re.compile(r"^<[0-9a-f]{32}@example\.org>$"))


class RandomPoolTests(SynchronousTestCase):
    def test_reads_a_block_at_a_time(self) -> None:
        reads: list[int] = []

        def read(n: int) -> bytes:
            reads.append(n)
            return (bytes(range(256)) * (n // 256 + 1))[:n]

        pool = RandomPool(read, size=512)
        taken = [pool(8) for _ in range(64)]  # exactly one block
        self.assertEqual(reads, [512])
        self.assertEqual(b"".join(taken), bytes(range(256)) * 2)
        pool(8)
        self.assertEqual(reads, [512, 512])

    def test_larger_than_a_block(self) -> None:
        pool = RandomPool(lambda n: b"x" * n, size=16)
        self.assertEqual(pool(40), b"x" * 40)

    def test_forked_child_starts_afresh(self) -> None:
        if not hasattr(os, "fork"):
            raise SkipTest("no fork here")
        pool = RandomPool()
        pool(8)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its next bytes must not be the parent's
            try:
                os.write(write, pool(16))
            finally:
                os._exit(0)
        os.close(write)
        child = os.read(read, 16)
        os.close(read)
        os.waitpid(pid, 0)
        self.assertNotEqual(child, pool(16))

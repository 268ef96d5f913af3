"""Identifiers: RFC 9562 UUIDv7, monotonic within a millisecond.

Used for queue ids, Message-IDs and session ids: they sort by creation time,
so a directory listing of a spool is already in arrival order.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable

__all__ = ["RandomPool", "UUID7Generator", "message_id", "uuid7"]

_RAND_A_MAX = 0xFFF
_POOL_SIZE = 4096


class RandomPool:
    """``os.urandom`` read a block at a time: one system call per ~400 ids, not one per id.

    Not thread-safe on its own (the generator calls it under its lock).  A
    forked child drops the block it inherited, so parent and child never
    hand out the same bytes.
    """

    def __init__(self, read: Callable[[int], bytes] = os.urandom, size: int = _POOL_SIZE) -> None:
        self._read = read
        self._size = size
        self._block = b""
        self._pos = 0
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._drop)

    def _drop(self) -> None:
        self._block, self._pos = b"", 0

    def __call__(self, n: int) -> bytes:
        """Return ``n`` random bytes."""
        pos = self._pos
        end = pos + n
        if end > len(self._block):
            self._block = self._read(max(self._size, n))
            pos, end = 0, n
        self._pos = end
        return self._block[pos:end]


class UUID7Generator:
    """Generate UUIDv7 values that strictly increase, even within one millisecond.

    RFC 9562 section 6.2, method 1: the 12-bit ``rand_a`` field is a counter
    seeded randomly each millisecond; when it would overflow, the timestamp is
    advanced by one millisecond (so ids stay unique and ordered even if the
    clock steps back).
    """

    def __init__(
        self,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        random_bytes: Callable[[int], bytes] | None = None,
    ) -> None:
        self._clock_ms = clock_ms
        self._random = random_bytes if random_bytes is not None else RandomPool()
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def __call__(self) -> uuid.UUID:
        """Return the next UUIDv7."""
        with self._lock:
            now = self._clock_ms()
            if now > self._last_ms:
                self._last_ms = now
                # Seed with the top bit clear, leaving room for >= 2048 ids this ms.
                self._counter = int.from_bytes(self._random(2), "big") & 0x7FF
            else:
                self._counter += 1
                if self._counter > _RAND_A_MAX:
                    self._last_ms += 1
                    self._counter = int.from_bytes(self._random(2), "big") & 0x7FF
            ms, counter = self._last_ms, self._counter
            rand_b = int.from_bytes(self._random(8), "big") & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80
        value |= 0x7 << 76
        value |= counter << 64
        value |= 0b10 << 62
        value |= rand_b
        return uuid.UUID(int=value)


uuid7 = UUID7Generator()
"""The process-wide UUIDv7 generator: ``uuid7()`` returns a new :class:`uuid.UUID`."""


def message_id(domain: str) -> str:
    """Return an RFC 5322 Message-ID such as ``<0190...@example.org>``."""
    return f"<{uuid7().hex}@{domain}>"

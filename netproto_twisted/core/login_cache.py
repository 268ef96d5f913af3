"""A short-lived memory of passwords that were just verified, so a repeat login skips PBKDF2.

Checking a plain password against the password file costs one PBKDF2 run
(100,000 iterations: tens of milliseconds of CPU).  A mail client that
opens five IMAP connections, a test suite that logs in a hundred times, an
FTP mirror with many parallel sessions: each pays it again for the same
right password.  :class:`VerifiedPasswordCache` remembers, per user, an
HMAC-SHA256 of the password that last succeeded (under a random key that
lives only in this process), for ``ttl`` seconds.  A login whose password
matches the remembered digest, for the same stored record, succeeds
without PBKDF2; anything else is checked the slow way.

What it does not weaken:

* **Wrong passwords are never remembered**, and a miss always costs the full
  PBKDF2 run, so guessing is exactly as slow as without the cache (and the
  failed-login penalty of :mod:`~netproto_twisted.core.login_delay` still
  applies before any check).
* **A changed password ends the entry at once**: the entry is bound to the
  user's stored key, so after ``netproto user add`` (or a removal) the old
  password no longer matches, cached or not.
* **Bounded**: at most ``max_entries`` users (least recently used dropped),
  each entry forgotten after ``ttl`` seconds.

The trade-off, as with Dovecot's auth cache: someone who can read this
process's memory finds, for recently logged-in users, a digest that is
fast to test guesses against (HMAC-SHA256 with the key also in memory)
instead of PBKDF2.  ``login_cache_ttl = 0`` in a server's limits turns the
cache off.
"""

from __future__ import annotations

import hmac
import os
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["DEFAULT_MAX_ENTRIES", "VerifiedPasswordCache"]

#: Users remembered at most (each entry is about 200 bytes).
DEFAULT_MAX_ENTRIES = 10_000


class VerifiedPasswordCache:
    """Remember for ``ttl`` seconds which password last succeeded for each user (see the module).

    :param ttl: seconds an entry lives; ``0`` disables the cache.
    :param clock: a function returning seconds (default :func:`time.monotonic`).
    """

    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl < 0 or max_entries < 1:
            raise ValueError("ttl must be >= 0 and max_entries >= 1")
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._key = os.urandom(32)
        # name -> (expiry, stored key of the record verified, digest of the password)
        self._entries: OrderedDict[str, tuple[float, bytes, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def enabled(self) -> bool:
        """Whether anything is remembered at all (``ttl > 0``)."""
        return self.ttl > 0

    def _digest(self, name: str, password: str) -> bytes:
        message = name.encode("utf-8") + b"\0" + password.encode("utf-8", "surrogatepass")
        return hmac.digest(self._key, message, "sha256")

    def matches(self, name: str, stored_key: bytes, password: str) -> bool:
        """Tell whether *password* is the one that last succeeded for *name*'s current record."""
        entry = self._entries.get(name)
        if entry is None:
            return False
        expiry, key, digest = entry
        if expiry <= self.clock() or not hmac.compare_digest(key, stored_key):
            del self._entries[name]
            return False
        if not hmac.compare_digest(digest, self._digest(name, password)):
            return False
        self._entries.move_to_end(name)
        return True

    def remember(self, name: str, stored_key: bytes, password: str) -> None:
        """Record that *password* was just verified for *name*'s record with *stored_key*."""
        if not self.enabled:
            return
        entries = self._entries
        entries.pop(name, None)
        entries[name] = (self.clock() + self.ttl, stored_key, self._digest(name, password))
        while len(entries) > self.max_entries:
            entries.popitem(last=False)

    def forget(self, name: str) -> None:
        """Drop *name*'s entry, if any."""
        self._entries.pop(name, None)

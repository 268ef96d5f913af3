"""The exclusive maildrop lock of a POP3 session (RFC 1939 section 8), usable across processes.

A POP3 server holds its user's maildrop exclusively from login to the end of
the session, so that a second session (here, in another of our processes, or
in Dovecot with ``pop3_lock_session = yes``) gets ``-ERR [IN-USE]``.

The lock is Dovecot's: a dotlock named ``dovecot-pop3-session.lock`` in the
Maildir's root, created with ``O_EXCL`` and holding ``pid:hostname``
(:class:`~netproto_twisted.mailstore.fsops.DotLock`).  It is stale when its
owner is a dead process on this host, or when nobody refreshed it for
:data:`SESSION_LOCK_STALE_SECONDS`; the holder refreshes it every
:data:`SESSION_LOCK_REFRESH_SECONDS` (:meth:`MaildropLock.touch`), so a
session that lasts hours keeps it, and a crashed host's lock expires.

Everything here blocks on the disk: call it from a worker thread.
"""

from __future__ import annotations

import os

from netproto_twisted.mailstore.fsops import DotLock

__all__ = [
    "SESSION_LOCK_NAME",
    "SESSION_LOCK_REFRESH_SECONDS",
    "SESSION_LOCK_STALE_SECONDS",
    "MaildropLock",
]

#: The lock file's name in the Maildir root (Dovecot's ``POP3_LOCK_FNAME``).
SESSION_LOCK_NAME = "dovecot-pop3-session.lock"
#: A lock not refreshed for this long is stale (Dovecot uses five minutes).
SESSION_LOCK_STALE_SECONDS = 300.0
#: How often the holder refreshes its lock.
SESSION_LOCK_REFRESH_SECONDS = SESSION_LOCK_STALE_SECONDS / 3


class MaildropLock:
    """The session lock of the Maildir at ``path`` (its root, where ``cur/`` lives).

    :param path: the Maildir (INBOX) directory.
    :param stale_seconds: age after which a lock nobody refreshed is broken.
    """

    def __init__(self, path: str, *, stale_seconds: float = SESSION_LOCK_STALE_SECONDS) -> None:
        self.path = os.path.join(path, SESSION_LOCK_NAME)
        self._lock = DotLock(self.path, stale_seconds=stale_seconds, timeout=0.0)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._lock.held

    def try_acquire(self) -> bool:
        """Take the lock if it is free or stale; never waits.  Return whether it was taken."""
        return self._lock.try_acquire()

    def touch(self) -> None:
        """Refresh the lock (call every :data:`SESSION_LOCK_REFRESH_SECONDS` while held)."""
        self._lock.touch()

    def release(self) -> None:
        """Remove the lock file if held; idempotent."""
        self._lock.release()

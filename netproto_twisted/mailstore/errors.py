"""Errors raised by the mail store."""

from __future__ import annotations

from netproto_twisted.core.errors import NetprotoError

__all__ = [
    "InvalidName",
    "MailStoreError",
    "MailboxExists",
    "MailboxLocked",
    "NoSuchMailbox",
    "NoSuchMessage",
]


class MailStoreError(NetprotoError):
    """Base class of every mail store error."""


class InvalidName(MailStoreError, ValueError):
    """A user or folder name was refused (path traversal, control characters...)."""

    def __init__(self, kind: str, name: str, reason: str) -> None:
        super().__init__(f"invalid {kind} name {name!r}: {reason}")
        self.kind = kind
        self.name = name
        self.reason = reason


class NoSuchMailbox(MailStoreError):
    """The folder (or the user's whole tree) does not exist."""


class MailboxExists(MailStoreError):
    """A folder to be created (or renamed to) already exists."""


class NoSuchMessage(MailStoreError):
    """The UID is not (or no longer) in the mailbox."""

    def __init__(self, uid: int) -> None:
        super().__init__(f"no message with UID {uid}")
        self.uid = uid


class MailboxLocked(MailStoreError):
    """The uidlist lock could not be taken in time (a temporary failure)."""

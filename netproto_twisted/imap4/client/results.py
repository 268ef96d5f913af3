"""What the IMAP client's commands fire with: mailbox facts, LIST entries, CONDSTORE results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ConditionalStore", "FetchChanges", "MailboxEntry", "MailboxInfo"]


@dataclass
class MailboxInfo:
    """What SELECT/EXAMINE reported."""

    exists: int = 0
    recent: int = 0
    uid_validity: int = 0
    uid_next: int = 0
    unseen: int | None = None
    flags: tuple[str, ...] = ()
    permanent_flags: tuple[str, ...] = ()
    read_only: bool = False
    highest_modseq: int | None = None
    """``HIGHESTMODSEQ`` (CONDSTORE servers), ``None`` if not sent or ``NOMODSEQ``."""
    vanished: tuple[tuple[int, int], ...] = ()
    """QRESYNC: UID ranges expunged since the cached state (``VANISHED (EARLIER)``)."""
    changed: dict[int, dict[str, Any]] = field(default_factory=dict)
    """QRESYNC: the messages changed since the cached state, ``{uid: FETCH items}``."""


@dataclass
class FetchChanges:
    """What ``UID FETCH ... (CHANGEDSINCE n [VANISHED])`` answered.

    :ivar fetched: ``{uid: items}`` of the messages changed since ``n``.
    :ivar vanished: UID ranges expunged since ``n`` (with ``VANISHED``).
    """

    fetched: dict[int, dict[str, Any]]
    vanished: tuple[tuple[int, int], ...] = ()


@dataclass
class ConditionalStore:
    """What ``STORE ... (UNCHANGEDSINCE n)`` answered.

    :ivar fetched: ``{number: items}`` of the messages stored (with ``MODSEQ``).
    :ivar modified: the numbers (UIDs with ``uid=True``) left alone: changed since ``n``.
    """

    fetched: dict[int, dict[str, Any]]
    modified: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class MailboxEntry:
    """One LIST/LSUB line."""

    attributes: tuple[str, ...]
    delimiter: str | None
    name: str

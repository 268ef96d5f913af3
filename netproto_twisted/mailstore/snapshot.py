"""What a folder scan gives: one :class:`MessageInfo` per message, in a :class:`Snapshot`."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["MessageInfo", "Snapshot", "StoreResult", "crlf_size_of"]

#: A name's ``W=`` field, as :func:`~netproto_twisted.mailstore.filenames.parse_filename`
#: reads it (the first one all digits).
_VIRTUAL_SIZE = re.compile(r",W=(\d+)(?=,|\Z)")


@dataclass(frozen=True)
class MessageInfo:
    """One message of a snapshot."""

    uid: int
    base: str
    """The unique part of the file name; stable across flag changes."""
    filename: str
    """The current file name (base plus ``:2,<flags>``)."""
    subdir: str
    """``"new"`` or ``"cur"``."""
    size: int
    """The message's size with CRLF line endings (``W=``) when the name gives it, else
    the file's size (``S=`` or ``stat``), exact for a file stored with CRLF; see
    :attr:`crlf_size`."""
    flags: frozenset[str]
    """IMAP flag names (``\\Seen``...) and keywords; never ``\\Recent``."""
    internal_date: float
    """The file's modification time (IMAP INTERNALDATE), seconds since the epoch."""
    recent: bool = False
    """True if this session is the first to see the message (it was in ``new/``)."""
    modseq: int = 0
    """The message's mod-sequence (RFC 7162): grows whenever its flags change."""

    @property
    def crlf_size(self) -> int | None:
        """The size with CRLF line endings from the name's ``W=`` field; None without one."""
        return crlf_size_of(self.filename)


def crlf_size_of(name: str) -> int | None:
    """A Maildir file name's ``W=`` size (the message's size with CRLF endings), or None."""
    at = name.find(",W=")
    if at < 0:
        return None
    # The common case without the regular expression: the first W= all ASCII digits
    # up to the next comma or the end of the base.
    end = name.find(",", at + 3)
    colon = name.find(":", at + 3)
    if colon >= 0 and (end < 0 or colon < end):
        end = colon
    digits = name[at + 3 :] if end < 0 else name[at + 3 : end]
    if digits.isdigit() and digits.isascii() and ":" not in name[:at]:
        return int(digits)
    match = _VIRTUAL_SIZE.search(name.partition(":")[0])
    return int(match.group(1)) if match is not None else None


@dataclass(frozen=True)
class Snapshot:
    """A folder's state when it was last synced: UIDVALIDITY, UIDNEXT and messages by UID."""

    uid_validity: int
    uid_next: int
    guid: str
    messages: tuple[MessageInfo, ...]
    highest_modseq: int = 0
    """The folder's HIGHESTMODSEQ (RFC 7162)."""


@dataclass(frozen=True)
class StoreResult:
    """What a conditional flag store did (:meth:`MaildirFolder.store_flags_conditional`).

    :ivar updated: the new infos of the messages stored (with their modseqs).
    :ivar modified: UIDs left alone because their modseq was above ``unchanged_since``.
    :ivar highest_modseq: the folder's HIGHESTMODSEQ afterwards.
    """

    updated: list[MessageInfo]
    modified: list[int]
    highest_modseq: int

"""zope.interface contracts of the mail store, so that a server backend can replace Maildir.

SMTP delivers through :class:`IDeliveryTarget`; POP3 and IMAP open an
:class:`IMailbox` through :class:`IMailStore`.  Every method that touches the
disk returns a Deferred; ``write`` on a writer only buffers.
"""

# ruff: noqa: N805  (zope interface methods have no ``self``)

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from netproto_twisted.mailstore.folder import FlagMode, MessageInfo, StoreResult

__all__ = [
    "Appended",
    "IAppendWriter",
    "IDeliveryTarget",
    "IMailStore",
    "IMailbox",
    "IMessageWriter",
]


@dataclass(frozen=True)
class Appended:
    """The result of an IMAP APPEND: UIDVALIDITY, UID and file name of the new message.

    What :meth:`IAppendWriter.commit` fires with.
    """

    uid_validity: int
    uid: int
    filename: str


class IMessageWriter(Interface):
    """A message being streamed into the store."""

    size = Attribute("Bytes written so far (int).")

    def write(data: bytes) -> Deferred[None] | None:
        """Append a chunk; a Deferred returned means: send no more until it fires."""

    def commit() -> Deferred[str]:
        """Store the message durably; fire with its file name once it would survive a crash."""

    def abort() -> None:
        """Discard the message."""


class IAppendWriter(Interface):
    """A message being appended by IMAP APPEND, with flags and internal date."""

    size = Attribute("Bytes written so far (int).")

    def write(data: bytes) -> Deferred[None] | None:
        """Append a chunk; a Deferred returned means: send no more until it fires."""

    def commit() -> Deferred[Appended]:
        """Store it durably and give it a UID: fire with an ``Appended``."""

    def abort() -> None:
        """Discard the message."""


class IDeliveryTarget(Interface):
    """Where a mail server delivers accepted messages."""

    def user_exists(user: str) -> Deferred[bool]:
        """Fire with whether mail for ``user`` is kept here."""

    def deliver(user: str, folder: str = "INBOX") -> IMessageWriter:
        """Return a writer for one new message to ``user``'s ``folder``.

        Raises ``InvalidName`` for unsafe names, ``NoSuchMailbox`` for a
        missing folder other than INBOX (INBOX is created on first delivery).
        """

    def deliver_all(users: Sequence[str]) -> IMessageWriter:
        """Return a writer for one new message to every user's INBOX, committed all or none."""


class IMailbox(Interface):
    """An open folder: a snapshot of its messages and the operations on them."""

    user = Attribute("The owner (str).")
    folder = Attribute("The folder name (str), INBOX for the root.")
    uid_validity = Attribute("UIDVALIDITY of the snapshot (int).")
    uid_next = Attribute("UIDNEXT of the snapshot (int).")
    messages = Attribute("Messages of the snapshot, a tuple of MessageInfo sorted by UID.")
    highest_modseq = Attribute("HIGHESTMODSEQ of the snapshot (int, RFC 7162).")

    def get(uid: int) -> MessageInfo:
        """Return the MessageInfo of a UID; raise ``NoSuchMessage``."""

    def refresh(move_new: bool = True) -> Deferred[tuple[MessageInfo, ...]]:
        """Rescan (new mail, other sessions' changes); fire with the messages."""

    def open_message(uid: int) -> Deferred[BinaryIO]:
        """Fire with the message open for streaming read; the caller closes it."""

    def store_flags(
        uids: Iterable[int], flags: Iterable[str], mode: FlagMode = ...
    ) -> Deferred[list[MessageInfo]]:
        """Set, add or remove flags (``FlagMode``); fire with the new infos."""

    def store_flags_conditional(
        uids: Iterable[int],
        flags: Iterable[str],
        mode: FlagMode = ...,
        unchanged_since: int | None = None,
    ) -> Deferred[StoreResult]:
        """Store flags except on messages whose modseq is above ``unchanged_since`` (CONDSTORE)."""

    def vanished_since(modseq: int) -> Deferred[list[int] | None]:
        """Fire with the UIDs expunged after ``modseq``, or ``None`` if that is forgotten."""

    def expunge(uids: Iterable[int] | None = None) -> Deferred[list[int]]:
        """Remove the given UIDs, or all flagged ``\\Deleted``; fire with the UIDs."""

    def append(flags: Iterable[str] = (), internal_date: float | None = None) -> IAppendWriter:
        """Return a writer for a message appended to this folder (IMAP APPEND)."""


class IMailStore(IDeliveryTarget):
    """A store of users' folders: open, list, create, delete, rename, subscribe."""

    def open_mailbox(
        user: str, folder: str = "INBOX", move_new: bool = True
    ) -> Deferred[IMailbox]:
        """Sync a folder and fire with an :class:`IMailbox` holding its snapshot.

        ``move_new=True`` (IMAP) moves ``new/`` to ``cur/`` and marks those
        messages recent; POP3 passes False and leaves them where they are.
        """

    def list_folders(user: str) -> Deferred[list[str]]:
        """Fire with every folder, INBOX first ([] for an unknown user)."""

    def create_folder(user: str, folder: str) -> Deferred[None]:
        """Create a folder; ``MailboxExists`` if it exists."""

    def delete_folder(user: str, folder: str) -> Deferred[None]:
        """Delete a folder and its messages (not its children)."""

    def rename_folder(user: str, old: str, new: str) -> Deferred[None]:
        """Rename a folder and its children."""

    def subscriptions(user: str) -> Deferred[list[str]]:
        """Fire with the subscribed folder names."""

    def subscribe(user: str, folder: str) -> Deferred[None]:
        """Add a folder to the subscriptions."""

    def unsubscribe(user: str, folder: str) -> Deferred[None]:
        """Remove a folder from the subscriptions."""

"""What every part of an IMAP session shares: its state, the selected mailbox, reply helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from twisted.internet.interfaces import IConsumer

from netproto_twisted.core.connection import ConnectionBase
from netproto_twisted.imap4.server.commands import State
from netproto_twisted.imap4.server.fetch import FetchEntry, MessageCache
from netproto_twisted.imap4.server.notify import ChangeHub
from netproto_twisted.imap4.server.prefetch import Prefetcher
from netproto_twisted.imap4.server.settings import IMAPSettings
from netproto_twisted.imap4.wire.commands import Request
from netproto_twisted.imap4.wire.mutf7 import mutf7_decode, mutf7_encode
from netproto_twisted.imap4.wire.serialise import status_line
from netproto_twisted.imap4.wire.tokens import CommandSyntaxError
from netproto_twisted.mailstore.interfaces import IAppendWriter
from netproto_twisted.mailstore.maildir import MaildirMailbox, MaildirStore
from netproto_twisted.mailstore.names import INBOX, is_inbox
from netproto_twisted.mailstore.seqmap import SequenceMap

__all__ = ["Selected", "SessionState"]


@dataclass
class Selected:
    """The selected mailbox as this session sees it."""

    box: MaildirMailbox
    read_only: bool
    seqmap: SequenceMap
    recent: set[int] = field(default_factory=set)
    unsubscribe: Callable[[], None] | None = None
    #: Another session or process changed the folder since the last report.
    dirty: bool = False

    def entry(self, seq: int, uid: int) -> FetchEntry:
        """The :class:`FetchEntry` of one message."""
        return FetchEntry(seq, self.box.get(uid), uid in self.recent)


class SessionState(ConnectionBase):
    """The session's state and helpers; the command handlers live in subclasses."""

    settings: IMAPSettings
    store: MaildirStore
    hub: ChangeHub
    cache: MessageCache
    #: Where FETCH streams large literals and whose backpressure paces it (``None``: not paced).
    consumer: IConsumer | None
    #: Reads folders ahead when sessions open them (``None``: not done).
    prefetcher: Prefetcher | None
    tls: object | None
    secure: bool
    peer: str
    peer_is_loopback: bool
    state: State
    user: str | None
    selected: Selected | None
    utf8: bool
    rev2: bool
    #: CONDSTORE is on (RFC 7162 section 3.1: a CONDSTORE-enabling command was used):
    #: FETCH responses with FLAGS carry MODSEQ.
    condstore: bool
    #: ENABLE QRESYNC was given: VANISHED replaces EXPUNGE, SELECT takes QRESYNC.
    qresync: bool
    _writers: list[IAppendWriter]

    # -- replies ------------------------------------------------------------------------

    def untagged(self, text: str | bytes) -> None:
        """Send ``* text``."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        self.send(b"* " + data + b"\r\n")

    def ok(self, req: Request, text: str = "completed", code: str | None = None) -> None:
        """``tag OK``."""
        self.send(status_line(req.tag, "OK", text, code))

    def no(self, req: Request, text: str, code: str | None = None) -> None:
        """``tag NO``."""
        self.send(status_line(req.tag, "NO", text, code))

    def bad(self, req: Request | str | None, text: str, code: str | None = None) -> None:
        """``tag BAD`` (``*`` when the tag is unknown)."""
        tag = req.tag if isinstance(req, Request) else (req or "*")
        self.send(status_line(tag, "BAD", text, code))

    # -- mailbox names -------------------------------------------------------------------

    def folder_name(self, wire: bytes) -> str:
        """A mailbox name from the wire as the store names it (INBOX in any case is INBOX)."""
        try:
            text = (
                wire.decode("utf-8")
                if self.utf8 or not wire.isascii()
                else mutf7_decode(wire.decode("ascii"))
            )
        except (UnicodeDecodeError, ValueError):
            raise CommandSyntaxError("bad mailbox name") from None
        return INBOX if is_inbox(text) else text

    def wire_name(self, folder: str) -> bytes:
        """A store folder name as the wire shows it (modified UTF-7 unless UTF8=ACCEPT)."""
        if self.utf8:
            return folder.encode("utf-8")
        return mutf7_encode(folder).encode("ascii")

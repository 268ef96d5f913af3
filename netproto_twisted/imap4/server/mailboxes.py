"""IMAP mailbox commands: SELECT/EXAMINE, CREATE, DELETE, RENAME, (UN)SUBSCRIBE, LIST, LSUB,
NAMESPACE, STATUS and APPEND."""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Iterable
from typing import Any, cast

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.imap4.server.commands import State
from netproto_twisted.imap4.server.copying import copy_messages
from netproto_twisted.imap4.server.selected import (
    SelectedCommands,
    compress,
    missing_uids,
    ranges_text,
)
from netproto_twisted.imap4.server.state import Selected
from netproto_twisted.imap4.wire.commands import QresyncParams, Request
from netproto_twisted.imap4.wire.serialise import quote
from netproto_twisted.imap4.wire.tokens import CommandSyntaxError, SequenceSet, StreamedLiteral
from netproto_twisted.mailstore.errors import (
    InvalidName,
    MailboxExists,
    MailStoreError,
    NoSuchMailbox,
)
from netproto_twisted.mailstore.filenames import SYSTEM_FLAGS
from netproto_twisted.mailstore.folder import MessageInfo
from netproto_twisted.mailstore.interfaces import Appended, IAppendWriter
from netproto_twisted.mailstore.maildir import MaildirMailbox
from netproto_twisted.mailstore.names import HIERARCHY_SEPARATOR, INBOX
from netproto_twisted.mailstore.seqmap import SequenceMap

__all__ = ["MailboxCommands", "special_use"]

_log = Logger(namespace="netproto.imap4.server")
_SEP = HIERARCHY_SEPARATOR
_SPECIAL = {
    "sent": "\\Sent", "sent messages": "\\Sent", "sent items": "\\Sent",
    "drafts": "\\Drafts", "trash": "\\Trash", "deleted messages": "\\Trash",
    "deleted items": "\\Trash", "junk": "\\Junk", "spam": "\\Junk", "archive": "\\Archive",
}  # fmt: skip
_STATUS_ITEMS = (
    "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "SIZE", "DELETED", "HIGHESTMODSEQ",
)  # fmt: skip


def special_use(folder: str) -> str | None:
    """The SPECIAL-USE attribute a folder's name suggests (``Sent`` is ``\\Sent``)."""
    return _SPECIAL.get(folder.rpartition(_SEP)[2].lower())


def _pattern(text: str) -> re.Pattern[str]:
    out = []
    for ch in text:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append(f"[^{re.escape(_SEP)}]*")
        else:
            out.append(re.escape(ch))
    body = "".join(out)
    if text[:5].upper() == "INBOX":  # INBOX matches in any case
        body = "(?i:INBOX)" + "".join(out[5:])
    return re.compile(body + r"\Z", re.DOTALL)


class MailboxCommands(SelectedCommands):
    """The mailbox commands of an IMAP session (mixed into the connection)."""

    def _name(self, req: Request, wire: bytes) -> str | None:
        try:
            return self.folder_name(wire)
        except CommandSyntaxError:
            self.bad(req, "bad mailbox name")
            return None

    def _store_failed(self, req: Request, failure: Failure) -> None:
        if failure.check(NoSuchMailbox):
            self.no(req, "no such mailbox", "NONEXISTENT")
        elif failure.check(MailboxExists):
            self.no(req, "mailbox exists", "ALREADYEXISTS")
        elif failure.check(InvalidName, ValueError):
            self.no(req, "bad mailbox name", "CANNOT")
        elif failure.check(MailStoreError):
            self.no(req, str(failure.value) or "not possible", "CANNOT")
        else:
            _log.failure("mail store failed", failure)
            self.no(req, "temporary failure, try later", "UNAVAILABLE")

    def _done(self, req: Request, text: str) -> Callable[[object], None]:
        def done(result: object) -> None:
            if isinstance(result, Failure):
                self._store_failed(req, result)
            else:
                self.ok(req, text)

        return done

    # -- SELECT / EXAMINE ---------------------------------------------------------------

    def select(self, req: Request) -> None:
        """``SELECT mailbox``."""
        self._open(req, read_only=False)

    def examine(self, req: Request) -> None:
        """``EXAMINE mailbox``: read-only (no ``\\Recent`` taken, no flag changes)."""
        self._open(req, read_only=True)

    def _open(self, req: Request, read_only: bool) -> None:
        if self.selected is not None:
            self.deselect()
            self.untagged("OK [CLOSED] previous mailbox closed")
        self.state = State.AUTHENTICATED
        folder = self._name(req, req.mailbox)
        if folder is None:
            return
        if "QRESYNC" in req.params and not self.qresync:
            self.bad(req, "QRESYNC needs ENABLE QRESYNC first")
            return
        if "CONDSTORE" in req.params:
            self.condstore = True
        assert self.user is not None
        try:
            if self.prefetcher is not None:
                self.prefetcher.folder_opened(self.store.folder_path(self.user, folder))
            d = self.store.open_mailbox(self.user, folder, move_new=not read_only)
        except (InvalidName, ValueError, NoSuchMailbox) as e:
            self._store_failed(req, Failure(e))
            return
        self.wait(d, lambda result: self._opened(req, result, read_only))

    def _opened(self, req: Request, result: Any, read_only: bool) -> None:
        if isinstance(result, Failure):
            self._store_failed(req, result)
            return
        box: MaildirMailbox = result
        messages = box.messages
        selected = Selected(
            box, read_only, SequenceMap(m.uid for m in messages),
            {m.uid for m in messages if m.recent},
        )  # fmt: skip
        self.selected = selected
        selected.unsubscribe = self.hub.subscribe(box.target.path, self.folder_changed)
        self.state = State.SELECTED
        keywords = sorted({f for m in messages for f in m.flags if not f.startswith("\\")})
        flags = " ".join([*SYSTEM_FLAGS, *keywords])
        self.untagged(f"FLAGS ({flags})")
        permanent = "" if read_only else f"{flags} \\*"
        self.untagged(f"OK [PERMANENTFLAGS ({permanent})] flags permitted")
        self.untagged(f"{len(messages)} EXISTS")
        if not self.rev2:
            self.untagged(f"{len(selected.recent)} RECENT")
            unseen = next((i for i, m in enumerate(messages, 1) if "\\Seen" not in m.flags), None)
            if unseen is not None:
                self.untagged(f"OK [UNSEEN {unseen}] first unseen")
        self.untagged(f"OK [UIDVALIDITY {box.uid_validity}] UIDs valid")
        self.untagged(f"OK [UIDNEXT {box.uid_next}] predicted next UID")
        self.untagged(f"OK [HIGHESTMODSEQ {box.highest_modseq}] highest mod-sequence")
        if self.rev2:
            self.untagged(b'LIST () "." ' + quote(self.wire_name(box.folder)))
        verb = "EXAMINE" if read_only else "SELECT"
        code = "READ-ONLY" if read_only else "READ-WRITE"
        qresync = req.params.get("QRESYNC")
        if isinstance(qresync, QresyncParams) and qresync.uid_validity == box.uid_validity:
            self._resync(req, selected, qresync, f"{verb} completed", code)
            return
        self.ok(req, f"{verb} completed", code)

    def _resync(
        self, req: Request, selected: Selected, params: QresyncParams, text: str, code: str
    ) -> None:
        """QRESYNC (RFC 7162 section 3.2.5): ``VANISHED (EARLIER)``, then the changed flags."""
        box = selected.box
        present = selected.seqmap.uids
        top = max(box.uid_next - 1, 1)
        known = params.known_uids.merged(top) if params.known_uids is not None else [(1, top)]

        def got(result: Any) -> None:
            if isinstance(result, Failure):
                _log.failure("reading expunged UIDs failed", result)
                result = None
            if result is None:  # forgotten that far back: what the client may know, not here
                text_ = ranges_text(missing_uids(known, present, self._seq_match_floor(params)))
            else:
                seqmap = selected.seqmap
                text_ = compress(
                    [u for u in SequenceSet(tuple(known)).select(result) if seqmap.seq(u) is None]
                )
            if text_:
                self.untagged("VANISHED (EARLIER) " + text_)
            out = []
            for uid in SequenceSet(tuple(known)).select(present):
                info = box.get(uid)
                if info.modseq > params.modseq:
                    seq = selected.seqmap.seq(uid)
                    assert seq is not None
                    out.append(self.flags_fetch(selected.entry(seq, uid), with_uid=True))
            if out:
                self.send(b"".join(out))
            self.ok(req, text, code)

        self.wait(box.vanished_since(params.modseq), got)

    def _seq_match_floor(self, params: QresyncParams) -> int:
        """The largest UID below which nothing was expunged, by the client's seq-match pairs."""
        if params.seq_match is None or self.selected is None:
            return 0
        seqmap = self.selected.seqmap
        seqs_set, uids_set = params.seq_match
        seqs = list(seqs_set.numbers(len(seqmap)))
        uids = list(uids_set.numbers(max(seqmap.largest_uid, 1)))
        floor = 0
        for seq, uid in zip(seqs, uids, strict=False):
            if seqmap.uid(seq) == uid:
                floor = max(floor, uid)
        return floor

    # -- CREATE / DELETE / RENAME / SUBSCRIBE -------------------------------------------

    def create(self, req: Request) -> None:
        """``CREATE mailbox`` (a trailing separator is dropped)."""
        folder = self._name(req, req.mailbox.rstrip(_SEP.encode()) or req.mailbox)
        if folder is None:
            return
        if folder == INBOX:
            self.no(req, "INBOX always exists", "ALREADYEXISTS")
            return
        assert self.user is not None
        self.wait(self.store.create_folder(self.user, folder), self._done(req, "CREATE completed"))

    def delete(self, req: Request) -> None:
        """``DELETE mailbox`` (never INBOX; its sub-folders stay)."""
        folder = self._name(req, req.mailbox)
        if folder is None:
            return
        if folder == INBOX:
            self.no(req, "INBOX cannot be deleted", "CANNOT")
            return
        assert self.user is not None
        if self.selected is not None and self.selected.box.folder == folder:
            self.deselect()
            self.state = State.AUTHENTICATED
        self.wait(self.store.delete_folder(self.user, folder), self._done(req, "DELETE completed"))

    def rename(self, req: Request) -> None:
        """``RENAME old new``; renaming INBOX moves its messages to a new folder."""
        old = self._name(req, req.mailbox)
        new = self._name(req, req.mailbox2) if old is not None else None
        if old is None or new is None:
            return
        assert self.user is not None
        if new == INBOX:
            self.no(req, "INBOX exists", "ALREADYEXISTS")
            return
        if old != INBOX:
            self.wait(
                self.store.rename_folder(self.user, old, new), self._done(req, "RENAME completed")
            )
            return
        user = self.user

        def move_all(_: None) -> Deferred[Any]:
            d = self.store.open_mailbox(user, INBOX, move_new=False)

            def opened(opened_box: Any) -> Deferred[Any]:
                box = cast(MaildirMailbox, opened_box)
                uids = [m.uid for m in box.messages]
                copied = copy_messages(self.store, box, user, uids, new)
                return copied.addCallback(lambda _: box.expunge(uids))

            result: Deferred[Any] = d.addCallback(opened)
            return result

        d = self.store.create_folder(user, new).addCallback(move_all)
        self.wait(d, self._done(req, "RENAME completed"))

    def subscribe(self, req: Request) -> None:
        """``SUBSCRIBE mailbox``."""
        folder = self._name(req, req.mailbox)
        if folder is not None:
            assert self.user is not None
            self.wait(
                self.store.subscribe(self.user, folder), self._done(req, "SUBSCRIBE completed")
            )

    def unsubscribe(self, req: Request) -> None:
        """``UNSUBSCRIBE mailbox``."""
        folder = self._name(req, req.mailbox)
        if folder is not None:
            assert self.user is not None
            self.wait(
                self.store.unsubscribe(self.user, folder), self._done(req, "UNSUBSCRIBE completed")
            )

    # -- LIST / LSUB / NAMESPACE -------------------------------------------------------

    def list(self, req: Request) -> None:
        """``LIST [(selection)] reference pattern(s) [RETURN (...)]`` (LIST-EXTENDED basics)."""
        if len(req.patterns) == 1 and not req.patterns[0]:
            self.untagged(b'LIST (\\Noselect) "." ""')
            self.ok(req, "LIST completed")
            return
        assert self.user is not None
        d = gatherResults(
            [self.store.list_folders(self.user), self.store.subscriptions(self.user)]
        )
        self.wait(d, lambda result: self._listed(req, result, lsub=False))

    def lsub(self, req: Request) -> None:
        """``LSUB reference pattern``."""
        assert self.user is not None
        d = gatherResults(
            [self.store.list_folders(self.user), self.store.subscriptions(self.user)]
        )
        self.wait(d, lambda result: self._listed(req, result, lsub=True))

    def _patterns(self, req: Request) -> builtins.list[re.Pattern[str]] | None:
        try:
            ref = self.folder_name(req.mailbox) if req.mailbox else ""
            pats = [self.folder_name(p) if p else "" for p in req.patterns]
        except CommandSyntaxError:
            self.bad(req, "bad mailbox pattern")
            return None
        return [_pattern(ref + p) for p in pats]

    def _listed(self, req: Request, result: Any, lsub: bool) -> None:
        if isinstance(result, Failure):
            self._store_failed(req, result)
            return
        folders, subscribed = result
        patterns = self._patterns(req)
        if patterns is None:
            return
        selection = [str(o) for o in cast(Iterable[object], req.params.get("select", []))]
        returns = [str(o) for o in cast(Iterable[object], req.params.get("return", []))]
        subs = set(subscribed)
        existing = set(folders)
        candidates = list(subscribed) if lsub or "SUBSCRIBED" in selection else list(folders)
        # Parents that are not folders themselves, for the % patterns (\Noselect).
        implied = []
        for name in folders:
            parts = name.split(_SEP)
            for i in range(1, len(parts)):
                parent = _SEP.join(parts[:i])
                if parent not in existing and parent not in implied:
                    implied.append(parent)
        verb = "LSUB" if lsub else "LIST"
        status_items: builtins.list[str] = []
        for option in returns:
            if option.startswith("(") and "STATUS" in returns:
                status_items = option.strip("()").split()
        names: builtins.list[str] = []
        for name in [*candidates, *implied]:
            if not any(p.match(name) for p in patterns):
                continue
            if name in names:
                continue
            if "SPECIAL-USE" in selection and special_use(name) is None:
                continue
            names.append(name)
        for name in names:
            attrs: builtins.list[str] = []
            if name not in existing:
                attrs.append("\\NonExistent" if not lsub and name in subs else "\\Noselect")
            if not lsub:
                has = any(f.startswith(name + _SEP) for f in folders)
                attrs.append("\\HasChildren" if has else "\\HasNoChildren")
                use = special_use(name) if name in existing else None
                if use is not None:
                    attrs.append(use)
                if name in subs and ("SUBSCRIBED" in returns or "SUBSCRIBED" in selection):
                    attrs.append("\\Subscribed")
            self.untagged(
                f'{verb} ({" ".join(attrs)}) "." '.encode() + quote(self.wire_name(name))
            )
        if not status_items:
            self.ok(req, f"{verb} completed")
            return
        selectable = [n for n in names if n in existing]
        self._status_each(req, selectable, status_items, f"{verb} completed")

    def _status_each(
        self, req: Request, names: builtins.list[str], items: builtins.list[str], text: str
    ) -> None:
        if not names:
            self.ok(req, text)
            return
        name, rest = names[0], names[1:]
        assert self.user is not None
        d = self.store.open_mailbox(self.user, name, move_new=False)

        def got(result: Any) -> None:
            if not isinstance(result, Failure):
                self._send_status(name, result, items)
            self._status_each(req, rest, items, text)

        self.wait(d, got)

    def namespace(self, req: Request) -> None:
        """``NAMESPACE``: one personal namespace, ``.`` separated."""
        self.untagged('NAMESPACE (("" ".")) NIL NIL')
        self.ok(req, "NAMESPACE completed")

    # -- STATUS -------------------------------------------------------------------------

    def status(self, req: Request) -> None:
        """``STATUS mailbox (items)``."""
        folder = self._name(req, req.mailbox)
        if folder is None:
            return
        items = list(req.atoms)
        unknown = [i for i in items if i not in _STATUS_ITEMS]
        if unknown:
            self.bad(req, f"unknown STATUS item {unknown[0][:20]}")
            return
        if "HIGHESTMODSEQ" in items:
            self.condstore = True
        assert self.user is not None
        try:
            d = self.store.open_mailbox(self.user, folder, move_new=False)
        except (InvalidName, ValueError) as e:
            self._store_failed(req, Failure(e))
            return

        def got(result: Any) -> None:
            if isinstance(result, Failure):
                self._store_failed(req, result)
                return
            self._send_status(folder, result, items)
            self.ok(req, "STATUS completed")

        self.wait(d, got)

    def _send_status(self, folder: str, box: MaildirMailbox, items: builtins.list[str]) -> None:
        messages: tuple[MessageInfo, ...] = box.messages
        values = {
            "MESSAGES": len(messages),
            "RECENT": sum(1 for m in messages if m.subdir == "new"),
            "UIDNEXT": box.uid_next,
            "UIDVALIDITY": box.uid_validity,
            "UNSEEN": sum(1 for m in messages if "\\Seen" not in m.flags),
            "SIZE": sum(m.size for m in messages),
            "DELETED": sum(1 for m in messages if "\\Deleted" in m.flags),
            "HIGHESTMODSEQ": box.highest_modseq,
        }
        body = " ".join(f"{i} {values[i]}" for i in items)
        self.untagged(b"STATUS " + quote(self.wire_name(folder)) + f" ({body})".encode())

    # -- APPEND -------------------------------------------------------------------------

    def append(self, req: Request) -> None:
        """``APPEND mailbox [flags] [date] literal`` (MULTIAPPEND too): commit the streamed."""
        folder = self._name(req, req.mailbox)
        if folder is None:
            return
        assert self.user is not None
        writers: builtins.list[IAppendWriter] = []
        for message in req.messages:
            literal = message.literal
            if isinstance(literal, StreamedLiteral):
                writers.append(literal.handle)  # type: ignore[arg-type]
            else:  # pragma: no cover - message literals are streamed once logged in
                assert isinstance(literal, bytes)
                try:
                    writer = self.store.append_message(self.user, folder, message.flags)
                except NoSuchMailbox:
                    self.no(req, "no such mailbox", "TRYCREATE")
                    return
                writer.write(literal)
                writers.append(writer)
        self._writers = []  # they are this command's now
        self._commit_each(req, folder, writers, [])

    def _commit_each(
        self,
        req: Request,
        folder: str,
        writers: builtins.list[IAppendWriter],
        done: builtins.list[Appended],
    ) -> None:
        if not writers:
            self._appended(req, folder, done)
            return
        first, rest = writers[0], writers[1:]

        def committed(result: Any) -> None:
            if isinstance(result, Failure):
                for writer in rest:
                    writer.abort()
                _log.failure("APPEND commit failed", result)
                self.no(req, "cannot store the message, try later", "UNAVAILABLE")
                return
            self._commit_each(req, folder, rest, [*done, result])

        self.wait(first.commit(), committed)

    def _appended(self, req: Request, folder: str, done: builtins.list[Appended]) -> None:
        uids = ",".join(str(a.uid) for a in done)
        code = f"APPENDUID {done[0].uid_validity} {uids}" if done else None
        assert self.user is not None
        path = self.store.folder_path(self.user, folder)
        self.hub.changed(path, self.folder_changed)
        if self.selected is not None and self.selected.box.folder == folder:
            self.selected.dirty = True
            self.report_changes(req, "APPEND completed", code)
            return
        self.ok(req, "APPEND completed", code)

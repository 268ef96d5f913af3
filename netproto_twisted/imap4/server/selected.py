"""IMAP commands on the selected mailbox: FETCH, SEARCH, STORE, COPY, MOVE, EXPUNGE, CLOSE,
UNSELECT, CHECK, IDLE, and the untagged reports of what other sessions changed."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.imap4.server.commands import State
from netproto_twisted.imap4.server.fetch import (
    FetchEntry,
    SearchContext,
    fetch_batch,
    search_batch,
)
from netproto_twisted.imap4.server.state import Selected, SessionState
from netproto_twisted.imap4.wire.commands import Request
from netproto_twisted.imap4.wire.fetchspec import FetchAtt
from netproto_twisted.imap4.wire.serialise import continuation, flag_list
from netproto_twisted.imap4.wire.tokens import SequenceSet
from netproto_twisted.mailstore.delivery import AppendWriter
from netproto_twisted.mailstore.errors import InvalidName, NoSuchMailbox
from netproto_twisted.mailstore.folder import FlagMode, MessageInfo
from netproto_twisted.mailstore.interfaces import Appended
from netproto_twisted.mailstore.maildir import MaildirMailbox, MaildirStore
from netproto_twisted.mailstore.seqmap import Changes

__all__ = ["SelectedCommands", "compress", "copy_messages"]

_log = Logger(namespace="netproto.imap4.server")
_MODES = {"": FlagMode.REPLACE, "+": FlagMode.ADD, "-": FlagMode.REMOVE}
_SEARCH_BATCH = 5000
_COPY_BLOCK = 64 * 1024


def compress(numbers: list[int]) -> str:
    """``[1, 2, 3, 5]`` as ``1:3,5``."""
    out: list[str] = []
    i = 0
    values = sorted(numbers)
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        out.append(str(values[i]) if i == j else f"{values[i]}:{values[j]}")
        i = j + 1
    return ",".join(out)


def copy_messages(
    store: MaildirStore, box: MaildirMailbox, user: str, uids: list[int], folder: str
) -> Deferred[list[Appended]]:
    """Copy messages (flags and internal dates kept) into ``folder``; fire with their new UIDs."""
    try:
        if not store.folder_exists(user, folder):
            raise NoSuchMailbox(folder)
    except (NoSuchMailbox, InvalidName, ValueError) as e:
        return _fail(e)
    done: list[Appended] = []

    def one(_: object, remaining: list[int]) -> Deferred[list[Appended]] | list[Appended]:
        if not remaining:
            return done
        uid, rest = remaining[0], remaining[1:]
        info = box.get(uid)
        writer = store.append_message(user, folder, info.flags, info.internal_date)

        def record(appended: Appended) -> Deferred[list[Appended]] | list[Appended]:
            done.append(appended)
            return one(None, rest)

        return Deferred.fromCoroutine(_copy_one(box, info, writer)).addCallback(record)

    return succeed(None).addCallback(one, list(uids))


async def _copy_one(box: MaildirMailbox, info: MessageInfo, writer: AppendWriter) -> Appended:
    """Stream one message into ``writer`` a block at a time (CRLF read, stored with LF)."""
    try:
        f = await box.run(box.target.open_message, info)
        try:
            while block := await box.run(f.read, _COPY_BLOCK):
                wait = writer.write(block)
                if wait is not None:
                    await wait
        finally:
            f.close()
    except BaseException:
        writer.abort()
        raise
    return await writer.commit()


def _fail(e: Exception) -> Deferred[list[Appended]]:
    d: Deferred[list[Appended]] = Deferred()
    d.errback(Failure(e))
    return d


class SelectedCommands(SessionState):
    """The selected-state commands of an IMAP session (mixed into the connection)."""

    idling: Request | None
    _refreshing: Deferred[Any] | None = None

    # -- changes ------------------------------------------------------------------------

    def deselect(self) -> None:
        """Leave the selected mailbox (no expunge)."""
        selected, self.selected = self.selected, None
        if selected is not None and selected.unsubscribe is not None:
            selected.unsubscribe()

    def _path(self) -> str:
        assert self.selected is not None
        return self.selected.box.target.path

    def folder_changed(self) -> None:
        """The hub's listener: another session or process changed the selected folder."""
        selected = self.selected
        if selected is None or self.lost:
            return
        selected.dirty = True
        if self.idling is not None and self._refreshing is None:
            self._idle_refresh()

    def _refresh(self) -> Deferred[Changes]:
        selected = self.selected
        assert selected is not None
        selected.dirty = False
        return selected.box.refresh_changes(move_new=not selected.read_only)

    def _idle_refresh(self) -> None:
        d = self._refresh()
        self._refreshing = d

        def applied(result: Any) -> None:
            self._refreshing = None
            if isinstance(result, Failure):
                _log.failure("refreshing the mailbox failed", result)
            elif not self.lost:
                self.apply_changes(result)
            selected = self.selected
            if selected is not None and selected.dirty and self.idling is not None:
                self._idle_refresh()

        d.addBoth(applied)

    def apply_changes(self, changes: Changes) -> None:
        """Report what changed: ``EXPUNGE``, ``EXISTS`` (``RECENT``) and ``FETCH (FLAGS)``."""
        selected = self.selected
        if selected is None or not changes:
            return
        if changes.uid_validity_changed:
            self.untagged("BYE mailbox UIDVALIDITY changed; reselect")
            self.close()
            return
        seqmap = selected.seqmap
        for uid in changes.expunged:
            seq = seqmap.remove(uid)
            selected.recent.discard(uid)
            if seq is not None:
                self.untagged(f"{seq} EXPUNGE")
        if changes.added:
            seqmap.extend(changes.added)
            for uid in changes.added:
                if selected.box.get(uid).recent:
                    selected.recent.add(uid)
            self.untagged(f"{len(seqmap)} EXISTS")
            if not self.rev2:
                self.untagged(f"{len(selected.recent)} RECENT")
        for uid in changes.flags_changed:
            seq = seqmap.seq(uid)
            if seq is not None:
                entry = selected.entry(seq, uid)
                self.untagged(
                    f"{seq} FETCH (UID {uid} FLAGS ".encode() + flag_list(entry.flags) + b")"
                )

    def report_changes(self, req: Request, text: str, code: str | None = None) -> None:
        """Report pending changes of the selected mailbox, then complete ``req``."""
        selected = self.selected
        if selected is None or not selected.dirty:
            self.ok(req, text, code)
            return

        def reported(result: Any) -> None:
            if isinstance(result, Failure):
                _log.failure("refreshing the mailbox failed", result)
            else:
                self.apply_changes(result)
            self.ok(req, text, code)

        self.wait(self._refresh(), reported)

    # -- IDLE / CHECK / CLOSE / UNSELECT ------------------------------------------------

    def idle(self, req: Request) -> None:
        """``IDLE`` (RFC 2177): report changes as they happen until ``DONE``."""
        self.idling = req
        self.send(continuation("idling"))
        selected = self.selected
        if selected is not None and selected.dirty and self._refreshing is None:
            self._idle_refresh()

    def idle_line(self, line: bytes) -> None:
        """A line during IDLE: ``DONE`` ends it; anything else is a ``BAD``."""
        req, self.idling = self.idling, None
        assert req is not None
        if line.strip().upper() != b"DONE":
            self.bad(req, "expected DONE")
            return
        if self._refreshing is not None:
            self.wait(self._refreshing, lambda _: self.ok(req, "IDLE terminated"))
            return
        self.ok(req, "IDLE terminated")

    def check(self, req: Request) -> None:
        """``CHECK``: a checkpoint (every change is already on disk); reports changes."""
        self.selected.dirty = True  # type: ignore[union-attr]
        self.report_changes(req, "CHECK completed")

    def close_mailbox(self, req: Request) -> None:
        """``CLOSE``: expunge silently (unless read-only), leave the mailbox."""
        selected = self.selected
        assert selected is not None
        path = self._path()
        self.deselect()
        self.state = State.AUTHENTICATED
        if selected.read_only:
            self.ok(req, "CLOSE completed")
            return

        def done(result: Any) -> None:
            if isinstance(result, Failure):
                _log.failure("expunge on CLOSE failed", result)
            elif result:
                self.hub.changed(path, self.folder_changed)
            self.ok(req, "CLOSE completed")

        self.wait(selected.box.expunge(), done)

    def unselect(self, req: Request) -> None:
        """``UNSELECT`` (RFC 3691): leave the mailbox without expunging."""
        self.deselect()
        self.state = State.AUTHENTICATED
        self.ok(req, "UNSELECT completed")

    # -- targets ------------------------------------------------------------------------

    def _targets(
        self, req: Request, sequence: SequenceSet | None = None
    ) -> list[tuple[int, int]] | None:
        """``(seq, uid)`` of the messages a command names, or ``None`` after a ``BAD``."""
        selected = self.selected
        assert selected is not None
        seqmap = selected.seqmap
        sequence = sequence if sequence is not None else req.sequence
        assert sequence is not None
        if req.uid:
            uids = sequence.select(seqmap.uids)
            return [(seqmap.seq(uid) or 0, uid) for uid in uids]
        count = len(seqmap)
        if any(a and b and max(a, b) > count for a, b in sequence.ranges):
            self.bad(req, "invalid message sequence number")
            return None
        return [(seq, seqmap.uid(seq)) for seq in sequence.numbers(count)]

    # -- FETCH --------------------------------------------------------------------------

    def fetch(self, req: Request) -> None:
        """``FETCH set items`` / ``UID FETCH``: in batches read in the thread pool."""
        selected = self.selected
        assert selected is not None
        targets = self._targets(req)
        if targets is None:
            return
        atts = list(req.fetch)
        unseen = (
            [uid for _seq, uid in targets if "\\Seen" not in selected.box.get(uid).flags]
            if not selected.read_only and any(a.sets_seen for a in atts)
            else []
        )
        if unseen and not any(a.name == "FLAGS" for a in atts):
            atts.append(FetchAtt("FLAGS"))
        if unseen:
            d = selected.box.store_flags(unseen, ["\\Seen"], FlagMode.ADD)
            path = self._path()

            def marked(result: Any) -> None:
                if isinstance(result, Failure):
                    _log.failure("setting \\Seen failed", result)
                else:
                    self.hub.changed(path, self.folder_changed)
                self._fetch_from(req, selected, targets, atts, 0)

            self.wait(d, marked)
            return
        self._fetch_from(req, selected, targets, atts, 0)

    def _fetch_from(
        self, req: Request, selected: Selected, targets: list[tuple[int, int]],
        atts: list[FetchAtt], start: int,
    ) -> None:  # fmt: skip
        if start >= len(targets) or self.selected is not selected:
            self.ok(req, "FETCH completed")
            return
        batch = self.settings.fetch_batch
        entries: list[FetchEntry] = []
        for seq, uid in targets[start : start + batch]:
            try:
                entries.append(selected.entry(seq, uid))
            except LookupError:
                continue
        box = selected.box
        d = box.run(fetch_batch, box.target, entries, atts, self.cache, req.uid)

        def send(result: Any) -> None:
            if isinstance(result, Failure):
                _log.failure("FETCH failed", result)
                self.no(req, "cannot read messages, try later", "UNAVAILABLE")
                return
            if result:
                self.send(b"".join(result))
            self._fetch_from(req, selected, targets, atts, start + batch)

        self.wait(d, send)

    # -- SEARCH -------------------------------------------------------------------------

    def search(self, req: Request) -> None:
        """``SEARCH`` / ``UID SEARCH`` with every RFC 3501 key; ESEARCH with ``RETURN``."""
        selected = self.selected
        assert selected is not None and req.search is not None
        seqmap = selected.seqmap
        entries = []
        for seq, uid in enumerate(seqmap.uids, 1):
            try:
                entries.append(selected.entry(seq, uid))
            except LookupError:
                continue
        context = SearchContext(len(seqmap), seqmap.largest_uid)
        box = selected.box
        matched: list[FetchEntry] = []

        def batch(start: int) -> None:
            if start >= len(entries):
                self._searched(req, matched)
                return
            d = box.run(
                search_batch, box.target, entries[start : start + _SEARCH_BATCH], req.search,
                self.cache, context,
            )  # fmt: skip

            def got(result: Any) -> None:
                if isinstance(result, Failure):
                    _log.failure("SEARCH failed", result)
                    self.no(req, "cannot read messages, try later", "UNAVAILABLE")
                    return
                matched.extend(result)
                batch(start + _SEARCH_BATCH)

            self.wait(d, got)

        batch(0)

    def _searched(self, req: Request, matched: list[FetchEntry]) -> None:
        numbers = [e.info.uid if req.uid else e.seq for e in matched]
        if req.search_return is None and not self.rev2:
            self.untagged("SEARCH" + "".join(f" {n}" for n in numbers))
            self.ok(req, "SEARCH completed")
            return
        options = req.search_return or ["ALL"]
        parts = [f'(TAG "{req.tag}")']
        if req.uid:
            parts.append("UID")
        if numbers:
            if "MIN" in options:
                parts.append(f"MIN {min(numbers)}")
            if "MAX" in options:
                parts.append(f"MAX {max(numbers)}")
            if "ALL" in options:
                parts.append(f"ALL {compress(numbers)}")
        if "COUNT" in options:
            parts.append(f"COUNT {len(numbers)}")
        self.untagged("ESEARCH " + " ".join(parts))
        self.ok(req, "SEARCH completed")

    # -- STORE --------------------------------------------------------------------------

    def store_flags(self, req: Request) -> None:
        """``STORE set [+-]FLAGS[.SILENT] (flags)`` / ``UID STORE``: one batch in the pool."""
        selected = self.selected
        assert selected is not None
        if selected.read_only:
            self.no(req, "mailbox is read-only", "READ-ONLY")
            return
        targets = self._targets(req)
        if targets is None:
            return
        flags = [f for f in req.flags if f.lower() != "\\recent"]
        uids = [uid for _seq, uid in targets]
        if not uids:
            self.ok(req, "STORE completed")
            return
        path = self._path()

        def stored(result: Any) -> None:
            if isinstance(result, Failure):
                _log.failure("STORE failed", result)
                self.no(req, "cannot change flags, try later", "UNAVAILABLE")
                return
            self.hub.changed(path, self.folder_changed)
            if not req.silent and self.selected is selected:
                out = []
                for info in result:
                    seq = selected.seqmap.seq(info.uid)
                    if seq is None:
                        continue
                    entry = FetchEntry(seq, info, info.uid in selected.recent)
                    uid_part = b"UID %d " % info.uid if req.uid else b""
                    out.append(
                        b"* %d FETCH (%sFLAGS %s)\r\n" % (seq, uid_part, flag_list(entry.flags))
                    )
                if out:
                    self.send(b"".join(out))
            self.ok(req, "STORE completed")

        self.wait(selected.box.store_flags(uids, flags, _MODES[req.store_mode]), stored)

    # -- EXPUNGE ------------------------------------------------------------------------

    def expunge(self, req: Request) -> None:
        """``EXPUNGE`` / ``UID EXPUNGE set`` (UIDPLUS)."""
        selected = self.selected
        assert selected is not None
        if selected.read_only:
            self.no(req, "mailbox is read-only", "READ-ONLY")
            return
        uids: list[int] | None = None
        if req.uid:
            targets = self._targets(req)
            if targets is None:
                return
            uids = [uid for _s, uid in targets if "\\Deleted" in selected.box.get(uid).flags]
        self._expunge(req, selected, uids, "EXPUNGE completed", None)

    def _expunge(
        self, req: Request, selected: Selected, uids: list[int] | None, text: str, code: str | None
    ) -> None:
        path = self._path()

        def done(result: Any) -> None:
            if isinstance(result, Failure):
                _log.failure("EXPUNGE failed", result)
                self.no(req, "cannot expunge, try later", "UNAVAILABLE")
                return
            for uid in sorted(result):
                seq = selected.seqmap.remove(uid)
                selected.recent.discard(uid)
                if seq is not None:
                    self.untagged(f"{seq} EXPUNGE")
            if result:
                self.hub.changed(path, self.folder_changed)
            self.ok(req, text, code)

        self.wait(selected.box.expunge(uids), done)

    # -- COPY / MOVE --------------------------------------------------------------------

    def copy(self, req: Request) -> None:
        """``COPY set mailbox`` / ``UID COPY`` with ``COPYUID`` (UIDPLUS)."""
        self._copy(req, move=False)

    def move(self, req: Request) -> None:
        """``MOVE set mailbox`` (RFC 6851): copy, then expunge from here."""
        self._copy(req, move=True)

    def _copy(self, req: Request, move: bool) -> None:
        selected = self.selected
        assert selected is not None and self.user is not None
        if move and selected.read_only:
            self.no(req, "mailbox is read-only", "READ-ONLY")
            return
        targets = self._targets(req)
        if targets is None:
            return
        try:
            folder = self.folder_name(req.mailbox)
        except ValueError:
            self.bad(req, "bad mailbox name")
            return
        uids = [uid for _s, uid in targets]
        verb = "MOVE" if move else "COPY"
        if not uids:
            self.ok(req, f"{verb} completed")
            return
        user = self.user
        d = copy_messages(self.store, selected.box, user, uids, folder)

        def copied(result: Any) -> None:
            if isinstance(result, Failure):
                if result.check(NoSuchMailbox):
                    self.no(req, "no such mailbox", "TRYCREATE")
                elif result.check(InvalidName, ValueError):
                    self.no(req, "bad mailbox name", "CANNOT")
                else:
                    _log.failure(f"{verb} failed", result)
                    self.no(req, f"{verb} failed, try later", "UNAVAILABLE")
                return
            self.hub.changed(self.store.folder_path(user, folder), self.folder_changed)
            code = (
                f"COPYUID {result[0].uid_validity} {compress(uids)} "
                f"{compress([a.uid for a in result])}"
                if result
                else None
            )
            if not move:
                self.ok(req, f"{verb} completed", code)
                return
            if code:
                self.untagged(f"OK [{code}] moved")
            self._expunge(req, selected, uids, f"{verb} completed", None)

        self.wait(d, copied)

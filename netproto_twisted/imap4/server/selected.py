"""IMAP commands on the selected mailbox: FETCH, SEARCH, STORE, COPY, MOVE, EXPUNGE, CLOSE,
UNSELECT, CHECK, IDLE, and the untagged reports of what other sessions changed."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from functools import partial
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.core.pacer import Pacer, PacerStopped
from netproto_twisted.core.streaming import StreamStopped
from netproto_twisted.imap4.server import fetchsend
from netproto_twisted.imap4.server.commands import State
from netproto_twisted.imap4.server.copying import copy_messages
from netproto_twisted.imap4.server.fetch import (
    FetchEntry,
    SearchContext,
    fetch_pieces,
    search_batch,
)
from netproto_twisted.imap4.server.state import Selected, SessionState
from netproto_twisted.imap4.wire.commands import Request
from netproto_twisted.imap4.wire.fetchspec import FetchAtt
from netproto_twisted.imap4.wire.search import SearchKey
from netproto_twisted.imap4.wire.serialise import continuation, flag_list
from netproto_twisted.imap4.wire.tokens import SequenceSet
from netproto_twisted.mailstore.errors import InvalidName, NoSuchMailbox, NoSuchMessage
from netproto_twisted.mailstore.folder import FlagMode
from netproto_twisted.mailstore.maildir import MaildirMailbox
from netproto_twisted.mailstore.seqmap import Changes

__all__ = [
    "SelectedCommands",
    "compress",
    "missing_uids",
    "ranges_text",
    "uses_modseq",
]

_log = Logger(namespace="netproto.imap4.server")
_MODES = {"": FlagMode.REPLACE, "+": FlagMode.ADD, "-": FlagMode.REMOVE}
_SEARCH_BATCH = 5000


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


def ranges_text(ranges: Sequence[tuple[int, int]]) -> str:
    """``[(1, 3), (5, 5)]`` as ``1:3,5``."""
    return ",".join(str(a) if a == b else f"{a}:{b}" for a, b in ranges)


def missing_uids(
    spans: Sequence[tuple[int, int]], present: Sequence[int], above: int = 0
) -> list[tuple[int, int]]:
    """The ranges of ``spans`` (ascending, merged) above ``above`` without a UID of ``present``.

    ``present`` is ascending.  Work is proportional to the UIDs present, not
    to the width of the spans (``1:4294967295`` is one range).
    """
    out: list[tuple[int, int]] = []
    for a, b in spans:
        a = max(a, above + 1, 1)
        if a > b:
            continue
        start = a
        i = bisect_left(present, a)
        end = bisect_right(present, b)
        for uid in present[i:end]:
            if uid > start:
                out.append((start, uid - 1))
            start = uid + 1
        if start <= b:
            out.append((start, b))
    return out


def uses_modseq(key: SearchKey | None) -> bool:
    """Whether a SEARCH key has a ``MODSEQ`` criterion (the result then carries ``MODSEQ``)."""
    if key is None:
        return False
    if key.name == "MODSEQ":
        return True
    return any(isinstance(k, SearchKey) and uses_modseq(k) for k in key.args)


def _modseq(box: MaildirMailbox, uid: int) -> int:
    try:
        return box.get(uid).modseq
    except NoSuchMessage:
        return 0


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
        vanished: list[int] = []
        for uid in changes.expunged:
            seq = seqmap.remove(uid)
            selected.recent.discard(uid)
            if seq is not None:
                if self.qresync:
                    vanished.append(uid)
                else:
                    self.untagged(f"{seq} EXPUNGE")
        if vanished:
            self.untagged("VANISHED " + compress(vanished))
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
                self.send(self.flags_fetch(selected.entry(seq, uid), with_uid=True))

    def flags_fetch(self, entry: FetchEntry, with_uid: bool, flags: bool = True) -> bytes:
        """``* n FETCH ([UID u] [FLAGS (...)] [MODSEQ (m)])`` for a flag change."""
        items = []
        if with_uid or self.qresync:
            items.append(b"UID %d" % entry.info.uid)
        if flags:
            items.append(b"FLAGS " + flag_list(entry.flags))
        if self.condstore:
            items.append(b"MODSEQ (%d)" % entry.info.modseq)
        return b"* %d FETCH (" % entry.seq + b" ".join(items) + b")\r\n"

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
        """``FETCH set items`` / ``UID FETCH``: in batches read in the thread pool.

        ``UID FETCH ... (CHANGEDSINCE n)`` first reports pending changes (a UID
        command may carry ``EXPUNGE``/``VANISHED``), so that what it answers
        matches the mailbox as it is.
        """
        selected = self.selected
        assert selected is not None
        if req.uid and selected.dirty and "CHANGEDSINCE" in req.params:

            def reported(result: Any) -> None:
                if isinstance(result, Failure):
                    _log.failure("refreshing the mailbox failed", result)
                else:
                    self.apply_changes(result)
                if self.selected is selected:
                    self._fetch_now(req, selected)
                else:
                    self.ok(req, "FETCH completed")

            self.wait(self._refresh(), reported)
            return
        self._fetch_now(req, selected)

    def _fetch_now(self, req: Request, selected: Selected) -> None:
        targets = self._targets(req)
        if targets is None:
            return
        atts = list(req.fetch)
        changed_since = req.params.get("CHANGEDSINCE")
        if changed_since is not None or any(a.name == "MODSEQ" for a in atts):
            self.condstore = True
        if req.params.get("VANISHED") and not (req.uid and self.qresync):
            self.bad(req, "VANISHED needs UID FETCH and ENABLE QRESYNC")
            return
        if isinstance(changed_since, int):
            targets = [(s, u) for s, u in targets if _modseq(selected.box, u) > changed_since]
        unseen = (
            [uid for _seq, uid in targets if "\\Seen" not in selected.box.get(uid).flags]
            if not selected.read_only and any(a.sets_seen for a in atts)
            else []
        )
        if unseen and not any(a.name == "FLAGS" for a in atts):
            atts.append(FetchAtt("FLAGS"))
        if (
            self.condstore
            and (changed_since is not None or any(a.name == "FLAGS" for a in atts))
            and not any(a.name == "MODSEQ" for a in atts)
        ):
            atts.append(FetchAtt("MODSEQ"))
        if req.params.get("VANISHED") and isinstance(changed_since, int):
            self._fetch_vanished(req, selected, changed_since, targets, atts, unseen)
            return
        self._fetch_marking(req, selected, targets, atts, unseen)

    def _fetch_vanished(
        self, req: Request, selected: Selected, since: int, targets: list[tuple[int, int]],
        atts: list[FetchAtt], unseen: list[int],
    ) -> None:  # fmt: skip
        """``UID FETCH ... (CHANGEDSINCE n VANISHED)``: ``VANISHED (EARLIER)`` first."""
        assert req.sequence is not None
        box = selected.box
        seqmap = selected.seqmap
        present = seqmap.uids
        spans = req.sequence.merged(max(box.uid_next - 1, 1))

        def got(result: Any) -> None:
            if isinstance(result, Failure):
                _log.failure("reading expunged UIDs failed", result)
                result = None
            if result is None:  # forgotten that far back: every UID of the set not here
                text = ranges_text(missing_uids(spans, present))
            else:  # (EARLIER) never names a UID the session still shows
                text = compress(
                    [u for u in SequenceSet(tuple(spans)).select(result) if seqmap.seq(u) is None]
                )
            if text:
                self.untagged("VANISHED (EARLIER) " + text)
            self._fetch_marking(req, selected, targets, atts, unseen)

        self.wait(box.vanished_since(since), got)

    def _fetch_marking(
        self, req: Request, selected: Selected, targets: list[tuple[int, int]],
        atts: list[FetchAtt], unseen: list[int],
    ) -> None:  # fmt: skip
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
        atts: list[FetchAtt], start: int, pacer: Pacer | None = None,
    ) -> None:  # fmt: skip
        """Answer ``targets[start:]`` a batch at a time, paced (see :mod:`.fetchsend`)."""
        if start >= len(targets) or self.selected is not selected:
            self._fetch_end(pacer)
            self.ok(req, "FETCH completed")
            return
        consumer = self.consumer
        if pacer is None and consumer is not None:
            pacer = Pacer()
            consumer.registerProducer(pacer, True)
        if pacer is not None and pacer.paused:
            self.wait(
                pacer.ready(),
                lambda _: self._fetch_from(req, selected, targets, atts, start, pacer),
            )
            return
        batch = self.settings.fetch_batch
        entries: list[FetchEntry] = []
        ends: list[int] = []  # the index in targets after each entry
        for n, (seq, uid) in enumerate(targets[start : start + batch], start + 1):
            try:
                entries.append(selected.entry(seq, uid))
            except LookupError:
                continue
            ends.append(n)
        box = selected.box
        landed = self.prefetcher.wait_for(box.target.path, entries) if self.prefetcher else None
        if landed is not None:  # the folder's read-ahead brings the first message: wait
            again = partial(self._fetch_from, req, selected, targets, atts, start, pacer)
            return self.wait(landed, lambda _: again())
        streamed = fetchsend.STREAM_OVER if pacer is not None else None
        build = partial(fetch_pieces, budget=fetchsend.BATCH_BUDGET, stream_over=streamed)
        d = box.run(build, box.target, entries, atts, self.cache, req.uid)

        def built(result: Any) -> None:
            if isinstance(result, Failure):
                _log.failure("FETCH failed", result)
                self._fetch_end(pacer)
                self.no(req, "cannot read messages, try later", "UNAVAILABLE")
                return
            pieces, count = result
            following = ends[count - 1] if 0 < count < len(entries) else start + batch
            if pacer is None or all(isinstance(p, bytes) for p in pieces):
                if pieces:
                    self.send(b"".join(pieces))
                self._fetch_from(req, selected, targets, atts, following, pacer)
                return
            assert consumer is not None
            sender = fetchsend.PieceSender(self.send, consumer, pacer, box.run, box.target)

            def sent(outcome: Any) -> None:
                if isinstance(outcome, Failure):
                    # Part of a literal is out: the response cannot be completed.
                    if not outcome.check(StreamStopped, PacerStopped):  # else: the client left
                        _log.failure("FETCH failed mid-literal", outcome)
                    self._fetch_end(pacer)
                    self.close()
                    return
                self._fetch_from(req, selected, targets, atts, following, pacer)

            self.wait(Deferred.fromCoroutine(sender.send(pieces)), sent)

        self.wait(d, built)

    def _fetch_end(self, pacer: Pacer | None) -> None:
        fetchsend.release(self.consumer, pacer)

    # -- SEARCH -------------------------------------------------------------------------

    def search(self, req: Request) -> None:
        """``SEARCH`` / ``UID SEARCH`` with every RFC 3501 key; ESEARCH with ``RETURN``."""
        selected = self.selected
        assert selected is not None and req.search is not None
        if uses_modseq(req.search):
            self.condstore = True
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
        modseq = (
            max(e.info.modseq for e in matched) if matched and uses_modseq(req.search) else None
        )
        if req.search_return is None and not self.rev2:
            suffix = f" (MODSEQ {modseq})" if modseq is not None else ""
            self.untagged("SEARCH" + "".join(f" {n}" for n in numbers) + suffix)
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
        if modseq is not None and "ALL" not in options and "COUNT" not in options:
            # Only MIN and/or MAX: the highest modseq of those messages (RFC 7162 3.1.5).
            ends = {min(numbers)} if "MIN" in options else set()
            if "MAX" in options:
                ends.add(max(numbers))
            modseq = max(
                (e.info.modseq for e, n in zip(matched, numbers, strict=True) if n in ends),
                default=modseq,
            )
        if modseq is not None:
            parts.append(f"MODSEQ {modseq}")
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
        unchanged_since = req.params.get("UNCHANGEDSINCE")
        if unchanged_since is not None:
            self.condstore = True
        if not uids:
            self.ok(req, "STORE completed")
            return
        path = self._path()

        def stored(result: Any) -> None:
            if isinstance(result, Failure):
                _log.failure("STORE failed", result)
                self.no(req, "cannot change flags, try later", "UNAVAILABLE")
                return
            if result.updated:
                self.hub.changed(path, self.folder_changed)
            seqmap = selected.seqmap
            if (not req.silent or self.condstore) and self.selected is selected:
                out = []
                for info in result.updated:
                    seq = seqmap.seq(info.uid)
                    if seq is not None:
                        entry = FetchEntry(seq, info, info.uid in selected.recent)
                        out.append(self.flags_fetch(entry, req.uid, flags=not req.silent))
                if out:
                    self.send(b"".join(out))
            if result.modified:
                numbers = (
                    result.modified
                    if req.uid
                    else [n for n in map(seqmap.seq, result.modified) if n is not None]
                )
                self.ok(req, "conditional STORE failed", f"MODIFIED {compress(numbers)}")
                return
            self.ok(req, "STORE completed")

        mode = _MODES[req.store_mode]
        since = unchanged_since if isinstance(unchanged_since, int) else None
        self.wait(selected.box.store_flags_conditional(uids, flags, mode, since), stored)

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
            vanished: list[int] = []
            for uid in sorted(result):
                seq = selected.seqmap.remove(uid)
                selected.recent.discard(uid)
                if seq is not None:
                    if self.qresync:
                        vanished.append(uid)
                    else:
                        self.untagged(f"{seq} EXPUNGE")
            if vanished:
                self.untagged("VANISHED " + compress(vanished))
            if result:
                self.hub.changed(path, self.folder_changed)
            final = code
            if final is None and self.condstore:
                final = f"HIGHESTMODSEQ {selected.box.highest_modseq}"
            self.ok(req, text, final)

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

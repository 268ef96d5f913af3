"""One Maildir folder, synchronously: scan, assign UIDs, flags, expunge, keywords.

Everything here blocks on the disk; :mod:`netproto_twisted.mailstore.maildir`
runs it in a thread pool.  It never raises on a foreign or damaged file in
``cur/`` or ``new/``: such entries are skipped.
"""

from __future__ import annotations

import enum
import os
import re
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import BinaryIO, cast

from twisted.logger import Logger

from netproto_twisted.core.errors import LimitExceeded
from netproto_twisted.mailstore.eol import CrlfReader, read_head, to_crlf
from netproto_twisted.mailstore.errors import NoSuchMailbox, NoSuchMessage
from netproto_twisted.mailstore.filenames import (
    MAX_KEYWORDS,
    SYSTEM_FLAGS,
    KeywordTable,
    ParsedName,
    arrival_key,
    flags_from_letters,
    format_info,
    is_acceptable_filename,
    letters_for_flags,
    parse_filename,
    parse_keywords_file,
    serialize_keywords_file,
)
from netproto_twisted.mailstore.fsops import LOCK_TIMEOUT_SECONDS, DotLock, FsOps, atomic_write
from netproto_twisted.mailstore.index import FolderIndex
from netproto_twisted.mailstore.snapshot import MessageInfo, Snapshot, StoreResult
from netproto_twisted.mailstore.uidlist import (
    UidList,
    UidListError,
    UidRecord,
    parse_uidlist,
    serialize_uidlist,
)

__all__ = [
    "KEYWORDS_NAME",
    "TMP_MAX_AGE_SECONDS",
    "UIDLIST_NAME",
    "FlagMode",
    "FolderMemo",
    "MaildirFolder",
    "MessageInfo",
    "Snapshot",
    "StoreResult",
]

UIDLIST_NAME = "dovecot-uidlist"
KEYWORDS_NAME = "dovecot-keywords"
TMP_MAX_AGE_SECONDS = 36 * 3600
"""Files in ``tmp/`` older than this are crash leftovers and get removed (as Dovecot does)."""

_log = Logger(namespace="netproto.mailstore")
_CANONICAL = {flag.lower(): flag for flag in SYSTEM_FLAGS}
_NO_FLAGS: frozenset[str] = frozenset()


class FlagMode(enum.Enum):
    """How :meth:`MaildirFolder.store_flags` combines the given flags with the old ones."""

    REPLACE = "replace"
    ADD = "add"
    REMOVE = "remove"


class FolderMemo:
    """What a process last saw of one folder, so that a rescan of an unchanged folder is cheap.

    Shared by every :class:`MaildirFolder` of one directory in a process
    (the store keeps one per folder).  It holds the parsed ``dovecot-uidlist``
    with the bytes it was parsed from (the file is still read at every scan,
    one read, but parsed again only when its bytes changed) and the messages
    of the last scan by base (``\\Recent`` off), with the keyword letters
    their flags were read with,
    so that a file whose name did not change is neither parsed nor
    ``stat``-ed again.  A file's name and content never change together in
    Maildir (flags change the name, content never changes), so a name seen
    before describes the same message.  Thread-safe: each attribute is
    replaced whole.
    """

    def __init__(self) -> None:
        self.uidlist: tuple[bytes, UidList] | None = None
        self.messages: dict[str, MessageInfo] = {}
        #: The keyword letters the messages' flags were read with.
        self.keywords: dict[int, str] = {}


def _copy_uidlist(uidlist: UidList) -> UidList:
    """A copy a sync may change (its records list; the records themselves are not changed)."""
    return replace(
        uidlist,
        header_extensions=list(uidlist.header_extensions),
        records=list(uidlist.records),
    )


def canonical_flag(flag: str) -> str:
    """Return the canonical spelling of a system flag; keywords are returned as given."""
    return _CANONICAL.get(flag.lower(), flag)


class MaildirFolder:
    """Blocking operations on one Maildir folder directory (``cur/ new/ tmp/``)."""

    def __init__(
        self,
        path: str,
        fs: FsOps,
        *,
        clock: Callable[[], float] = time.time,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
        index: FolderIndex | None = None,
        memo: FolderMemo | None = None,
    ) -> None:
        self.path = path
        self._index = index
        self.memo = memo if memo is not None else FolderMemo()
        """What this process last saw of the folder (shared when the store gives one)."""
        self.fs = fs
        self._clock = clock
        self._lock_timeout = lock_timeout
        self.cur = os.path.join(path, "cur")
        self.new = os.path.join(path, "new")
        self.tmp = os.path.join(path, "tmp")
        self.uidlist_path = os.path.join(path, UIDLIST_NAME)
        self.keywords_path = os.path.join(path, KEYWORDS_NAME)

    @property
    def index(self) -> FolderIndex:
        """The folder's persistent index (mod-sequences); made on first use."""
        if self._index is None:
            self._index = FolderIndex(self.path, clock=self._clock)
        return self._index

    def exists(self) -> bool:
        """Tell whether the folder has its ``cur/``, ``new/`` and ``tmp/``."""
        return all(os.path.isdir(d) for d in (self.cur, self.new, self.tmp))

    def uidlist_lock(self) -> DotLock:
        """Return (not yet acquired) the ``dovecot-uidlist.lock`` lock."""
        return DotLock(self.uidlist_path + ".lock", timeout=self._lock_timeout, clock=self._clock)

    # -- UIDs -------------------------------------------------------------

    def _read_uidlist(self) -> tuple[UidList, bool]:
        """Read the uidlist under the lock: (list, needs rewrite).

        A file whose bytes are those last read or written is not parsed again.
        """
        try:
            with open(self.uidlist_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return UidList(uid_validity=self._new_validity(0)), True
        memo = self.memo.uidlist
        if memo is not None and memo[0] == data:
            return _copy_uidlist(memo[1]), False
        try:
            uidlist = parse_uidlist(data)
        except UidListError as exc:
            match = re.match(rb"3 (?:.* )?V(\d{1,10})\b|1 (\d{1,10}) ", data)
            old = int((match.group(1) or match.group(2)) if match else 0)
            validity = self._new_validity(old)
            _log.warn(
                "{path}: corrupt uidlist ({reason}); rebuilt with UIDVALIDITY {validity}",
                path=self.uidlist_path,
                reason=str(exc),
                validity=validity,
            )
            return UidList(uid_validity=validity), True
        self.memo.uidlist = (data, _copy_uidlist(uidlist))
        return uidlist, False

    def _new_validity(self, old: int) -> int:
        return max(int(self._clock()), old + 1, 1) & 0xFFFFFFFF or 1

    def _write_uidlist(self, uidlist: UidList, durable: bool = True) -> None:
        """Replace the uidlist; ``durable=False`` for one that only forgets records.

        A uidlist that gives new UIDs (or a new UIDVALIDITY) is on disk,
        directory entry included, before this returns: the UIDs may be shown
        right after.  One that only drops the records of removed files may
        come back as it was after a crash (those records are dropped again at
        the next scan), so its directory is not flushed.
        """
        data = serialize_uidlist(uidlist)
        atomic_write(self.uidlist_path, data, self.fs, durable=durable)
        self.memo.uidlist = (data, _copy_uidlist(uidlist))

    def _scan(
        self,
        known: Mapping[str, str],
        parsed_names: dict[str, ParsedName] | None = None,
        stats: dict[str, os.stat_result] | None = None,
    ) -> dict[str, tuple[str, str]]:
        """Return base -> (subdir, file name) for every acceptable message file.

        ``known``: base by file name for names seen before (not parsed again);
        the other names parsed are put in ``parsed_names``, and their
        ``lstat`` (taken from the directory entry, no path built) in ``stats``.
        """
        if parsed_names is None:
            parsed_names = {}
        if stats is None:
            stats = {}
        found: dict[str, tuple[str, str]] = {}
        for subdir in ("new", "cur"):  # cur wins when a file is seen in both
            try:
                entries = list(os.scandir(os.path.join(self.path, subdir)))
            except FileNotFoundError as exc:
                raise NoSuchMailbox(self.path) from exc
            for entry in entries:
                name = entry.name
                base = known.get(name)
                try:
                    if base is not None:
                        if not entry.is_file(follow_symlinks=False):
                            continue
                    else:
                        if not is_acceptable_filename(name):
                            continue
                        st = _entry_stat(entry)
                        if not stat.S_ISREG(st.st_mode):
                            continue
                        parsed = parsed_names[name] = parse_filename(name)
                        stats[name] = st
                        base = parsed.base
                except OSError:
                    continue
                found[base] = (subdir, name)
        return found

    def sync(
        self,
        move_new: bool = True,
        previous: Mapping[str, MessageInfo] | None = None,
        *,
        modseqs: bool = True,
    ) -> Snapshot:
        """Scan the folder, give new files UIDs, optionally move ``new/`` to ``cur/``.

        ``previous`` (infos of an earlier snapshot, by base; by default the
        last scan of this process, :attr:`memo`) saves a ``stat`` and a name
        parse for every message whose file name has not changed since.
        ``modseqs=False`` leaves the index alone (for a reader with no use
        for mod-sequences, such as POP3): every modseq and the snapshot's
        HIGHESTMODSEQ are then 0, and the next sync that wants them
        reconciles the index with the folder as it finds it.
        """
        if not self.exists():
            raise NoSuchMailbox(self.path)
        keywords = self.read_keywords()
        if previous is None:
            # Flags of unchanged names come from the memo: only while the keyword
            # letters mean what they meant then.
            same = self.memo.keywords == keywords.by_index
            previous = self.memo.messages if same else {}
        recent: set[str] = set()
        with self.uidlist_lock() as lock:
            uidlist, changed = self._read_uidlist()
            assigned = changed  # a new uidlist (new UIDVALIDITY) must be durable too
            parsed_names: dict[str, ParsedName] = {}
            stats: dict[str, os.stat_result] = {}
            on_disk = self._scan(
                {info.filename: base for base, info in previous.items()}, parsed_names, stats
            )
            if changed and on_disk and not os.path.exists(self.uidlist_path):
                _log.info(
                    "{path}: no uidlist; {n} messages get new UIDs under UIDVALIDITY {v}",
                    path=self.path,
                    n=len(on_disk),
                    v=uidlist.uid_validity,
                )
            kept = [record for record in uidlist.records if record.base in on_disk]
            changed = changed or len(kept) != len(uidlist.records)
            known = {record.base for record in kept}
            for base in sorted((b for b in on_disk if b not in known), key=arrival_key):
                kept.append(UidRecord(uid=uidlist.next_uid, base=base))
                uidlist.next_uid += 1
                changed = assigned = True
            uidlist.records = kept
            if changed:
                self._write_uidlist(uidlist, durable=assigned)
            for count, (base, (subdir, name)) in enumerate(list(on_disk.items())):
                if subdir != "new":
                    continue
                if count % 1000 == 999:
                    lock.touch()
                if move_new:
                    try:
                        self.fs.rename(os.path.join(self.new, name), os.path.join(self.cur, name))
                        on_disk[base] = ("cur", name)
                    except FileNotFoundError:
                        pass  # moved or deleted by another process; located below
                recent.add(base)
        # Each message as (info known before, or None; uid, base, name, subdir, size, flags,
        # mtime): the infos are made once their modseqs are known.
        rows: list[tuple[MessageInfo | None, int, str, str, str, int, frozenset[str], float]] = []
        flag_sets: dict[str, frozenset[str]] = {}  # by info letters, for this scan
        for record in uidlist.records:
            base = record.base
            uid = record.uid
            subdir, name = on_disk[base]
            is_recent = base in recent
            prev = previous.get(base)
            if (
                prev is not None
                and prev.filename == name
                and prev.subdir == subdir
                and prev.uid == uid
            ):
                if prev.recent != is_recent:
                    prev = _with_recent(prev, is_recent)
                rows.append((prev, uid, base, name, subdir, 0, _NO_FLAGS, 0.0))
                continue
            st = stats.get(name)
            parsed = parsed_names.get(name)
            if st is None or parsed is None:
                info = self._info(uid, subdir, name, keywords, is_recent, parsed)
                if info is None:
                    located = self.locate(base)
                    if located is not None:
                        info = self._info(uid, *located, keywords, is_recent)
                if info is not None:
                    rows.append((info, uid, base, name, subdir, 0, _NO_FLAGS, 0.0))
                continue
            letters = parsed.letters
            flags = flag_sets.get(letters)
            if flags is None:
                flags = flag_sets[letters] = flags_from_letters(letters, keywords)
            size = _best_size(parsed.virtual_size, parsed.size, st.st_size)
            rows.append((None, uid, base, name, subdir, size, flags, st.st_mtime))
        if modseqs:
            reconciled = self.index.reconcile(
                uidlist.uid_validity,
                ((r[1], r[6], r[5]) if r[0] is None else (r[1], r[0].flags, r[0].size)
                 for r in rows),
            )  # fmt: skip
            by_uid = reconciled.modseqs
            highest_modseq = reconciled.highest_modseq
        else:
            by_uid = dict.fromkeys([row[1] for row in rows], 0)
            highest_modseq = 0
        final = tuple(
            (
                MessageInfo(uid, base, name, subdir, size, flags, mtime, base in recent,
                            by_uid[uid])
                if known is None
                else known
                if known.modseq == by_uid[uid]
                else _with_modseq(known, by_uid[uid])
            )
            for known, uid, base, name, subdir, size, flags, mtime in rows
        )  # fmt: skip
        self.memo.messages = {m.base: _with_recent(m, False) if m.recent else m for m in final}
        self.memo.keywords = dict(keywords.by_index)
        return Snapshot(
            uid_validity=uidlist.uid_validity,
            uid_next=uidlist.next_uid,
            guid=uidlist.guid,
            messages=final,
            highest_modseq=highest_modseq,
        )

    def _info(
        self,
        uid: int,
        subdir: str,
        name: str,
        keywords: KeywordTable,
        recent: bool,
        parsed: ParsedName | None = None,
    ) -> MessageInfo | None:
        try:
            st = os.stat(os.path.join(self.path, subdir, name))
        except OSError:
            return None
        if parsed is None:
            parsed = parse_filename(name)
        return MessageInfo(
            uid=uid,
            base=parsed.base,
            filename=name,
            subdir=subdir,
            size=_best_size(parsed.virtual_size, parsed.size, st.st_size),
            flags=flags_from_letters(parsed.letters, keywords),
            internal_date=st.st_mtime,
            recent=recent,
        )

    def assign_uid(self, base: str) -> tuple[int, int]:
        """Give one just-added file a UID (IMAP APPEND): return (uidvalidity, uid)."""
        with self.uidlist_lock():
            uidlist, changed = self._read_uidlist()
            for record in uidlist.records:
                if record.base == base:
                    if changed:
                        self._write_uidlist(uidlist)
                    return uidlist.uid_validity, record.uid
            uid = uidlist.next_uid
            uidlist.records.append(UidRecord(uid=uid, base=base))
            uidlist.next_uid += 1
            self._write_uidlist(uidlist)
            return uidlist.uid_validity, uid

    # -- messages ---------------------------------------------------------

    def locate(self, base: str) -> tuple[str, str] | None:
        """Find a message's current (subdir, file name) by its base, or None."""
        for subdir in ("cur", "new"):
            directory = os.path.join(self.path, subdir)
            try:
                names = os.listdir(directory)
            except FileNotFoundError:
                continue
            for name in names:
                if name == base or name.startswith(base + ":"):
                    return subdir, name
        return None

    def open_stored(self, info: MessageInfo) -> BinaryIO:
        """Open a message's file for reading as stored (LF or CRLF line endings)."""
        try:
            return open(os.path.join(self.path, info.subdir, info.filename), "rb")
        except FileNotFoundError:
            located = self.locate(info.base)
            if located is None:
                raise NoSuchMessage(info.uid) from None
            return open(os.path.join(self.path, *located), "rb")

    def read_message(self, info: MessageInfo) -> bytes:
        """Return a whole message with CRLF line endings (for callers that need it all)."""
        with self.open_stored(info) as f:
            return to_crlf(f.read())

    def read_head(self, info: MessageInfo) -> tuple[bytes, int]:
        """Return a message's header (to its blank line, CRLF) and its whole CRLF size.

        Reads the file only up to the end of its header when the name gives
        the size (``W=``); most messages are one read of
        :data:`~netproto_twisted.mailstore.eol.HEAD_READ` bytes.  IMAP's
        ENVELOPE and header SEARCH need no more.
        """
        known = info.crlf_size
        try:
            fd = os.open(os.path.join(self.path, info.subdir, info.filename), os.O_RDONLY)
        except FileNotFoundError:
            located = self.locate(info.base)
            if located is None:
                raise NoSuchMessage(info.uid) from None
            fd = os.open(os.path.join(self.path, *located), os.O_RDONLY)
        try:
            return read_head(fd, known)
        finally:
            os.close(fd)

    def open_message(self, info: MessageInfo) -> BinaryIO:
        """Open a message for reading with CRLF line endings, whatever its file holds.

        A :class:`~netproto_twisted.mailstore.eol.CrlfReader` (streaming;
        offsets in CRLF octets); a file whose name says it holds CRLF
        already (``S=`` equal to ``W=``) is read as it is.
        """
        parsed = parse_filename(info.filename)
        plain = parsed.size is not None and parsed.size == parsed.virtual_size
        return cast(BinaryIO, CrlfReader(self.open_stored(info), plain=plain))

    def store_flags(
        self,
        info: MessageInfo,
        flags: Iterable[str],
        mode: FlagMode,
        keywords: KeywordTable | None = None,
    ) -> MessageInfo:
        """Change a message's flags by renaming its file into ``cur/``; return the new info.

        ``keywords``: the folder's keyword table if the caller just read it.
        """
        given = {canonical_flag(flag) for flag in flags}
        location: tuple[str, str] | None = (info.subdir, info.filename)
        for _attempt in range(5):
            if location is None:
                break
            subdir, name = location
            parsed = parse_filename(name)
            if keywords is None or _attempt:
                keywords = self.read_keywords()
            current = set(flags_from_letters(parsed.letters, keywords))
            wanted = _combine(current, given, mode)
            letters, missing = letters_for_flags(wanted, keywords, keep=parsed.letters)
            if missing:
                keywords = self._assign_keywords(missing)
                letters, missing = letters_for_flags(wanted, keywords, keep=parsed.letters)
            new_name = parsed.base + format_info(letters)
            new_info = replace(
                info, filename=new_name, subdir="cur", flags=flags_from_letters(letters, keywords)
            )
            if (subdir, name) == ("cur", new_name):
                return new_info
            try:
                self.fs.rename(
                    os.path.join(self.path, subdir, name), os.path.join(self.cur, new_name)
                )
            except FileNotFoundError:
                location = self.locate(info.base)
                continue
            return new_info
        raise NoSuchMessage(info.uid)

    def store_flags_batch(
        self, infos: Iterable[MessageInfo], flags: Iterable[str], mode: FlagMode
    ) -> list[MessageInfo]:
        """:meth:`store_flags` for many messages: keywords assigned and read once.

        The changes are recorded in the index in one transaction (one new modseq).
        """
        return self.store_flags_conditional(infos, flags, mode).updated

    def store_flags_conditional(
        self,
        infos: Iterable[MessageInfo],
        flags: Iterable[str],
        mode: FlagMode,
        unchanged_since: int | None = None,
    ) -> StoreResult:
        """Store flags of many messages, skipping those whose modseq is above ``unchanged_since``.

        CONDSTORE's ``STORE (UNCHANGEDSINCE n)``: the test and the changes
        happen in one index transaction, so no other writer of the index
        slips in between.  A message whose flags do not change keeps its modseq.
        """
        given = {canonical_flag(flag) for flag in flags}
        keywords = self.read_keywords()
        if mode is not FlagMode.REMOVE:
            _letters, missing = letters_for_flags(given, keywords)
            if missing:
                keywords = self._assign_keywords(missing)
        updated: list[MessageInfo] = []
        modified: list[int] = []
        with self.index.writing() as tx:
            for info in infos:
                current = tx.modseq(info.uid)
                if unchanged_since is not None and (current or 0) > unchanged_since:
                    modified.append(info.uid)
                    continue
                new = self.store_flags(info, given, mode, keywords)
                modseq = tx.set_flags(new.uid, new.flags, new.size)
                updated.append(replace(new, modseq=modseq))
        return StoreResult(updated, modified, self.index.highest_modseq)

    def expunge(self, infos: Iterable[MessageInfo]) -> list[int]:
        """Remove messages; return the UIDs removed (already-gone ones are included)."""
        removed: list[int] = []
        for info in infos:
            location: tuple[str, str] | None = (info.subdir, info.filename)
            while location is not None:
                try:
                    self.fs.unlink(os.path.join(self.path, *location))
                    break
                except FileNotFoundError:
                    location = self.locate(info.base)
            removed.append(info.uid)
        if removed:
            with self.index.writing() as tx:
                for uid in removed:
                    tx.expunge(uid)
        return removed

    # -- keywords ---------------------------------------------------------

    def read_keywords(self) -> KeywordTable:
        """Read ``dovecot-keywords`` (an empty table when missing)."""
        try:
            with open(self.keywords_path, "rb") as f:
                return parse_keywords_file(f.read())
        except FileNotFoundError:
            return KeywordTable()

    def _assign_keywords(self, names: list[str]) -> KeywordTable:
        with DotLock(self.keywords_path + ".lock", timeout=self._lock_timeout, clock=self._clock):
            table = self.read_keywords()
            changed = False
            for name in names:
                if table.letter_for(name) is None:
                    if table.assign(name) is None:
                        raise LimitExceeded("keywords per folder", MAX_KEYWORDS)
                    changed = True
            if changed:
                atomic_write(self.keywords_path, serialize_keywords_file(table), self.fs)
            return table

    def letters_for_new_message(self, flags: Iterable[str]) -> str:
        """Return the info letters for an appended message's flags (assigning keywords)."""
        wanted = {canonical_flag(flag) for flag in flags}
        keywords = self.read_keywords()
        letters, missing = letters_for_flags(wanted, keywords)
        if missing:
            keywords = self._assign_keywords(missing)
            letters, _ = letters_for_flags(wanted, keywords)
        return letters

    # -- crash leftovers ----------------------------------------------------

    def cleanup_tmp(self, max_age: float = TMP_MAX_AGE_SECONDS) -> int:
        """Remove files in ``tmp/`` older than ``max_age`` seconds; return how many."""
        limit = self._clock() - max_age
        removed = 0
        try:
            entries = list(os.scandir(self.tmp))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
                if entry.is_file(follow_symlinks=False) and st.st_mtime < limit:
                    os.unlink(entry.path)
                    removed += 1
            except OSError:
                continue
        if removed:
            _log.info("{path}: removed {n} stale files from tmp/", path=self.path, n=removed)
        return removed


def _entry_stat(entry: os.DirEntry[str]) -> os.stat_result:
    """A directory entry's ``lstat`` (from the entry: no path to build)."""
    return entry.stat(follow_symlinks=False)


def _with_recent(m: MessageInfo, recent: bool) -> MessageInfo:
    """``replace(m, recent=recent)``, without ``replace``'s cost.

    A POP3 login leaves its messages in ``new/``: each of them is recent at
    every scan, and remembered as not recent.
    """
    return MessageInfo(
        m.uid, m.base, m.filename, m.subdir, m.size, m.flags, m.internal_date, recent, m.modseq
    )


def _with_modseq(m: MessageInfo, modseq: int) -> MessageInfo:
    """``replace(m, modseq=modseq)``, without ``replace``'s cost (a cold scan does 10,000s)."""
    return MessageInfo(
        m.uid, m.base, m.filename, m.subdir, m.size, m.flags, m.internal_date, m.recent, modseq
    )


def _best_size(virtual: int | None, size: int | None, st_size: int) -> int:
    """The size with CRLF (``W=``) if known, else the file's (``S=``, else ``stat``)."""
    if virtual is not None:
        return virtual
    return size if size is not None else st_size


def _combine(current: set[str], given: set[str], mode: FlagMode) -> set[str]:
    if mode is FlagMode.REPLACE:
        return set(given)
    if mode is FlagMode.ADD:
        lowered = {flag.lower() for flag in current}
        return current | {flag for flag in given if flag.lower() not in lowered}
    removing = {flag.lower() for flag in given}
    return {flag for flag in current if flag.lower() not in removing}

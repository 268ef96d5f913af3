"""MaildirFolder: UID assignment, new/ -> cur/, flags, expunge, damaged input, concurrency."""

from __future__ import annotations

import os
import random
import threading

from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.errors import LimitExceeded
from netproto_twisted.mailstore import folder as folder_module
from netproto_twisted.mailstore.errors import NoSuchMailbox, NoSuchMessage
from netproto_twisted.mailstore.filenames import (
    DELETED,
    FLAGGED,
    SEEN,
    UniqueNames,
    parse_filename,
)
from netproto_twisted.mailstore.folder import FlagMode, FolderMemo, MaildirFolder
from netproto_twisted.mailstore.fsops import FsOps
from netproto_twisted.mailstore.index import INDEX_NAME
from netproto_twisted.mailstore.uidlist import parse_uidlist

from .helpers import RecordingFs, make_maildir, put


class FolderTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp())
        make_maildir(self.path)
        self.now = 1_800_000_000.0
        self.folder = MaildirFolder(self.path, FsOps(), clock=lambda: self.now)

    def uidlist(self) -> dict[str, int]:
        with open(self.folder.uidlist_path, "rb") as f:
            return {r.base: r.uid for r in parse_uidlist(f.read()).records}


class SyncTests(FolderTestCase):
    def test_uids_in_arrival_order_and_new_moved_to_cur(self) -> None:
        put(self.path, "new", "1700000002.M5P1.h,S=17")
        put(self.path, "new", "1700000001.M900000P1.h,S=17")
        put(self.path, "cur", "1700000001.M10P1.h,S=17:2,S")
        snap = self.folder.sync()
        self.assertEqual(snap.uid_validity, 1_800_000_000)
        self.assertEqual(snap.uid_next, 4)
        self.assertEqual(
            [(m.uid, m.base) for m in snap.messages],
            [
                (1, "1700000001.M10P1.h,S=17"),
                (2, "1700000001.M900000P1.h,S=17"),
                (3, "1700000002.M5P1.h,S=17"),
            ],
        )
        self.assertEqual([m.recent for m in snap.messages], [False, True, True])
        self.assertEqual(os.listdir(os.path.join(self.path, "new")), [])
        self.assertEqual(snap.messages[0].flags, {SEEN})
        self.assertEqual({m.subdir for m in snap.messages}, {"cur"})
        again = self.folder.sync()
        self.assertEqual(
            [(m.uid, m.recent) for m in again.messages], [(1, False), (2, False), (3, False)]
        )

    def test_previous_snapshot_saves_stats_but_sees_renames(self) -> None:
        put(self.path, "cur", "1.M1P1.h:2,")
        put(self.path, "cur", "2.M1P1.h:2,")
        first = self.folder.sync()
        previous = {m.base: m for m in first.messages}
        os.rename(
            os.path.join(self.path, "cur", "2.M1P1.h:2,"),
            os.path.join(self.path, "cur", "2.M1P1.h:2,S"),
        )
        stats: list[str] = []
        real_stat = os.stat

        def counting_stat(path: str) -> os.stat_result:
            stats.append(path)
            return real_stat(path)

        def counting_entry_stat(entry: os.DirEntry[str]) -> os.stat_result:
            stats.append(entry.path)
            return real_entry_stat(entry)

        real_entry_stat = folder_module._entry_stat
        self.patch(os, "stat", counting_stat)
        self.patch(folder_module, "_entry_stat", counting_entry_stat)
        second = self.folder.sync(previous=previous)
        self.assertIs(second.messages[0], first.messages[0])
        self.assertEqual(second.messages[1].flags, {SEEN})
        message_stats = [os.path.basename(p) for p in stats if ".M1P1." in p]
        self.assertEqual(message_stats, ["2.M1P1.h:2,S"])

    def test_sync_without_modseqs_leaves_the_index_alone(self) -> None:
        put(self.path, "cur", "1.M1P1.h,S=17:2,S")
        memo = FolderMemo()
        plain = MaildirFolder(self.path, FsOps(), memo=memo).sync(move_new=False, modseqs=False)
        self.assertEqual([(m.uid, m.modseq) for m in plain.messages], [(1, 0)])
        self.assertEqual(plain.highest_modseq, 0)
        self.assertFalse(os.path.exists(os.path.join(self.path, INDEX_NAME)))
        # The next sync that wants modseqs reconciles the index (the memo's infos too).
        put(self.path, "cur", "2.M1P1.h,S=17:2,")
        full = MaildirFolder(self.path, FsOps(), memo=memo).sync()
        self.assertTrue(os.path.exists(os.path.join(self.path, INDEX_NAME)))
        self.assertEqual([m.uid for m in full.messages], [1, 2])
        self.assertTrue(all(m.modseq > 0 for m in full.messages))
        self.assertEqual(full.highest_modseq, max(m.modseq for m in full.messages))

    def test_uidlist_flushed_whole_when_it_gives_uids_only_its_file_when_it_forgets(self) -> None:
        fs = RecordingFs()
        folder = MaildirFolder(self.path, fs, clock=lambda: self.now)
        uidlist, tmp = folder.uidlist_path, folder.uidlist_path + ".tmp"
        durable = [("fsync", tmp), ("rename", uidlist), ("fsync_dir", self.path)]
        gone = put(self.path, "cur", "1.M1P1.h,S=17:2,")
        put(self.path, "cur", "2.M1P1.h,S=17:2,")
        folder.sync()
        self.assertEqual(fs.events, durable)  # new UIDVALIDITY and UIDs
        fs.events.clear()
        folder.sync()
        self.assertEqual(fs.events, [])  # unchanged: not rewritten
        os.unlink(gone)
        folder.sync()
        self.assertEqual(fs.events, durable[:2])  # a record forgotten: no directory flush
        self.assertEqual(list(self.uidlist().values()), [2])
        fs.events.clear()
        put(self.path, "cur", "3.M1P1.h,S=17:2,")
        folder.sync()
        self.assertEqual(fs.events, durable)  # a new UID
        fs.events.clear()
        with open(uidlist, "wb") as f:
            f.write(b"garbage\n")
        with capturedLogs():
            folder.sync()
        self.assertEqual(fs.events, durable)  # rebuilt under a new UIDVALIDITY

    def test_pop3_mode_leaves_new_alone(self) -> None:
        put(self.path, "new", "1.M1P1.h")
        snap = self.folder.sync(move_new=False)
        self.assertEqual([(m.uid, m.subdir, m.recent) for m in snap.messages], [(1, "new", True)])
        self.assertEqual(os.listdir(os.path.join(self.path, "new")), ["1.M1P1.h"])

    def test_size_from_name_or_stat_and_internal_date(self) -> None:
        put(self.path, "cur", "1.M1P1.h,S=999:2,", b"12345")
        full = put(self.path, "cur", "2.M1P1.h:2,", b"12345")
        os.utime(full, (1_000_000_000, 1_000_000_000))
        snap = self.folder.sync()
        self.assertEqual([m.size for m in snap.messages], [999, 5])
        self.assertEqual(snap.messages[1].internal_date, 1_000_000_000)

    def test_size_is_the_crlf_size_of_the_name(self) -> None:
        put(self.path, "cur", "1.M1P1.h,S=6,W=8:2,", b"a\nbc\nd")
        put(self.path, "cur", "2.M1P1.h,S=6:2,", b"a\r\nb\r\n")
        lf, crlf = self.folder.sync().messages
        self.assertEqual((lf.size, lf.crlf_size), (8, 8))
        self.assertEqual((crlf.size, crlf.crlf_size), (6, None))

    def test_uids_survive_and_expunged_records_dropped(self) -> None:
        put(self.path, "cur", "1.M1P1.h:2,")
        put(self.path, "cur", "2.M1P1.h:2,")
        self.folder.sync()
        os.unlink(os.path.join(self.path, "cur", "1.M1P1.h:2,"))
        put(self.path, "new", "3.M1P1.h")
        snap = self.folder.sync()
        self.assertEqual([m.uid for m in snap.messages], [2, 3])
        self.assertEqual(self.uidlist(), {"2.M1P1.h": 2, "3.M1P1.h": 3})
        self.assertEqual(snap.uid_next, 4)

    def test_foreign_and_damaged_entries_skipped(self) -> None:
        put(self.path, "cur", "good.M1P1.h:2,S")
        put(self.path, "cur", ".hidden")
        put(self.path, "cur", "bad\nname")
        os.mkdir(os.path.join(self.path, "cur", "a-directory"))
        os.symlink("/etc/passwd", os.path.join(self.path, "cur", "symlink"))
        with open(os.path.join(self.path, "cur").encode() + b"/latin1-\xe9", "wb") as f:
            f.write(b"x")
        put(self.path, "cur", "odd-info:2,S\x01Z")
        snap = self.folder.sync()
        self.assertEqual(
            [m.filename for m in snap.messages], ["good.M1P1.h:2,S", "odd-info:2,S\x01Z"]
        )
        self.assertEqual(snap.messages[1].flags, {SEEN})

    def test_missing_folder(self) -> None:
        with self.assertRaises(NoSuchMailbox):
            MaildirFolder(self.path + "-nope", FsOps()).sync()


class MemoTests(FolderTestCase):
    """A folder memo shared by the sessions of a process: rescans of unchanged names are cheap."""

    def counting(self) -> tuple[list[str], list[bytes]]:
        stats: list[str] = []
        parsed: list[bytes] = []
        real_stat, real_parse = os.stat, folder_module.parse_uidlist

        def counting_stat(path: str) -> os.stat_result:
            stats.append(os.path.basename(path))
            return real_stat(path)

        def counting_entry_stat(entry: os.DirEntry[str]) -> os.stat_result:
            stats.append(entry.name)
            return real_entry_stat(entry)

        def counting_parse(data: bytes) -> object:
            parsed.append(data)
            return real_parse(data)

        real_entry_stat = folder_module._entry_stat
        self.patch(os, "stat", counting_stat)
        self.patch(folder_module, "_entry_stat", counting_entry_stat)
        self.patch(folder_module, "parse_uidlist", counting_parse)
        return stats, parsed

    def test_second_session_stats_and_parses_nothing_unchanged(self) -> None:
        put(self.path, "new", "1.M1P1.h,S=17")
        put(self.path, "cur", "2.M1P1.h,S=17:2,S")
        memo = FolderMemo()
        first = MaildirFolder(self.path, FsOps(), memo=memo).sync()
        self.assertEqual([m.recent for m in first.messages], [True, False])
        stats, parsed = self.counting()
        second = MaildirFolder(self.path, FsOps(), memo=memo).sync()
        self.assertEqual([s for s in stats if ".M1P1." in s], [])
        self.assertEqual(parsed, [])
        # \Recent went to the first session only; the rest is the same snapshot.
        self.assertEqual([(m.uid, m.recent) for m in second.messages], [(1, False), (2, False)])
        self.assertEqual(
            [(m.filename, m.flags, m.size) for m in second.messages],
            [(m.filename, m.flags, m.size) for m in first.messages],
        )

    def test_changes_by_other_programs_are_seen(self) -> None:
        put(self.path, "cur", "1.M1P1.h,S=17:2,")
        put(self.path, "cur", "2.M1P1.h,S=17:2,")
        memo = FolderMemo()
        MaildirFolder(self.path, FsOps(), memo=memo).sync()
        # Another program: flags by rename, a delete, and (as Dovecot does) a new
        # message with its uidlist record appended in place (same inode).
        os.rename(
            os.path.join(self.path, "cur", "1.M1P1.h,S=17:2,"),
            os.path.join(self.path, "cur", "1.M1P1.h,S=17:2,F"),
        )
        os.unlink(os.path.join(self.path, "cur", "2.M1P1.h,S=17:2,"))
        put(self.path, "cur", "3.M1P1.h,S=17:2,")
        with open(self.folder.uidlist_path, "ab") as f:
            f.write(b"7 :3.M1P1.h,S=17\n")
        stats, parsed = self.counting()
        snap = MaildirFolder(self.path, FsOps(), memo=memo).sync()
        self.assertEqual(len(parsed), 1)  # the grown uidlist was read again
        self.assertEqual(
            [(m.uid, m.flags) for m in snap.messages], [(1, {FLAGGED}), (7, frozenset())]
        )
        self.assertEqual(
            sorted(s for s in stats if ".M1P1." in s), ["1.M1P1.h,S=17:2,F", "3.M1P1.h,S=17:2,"]
        )

    def test_keyword_letters_changed_by_another_program(self) -> None:
        put(self.path, "cur", "1.M1P1.h,S=17:2,a")
        with open(self.folder.keywords_path, "wb") as f:
            f.write(b"0 $Work\n")
        memo = FolderMemo()
        first = MaildirFolder(self.path, FsOps(), memo=memo).sync()
        self.assertEqual(first.messages[0].flags, {"$Work"})
        with open(self.folder.keywords_path, "wb") as f:
            f.write(b"0 $Home\n")
        again = MaildirFolder(self.path, FsOps(), memo=memo).sync()
        self.assertEqual(again.messages[0].flags, {"$Home"})


class UidValidityTests(FolderTestCase):
    def test_corrupt_uidlist_rebuilt_with_new_validity_and_logged(self) -> None:
        put(self.path, "cur", "1.M1P1.h:2,")
        with open(self.folder.uidlist_path, "wb") as f:
            f.write(b"3 V1900000000 N7 G00112233445566778899aabbccddeeff\n5 :1.M1P1.h\n4 :x\n")
        with capturedLogs() as events:
            snap = self.folder.sync()
        self.assertEqual(snap.uid_validity, 1900000001)
        self.assertEqual([m.uid for m in snap.messages], [1])
        self.assertTrue(any("corrupt uidlist" in e["log_format"] for e in events))
        with open(self.folder.uidlist_path, "rb") as f:
            self.assertEqual(parse_uidlist(f.read()).uid_validity, 1900000001)

    def test_garbage_uidlist_uses_clock(self) -> None:
        with open(self.folder.uidlist_path, "wb") as f:
            f.write(b"\x00garbage")
        with capturedLogs():
            self.assertEqual(self.folder.sync().uid_validity, 1_800_000_000)

    def test_missing_uidlist_created_and_kept(self) -> None:
        first = self.folder.sync()
        self.now += 100
        self.assertEqual(self.folder.sync().uid_validity, first.uid_validity)
        os.unlink(self.folder.uidlist_path)
        self.assertEqual(self.folder.sync().uid_validity, first.uid_validity + 100)


class FlagTests(FolderTestCase):
    def test_add_remove_replace_rename_file(self) -> None:
        put(self.path, "new", "1.M1P1.h,S=3")
        info = self.folder.sync(move_new=False).messages[0]
        info = self.folder.store_flags(info, [SEEN], FlagMode.ADD)
        self.assertEqual(
            (info.subdir, info.filename, info.flags), ("cur", "1.M1P1.h,S=3:2,S", {SEEN})
        )
        self.assertEqual(os.listdir(os.path.join(self.path, "new")), [])
        info = self.folder.store_flags(info, ["\\flagged", "\\deleted"], FlagMode.ADD)
        self.assertEqual(info.filename, "1.M1P1.h,S=3:2,FST")
        info = self.folder.store_flags(info, [SEEN], FlagMode.REMOVE)
        self.assertEqual(info.flags, {FLAGGED, DELETED})
        info = self.folder.store_flags(info, ["\\Draft"], FlagMode.REPLACE)
        self.assertEqual(os.listdir(os.path.join(self.path, "cur")), ["1.M1P1.h,S=3:2,D"])
        self.assertEqual(self.folder.sync().messages[0].flags, {"\\Draft"})

    def test_keywords_use_dovecot_keywords(self) -> None:
        with open(self.folder.keywords_path, "w") as f:
            f.write("0 $Junk\n")
        put(self.path, "cur", "1.M1P1.h:2,")
        info = self.folder.sync().messages[0]
        info = self.folder.store_flags(info, ["$junk", "Work", SEEN], FlagMode.ADD)
        self.assertEqual(info.filename, "1.M1P1.h:2,Sab")
        self.assertEqual(info.flags, {"$Junk", "Work", SEEN})
        with open(self.folder.keywords_path) as f:
            self.assertEqual(f.read(), "0 $Junk\n1 Work\n")

    def test_27th_keyword_refused(self) -> None:
        with open(self.folder.keywords_path, "w") as f:
            f.write("".join(f"{i} k{i}\n" for i in range(26)))
        put(self.path, "cur", "1.M1P1.h:2,")
        info = self.folder.sync().messages[0]
        with self.assertRaises(LimitExceeded):
            self.folder.store_flags(info, ["another"], FlagMode.ADD)

    def test_file_renamed_by_another_program_is_found(self) -> None:
        put(self.path, "cur", "1.M1P1.h:2,")
        info = self.folder.sync().messages[0]
        os.rename(
            os.path.join(self.path, "cur", "1.M1P1.h:2,"),
            os.path.join(self.path, "cur", "1.M1P1.h:2,F"),
        )
        info = self.folder.store_flags(info, [SEEN], FlagMode.ADD)
        self.assertEqual(info.flags, {SEEN, FLAGGED})
        os.unlink(os.path.join(self.path, "cur", info.filename))
        with self.assertRaises(NoSuchMessage):
            self.folder.store_flags(info, [SEEN], FlagMode.REMOVE)


class ExpungeAndReadTests(FolderTestCase):
    def test_expunge_and_open(self) -> None:
        put(self.path, "cur", "1.M1P1.h:2,T", b"first")
        put(self.path, "cur", "2.M1P1.h:2,", b"second")
        one, two = self.folder.sync().messages
        with self.folder.open_message(two) as f:
            self.assertEqual(f.read(), b"second")
        self.assertEqual(self.folder.expunge([one]), [1])
        self.assertEqual(os.listdir(os.path.join(self.path, "cur")), ["2.M1P1.h:2,"])
        self.assertEqual([m.uid for m in self.folder.sync().messages], [2])
        os.unlink(os.path.join(self.path, "cur", "2.M1P1.h:2,"))
        with self.assertRaises(NoSuchMessage):
            self.folder.open_message(two)

    def test_open_message_gives_crlf_for_lf_and_crlf_files(self) -> None:
        put(self.path, "cur", "1.M1P1.h,S=11,W=14:2,", b"S: x\n\nbo\ndy")
        put(self.path, "cur", "2.M1P1.h,S=12:2,", b"S: x\r\n\r\nbody")
        put(self.path, "cur", "3.M1P1.h,S=6,W=6:2,", b"a\r\nb\rc")
        lf, crlf, plain = self.folder.sync().messages
        for info, expected in (
            (lf, b"S: x\r\n\r\nbo\r\ndy"),
            (crlf, b"S: x\r\n\r\nbody"),
            (plain, b"a\r\nb\rc"),
        ):
            with self.folder.open_message(info) as f:
                self.assertEqual(f.read(), expected)
            with self.folder.open_message(info) as f:
                f.seek(3)
                self.assertEqual(f.read(4), expected[3:7])
            with self.folder.open_stored(info) as f:  # the file as it is: S= octets
                self.assertEqual(len(f.read()), parse_filename(info.filename).size)

    def test_assign_uid_for_append(self) -> None:
        put(self.path, "cur", "1.M1P1.h:2,")
        self.folder.sync()
        put(self.path, "cur", "2.M1P1.h:2,S")
        self.assertEqual(self.folder.assign_uid("2.M1P1.h"), (1_800_000_000, 2))
        self.assertEqual(self.folder.assign_uid("2.M1P1.h"), (1_800_000_000, 2))
        self.assertEqual(self.uidlist(), {"1.M1P1.h": 1, "2.M1P1.h": 2})


class TmpCleanupTests(FolderTestCase):
    def test_only_files_older_than_36h(self) -> None:
        old = put(self.path, "tmp", "old")
        young = put(self.path, "tmp", "young")
        os.utime(old, (self.now - 36 * 3600 - 1,) * 2)
        os.utime(young, (self.now - 35 * 3600,) * 2)
        self.assertEqual(self.folder.cleanup_tmp(), 1)
        self.assertEqual(os.listdir(os.path.join(self.path, "tmp")), ["young"])


class ConcurrencyTests(SynchronousTestCase):
    def test_two_stores_in_threads_assign_unique_uids(self) -> None:
        path = os.path.abspath(self.mktemp())
        make_maildir(path)
        folders = [MaildirFolder(path, FsOps(fsync=False)) for _ in range(2)]
        names = UniqueNames("h")
        observed: list[dict[str, int]] = []
        validities: set[int] = set()
        errors: list[BaseException] = []
        lock = threading.Lock()

        def worker(index: int) -> None:
            rng = random.Random(index)
            folder = folders[index % 2]
            try:
                for _ in range(15):
                    base = names.new_base()
                    if rng.random() < 0.5:
                        put(path, "new", base)
                    else:
                        put(path, "cur", base + ":2,S")
                        folder.assign_uid(base)
                    snap = folder.sync(move_new=rng.random() < 0.5)
                    with lock:
                        observed.append({m.base: m.uid for m in snap.messages})
                        validities.add(snap.uid_validity)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        self.assertEqual(errors, [])
        final = {m.base: m.uid for m in folders[0].sync().messages}
        self.assertEqual(len(final), 6 * 15)
        self.assertEqual(len(set(final.values())), len(final))
        self.assertEqual(sorted(final.values()), list(range(1, 91)))
        self.assertEqual(len(validities), 1)
        for snapshot in observed:
            for base, uid in snapshot.items():
                self.assertEqual(final[base], uid)
        self.assertFalse(os.path.exists(folders[0].uidlist_path + ".lock"))

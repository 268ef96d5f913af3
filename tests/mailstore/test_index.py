"""The folder index: modseqs per change, HIGHESTMODSEQ, expunges, repair when the directory
disagrees, two folder objects (and two processes) on one Maildir."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import netproto_twisted
from netproto_twisted.mailstore import index as index_module
from netproto_twisted.mailstore.filenames import DELETED, FLAGGED, SEEN
from netproto_twisted.mailstore.folder import FlagMode, MaildirFolder
from netproto_twisted.mailstore.fsops import FsOps
from netproto_twisted.mailstore.index import INDEX_NAME, FolderIndex
from netproto_twisted.mailstore.maildir import MaildirStore

from .helpers import make_maildir, put, sync_runner

ROOT = os.path.dirname(os.path.dirname(netproto_twisted.__file__))
NOW = 1_800_000_000.0
FLOOR = int(NOW * 1000)


class IndexTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = os.path.abspath(self.mktemp())
        make_maildir(self.path)
        for n in (1, 2, 3):
            put(self.path, "cur", f"{n}.M1P1.h:2,")
        self.folder = self.new_folder()

    def new_folder(self) -> MaildirFolder:
        return MaildirFolder(self.path, FsOps(), clock=lambda: NOW)

    def rename(self, old: str, new: str) -> None:
        os.rename(os.path.join(self.path, "cur", old), os.path.join(self.path, "cur", new))


class ModseqTests(IndexTestCase):
    def test_new_index_starts_at_the_clock_and_stays_quiet_when_nothing_changed(self) -> None:
        snap = self.folder.sync()
        self.assertEqual(snap.highest_modseq, FLOOR + 1)
        self.assertEqual({m.modseq for m in snap.messages}, {FLOOR + 1})
        self.assertTrue(os.path.exists(os.path.join(self.path, INDEX_NAME)))
        again = self.folder.sync(previous={m.base: m for m in snap.messages})
        self.assertEqual(again.highest_modseq, FLOOR + 1)
        self.assertEqual(again.messages, snap.messages)

    def test_store_bumps_only_changed_messages_with_one_modseq_per_batch(self) -> None:
        snap = self.folder.sync()
        one, two, _three = snap.messages
        updated = self.folder.store_flags_batch([one, two], [SEEN], FlagMode.ADD)
        self.assertEqual([m.modseq for m in updated], [FLOOR + 2, FLOOR + 2])
        # A store that changes nothing keeps the modseq.
        same = self.folder.store_flags_batch(updated, [SEEN], FlagMode.ADD)
        self.assertEqual([m.modseq for m in same], [FLOOR + 2, FLOOR + 2])
        snap = self.folder.sync()
        self.assertEqual(snap.highest_modseq, FLOOR + 2)
        self.assertEqual([m.modseq for m in snap.messages], [FLOOR + 2, FLOOR + 2, FLOOR + 1])

    def test_unchanged_since_spares_messages_changed_after(self) -> None:
        snap = self.folder.sync()
        self.folder.store_flags_batch([snap.messages[0]], [FLAGGED], FlagMode.ADD)
        result = self.folder.store_flags_conditional(
            snap.messages, [SEEN], FlagMode.ADD, unchanged_since=FLOOR + 1
        )
        self.assertEqual(result.modified, [snap.messages[0].uid])
        self.assertEqual([m.uid for m in result.updated], [2, 3])
        self.assertEqual(result.highest_modseq, FLOOR + 3)
        self.assertEqual(
            [m.flags for m in self.folder.sync().messages], [{FLAGGED}, {SEEN}, {SEEN}]
        )
        none = self.folder.store_flags_conditional(
            snap.messages, [SEEN], FlagMode.ADD, unchanged_since=0
        )
        self.assertEqual((none.updated, none.modified), ([], [1, 2, 3]))

    def test_new_messages_and_expunges_get_modseqs_and_are_remembered(self) -> None:
        snap = self.folder.sync()
        put(self.path, "new", "4.M1P1.h")
        snap2 = self.folder.sync()
        self.assertEqual(snap2.messages[-1].modseq, FLOOR + 2)
        marked = self.folder.store_flags_batch(snap2.messages[:2], [DELETED], FlagMode.ADD)
        self.assertEqual(self.folder.expunge(marked), [1, 2])
        index = self.folder.index
        self.assertEqual(index.highest_modseq, FLOOR + 4)
        self.assertEqual(index.vanished_since(FLOOR + 3), [1, 2])
        self.assertEqual(index.vanished_since(FLOOR + 4), [])
        self.assertIsNone(index.vanished_since(FLOOR - 1))
        snap3 = self.folder.sync()
        self.assertEqual([m.uid for m in snap3.messages], [3, 4])
        self.assertEqual(snap3.highest_modseq, FLOOR + 4)
        del snap


class RepairTests(IndexTestCase):
    def test_flags_changed_by_another_program_bump_the_modseq(self) -> None:
        snap = self.folder.sync()
        self.rename("2.M1P1.h:2,", "2.M1P1.h:2,FS")
        snap2 = self.folder.sync(previous={m.base: m for m in snap.messages})
        self.assertEqual([m.modseq for m in snap2.messages], [FLOOR + 1, FLOOR + 2, FLOOR + 1])
        self.assertEqual(snap2.messages[1].flags, {SEEN, FLAGGED})
        # Changed and changed back between two syncs of ours: still one bump per difference.
        self.rename("2.M1P1.h:2,FS", "2.M1P1.h:2,")
        self.assertEqual(self.folder.sync().messages[1].modseq, FLOOR + 3)

    def test_files_deleted_by_another_program_are_vanished(self) -> None:
        self.folder.sync()
        os.unlink(os.path.join(self.path, "cur", "1.M1P1.h:2,"))
        snap = self.folder.sync()
        self.assertEqual([m.uid for m in snap.messages], [2, 3])
        self.assertEqual(self.folder.index.vanished_since(FLOOR + 1), [1])

    def test_a_stale_index_row_is_corrected_not_trusted(self) -> None:
        self.folder.sync()
        db = sqlite3.connect(os.path.join(self.path, INDEX_NAME))
        db.execute("UPDATE msg SET flags = '\\Seen' WHERE uid = 3")
        db.commit()
        db.close()
        fresh = self.new_folder()
        snap = fresh.sync()
        self.assertEqual(snap.messages[2].flags, frozenset())
        self.assertEqual(snap.messages[2].modseq, FLOOR + 2)

    def test_corrupt_or_deleted_index_is_rebuilt_above_the_old_modseqs(self) -> None:
        self.folder.sync()
        self.folder.index.close()
        for suffix in ("-wal", "-shm"):
            if os.path.exists(os.path.join(self.path, INDEX_NAME + suffix)):
                os.unlink(os.path.join(self.path, INDEX_NAME + suffix))
        with open(os.path.join(self.path, INDEX_NAME), "wb") as f:
            f.write(b"this is not a database" * 100)
        later = MaildirFolder(self.path, FsOps(), clock=lambda: NOW + 10)
        snap = later.sync()
        self.assertEqual(snap.highest_modseq, FLOOR + 10_000 + 1)
        self.assertIsNone(later.index.vanished_since(FLOOR + 1))
        os.unlink(os.path.join(self.path, INDEX_NAME))
        # The open connection notices that its file is gone.
        snap2 = later.sync()
        self.assertEqual(snap2.highest_modseq, FLOOR + 10_000 + 1)
        self.assertTrue(os.path.exists(os.path.join(self.path, INDEX_NAME)))

    def test_uidvalidity_change_voids_the_rows(self) -> None:
        self.folder.sync()
        os.unlink(self.folder.uidlist_path)
        later = MaildirFolder(self.path, FsOps(), clock=lambda: NOW + 5)
        snap = later.sync()
        self.assertNotEqual(snap.uid_validity, int(NOW))
        self.assertEqual({m.modseq for m in snap.messages}, {FLOOR + 2})
        self.assertIsNone(later.index.vanished_since(FLOOR))

    def test_old_expunges_are_forgotten_beyond_the_limit(self) -> None:
        self.folder._index = FolderIndex(self.path, clock=lambda: NOW, max_vanished=2)
        snap = self.folder.sync()
        for info in snap.messages:
            self.folder.expunge([info])
        index = self.folder.index
        self.assertIsNone(index.vanished_since(FLOOR + 1))
        self.assertEqual(index.vanished_since(FLOOR + 2), [2, 3])
        self.assertEqual(index.vanished_since(FLOOR + 3), [3])


class SharingTests(IndexTestCase):
    def test_two_folder_objects_see_each_others_changes(self) -> None:
        other = self.new_folder()
        mine = self.folder.sync()
        theirs = other.sync()
        self.assertEqual(mine.highest_modseq, theirs.highest_modseq)
        other.store_flags_batch([theirs.messages[0]], [SEEN], FlagMode.ADD)
        # Mine still has the old file name; the store renames and the index records it.
        result = self.folder.store_flags_conditional(
            [mine.messages[0]], [FLAGGED], FlagMode.ADD, unchanged_since=mine.highest_modseq
        )
        self.assertEqual(result.modified, [1])
        updated = self.folder.store_flags_batch([mine.messages[0]], [FLAGGED], FlagMode.ADD)
        self.assertEqual(updated[0].flags, {SEEN, FLAGGED})
        self.assertEqual(updated[0].modseq, FLOOR + 3)
        self.assertEqual(other.sync().messages[0].modseq, FLOOR + 3)
        self.assertEqual(other.index.highest_modseq, FLOOR + 3)

    def test_another_process_changing_flags(self) -> None:
        self.folder.sync()
        script = (
            "import sys\n"
            "from netproto_twisted.mailstore.folder import FlagMode, MaildirFolder\n"
            "from netproto_twisted.mailstore.fsops import FsOps\n"
            "f = MaildirFolder(sys.argv[1], FsOps())\n"
            "snap = f.sync()\n"
            "f.store_flags_batch(snap.messages[1:], ['\\\\Answered'], FlagMode.ADD)\n"
            "print(f.index.highest_modseq)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", script, self.path],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": ROOT},
            timeout=60,
        )
        self.assertEqual(int(out.stdout), FLOOR + 2)
        snap = self.folder.sync()
        self.assertEqual([m.modseq for m in snap.messages], [FLOOR + 1, FLOOR + 2, FLOOR + 2])
        self.assertEqual(self.folder.index.highest_modseq, FLOOR + 2)

    def test_an_index_that_cannot_be_opened_lives_in_memory(self) -> None:
        os.mkdir(os.path.join(self.path, INDEX_NAME))  # not a file: SQLite cannot open it
        snap = self.folder.sync()
        self.assertEqual(snap.highest_modseq, FLOOR + 1)
        updated = self.folder.store_flags_batch(snap.messages[:1], [SEEN], FlagMode.ADD)
        self.assertEqual(updated[0].modseq, FLOOR + 2)
        self.assertEqual(self.folder.sync().highest_modseq, FLOOR + 2)
        self.assertTrue(os.path.isdir(os.path.join(self.path, INDEX_NAME)))

    def test_a_locked_index_is_not_mistaken_for_a_corrupt_one(self) -> None:
        self.folder.sync()
        blocker = sqlite3.connect(os.path.join(self.path, INDEX_NAME), isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        self.addCleanup(blocker.close)
        index = FolderIndex(self.path, clock=lambda: NOW)
        self.patch(index_module, "_BUSY_TIMEOUT", 0.05)
        with self.assertRaises(sqlite3.OperationalError):
            index.reconcile(int(NOW), [(1, frozenset(), 10)])
        blocker.execute("ROLLBACK")
        self.assertEqual(
            index.reconcile(int(NOW), [(1, frozenset(), 10)]).highest_modseq, FLOOR + 2
        )


class StoreIndexesTests(SynchronousTestCase):
    def test_the_store_shares_one_index_per_folder_and_closes_the_least_used(self) -> None:
        base = os.path.abspath(self.mktemp())
        store = MaildirStore(base, runner=sync_runner, sync="file")
        path0 = os.path.join(base, "u0")
        make_maildir(path0)
        first = store.folder_index(path0)
        top = first.reconcile(1, [(1, frozenset(), 5)]).highest_modseq
        self.assertIs(store.folder_index(path0), first)
        for n in range(1, 64):
            store.folder_index(os.path.join(base, f"u{n}"))
        self.assertIs(store.folder_index(path0), first)  # used again: the newest now
        store.folder_index(os.path.join(base, "extra"))  # the 65th: u1 goes, not u0
        self.assertIs(store.folder_index(path0), first)
        for n in range(100, 170):
            store.folder_index(os.path.join(base, f"u{n}"))
        self.assertIsNot(store.folder_index(path0), first)
        self.assertIsNone(first._db)  # closed when it was dropped
        # A session that kept it still works: it reopens the file.
        again = first.reconcile(1, [(1, frozenset({SEEN}), 5)])
        self.assertEqual(again.highest_modseq, top + 1)

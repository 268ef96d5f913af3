"""Opening a POP3 maildrop: what a login writes, UIDL stability, the remembered folder."""

from __future__ import annotations

import os
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.mailstore import MaildirStore
from netproto_twisted.mailstore import folder as folder_module
from netproto_twisted.mailstore.fsops import FsOps
from netproto_twisted.mailstore.uidlist import parse_uidlist
from netproto_twisted.pop3 import MaildirMaildrops
from netproto_twisted.pop3 import maildrop as maildrop_module
from netproto_twisted.pop3.errors import MaildropInUse
from tests.mailstore.helpers import RecordingFs, sync_runner
from tests.pop3.helpers import MESSAGES, USER, make_maildir


def _opened(drops: MaildirMaildrops, user: str = USER) -> Any:
    """Open ``user``'s maildrop (inline runner) and return it."""
    return drops._open(user)  # the blocking part, run here


class MaildropOpenTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        make_maildir(self.base)
        self.root = os.path.join(self.base, USER)
        self.uidlist = os.path.join(self.root, "dovecot-uidlist")
        if os.path.exists(self.uidlist):  # delivery does not assign UIDs; be sure
            os.unlink(self.uidlist)

    def _session(self, drops: MaildirMaildrops, user: str = USER) -> list[str]:
        drop = _opened(drops, user)
        try:
            return [m.uidl for m in drop.messages]
        finally:
            drop.release()

    def _deliver(self, body: bytes = b"Subject: later\n\nnew one\n") -> None:
        store = MaildirStore(self.base, fs=FsOps(), runner=sync_runner, sync="file")
        writer = store.deliver(USER)
        writer.write(body)
        writer.commit()

    def test_first_login_makes_the_new_uids_durable_before_it_returns(self) -> None:
        fs = RecordingFs()
        drops = MaildirMaildrops(self.base, sync_runner, fs=fs)
        uidls = self._session(drops)
        self.assertEqual(len(uidls), len(MESSAGES))
        tmp = self.uidlist + ".tmp"
        self.assertEqual(
            [e for e in fs.events if "uidlist" in e[1] or e[0] == "fsync_dir"],
            [("fsync", tmp), ("rename", self.uidlist), ("fsync_dir", self.root)],
        )

    def test_login_of_an_unchanged_folder_writes_and_stats_nothing(self) -> None:
        fs = RecordingFs()
        drops = MaildirMaildrops(self.base, sync_runner, fs=fs)
        first = self._session(drops)
        before = os.stat(self.uidlist)
        fs.events.clear()
        stats: list[str] = []
        real = folder_module._entry_stat

        def counting(entry: os.DirEntry[str]) -> os.stat_result:
            stats.append(entry.name)
            return real(entry)

        self.patch(folder_module, "_entry_stat", counting)
        self.assertEqual(self._session(drops), first)
        self.assertEqual(fs.events, [])  # no rename, no fsync: the uidlist is not rewritten
        after = os.stat(self.uidlist)
        self.assertEqual((after.st_ino, after.st_mtime_ns), (before.st_ino, before.st_mtime_ns))
        self.assertEqual(stats, [])  # names seen at the last login are not stat-ed again
        self.assertFalse(os.path.exists(self.uidlist + ".tmp"))

    def test_another_process_sees_the_same_uidls_and_writes_nothing(self) -> None:
        first = self._session(MaildirMaildrops(self.base, sync_runner))
        fs = RecordingFs()
        self.assertEqual(self._session(MaildirMaildrops(self.base, sync_runner, fs=fs)), first)
        self.assertEqual(fs.events, [])

    def test_uidls_stable_across_sessions_and_deliveries(self) -> None:
        drops = MaildirMaildrops(self.base, sync_runner)
        first = self._session(drops)
        self._deliver()
        fs = RecordingFs()
        drops._fs = fs
        second = self._session(drops)
        self.assertEqual(second[:-1], first)
        self.assertNotIn(second[-1], first)
        # The new UID was made durable before the session could show it.
        self.assertIn(("rename", self.uidlist), fs.events)
        self.assertEqual(fs.events[-1], ("fsync_dir", self.root))
        self.assertEqual(self._session(MaildirMaildrops(self.base, sync_runner)), second)

    def test_uidls_stable_after_an_imap_session_assigns_uids_and_renames(self) -> None:
        drops = MaildirMaildrops(self.base, sync_runner)
        first = self._session(drops)
        self._deliver()
        # An IMAP session: it assigns the new message's UID, moves it to cur/ and
        # changes a flag (both rename files the POP3 memo knows by their old names).
        store = MaildirStore(self.base, fs=FsOps(), runner=sync_runner, sync="file")
        box = self.successResultOf(store.open_mailbox(USER))
        uids = [m.uid for m in box.messages]
        self.successResultOf(box.store_flags([uids[0], uids[-1]], ["\\Seen"]))
        with open(self.uidlist, "rb") as f:
            validity = parse_uidlist(f.read()).uid_validity
        imap_uidls = [f"{uid:08x}{validity:08x}" for uid in uids]
        again = self._session(drops)
        self.assertEqual(again, imap_uidls)
        self.assertEqual(again[:-1], first)
        # Sizes still right for the renamed files.
        drop = _opened(drops)
        try:
            sizes = [m.size for m in drop.messages]
        finally:
            drop.release()
        fresh = _opened(MaildirMaildrops(self.base, sync_runner))
        try:
            self.assertEqual(sizes, [m.size for m in fresh.messages])
        finally:
            fresh.release()

    def test_deleted_messages_are_gone_at_the_next_login(self) -> None:
        drops = MaildirMaildrops(self.base, sync_runner)
        drop = _opened(drops)
        first = [m.uidl for m in drop.messages]
        self.successResultOf(drop.delete([drop.messages[0]]))
        drop.release()
        fs = RecordingFs()
        drops._fs = fs
        self.assertEqual(self._session(drops), first[1:])
        # The uidlist forgets the removed message's record, flushed before its rename
        # (never seen half-written), but its directory is not: losing that rename in a
        # crash only brings the record back, to be dropped again.
        self.assertEqual(fs.events, [("fsync", self.uidlist + ".tmp"), ("rename", self.uidlist)])
        with open(self.uidlist, "rb") as f:
            self.assertEqual(len(parse_uidlist(f.read()).records), len(first) - 1)
        # A new message after that: its UID is made durable (directory included).
        self._deliver()
        fs.events.clear()
        after = self._session(drops)
        self.assertEqual(after[:-1], first[1:])
        self.assertEqual(fs.events[-1], ("fsync_dir", self.root))

    def test_a_locked_maildrop_is_refused_and_its_memo_kept(self) -> None:
        drops = MaildirMaildrops(self.base, sync_runner)
        first = self._session(drops)
        held = _opened(drops)
        try:
            self.assertRaises(MaildropInUse, _opened, drops)
        finally:
            held.release()
        self.assertEqual(len(drops._memos), 1)
        self.assertEqual(self._session(drops), first)

    def test_remembered_folders_are_bounded(self) -> None:
        make_maildir(self.base, user="bob")
        self.patch(maildrop_module, "_MAX_MEMO_MESSAGES", len(MESSAGES) + 1)
        drops = MaildirMaildrops(self.base, sync_runner)
        self._session(drops)
        self.assertEqual(list(drops._memos), [self.root])
        self._session(drops, "bob")
        self.assertEqual(list(drops._memos), [os.path.join(self.base, "bob")])
        self.patch(maildrop_module, "_MAX_MEMO_MESSAGES", len(MESSAGES) - 1)
        self._session(drops)  # larger than the bound: not kept
        self.assertEqual(list(drops._memos), [os.path.join(self.base, "bob")])
        self.assertEqual(drops._memo_messages, len(MESSAGES))
        self.patch(maildrop_module, "_MAX_MEMO_MESSAGES", len(MESSAGES) + 1)
        self._session(drops, "bob")  # taken out and put back: counted once
        self.assertEqual(drops._memo_messages, len(MESSAGES))

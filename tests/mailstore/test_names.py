"""User/folder name validation, Maildir++ directory names and modified UTF-7."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.mailstore.errors import InvalidName
from netproto_twisted.mailstore.names import (
    folder_dirname,
    folder_from_dirname,
    mutf7_decode,
    mutf7_encode,
    validate_folder,
    validate_user,
)


class UserNameTests(SynchronousTestCase):
    def test_ordinary_names(self) -> None:
        for name in ("alice", "bob@example.org", "first.last", "a+tag", "Ünïcode"):
            self.assertEqual(validate_user(name), name)

    def test_traversal_and_control_refused(self) -> None:
        for name in ("", ".", "..", "../etc", "a/b", "/abs", ".hidden", "a\x00b", "a\nb",
                     "a\\b", " padded", "x\x7f", "a" * 256):
            with self.assertRaises(InvalidName, msg=repr(name)) as cm:
                validate_user(name)
            self.assertEqual(cm.exception.kind, "user")

    @given(st.text(max_size=40))
    def test_accepted_users_stay_inside_the_base(self, name: str) -> None:
        try:
            validate_user(name)
        except InvalidName:
            return
        base = "/srv/mail"
        joined = os.path.normpath(os.path.join(base, name))
        self.assertEqual(os.path.dirname(joined), base)
        self.assertNotIn("\x00", name)


class FolderNameTests(SynchronousTestCase):
    def test_inbox_is_root_any_case(self) -> None:
        self.assertEqual(validate_folder("inbox"), "INBOX")
        self.assertEqual(folder_dirname("InBoX"), "")

    def test_maildirpp_directory_names(self) -> None:
        self.assertEqual(folder_dirname("Sent"), ".Sent")
        self.assertEqual(folder_dirname("Parent.Child"), ".Parent.Child")
        self.assertEqual(folder_dirname("INBOX.Sub"), ".INBOX.Sub")
        self.assertEqual(folder_dirname("Entwürfe"), ".Entw&APw-rfe")
        self.assertEqual(folder_dirname("R&D"), ".R&-D")

    def test_bad_folders_refused(self) -> None:
        for name in ("", ".", "..", "a..b", ".Sent", "Sent.", "a/b", "../../etc", "a\x00",
                     "tab\there", "x" * 300):
            with self.assertRaises(InvalidName, msg=repr(name)):
                validate_folder(name)

    def test_from_dirname(self) -> None:
        self.assertEqual(folder_from_dirname(".Sent"), "Sent")
        self.assertEqual(folder_from_dirname(".A.B"), "A.B")
        self.assertEqual(folder_from_dirname(".Entw&APw-rfe"), "Entwürfe")
        for other in ("cur", ".", "..", "..trash", ".a..b", ".bad&Jjo", ".INBOX"):
            self.assertIsNone(folder_from_dirname(other), other)

    @given(st.text(min_size=1, max_size=30))
    def test_folder_dirname_safe_and_reversible(self, name: str) -> None:
        try:
            dirname = folder_dirname(name)
        except InvalidName:
            return
        if dirname == "":
            self.assertEqual(name.upper(), "INBOX")
            return
        self.assertTrue(dirname.startswith("."))
        self.assertNotIn("/", dirname)
        self.assertNotIn("..", dirname)
        self.assertTrue(dirname.isascii())
        self.assertEqual(folder_from_dirname(dirname), name)


class ModifiedUtf7Tests(SynchronousTestCase):
    def test_rfc3501_example(self) -> None:
        decoded, encoded = "~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        self.assertEqual(mutf7_encode(decoded), encoded)
        self.assertEqual(mutf7_decode(encoded), decoded)

    def test_malformed(self) -> None:
        for bad in ("&Jjo", "&U,BTF-", "&AGE-", "é"):
            with self.assertRaises(ValueError, msg=bad):
                mutf7_decode(bad)

    @given(st.text(alphabet=st.characters(codec="utf-8"), max_size=30))
    def test_roundtrip(self, text: str) -> None:
        encoded = mutf7_encode(text)
        self.assertTrue(encoded.isascii())
        self.assertEqual(mutf7_decode(encoded), text)

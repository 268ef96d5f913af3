"""A user's Maildir++ tree, synchronously: folders and subscriptions.

``<base>/<user>/`` is INBOX (``cur/ new/ tmp/``); each other folder is a
``.Name`` or ``.Parent.Child`` directory with its own ``cur/ new/ tmp/`` and
an empty ``maildirfolder`` file.  Subscriptions live in ``subscriptions``.
"""

from __future__ import annotations

import os
import shutil

from netproto_twisted.mailstore.errors import MailboxExists, MailStoreError, NoSuchMailbox
from netproto_twisted.mailstore.fsops import FsOps, atomic_write
from netproto_twisted.mailstore.names import (
    HIERARCHY_SEPARATOR,
    INBOX,
    folder_dirname,
    folder_from_dirname,
    mutf7_decode,
    mutf7_encode,
    validate_folder,
    validate_user,
)

__all__ = [
    "MAILDIRFOLDER_NAME",
    "SUBSCRIPTIONS_NAME",
    "UserTree",
    "parse_subscriptions",
    "serialize_subscriptions",
]

MAILDIRFOLDER_NAME = "maildirfolder"
SUBSCRIPTIONS_NAME = "subscriptions"
_SUBDIRS = ("cur", "new", "tmp")
_DIR_MODE = 0o700


class UserTree:
    """Blocking folder operations on one user's Maildir++ tree."""

    def __init__(self, base: str, user: str, fs: FsOps) -> None:
        self.user = validate_user(user)
        self.root = os.path.join(base, self.user)
        self.fs = fs

    def folder_path(self, folder: str) -> str:
        """Return the directory of a folder (the root for INBOX)."""
        dirname = folder_dirname(folder)
        return os.path.join(self.root, dirname) if dirname else self.root

    def exists(self) -> bool:
        """Tell whether the user's INBOX exists."""
        return all(os.path.isdir(os.path.join(self.root, sub)) for sub in _SUBDIRS)

    def ensure_root(self) -> None:
        """Create the user's INBOX (``cur/ new/ tmp/``) if missing."""
        for sub in _SUBDIRS:
            os.makedirs(os.path.join(self.root, sub), mode=_DIR_MODE, exist_ok=True)

    def folder_exists(self, folder: str) -> bool:
        """Tell whether a folder exists (INBOX included)."""
        path = self.folder_path(folder)
        return all(os.path.isdir(os.path.join(path, sub)) for sub in _SUBDIRS)

    def list_folders(self) -> list[str]:
        """Return every folder name, INBOX first, the rest sorted; [] if the user has none."""
        if not self.exists():
            return []
        names: list[str] = []
        for entry in os.scandir(self.root):
            folder = folder_from_dirname(entry.name)
            if folder is None or not entry.is_dir(follow_symlinks=False):
                continue
            if os.path.isdir(os.path.join(entry.path, "cur")):
                names.append(folder)
        return [INBOX, *sorted(names)]

    def create_folder(self, folder: str) -> None:
        """Create a folder (and the user's INBOX if needed); raise :class:`MailboxExists`."""
        folder = validate_folder(folder)
        if folder == INBOX:
            if self.exists():
                raise MailboxExists(INBOX)
            self.ensure_root()
            return
        self.ensure_root()
        path = self.folder_path(folder)
        try:
            os.mkdir(path, _DIR_MODE)
        except FileExistsError:
            if self.folder_exists(folder):
                raise MailboxExists(folder) from None
        for sub in _SUBDIRS:
            os.makedirs(os.path.join(path, sub), mode=_DIR_MODE, exist_ok=True)
        with open(os.path.join(path, MAILDIRFOLDER_NAME), "ab"):
            pass
        self.fs.fsync_dir(self.root)

    def delete_folder(self, folder: str) -> None:
        """Delete a folder and its messages (its sub-folders stay); INBOX cannot be deleted."""
        folder = validate_folder(folder)
        if folder == INBOX:
            raise MailStoreError("INBOX cannot be deleted")
        if not self.folder_exists(folder):
            raise NoSuchMailbox(folder)
        path = self.folder_path(folder)
        # Move it out of sight first (a name no lister accepts), then remove it.
        trash = os.path.join(self.root, "..netproto-trash-" + os.urandom(8).hex())
        self.fs.rename(path, trash)
        self.fs.fsync_dir(self.root)
        shutil.rmtree(trash, ignore_errors=True)

    def rename_folder(self, old: str, new: str) -> None:
        """Rename a folder and all of its sub-folders; INBOX cannot be renamed here."""
        old = validate_folder(old)
        new = validate_folder(new)
        if old == INBOX:
            raise MailStoreError("renaming INBOX is not supported")
        if not self.folder_exists(old):
            raise NoSuchMailbox(old)
        if new == INBOX or os.path.lexists(self.folder_path(new)):
            raise MailboxExists(new)
        old_dir = folder_dirname(old)
        new_dir = folder_dirname(new)
        children = [
            entry.name
            for entry in os.scandir(self.root)
            if entry.name.startswith(old_dir + HIERARCHY_SEPARATOR)
        ]
        for child in children:
            if os.path.lexists(os.path.join(self.root, new_dir + child[len(old_dir) :])):
                raise MailboxExists(new + child[len(old_dir) :])
        self.fs.rename(os.path.join(self.root, old_dir), os.path.join(self.root, new_dir))
        for child in children:
            self.fs.rename(
                os.path.join(self.root, child),
                os.path.join(self.root, new_dir + child[len(old_dir) :]),
            )
        self.fs.fsync_dir(self.root)

    # -- subscriptions ------------------------------------------------------

    def subscriptions(self) -> list[str]:
        """Return the subscribed folder names, in file order."""
        try:
            with open(os.path.join(self.root, SUBSCRIPTIONS_NAME), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        return parse_subscriptions(data)

    def set_subscribed(self, folder: str, subscribed: bool) -> None:
        """Add or remove a folder name in the ``subscriptions`` file."""
        folder = validate_folder(folder)
        current = self.subscriptions()
        if subscribed and folder not in current:
            current.append(folder)
        elif not subscribed and folder in current:
            current.remove(folder)
        else:
            return
        self.ensure_root()
        atomic_write(
            os.path.join(self.root, SUBSCRIPTIONS_NAME), serialize_subscriptions(current), self.fs
        )


def parse_subscriptions(data: bytes) -> list[str]:
    """Parse a Dovecot ``subscriptions`` file (one name a line, or the ``V\\t2`` form)."""
    lines = data.decode("utf-8", "replace").split("\n")
    version2 = bool(lines) and lines[0].startswith("V\t")
    if version2:  # Dovecot 2.2+: UTF-8 names, components separated by tabs
        lines = [line.replace("\t", HIERARCHY_SEPARATOR) for line in lines[1:]]
    names: list[str] = []
    for line in lines:
        if not line:
            continue
        try:
            if not version2:
                line = HIERARCHY_SEPARATOR.join(
                    mutf7_decode(part) for part in line.split(HIERARCHY_SEPARATOR)
                )
            name = validate_folder(line)
        except ValueError:
            continue
        if name not in names:
            names.append(name)
    return names


def serialize_subscriptions(names: list[str]) -> bytes:
    """Serialise subscriptions one name a line (modified UTF-7), the format Dovecot reads."""
    return "".join(
        HIERARCHY_SEPARATOR.join(mutf7_encode(p) for p in name.split(HIERARCHY_SEPARATOR)) + "\n"
        for name in names
    ).encode("ascii")

"""FTP users: home directories and permission letters, from a small text file.

Passwords live in the shared password file (``netproto user add NAME``);
this file adds what FTP needs on top.  One user per line::

    # name     home (relative to --root, or absolute)   permissions
    alice      alice                                       elradfmwMT
    reports    /srv/reports                                elr
    *          %u                                          elradfmw

``%u`` in a home stands for the user's name; ``*`` is the entry for users
in the password file that this file does not name.  Without a ``*`` line
such users get ``<root>/<name>`` and every letter.  The letters (those of
pyftpdlib):

====== =================================================
``e``  change directory (CWD, CDUP)
``l``  list (LIST, NLST, MLSD, MLST, SIZE, MDTM, STAT path)
``r``  retrieve (RETR)
``a``  append (APPE)
``d``  delete (DELE, RMD)
``f``  rename (RNFR/RNTO)
``m``  make directories (MKD)
``w``  store (STOR, STOU)
``M``  change mode (SITE CHMOD)
``T``  change modification time (MFMT)
====== =================================================

Anonymous users (``anonymous``/``ftp``, only when enabled) get the
anonymous root with ``elr``: read only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from netproto_twisted.core.errors import ConfigError

__all__ = [
    "ALL_PERMISSIONS",
    "ANONYMOUS_NAMES",
    "READ_ONLY",
    "FTPUser",
    "UserTable",
]

ALL_PERMISSIONS = "elradfmwMT"
READ_ONLY = "elr"
ANONYMOUS_NAMES = frozenset({"anonymous", "ftp"})
_KNOWN_USERS = 10_000  # user() results kept


@dataclass(frozen=True)
class FTPUser:
    """One user's FTP facts: the home directory (a local path) and the permission letters."""

    name: str
    home: str
    permissions: str = ALL_PERMISSIONS

    def __post_init__(self) -> None:
        bad = set(self.permissions) - set(ALL_PERMISSIONS)
        if bad:
            raise ValueError(f"unknown permission letters {''.join(sorted(bad))!r}")

    def may(self, letter: str) -> bool:
        """Whether the user holds permission ``letter``."""
        return letter in self.permissions


class UserTable:
    """Users' homes and permissions (see the module docstring).

    :param root: the server's root; relative homes are under it.
    :param entries: name -> ``(home, permissions)``; ``"*"`` is the default entry.
    :param anonymous_root: the anonymous users' root, or ``None`` (anonymous off).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        entries: dict[str, tuple[str, str]] | None = None,
        *,
        anonymous_root: str | os.PathLike[str] | None = None,
    ) -> None:
        self.root = Path(root)
        self.entries = dict(entries or {})
        self.anonymous_root = None if anonymous_root is None else Path(anonymous_root)
        self._known: dict[str, FTPUser] = {}  # user() of a name asked before
        for name, (_, perms) in self.entries.items():
            FTPUser(name, "", perms)  # validate the letters now

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        root: str | os.PathLike[str],
        *,
        anonymous_root: str | os.PathLike[str] | None = None,
    ) -> UserTable:
        """Read the users file (a missing file is an empty table).

        :raises ConfigError: for a malformed line, naming it.
        """
        entries: dict[str, tuple[str, str]] = {}
        try:
            text = Path(path).read_text("utf-8")
        except FileNotFoundError:
            text = ""
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 3:
                raise ConfigError(f"{path}:{number}", "want: NAME HOME PERMISSIONS")
            name, home, perms = parts
            bad = set(perms) - set(ALL_PERMISSIONS)
            if bad:
                raise ConfigError(f"{path}:{number}", f"unknown permission letters {perms!r}")
            entries[name] = (home, perms)
        return cls(root, entries, anonymous_root=anonymous_root)

    @property
    def anonymous_enabled(self) -> bool:
        """Whether anonymous logins are accepted."""
        return self.anonymous_root is not None

    def user(self, name: str) -> FTPUser:
        """The FTP facts of an authenticated user (or of ``anonymous``)."""
        user = self._known.get(name)
        if user is not None:
            return user
        if name in ANONYMOUS_NAMES and self.anonymous_root is not None:
            user = FTPUser(name, str(self.anonymous_root), READ_ONLY)
        else:
            home, perms = (
                self.entries.get(name) or self.entries.get("*") or ("%u", ALL_PERMISSIONS)
            )
            home = home.replace("%u", name)
            path = Path(home) if os.path.isabs(home) else self.root / home
            user = FTPUser(name, str(path), perms)
        if len(self._known) >= _KNOWN_USERS:
            self._known.clear()
        self._known[name] = user
        return user

"""Maildir file names: unique names, the ``:2,<flags>`` info suffix, keywords.

A file name is ``<base>[:2,<letters>]``.  The base is unique and never changes
(``<sec>.M<usec>P<pid>Q<counter>R<random>.<host>,S=<size>,W=<size>``: ``S=``
is the file's size, ``W=`` the message's size with CRLF line endings, its
"virtual" size, as Dovecot names them; files are stored with LF, see
:mod:`netproto_twisted.mailstore.eol`); the info suffix
carries the flags: upper-case letters are the standard Maildir flags, lower
case letters ``a``-``z`` are IMAP keywords numbered by the folder's
``dovecot-keywords`` file (the same scheme as Dovecot).
"""

from __future__ import annotations

import itertools
import os
import random
import re
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "ANSWERED",
    "DELETED",
    "DRAFT",
    "FLAGGED",
    "FORWARDED",
    "INFO_SEPARATOR",
    "MAX_KEYWORDS",
    "SEEN",
    "SYSTEM_FLAGS",
    "KeywordTable",
    "ParsedName",
    "UniqueNames",
    "arrival_key",
    "flags_from_letters",
    "format_base",
    "format_info",
    "is_acceptable_filename",
    "letters_for_flags",
    "parse_filename",
    "parse_keywords_file",
    "serialize_keywords_file",
]

SEEN = "\\Seen"
ANSWERED = "\\Answered"
FLAGGED = "\\Flagged"
DELETED = "\\Deleted"
DRAFT = "\\Draft"
FORWARDED = "$Forwarded"

INFO_SEPARATOR = ":"
_INFO_PREFIX = ":2,"
MAX_KEYWORDS = 26

_LETTER_TO_FLAG: dict[str, str] = {
    "D": DRAFT,
    "F": FLAGGED,
    "P": FORWARDED,
    "R": ANSWERED,
    "S": SEEN,
    "T": DELETED,
}
_FLAG_TO_LETTER = {flag.lower(): letter for letter, flag in _LETTER_TO_FLAG.items()}
SYSTEM_FLAGS = frozenset(_LETTER_TO_FLAG.values())
"""The flags kept as standard Maildir letters (D F P R S T)."""


@dataclass(frozen=True)
class ParsedName:
    """A Maildir file name split into its unique base and its info."""

    base: str
    info: str | None
    """Everything after ``:``, such as ``2,FS``; None when there is no info."""
    size: int | None
    """The ``,S=<size>`` value of the base (the file's size), when present."""
    virtual_size: int | None = None
    """The ``,W=<size>`` value of the base (the size with CRLF endings), when present."""

    @property
    def letters(self) -> str:
        """Return the flag letters of a ``2,`` info, or "" for none/other info."""
        if self.info is not None and self.info.startswith("2,"):
            return self.info[2:]
        return ""


def is_acceptable_filename(name: str) -> bool:
    """Tell whether a directory entry may be a message (not hidden, no CR/LF/NUL, valid UTF-8)."""
    if not name or name[0] == ".":
        return False
    # Four substring searches in C (a set test would hash every character).
    if "/" in name or "\n" in name or "\r" in name or "\x00" in name:
        return False
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes arrive as lone surrogates
        return False
    return True


def parse_filename(name: str) -> ParsedName:
    """Split a Maildir file name into base, info and the ``S=`` size (never raises)."""
    base, sep, info = name.partition(INFO_SEPARATOR)
    size: int | None = None
    virtual: int | None = None
    for field in base.split(",")[1:]:
        value = field[2:]
        if not (value.isdigit() and value.isascii()):
            continue
        if field.startswith("S=") and size is None:
            size = int(value)
        elif field.startswith("W=") and virtual is None:
            virtual = int(value)
    return ParsedName(base=base, info=info if sep else None, size=size, virtual_size=virtual)


_TIME_PREFIX = re.compile(r"(\d+)(?:\.M(\d+))?")


def arrival_key(base: str) -> tuple[int, int, str]:
    """A base's sort key for new UIDs: its time prefix and ``M`` counter (arrival order)."""
    match = _TIME_PREFIX.match(base)
    if match is None:
        return (2**63, 0, base)
    return (int(match.group(1)), int(match.group(2) or 0), base)


def format_base(base: str, size: int, virtual_size: int) -> str:
    """Return the base with Dovecot's size fields: ``<base>,S=<size>,W=<virtual size>``."""
    return f"{base},S={size},W={virtual_size}"


class KeywordTable:
    """The keyword <-> letter table of one folder (``dovecot-keywords``)."""

    def __init__(self, names: Mapping[int, str] | None = None) -> None:
        self.by_index: dict[int, str] = dict(names or {})

    def letter_for(self, keyword: str) -> str | None:
        """Return the letter assigned to ``keyword`` (case-insensitive), if any."""
        wanted = keyword.lower()
        for index, name in self.by_index.items():
            if name.lower() == wanted:
                return chr(ord("a") + index)
        return None

    def keyword_for(self, letter: str) -> str | None:
        """Return the keyword of a lower-case letter, if assigned."""
        return self.by_index.get(ord(letter) - ord("a"))

    def assign(self, keyword: str) -> str | None:
        """Assign the first free letter to ``keyword``; None when all 26 are taken."""
        for index in range(MAX_KEYWORDS):
            if index not in self.by_index:
                self.by_index[index] = keyword
                return chr(ord("a") + index)
        return None


def parse_keywords_file(data: bytes) -> KeywordTable:
    """Parse a ``dovecot-keywords`` file (``<index> <keyword>`` lines); bad lines are skipped."""
    table = KeywordTable()
    for raw in data.decode("utf-8", "replace").splitlines():
        index_text, _, name = raw.partition(" ")
        if not index_text.isdigit() or not name or " " in name:
            continue
        index = int(index_text)
        if index < MAX_KEYWORDS and index not in table.by_index:
            table.by_index[index] = name
    return table


def serialize_keywords_file(table: KeywordTable) -> bytes:
    """Serialise a keyword table in the ``dovecot-keywords`` format."""
    return "".join(f"{i} {name}\n" for i, name in sorted(table.by_index.items())).encode()


def flags_from_letters(letters: str, keywords: KeywordTable) -> frozenset[str]:
    """Return the flag names of info letters (unknown letters are ignored)."""
    flags: set[str] = set()
    for letter in letters:
        if letter in _LETTER_TO_FLAG:
            flags.add(_LETTER_TO_FLAG[letter])
        elif "a" <= letter <= "z":
            keyword = keywords.keyword_for(letter)
            if keyword is not None:
                flags.add(keyword)
    return frozenset(flags)


def letters_for_flags(
    flags: Iterable[str], keywords: KeywordTable, keep: str = ""
) -> tuple[str, list[str]]:
    """Return (sorted letters, keywords without a letter) for flag names.

    ``keep`` holds letters of the old info that we do not understand; they
    are preserved so that another program's private flags survive.
    """
    letters = {ch for ch in keep if not ("A" <= ch <= "Z" and ch in _LETTER_TO_FLAG)}
    letters = {ch for ch in letters if not ("a" <= ch <= "z" and keywords.keyword_for(ch))}
    unassigned: list[str] = []
    for flag in flags:
        letter = _FLAG_TO_LETTER.get(flag.lower())
        if letter is None and flag.startswith("\\"):
            continue  # \Recent and unknown system flags are not stored
        if letter is None:
            letter = keywords.letter_for(flag)
        if letter is None:
            unassigned.append(flag)
        else:
            letters.add(letter)
    return "".join(sorted(letters)), unassigned


def format_info(letters: str) -> str:
    """Return the ``:2,<letters>`` suffix for sorted flag letters."""
    return _INFO_PREFIX + letters


def _quote_host(host: str) -> str:
    return host.replace("/", "\\057").replace(":", "\\072") or "localhost"


class _ProcessId:
    """``os.getpid()`` without a system call per name (refreshed in a forked child)."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._refresh)

    def _refresh(self) -> None:
        self._pid = os.getpid()
        _RANDOM.seed(os.urandom(16))

    def get(self) -> int:
        return self._pid


# The R part only adds entropy to names already unique by time, pid and counter;
# a PRNG seeded from os.urandom (again in every forked child) serves.
_RANDOM = random.Random(os.urandom(16))  # noqa: S311 (not a secret)
_PID = _ProcessId()


class UniqueNames:
    """Generate unique Maildir base names: ``<sec>.M<usec>P<pid>Q<n>R<rand>.<host>``."""

    _counter = itertools.count(1)
    _lock = threading.Lock()

    def __init__(self, hostname: str | None = None) -> None:
        self.hostname = _quote_host(hostname if hostname is not None else socket.gethostname())

    def new_base(self, now: float | None = None) -> str:
        """Return a new base name without the size field."""
        stamp = time.time() if now is None else now
        with self._lock:
            counter = next(self._counter)
        sec = int(stamp)
        usec = int((stamp - sec) * 1_000_000)
        rand = _RANDOM.getrandbits(32)
        return f"{sec}.M{usec}P{_PID.get()}Q{counter}R{rand:08x}.{self.hostname}"

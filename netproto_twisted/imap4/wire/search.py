"""SEARCH keys (RFC 3501 section 6.4.4, RFC 9051), parsed into a small tree."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from netproto_twisted.imap4.wire.tokens import CommandSyntaxError, Reader

__all__ = ["SearchKey", "parse_date", "parse_search"]

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_FLAG_KEYS = frozenset(
    {"ALL", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "NEW", "OLD", "RECENT", "SEEN",
     "UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN"}
)  # fmt: skip
_STRING_KEYS = frozenset({"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"})
_DATE_KEYS = frozenset({"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"})


@dataclass(frozen=True)
class SearchKey:
    """One key: ``name`` and its ``args`` (``AND``/``OR``/``NOT`` hold sub-keys).

    Names: the flag keys, the string keys (``args = (text,)``), ``HEADER``
    (``(field, text)``), ``KEYWORD``/``UNKEYWORD``, the date keys
    (``(date,)``), ``LARGER``/``SMALLER``, ``UID``/``SEQ`` (a
    :class:`SequenceSet`), ``MODSEQ``, ``AND``, ``OR``, ``NOT``.
    """

    name: str
    args: tuple[object, ...] = ()


def parse_date(text: str) -> datetime.date:
    """``1-Feb-1994`` (RFC 3501 date)."""
    try:
        day, month, year = text.split("-")
        return datetime.date(int(year), _MONTHS.index(month.lower()) + 1, int(day))
    except (ValueError, IndexError):
        raise CommandSyntaxError(f"bad date {text[:20]!r}") from None


def _date(reader: Reader) -> datetime.date:
    if reader.peek() == 0x22:
        return parse_date(reader.quoted().decode("ascii", "replace"))
    return parse_date(reader.atom())


def _text(reader: Reader, charset: str) -> str:
    raw = reader.astring()
    try:
        return raw.decode(charset)
    except (UnicodeDecodeError, LookupError):
        raise CommandSyntaxError("search text not in the charset") from None


def _key(reader: Reader, charset: str) -> SearchKey:
    if reader.peek() == 0x28:
        reader.open_list()
        keys = [_key(reader, charset)]
        while not reader.maybe(b")"):
            reader.space()
            keys.append(_key(reader, charset))
        reader.depth -= 1
        return keys[0] if len(keys) == 1 else SearchKey("AND", tuple(keys))
    c = reader.peek()
    if 0x30 <= c <= 0x39 or c == 0x2A:
        return SearchKey("SEQ", (reader.sequence_set(),))
    word = reader.atom().upper()
    if word in _FLAG_KEYS:
        return SearchKey(word)
    reader.space()
    if word in _STRING_KEYS:
        return SearchKey(word, (_text(reader, charset),))
    if word == "HEADER":
        field = reader.astring().decode("ascii", "replace")
        reader.space()
        return SearchKey(word, (field, _text(reader, charset)))
    if word in ("KEYWORD", "UNKEYWORD"):
        return SearchKey(word, (reader.flag(),))
    if word in _DATE_KEYS:
        return SearchKey(word, (_date(reader),))
    if word in ("LARGER", "SMALLER"):
        return SearchKey(word, (reader.number(),))
    if word == "UID":
        return SearchKey(word, (reader.sequence_set(),))
    if word == "MODSEQ":  # MODSEQ ["/flags/\\seen" all|priv|shared] n (RFC 7162)
        if reader.peek() == 0x22:
            entry = reader.quoted().decode("ascii", "replace")
            reader.space()
            kind = reader.atom().lower()
            if kind not in ("all", "priv", "shared"):
                raise CommandSyntaxError("bad MODSEQ entry type")
            reader.space()
            del entry
        return SearchKey(word, (reader.number64(),))
    if word == "NOT":
        reader.depth += 1
        if reader.depth > reader.max_depth:
            raise CommandSyntaxError("search keys nested too deeply")
        key = _key(reader, charset)
        reader.depth -= 1
        return SearchKey("NOT", (key,))
    if word == "OR":
        reader.depth += 1
        if reader.depth > reader.max_depth:
            raise CommandSyntaxError("search keys nested too deeply")
        first = _key(reader, charset)
        reader.space()
        second = _key(reader, charset)
        reader.depth -= 1
        return SearchKey("OR", (first, second))
    raise CommandSyntaxError(f"unknown search key {word[:30]}")


def parse_search(reader: Reader, charset: str = "utf-8") -> SearchKey:
    """Search keys up to the end of the command (their AND)."""
    keys = [_key(reader, charset)]
    while not reader.at_end():
        reader.space()
        keys.append(_key(reader, charset))
    return keys[0] if len(keys) == 1 else SearchKey("AND", tuple(keys))

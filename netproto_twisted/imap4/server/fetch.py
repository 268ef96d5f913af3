"""FETCH and SEARCH over message files: run in the thread pool, a batch of messages per trip.

:class:`MessageCache` remembers, per message file, its size with CRLF line
endings, its header and its serialised ENVELOPE, so a warm ``FETCH 1:*
(FLAGS RFC822.SIZE ENVELOPE)`` or a header SEARCH reads no file.  Files are
stored with LF (or CRLF); they are read through
:meth:`~netproto_twisted.mailstore.folder.MaildirFolder.open_message`, which
gives CRLF, so every size, offset and line count is in CRLF octets as IMAP
counts them.  ``RFC822.SIZE`` and ``LARGER``/``SMALLER`` take the size from
the name's ``W=`` field when it has one (no file read), and a partial fetch
of the whole message (``BODY[]<start.count>``) reads only up to its end.  A Maildir
file never changes content (only its name's flags), so entries never go
stale; the cache is bounded.
"""

from __future__ import annotations

import datetime
import email.utils
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union, cast

from netproto_twisted.imap4.server import mime
from netproto_twisted.imap4.wire.fetchspec import FetchAtt
from netproto_twisted.imap4.wire.search import SearchKey
from netproto_twisted.imap4.wire.serialise import encode, flag_list, format_date_time
from netproto_twisted.imap4.wire.tokens import SequenceSet
from netproto_twisted.mailstore.errors import NoSuchMessage
from netproto_twisted.mailstore.folder import MaildirFolder, MessageInfo

__all__ = [
    "FetchEntry",
    "MessageCache",
    "Piece",
    "StreamedLiteral",
    "fetch_batch",
    "fetch_pieces",
    "search_batch",
]

_HEAD_READ = 16 * 1024
_RECENT = "\\Recent"


@dataclass(frozen=True)
class FetchEntry:
    """One message to fetch or search: its sequence number, info and recent mark."""

    seq: int
    info: MessageInfo
    recent: bool = False

    @property
    def flags(self) -> list[str]:
        """Its flags as the session shows them."""
        flags = sorted(self.info.flags)
        if self.recent:
            flags.append(_RECENT)
        return flags


@dataclass
class _Cached:
    size: int
    header: bytes
    envelope: bytes | None = None
    #: The parsed header fields (kept once a search or an envelope needed them).
    fields: list[tuple[str, bytes]] | None = None


class MessageCache:
    """Sizes, headers and envelopes of message files, by file (see the module docstring)."""

    def __init__(self, max_entries: int = 200_000) -> None:
        self.max_entries = max_entries
        self._entries: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        #: Folders read ahead since the cache was last cleared (see :mod:`.prefetch`).
        self._prefetched: set[str] = set()

    def entries_get(self, key: str) -> _Cached | None:
        """The cached facts by key (the folder's path, NUL, the message's base)."""
        return self._entries.get(key)

    def _key(self, folder: MaildirFolder, info: MessageInfo) -> str:
        return folder.path + "\0" + info.base

    def get(self, folder: MaildirFolder, info: MessageInfo) -> _Cached | None:
        """The cached facts of a message, or ``None``."""
        return self._entries.get(self._key(folder, info))

    def put(self, folder: MaildirFolder, info: MessageInfo, entry: _Cached) -> None:
        """Remember a message's facts."""
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._clear()
            self._entries[self._key(folder, info)] = entry

    def _clear(self) -> None:
        self._entries.clear()
        self._prefetched.clear()

    def put_heads(self, heads: list[tuple[str, int, bytes, bytes]], path: str) -> None:
        """Remember ``(base, CRLF size, header, ENVELOPE)`` of messages of the folder ``path``.

        What :func:`~netproto_twisted.imap4.server.prefetch.read_heads` gives;
        left out if it would not fit.
        """
        prefix = path + "\0"
        with self._lock:
            if len(self._entries) + len(heads) > self.max_entries:
                return
            entries = self._entries
            for base, size, header, envelope in heads:
                entries[prefix + base] = _Cached(size, header, envelope)

    def prefetched(self, path: str) -> bool:
        """Whether the folder ``path`` was read ahead (or judged not worth it)."""
        return path in self._prefetched

    def mark_prefetched(self, path: str) -> None:
        """Note that the folder ``path`` was read ahead."""
        with self._lock:
            self._prefetched.add(path)


class _Message:
    """One message's data, loaded as far as needed (blocking)."""

    def __init__(self, folder: MaildirFolder, info: MessageInfo, cache: MessageCache) -> None:
        self.folder = folder
        self.info = info
        self.cache = cache
        self._cached = cache.get(folder, info)
        self._raw: bytes | None = None
        self._part: mime.Part | None = None
        self._header_part: mime.Part | None = None

    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = self.folder.read_message(self.info)
            if self._cached is None:
                header, _body = mime.split_header(self._raw)
                self._cached = _Cached(len(self._raw), header)
                self.cache.put(self.folder, self.info, self._cached)
        return self._raw

    def loaded(self) -> bool:
        """Whether the whole message has been read already."""
        return self._raw is not None

    def has_header(self) -> bool:
        """Whether the header is known without reading the file."""
        return self._cached is not None

    def cached(self) -> _Cached:
        if self._cached is None:
            if self._raw is None:
                header, size = self.folder.read_head(self.info)
                self._cached = _Cached(size, header)
                self.cache.put(self.folder, self.info, self._cached)
            else:
                self.raw()
        assert self._cached is not None
        return self._cached

    def size(self) -> int:
        known = self.info.crlf_size
        if known is not None and self._cached is None:
            return known
        return self.cached().size

    def octets(self, start: int, count: int, offset: int = 0) -> bytes:
        """``count`` CRLF octets from ``offset + start`` (read only that far unless loaded)."""
        if self._raw is not None:
            return self._raw[offset + start : offset + start + count]
        with self.folder.open_message(self.info) as f:
            f.seek(offset + start)
            return f.read(count)

    def part(self) -> mime.Part:
        if self._part is None:
            self._part = mime.parse_message(self.raw())
        return self._part

    def header_part(self) -> mime.Part:
        if self._part is not None:
            return self._part
        if self._header_part is None:
            cached = self.cached()
            if cached.fields is None:
                cached.fields = mime.parse_headers(cached.header)
            self._header_part = mime.Part(cached.header, b"", cached.fields)
        return self._header_part

    def envelope(self) -> bytes:
        cached = self.cached()
        if cached.envelope is None:
            if cached.fields is None:
                cached.fields = mime.parse_headers(cached.header)
            cached.envelope = mime.envelope_bytes(cached.fields)
        return cached.envelope


def _literal(data: bytes, binary: bool = False) -> bytes:
    if binary and b"\x00" in data:
        return b"~{%d}\r\n" % len(data) + data
    return b"{%d}\r\n" % len(data) + data


@dataclass(frozen=True)
class StreamedLiteral:
    """A literal's octets left to stream from the message file: CRLF octets ``[start, +count)``.

    The ``{count}`` that announces them is at the end of the piece before.
    """

    info: MessageInfo
    start: int
    count: int


#: What :func:`fetch_pieces` returns: response bytes, and literals to stream between them.
Piece = Union[bytes, StreamedLiteral]  # noqa: UP007 (an alias evaluated at run time)


def fetch_batch(
    folder: MaildirFolder,
    entries: Sequence[FetchEntry],
    atts: Sequence[FetchAtt],
    cache: MessageCache,
    with_uid: bool,
) -> list[bytes]:
    """The ``* n FETCH (...)`` responses of ``entries`` (blocking: reads files as needed).

    A message whose file vanished (expunged by another process) is left out.
    """
    pieces, _count = fetch_pieces(folder, entries, atts, cache, with_uid)
    return cast("list[bytes]", pieces)


def fetch_pieces(
    folder: MaildirFolder,
    entries: Sequence[FetchEntry],
    atts: Sequence[FetchAtt],
    cache: MessageCache,
    with_uid: bool,
    *,
    budget: int | None = None,
    stream_over: int | None = None,
) -> tuple[list[Piece], int]:
    """The responses of the first entries, as pieces; and how many entries they answer.

    Blocking (reads files as needed).  ``budget``: stop after the entry
    that brings the bytes built past it, so a batch holds about that much
    whatever the messages' sizes.  ``stream_over``: a whole message
    (``BODY[]``, ``RFC822``, partial or not) of at least this many octets
    is not read here but left as a :class:`StreamedLiteral`, to be sent
    from its file a block at a time.  A message whose file vanished
    (expunged by another process) is left out.
    """
    if all(att.name in _HEADER_LEVEL and att.section is None for att in atts):
        return _fetch_header_level(folder, entries, atts, cache, with_uid, budget)
    out: list[Piece] = []
    built = 0
    for count, entry in enumerate(entries, 1):
        message = _Message(folder, entry.info, cache)
        try:
            pieces = _fetch_one(entry, message, atts, with_uid, stream_over)
        except (FileNotFoundError, NoSuchMessage):  # gone since the session last looked
            continue
        out += pieces
        if budget is not None:
            built += sum(len(p) for p in pieces if isinstance(p, bytes))
            if built >= budget:
                return out, count
    return out, len(entries)


#: Items answered from the name, the snapshot and the header alone.
_HEADER_LEVEL = frozenset(("UID", "FLAGS", "RFC822.SIZE", "INTERNALDATE", "ENVELOPE", "MODSEQ"))


def _fetch_header_level(
    folder: MaildirFolder,
    entries: Sequence[FetchEntry],
    atts: Sequence[FetchAtt],
    cache: MessageCache,
    with_uid: bool,
    budget: int | None,
) -> tuple[list[Piece], int]:
    """:func:`fetch_pieces` for items that need at most the header (the common
    ``FLAGS RFC822.SIZE ENVELOPE``): the same responses, one loop, no per-message objects.
    """
    names = [att.name for att in atts]
    if with_uid and "UID" not in names:
        names.insert(0, "UID")
    flag_bytes: dict[tuple[frozenset[str], bool], bytes] = {}
    prefix = folder.path + "\0"
    entries_get = cache.entries_get
    out: list[Piece] = []
    built = 0
    for count, entry in enumerate(entries, 1):
        info = entry.info
        cached = entries_get(prefix + info.base)
        items = [b"* %d FETCH (" % entry.seq]
        try:
            for name in names:
                if name == "UID":
                    items.append(b"UID %d" % info.uid)
                elif name == "FLAGS":
                    key = (info.flags, entry.recent)
                    flags = flag_bytes.get(key)
                    if flags is None:
                        flags = flag_bytes[key] = b"FLAGS " + flag_list(entry.flags)
                    items.append(flags)
                elif name == "RFC822.SIZE":
                    size = info.crlf_size if cached is None else cached.size
                    if size is None:
                        cached = _load_head(folder, info, cache)
                        size = cached.size
                    items.append(b"RFC822.SIZE %d" % size)
                elif name == "INTERNALDATE":
                    items.append(b"INTERNALDATE " + format_date_time(info.internal_date).encode())
                elif name == "ENVELOPE":
                    if cached is None:
                        cached = _load_head(folder, info, cache)
                    envelope = cached.envelope
                    if envelope is None:
                        if cached.fields is None:
                            cached.fields = mime.parse_headers(cached.header)
                        envelope = cached.envelope = mime.envelope_bytes(cached.fields)
                    items.append(b"ENVELOPE " + envelope)
                else:  # MODSEQ
                    items.append(b"MODSEQ (%d)" % info.modseq)
        except (FileNotFoundError, NoSuchMessage):  # gone since the session last looked
            continue
        line = items[0] + b" ".join(items[1:]) + b")\r\n"
        out.append(line)
        if budget is not None:
            built += len(line)
            if built >= budget:
                return out, count
    return out, len(entries)


def _load_head(folder: MaildirFolder, info: MessageInfo, cache: MessageCache) -> _Cached:
    """Read a message's header and size into the cache (blocking)."""
    header, size = folder.read_head(info)
    cached = _Cached(size, header)
    cache.put(folder, info, cached)
    return cached


def _fetch_one(
    entry: FetchEntry,
    message: _Message,
    atts: Sequence[FetchAtt],
    with_uid: bool,
    stream_over: int | None = None,
) -> list[Piece]:
    info = entry.info
    items: list[bytes | tuple[bytes, StreamedLiteral]] = []
    names = {att.name for att in atts}
    if with_uid and "UID" not in names:
        items.append(b"UID %d" % info.uid)
    for att in atts:
        name = att.name
        if name == "UID":
            items.append(b"UID %d" % info.uid)
        elif name == "FLAGS":
            items.append(b"FLAGS " + flag_list(entry.flags))
        elif name == "RFC822.SIZE":
            items.append(b"RFC822.SIZE %d" % message.size())
        elif name == "INTERNALDATE":
            items.append(b"INTERNALDATE " + format_date_time(info.internal_date).encode())
        elif name == "ENVELOPE":
            items.append(b"ENVELOPE " + message.envelope())
        elif name in ("BODYSTRUCTURE", "BODY") and att.section is None:
            items.append(
                name.encode()
                + b" "
                + encode(mime.body_structure(message.part(), name == "BODYSTRUCTURE"))
            )
        elif name == "RFC822":
            streamed = _streamed(message, stream_over, None)
            if streamed is not None:
                items.append((b"RFC822 {%d}\r\n" % streamed.count, streamed))
            else:
                items.append(b"RFC822 " + _literal(message.raw()))
        elif name == "RFC822.HEADER":
            items.append(b"RFC822.HEADER " + _literal(message.cached().header))
        elif name == "RFC822.TEXT":
            items.append(b"RFC822.TEXT " + _literal(mime.split_header(message.raw())[1]))
        elif att.section is not None:
            section = att.section
            streamed = (
                _streamed(message, stream_over, att.partial)
                if name == "BODY" and not section.part and not section.text
                else None
            )
            if streamed is not None:
                label = att.response_name().encode()
                items.append((label + b" {%d}\r\n" % streamed.count, streamed))
            else:
                items.append(_section(att, message))
        elif name == "MODSEQ":
            items.append(b"MODSEQ (%d)" % info.modseq)
    head = b"* %d FETCH (" % entry.seq
    if all(type(item) is bytes for item in items):
        return [head + b" ".join(cast("list[bytes]", items)) + b")\r\n"]
    out: list[Piece] = []
    text = [head]
    for n, item in enumerate(items):
        if n:
            text.append(b" ")
        if isinstance(item, bytes):
            text.append(item)
            continue
        text.append(item[0])
        out.append(b"".join(text))
        out.append(item[1])
        text = []
    text.append(b")\r\n")
    out.append(b"".join(text))
    return out


def _streamed(
    message: _Message, stream_over: int | None, partial: tuple[int, int] | None
) -> StreamedLiteral | None:
    """The whole message (or its ``<start.count>``) as a literal to stream, if it is large."""
    if stream_over is None or message.loaded():
        return None
    size = message.size()
    if size < stream_over:
        return None
    start, count = partial if partial is not None else (0, size)
    start = min(start, size)
    return StreamedLiteral(message.info, start, max(0, min(count, size - start)))


def _section(att: FetchAtt, message: _Message) -> bytes:
    section = att.section
    assert section is not None
    label = att.response_name().encode()
    if att.partial is not None and not section.part and att.name != "BINARY.SIZE":
        start, count = att.partial
        if not section.text:
            return label + b" " + _literal(message.octets(start, count), att.name == "BINARY")
        if section.text == "TEXT" and message.has_header():
            offset = len(message.cached().header)
            text = message.octets(start, count, offset)
            return label + b" " + _literal(text, att.name == "BINARY")
    if att.name == "BODY" and section.text == "HEADER" and not section.part:
        data: bytes | None = message.cached().header
    elif att.name == "BODY" and section.text.startswith("HEADER.FIELDS") and not section.part:
        data = mime.section_bytes(message.header_part(), message.cached().header, section)
    else:
        data = mime.section_bytes(
            message.part(), message.raw(), section, binary=att.name != "BODY"
        )
    if att.name == "BINARY.SIZE":
        return label + b" %d" % len(data or b"")
    if data is None:
        return label + (b' ""' if att.name == "BODY" else b" NIL")
    if att.partial is not None:
        start, count = att.partial
        data = data[start : start + count]
    return label + b" " + _literal(data, binary=att.name == "BINARY")


# -- SEARCH ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchContext:
    """What SEARCH keys need besides the message: the largest sequence number and UID."""

    max_seq: int
    max_uid: int


def search_batch(
    folder: MaildirFolder,
    entries: Sequence[FetchEntry],
    key: SearchKey,
    cache: MessageCache,
    context: SearchContext,
) -> list[FetchEntry]:
    """The entries that match ``key`` (blocking: reads what the keys need)."""
    out = []
    for entry in entries:
        message = _Message(folder, entry.info, cache)
        try:
            if _match(key, entry, message, context):
                out.append(entry)
        except (FileNotFoundError, NoSuchMessage):  # gone since the session last looked
            continue
    return out


def _in(seqset: object, value: int, largest: int) -> bool:
    assert isinstance(seqset, SequenceSet)
    for a, b in seqset.ranges:
        a = largest if a == 0 else a
        b = largest if b == 0 else b
        if min(a, b) <= value <= max(a, b):
            return True
    return False


def _header_values(message: _Message, name: str) -> list[str]:
    name = name.lower()
    return [mime.decoded_header(v) for k, v in message.header_part().headers if k == name]


def _contains(haystack: str, needle: str) -> bool:
    return needle.casefold() in haystack.casefold()


def _sent_date(message: _Message) -> datetime.date | None:
    value = message.header_part().get("date")
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value.decode("ascii", "replace")).date()
    except (TypeError, ValueError, IndexError):
        return None


def _match(key: SearchKey, entry: FetchEntry, message: _Message, ctx: SearchContext) -> bool:
    name = key.name
    flags = entry.info.flags
    if name == "AND":
        return all(_match(k, entry, message, ctx) for k in key.args)  # type: ignore[arg-type]
    if name == "OR":
        return any(_match(k, entry, message, ctx) for k in key.args)  # type: ignore[arg-type]
    if name == "NOT":
        return not _match(key.args[0], entry, message, ctx)  # type: ignore[arg-type]
    if name == "ALL":
        return True
    simple = {
        "ANSWERED": "\\Answered", "DELETED": "\\Deleted", "DRAFT": "\\Draft",
        "FLAGGED": "\\Flagged", "SEEN": "\\Seen",
    }  # fmt: skip
    if name in simple:
        return simple[name] in flags
    if name.startswith("UN") and name[2:] in simple:
        return simple[name[2:]] not in flags
    if name == "RECENT":
        return entry.recent
    if name == "OLD":
        return not entry.recent
    if name == "NEW":
        return entry.recent and "\\Seen" not in flags
    if name == "KEYWORD":
        return str(key.args[0]).lower() in {f.lower() for f in flags}
    if name == "UNKEYWORD":
        return str(key.args[0]).lower() not in {f.lower() for f in flags}
    if name == "SEQ":
        return _in(key.args[0], entry.seq, ctx.max_seq)
    if name == "UID":
        return _in(key.args[0], entry.info.uid, ctx.max_uid)
    if name == "LARGER":
        return message.size() > cast(int, key.args[0])
    if name == "SMALLER":
        return message.size() < cast(int, key.args[0])
    if name in ("BEFORE", "ON", "SINCE"):
        day = datetime.datetime.fromtimestamp(entry.info.internal_date).date()
        return _compare(name, day, key.args[0])
    if name in ("SENTBEFORE", "SENTON", "SENTSINCE"):
        sent = _sent_date(message)
        return sent is not None and _compare(name[4:], sent, key.args[0])
    if name in ("FROM", "TO", "CC", "BCC", "SUBJECT"):
        return any(_contains(v, str(key.args[0])) for v in _header_values(message, name))
    if name == "HEADER":
        field, text = str(key.args[0]), str(key.args[1])
        values = _header_values(message, field)
        return bool(values) and (not text or any(_contains(v, text) for v in values))
    if name == "BODY":
        return _contains(mime.body_text(message.part()), str(key.args[0]))
    if name == "TEXT":
        needle = str(key.args[0])
        header = message.cached().header.decode("utf-8", "replace")
        return _contains(header, needle) or _contains(mime.body_text(message.part()), needle)
    if name == "MODSEQ":  # RFC 7162: changed at or after the given mod-sequence
        return entry.info.modseq >= cast(int, key.args[0])
    return False


def _compare(how: str, day: datetime.date, when: object) -> bool:
    assert isinstance(when, datetime.date)
    if how == "BEFORE":
        return day < when
    if how == "ON":
        return day == when
    return day >= when

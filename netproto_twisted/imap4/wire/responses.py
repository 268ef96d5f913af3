"""Parsing IMAP server responses (for the client): values, then typed results.

:func:`parse_response` takes a response's segments (the line parts and the
literals between them, as the client received them) and returns a
:class:`Tagged`, :class:`Continuation` or :class:`Untagged`; an untagged
``FETCH`` carries a dict of typed items (:class:`Envelope`,
:class:`BodyStructure`, flag tuples, datetimes).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "Address",
    "BodyStructure",
    "Continuation",
    "Envelope",
    "ResponseSyntaxError",
    "Tagged",
    "Untagged",
    "Vanished",
    "parse_response",
    "parse_uid_ranges",
    "parse_values",
]

_ATOM_END = frozenset(b" ()[]\r\n")
_NUMBER = re.compile(rb"\d+\Z")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_STATUS = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH"})
_MAX_DEPTH = 100
#: One response token (spaces before it skipped): a list's ends, a quoted string, a number,
#: NIL, a literal marker ending the line part, or an atom (``BODY[HEADER.FIELDS (A B)]<0>``
#: included: brackets belong to it).
_TOKEN = re.compile(  # loops unrolled ("normal* (special normal*)*"): half the time
    rb' *(?:(?P<open>\()|(?P<close>\))|"(?P<quoted>[^"\\\r\n]*(?:\\.[^"\\\r\n]*)*)"'
    rb"|(?P<literal>~?\{\d+\+?\}\Z)"
    rb"|(?P<number>\d+)(?=[ ()]|\Z)|(?P<nil>(?i:NIL))(?=[ ()]|\Z)"
    rb"|(?P<atom>[^ ()\[\]\r\n\"{]+(?:\[[^\]]*\][^ ()\[\]\r\n\"{]*)*"
    rb"|(?:\[[^\]]*\][^ ()\[\]\r\n\"{]*)+))",
    re.DOTALL,
)
_UNESCAPE = re.compile(rb"\\(.)", re.DOTALL)
_T_OPEN, _T_CLOSE, _T_QUOTED, _T_NUMBER, _T_NIL, _T_ATOM = (
    _TOKEN.groupindex[name] for name in ("open", "close", "quoted", "number", "nil", "atom")
)


class ResponseSyntaxError(ValueError):
    """The server sent something that does not parse."""


class Address(NamedTuple):
    """One envelope address (a named tuple: cheap to build by the thousand)."""

    name: bytes | None
    route: bytes | None
    mailbox: bytes | None
    host: bytes | None

    def __str__(self) -> str:
        mailbox = (self.mailbox or b"").decode("utf-8", "replace")
        host = (self.host or b"").decode("utf-8", "replace")
        return f"{mailbox}@{host}" if host else mailbox


class Envelope(NamedTuple):
    """A FETCH ENVELOPE (a named tuple)."""

    date: bytes | None
    subject: bytes | None
    from_: tuple[Address, ...]
    sender: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    in_reply_to: bytes | None
    message_id: bytes | None


@dataclass(frozen=True)
class BodyStructure:
    """A FETCH BODY/BODYSTRUCTURE: a leaf part, or a multipart with ``parts``."""

    type: str
    subtype: str
    params: dict[str, str] = field(default_factory=dict)
    parts: tuple[BodyStructure, ...] = ()
    id: bytes | None = None
    description: bytes | None = None
    encoding: str | None = None
    size: int | None = None
    lines: int | None = None
    envelope: Envelope | None = None
    body: BodyStructure | None = None
    extension: tuple[Any, ...] = ()

    @property
    def is_multipart(self) -> bool:
        """Whether it is a multipart."""
        return bool(self.parts)


@dataclass(frozen=True)
class Vanished:
    """``* VANISHED [(EARLIER)] uid-set`` (RFC 7162): UIDs expunged, as ranges.

    :ivar earlier: ``(EARLIER)``: an answer to QRESYNC or ``VANISHED``, not news.
    :ivar ranges: ``(low, high)`` UID ranges, as sent (a server may send ``1:4000000000``).
    """

    earlier: bool
    ranges: tuple[tuple[int, int], ...]

    def uids(self, limit: int = 10_000_000) -> list[int]:
        """The UIDs one by one (``ValueError`` beyond ``limit`` of them)."""
        if sum(b - a + 1 for a, b in self.ranges) > limit:
            raise ValueError("too many UIDs to list; use the ranges")
        return [uid for a, b in self.ranges for uid in range(a, b + 1)]

    def __contains__(self, uid: object) -> bool:
        return isinstance(uid, int) and any(a <= uid <= b for a, b in self.ranges)


def parse_uid_ranges(text: str) -> tuple[tuple[int, int], ...]:
    """``1:3,7`` (no ``*``) as ``((1, 3), (7, 7))``; raise :class:`ResponseSyntaxError`."""
    out = []
    for part in text.split(","):
        low, _, high = part.partition(":")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ResponseSyntaxError(f"bad UID set {text[:40]!r}")
        a, b = int(low), int(high or low)
        out.append((min(a, b), max(a, b)))
    return tuple(out)


@dataclass(frozen=True)
class Tagged:
    """A tagged completion."""

    tag: str
    status: str
    code: str | None
    code_data: str | None
    text: str


@dataclass(frozen=True)
class Continuation:
    """``+ text`` (or base64 SASL data)."""

    text: bytes


@dataclass(frozen=True)
class Untagged:
    """An untagged response.

    :ivar kind: upper-case name: ``OK``, ``EXISTS``, ``FETCH``, ``LIST``, ``ESEARCH`` ...
    :ivar number: the leading number (``* 3 EXISTS``), or ``None``.
    :ivar data: the parsed payload (see :func:`parse_response`).
    :ivar code: the response code of a status response.
    :ivar code_data: what follows the code's atom.
    :ivar text: the human text of a status response.
    """

    kind: str
    number: int | None = None
    data: Any = None
    code: str | None = None
    code_data: str | None = None
    text: str = ""


class _Values:
    """Reads values from segments: atoms (str), numbers (int), strings (bytes), NIL, lists."""

    def __init__(self, segments: Sequence[bytes], start: int = 0) -> None:
        self.segments = segments
        self.index = 0
        self.data = segments[0]
        self.pos = start

    def peek(self) -> int:
        return self.data[self.pos] if self.pos < len(self.data) else -1

    def at_end(self) -> bool:
        return self.pos >= len(self.data) and self.index >= len(self.segments) - 1

    def skip_space(self) -> None:
        while self.peek() == 0x20:
            self.pos += 1

    def value(self, depth: int = 0) -> Any:
        """One value: a list is read iteratively, a token at a time, by one regex."""
        stack: list[list[Any]] = []
        top: list[Any] | None = None  # the innermost open list (stack[-1])
        while True:  # once per segment: a literal moves on to the next one
            data = self.data
            match = _TOKEN.match
            pos = self.pos
            while True:
                m = match(data, pos)
                if m is None:
                    if pos >= len(data):
                        raise ResponseSyntaxError("unexpected end of response")
                    raise ResponseSyntaxError(f"unexpected {data[pos : pos + 10]!r}")
                pos = m.end()
                kind = m.lastindex  # the group numbers of _TOKEN, most frequent first
                item: Any
                if kind == _T_QUOTED:
                    item = m.group(_T_QUOTED)
                    if b"\\" in item:
                        item = _UNESCAPE.sub(rb"\1", item)
                elif kind == _T_NIL:
                    item = None
                elif kind == _T_OPEN:
                    if len(stack) + depth >= _MAX_DEPTH:
                        raise ResponseSyntaxError("nested too deeply")
                    top = []
                    stack.append(top)
                    continue
                elif kind == _T_CLOSE:
                    if top is None:
                        raise ResponseSyntaxError("unbalanced )")
                    item = stack.pop()
                    top = stack[-1] if stack else None
                elif kind == _T_ATOM:
                    item = m.group(_T_ATOM).decode("utf-8", "replace")
                elif kind == _T_NUMBER:
                    item = int(m.group(_T_NUMBER))
                else:
                    item = self._literal()
                    if top is None:
                        return item
                    top.append(item)
                    break
                if top is None:
                    self.pos = pos
                    return item
                top.append(item)

    def _literal(self) -> bytes:
        """The literal announced at the end of this segment; move to the segment after it."""
        self.index += 1
        if self.index >= len(self.segments):
            raise ResponseSyntaxError("literal missing")
        item = self.segments[self.index]
        self.index += 1
        self.data = self.segments[self.index] if self.index < len(self.segments) else b""
        self.pos = 0
        return item

    def quoted(self) -> bytes:
        data = self.data
        i = self.pos + 1
        out = bytearray()
        while i < len(data):
            c = data[i]
            if c == 0x22:
                self.pos = i + 1
                return bytes(out)
            if c == 0x5C and i + 1 < len(data):
                i += 1
                c = data[i]
            out.append(c)
            i += 1
        raise ResponseSyntaxError("unterminated quoted string")

    def atom(self) -> Any:
        data = self.data
        start = i = self.pos
        n = len(data)
        while i < n:
            c = data[i]
            if c == 0x5B:  # BODY[HEADER.FIELDS (A B)]: brackets belong to the atom
                close = data.find(b"]", i)
                if close < 0:
                    raise ResponseSyntaxError("unterminated [")
                i = close + 1
                continue
            if c in _ATOM_END:
                break
            i += 1
        if i == start:
            raise ResponseSyntaxError(f"unexpected {data[i : i + 1]!r}")
        self.pos = i
        text = data[start:i]
        if _NUMBER.match(text):
            return int(text)
        if text.upper() == b"NIL":
            return None
        return text.decode("utf-8", "replace")

    def rest_text(self) -> str:
        data = self.data[self.pos :]
        self.pos = len(self.data)
        return data.decode("utf-8", "replace")


def parse_values(data: bytes) -> list[Any]:
    """Every value of a line without literals (for tests and simple uses)."""
    v = _Values([data])
    out: list[Any] = []
    while True:
        v.skip_space()
        if v.at_end():
            return out
        out.append(v.value())


def _addresses(value: Any) -> tuple[Address, ...]:
    if not value:
        return ()
    out = []
    for a in value:
        if isinstance(a, list) and len(a) >= 4:
            name, route, mailbox, host = a[0], a[1], a[2], a[3]
            # quoted strings (bytes) and NIL, the usual case, need no conversion
            if name is not None and name.__class__ is not bytes:
                name = _bytes(name)
            if route is not None and route.__class__ is not bytes:
                route = _bytes(route)
            if mailbox is not None and mailbox.__class__ is not bytes:
                mailbox = _bytes(mailbox)
            if host is not None and host.__class__ is not bytes:
                host = _bytes(host)
            out.append(Address(name, route, mailbox, host))
    return tuple(out)


def _bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def envelope(value: list[Any]) -> Envelope:
    """An :class:`Envelope` from its parsed list."""
    if not isinstance(value, list) or len(value) < 10:
        raise ResponseSyntaxError("bad envelope")
    return Envelope(
        _bytes(value[0]), _bytes(value[1]), _addresses(value[2]), _addresses(value[3]),
        _addresses(value[4]), _addresses(value[5]), _addresses(value[6]), _addresses(value[7]),
        _bytes(value[8]), _bytes(value[9]),
    )  # fmt: skip


def _params(value: Any) -> dict[str, str]:
    if not isinstance(value, list):
        return {}
    out = {}
    for k, v in zip(value[::2], value[1::2], strict=False):
        key = k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)
        out[key.lower()] = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
    return out


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def body_structure(value: list[Any]) -> BodyStructure:
    """A :class:`BodyStructure` from its parsed list."""
    if not isinstance(value, list) or not value:
        raise ResponseSyntaxError("bad body structure")
    if isinstance(value[0], list):
        parts = []
        i = 0
        while i < len(value) and isinstance(value[i], list):
            parts.append(body_structure(value[i]))
            i += 1
        subtype = _text(value[i]) if i < len(value) else "MIXED"
        params = _params(value[i + 1]) if i + 1 < len(value) else {}
        return BodyStructure(
            "multipart", subtype.lower(), params, tuple(parts), extension=tuple(value[i + 2 :])
        )
    if len(value) < 7:
        raise ResponseSyntaxError("bad body part")
    kind, subtype = _text(value[0]).lower(), _text(value[1]).lower()
    size = value[6] if isinstance(value[6], int) else None
    rest = value[7:]
    env = body = None
    lines = None
    if kind == "message" and subtype in ("rfc822", "global") and len(rest) >= 3:
        env = envelope(rest[0])
        body = body_structure(rest[1])
        lines = rest[2] if isinstance(rest[2], int) else None
        rest = rest[3:]
    elif kind == "text" and rest:
        lines = rest[0] if isinstance(rest[0], int) else None
        rest = rest[1:]
    return BodyStructure(
        kind, subtype, _params(value[2]), (), _bytes(value[3]), _bytes(value[4]),
        _text(value[5]).lower() or None, size, lines, env, body, tuple(rest),
    )  # fmt: skip


def parse_internal_date(text: bytes | str) -> datetime.datetime:
    """``17-Jul-1996 02:44:25 -0700`` as an aware datetime."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    m = re.match(r"\s*(\d{1,2})-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)", text)
    if m is None:
        raise ResponseSyntaxError(f"bad date-time {text!r}")
    d, mon, y, hh, mm, ss, sign, zh, zm = m.groups()
    offset = datetime.timedelta(hours=int(zh), minutes=int(zm))
    return datetime.datetime(
        int(y), _MONTHS.index(mon.lower()) + 1, int(d), int(hh), int(mm), int(ss),
        tzinfo=datetime.timezone(-offset if sign == "-" else offset),
    )  # fmt: skip


def fetch_items(value: Any) -> dict[str, Any]:
    """The items of ``* n FETCH (...)``, typed: ``FLAGS`` a tuple, ``ENVELOPE`` an Envelope ..."""
    if not isinstance(value, list):
        raise ResponseSyntaxError("FETCH data is not a list")
    items: dict[str, Any] = {}
    for name, item in zip(value[::2], value[1::2], strict=False):
        key = str(name).upper() if not isinstance(name, bytes) else name.decode().upper()
        if key == "FLAGS":
            item = tuple(str(f) for f in item or ())
        elif key == "ENVELOPE":
            item = envelope(item)
        elif key in ("BODYSTRUCTURE", "BODY"):
            item = body_structure(item)
        elif key == "INTERNALDATE":
            item = parse_internal_date(item)
        elif key == "MODSEQ" and isinstance(item, list) and item:
            item = item[0]
        elif isinstance(item, str) and key.startswith(("BODY[", "BINARY[", "RFC822")):
            item = item.encode("utf-8")
        items[key] = item
    return items


def _split_code(text: str) -> tuple[str | None, str | None, str]:
    if not text.startswith("["):
        return None, None, text
    close = text.find("]")
    if close < 0:
        return None, None, text
    inner = text[1:close]
    atom, _, data = inner.partition(" ")
    return atom.upper(), data or None, text[close + 1 :].lstrip(" ")


def _esearch(v: _Values) -> dict[str, Any]:
    out: dict[str, Any] = {"uid": False}
    while True:
        v.skip_space()
        if v.at_end():
            return out
        item = v.value()
        if isinstance(item, list):  # (TAG "A1")
            if len(item) == 2:
                out["tag"] = _text(item[1])
            continue
        key = str(item).upper()
        if key == "UID":
            out["uid"] = True
            continue
        out[key.lower()] = v.value()


def parse_response(segments: Sequence[bytes]) -> Tagged | Untagged | Continuation:
    """Parse one response (see the module docstring); raise :class:`ResponseSyntaxError`."""
    try:
        return _parse(segments)
    except (IndexError, ValueError, TypeError, AttributeError, RecursionError) as e:
        if isinstance(e, ResponseSyntaxError):
            raise
        raise ResponseSyntaxError(f"unparsable response: {e}") from None


def _parse(segments: Sequence[bytes]) -> Tagged | Untagged | Continuation:
    line = segments[0]
    if line.startswith(b"+"):
        return Continuation(line[2:] if line.startswith(b"+ ") else line[1:])
    tag, _, rest = line.partition(b" ")
    if tag != b"*":
        status, _, text = rest.partition(b" ")
        code, code_data, human = _split_code(text.decode("utf-8", "replace"))
        return Tagged(
            tag.decode("ascii", "replace"), status.decode().upper(), code, code_data, human
        )
    v = _Values(segments, 2)
    first = v.atom()
    if isinstance(first, int):
        v.skip_space()
        kind = str(v.atom()).upper()
        data: Any = None
        if kind == "FETCH":
            v.skip_space()
            data = fetch_items(v.value())
        return Untagged(kind, first, data)
    kind = str(first).upper()
    v.skip_space()
    if kind in _STATUS:
        code, cdata, human = _split_code(v.rest_text())
        return Untagged(kind, None, None, code, cdata, human)
    if kind in ("CAPABILITY", "ENABLED"):
        return Untagged(kind, None, tuple(v.rest_text().upper().split()))
    if kind in ("SEARCH", "SORT"):
        numbers = v.rest_text()
        nums = [int(x) for x in numbers.split() if x.isdigit()]
        return Untagged(kind, None, nums)
    if kind == "ESEARCH":
        return Untagged(kind, None, _esearch(v))
    if kind == "FLAGS":
        return Untagged(kind, None, tuple(str(f) for f in v.value()))
    if kind in ("LIST", "LSUB"):
        attrs = tuple(str(a) for a in v.value())
        v.skip_space()
        delim = v.value()
        v.skip_space()
        name = v.value()
        if isinstance(name, (int, str)):
            name = str(name).encode("utf-8")
        extra = []
        while not v.at_end():
            v.skip_space()
            if v.at_end():
                break
            extra.append(v.value())
        return Untagged(kind, None, (attrs, _text(delim) or None, name, extra))
    if kind == "STATUS":
        name = v.value()
        if isinstance(name, (int, str)):
            name = str(name).encode("utf-8")
        v.skip_space()
        items = v.value()
        return Untagged(
            kind,
            None,
            (name, {str(k).upper(): n for k, n in zip(items[::2], items[1::2], strict=False)}),
        )
    if kind == "ID":
        value = v.value()
        params = {}
        if isinstance(value, list):
            params = {
                _text(k): (None if x is None else _text(x))
                for k, x in zip(value[::2], value[1::2], strict=False)
            }
        return Untagged(kind, None, params)
    if kind == "NAMESPACE":
        spaces: list[Any] = []
        for _ in range(3):
            v.skip_space()
            spaces.append(v.value())
        return Untagged(kind, None, spaces)
    if kind == "VANISHED":
        uid_text = v.rest_text().strip()
        earlier = uid_text[:9].upper() == "(EARLIER)"
        if earlier:
            uid_text = uid_text[9:].strip()
        return Untagged(kind, None, Vanished(earlier, parse_uid_ranges(uid_text)))
    return Untagged(kind, None, v.rest_text())

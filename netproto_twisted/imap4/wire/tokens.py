"""The IMAP command tokenizer: atoms, strings, literals, lists and sequence sets (sans-I/O).

A command arrives as *segments*: the first line, then for each literal its
payload and the line that continues after it.  :class:`Reader` walks them;
a literal marker (``{n}``, ``{n+}``) at the end of a line part is followed
by the literal's payload (bytes, or a :class:`StreamedLiteral` that was
written somewhere else as it arrived, as APPEND does).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = [
    "LITERAL_MARKER",
    "MAX_NUMBER",
    "CommandSyntaxError",
    "LiteralMarker",
    "Reader",
    "SequenceSet",
    "StreamedLiteral",
    "literal_marker",
    "parse_sequence_set",
]

#: The largest number IMAP allows (number / nz-number are 32-bit unsigned).
MAX_NUMBER = 0xFFFFFFFF
#: ``{n}``, ``{n+}`` (LITERAL+/LITERAL-) or ``~{n}`` (BINARY literal8) at the end of a line.
LITERAL_MARKER = re.compile(rb"(~?)\{(-?\d{1,30})(\+?)\}\Z")
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]') | frozenset(range(0x20)) | {0x7F}
_ASTRING_EXTRA = frozenset(b"]")
_TAG_RE = re.compile(rb"[!#$&'+,\-./0-9:;<=>?@A-Z^_`a-z|}~\[]+")
_MAX_SET_RANGES = 100_000


class CommandSyntaxError(ValueError):
    """The command does not parse: a tagged ``BAD`` (``tag`` may be ``None`` if unreadable)."""

    def __init__(self, text: str, tag: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.tag = tag


@dataclass(frozen=True)
class LiteralMarker:
    """A literal announced at the end of a line: its size, and whether it is synchronising."""

    size: int
    synchronizing: bool
    binary: bool = False


def literal_marker(line: bytes) -> LiteralMarker | None:
    """The literal a line ends with, or ``None``; raise :class:`CommandSyntaxError` if bad.

    Negative sizes and sizes past 2**63 are refused here, before anything
    is allocated.
    """
    if not line.endswith(b"}"):
        return None
    match = LITERAL_MARKER.search(line)
    if match is None:
        return None
    size = int(match.group(2))
    if size < 0:
        raise CommandSyntaxError("negative literal size")
    if size > 2**63:
        raise CommandSyntaxError("literal size out of range")
    return LiteralMarker(size, not match.group(3), bool(match.group(1)))


@dataclass(frozen=True)
class StreamedLiteral:
    """A literal that was not kept in memory (APPEND's message went to the store as it came).

    :ivar size: its length.
    :ivar handle: whatever the receiver keeps to find it again (the open writer).
    """

    size: int
    handle: object


@dataclass(frozen=True)
class SequenceSet:
    """An IMAP sequence set: ranges of numbers, 0 standing for ``*``.

    :ivar ranges: ``(low, high)`` pairs as written (``low`` may exceed ``high``).
    """

    ranges: tuple[tuple[int, int], ...]

    def __str__(self) -> str:
        def one(n: int) -> str:
            return "*" if n == 0 else str(n)

        return ",".join(one(a) if a == b else f"{one(a)}:{one(b)}" for a, b in self.ranges)

    def merged(self, largest: int) -> list[tuple[int, int]]:
        """The ranges with ``*`` as ``largest``, ordered and merged (not clipped)."""
        spans = []
        for a, b in self.ranges:
            a = largest if a == 0 else a
            b = largest if b == 0 else b
            if a > b:
                a, b = b, a
            spans.append((a, b))
        spans.sort()
        out: list[tuple[int, int]] = []
        for a, b in spans:
            if out and a <= out[-1][1] + 1:
                if b > out[-1][1]:
                    out[-1] = (out[-1][0], b)
            else:
                out.append((a, b))
        return out

    def numbers(self, largest: int) -> Iterator[int]:
        """Every number of the set in 1..``largest``, ascending, each once (``*`` = largest)."""
        for a, b in self.merged(largest):
            yield from range(max(a, 1), min(b, largest) + 1)

    def select(self, values: Sequence[int]) -> list[int]:
        """The members of the ascending ``values`` (UIDs) that the set names (``*``: the last)."""
        if not values:
            return []
        largest = values[-1]
        spans = self.merged(largest)
        out: list[int] = []
        i = 0
        for v in values:
            while i < len(spans) and spans[i][1] < v:
                i += 1
            if i == len(spans):
                break
            if spans[i][0] <= v:
                out.append(v)
        return out


def parse_sequence_set(text: str, *, allow_last: bool = True) -> SequenceSet:
    """Parse ``1,3:5,7:*`` (``$`` is not supported); raise :class:`CommandSyntaxError`."""
    if not text:
        raise CommandSyntaxError("empty sequence set")
    parts = text.split(",")
    if len(parts) > _MAX_SET_RANGES:
        raise CommandSyntaxError("sequence set too large")
    ranges: list[tuple[int, int]] = []
    for part in parts:
        low, sep, high = part.partition(":")
        a = _seq_number(low, allow_last)
        b = _seq_number(high, allow_last) if sep else a
        ranges.append((a, b))
    return SequenceSet(tuple(ranges))


def _seq_number(text: str, allow_last: bool) -> int:
    if text == "*" and allow_last:
        return 0
    if not text.isascii() or not text.isdigit() or text[0] == "0" or len(text) > 10:
        raise CommandSyntaxError(f"bad sequence number {text[:20]!r}")
    n = int(text)
    if n > MAX_NUMBER:
        raise CommandSyntaxError("sequence number out of range")
    return n


class Reader:
    """Walks a command's segments (see the module docstring), one token at a time.

    :param segments: line parts (bytes) alternating with literal payloads.
    :param max_depth: the deepest parenthesis nesting accepted.
    """

    def __init__(self, segments: Sequence[object], max_depth: int = 32) -> None:
        if not segments or not isinstance(segments[0], bytes):
            raise CommandSyntaxError("empty command")
        self._segments = segments
        self._index = 0
        self.data: bytes = segments[0]
        self.pos = 0
        self.max_depth = max_depth
        self.depth = 0

    # -- position -------------------------------------------------------------------

    def at_end(self) -> bool:
        """Whether everything was read."""
        return self.pos >= len(self.data) and self._index >= len(self._segments) - 1

    def peek(self) -> int:
        """The next byte, or -1 at the end of the current line part."""
        return self.data[self.pos] if self.pos < len(self.data) else -1

    def at_literal(self) -> bool:
        """Whether the next token is a literal."""
        return self.peek() in (0x7B, 0x7E) and bool(LITERAL_MARKER.match(self.data, self.pos))

    def expect(self, byte: bytes) -> None:
        """Consume ``byte`` (one character) or fail."""
        if self.data[self.pos : self.pos + 1] != byte:
            raise CommandSyntaxError(f"expected {byte.decode()!r}")
        self.pos += 1

    def space(self) -> None:
        """Consume one SP."""
        self.expect(b" ")

    def maybe(self, byte: bytes) -> bool:
        """Consume ``byte`` if it comes next."""
        if self.data[self.pos : self.pos + 1] == byte:
            self.pos += 1
            return True
        return False

    def end(self) -> None:
        """Fail unless the command is fully read."""
        if not self.at_end():
            raise CommandSyntaxError("unexpected text after the arguments")

    # -- tokens ---------------------------------------------------------------------

    def atom(self, extra: frozenset[int] = frozenset()) -> str:
        """An atom (``extra``: bytes also allowed, such as ``]`` for astrings)."""
        data = self.data
        start = self.pos
        end = start
        n = len(data)
        while (
            end < n
            and (data[end] not in _ATOM_SPECIALS or data[end] in extra)
            and data[end] < 0x80
        ):
            end += 1
        if end == start:
            raise CommandSyntaxError("expected an atom")
        self.pos = end
        return data[start:end].decode("ascii")

    def tag(self) -> str:
        """The command tag."""
        match = _TAG_RE.match(self.data, self.pos)
        if match is None or (b"+" in match.group(0) and False):
            raise CommandSyntaxError("bad tag")
        text = match.group(0)
        if any(c in b"{[" for c in text):
            raise CommandSyntaxError("bad tag")
        self.pos = match.end()
        return text.decode("ascii")

    def number(self, nonzero: bool = False) -> int:
        """A 32-bit number."""
        match = re.compile(rb"\d{1,10}").match(self.data, self.pos)
        if match is None:
            raise CommandSyntaxError("expected a number")
        value = int(match.group(0))
        if value > MAX_NUMBER or (nonzero and value == 0):
            raise CommandSyntaxError("number out of range")
        self.pos = match.end()
        return value

    def number64(self) -> int:
        """A 63-bit number (mod-sequences)."""
        match = re.compile(rb"\d{1,19}").match(self.data, self.pos)
        if match is None:
            raise CommandSyntaxError("expected a number")
        self.pos = match.end()
        return int(match.group(0))

    def quoted(self) -> bytes:
        """A quoted string, unescaped."""
        self.expect(b'"')
        data = self.data
        out = bytearray()
        i = self.pos
        while i < len(data):
            c = data[i]
            if c == 0x22:
                self.pos = i + 1
                return bytes(out)
            if c == 0x5C:
                i += 1
                if i >= len(data) or data[i] not in (0x22, 0x5C):
                    raise CommandSyntaxError("bad escape in quoted string")
                c = data[i]
            elif c in (0x0D, 0x0A, 0):
                raise CommandSyntaxError("bad character in quoted string")
            out.append(c)
            i += 1
        raise CommandSyntaxError("unterminated quoted string")

    def literal(self) -> object:
        """A literal's payload (bytes, a :class:`StreamedLiteral`, or a caller's placeholder)."""
        match = LITERAL_MARKER.match(self.data, self.pos)
        if match is None:
            raise CommandSyntaxError("expected a literal")
        self._index += 1
        if self._index >= len(self._segments):
            raise CommandSyntaxError("literal missing")
        payload = self._segments[self._index]
        self._index += 1
        following = self._segments[self._index] if self._index < len(self._segments) else b""
        if not isinstance(following, bytes):
            raise CommandSyntaxError("bad segments")
        self.data = following
        self.pos = 0
        return payload

    def string(self) -> bytes:
        """A quoted string or a literal (held in memory)."""
        if self.peek() == 0x22:
            return self.quoted()
        payload = self.literal()
        if not isinstance(payload, bytes):
            raise CommandSyntaxError("a literal is not allowed here")
        return payload

    def astring(self) -> bytes:
        """An atom or a string."""
        c = self.peek()
        if c == 0x22 or self.at_literal():
            return self.string()
        return self.atom(_ASTRING_EXTRA).encode("ascii")

    def nstring_or_atom(self) -> bytes | None:
        """``NIL`` or a string."""
        if self.data[self.pos : self.pos + 3].upper() == b"NIL":
            self.pos += 3
            return None
        return self.string()

    def mailbox(self) -> bytes:
        """A mailbox name (astring; may be UTF-8 under UTF8=ACCEPT)."""
        c = self.peek()
        if c == 0x22 or self.at_literal():
            return self.string()
        # list-mailbox chars are not allowed here, but 8-bit UTF-8 is (RFC 9051 / 6855).
        data = self.data
        start = end = self.pos
        while end < len(data) and (data[end] not in _ATOM_SPECIALS or data[end] == 0x5D):
            end += 1
        if end == start:
            raise CommandSyntaxError("expected a mailbox name")
        self.pos = end
        return data[start:end]

    def list_mailbox(self) -> bytes:
        """A LIST pattern: a string, or atom characters plus ``%`` and ``*``."""
        c = self.peek()
        if c == 0x22 or self.at_literal():
            return self.string()
        data = self.data
        start = end = self.pos
        while end < len(data) and (
            data[end] not in _ATOM_SPECIALS or data[end] in (0x25, 0x2A, 0x5D)
        ):
            end += 1
        if end == start:
            raise CommandSyntaxError("expected a mailbox pattern")
        self.pos = end
        return data[start:end]

    def open_list(self) -> None:
        """Consume ``(``, counting the nesting depth."""
        self.expect(b"(")
        self.depth += 1
        if self.depth > self.max_depth:
            raise CommandSyntaxError("parentheses nested too deeply")

    def close_list(self) -> None:
        """Consume ``)``."""
        self.expect(b")")
        self.depth -= 1

    def sequence_set(self, allow_last: bool = True) -> SequenceSet:
        """A sequence set."""
        data = self.data
        start = end = self.pos
        while end < len(data) and data[end] in b"0123456789:,*":
            end += 1
        self.pos = end
        return parse_sequence_set(data[start:end].decode("ascii"), allow_last=allow_last)

    def flag_list(self) -> list[str]:
        """``(flag ...)``: system flags and keywords."""
        self.open_list()
        flags: list[str] = []
        if not self.maybe(b")"):
            while True:
                flags.append(self.flag())
                if self.maybe(b")"):
                    break
                self.space()
        self.depth -= 1
        return flags

    def flag(self) -> str:
        """One flag (``\\Seen``) or keyword."""
        if self.maybe(b"\\"):
            return "\\" + self.atom()
        return self.atom()

    def rest(self) -> bytes:
        """What remains of the current line part."""
        data = self.data[self.pos :]
        self.pos = len(self.data)
        return data

"""FETCH attributes: ``FLAGS``, ``ENVELOPE``, ``BODY.PEEK[1.HEADER.FIELDS (TO)]<0.9>`` ..."""

from __future__ import annotations

import re
from dataclasses import dataclass

from netproto_twisted.imap4.wire.tokens import CommandSyntaxError, Reader

__all__ = ["MACROS", "FetchAtt", "Section", "parse_fetch_atts", "parse_section"]

#: RFC 3501's macros.
MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_SIMPLE = frozenset(
    {
        "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE", "UID",
        "RFC822", "RFC822.HEADER", "RFC822.TEXT", "MODSEQ", "EMAILID", "THREADID", "SAVEDATE",
    }
)  # fmt: skip
_NAME = re.compile(rb"[A-Za-z0-9.]+")
_TEXTS = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"})


@dataclass(frozen=True)
class Section:
    """A body section: part numbers, then ``HEADER``/``HEADER.FIELDS``/``TEXT``/``MIME`` or none.

    :ivar part: part numbers (``(1, 2)`` for ``1.2``; empty: the whole message).
    :ivar text: ``""``, ``HEADER``, ``HEADER.FIELDS``, ``HEADER.FIELDS.NOT``, ``TEXT`` or ``MIME``.
    :ivar fields: header field names for the ``HEADER.FIELDS`` forms (upper case).
    """

    part: tuple[int, ...] = ()
    text: str = ""
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        spec = ".".join(str(n) for n in self.part)
        if self.text:
            spec = f"{spec}.{self.text}" if spec else self.text
        if self.fields:
            spec += " (" + " ".join(self.fields) + ")"
        return spec


@dataclass(frozen=True)
class FetchAtt:
    """One FETCH attribute.

    :ivar name: ``FLAGS``, ``BODY[]`` forms are ``BODY``/``BINARY``/``BINARY.SIZE`` with a section.
    :ivar section: for ``BODY[...]``/``BINARY[...]``, else ``None``.
    :ivar partial: ``(start, count)`` of ``<start.count>``, or ``None``.
    :ivar peek: ``.PEEK`` (do not set ``\\Seen``).
    """

    name: str
    section: Section | None = None
    partial: tuple[int, int] | None = None
    peek: bool = False

    def response_name(self) -> str:
        """The item's name in the response (``BODY[1.TEXT]<0>``, no ``.PEEK``, no count)."""
        if self.section is None:
            return self.name
        text = f"{self.name}[{self.section}]"
        if self.partial is not None:
            text += f"<{self.partial[0]}>"
        return text

    @property
    def sets_seen(self) -> bool:
        """Whether fetching it sets ``\\Seen`` (body contents without ``.PEEK``)."""
        if self.peek:
            return False
        return (self.section is not None and self.name != "BINARY.SIZE") or self.name in (
            "RFC822", "RFC822.TEXT",
        )  # fmt: skip


def parse_section(reader: Reader) -> Section:
    """``[...]`` after BODY/BINARY (the reader is on the ``[``)."""
    reader.expect(b"[")
    part: list[int] = []
    text = ""
    fields: list[str] = []
    if not reader.maybe(b"]"):
        while True:
            if 0x30 <= reader.peek() <= 0x39:
                part.append(reader.number(nonzero=True))
                if len(part) > 64:
                    raise CommandSyntaxError("section nested too deeply")
                if reader.maybe(b"."):
                    continue
                break
            word = _name(reader)
            if word not in _TEXTS or (word == "MIME" and not part):
                raise CommandSyntaxError(f"bad section text {word[:20]}")
            text = word
            if word.startswith("HEADER.FIELDS"):
                reader.space()
                reader.open_list()
                while True:
                    fields.append(reader.astring().decode("ascii", "replace").upper())
                    if reader.maybe(b")"):
                        break
                    reader.space()
                reader.depth -= 1
            break
        reader.expect(b"]")
    return Section(tuple(part), text, tuple(fields))


def _name(reader: Reader) -> str:
    match = _NAME.match(reader.data, reader.pos)
    if match is None:
        raise CommandSyntaxError("expected a fetch attribute")
    reader.pos = match.end()
    return match.group(0).decode("ascii").upper()


def _att(reader: Reader) -> FetchAtt:
    word = _name(reader)
    if (
        word in ("BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE")
        and reader.peek() == 0x5B
    ):
        section = parse_section(reader)
        partial = None
        if reader.maybe(b"<"):
            start = reader.number()
            reader.expect(b".")
            count = reader.number(nonzero=True)
            reader.expect(b">")
            partial = (start, count)
        name = word.removesuffix(".PEEK")
        if name.startswith("BINARY") and section.text:
            raise CommandSyntaxError("BINARY takes part numbers only")
        return FetchAtt(name, section, partial, word.endswith(".PEEK"))
    if word in _SIMPLE:
        return FetchAtt(word)
    raise CommandSyntaxError(f"unknown fetch attribute {word[:30]}")


def parse_fetch_atts(reader: Reader) -> list[FetchAtt]:
    """A macro, one attribute, or a parenthesised list of attributes."""
    if reader.peek() == 0x28:
        reader.open_list()
        atts = [_att(reader)]
        while not reader.maybe(b")"):
            reader.space()
            atts.append(_att(reader))
        reader.depth -= 1
        return atts
    save = reader.pos
    word = _name(reader)
    if word in MACROS:
        return [FetchAtt(name) for name in MACROS[word]]
    reader.pos = save
    return [_att(reader)]

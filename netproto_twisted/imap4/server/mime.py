"""A message's MIME structure on its bytes: envelope, body structure, sections, search text.

Pure functions over the message's octets (CRLF line endings, as IMAP counts
them); no I/O.  Parts are found by boundary on the raw bytes, so sizes and
offsets are exact, and nesting is bounded (:data:`MAX_DEPTH`).
"""

from __future__ import annotations

import base64
import binascii
import email.header
import email.message
import email.utils
import functools
import quopri
import re
from dataclasses import dataclass, field
from typing import Any

from netproto_twisted.imap4.wire.fetchspec import Section
from netproto_twisted.imap4.wire.serialise import encode, quote

__all__ = [
    "MAX_DEPTH",
    "Part",
    "body_structure",
    "crlf",
    "decoded_header",
    "envelope",
    "envelope_bytes",
    "parse_message",
    "section_bytes",
    "split_header",
]

#: Deeper parts are treated as opaque leaves.
MAX_DEPTH = 20
_BLANK = b"\r\n\r\n"


def crlf(data: bytes) -> bytes:
    """``data`` with every line ending as CRLF (bare LF files, as Dovecot stores them)."""
    if b"\n" not in data:
        return data
    if data.count(b"\n") == data.count(b"\r\n"):
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def split_header(data: bytes) -> tuple[bytes, bytes]:
    """``(header including the blank line, body)``."""
    if data.startswith(b"\r\n"):
        return b"\r\n", data[2:]
    end = data.find(_BLANK)
    if end < 0:
        return data, b""
    return data[: end + 4], data[end + 4 :]


#: Header field names as :func:`parse_headers` gives them, by their raw bytes (bounded).
_FIELD_NAMES: dict[bytes, str] = {}
_MAX_FIELD_NAMES = 1024


def parse_headers(header: bytes) -> list[tuple[str, bytes]]:
    """``[(lower-case name, unfolded raw value)]``."""
    out: list[tuple[str, bytes]] = []
    names = _FIELD_NAMES
    for line in header.split(b"\r\n"):
        if not line:
            continue
        if line[0] in (0x20, 0x09):  # a folded line (space or tab)
            if out:
                last, folded = out[-1]
                out[-1] = (last, folded + b" " + line.strip())
            continue
        raw_name, sep, value = line.partition(b":")
        if not sep:
            continue
        name = names.get(raw_name)
        if name is None:
            name = raw_name.strip().decode("ascii", "replace").lower()
            if len(names) < _MAX_FIELD_NAMES:
                names[raw_name] = name
        out.append((name, value.strip()))
    return out


@dataclass
class Part:
    """One MIME entity: its header, body, and for multiparts/messages what is inside."""

    header: bytes
    body: bytes
    headers: list[tuple[str, bytes]]
    type: str = "text"
    subtype: str = "plain"
    params: list[tuple[str, str]] = field(default_factory=list)
    children: list[Part] = field(default_factory=list)
    message: Part | None = None

    def get(self, name: str) -> bytes | None:
        """The first value of a header field, raw."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


def _content_type(
    value: bytes | None, default: tuple[str, str]
) -> tuple[str, str, list[tuple[str, str]]]:
    if not value:
        kind, sub = default
        return kind, sub, [("charset", "us-ascii")] if kind == "text" else []
    m = email.message.Message()
    m["content-type"] = value.decode("utf-8", "replace")
    full = m.get_content_type()
    kind, _, sub = full.partition("/")
    params: list[tuple[str, str]] = []
    for key, val in (m.get_params() or [])[1:]:
        if isinstance(val, tuple):
            val = email.utils.collapse_rfc2231_value(val)
        params.append((key, str(val)))
    if "/" not in (value.split(b";")[0].decode("ascii", "replace")):
        kind, sub = default
    return kind, sub, params


def parse_message(
    data: bytes, depth: int = 0, default: tuple[str, str] = ("text", "plain")
) -> Part:
    """Parse an entity (a whole message at depth 0)."""
    header, body = split_header(data)
    headers = parse_headers(header)
    part = Part(header, body, headers)
    part.type, part.subtype, part.params = _content_type(_first(headers, "content-type"), default)
    if depth >= MAX_DEPTH:
        return part
    if part.type == "multipart":
        boundary = dict(part.params).get("boundary")
        if boundary:
            child_default = (
                ("message", "rfc822") if part.subtype == "digest" else ("text", "plain")
            )
            part.children = [
                parse_message(chunk, depth + 1, child_default)
                for chunk in _split_multipart(body, boundary.encode("utf-8", "replace"))
            ]
        if not part.children:  # no boundary found: an empty text part stands in (as Dovecot)
            part.children = [Part(b"\r\n", b"", [], "text", "plain", [("charset", "us-ascii")])]
    elif part.type == "message" and part.subtype in ("rfc822", "global"):
        part.message = parse_message(body, depth + 1)
    return part


def _first(headers: list[tuple[str, bytes]], name: str) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    delimiter = re.compile(rb"(?:\A|\r\n)--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r\n|\Z)")
    parts: list[bytes] = []
    start: int | None = None
    for m in delimiter.finditer(body):
        if start is not None:
            parts.append(body[start : m.start()])
        if m.group(1):
            return parts
        start = m.end()
    if start is not None:
        parts.append(body[start:])
    return parts


# -- ENVELOPE ----------------------------------------------------------------------------


#: The common address forms: ``a@b``, ``Name <a@b>``, ``"Name" <a@b>`` (no comments, groups
#: or quoted commas); anything else goes to :func:`email.utils.getaddresses`.
_SIMPLE_ADDRESS = re.compile(
    r'\s*(?:(?:"(?P<qname>[^"\\]*)"|(?P<name>[^",<>()@:;\[\]\\]*?))\s*<(?P<a1>[^<>@\s",()]+@[^<>@\s",()]+)>'
    r'|(?P<a2>[^<>@\s",()]+@[^<>@\s",()]+))\s*(?:,|\Z)'
)


def _split_simple(text: str) -> list[tuple[str, str]] | None:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _SIMPLE_ADDRESS.match(text, pos)
        if m is None or m.end() == pos:
            return None
        name = m.group("qname") if m.group("qname") is not None else (m.group("name") or "")
        out.append((name.strip(), m.group("a1") or m.group("a2")))
        pos = m.end()
    return out


def _addresses(value: bytes | None) -> list[Any] | None:
    if not value:
        return None
    text = value.decode("utf-8", "surrogateescape")
    out: list[Any] = []
    pairs = _split_simple(text)
    if pairs is None:
        pairs = email.utils.getaddresses([text])
    for name, addr in pairs:
        if not name and not addr:
            continue
        mailbox, at, host = addr.rpartition("@")
        if not at:
            mailbox, host = addr, ""
        out.append([
            _b(name) if name else None, None,
            _b(mailbox) if mailbox else None, _b(host) if host else None,
        ])  # fmt: skip
    return out or None


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def envelope(part: Part) -> list[Any]:
    """The ENVELOPE list of a message (values raw, as the header has them)."""
    get = part.get
    sender = _addresses(get("from"))
    return [
        get("date"),
        get("subject"),
        sender,
        _addresses(get("sender")) or sender,
        _addresses(get("reply-to")) or sender,
        _addresses(get("to")),
        _addresses(get("cc")),
        _addresses(get("bcc")),
        get("in-reply-to"),
        get("message-id"),
    ]


_ENVELOPE_FIELDS = frozenset(
    ("date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc", "in-reply-to",
     "message-id")
)  # fmt: skip


@functools.lru_cache(maxsize=8192)
def _address_bytes(value: bytes) -> bytes | None:
    """An address list field serialised (``None`` when it has no address).

    Remembered: a mailbox has few distinct senders and recipient lists, so
    most envelopes of a large folder reuse these.
    """
    addresses = _addresses(value)
    return encode(addresses) if addresses else None


def envelope_bytes(headers: list[tuple[str, bytes]]) -> bytes:
    """``encode(envelope(part))`` of a message with these header fields, built directly."""
    first: dict[str, bytes] = {}
    for key, value in headers:
        if key in _ENVELOPE_FIELDS and key not in first:
            first[key] = value
    get = first.get
    date, subject = get("date"), get("subject")
    in_reply_to, message_id = get("in-reply-to"), get("message-id")
    field = get("from")
    sender = (_address_bytes(field) if field else None) or b"NIL"
    field = get("sender")
    actual_sender = (_address_bytes(field) if field else None) or sender
    field = get("reply-to")
    reply_to = (_address_bytes(field) if field else None) or sender
    field = get("to")
    to = (_address_bytes(field) if field else None) or b"NIL"
    field = get("cc")
    cc = (_address_bytes(field) if field else None) or b"NIL"
    field = get("bcc")
    bcc = (_address_bytes(field) if field else None) or b"NIL"
    return b"".join((
        b"(", b"NIL" if date is None else quote(date), b" ",
        b"NIL" if subject is None else quote(subject), b" ", sender, b" ", actual_sender, b" ",
        reply_to, b" ", to, b" ", cc, b" ", bcc, b" ",
        b"NIL" if in_reply_to is None else quote(in_reply_to), b" ",
        b"NIL" if message_id is None else quote(message_id), b")",
    ))  # fmt: skip


# -- BODY / BODYSTRUCTURE ----------------------------------------------------------------


def _params(params: list[tuple[str, str]]) -> list[bytes] | None:
    if not params:
        return None
    out: list[bytes] = []
    for key, value in params:
        out += [key.upper().encode("utf-8"), value.encode("utf-8", "replace")]
    return out


def _disposition(part: Part) -> list[Any] | None:
    value = part.get("content-disposition")
    if not value:
        return None
    m = email.message.Message()
    m["content-disposition"] = value.decode("utf-8", "replace")
    params = m.get_params(header="content-disposition") or []
    if not params:
        return None
    kind = params[0][0]
    rest = [
        (k, email.utils.collapse_rfc2231_value(v) if isinstance(v, tuple) else str(v))
        for k, v in params[1:]
    ]
    return [kind.encode("utf-8"), _params(rest)]


def body_structure(part: Part, extensions: bool = True) -> list[Any]:
    """BODYSTRUCTURE (``extensions``) or BODY of an entity."""
    if part.type == "multipart":
        out: list[Any] = [body_structure(child, extensions) for child in part.children]
        out.append(part.subtype.upper().encode())
        if extensions:
            out += [_params(part.params), _disposition(part), part.get("content-language"),
                    part.get("content-location")]  # fmt: skip
        return out
    encoding = (part.get("content-transfer-encoding") or b"7BIT").upper()
    out = [
        part.type.upper().encode(), part.subtype.upper().encode(), _params(part.params),
        part.get("content-id"), part.get("content-description"), encoding, len(part.body),
    ]  # fmt: skip
    if part.message is not None:
        out += [envelope(part.message), body_structure(part.message, extensions),
                _lines(part.body)]  # fmt: skip
    elif part.type == "text":
        out.append(_lines(part.body))
    if extensions:
        out += [part.get("content-md5"), _disposition(part), part.get("content-language"),
                part.get("content-location")]  # fmt: skip
    return out


def _lines(body: bytes) -> int:
    """Text lines of a body, counted as Dovecot counts them: its line feeds.

    A last line without its line ending is not counted (nor, in a
    multipart, a part's last line, whose CRLF belongs to the boundary), so
    that a client sees the same BODYSTRUCTURE from Dovecot and from us.
    """
    return body.count(b"\n")


# -- sections ----------------------------------------------------------------------------


def find_part(top: Part, numbers: tuple[int, ...]) -> Part | None:
    """The part named by ``1.2.3`` (``None`` if there is none)."""
    current = top
    for i, n in enumerate(numbers):
        if i > 0 and current.message is not None:
            current = current.message
        if current.children:
            if n > len(current.children):
                return None
            current = current.children[n - 1]
        elif n != 1:
            return None
    return current


def _fields(header: bytes, names: tuple[str, ...], keep: bool) -> bytes:
    wanted = {n.lower() for n in names}
    out: list[bytes] = []
    take = False
    for line in header.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if take:
                out.append(line)
            continue
        name = line.partition(b":")[0].strip().decode("ascii", "replace").lower()
        take = (name in wanted) == keep
        if take:
            out.append(line)
    return b"".join(line + b"\r\n" for line in out) + b"\r\n"


def section_bytes(top: Part, raw: bytes, section: Section, binary: bool = False) -> bytes | None:
    """The octets of ``BODY[section]`` (``None``: no such part; ``BINARY`` decodes)."""
    if not section.part:
        target: Part | None = top
        if not section.text:
            return raw
    else:
        target = find_part(top, section.part)
        if target is None:
            return None
        if not section.text:
            return decode_body(target) if binary else target.body
        if section.text == "MIME":
            return target.header
        if target.message is None:
            return None
        target = target.message
    assert target is not None
    if section.text == "HEADER":
        return target.header
    if section.text == "TEXT":
        return target.body
    if section.text == "HEADER.FIELDS":
        return _fields(target.header, section.fields, True)
    if section.text == "HEADER.FIELDS.NOT":
        return _fields(target.header, section.fields, False)
    return None


def decode_body(part: Part) -> bytes:
    """The part's body with its Content-Transfer-Encoding undone."""
    encoding = (part.get("content-transfer-encoding") or b"").strip().lower()
    try:
        if encoding == b"base64":
            return base64.b64decode(part.body, validate=False)
        if encoding == b"quoted-printable":
            return quopri.decodestring(part.body)
    except (ValueError, binascii.Error):
        return part.body
    return part.body


# -- search ------------------------------------------------------------------------------


def decoded_header(value: bytes) -> str:
    """A header value with RFC 2047 encoded words decoded (for SEARCH)."""
    text = value.decode("utf-8", "replace")
    if "=?" not in text:
        return text
    try:
        return str(email.header.make_header(email.header.decode_header(text)))
    except (ValueError, LookupError, UnicodeError):
        return text


def body_text(part: Part) -> str:
    """The decoded text of every text leaf (for SEARCH BODY/TEXT)."""
    if part.children:
        return "\n".join(body_text(child) for child in part.children)
    if part.message is not None:
        return body_text(part.message)
    if part.type != "text":
        return ""
    charset = dict(part.params).get("charset", "utf-8")
    data = decode_body(part)
    try:
        return data.decode(charset, "replace")
    except LookupError:
        return data.decode("utf-8", "replace")

"""Sans-I/O pieces of a static response: Range, conditional requests, Accept-Encoding.

Nothing here touches a socket or a file: each function takes header values
(bytes, as twisted.web hands them over) and the representation's facts (size,
ETag, modification time) and returns a decision.  RFC 9110 sections 13
(conditional requests) and 14 (range requests) are the reference.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

__all__ = [
    "ByteRange",
    "Preconditions",
    "RangeNotSatisfiable",
    "accepted_encodings",
    "evaluate_preconditions",
    "http_date",
    "parse_http_date",
    "parse_range",
]

#: The most ranges one request may ask for (more is answered with the whole body).
MAX_RANGES = 64


class RangeNotSatisfiable(ValueError):
    """A syntactically valid Range header none of whose ranges overlaps the body (416)."""


@dataclass(frozen=True)
class ByteRange:
    """One satisfiable byte range: ``start`` and ``end`` inclusive, as Content-Range has them."""

    start: int
    end: int

    @property
    def length(self) -> int:
        """The number of bytes in the range."""
        return self.end - self.start + 1

    def content_range(self, size: int) -> bytes:
        """The Content-Range value: ``bytes START-END/SIZE``."""
        return b"bytes %d-%d/%d" % (self.start, self.end, size)


def parse_range(value: bytes, size: int) -> list[ByteRange] | None:
    """Parse a ``Range`` header against a body of ``size`` bytes.

    Returns the satisfiable ranges in the order asked, ``None`` when the
    header is to be ignored (not ``bytes=``, malformed, or more than
    :data:`MAX_RANGES` ranges: the whole body is sent), and raises
    :class:`RangeNotSatisfiable` when it is valid but no range overlaps.
    """
    unit, sep, spec = value.partition(b"=")
    if not sep or unit.strip().lower() != b"bytes":
        return None
    parts = spec.split(b",")
    if len(parts) > MAX_RANGES:
        return None
    ranges: list[ByteRange] = []
    for raw in parts:
        part = raw.strip()
        if not part:
            continue
        first, dash, last = part.partition(b"-")
        if not dash:
            return None
        first, last = first.strip(), last.strip()
        if (first and not first.isdigit()) or (last and not last.isdigit()):
            return None
        if not first:
            if not last:
                return None
            suffix = int(last)
            if suffix == 0 or size == 0:
                continue
            ranges.append(ByteRange(max(0, size - suffix), size - 1))
            continue
        start = int(first)
        end = int(last) if last else size - 1
        if last and end < start:
            return None
        if start >= size:
            continue
        ranges.append(ByteRange(start, min(end, size - 1)))
    if not ranges:
        raise RangeNotSatisfiable(value.decode("latin-1"))
    return ranges


def http_date(timestamp: float) -> bytes:
    """Format a POSIX time as an IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``)."""
    return email.utils.formatdate(timestamp, usegmt=True).encode("ascii")


def parse_http_date(value: bytes) -> int | None:
    """Parse an HTTP date (any of RFC 9110's three forms) to whole POSIX seconds, or ``None``."""
    try:
        parsed = email.utils.parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return int(parsed.timestamp())


def _etags(value: bytes) -> list[bytes]:
    return [tag.strip() for tag in value.split(b",") if tag.strip()]


def _weak_match(tag: bytes, etag: bytes) -> bool:
    return tag.removeprefix(b"W/") == etag.removeprefix(b"W/")


@dataclass(frozen=True)
class Preconditions:
    """The outcome of the conditional headers: a status to answer with, and whether Range holds.

    ``status`` is 0 (go on), 304 (not modified) or 412 (precondition failed);
    ``use_range`` is false when an If-Range did not match (send the whole body).
    """

    status: int
    use_range: bool


def evaluate_preconditions(
    *,
    etag: bytes,
    mtime: int,
    if_match: bytes | None = None,
    if_none_match: bytes | None = None,
    if_modified_since: bytes | None = None,
    if_unmodified_since: bytes | None = None,
    if_range: bytes | None = None,
    safe_method: bool = True,
) -> Preconditions:
    """Evaluate the conditional headers in RFC 9110 section 13.2.2's order."""
    if if_match is not None:
        tags = _etags(if_match)
        if tags != [b"*"] and not any(t == etag and not t.startswith(b"W/") for t in tags):
            return Preconditions(412, False)
    elif if_unmodified_since is not None:
        since = parse_http_date(if_unmodified_since)
        if since is not None and mtime > since:
            return Preconditions(412, False)
    if if_none_match is not None:
        tags = _etags(if_none_match)
        if tags == [b"*"] or any(_weak_match(t, etag) for t in tags):
            return Preconditions(304 if safe_method else 412, False)
    elif if_modified_since is not None and safe_method:
        since = parse_http_date(if_modified_since)
        if since is not None and mtime <= since:
            return Preconditions(304, False)
    use_range = True
    if if_range is not None:
        value = if_range.strip()
        if value.startswith((b'"', b"W/")):
            use_range = value == etag and not value.startswith(b"W/")
        else:
            use_range = parse_http_date(value) == mtime
    return Preconditions(0, use_range)


def accepted_encodings(value: bytes | None) -> frozenset[bytes]:
    """The content codings an ``Accept-Encoding`` value allows (q > 0), lower-cased.

    ``*`` stands for ``br`` and ``gzip`` unless they are named with q=0.
    """
    if not value:
        return frozenset()
    allowed: set[bytes] = set()
    refused: set[bytes] = set()
    star = False
    for item in value.lower().split(b","):
        name, _, params = item.partition(b";")
        name = name.strip()
        q = 1.0
        for param in params.split(b";"):
            key, eq, val = param.strip().partition(b"=")
            if eq and key.strip() == b"q":
                try:
                    q = float(val)
                except ValueError:
                    q = 0.0
        if name == b"*":
            star = q > 0
        elif q > 0:
            allowed.add(name)
        else:
            refused.add(name)
    if b"x-gzip" in allowed:
        allowed.add(b"gzip")
    if star:
        allowed |= {b"br", b"gzip"} - refused
    return frozenset(allowed)

"""Checks before an article is stored: posting (RFC 5536, 5537), transit (IHAVE, TAKETHIS).

:func:`prepare_post` checks a posted article's header, adds ``Path``,
``Date``, ``Message-ID`` and ``Injection-Date`` and removes what only a
server may set (``Xref``, ``Injection-Info``); :func:`prepare_transit`
checks a fed article (its Message-ID is the one offered, our name is not in
its ``Path`` yet: a feed loop) and adds our name to its ``Path``.  Both
compute the overview fields.  Refusals are :class:`ArticleRefused` with the
text for the reply.
"""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from dataclasses import dataclass

from netproto_twisted.core.ids import message_id as new_message_id
from netproto_twisted.nntp._wire import (
    ArticleFormatError,
    Header,
    header_value,
    is_message_id,
    parse_headers,
    sanitize_field,
    split_article,
)

__all__ = ["ArticleRefused", "Prepared", "prepare_post", "prepare_transit"]

#: Headers a poster may not set (the server's own).
_SERVER_ONLY = frozenset({"xref", "injection-info", "injection-date", "nntp-posting-host"})
#: Headers a posted article must have (RFC 5536 3.1).
_REQUIRED_POST = ("From", "Subject", "Newsgroups")


class ArticleRefused(ValueError):
    """The article breaks a rule; the message is the reply text."""


@dataclass(frozen=True)
class Prepared:
    """A checked article ready to store."""

    message_id: str
    data: bytes
    groups: tuple[str, ...]
    overview: tuple[str, ...]


def _raw_fields(head: bytes) -> list[tuple[str, bytes]]:
    """Header fields as written: ``(lower-case name, lines with CRLF)``."""
    fields: list[tuple[str, bytes]] = []
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            name, raw = fields[-1]
            fields[-1] = (name, raw + line + b"\r\n")
        else:
            fields.append((line.partition(b":")[0].decode("ascii").lower(), line + b"\r\n"))
    return fields


def _parse(data: bytes) -> tuple[bytes, bytes, list[Header]]:
    if b"\0" in data:
        raise ArticleRefused("article contains NUL")
    try:
        head, body = split_article(data)
        headers = parse_headers(head)
    except ArticleFormatError as e:
        raise ArticleRefused(str(e)) from None
    seen: set[str] = set()
    for h in headers:
        name = h.name.lower()
        if name in seen and name in ("message-id", "newsgroups", "path", "subject", "from"):
            raise ArticleRefused(f"duplicate {h.name} header")
        seen.add(name)
    return head, body, headers


def _groups(headers: Sequence[Header]) -> tuple[str, ...]:
    value = header_value(headers, "Newsgroups")
    if not value:
        raise ArticleRefused("no Newsgroups header")
    groups = tuple(g.strip() for g in value.split(","))
    if not all(groups) or any(" " in g or "\t" in g for g in groups):
        raise ArticleRefused("bad Newsgroups header")
    return groups


def _overview(
    headers: Sequence[Header], message_id: str, size: int, body: bytes
) -> tuple[str, ...]:
    def value(name: str) -> str:
        return sanitize_field(header_value(headers, name) or "")

    lines = body.count(b"\r\n")
    return (
        value("Subject"),
        value("From"),
        value("Date"),
        sanitize_field(message_id),
        value("References"),
        str(size),
        str(lines),
    )


def prepare_post(
    data: bytes,
    *,
    path_host: str,
    domain: str,
    now: float,
    poster: str = "",
    inject: bool = True,
) -> Prepared:
    """Check a posted article and add the server's headers (RFC 5537 3.5).

    ``inject=False`` prepares the copy mailed to a moderator (RFC 5537
    3.5.1): Date and Message-ID are added when missing, but not Path,
    Injection-Date or Injection-Info.

    :raises ArticleRefused: missing or malformed headers, a bad Message-ID or Date.
    """
    head, body, headers = _parse(data)
    for name in _REQUIRED_POST:
        if not header_value(headers, name):
            raise ArticleRefused(f"no {name} header")
    groups = _groups(headers)
    message_id = header_value(headers, "Message-ID")
    if message_id is not None and not is_message_id(message_id, strict=True):
        raise ArticleRefused("bad Message-ID")
    date = header_value(headers, "Date")
    if date is not None:
        try:
            email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError):
            raise ArticleRefused("bad Date header") from None
    stamp = email.utils.formatdate(now, usegmt=True)
    out: list[bytes] = []
    path = header_value(headers, "Path")
    if inject:
        out.append(f"Path: {path_host}!{path if path else 'not-for-mail'}\r\n".encode())
    for name, raw in _raw_fields(head):
        if name in _SERVER_ONLY or (name == "path" and inject):
            continue
        out.append(raw)
    if date is None:
        out.append(f"Date: {stamp}\r\n".encode())
    if message_id is None:
        message_id = new_message_id(domain)
        out.append(f"Message-ID: {message_id}\r\n".encode())
    if inject:
        out.append(f"Injection-Date: {stamp}\r\n".encode())
        info = f"Injection-Info: {path_host}"
        if poster:
            info += f'; posting-account="{poster}"'
        out.append(info.encode() + b"\r\n")
    final = b"".join(out) + b"\r\n" + body
    headers = list(headers)
    if date is None:
        headers.append(Header("Date", stamp))
    return Prepared(message_id, final, groups, _overview(headers, message_id, len(final), body))


def prepare_transit(data: bytes, *, offered_id: str, path_host: str) -> Prepared:
    """Check a fed article (IHAVE, TAKETHIS) and add ``path_host`` to its Path.

    :raises ArticleRefused: malformed, another Message-ID than offered, or a loop.
    """
    head, body, headers = _parse(data)
    message_id = header_value(headers, "Message-ID")
    if message_id != offered_id:
        raise ArticleRefused("Message-ID does not match the one offered")
    groups = _groups(headers)
    path = header_value(headers, "Path")
    if not path:
        raise ArticleRefused("no Path header")
    if path_host in path.replace(" ", "").split("!"):
        raise ArticleRefused(f"feed loop: {path_host} is in the Path already")
    out = [f"Path: {path_host}!".encode() + _path_raw(head)]
    out += [raw for name, raw in _raw_fields(head) if name not in ("path", "xref")]
    final = b"".join(out) + b"\r\n" + body
    return Prepared(message_id, final, groups, _overview(headers, message_id, len(final), body))


def _path_raw(head: bytes) -> bytes:
    for name, raw in _raw_fields(head):
        if name == "path":
            return raw.partition(b":")[2].lstrip(b" \t")
    return b"\r\n"  # pragma: no cover - checked before

"""The ``Received:`` trace header (RFC 5321 4.4) and its protocol names (RFC 3848, RFC 6531).

This module imports nothing from ``twisted``.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.utils import format_datetime

__all__ = ["protocol_name", "received_header"]

#: Peer-controlled text (HELO name, reverse DNS) is cut to this many characters.
_MAX_PEER_TEXT = 255
# Anything that could end a comment, a clause or the header is replaced.
_UNSAFE = re.compile(r"[^\x21-\x27\x2a-\x3a\x3c-\x5b\x5d-\x7e]")
_ID = re.compile(r"[A-Za-z0-9._-]+")


def protocol_name(
    *, esmtp: bool, tls: bool = False, authenticated: bool = False, smtputf8: bool = False
) -> str:
    """Return the ``with`` protocol name: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, UTF8SMTP[S][A].

    A HELO session is ``SMTP`` whatever the flags (neither TLS nor AUTH
    exists without EHLO).
    """
    if not esmtp:
        return "SMTP"
    base = "UTF8SMTP" if smtputf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if authenticated else "")


def _clean(text: str) -> str:
    return _UNSAFE.sub("_", text[:_MAX_PEER_TEXT]) or "_"


@functools.lru_cache(maxsize=1024)
def _literal(ip: str) -> str:
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"[{address.ipv4_mapped}]"
        return f"[IPv6:{address.compressed}]"
    return f"[{address}]"


@functools.lru_cache(maxsize=8)
def _date_text(date: datetime, offset: timedelta | None) -> str:
    """``format_datetime`` of a whole second (a busy server formats each second once).

    ``offset`` is part of the key: aware datetimes of one instant in two
    zones compare equal, but are written differently.
    """
    return format_datetime(date)


def received_header(
    *,
    helo: str | None,
    peer_ip: str | None,
    by: str,
    protocol: str,
    queue_id: str,
    date: datetime,
    peer_host: str | None = None,
    recipients: Sequence[str] = (),
    tls_info: str | None = None,
    software: str | None = "netproto",
) -> bytes:
    """Return a folded ``Received:`` header line, CRLF-terminated, UTF-8 encoded.

    ``from <helo> (<peer_host> [<ip>]) by <by> (<software>) with <protocol>
    (<tls_info>) id <queue_id> for <recipient>; <date>``.  The HELO name and
    reverse-DNS name come from the peer: characters that could close a
    comment or clause (``( ) \\ ;``), blanks, controls and non-ASCII become
    ``_``.  ``for`` is added only with exactly one recipient (a list would
    disclose Bcc recipients).  An IPv4-mapped IPv6 peer is shown as IPv4.
    A peer without an IP address (``peer_ip`` None: a UNIX socket) is shown
    as ``from <helo> (via local socket)``.

    :param date: an aware datetime (the time of reception).
    :raises ValueError: if ``peer_ip`` is not an IP address, ``date`` is
        naive, or ``by``/``queue_id``/``protocol`` are not plain tokens.
    """
    if date.tzinfo is None:
        raise ValueError("the Received date needs a timezone")
    for name, value in (("by", by), ("queue_id", queue_id), ("protocol", protocol)):
        if not _ID.fullmatch(value):
            raise ValueError(f"{name} must be a plain token, not {value!r}")
    name = _clean(helo) if helo else "unknown"
    if peer_ip is None:
        clauses = [f"from {name} (via local socket)"]
    else:
        host = _clean(peer_host) if peer_host else "unknown"
        clauses = [f"from {name} ({host} {_literal(peer_ip)})"]
    by_clause = f"by {by}"
    if software:
        by_clause += f" ({_clean(software)})"
    by_clause += f" with {protocol}"
    if tls_info:
        by_clause += f" ({_clean_comment(tls_info)})"
    clauses.append(by_clause)
    clauses.append(f"id {queue_id}")
    if len(recipients) == 1 and "\r" not in recipients[0] and "\n" not in recipients[0]:
        clauses.append(f"for <{recipients[0]}>")
    clauses[-1] += f"; {_date_text(date.replace(microsecond=0), date.utcoffset())}"
    return ("Received: " + "\r\n\t".join(clauses) + "\r\n").encode("utf-8")


def _clean_comment(text: str) -> str:
    # Blanks are fine inside a comment (TLS details have several words).
    return " ".join(_clean(word) for word in text.split())

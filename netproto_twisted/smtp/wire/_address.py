"""Sans-I/O SMTP addresses (RFC 5321 4.1.2, RFC 6531) and xtext (RFC 3461 4).

An address is kept as one string in its *canonical* form: ``local@domain``
where the local part is a dot-string when it can be one and a minimally
quoted string otherwise (``"john doe"@example.org``; ``"abc"@x`` becomes
``abc@x``, the same mailbox); the domain (or address literal) is kept as
sent.  ``""`` is the null reverse-path ``<>`` and ``"Postmaster"`` the
domain-less ``<Postmaster>`` recipient.  :func:`split_address` takes such a
string apart.

This module imports nothing from ``twisted``.
"""

from __future__ import annotations

import ipaddress
import re

__all__ = [
    "NULL_SENDER",
    "POSTMASTER",
    "AddressError",
    "canonical_address",
    "parse_path",
    "quote_local_part",
    "split_address",
    "xtext_decode",
    "xtext_encode",
]

#: The null reverse-path ``<>`` (bounces), as an address string.
NULL_SENDER = ""
#: The domain-less ``<Postmaster>`` recipient every server must accept (RFC 5321 4.5.1).
POSTMASTER = "Postmaster"

_MAX_DOMAIN = 255
_MAX_LABEL = 63

_ATEXT = r"A-Za-z0-9!#$%&'*+/=?^_`{|}~\-"
_UTF8 = r"\u0080-\U0010ffff"
_LETDIG = r"A-Za-z0-9"


def _patterns(utf8: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    atom = f"[{_ATEXT}{utf8}]+"
    dot_string = f"{atom}(?:\\.{atom})*"
    quoted = f'"(?:[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e{utf8}]|\\\\[\\x20-\\x7e])*"'
    letdig = f"[{_LETDIG}{utf8}]"
    sub_domain = f"{letdig}(?:[{_LETDIG}{utf8}\\-]*{letdig})?"
    domain = f"{sub_domain}(?:\\.{sub_domain})*"
    literal = r"\[[\x21-\x5a\x5e-\x7e]+\]"
    route = f"@{domain}(?:,@{domain})*:"
    path = re.compile(
        f"<(?:{route})?(?P<local>{dot_string}|{quoted})@(?P<domain>{domain}|{literal})>"
    )
    bare = re.compile(f"(?P<local>{dot_string}|{quoted})@(?P<domain>{domain}|{literal})")
    return path, bare, re.compile(dot_string)


_PATH, _BARE, _DOT_STRING = _patterns(_UTF8)
_GENERAL_TAG = re.compile(r"[A-Za-z0-9\-]*[A-Za-z0-9]")
_QUOTED_PAIR = re.compile(r"\\(.)")
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-Fa-f]{2})*")


class AddressError(ValueError):
    """An address that cannot be accepted; ``kind`` says why.

    ``kind`` is ``"syntax"`` (not a valid path or mailbox), ``"length"`` (a
    domain or label too long for DNS) or ``"non-ascii"`` (a UTF-8 address
    where only ASCII is allowed).
    """

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def quote_local_part(local: str) -> str:
    """Return a local part in canonical form: a dot-string if possible, else quoted.

    :raises AddressError: if it contains a character no quoted string may hold.
    """
    if _DOT_STRING.fullmatch(local):
        return local
    for char in local:
        if char < " " or char == "\x7f":
            raise AddressError("syntax", "control character in local part")
    return '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unquote(local: str) -> str:
    if local.startswith('"'):
        return _QUOTED_PAIR.sub(r"\1", local[1:-1])
    return local


def _check_domain(domain: str) -> None:
    if domain.startswith("["):
        _check_literal(domain[1:-1])
        return
    if len(domain) <= _MAX_LABEL and domain.isascii():
        return  # no label and no whole name can be too long
    if len(domain.encode("utf-8")) > _MAX_DOMAIN:
        raise AddressError("length", "domain longer than 255 octets")
    if any(len(label.encode("utf-8")) > _MAX_LABEL for label in domain.split(".")):
        raise AddressError("length", "domain label longer than 63 octets")


def _check_literal(content: str) -> None:
    tag, colon, rest = content.partition(":")
    if not colon:
        try:
            ipaddress.IPv4Address(content)
        except ValueError:
            raise AddressError("syntax", "bad IPv4 address literal") from None
        return
    if tag.lower() == "ipv6":
        if "%" in rest:
            raise AddressError("syntax", "zone index in IPv6 address literal")
        try:
            ipaddress.IPv6Address(rest)
        except ValueError:
            raise AddressError("syntax", "bad IPv6 address literal") from None
        return
    if not _GENERAL_TAG.fullmatch(tag) or not rest:
        raise AddressError("syntax", "bad address literal")


def _canonical(local: str, domain: str) -> str:
    _check_domain(domain)
    return f"{quote_local_part(_unquote(local))}@{domain}"


def parse_path(
    text: str,
    *,
    utf8: bool = False,
    allow_null: bool = False,
    allow_postmaster: bool = False,
    allow_bare: bool = True,
) -> tuple[str, str]:
    """Parse the path at the start of ``text``; return ``(canonical address, rest of text)``.

    Accepts ``<mailbox>``, ``<@route,@route:mailbox>`` (the source route is
    ignored, RFC 5321 appendix C), ``<>`` if ``allow_null`` (gives ``""``),
    ``<Postmaster>`` in any case if ``allow_postmaster`` (gives
    ``"Postmaster"``) and, if ``allow_bare``, a mailbox without angle
    brackets (which broken clients send).  UTF-8 local parts and domains
    (RFC 6531) only if ``utf8``.

    :raises AddressError: see :class:`AddressError` for the kinds.
    """
    if allow_null and text.startswith("<>"):
        return NULL_SENDER, text[2:]
    if allow_postmaster and text[:12].lower() == "<postmaster>":
        return POSTMASTER, text[12:]
    match = _PATH.match(text) or (_BARE.match(text) if allow_bare else None)
    if match is None:
        raise AddressError("syntax", "bad address syntax")
    address = _canonical(match.group("local"), match.group("domain"))
    if not utf8 and not address.isascii():
        raise AddressError("non-ascii", "non-ASCII address")
    return address, text[match.end() :]


def canonical_address(
    address: str, *, allow_null: bool = False, allow_postmaster: bool = False
) -> str:
    """Validate an address string (UTF-8 allowed) and return its canonical form.

    :raises AddressError: if it is not a valid mailbox (or one of the allowed
        special forms).
    """
    if address == NULL_SENDER and allow_null:
        return NULL_SENDER
    if allow_postmaster and address.lower() == "postmaster":
        return POSTMASTER
    canonical, rest = parse_path(f"<{address}>", utf8=True, allow_bare=False)
    if rest:
        raise AddressError("syntax", "bad address syntax")
    return canonical


def split_address(address: str) -> tuple[str, str]:
    """Return ``(local part, domain)`` of a canonical address, the local part unquoted.

    ``""`` gives ``("", "")``; ``"Postmaster"`` gives ``("Postmaster", "")``.
    """
    if address.startswith('"'):
        end = 1
        while end < len(address) and address[end] != '"':
            end += 2 if address[end] == "\\" else 1
        return _unquote(address[: end + 1]), address[end + 2 :]
    local, _, domain = address.partition("@")
    return local, domain


def xtext_encode(value: str) -> str:
    """Encode as xtext (RFC 3461 4): ``+XX`` for ``+``, ``=``, and bytes outside ``!``..``~``.

    Non-ASCII characters are encoded byte by byte from their UTF-8 form.
    """
    out: list[str] = []
    for byte in value.encode("utf-8"):
        if 0x21 <= byte <= 0x7E and byte not in (0x2B, 0x3D):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)


def xtext_decode(text: str) -> str:
    """Decode xtext (lower-case hex digits tolerated; the result must be UTF-8).

    :raises ValueError: if ``text`` is not valid xtext.
    """
    if not _XTEXT.fullmatch(text):
        raise ValueError("not valid xtext")
    if "+" not in text:
        return text
    parts = text.split("+")
    data = bytearray(parts[0].encode("ascii"))
    for part in parts[1:]:
        data.append(int(part[:2], 16))
        data += part[2:].encode("ascii")
    return data.decode("utf-8")

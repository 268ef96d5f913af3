"""Sans-I/O MAIL FROM / RCPT TO arguments with their ESMTP parameters, and the EHLO reply.

Server side: :func:`parse_mail_from` and :func:`parse_rcpt_to` turn the
argument of MAIL/RCPT into :class:`MailFrom` / :class:`RcptTo`, or raise
:class:`~netproto_twisted.smtp.wire._errors.CommandError` with the reply to send.
Client side: :func:`format_mail_from` / :func:`format_rcpt_to` build the
command lines; :func:`parse_ehlo_reply` reads the server's extensions.

Parameters are kept in a dict, keyword in upper case, value *decoded*
(xtext removed) and canonical (``SIZE`` as a plain decimal, ``BODY``, ``RET``
and ``NOTIFY`` in upper case, addresses canonical) or ``None`` for a
parameter without a value (``SMTPUTF8``); the formatters take the same
dict, so ``parse(format(x)) == x``.  Known parameters:

===========  =====  ============================  ==========================
keyword      on     value                          needs the EHLO keyword
===========  =====  ============================  ==========================
SIZE         MAIL   decimal octets                 SIZE
BODY         MAIL   7BIT, 8BITMIME, BINARYMIME     8BITMIME (BINARYMIME too)
SMTPUTF8     MAIL   none                           SMTPUTF8
RET          MAIL   FULL or HDRS                   DSN
ENVID        MAIL   xtext, <= 100 characters       DSN
AUTH         MAIL   xtext mailbox or ``<>``        AUTH
NOTIFY       RCPT   NEVER or SUCCESS,FAILURE,DELAY DSN
ORCPT        RCPT   addr-type ``;`` xtext          DSN
===========  =====  ============================  ==========================

This module imports nothing from ``twisted``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from netproto_twisted.core.errors import LocalProtocolError
from netproto_twisted.core.framing import serialize_line
from netproto_twisted.smtp.wire._address import (
    AddressError,
    canonical_address,
    parse_path,
    xtext_decode,
    xtext_encode,
)
from netproto_twisted.smtp.wire._codes import (
    AUTH,
    BINARYMIME,
    DSN,
    EIGHTBITMIME,
    ES_BAD_DEST_MAILBOX_SYNTAX,
    ES_BAD_SENDER_MAILBOX_SYNTAX,
    ES_INVALID_ARGUMENTS,
    ES_MESSAGE_TOO_BIG,
    ES_NON_ASCII_ADDRESS,
    EXCEEDED_STORAGE,
    MAILBOX_NAME_INVALID,
    OK,
    PARAM_SYNTAX,
    PARAMS_NOT_RECOGNIZED,
    SIZE,
    SMTPUTF8,
)
from netproto_twisted.smtp.wire._errors import CommandError, SMTPHeloError
from netproto_twisted.smtp.wire._syntax import Reply, error_from_reply

__all__ = [
    "Extensions",
    "MailFrom",
    "RcptTo",
    "format_mail_from",
    "format_rcpt_to",
    "parse_ehlo_reply",
    "parse_mail_from",
    "parse_rcpt_to",
]

#: RFC 3461 4.4: the longest ENVID.
MAX_ENVID = 100
#: RFC 3461 4.2: the longest ORCPT value.
MAX_ORCPT = 500

_MAX_ENCODED = {"ENVID": MAX_ENVID, "ORCPT": MAX_ORCPT}

Params = dict[str, "str | None"]

_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_VALUE = re.compile(r"[\x21-\x3c\x3e-\x7e]+")
_ADDR_TYPE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-]+")
_NOTIFY_FLAGS = ("SUCCESS", "FAILURE", "DELAY")
_BLANKS = re.compile(r"[ \t]+")
_EHLO_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
# A server name, or an EHLO parameter: one word of printable ASCII.
_HOSTNAME = re.compile(r"[\x21-\x7e]+")


_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def _printable(value: str, *, ascii_only: bool) -> str:
    if _CONTROLS.search(value) or (ascii_only and not value.isascii()):
        raise ValueError("control or non-ASCII character")
    return value


# -- value checks: decoded value -> canonical value (ValueError if bad) ----------------------


def _size(value: str | None) -> str:
    if value is None or not value.isdigit() or not value.isascii() or len(value) > 20:
        raise ValueError("SIZE needs a decimal number")
    return str(int(value))


def _body(value: str | None) -> str:
    if value is None or value.upper() not in ("7BIT", EIGHTBITMIME, BINARYMIME):
        raise ValueError("BODY must be 7BIT, 8BITMIME or BINARYMIME")
    return value.upper()


def _flag(value: str | None) -> None:
    if value is not None:
        raise ValueError("takes no value")


def _ret(value: str | None) -> str:
    if value is None or value.upper() not in ("FULL", "HDRS"):
        raise ValueError("RET must be FULL or HDRS")
    return value.upper()


def _envid(value: str | None) -> str:
    if value is None or not value:
        raise ValueError("ENVID needs a value")
    return _printable(value, ascii_only=True)


def _auth(value: str | None) -> str:
    if value is None:
        raise ValueError("AUTH needs a mailbox or <>")
    if value == "<>":
        return value
    try:
        return canonical_address(value)
    except AddressError:
        raise ValueError("AUTH needs a mailbox or <>") from None


def _notify(value: str | None) -> str:
    flags = (value or "").upper().split(",")
    if flags == ["NEVER"]:
        return "NEVER"
    if not all(f in _NOTIFY_FLAGS for f in flags) or len(set(flags)) != len(flags):
        raise ValueError("NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY")
    return ",".join(flags)


def _orcpt(value: str | None) -> str:
    addr_type, semicolon, address = (value or "").partition(";")
    if not semicolon or not _ADDR_TYPE.fullmatch(addr_type) or not address:
        raise ValueError("ORCPT must be addr-type;address")
    return f"{addr_type};{_printable(address, ascii_only=False)}"


_Check = Callable[["str | None"], "str | None"]
#: keyword -> (value check, EHLO keyword the server must advertise, xtext-encoded?)
_MAIL_PARAMS: dict[str, tuple[_Check, str, bool]] = {
    "SIZE": (_size, SIZE, False),
    "BODY": (_body, EIGHTBITMIME, False),
    "SMTPUTF8": (_flag, SMTPUTF8, False),
    "RET": (_ret, DSN, False),
    "ENVID": (_envid, DSN, True),
    "AUTH": (_auth, AUTH, True),
}
_RCPT_PARAMS: dict[str, tuple[_Check, str, bool]] = {
    "NOTIFY": (_notify, DSN, False),
    "ORCPT": (_orcpt, DSN, True),
}


def _reply(code: int, text: str, status: str) -> CommandError:
    return CommandError(Reply.make(code, text, status))


def _parse_params(
    text: str, table: Mapping[str, tuple[_Check, str, bool]], extensions: Collection[str]
) -> Params:
    params: Params = {}
    if not text.strip(" \t"):
        return params
    if text[0] not in " \t":
        raise _reply(PARAM_SYNTAX, "Syntax error: junk after the address", ES_INVALID_ARGUMENTS)
    for token in _BLANKS.split(text.strip(" \t")):
        keyword, equals, raw = token.partition("=")
        if not _KEYWORD.fullmatch(keyword) or (equals and not _VALUE.fullmatch(raw)):
            raise _reply(PARAM_SYNTAX, "Syntax error in parameters", ES_INVALID_ARGUMENTS)
        keyword = keyword.upper()
        entry = table.get(keyword)
        if entry is None or entry[1] not in extensions:
            text = f"Unsupported parameter: {keyword[:20]}"
            raise _reply(PARAMS_NOT_RECOGNIZED, text, ES_INVALID_ARGUMENTS)
        if keyword in params:
            raise _reply(
                PARAMS_NOT_RECOGNIZED, f"Duplicate parameter: {keyword}", ES_INVALID_ARGUMENTS
            )
        check, _, xtext = entry
        value: str | None = raw if equals else None
        try:
            if xtext and value is not None:
                if keyword == "ENVID" and len(value) > MAX_ENVID:
                    raise ValueError("ENVID too long")
                if keyword == "ORCPT":
                    if len(value) > MAX_ORCPT:
                        raise ValueError("ORCPT too long")
                    addr_type, _, encoded = value.partition(";")
                    value = f"{addr_type};{xtext_decode(encoded)}"
                else:
                    value = xtext_decode(value)
            params[keyword] = check(value)
        except ValueError:
            raise _reply(PARAM_SYNTAX, f"Bad {keyword} parameter", ES_INVALID_ARGUMENTS) from None
    if params.get("BODY") == BINARYMIME and BINARYMIME not in extensions:
        raise _reply(PARAMS_NOT_RECOGNIZED, "BODY=BINARYMIME not supported", ES_INVALID_ARGUMENTS)
    return params


@dataclass(frozen=True)
class MailFrom:
    """A parsed ``MAIL FROM``: the reverse-path (``""`` for ``<>``) and its parameters."""

    address: str
    params: Params = field(default_factory=dict)

    @property
    def size(self) -> int | None:
        """The declared message size (``SIZE=``), if given."""
        value = self.params.get("SIZE")
        return None if value is None else int(value)

    @property
    def body(self) -> str | None:
        """``"7BIT"``, ``"8BITMIME"`` or ``"BINARYMIME"`` if ``BODY=`` was given."""
        return self.params.get("BODY")

    @property
    def smtputf8(self) -> bool:
        """Whether ``SMTPUTF8`` was given (the transaction may use UTF-8 addresses/headers)."""
        return "SMTPUTF8" in self.params

    @property
    def ret(self) -> str | None:
        """``"FULL"`` or ``"HDRS"`` if ``RET=`` was given (RFC 3461)."""
        return self.params.get("RET")

    @property
    def envid(self) -> str | None:
        """The decoded envelope id (``ENVID=``), if given (RFC 3461)."""
        return self.params.get("ENVID")

    @property
    def auth(self) -> str | None:
        """The decoded ``AUTH=`` mailbox, ``"<>"``, or ``None`` if not given (RFC 4954)."""
        return self.params.get("AUTH")


@dataclass(frozen=True)
class RcptTo:
    """A parsed ``RCPT TO``: the forward-path and its parameters."""

    address: str
    params: Params = field(default_factory=dict)

    @property
    def notify(self) -> tuple[str, ...] | None:
        """``("NEVER",)`` or a tuple of SUCCESS/FAILURE/DELAY if ``NOTIFY=`` was given."""
        value = self.params.get("NOTIFY")
        return None if value is None else tuple(value.split(","))

    @property
    def orcpt(self) -> tuple[str, str] | None:
        """``(addr-type, decoded original recipient)`` if ``ORCPT=`` was given."""
        value = self.params.get("ORCPT")
        if value is None:
            return None
        addr_type, _, address = value.partition(";")
        return addr_type, address

    @property
    def is_postmaster(self) -> bool:
        """Whether this is the domain-less ``<Postmaster>`` recipient."""
        return self.address == "Postmaster"


_FROM = re.compile(r"FROM:[ \t]*", re.IGNORECASE)
_TO = re.compile(r"TO:[ \t]*", re.IGNORECASE)


def parse_mail_from(
    argument: str, *, extensions: Collection[str], max_size: int | None = None
) -> MailFrom:
    """Parse the argument of MAIL (``FROM:<a@b.example> SIZE=100``) into a :class:`MailFrom`.

    ``extensions`` are the EHLO keywords the server advertised (a parameter
    whose extension is missing is refused like an unknown one); UTF-8
    addresses need the ``SMTPUTF8`` parameter.  ``max_size`` refuses a
    declared ``SIZE`` above it.

    :raises CommandError: ``501 5.5.4`` (no ``FROM:``, bad parameter syntax
        or value), ``501 5.1.7`` (bad address syntax), ``553 5.1.7``
        (domain too long), ``553 5.6.7`` (UTF-8 address without SMTPUTF8),
        ``555 5.5.4`` (unknown, unadvertised or duplicate parameter),
        ``552 5.3.4`` (SIZE above ``max_size``).
    """
    match = _FROM.match(argument)
    if match is None:
        raise _reply(PARAM_SYNTAX, "Syntax: MAIL FROM:<address>", ES_INVALID_ARGUMENTS)
    address, rest = _path(argument[match.end() :], ES_BAD_SENDER_MAILBOX_SYNTAX, "sender", True)
    params = _parse_params(rest, _MAIL_PARAMS, extensions)
    if not address.isascii() and "SMTPUTF8" not in params:
        raise _reply(
            MAILBOX_NAME_INVALID, "Non-ASCII sender address needs SMTPUTF8", ES_NON_ASCII_ADDRESS
        )
    mail = MailFrom(address, params)
    if max_size is not None and mail.size is not None and mail.size > max_size:
        raise _reply(
            EXCEEDED_STORAGE, "Message size exceeds fixed maximum message size", ES_MESSAGE_TOO_BIG
        )
    return mail


def parse_rcpt_to(argument: str, *, extensions: Collection[str], smtputf8: bool) -> RcptTo:
    """Parse the argument of RCPT (``TO:<a@b.example> NOTIFY=NEVER``) into a :class:`RcptTo`.

    ``smtputf8`` tells whether the transaction's MAIL carried ``SMTPUTF8``
    (only then may the address be UTF-8).  ``<Postmaster>`` (any case) gives
    the address ``"Postmaster"``.

    :raises CommandError: ``501 5.5.4`` (no ``TO:``, bad parameters),
        ``501 5.1.3`` (bad address syntax, or ``<>``), ``553 5.1.3``
        (domain too long), ``553 5.6.7`` (UTF-8 address without SMTPUTF8),
        ``555 5.5.4`` (unknown, unadvertised or duplicate parameter).
    """
    match = _TO.match(argument)
    if match is None:
        raise _reply(PARAM_SYNTAX, "Syntax: RCPT TO:<address>", ES_INVALID_ARGUMENTS)
    address, rest = _path(argument[match.end() :], ES_BAD_DEST_MAILBOX_SYNTAX, "recipient", False)
    params = _parse_params(rest, _RCPT_PARAMS, extensions)
    if not address.isascii() and not smtputf8:
        text = "Non-ASCII recipient address needs SMTPUTF8"
        raise _reply(MAILBOX_NAME_INVALID, text, ES_NON_ASCII_ADDRESS)
    return RcptTo(address, params)


def _path(text: str, status: str, who: str, sender: bool) -> tuple[str, str]:
    try:
        return parse_path(text, utf8=True, allow_null=sender, allow_postmaster=not sender)
    except AddressError as e:
        if e.kind == "length":
            raise _reply(MAILBOX_NAME_INVALID, f"Bad {who} address: {e.reason}", status) from None
        raise _reply(PARAM_SYNTAX, f"Bad {who} address syntax", status) from None


# -- client side ------------------------------------------------------------------------------


def _format_params(
    params: Mapping[str, str | int | None] | None, table: Mapping[str, tuple[_Check, str, bool]]
) -> tuple[str, Params]:
    parts: list[str] = []
    seen: Params = {}
    for key, given in (params or {}).items():
        keyword = key.upper()
        if not _KEYWORD.fullmatch(keyword) or keyword in seen:
            raise LocalProtocolError(f"bad or duplicate ESMTP parameter name: {key!r}")
        value = None if given is None else str(given)
        if value is not None and re.search(r"[\r\n\x00]", value):
            raise LocalProtocolError(f"CR, LF or NUL in the {keyword} parameter")
        entry = table.get(keyword)
        try:
            if entry is not None:
                value = entry[0](value)
        except ValueError as e:
            raise LocalProtocolError(f"bad {keyword} parameter: {e}") from None
        seen[keyword] = value
        if value is None:
            parts.append(keyword)
            continue
        if entry is not None and entry[2]:
            if keyword == "ORCPT":
                addr_type, _, address = value.partition(";")
                encoded = f"{addr_type};{xtext_encode(address)}"
            else:
                encoded = xtext_encode(value)
        else:
            encoded = value
        if not _VALUE.fullmatch(encoded):
            raise LocalProtocolError(f"bad value for the {keyword} parameter: {value!r}")
        if len(encoded) > _MAX_ENCODED.get(keyword, len(encoded)):
            raise LocalProtocolError(f"the {keyword} parameter is too long once encoded")
        parts.append(f"{keyword}={encoded}")
    return "".join(" " + p for p in parts), seen


def _format(
    verb: str,
    address: str,
    params: Mapping[str, str | int | None] | None,
    table: Mapping[str, tuple[_Check, str, bool]],
    sender: bool,
) -> bytes:
    try:
        canonical = canonical_address(address, allow_null=sender, allow_postmaster=not sender)
    except AddressError as e:
        raise LocalProtocolError(f"bad address {address!r}: {e.reason}") from None
    suffix, seen = _format_params(params, table)
    if sender and not canonical.isascii() and "SMTPUTF8" not in seen:
        raise LocalProtocolError("a non-ASCII sender address needs the SMTPUTF8 parameter")
    return serialize_line(f"{verb}<{canonical}>{suffix}")


def format_mail_from(address: str, params: Mapping[str, str | int | None] | None = None) -> bytes:
    """Return ``MAIL FROM:<address>[ params]\\r\\n`` (``""`` gives ``<>``).

    Parameter values are given decoded (as :class:`MailFrom` holds them) and
    xtext-encoded here; unknown parameters are passed as given if their
    syntax allows.

    :raises LocalProtocolError: bad address; CR, LF or NUL anywhere; a bad
        parameter; a non-ASCII address without ``SMTPUTF8``.
    """
    return _format("MAIL FROM:", address, params, _MAIL_PARAMS, True)


def format_rcpt_to(address: str, params: Mapping[str, str | int | None] | None = None) -> bytes:
    """Return ``RCPT TO:<address>[ params]\\r\\n`` (``"Postmaster"`` gives ``<Postmaster>``).

    Whether a non-ASCII address is allowed depends on the MAIL command of
    the transaction: the client checks that, not this function.

    :raises LocalProtocolError: bad address; CR, LF or NUL anywhere; a bad parameter.
    """
    return _format("RCPT TO:", address, params, _RCPT_PARAMS, False)


# -- EHLO reply -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Extensions:
    """What a server's EHLO reply offers: keywords (upper case) with their parameters."""

    domain: str = ""
    keywords: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def has(self, keyword: str) -> bool:
        """Return whether the server advertised ``keyword`` (case-insensitive)."""
        return keyword.upper() in self.keywords

    def params(self, keyword: str) -> tuple[str, ...]:
        """Return the parameters advertised with ``keyword`` (empty if none or absent)."""
        return self.keywords.get(keyword.upper(), ())

    @property
    def max_size(self) -> int | None:
        """The ``SIZE`` limit in octets, or ``None`` if not advertised or unlimited (0)."""
        params = self.params(SIZE)
        if not params or not params[0].isdigit() or not params[0].isascii():
            return None
        return int(params[0]) or None

    @property
    def auth_mechanisms(self) -> frozenset[str]:
        """The SASL mechanisms offered with ``AUTH`` (and the obsolete ``AUTH=``)."""
        return frozenset(m.upper() for m in self.params(AUTH))

    def to_reply(self, greeting: str = "") -> Reply:
        """Return the server's ``250`` EHLO reply: ``domain greeting`` then one line per keyword.

        Send it with ``reply.to_bytes(enhanced=False)``; :func:`parse_ehlo_reply`
        reads it back into an equal :class:`Extensions`.

        :raises LocalProtocolError: if a keyword or parameter is malformed.
        """
        if not _HOSTNAME.fullmatch(self.domain):
            raise LocalProtocolError(f"not a server name for EHLO: {self.domain!r}")
        lines = [f"{self.domain} {greeting}" if greeting else self.domain]
        for keyword, params in self.keywords.items():
            if not _EHLO_KEYWORD.fullmatch(keyword) or keyword != keyword.upper():
                raise LocalProtocolError(f"not an upper-case EHLO keyword: {keyword!r}")
            if any(not _HOSTNAME.fullmatch(p) for p in params):
                raise LocalProtocolError(f"bad parameter for EHLO keyword {keyword}")
            lines.append(" ".join((keyword, *params)))
        return Reply(OK, tuple(lines))


def parse_ehlo_reply(reply: Reply) -> Extensions:
    """Read the extensions from a reply to EHLO.

    The first line is the server's name (and greeting); each further line a
    keyword and its parameters.  ``AUTH=PLAIN LOGIN`` lines (pre-RFC 4954
    servers) add to ``AUTH``.  Malformed lines are ignored.

    :raises SMTPHeloError: if the reply is not ``250``.
    """
    if reply.code != OK:
        raise error_from_reply(reply, SMTPHeloError)
    first = reply.lines[0].split()
    if reply.enhanced is not None:
        # An EHLO reply carries no enhanced status code (RFC 2034): what the
        # reply parser took for one is the server's name ("2.0.0" is a valid one).
        first.insert(0, reply.enhanced)
    keywords: dict[str, tuple[str, ...]] = {}
    for line in reply.lines[1:]:
        words = line.split()
        if not words:
            continue
        keyword, params = words[0], tuple(words[1:])
        if keyword[:5].upper() == "AUTH=":
            if keyword[5:]:
                params = (keyword[5:], *params)
            keyword = AUTH
        if not _EHLO_KEYWORD.fullmatch(keyword):
            continue
        keyword = keyword.upper()
        if keyword == AUTH:
            merged = keywords.get(AUTH, ()) + tuple(p.upper() for p in params)
            params = tuple(dict.fromkeys(merged))
        keywords[keyword] = params
    return Extensions(first[0] if first else "", keywords)

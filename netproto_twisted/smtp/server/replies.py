"""The SMTP server's replies: constants serialised once, caches, refusals, peer facts; sans-I/O.

The replies every session sends are built (and the frequent ones serialised)
at import; the greeting, HELO and EHLO replies are remembered per host name;
:func:`refusal_reply` maps a command-table
:class:`~netproto_twisted.core.commands.Refusal` to its SMTP reply, and
:func:`help_reply` and :func:`verb_keywords` build HELP and the STARTTLS/AUTH
EHLO keywords from the table.

This module imports nothing from ``twisted``.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

from netproto_twisted.core.access import Network
from netproto_twisted.core.commands import Refusal, RefusalKind
from netproto_twisted.smtp.wire._codes import (
    AUTH_REQUIRED,
    BAD_SEQUENCE,
    CLOSING,
    ES_DEST_ADDRESS_VALID,
    ES_INVALID_ARGUMENTS,
    ES_INVALID_COMMAND,
    ES_MESSAGE_TOO_BIG,
    ES_OTHER,
    ES_OTHER_ADDRESS,
    ES_OTHER_MAIL_SYSTEM,
    ES_OTHER_PROTOCOL,
    ES_OTHER_SECURITY,
    ES_SYNTAX_ERROR,
    ES_TOO_MANY_RECIPIENTS,
    EXCEEDED_STORAGE,
    HELP_MESSAGE,
    INSUFFICIENT_STORAGE,
    LOCAL_ERROR,
    NOT_IMPLEMENTED,
    OK,
    PARAM_SYNTAX,
    SERVICE_READY,
    SERVICE_UNAVAILABLE,
    START_INPUT,
    SYNTAX_ERROR,
)
from netproto_twisted.smtp.wire._commands import SMTP_COMMANDS, State
from netproto_twisted.smtp.wire._params import Extensions
from netproto_twisted.smtp.wire._syntax import Reply

__all__ = [
    "BYE",
    "ERR_AUTH_NEEDED",
    "ERR_BARE_LF",
    "ERR_LINE_TOO_LONG",
    "ERR_LOCAL",
    "ERR_MESSAGE_LINE_TOO_LONG",
    "ERR_NOT_IMPLEMENTED",
    "ERR_TIMEOUT",
    "ERR_TLS_NEEDED",
    "ERR_TOO_BIG",
    "ERR_TOO_MANY_ERRORS",
    "ERR_TOO_MANY_RECIPIENTS",
    "OK_REPLY",
    "WIRE_BYE",
    "WIRE_GO_AHEAD",
    "WIRE_RCPT_OK",
    "WIRE_SENDER_OK",
    "ehlo_reply",
    "greeting",
    "helo_reply",
    "help_reply",
    "in_networks",
    "parse_peer",
    "peer_facts",
    "refusal_reply",
    "reply",
    "verb_keywords",
    "wire_bytes",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def reply(code: int, text: str, status: str | None = None) -> Reply:
    """``Reply.make``, short."""
    return Reply.make(code, text, status)


OK_REPLY = reply(OK, "Ok", ES_OTHER)
BYE = reply(CLOSING, "Bye", ES_OTHER)
ERR_LINE_TOO_LONG = reply(SYNTAX_ERROR, "Line too long", ES_SYNTAX_ERROR)
ERR_BARE_LF = reply(SYNTAX_ERROR, "Bare CR or LF not allowed", ES_SYNTAX_ERROR)
ERR_MESSAGE_LINE_TOO_LONG = reply(SYNTAX_ERROR, "Message line too long", ES_SYNTAX_ERROR)
ERR_LOCAL = reply(LOCAL_ERROR, "Error: local error in processing", ES_OTHER_MAIL_SYSTEM)
ERR_TOO_BIG = reply(
    EXCEEDED_STORAGE, "Message size exceeds fixed maximum message size", ES_MESSAGE_TOO_BIG
)
ERR_AUTH_NEEDED = reply(AUTH_REQUIRED, "Authentication required", ES_OTHER_SECURITY)
ERR_TLS_NEEDED = reply(AUTH_REQUIRED, "Must issue a STARTTLS command first", ES_OTHER_SECURITY)
ERR_TOO_MANY_RECIPIENTS = reply(
    INSUFFICIENT_STORAGE, "Too many recipients", ES_TOO_MANY_RECIPIENTS
)
ERR_TOO_MANY_ERRORS = reply(SERVICE_UNAVAILABLE, "Error: too many errors", ES_OTHER_PROTOCOL)
ERR_TIMEOUT = reply(SERVICE_UNAVAILABLE, "Error: timeout exceeded", "4.2")
ERR_NOT_IMPLEMENTED = reply(NOT_IMPLEMENTED, "Command not implemented", ES_INVALID_COMMAND)


def _serialized(
    code: int, text: str, status: str | None = None, *, enhanced: bool = True
) -> bytes:
    return reply(code, text, status).to_bytes(enhanced=enhanced)


# The replies every message gets, serialised once.
WIRE_SENDER_OK = _serialized(OK, "Ok", ES_OTHER_ADDRESS)
WIRE_RCPT_OK = _serialized(OK, "Ok", ES_DEST_ADDRESS_VALID)
WIRE_GO_AHEAD = _serialized(START_INPUT, "End data with <CR><LF>.<CR><LF>", enhanced=False)
WIRE_BYE = BYE.to_bytes()


@functools.lru_cache(maxsize=1024)
def wire_bytes(value: Reply, enhanced: bool = True) -> bytes:
    """``value.to_bytes(enhanced=...)``, remembered (most replies are the same few)."""
    return value.to_bytes(enhanced=enhanced)


@functools.lru_cache(maxsize=64)
def greeting(hostname: str, text: str) -> bytes:
    """The ``220`` greeting's bytes (one per listener's settings)."""
    return Reply.make(SERVICE_READY, f"{hostname} {text}".rstrip()).to_bytes(enhanced=False)


@functools.lru_cache(maxsize=64)
def helo_reply(hostname: str) -> bytes:
    """The HELO reply's bytes (one per listener's host name)."""
    return Reply.make(OK, hostname).to_bytes(enhanced=False)


@functools.lru_cache(maxsize=256)
def ehlo_reply(
    hostname: str, client: str, keywords: tuple[tuple[str, tuple[str, ...]], ...]
) -> bytes:
    """The EHLO reply's bytes; clients greet with the same few names, so they are remembered."""
    extensions = Extensions(hostname, dict(keywords))
    return extensions.to_reply(f"Hello {client}").to_bytes(enhanced=False)


_REFUSAL_SHAPE = {
    RefusalKind.UNKNOWN: (SYNTAX_ERROR, ES_INVALID_COMMAND),
    RefusalKind.BAD_SEQUENCE: (BAD_SEQUENCE, ES_INVALID_COMMAND),
    RefusalKind.ARGUMENT: (PARAM_SYNTAX, ES_INVALID_ARGUMENTS),
    RefusalKind.AUTH_REQUIRED: (AUTH_REQUIRED, ES_OTHER_SECURITY),
    RefusalKind.TLS_REQUIRED: (AUTH_REQUIRED, ES_OTHER_SECURITY),
}


@functools.lru_cache(maxsize=256)
def refusal_reply(refusal: Refusal) -> Reply:
    """The SMTP reply for a command-table refusal: ``503 5.5.1``, ``500``, ``501``, ``530``."""
    code, status = _REFUSAL_SHAPE[refusal.kind]
    return Reply.make(code, refusal.text, status)


@functools.lru_cache(maxsize=1024)
def parse_peer(host: str) -> tuple[str, IPAddress | None, bool]:
    """``(peer, address, is_loopback)`` for a peer's host text, remembered per host.

    ``peer`` is ``host`` if it is an IP address, else ``""``; ``address`` is
    the parsed address (IPv4-mapped IPv6 as IPv4) or ``None``; a peer that is
    not an IP (a unix socket) counts as loopback.  Busy clients connect again
    and again from the same few addresses: each is parsed once, not per connection.
    """
    try:
        address: IPAddress = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return "", None, True
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return host, address, address.is_loopback


def peer_facts(address: object) -> tuple[str, IPAddress | None, bool]:
    """:func:`parse_peer` of an ``IAddress`` (one without a ``host`` counts as loopback)."""
    host = getattr(address, "host", None)
    if not isinstance(host, str):
        return "", None, True
    return parse_peer(host)


def in_networks(address: IPAddress | None, networks: Sequence[Network]) -> bool:
    """Whether ``address`` is in one of ``networks``."""
    if address is None or not networks:
        return False
    return any(address.version == net.version and address in net for net in networks)


def help_reply(argument: str) -> Reply:
    """HELP from the table: the verb list, or one verb's help line."""
    table = SMTP_COMMANDS
    if argument:
        text = table.help_for(argument)
        if text:
            return reply(HELP_MESSAGE, text, ES_OTHER)
    verbs = " ".join(c.verb for c in table if c.help)
    return reply(HELP_MESSAGE, f"Commands: {verbs}", ES_OTHER)


class _AfterEhlo:
    """What the table's guards see of a session that has just said EHLO."""

    esmtp = True


@functools.lru_cache(maxsize=64)
def verb_keywords(state: State, secure: bool, authenticated: bool) -> tuple[str, ...]:
    """The EHLO keywords of the verbs valid after EHLO (STARTTLS, AUTH), from the table.

    EHLO always leads to the same state with ``esmtp`` set, so the answer
    depends only on TLS and login: computed once for each.
    """
    return tuple(
        SMTP_COMMANDS.capabilities(
            state, secure=secure, authenticated=authenticated, context=_AfterEhlo()
        )
    )

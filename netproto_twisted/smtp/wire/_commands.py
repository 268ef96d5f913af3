"""The SMTP command table: every verb's states, argument rule, guards and help, in one place.

:data:`SMTP_COMMANDS` is a :class:`~netproto_twisted.core.commands.CommandTable`
declared without handlers: :func:`~netproto_twisted.smtp.parse_command`
takes its argument rules from it, :mod:`~netproto_twisted.smtp.wire._state` its
valid verbs per state and its ``503`` texts, and the server binds its
handlers to it (:mod:`netproto_twisted.smtp.server.connection`), which also
builds the HELP reply and the STARTTLS/AUTH EHLO keywords from it.

This module imports nothing from ``twisted``.
"""

from __future__ import annotations

import enum

from netproto_twisted.core.commands import Argument, Command, CommandTable
from netproto_twisted.smtp.wire._codes import (
    AUTH,
    BDAT,
    DATA,
    EHLO,
    EXPN,
    HELO,
    HELP,
    MAIL,
    NOOP,
    QUIT,
    RCPT,
    RSET,
    STARTTLS,
    VRFY,
)

__all__ = ["COMMANDS", "COMMAND_STATES", "SMTP_COMMANDS", "State"]


class State(enum.Enum):
    """Where an SMTP session stands."""

    #: Greeting sent; no EHLO/HELO yet (also right after a STARTTLS handshake).
    CONNECTED = "connected"
    #: EHLO/HELO done, no mail transaction open.
    GREETED = "greeted"
    #: MAIL accepted, no recipient accepted yet.
    MAIL = "mail"
    #: At least one recipient accepted.
    RCPT = "rcpt"
    #: ``354`` sent: the peer sends message lines, not commands.
    DATA = "data"
    #: Inside a BDAT transaction: a chunk without LAST was accepted.
    BDAT = "bdat"
    #: ``334`` sent: the peer sends SASL responses, not commands.
    AUTH = "auth"
    #: QUIT answered or the connection closing: nothing more is read.
    CLOSED = "closed"

    # Members are singletons: hash by identity, in C (Enum's own hash is a Python call,
    # and the table is looked up several times per command).
    __hash__ = object.__hash__


_C, _G, _M, _R, _B = State.CONNECTED, State.GREETED, State.MAIL, State.RCPT, State.BDAT
#: Outside BDAT, any command state.
_SESSION = (_C, _G, _M, _R)
_OUTSIDE_TRANSACTION = (_G,)


def _needs_ehlo(session: object) -> str | None:
    """STARTTLS and AUTH are ESMTP: refused after HELO (the session object has ``esmtp``)."""
    return None if getattr(session, "esmtp", True) else "Error: send EHLO first"


_SEND_HELO = "Error: send HELO/EHLO first"
_IN_TRANSACTION = "Error: {verb} not permitted during a mail transaction"

#: The SMTP verbs (RFC 5321, RFC 3030 BDAT, RFC 3207 STARTTLS, RFC 4954 AUTH).
SMTP_COMMANDS: CommandTable[State, None] = CommandTable(
    [
        Command(EHLO, _SESSION, None, Argument.REQUIRED, help="EHLO hostname: greet, ESMTP"),
        Command(HELO, _SESSION, None, Argument.REQUIRED, help="HELO hostname: greet"),
        Command(
            MAIL,
            _OUTSIDE_TRANSACTION,
            None,
            Argument.REQUIRED,
            help="MAIL FROM:<sender> [parameters]: start a transaction",
        ),
        Command(
            RCPT,
            (_M, _R),
            None,
            Argument.REQUIRED,
            help="RCPT TO:<recipient> [parameters]: add a recipient",
        ),
        Command(DATA, (_R,), None, help="DATA: send the message, end with a line '.'"),
        Command(
            BDAT,
            (_R, _B),
            None,
            Argument.REQUIRED,
            help="BDAT size [LAST]: send a chunk of the message",
        ),
        Command(RSET, (*_SESSION, _B), None, help="RSET: abort the transaction"),
        Command(NOOP, (*_SESSION, _B), None, Argument.OPTIONAL, help="NOOP: do nothing"),
        Command(QUIT, (*_SESSION, _B), None, help="QUIT: close the session"),
        Command(VRFY, _SESSION, None, Argument.REQUIRED, help="VRFY user: not answered"),
        # Declared for its 502; HELP does not list it.
        Command(EXPN, _SESSION, None, Argument.REQUIRED, help=""),
        Command(HELP, _SESSION, None, Argument.OPTIONAL, help="HELP [verb]: this help"),
        Command(
            STARTTLS,
            _OUTSIDE_TRANSACTION,
            None,
            refused_when_secure=True,
            guard=_needs_ehlo,
            capability=STARTTLS,
            help="STARTTLS: start TLS",
        ),
        Command(
            AUTH,
            _OUTSIDE_TRANSACTION,
            None,
            Argument.REQUIRED,
            refused_when_authenticated=True,
            guard=_needs_ehlo,
            capability=AUTH,
            help="AUTH mechanism [initial-response]: authenticate",
        ),
    ],
    unknown_text="Command unrecognized",
    sequence_text="Error: bad sequence of commands",
    no_commands_text="Error: no command expected now",
    argument_forbidden_text="Syntax error: {verb} takes no argument",
    argument_missing_text="Syntax error: {verb} needs an argument",
    secure_text="Error: TLS already active",
    authenticated_text="Error: already authenticated",
    sequence_texts={
        **{(_C, v): _SEND_HELO for v in (MAIL, RCPT, DATA, BDAT, STARTTLS, AUTH)},
        (_G, RCPT): "Error: need MAIL command",
        (_G, DATA): "Error: need MAIL command",
        (_G, BDAT): "Error: need MAIL command",
        **{(s, MAIL): "Error: nested MAIL command" for s in (_M, _R, _B)},
        (_M, DATA): "Error: need RCPT command",
        (_M, BDAT): "Error: need RCPT command",
        **{(s, v): _IN_TRANSACTION.format(verb=v) for s in (_M, _R, _B) for v in (AUTH, STARTTLS)},
        (_B, DATA): "Error: DATA not permitted after BDAT",
        (_B, RCPT): "Error: RCPT not permitted after BDAT",
    },
)

#: The states in which lines from the peer are commands.
COMMAND_STATES = SMTP_COMMANDS.states

#: Every command verb :func:`~netproto_twisted.smtp.parse_command` recognises.
COMMANDS = frozenset(SMTP_COMMANDS.verbs)

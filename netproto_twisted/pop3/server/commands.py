"""The POP3 server's command table (RFC 1939, 2449, 2595, 5034, 6856) and its states."""

from __future__ import annotations

import enum
from typing import Any

from netproto_twisted.core.commands import Argument, Command, CommandTable
from netproto_twisted.pop3._wire import parse_message_number

__all__ = ["POP3_COMMANDS", "State", "parse_top"]


class State(enum.Enum):
    """The session states of RFC 1939 section 3."""

    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"
    #: After QUIT in TRANSACTION: deletions are applied, no command is read.
    UPDATE = "update"


def parse_top(argument: str) -> tuple[int, int]:
    """Parse ``TOP msg n``: a message number and a count of body lines (>= 0)."""
    parts = argument.split(" ")
    if len(parts) != 2 or not parts[1].isascii() or not parts[1].isdigit() or len(parts[1]) > 9:
        raise ValueError("TOP needs a message number and a line count")
    return parse_message_number(parts[0]), int(parts[1])


def _needs_tls_offer(conn: Any) -> str | None:
    return None if conn.tls is not None else "STLS not available"


def _plaintext_allowed(conn: Any) -> str | None:
    return None if conn.plaintext_allowed else "plaintext login needs TLS first (STLS)"


def _auth_available(conn: Any) -> str | None:
    return None if conn.sasl is not None else "AUTH not available"


_A, _T = State.AUTHORIZATION, State.TRANSACTION

#: The verbs, declared without handlers (the server binds its connection's methods);
#: a client may read the capability keywords and help texts from it.
POP3_COMMANDS: CommandTable[State, Any] = CommandTable(
    [
        Command("CAPA", {_A, _T}, help="list the capabilities"),
        Command(
            "STLS", {_A}, guard=_needs_tls_offer, refused_when_secure=True,
            help="start TLS", capability="STLS",
        ),
        Command(
            "USER", {_A}, argument=Argument.REQUIRED, guard=_plaintext_allowed,
            help="name the mailbox", capability="USER",
        ),
        Command("PASS", {_A}, argument=Argument.REQUIRED, guard=_plaintext_allowed,
                help="give the password"),
        Command("APOP", {_A}, argument=Argument.OPTIONAL, help="not available"),
        Command(
            "AUTH", {_A}, argument=Argument.OPTIONAL, guard=_auth_available,
            help="SASL authentication",
        ),
        Command("UTF8", {_A}, help="UTF-8 mode", capability="UTF8"),
        Command("STAT", {_T}, help="count and size of the messages"),
        Command("LIST", {_T}, argument=Argument.OPTIONAL, parse=parse_message_number,
                help="message sizes"),
        Command("RETR", {_T}, argument=Argument.REQUIRED, parse=parse_message_number,
                help="send a message"),
        Command("DELE", {_T}, argument=Argument.REQUIRED, parse=parse_message_number,
                help="mark a message deleted"),
        Command("NOOP", {_T}, help="do nothing"),
        Command("RSET", {_T}, help="unmark the deleted messages"),
        Command("TOP", {_T}, argument=Argument.REQUIRED, parse=parse_top,
                help="send the header and the first lines", capability="TOP"),
        Command("UIDL", {_T}, argument=Argument.OPTIONAL, parse=parse_message_number,
                help="unique ids", capability="UIDL"),
        Command("QUIT", {_A, _T}, help="end the session"),
    ],
    unknown_text="unknown command",
    sequence_text="command not valid in this state",
    argument_forbidden_text="{verb} takes no argument",
    argument_missing_text="{verb} needs an argument",
    secure_text="TLS already active",
)  # fmt: skip

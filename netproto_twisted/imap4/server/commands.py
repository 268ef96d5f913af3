"""The IMAP server's command table (RFC 3501, RFC 9051 and extensions) and its states."""

from __future__ import annotations

import enum
from typing import Any

from netproto_twisted.core.commands import Argument, Command, CommandTable

__all__ = ["IMAP_COMMANDS", "State"]


class State(enum.Enum):
    """The session states of RFC 9051 section 3."""

    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


def _tls_offered(conn: Any) -> str | None:
    return None if conn.tls is not None else "STARTTLS not available"


def _login_allowed(conn: Any) -> str | None:
    return None if conn.plaintext_allowed else "[PRIVACYREQUIRED] LOGIN needs TLS first (STARTTLS)"


_N, _A, _S = State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED
_ANY = {_N, _A, _S}
_AUTHED = {_A, _S}
_O = Argument.OPTIONAL

#: The verbs; the server binds its handlers (``handler(connection, request)``).  Arguments
#: are parsed by :func:`~netproto_twisted.imap4.wire.parse_command`, so every entry takes
#: an optional argument here and the table decides validity by state only.
IMAP_COMMANDS: CommandTable[State, Any] = CommandTable(
    [
        Command("CAPABILITY", _ANY, argument=_O, help="list the capabilities"),
        Command("NOOP", _ANY, argument=_O, help="do nothing (report changes)"),
        Command("LOGOUT", _ANY, argument=_O, help="end the session"),
        Command("ID", _ANY, argument=_O, help="exchange implementation facts", capability="ID"),
        Command(
            "STARTTLS", {_N}, argument=_O, guard=_tls_offered, refused_when_secure=True,
            help="start TLS", capability="STARTTLS",
        ),
        Command("LOGIN", {_N}, argument=_O, guard=_login_allowed, help="log in with a password"),
        Command("AUTHENTICATE", {_N}, argument=_O, help="SASL authentication"),
        Command("ENABLE", _AUTHED, argument=_O, help="enable extensions", capability="ENABLE"),
        Command("SELECT", _AUTHED, argument=_O, help="open a mailbox"),
        Command("EXAMINE", _AUTHED, argument=_O, help="open a mailbox read-only"),
        Command("CREATE", _AUTHED, argument=_O, help="create a mailbox"),
        Command("DELETE", _AUTHED, argument=_O, help="delete a mailbox"),
        Command("RENAME", _AUTHED, argument=_O, help="rename a mailbox"),
        Command("SUBSCRIBE", _AUTHED, argument=_O, help="subscribe to a mailbox"),
        Command("UNSUBSCRIBE", _AUTHED, argument=_O, help="unsubscribe from a mailbox"),
        Command("LIST", _AUTHED, argument=_O, help="list mailboxes"),
        Command("LSUB", _AUTHED, argument=_O, help="list subscribed mailboxes"),
        Command("NAMESPACE", _AUTHED, argument=_O, help="namespaces", capability="NAMESPACE"),
        Command("STATUS", _AUTHED, argument=_O, help="mailbox counters"),
        Command("APPEND", _AUTHED, argument=_O, help="add a message"),
        Command("IDLE", _AUTHED, argument=_O, help="wait for changes", capability="IDLE"),
        Command("CHECK", {_S}, argument=_O, help="checkpoint"),
        Command("CLOSE", {_S}, argument=_O, help="expunge and close the mailbox"),
        Command("UNSELECT", {_S}, argument=_O, help="close the mailbox", capability="UNSELECT"),
        Command("EXPUNGE", {_S}, argument=_O, help="remove deleted messages"),
        Command("SEARCH", {_S}, argument=_O, help="search messages"),
        Command("FETCH", {_S}, argument=_O, help="fetch message data"),
        Command("STORE", {_S}, argument=_O, help="change flags"),
        Command("COPY", {_S}, argument=_O, help="copy messages"),
        Command("MOVE", {_S}, argument=_O, help="move messages", capability="MOVE"),
    ],
    unknown_text="unknown command",
    sequence_text="command not valid in this state",
    secure_text="TLS already active",
)  # fmt: skip

"""The SMTP session state machine as data (after h11's ``_state.py``); sans-I/O.

One table, :data:`TRANSITIONS`, says for each :class:`State` which events
are allowed and where each leads; :data:`VALID_COMMANDS` is the part of it
that concerns command verbs.  An *event* is a command verb whose positive
reply was sent (``"MAIL"`` after ``250``, ``"DATA"`` after ``354``,
``"AUTH"`` after ``334`` ...), or one of the ``EVENT_*`` names for what is
not a command (the end of the message, the end of a SASL exchange ...).
Refused commands are not events: a ``550`` to RCPT changes nothing.

:class:`Session` follows one connection through the table, adding what a
table cannot say (EHLO versus HELO, TLS active, authenticated):

- server: ``reply = session.refusal(cmd.verb)``; if not ``None`` send it
  (``503 5.5.1``), else handle the command and, on a positive reply, call
  ``session.advance(cmd.verb)``;
- client: the same :meth:`Session.refusal` tells what may not be sent yet
  (raise :class:`~netproto_twisted.core.errors.LocalProtocolError`); with
  PIPELINING advance optimistically and resynchronise from the replies.

States and transitions::

    CONNECTED --EHLO/HELO--> GREETED --MAIL--> MAIL --RCPT--> RCPT --DATA--> DATA
        ^                     ^  |  ^                          |  \\             |
        |                     |  |  +-----end-of-data----------+---\\------------+
        +------STARTTLS-------+  |  +-----bdat-last / abort--- BDAT <-BDAT
                                 +--AUTH--> AUTH --auth-succeeded/failed--> GREETED
    any command state --QUIT/close--> CLOSED;  RSET, EHLO, HELO end a transaction.

This module imports nothing from ``twisted``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from netproto_twisted.core.errors import LocalProtocolError
from netproto_twisted.smtp._codes import (
    AUTH,
    BAD_SEQUENCE,
    BDAT,
    DATA,
    EHLO,
    ES_INVALID_COMMAND,
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
from netproto_twisted.smtp._wire import Reply

__all__ = [
    "COMMAND_STATES",
    "EVENT_ABORT",
    "EVENT_AUTH_FAILED",
    "EVENT_AUTH_SUCCEEDED",
    "EVENT_BDAT_LAST",
    "EVENT_CLOSE",
    "EVENT_END_OF_DATA",
    "TRANSITIONS",
    "VALID_COMMANDS",
    "Session",
    "State",
]


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


#: The message (DATA) ended, whatever the reply: the transaction is over.
EVENT_END_OF_DATA = "end-of-data"
#: A BDAT chunk with LAST was accepted (or answered): the transaction is over.
EVENT_BDAT_LAST = "bdat-last"
#: The SASL exchange succeeded (``235``).
EVENT_AUTH_SUCCEEDED = "auth-succeeded"
#: The SASL exchange failed or was cancelled.
EVENT_AUTH_FAILED = "auth-failed"
#: A failure ended the transaction (e.g. a refused BDAT chunk, RFC 3030).
EVENT_ABORT = "abort"
#: The session is closing (``421``, timeout, connection lost).
EVENT_CLOSE = "close"

#: The states in which lines from the peer are commands.
COMMAND_STATES = frozenset({State.CONNECTED, State.GREETED, State.MAIL, State.RCPT, State.BDAT})

_ANYTIME = frozenset({NOOP, RSET, QUIT, HELP, VRFY, EXPN, EHLO, HELO})

#: The command verbs allowed in each state (states not listed allow none).
VALID_COMMANDS: Mapping[State, frozenset[str]] = {
    State.CONNECTED: _ANYTIME,
    State.GREETED: _ANYTIME | {MAIL, STARTTLS, AUTH},
    State.MAIL: _ANYTIME | {RCPT},
    State.RCPT: _ANYTIME | {RCPT, DATA, BDAT},
    State.BDAT: frozenset({BDAT, RSET, QUIT, NOOP}),
}

_GREETED_AFTER = {EHLO: State.GREETED, HELO: State.GREETED, QUIT: State.CLOSED}


def _transitions() -> dict[State, dict[str, State]]:
    table: dict[State, dict[str, State]] = {}
    for state, verbs in VALID_COMMANDS.items():
        row: dict[str, State] = {}
        for verb in verbs:
            row[verb] = state  # NOOP, HELP, VRFY, EXPN stay
        row.update({k: v for k, v in _GREETED_AFTER.items() if k in verbs})
        if RSET in verbs:
            row[RSET] = State.CONNECTED if state is State.CONNECTED else State.GREETED
        row.update(
            {
                verb: target
                for verb, target in (
                    (MAIL, State.MAIL),
                    (RCPT, State.RCPT),
                    (DATA, State.DATA),
                    (BDAT, State.BDAT),
                    (STARTTLS, State.CONNECTED),
                    (AUTH, State.AUTH),
                )
                if verb in verbs
            }
        )
        row[EVENT_CLOSE] = State.CLOSED
        table[state] = row
    table[State.RCPT][EVENT_BDAT_LAST] = State.GREETED
    table[State.BDAT][EVENT_BDAT_LAST] = State.GREETED
    for state in (State.MAIL, State.RCPT, State.BDAT):
        table[state][EVENT_ABORT] = State.GREETED
    table[State.GREETED][EVENT_AUTH_SUCCEEDED] = State.GREETED
    table[State.GREETED][EVENT_AUTH_FAILED] = State.GREETED
    table[State.DATA] = {EVENT_END_OF_DATA: State.GREETED, EVENT_CLOSE: State.CLOSED}
    table[State.AUTH] = {
        EVENT_AUTH_SUCCEEDED: State.GREETED,
        EVENT_AUTH_FAILED: State.GREETED,
        EVENT_CLOSE: State.CLOSED,
    }
    table[State.CLOSED] = {EVENT_CLOSE: State.CLOSED}
    return table


#: state -> event -> next state.  An event missing from a state's row is a
#: programming error of the caller (:meth:`Session.advance` raises).
#: ``AUTH`` followed at once by ``235`` (initial response accepted) is
#: ``advance("AUTH")`` then ``advance(EVENT_AUTH_SUCCEEDED)``.
TRANSITIONS: Mapping[State, Mapping[str, State]] = _transitions()

_SEND_HELO = "Error: send HELO/EHLO first"
_IN_TRANSACTION = "Error: {verb} not permitted during a mail transaction"
#: (state, verb) -> the 503 text; the fallback is "Error: bad sequence of commands".
_REFUSALS: Mapping[tuple[State, str], str] = {
    **{(State.CONNECTED, v): _SEND_HELO for v in (MAIL, RCPT, DATA, BDAT, STARTTLS, AUTH)},
    (State.GREETED, RCPT): "Error: need MAIL command",
    (State.GREETED, DATA): "Error: need MAIL command",
    (State.GREETED, BDAT): "Error: need MAIL command",
    **{(s, MAIL): "Error: nested MAIL command" for s in (State.MAIL, State.RCPT, State.BDAT)},
    (State.MAIL, DATA): "Error: need RCPT command",
    (State.MAIL, BDAT): "Error: need RCPT command",
    **{
        (s, v): _IN_TRANSACTION.format(verb=v)
        for s in (State.MAIL, State.RCPT, State.BDAT)
        for v in (AUTH, STARTTLS)
    },
    (State.BDAT, DATA): "Error: DATA not permitted after BDAT",
    (State.BDAT, RCPT): "Error: RCPT not permitted after BDAT",
}


class Session:
    """One session's place in :data:`TRANSITIONS`, plus what the table cannot hold.

    :ivar state: the current :class:`State`.
    :ivar esmtp: whether the session was opened with EHLO (not HELO).
    :ivar tls: whether STARTTLS was done (set ``tls=True`` at creation for implicit TLS).
    :ivar authenticated: whether AUTH succeeded.
    """

    def __init__(self, *, tls: bool = False) -> None:
        self.state = State.CONNECTED
        self.esmtp = False
        self.tls = tls
        self.authenticated = False

    @property
    def in_transaction(self) -> bool:
        """Whether a mail transaction is open (MAIL accepted, not yet finished)."""
        return self.state in (State.MAIL, State.RCPT, State.DATA, State.BDAT)

    def refusal(self, verb: str) -> Reply | None:
        """Return the ``503 5.5.1`` reply if ``verb`` may not come now, else ``None``.

        A refused BDAT is still followed by its chunk: the server reads and
        discards those bytes before reading the next command.
        """
        state = self.state
        if verb in VALID_COMMANDS.get(state, ()):
            if verb == AUTH:
                if not self.esmtp:
                    return _bad_sequence("Error: send EHLO first")
                if self.authenticated:
                    return _bad_sequence("Error: already authenticated")
            elif verb == STARTTLS:
                if not self.esmtp:
                    return _bad_sequence("Error: send EHLO first")
                if self.tls:
                    return _bad_sequence("Error: TLS already active")
            return None
        if state not in COMMAND_STATES:
            return _bad_sequence("Error: no command expected now")
        return _bad_sequence(_REFUSALS.get((state, verb), "Error: bad sequence of commands"))

    def advance(self, event: str) -> State:
        """Take ``event`` (a verb after its positive reply, or an ``EVENT_*``); return the state.

        :raises LocalProtocolError: if the table has no such event in this
            state (the caller skipped :meth:`refusal`, or has a bug).
        """
        target = TRANSITIONS[self.state].get(event)
        if target is None:
            raise LocalProtocolError(f"event {event!r} not allowed in state {self.state.name}")
        if event == EHLO:
            self.esmtp = True
        elif event == HELO:
            self.esmtp = False
        elif event == STARTTLS:
            # RFC 3207 4.2: forget everything learnt from the client before TLS.
            self.tls, self.esmtp, self.authenticated = True, False, False
        elif event == EVENT_AUTH_SUCCEEDED:
            self.authenticated = True
        self.state = target
        return target


def _bad_sequence(text: str) -> Reply:
    return Reply.make(BAD_SEQUENCE, text, ES_INVALID_COMMAND)

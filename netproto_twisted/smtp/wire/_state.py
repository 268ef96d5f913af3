"""The SMTP session state machine as data (after h11's ``_state.py``); sans-I/O.

One table, :data:`TRANSITIONS`, says for each :class:`State` which events
are allowed and where each leads; :data:`VALID_COMMANDS`, the part of it
that concerns command verbs, comes from the command table
(:data:`~netproto_twisted.smtp.wire._commands.SMTP_COMMANDS`), as do the texts
of the ``503`` refusals.  An *event* is a command verb whose positive
reply was sent (``"MAIL"`` after ``250``, ``"DATA"`` after ``354``,
``"AUTH"`` after ``334`` ...), or one of the ``EVENT_*`` names for what is
not a command (the end of the message, the end of a SASL exchange ...).
Refused commands are not events: a ``550`` to RCPT changes nothing.

:class:`Session` follows one connection through the table, adding what a
table cannot say (EHLO versus HELO, TLS active, authenticated):

- server (:class:`~netproto_twisted.smtp.server.SMTPConnection`): the
  command table refuses what may not come now (``503 5.5.1``); a handler's
  positive reply advances the session by the command's verb;
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

from collections.abc import Mapping

from netproto_twisted.core.commands import Refusal
from netproto_twisted.core.errors import LocalProtocolError
from netproto_twisted.smtp.wire._codes import (
    AUTH,
    BAD_SEQUENCE,
    BDAT,
    DATA,
    EHLO,
    ES_INVALID_COMMAND,
    HELO,
    MAIL,
    QUIT,
    RCPT,
    RSET,
    STARTTLS,
)
from netproto_twisted.smtp.wire._commands import COMMAND_STATES, SMTP_COMMANDS, State
from netproto_twisted.smtp.wire._syntax import Reply

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

#: The command verbs allowed in each state (states not listed allow none), from the table.
VALID_COMMANDS: Mapping[State, frozenset[str]] = {
    state: SMTP_COMMANDS.valid_in(state) for state in COMMAND_STATES
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
        found = SMTP_COMMANDS.resolve(
            verb, None, self.state, authenticated=self.authenticated, secure=self.tls, context=self
        )
        if isinstance(found, Refusal):
            return Reply.make(BAD_SEQUENCE, found.text, ES_INVALID_COMMAND)
        return None

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

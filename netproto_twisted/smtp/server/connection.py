"""The SMTP server session as a sans-I/O connection object: state, framing and every command.

:class:`SMTPConnection` is one server session.  It is fed lines and raw
bytes (by :class:`~netproto_twisted.smtp.server.SMTPServerProtocol`, or by
a test through :class:`~netproto_twisted.core.connection.ConnectionDriver`)
and produces replies and actions.  It owns:

- the session state (:class:`~netproto_twisted.smtp.Session`, the table of
  :mod:`~netproto_twisted.smtp.wire._state`), moved only by :meth:`_accept` (a
  positive reply *is* the event) and :meth:`_end` (an event that is not a
  command: the end of the data, of an AUTH exchange, of a failed chunk);
- the framing, decided from that state: lines in the command states; raw
  bytes through a dot-unstuffer in ``DATA`` (until the decoder says the
  message ended); a counted chunk after each BDAT command;
- dispatch through the command table
  (:data:`~netproto_twisted.smtp.SMTP_COMMANDS` bound to the handlers
  below), which also gives the ``503`` refusals, HELP and the STARTTLS/AUTH
  EHLO keywords.

Extensions: PIPELINING, 8BITMIME, SMTPUTF8, SIZE, CHUNKING (BDAT, BINARYMIME),
DSN (parameters kept in the :class:`~netproto_twisted.smtp.interfaces.Envelope`),
STARTTLS, AUTH (:mod:`~netproto_twisted.smtp.server.auth`), ENHANCEDSTATUSCODES.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.core.commands import CommandTable, Refusal
from netproto_twisted.core.connection import ConnectionBase, Framing
from netproto_twisted.core.dotstuff import DotUnstuffer
from netproto_twisted.core.errors import LineTooLong
from netproto_twisted.core.framing import BareLineEnding, LineEndings
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.smtp.delivery import commit_all
from netproto_twisted.smtp.errors import CommandError
from netproto_twisted.smtp.interfaces import IDeliveryTarget, IRecipientPolicy, SessionInfo
from netproto_twisted.smtp.server.auth import SMTPAuth
from netproto_twisted.smtp.server.message import Transaction
from netproto_twisted.smtp.server.replies import (
    ERR_AUTH_NEEDED,
    ERR_BARE_LF,
    ERR_LINE_TOO_LONG,
    ERR_LOCAL,
    ERR_MESSAGE_LINE_TOO_LONG,
    ERR_TIMEOUT,
    ERR_TLS_NEEDED,
    ERR_TOO_BIG,
    ERR_TOO_MANY_ERRORS,
    ERR_TOO_MANY_RECIPIENTS,
    OK_REPLY,
    WIRE_BYE,
    WIRE_GO_AHEAD,
    WIRE_RCPT_OK,
    WIRE_SENDER_OK,
    ehlo_reply,
    greeting,
    helo_reply,
    help_reply,
    refusal_reply,
    reply,
    verb_keywords,
    wire_bytes,
)
from netproto_twisted.smtp.server.settings import ServerSettings
from netproto_twisted.smtp.wire._codes import (
    AUTH,
    BDAT,
    BINARYMIME,
    CANNOT_VRFY,
    CHUNKING,
    DATA,
    DSN,
    EHLO,
    EIGHTBITMIME,
    ENHANCEDSTATUSCODES,
    ES_INVALID_ARGUMENTS,
    ES_INVALID_COMMAND,
    ES_OTHER,
    ES_OTHER_MAIL_SYSTEM,
    ES_SECURITY_FEATURES_NOT_SUPPORTED,
    EXPN,
    HELO,
    HELP,
    LOCAL_ERROR,
    MAIL,
    NOOP,
    NOT_IMPLEMENTED,
    OK,
    PARAM_SYNTAX,
    PIPELINING,
    QUIT,
    RCPT,
    RSET,
    SERVICE_READY,
    SIZE,
    SMTPUTF8,
    STARTTLS,
    VRFY,
)
from netproto_twisted.smtp.wire._commands import SMTP_COMMANDS, State
from netproto_twisted.smtp.wire._params import parse_mail_from, parse_rcpt_to
from netproto_twisted.smtp.wire._state import (
    EVENT_ABORT,
    EVENT_AUTH_FAILED,
    EVENT_AUTH_SUCCEEDED,
    EVENT_BDAT_LAST,
    EVENT_CLOSE,
    EVENT_END_OF_DATA,
    Session,
)
from netproto_twisted.smtp.wire._syntax import Command, Reply, parse_bdat, parse_command

__all__ = ["SMTPConnection"]

_log = Logger(namespace="netproto.smtp.server")

_Handler = Callable[["SMTPConnection", Command], None]

_ERR_STARTTLS_UNAVAILABLE = reply(
    NOT_IMPLEMENTED, "STARTTLS not available", ES_SECURITY_FEATURES_NOT_SUPPORTED
)
_ERR_AUTH_UNAVAILABLE = reply(NOT_IMPLEMENTED, "AUTH not available", ES_INVALID_COMMAND)
_ERR_EXPN = reply(NOT_IMPLEMENTED, "EXPN not available", ES_INVALID_COMMAND)
_ERR_BINARYMIME_NEEDS_EHLO = reply(PARAM_SYNTAX, "BINARYMIME needs EHLO", ES_INVALID_ARGUMENTS)
_ERR_COMMIT = reply(LOCAL_ERROR, "Error: local error in processing", ES_OTHER_MAIL_SYSTEM)
_VRFY = reply(CANNOT_VRFY, "Cannot VRFY user; try RCPT", ES_OTHER)
_TLS_GO_AHEAD = reply(SERVICE_READY, "Ready to start TLS", ES_OTHER)


def _ignore(result: object) -> None:
    """A sink's write error is reported by its commit; nothing to do when it drains."""


class SMTPConnection(ConnectionBase):
    """One ESMTP server session, sans-I/O (see the module docstring).

    :param settings: the listener's :class:`ServerSettings`.
    :param policy: the :class:`IRecipientPolicy` (sender checks and routing).
    :param peer: the peer's IP address text (``""`` for a unix socket).
    :param peer_is_loopback: whether the peer is local (AUTH before TLS may be allowed).
    :param in_relay_network: whether the peer may relay without AUTH.
    :param secure: whether the connection is already TLS (implicit TLS).
    :param tls: the context :class:`~netproto_twisted.core.connection.StartTLS`
        carries, or ``None`` (STARTTLS not offered).
    :param auth: the listener's SASL policy
        (:class:`~netproto_twisted.core.sasl_exchange.Authenticator`), or ``None``
        (AUTH not offered).
    """

    #: The command table with this class's handlers (bound below the class).
    commands: CommandTable[State, _Handler]

    def __init__(
        self,
        settings: ServerSettings,
        policy: IRecipientPolicy,
        *,
        peer: str = "",
        peer_is_loopback: bool = False,
        in_relay_network: bool = False,
        secure: bool = False,
        tls: object | None = None,
        auth: Authenticator | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.policy = policy
        self.peer = peer
        self.peer_is_loopback = peer_is_loopback
        self.in_relay_network = in_relay_network
        self.tls = tls
        self.session = Session(tls=secure)
        self.helo = ""
        self.authenticated_as: str | None = None
        self.auth = SMTPAuth(self, auth) if auth is not None else None
        self._txn: Transaction | None = None
        self._unstuffer: DotUnstuffer | None = None
        self._chunk_last = False
        self._chunk_discard = False
        self._errors = 0
        self._advertised: frozenset[str] = frozenset()
        self.send(greeting(settings.hostname, settings.greeting))

    # -- replies and the error budget -----------------------------------------------------

    def send_reply(self, value: Reply) -> None:
        """Queue a reply (serialised once per distinct reply)."""
        self.send(wire_bytes(value, True))

    def error(self, value: Reply) -> None:
        """Send an error reply; after ``max_errors`` of them, ``421`` and close."""
        self._errors += 1
        if self._errors >= self.settings.max_errors:
            self.close_with(ERR_TOO_MANY_ERRORS)
        else:
            self.send_reply(value)

    def close_with(self, value: Reply) -> None:
        """Send ``value`` and close (the transaction is dropped)."""
        self.send_reply(value)
        self._end(EVENT_CLOSE)
        self._reset_transaction()
        self.close()

    def handler_failed(self, failure: Failure) -> None:
        """A handler raised: log it, ``451`` and close."""
        _log.failure("SMTP server handler failed", failure)
        if not self.closing:
            self.close_with(ERR_LOCAL)

    # -- state: the only places it moves ------------------------------------------------

    def _accept(self, event: str, wire: bytes) -> None:
        """A positive reply: the event it stands for moves the state; framing follows."""
        state = self.session.advance(event)
        self.send(wire)
        if state is State.DATA:
            self.expect_raw()

    def _end(self, event: str) -> None:
        """An event with no reply of its own (end of data, of AUTH, a failed chunk, close)."""
        self.session.advance(event)

    # -- input ------------------------------------------------------------------------------

    def line_received(self, line: bytes) -> None:
        """Handle one command line (or one SASL response)."""
        if self.closing or self.lost:
            return
        state = self.session.state
        if state is State.AUTH:
            assert self.auth is not None
            self.auth.line(line)
            return
        try:
            command = parse_command(line)
        except CommandError as e:
            self.error(e.reply)
            return
        entry = _ROWS.get(state, _NO_ROW).get(command.verb)
        if entry is not None and entry.unconditional:
            entry.handler(self, command)
            return
        found = self.commands.resolve(
            command.verb,
            None,  # parse_command applied the table's argument rule
            state,
            authenticated=self.session.authenticated,
            secure=self.session.tls,
            context=self.session,
        )
        if isinstance(found, Refusal):
            if command.verb == BDAT:
                self._bdat_refused(command, refusal_reply(found))
            else:
                self.error(refusal_reply(found))
            return
        handler = found.handler
        assert handler is not None
        handler(self, command)

    def raw_received(self, data: bytes) -> None:
        """Stream DATA (dot-unstuffed) or a BDAT chunk to the sinks."""
        unstuffer = self._unstuffer
        txn = self._txn
        if unstuffer is None:  # a BDAT chunk
            if txn is not None and not self._chunk_discard:
                self._wait_for_sinks(txn.write(data, self.settings.max_size))
            return
        try:
            payload = unstuffer.feed(data)
        except (BareLineEnding, LineTooLong) as e:
            payload = b""
            if txn is not None:
                txn.fail(_data_error(e))
        if txn is not None:
            if unstuffer.error is not None:
                txn.fail(_data_error(unstuffer.error))
            self._wait_for_sinks(txn.write(payload, self.settings.max_size))
        if unstuffer.done:
            self._unstuffer = None
            self.end_raw(unstuffer.rest())
            if txn is not None:
                self._commit(txn, EVENT_END_OF_DATA)

    def raw_complete(self) -> None:
        """A BDAT chunk has been read whole."""
        if self._chunk_discard:
            self._chunk_discard = False
            return
        txn = self._txn
        if txn is None:
            return
        if self._chunk_last:
            self._commit(txn, EVENT_BDAT_LAST)
            return
        if txn.failed is not None:
            # RFC 3030: a failed chunk ends the transaction; later chunks get 503.
            failure = txn.failed
            txn.abort()
            self._txn = None
            self._end(EVENT_ABORT)
            self.error(failure)
            return
        self.send(reply(OK, f"Ok: {txn.size} octets received", ES_OTHER).to_bytes())

    def line_too_long(self) -> None:
        """``500 5.5.2 Line too long``, and go on (the rest of the line is skipped)."""
        if self.session.state is State.AUTH and self.auth is not None:
            self.auth.line_too_long()
        else:
            self.error(ERR_LINE_TOO_LONG)

    def bad_line_ending(self, line: bytes) -> None:
        """``500 5.5.2`` to a command with a bare CR or LF."""
        if self.session.state is State.AUTH and self.auth is not None:
            self.auth.bad_line_ending()
        else:
            self.error(ERR_BARE_LF)

    def timeout(self) -> None:
        """``421 4.4.2`` and close."""
        if not self.closing:
            self.close_with(ERR_TIMEOUT)

    def connection_lost(self) -> None:
        """Abort the open transaction (nothing half-delivered) and the SASL exchange."""
        super().connection_lost()
        self._reset_transaction()
        if self.auth is not None:
            self.auth.abort()

    # -- session facts --------------------------------------------------------------------

    def session_info(self) -> SessionInfo:
        """What the recipient policy is told about this session."""
        return SessionInfo(
            peer=self.peer,
            helo=self.helo,
            authenticated_as=self.authenticated_as,
            tls=self.session.tls,
            relay_allowed=self.authenticated_as is not None or self.in_relay_network,
        )

    def _reset_transaction(self) -> None:
        txn, self._txn = self._txn, None
        self._unstuffer = None
        if txn is not None:
            txn.abort()

    def _keywords(self) -> dict[str, tuple[str, ...]]:
        settings = self.settings
        keywords: dict[str, tuple[str, ...]] = {
            PIPELINING: (),
            SIZE: (str(settings.max_size),),
            EIGHTBITMIME: (),
            SMTPUTF8: (),
            CHUNKING: (),
            BINARYMIME: (),
            DSN: (),
            ENHANCEDSTATUSCODES: (),
        }
        session = self.session
        # STARTTLS and AUTH: the table says whether they could come now; we, whether we can.
        for keyword in verb_keywords(session.state, session.tls, session.authenticated):
            if keyword == STARTTLS and self.tls is not None:
                keywords[STARTTLS] = ()
            elif keyword == AUTH and self.auth is not None:
                mechanisms = self.auth.mechanisms()
                if mechanisms:
                    keywords[AUTH] = tuple(mechanisms)
        for keyword in settings.extra_keywords:
            keywords[keyword.upper()] = ()
        return keywords

    # -- simple commands ------------------------------------------------------------------

    def _ehlo(self, command: Command) -> None:
        self._reset_transaction()
        self.helo = command.argument
        # The reply lists what may come next, so the state moves first (the reply is
        # positive whatever it lists).
        self._end(EHLO)
        keywords = self._keywords()
        self._advertised = frozenset(keywords)
        self.send(ehlo_reply(self.settings.hostname, command.argument, tuple(keywords.items())))

    def _helo(self, command: Command) -> None:
        self._reset_transaction()
        self.helo = command.argument
        self._advertised = frozenset()
        self._accept(HELO, helo_reply(self.settings.hostname))

    def _noop(self, command: Command) -> None:
        self.send_reply(OK_REPLY)

    def _rset(self, command: Command) -> None:
        self._reset_transaction()
        self._accept(RSET, wire_bytes(OK_REPLY))

    def _quit(self, command: Command) -> None:
        self._reset_transaction()
        self._accept(QUIT, WIRE_BYE)
        self.close()

    def _vrfy(self, command: Command) -> None:
        self.send_reply(_VRFY)

    def _expn(self, command: Command) -> None:
        self.error(_ERR_EXPN)

    def _help(self, command: Command) -> None:
        self.send_reply(help_reply(command.argument))

    # -- STARTTLS and AUTH ----------------------------------------------------------------

    def _starttls(self, command: Command) -> None:
        if self.tls is None:
            self.error(_ERR_STARTTLS_UNAVAILABLE)
            return
        # RFC 3207 4.2: forget everything learnt from the client before TLS.
        self._reset_transaction()
        self.helo = ""
        self.authenticated_as = None
        self._accept(STARTTLS, wire_bytes(_TLS_GO_AHEAD))
        self.start_tls(self.tls)

    def _auth(self, command: Command) -> None:
        if self.auth is None:
            self.error(_ERR_AUTH_UNAVAILABLE)
            return
        self.auth.command(command.argument)

    def auth_started(self) -> None:
        """The exchange began (``334`` or a result follows): SASL lines, not commands."""
        self._end(AUTH)

    def auth_succeeded(self, username: str, success: Reply) -> None:
        """The exchange succeeded: ``235``."""
        self.authenticated_as = username
        self._end(EVENT_AUTH_SUCCEEDED)
        self.send_reply(success)

    def auth_failed(self, failure: Reply) -> None:
        """The exchange failed or was cancelled: back to commands, an error reply."""
        if self.session.state is State.AUTH:
            self._end(EVENT_AUTH_FAILED)
        self.error(failure)

    # -- MAIL / RCPT ----------------------------------------------------------------------

    def _mail(self, command: Command) -> None:
        settings = self.settings
        if settings.require_tls and not self.session.tls:
            self.error(ERR_TLS_NEEDED)
            return
        if settings.require_auth and self.authenticated_as is None:
            self.error(ERR_AUTH_NEEDED)
            return
        try:
            mail_from = parse_mail_from(
                command.argument, extensions=self._advertised, max_size=settings.max_size
            )
        except CommandError as e:
            self.error(e.reply)
            return
        if mail_from.body == BINARYMIME and not self.session.esmtp:
            self.error(_ERR_BINARYMIME_NEEDS_EHLO)
            return
        # What the policy sees cannot change within a transaction (EHLO, STARTTLS
        # and AUTH end it or are refused in it): one SessionInfo serves MAIL and RCPTs.
        info = self.session_info()

        def checked(result: object) -> None:
            if isinstance(result, Failure):
                self._refused(result)
                return
            self._txn = Transaction(mail_from, info)
            self._accept(MAIL, WIRE_SENDER_OK)

        self.wait(self.policy.check_sender(info, mail_from), checked)

    def _refused(self, failure: Failure) -> None:
        if isinstance(failure.value, CommandError):
            self.error(failure.value.reply)
            return
        _log.failure("recipient policy failed", failure)
        self.send_reply(ERR_LOCAL)

    def _rcpt(self, command: Command) -> None:
        txn = self._txn
        assert txn is not None
        if len(txn.recipients) >= self.settings.max_recipients:
            # A limit the client is told to respect (RFC 5321 4.5.3.1.10), not its
            # mistake: not counted against max_errors, so the recipients already
            # accepted still get their message.
            self.send_reply(ERR_TOO_MANY_RECIPIENTS)
            return
        try:
            rcpt = parse_rcpt_to(
                command.argument, extensions=self._advertised, smtputf8=txn.mail_from.smtputf8
            )
        except CommandError as e:
            self.error(e.reply)
            return

        def routed(result: object) -> None:
            if isinstance(result, Failure):
                self._refused(result)
                return
            if self._txn is not txn:
                return  # the transaction ended meanwhile (cannot happen while paused)
            if not IDeliveryTarget.providedBy(result):
                _log.error("recipient policy returned a non-target: {r!r}", r=result)
                self.send_reply(ERR_LOCAL)
                return
            txn.recipients.append((rcpt, result))
            self._accept(RCPT, WIRE_RCPT_OK)

        self.wait(self.policy.route(txn.session_info, txn.mail_from, rcpt), routed)

    # -- the message ----------------------------------------------------------------------

    def _open(self, txn: Transaction) -> bool:
        waits = txn.open(
            helo=self.helo,
            peer=self.peer,
            authenticated_as=self.authenticated_as,
            tls=self.session.tls,
            esmtp=self.session.esmtp,
            hostname=self.settings.hostname,
        )
        if waits is None:
            return False
        self._wait_for_sinks(waits)
        return True

    def _wait_for_sinks(self, waits: list[Deferred[Any]]) -> None:
        """Read no more input until every sink that asked to wait has caught up."""
        if waits:
            self.wait(DeferredList(waits, consumeErrors=True), _ignore)

    def _data(self, command: Command) -> None:
        txn = self._txn
        assert txn is not None
        if not self._open(txn):
            self._txn = None
            self._end(EVENT_ABORT)
            self.send_reply(ERR_LOCAL)
            return
        endings = (
            LineEndings.NORMALIZE if self.settings.bare_lf == "normalize" else LineEndings.STRICT
        )
        self._unstuffer = DotUnstuffer(
            endings=endings, max_line_length=self.settings.max_data_line_length
        )
        self._accept(DATA, WIRE_GO_AHEAD)

    def _commit(self, txn: Transaction, event: str) -> None:
        """End of data: commit every sink, then 250 (all durable) or 451 (abort the rest)."""
        self._txn = None
        if txn.failed is not None:
            txn.abort()
            self._end(event)
            self.error(txn.failed)
            return

        def committed(results: object) -> None:
            self._end(event)
            if isinstance(results, Failure):
                _log.failure("committing a message failed", results)
                txn.abort()
                self.send_reply(_ERR_COMMIT)
                return
            assert isinstance(results, list)
            ids = " ".join(results)
            # One field to format (the text is built here, cheaply); the parts stay
            # in the event for structured observers.
            _log.info(
                "{accepted}",
                accepted=txn.accepted_line(ids),
                id=txn.id,
                sender=txn.mail_from.address,
                count=len(txn.recipients),
                size=txn.size,
                ids=ids,
            )
            # The id is hex: this is what reply(...).to_bytes() would give, without the checks.
            self.send(f"{OK} {OK // 100}.{ES_OTHER} Ok: queued as {txn.id}\r\n".encode())

        self.wait(commit_all(txn.sinks), committed)

    def _bdat_refused(self, command: Command, refusal: Reply) -> None:
        """A BDAT out of sequence: refuse it and discard its chunk."""
        try:
            size, _ = parse_bdat(command.argument)
        except CommandError as e:
            self.close_with(e.reply)  # the chunk's length is unknown: cannot resynchronise
            return
        self.error(refusal)
        if self.closing:
            return
        self._chunk_discard = True
        self._chunk_last = False
        self.expect_counted(size)

    def _bdat(self, command: Command) -> None:
        txn = self._txn
        assert txn is not None
        try:
            size, last = parse_bdat(command.argument)
        except CommandError as e:
            self.close_with(e.reply)  # the chunk's length is unknown: cannot resynchronise
            return
        if self.session.state is State.RCPT:
            if not self._open(txn):
                txn.failed = ERR_LOCAL
            self._end(BDAT)
        self._chunk_discard = False
        self._chunk_last = last
        if txn.failed is None and txn.size + size > self.settings.max_size:
            txn.fail(ERR_TOO_BIG)
        self.expect_counted(size)

    @property
    def transaction(self) -> Transaction | None:
        """The open mail transaction, if any."""
        return self._txn

    @property
    def framing_state(self) -> tuple[State, Framing]:
        """The session state and the framing it implies (for tests and logs)."""
        return self.session.state, self.framing


def _data_error(error: Exception) -> Reply:
    return ERR_BARE_LF if isinstance(error, BareLineEnding) else ERR_MESSAGE_LINE_TOO_LONG


SMTPConnection.commands = SMTP_COMMANDS.bind(
    {
        EHLO: SMTPConnection._ehlo,
        HELO: SMTPConnection._helo,
        MAIL: SMTPConnection._mail,
        RCPT: SMTPConnection._rcpt,
        DATA: SMTPConnection._data,
        BDAT: SMTPConnection._bdat,
        RSET: SMTPConnection._rset,
        NOOP: SMTPConnection._noop,
        QUIT: SMTPConnection._quit,
        VRFY: SMTPConnection._vrfy,
        EXPN: SMTPConnection._expn,
        HELP: SMTPConnection._help,
        STARTTLS: SMTPConnection._starttls,
        AUTH: SMTPConnection._auth,
    }
)
#: The bound table's dispatch index, looked up once per command without a call.
_ROWS = SMTPConnection.commands.rows
_NO_ROW: dict[str, Any] = {}

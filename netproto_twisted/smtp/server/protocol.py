"""The ESMTP server: protocol and factory, with pluggable policy and delivery targets.

One :class:`SMTPServerProtocol` per connection, built on
:class:`~netproto_twisted.core.lineproto.LineProtocol`: pipelined commands
are handled strictly one at a time and in order (input is paused while a
policy lookup, a SASL check or a commit is pending); DATA and BDAT are
streamed to the delivery sinks as they arrive (never held whole in memory);
``250`` after the data is said only when every sink's ``commit()`` fired.

Extensions: PIPELINING, 8BITMIME, SMTPUTF8, SIZE, CHUNKING (BDAT, BINARYMIME),
DSN (parameters kept in the :class:`~netproto_twisted.smtp.interfaces.Envelope`),
STARTTLS, AUTH (PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256), ENHANCEDSTATUSCODES.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.dotstuff import DotUnstuffer
from netproto_twisted.core.errors import LineTooLong
from netproto_twisted.core.framing import BareLineEnding, LineEndings
from netproto_twisted.core.lineproto import LineFactory
from netproto_twisted.core.passwords import IScramStore
from netproto_twisted.smtp._codes import (
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
    ES_DEST_ADDRESS_VALID,
    ES_INVALID_ARGUMENTS,
    ES_INVALID_COMMAND,
    ES_OTHER,
    ES_OTHER_ADDRESS,
    ES_SYNTAX_ERROR,
    ES_TOO_MANY_RECIPIENTS,
    EXPN,
    HELO,
    HELP,
    HELP_MESSAGE,
    INSUFFICIENT_STORAGE,
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
    SIZE,
    SMTPUTF8,
    START_INPUT,
    STARTTLS,
    SYNTAX_ERROR,
    VRFY,
)
from netproto_twisted.smtp._params import (
    Extensions,
    RcptTo,
    parse_mail_from,
    parse_rcpt_to,
)
from netproto_twisted.smtp._state import (
    EVENT_ABORT,
    EVENT_BDAT_LAST,
    EVENT_END_OF_DATA,
    State,
)
from netproto_twisted.smtp._trace import protocol_name, received_header
from netproto_twisted.smtp._wire import Command, Reply, parse_bdat, parse_command
from netproto_twisted.smtp.delivery import commit_all
from netproto_twisted.smtp.errors import CommandError
from netproto_twisted.smtp.interfaces import (
    Envelope,
    IDeliveryTarget,
    IRecipientPolicy,
)
from netproto_twisted.smtp.server.auth import AuthSession
from netproto_twisted.smtp.server.session import (
    _BYE,
    _ERR_AUTH_NEEDED,
    _ERR_BARE_LF,
    _ERR_LOCAL,
    _ERR_TLS_NEEDED,
    _ERR_TOO_BIG,
    _OK,
    BareLF,
    IAuthenticated,
    ServerSettings,
    Transaction,
    _reply,
    _serialized,
)

__all__ = [
    "BareLF",
    "IAuthenticated",
    "SMTPServerFactory",
    "SMTPServerProtocol",
    "ServerSettings",
]

_log = Logger(namespace="netproto.smtp.server")

# The replies every message gets, serialised once.
_WIRE_SENDER_OK = _serialized(OK, "Ok", ES_OTHER_ADDRESS)
_WIRE_RCPT_OK = _serialized(OK, "Ok", ES_DEST_ADDRESS_VALID)
_WIRE_GO_AHEAD = _serialized(START_INPUT, "End data with <CR><LF>.<CR><LF>", enhanced=False)
_WIRE_BYE = _BYE.to_bytes()


class SMTPServerProtocol(AuthSession):
    """One ESMTP server session (RFC 5321 with the extensions listed in the module docstring)."""

    factory: SMTPServerFactory

    def __init__(self) -> None:
        super().__init__()
        self._bdat_discard = False
        self._bdat_last = False
        self._advertised: frozenset[str] = frozenset()

    # -- line input ---------------------------------------------------------------------

    def line_received(self, line: bytes) -> None:
        """Handle one command line (or one SASL response)."""
        if self.session.state is State.AUTH:
            self._auth_line(line)
            return
        if self._rate_limited(line, self.line_received):
            return
        try:
            command = parse_command(line)
        except CommandError as e:
            self._error(e.reply)
            return
        refusal = self.session.refusal(command.verb)
        if refusal is not None:
            if command.verb == BDAT:
                self._bdat_refused(command, refusal)
                return
            self._error(refusal)
            return
        handler = self._handlers.get(command.verb)
        if handler is None:
            self._error(_reply(NOT_IMPLEMENTED, "Command not implemented", ES_INVALID_COMMAND))
            return
        handler(self, command)

    # -- simple commands ----------------------------------------------------------------

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
        if not self.is_secure and self.factory.tls is not None:
            keywords[STARTTLS] = ()
        mechanisms = self._mechanisms()
        if mechanisms and self.authenticated_as is None:
            keywords[AUTH] = tuple(mechanisms)
        for keyword in settings.extra_keywords:
            keywords[keyword.upper()] = ()
        return keywords

    def _ehlo(self, command: Command) -> None:
        self._reset_transaction()
        self.helo = command.argument
        self.session.advance(EHLO)
        keywords = self._keywords()
        self._advertised = frozenset(keywords)
        self._send_wire(
            _ehlo_reply(self.settings.hostname, command.argument, tuple(keywords.items()))
        )

    def _helo(self, command: Command) -> None:
        self._reset_transaction()
        self.helo = command.argument
        self._advertised = frozenset()
        self.session.advance(HELO)
        self._send_wire(_helo_reply(self.settings.hostname))

    def _noop(self, command: Command) -> None:
        self._send(_OK)

    def _rset(self, command: Command) -> None:
        self._reset_transaction()
        self.session.advance(RSET)
        self._send(_OK)

    def _quit(self, command: Command) -> None:
        self._send_wire(_WIRE_BYE)
        self.session.advance(QUIT)
        self._reset_transaction()
        self.transport.loseConnection()

    def _vrfy(self, command: Command) -> None:
        self._send(_reply(CANNOT_VRFY, "Cannot VRFY user; try RCPT", ES_OTHER))

    def _expn(self, command: Command) -> None:
        self._error(_reply(NOT_IMPLEMENTED, "EXPN not available", ES_INVALID_COMMAND))

    def _help(self, command: Command) -> None:
        text = "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH"
        self._send(_reply(HELP_MESSAGE, text, ES_OTHER))

    # -- STARTTLS -----------------------------------------------------------------------

    # -- AUTH ---------------------------------------------------------------------------

    # -- MAIL / RCPT --------------------------------------------------------------------

    def _mail(self, command: Command) -> None:
        settings = self.settings
        if settings.require_tls and not self.is_secure:
            self._error(_ERR_TLS_NEEDED)
            return
        if settings.require_auth and self.authenticated_as is None:
            self._error(_ERR_AUTH_NEEDED)
            return
        try:
            mail_from = parse_mail_from(
                command.argument, extensions=self._advertised, max_size=settings.max_size
            )
        except CommandError as e:
            self._error(e.reply)
            return
        if mail_from.body == BINARYMIME and not self.session.esmtp:
            self._error(_reply(PARAM_SYNTAX, "BINARYMIME needs EHLO", ES_INVALID_ARGUMENTS))
            return

        def checked(result: object) -> None:
            if isinstance(result, Failure):
                self._refused(result)
                return
            self._txn = Transaction(mail_from, info)
            self.session.advance(MAIL)
            self._send_wire(_WIRE_SENDER_OK)

        # What the policy sees cannot change within a transaction (EHLO, STARTTLS
        # and AUTH end it or are refused in it): one SessionInfo serves MAIL and RCPTs.
        info = self._session_info()
        self._after(self.factory.policy.check_sender(info, mail_from), checked)

    def _refused(self, failure: Failure) -> None:
        if isinstance(failure.value, CommandError):
            self._error(failure.value.reply)
            return
        _log.failure("recipient policy failed", failure)
        self._send(_ERR_LOCAL)

    def _rcpt(self, command: Command) -> None:
        txn = self._txn
        assert txn is not None
        if len(txn.recipients) >= self.settings.max_recipients:
            self._error(
                _reply(INSUFFICIENT_STORAGE, "Too many recipients", ES_TOO_MANY_RECIPIENTS)
            )
            return
        try:
            rcpt = parse_rcpt_to(
                command.argument, extensions=self._advertised, smtputf8=txn.mail_from.smtputf8
            )
        except CommandError as e:
            self._error(e.reply)
            return

        def routed(result: object) -> None:
            if isinstance(result, Failure):
                self._refused(result)
                return
            if self._txn is not txn:
                return  # the transaction ended meanwhile (cannot happen while paused)
            if not IDeliveryTarget.providedBy(result):
                _log.error("recipient policy returned a non-target: {r!r}", r=result)
                self._send(_ERR_LOCAL)
                return
            txn.recipients.append((rcpt, result))
            if self.session.state is State.MAIL:
                self.session.advance(RCPT)
            self._send_wire(_WIRE_RCPT_OK)

        self._after(self.factory.policy.route(txn.session_info, txn.mail_from, rcpt), routed)

    # -- the message --------------------------------------------------------------------

    def _open_sinks(self, txn: Transaction) -> bool:
        """Open one sink per target and write the Received header; False (and 451) on failure."""
        groups: dict[int, tuple[IDeliveryTarget, list[RcptTo]]] = {}
        for rcpt, target in txn.recipients:
            groups.setdefault(id(target), (target, []))[1].append(rcpt)
        envelope = Envelope(
            mail_from=txn.mail_from,
            recipients=tuple(r for r, _ in txn.recipients),
            helo=self.helo,
            peer=self.peer,
            authenticated_as=self.authenticated_as,
            tls=self.is_secure,
            received_at=txn.received_at,
            id=txn.id,
        )
        header = received_header(
            helo=self.helo,
            peer_ip=self.peer or None,
            by=self.settings.hostname,
            protocol=protocol_name(
                esmtp=self.session.esmtp,
                tls=self.is_secure,
                authenticated=self.authenticated_as is not None,
                smtputf8=txn.mail_from.smtputf8,
            ),
            queue_id=txn.id,
            date=datetime.fromtimestamp(txn.received_at, timezone.utc),
            recipients=[r.address for r in envelope.recipients],
        )
        waits: list[Deferred[Any]] = []
        try:
            for target, rcpts in groups.values():
                sink = target.open(envelope, rcpts)
                txn.sinks.append(sink)
                wait = sink.write(header)
                if wait is not None:
                    waits.append(wait)
        except Exception:
            _log.failure("opening a delivery target failed")
            txn.abort()
            return False
        self._wait_for_sinks(waits)
        txn.size = 0
        return True

    def _wait_for_sinks(self, waits: list[Deferred[Any]]) -> None:
        """Read no more input until every sink that asked to wait has caught up."""
        if waits:
            self._after(DeferredList(waits, consumeErrors=True), _ignore)

    def _write(self, txn: Transaction, data: bytes) -> None:
        if txn.failed is not None or not data:
            return
        txn.size += len(data)
        if txn.size > self.settings.max_size:
            txn.failed = _ERR_TOO_BIG
            txn.abort()
            return
        waits: list[Deferred[Any]] = []
        try:
            for sink in txn.sinks:
                wait = sink.write(data)
                if wait is not None:
                    waits.append(wait)
        except Exception:
            _log.failure("writing to a delivery target failed")
            txn.failed = _ERR_LOCAL
            txn.abort()
            return
        self._wait_for_sinks(waits)

    def _commit(self, txn: Transaction, event: str) -> None:
        """End of data: commit every sink, then 250 (all durable) or 451 (abort the rest)."""
        self._txn = None
        if txn.failed is not None:
            txn.abort()
            self.session.advance(event)
            self._error(txn.failed)
            return
        d = commit_all(txn.sinks)

        def committed(results: object) -> None:
            self.session.advance(event)
            if isinstance(results, Failure):
                _log.failure("committing a message failed", results)
                txn.abort()
                self._send(_reply(LOCAL_ERROR, "Error: local error in processing", "3.0"))
                return
            assert isinstance(results, list)
            ids = " ".join(results)
            sender = txn.mail_from.address
            count = len(txn.recipients)
            # One field to format (the text is built here, cheaply); the parts stay
            # in the event for structured observers.
            _log.info(
                "{accepted}",
                accepted=f"{txn.id}: accepted from=<{sender}> rcpts={count} "
                f"size={txn.size} stored={ids}",
                id=txn.id,
                sender=sender,
                count=count,
                size=txn.size,
                ids=ids,
            )
            # The id is hex: this is what _reply(...).to_bytes() would give, without the checks.
            self._send_wire(f"{OK} {OK // 100}.{ES_OTHER} Ok: queued as {txn.id}\r\n".encode())

        self._after(d, committed)

    def _data(self, command: Command) -> None:
        txn = self._txn
        assert txn is not None
        if not self._open_sinks(txn):
            self._txn = None
            self.session.advance(EVENT_ABORT)
            self._send(_ERR_LOCAL)
            return
        endings = (
            LineEndings.NORMALIZE if self.settings.bare_lf == "normalize" else LineEndings.STRICT
        )
        self._unstuffer = DotUnstuffer(
            endings=endings, max_line_length=self.settings.max_data_line_length
        )
        self.session.advance(DATA)
        self._send_wire(_WIRE_GO_AHEAD)
        self.set_raw_mode()

    def raw_data_received(self, data: bytes) -> None:
        """Stream DATA (dot-unstuffed) or a BDAT chunk to the sinks."""
        unstuffer = self._unstuffer
        txn = self._txn
        if unstuffer is None:  # BDAT chunk
            if txn is not None and not self._bdat_discard:
                self._write(txn, data)
            return
        try:
            payload = unstuffer.feed(data)
        except (BareLineEnding, LineTooLong) as e:
            payload = b""
            if txn is not None and txn.failed is None:
                txn.failed = (
                    _ERR_BARE_LF
                    if isinstance(e, BareLineEnding)
                    else _reply(SYNTAX_ERROR, "Message line too long", ES_SYNTAX_ERROR)
                )
                txn.abort()
        if txn is not None:
            if unstuffer.error is not None and txn.failed is None:
                txn.failed = (
                    _ERR_BARE_LF
                    if isinstance(unstuffer.error, BareLineEnding)
                    else _reply(SYNTAX_ERROR, "Message line too long", ES_SYNTAX_ERROR)
                )
                txn.abort()
            self._write(txn, payload)
        if unstuffer.done:
            self._unstuffer = None
            self.set_line_mode(unstuffer.rest())
            if txn is not None:
                self._commit(txn, EVENT_END_OF_DATA)

    # -- BDAT ---------------------------------------------------------------------------

    def _bdat_refused(self, command: Command, refusal: Reply) -> None:
        """A BDAT out of sequence: refuse it and discard its chunk."""
        try:
            size, _ = parse_bdat(command.argument)
        except CommandError as e:
            self._close(e.reply)  # the chunk's length is unknown: cannot resynchronise
            return
        self._error(refusal)
        self._bdat_discard = True
        self._bdat_last = False
        self.set_raw_mode(size)

    def _bdat(self, command: Command) -> None:
        txn = self._txn
        assert txn is not None
        try:
            size, last = parse_bdat(command.argument)
        except CommandError as e:
            self._close(e.reply)  # the chunk's length is unknown: cannot resynchronise
            return
        if self.session.state is State.RCPT:
            if not self._open_sinks(txn):
                txn.failed = _ERR_LOCAL
            self.session.advance(BDAT)
        self._bdat_discard = False
        self._bdat_last = last
        if txn.failed is None and txn.size + size > self.settings.max_size:
            txn.failed = _ERR_TOO_BIG
            txn.abort()
        self.set_raw_mode(size)

    def raw_data_complete(self) -> None:
        """A BDAT chunk has been read whole."""
        if self._bdat_discard:
            self._bdat_discard = False
            return
        txn = self._txn
        if txn is None:
            return
        if self._bdat_last:
            self._commit(txn, EVENT_BDAT_LAST)
            return
        if txn.failed is not None:
            # RFC 3030: a failed chunk ends the transaction; later chunks get 503.
            reply = txn.failed
            txn.abort()
            self._txn = None
            self.session.advance(EVENT_ABORT)
            self._error(reply)
            return
        self._send(_reply(OK, f"Ok: {txn.size} octets received", ES_OTHER), unique=True)

    # -- helpers ------------------------------------------------------------------------

    _handlers: dict[str, Callable[[SMTPServerProtocol, Command], None]] = {
        EHLO: _ehlo,
        HELO: _helo,
        MAIL: _mail,
        RCPT: _rcpt,
        DATA: _data,
        BDAT: _bdat,
        RSET: _rset,
        NOOP: _noop,
        QUIT: _quit,
        VRFY: _vrfy,
        EXPN: _expn,
        HELP: _help,
        STARTTLS: AuthSession._starttls,
        AUTH: AuthSession._auth,
    }


class SMTPServerFactory(LineFactory[SMTPServerProtocol]):
    """Builds :class:`SMTPServerProtocol` sessions sharing one policy, TLS context and Portal.

    :param reactor: the clock (and reactor) for timers.
    :param policy: the :class:`IRecipientPolicy` (sender checks and routing).
    :param settings: :class:`ServerSettings`.
    :param tls: server TLS options for STARTTLS, or ``None`` (not offered).
    :param portal: a Portal for AUTH (``None``: no AUTH).
    :param scram_store: needed to offer SCRAM-SHA-256.
    :param login_delay: the failed-AUTH delay per address (shared across listeners).
    """

    protocol = SMTPServerProtocol

    def __init__(
        self,
        reactor: IReactorTime,
        policy: IRecipientPolicy,
        settings: ServerSettings | None = None,
        *,
        tls: IOpenSSLServerConnectionCreator | Any | None = None,
        portal: Portal | None = None,
        scram_store: IScramStore | None = None,
        login_delay: LoginDelay | None = None,
    ) -> None:
        super().__init__(reactor)
        self.policy = policy
        self.settings = settings if settings is not None else ServerSettings()
        self.tls = tls
        self.portal = portal
        self.scram_store = scram_store
        self.login_delay = login_delay if login_delay is not None else LoginDelay(reactor)

    def __repr__(self) -> str:
        return f"<SMTPServerFactory {self.settings.hostname}>"


@functools.lru_cache(maxsize=64)
def _helo_reply(hostname: str) -> bytes:
    """The HELO reply's bytes (one per listener's host name)."""
    return Reply.make(OK, hostname).to_bytes(enhanced=False)


@functools.lru_cache(maxsize=256)
def _ehlo_reply(
    hostname: str, client: str, keywords: tuple[tuple[str, tuple[str, ...]], ...]
) -> bytes:
    """The EHLO reply's bytes; clients greet with the same few names, so they are remembered."""
    extensions = Extensions(hostname, dict(keywords))
    return extensions.to_reply(f"Hello {client}").to_bytes(enhanced=False)


def _ignore(result: object) -> None:
    """A sink's write error is reported by its commit; nothing to do when it drains."""

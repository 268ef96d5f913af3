"""STARTTLS and AUTH for the SMTP server session (RFC 3207, RFC 4954).

AUTH runs on core's SASL driver (:mod:`netproto_twisted.core.sasl_exchange`):
no mechanism is offered before TLS, except to loopback peers when
``allow_insecure_auth`` is set, and only those the password file can serve;
a check from a penalised address waits for its penalty first
(:class:`~netproto_twisted.core.access.LoginDelay`) and the session is
dropped after ``max_failed_logins``.  STARTTLS discards buffered plaintext
(:meth:`~netproto_twisted.core.lineproto.LineProtocol.start_tls`).
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from netproto_twisted.core.auth import UserNameRealm as SMTPRealm
from netproto_twisted.core.auth import password_portal, store_mechanisms
from netproto_twisted.core.passwords import PasswordFile
from netproto_twisted.core.sasl_exchange import (
    SMTP_FRAMING,
    Authenticated,
    Authenticator,
    FailureKind,
    Outcome,
    Refused,
    SASLExchange,
    SendChallenge,
)
from netproto_twisted.smtp._codes import (
    AUTH,
    AUTH_ENCRYPTION_REQUIRED,
    AUTH_FAILED,
    AUTH_OK,
    ES_AUTH_CREDENTIALS_INVALID,
    ES_ENCRYPTION_REQUIRED_FOR_MECHANISM,
    ES_INVALID_ARGUMENTS,
    ES_INVALID_COMMAND,
    ES_OTHER,
    ES_OTHER_PROTOCOL,
    ES_SECURITY_FEATURES_NOT_SUPPORTED,
    NOT_IMPLEMENTED,
    PARAM_NOT_IMPLEMENTED,
    PARAM_SYNTAX,
    SERVICE_READY,
    SERVICE_UNAVAILABLE,
    STARTTLS,
)
from netproto_twisted.smtp._state import (
    EVENT_AUTH_FAILED,
    EVENT_AUTH_SUCCEEDED,
    State,
)
from netproto_twisted.smtp._wire import Command, Reply, parse_auth
from netproto_twisted.smtp.errors import CommandError
from netproto_twisted.smtp.session import (
    _ERR_BARE_LF,
    _ERR_TOO_LONG,
    SessionBase,
    _reply,
)

__all__ = ["AuthSession", "SMTPRealm", "password_portal"]

#: Each factory's Authenticator, with what it was made from (rebuilt if that changes).
_AUTHENTICATORS: WeakKeyDictionary[object, tuple[tuple[object, ...], Authenticator]] = (
    WeakKeyDictionary()
)

_AUTH_FAILED = _reply(
    AUTH_FAILED, "Authentication credentials invalid", ES_AUTH_CREDENTIALS_INVALID
)
#: The reply to each way an exchange can end without a login.
_REFUSALS = {
    FailureKind.BAD_CREDENTIALS: _AUTH_FAILED,
    FailureKind.TOO_MANY_FAILURES: _AUTH_FAILED,
    FailureKind.CANCELLED: _reply(PARAM_SYNTAX, "Authentication cancelled", ES_OTHER_PROTOCOL),
    FailureKind.MALFORMED: _reply(PARAM_SYNTAX, "Malformed authentication response", "5.2"),
    FailureKind.UNDECODABLE: _reply(PARAM_SYNTAX, "Cannot decode response", ES_INVALID_ARGUMENTS),
    FailureKind.NOT_OFFERED: _reply(
        PARAM_NOT_IMPLEMENTED, "Unrecognized authentication type", ES_INVALID_ARGUMENTS
    ),
    FailureKind.ENCRYPTION_REQUIRED: _reply(
        AUTH_ENCRYPTION_REQUIRED,
        "Must issue a STARTTLS command first",
        ES_ENCRYPTION_REQUIRED_FOR_MECHANISM,
    ),
    FailureKind.TEMPORARY: _reply(454, "Temporary authentication failure", "7.0"),
}


class AuthSession(SessionBase):
    """A server session that can do STARTTLS and AUTH."""

    def line_too_long(self) -> None:
        """Reply ``500 5.5.2 Line too long`` and go on (the rest of the line is skipped)."""
        if self.session.state is State.AUTH:
            self._auth_done(_reply(PARAM_SYNTAX, "Authentication line too long", "5.6"))
            return
        self._error(_ERR_TOO_LONG)

    def bad_line_ending(self, line: bytes) -> None:
        """Reply ``500 5.5.2`` to a command with a bare CR or LF."""
        if self.session.state is State.AUTH:
            self._auth_done(_ERR_BARE_LF)
            return
        self._error(_ERR_BARE_LF)

    def _authenticator(self) -> Authenticator | None:
        """The listener's SASL policy (one per factory and settings), or None without a Portal."""
        factory = self.factory
        if factory.portal is None:
            return None
        settings = self.settings
        key = (factory.portal, factory.scram_store, factory.login_delay, settings)
        cached = _AUTHENTICATORS.get(factory)
        if cached is not None and all(a is b for a, b in zip(cached[0], key, strict=True)):
            return cached[1]
        store = factory.scram_store
        authenticator = Authenticator(
            factory.portal,
            factory.login_delay,
            scram_store=store,
            store_mechanisms=(
                (lambda: store_mechanisms(store)) if isinstance(store, PasswordFile) else None
            ),
            mechanisms=settings.auth_mechanisms,
            allow_insecure=settings.allow_insecure_auth,
            hostname=settings.hostname,
        )
        _AUTHENTICATORS[factory] = (key, authenticator)
        return authenticator

    def _exchange(self) -> SASLExchange | None:
        """This connection's SASL driver (made on first AUTH), or None without a Portal."""
        if self._sasl is None:
            authenticator = self._authenticator()
            if authenticator is None:
                return None
            self._sasl = authenticator.exchange(
                SMTP_FRAMING, peer=self.peer, peer_is_loopback=self.peer_is_loopback
            )
        return self._sasl

    def _mechanisms(self) -> list[str]:
        authenticator = self._authenticator()
        if authenticator is None:
            return []
        return authenticator.offered(secure=self.is_secure, peer_is_loopback=self.peer_is_loopback)

    def _starttls(self, command: Command) -> None:
        context = self.factory.tls
        if context is None:
            self._error(
                _reply(
                    NOT_IMPLEMENTED, "STARTTLS not available", ES_SECURITY_FEATURES_NOT_SUPPORTED
                )
            )
            return
        self._send(_reply(SERVICE_READY, "Ready to start TLS", ES_OTHER))
        self.session.advance(STARTTLS)
        self.start_tls(context, server=True)

    def _auth(self, command: Command) -> None:
        exchange = self._exchange()
        if exchange is None:
            self._error(_reply(NOT_IMPLEMENTED, "AUTH not available", ES_INVALID_COMMAND))
            return
        try:
            mechanism, initial = parse_auth(command.argument)
        except CommandError as e:
            self._error(e.reply)
            return
        wire = initial.encode("ascii", "replace") if initial else None
        self.session.advance(AUTH)
        self._after(exchange.start(mechanism, wire, secure=self.is_secure), self._auth_step)

    def _auth_line(self, line: bytes) -> None:
        exchange = self._sasl
        assert exchange is not None  # the AUTH state always has an exchange
        self._after(exchange.feed(line), self._auth_step)

    def _auth_step(self, outcome: Outcome) -> None:
        if isinstance(outcome, SendChallenge):
            # Written directly: "334 " keeps its space when empty, and is never wrapped.
            self.send_raw(outcome.line)
            return
        if isinstance(outcome, Authenticated):
            outcome.logout()
            self.authenticated_as = outcome.username
            self.session.advance(EVENT_AUTH_SUCCEEDED)
            self._send(_reply(AUTH_OK, "Authentication successful", "7.0"))
            return
        assert isinstance(outcome, Refused)
        reply = _REFUSALS[outcome.kind]
        if outcome.disconnect:
            self._send(reply)
            self._close(_reply(SERVICE_UNAVAILABLE, "Too many failed logins", "7.0"))
            return
        self._auth_done(reply)

    def _auth_done(self, reply: Reply) -> None:
        if self._sasl is not None:
            self._sasl.abort()
        if self.session.state is State.AUTH:
            self.session.advance(EVENT_AUTH_FAILED)
        self._error(reply)

"""AUTH for the SMTP server (RFC 4954), on core's SASL exchange driver.

The driver (:mod:`netproto_twisted.core.sasl_exchange`) decides what is
offered (no mechanism before TLS, except to loopback peers when
``allow_insecure_auth`` is set; only what the password file can serve; the
operator's ``--auth-mechanisms``), runs the exchange, and waits each
address's login penalty before every credential check.  This module is the
SMTP side of it, and the one place the server names the driver:
:func:`authenticator` builds the listener's
:class:`~netproto_twisted.core.sasl_exchange.Authenticator`, and
:class:`SMTPAuth` frames one connection's exchanges in SMTP (``334``
challenges, ``235``/``535``/``501``/``504``/``538``/``454`` results,
``421`` after too many failures).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.cred.portal import Portal

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.auth import UserNameRealm as SMTPRealm
from netproto_twisted.core.auth import password_portal, store_mechanisms
from netproto_twisted.core.passwords import IScramStore, PasswordFile
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
from netproto_twisted.smtp.errors import CommandError
from netproto_twisted.smtp.server.replies import ERR_BARE_LF, reply
from netproto_twisted.smtp.wire._codes import (
    AUTH_ENCRYPTION_REQUIRED,
    AUTH_FAILED,
    AUTH_OK,
    AUTH_TEMPORARY_FAILURE,
    ES_AUTH_CREDENTIALS_INVALID,
    ES_AUTH_LINE_TOO_LONG,
    ES_ENCRYPTION_REQUIRED_FOR_MECHANISM,
    ES_INVALID_ARGUMENTS,
    ES_OTHER_PROTOCOL,
    ES_OTHER_SECURITY,
    ES_SYNTAX_ERROR,
    PARAM_NOT_IMPLEMENTED,
    PARAM_SYNTAX,
    SERVICE_UNAVAILABLE,
)
from netproto_twisted.smtp.wire._syntax import Reply, parse_auth

if TYPE_CHECKING:
    from netproto_twisted.smtp.server.connection import SMTPConnection
    from netproto_twisted.smtp.server.settings import ServerSettings

__all__ = ["SMTPAuth", "SMTPRealm", "authenticator", "password_portal"]

_ERR_INVALID = reply(
    AUTH_FAILED, "Authentication credentials invalid", ES_AUTH_CREDENTIALS_INVALID
)
_ERR_TOO_LONG = reply(PARAM_SYNTAX, "Authentication line too long", ES_AUTH_LINE_TOO_LONG)
_ERR_TOO_MANY = reply(SERVICE_UNAVAILABLE, "Too many failed logins", ES_OTHER_SECURITY)
_OK = reply(AUTH_OK, "Authentication successful", ES_OTHER_SECURITY)

#: The reply to each way an exchange can end without a login.
_REFUSALS = {
    FailureKind.BAD_CREDENTIALS: _ERR_INVALID,
    FailureKind.TOO_MANY_FAILURES: _ERR_INVALID,
    FailureKind.CANCELLED: reply(PARAM_SYNTAX, "Authentication cancelled", ES_OTHER_PROTOCOL),
    FailureKind.MALFORMED: reply(
        PARAM_SYNTAX, "Malformed authentication response", ES_SYNTAX_ERROR
    ),
    FailureKind.UNDECODABLE: reply(PARAM_SYNTAX, "Cannot decode response", ES_INVALID_ARGUMENTS),
    FailureKind.NOT_OFFERED: reply(
        PARAM_NOT_IMPLEMENTED, "Unrecognized authentication type", ES_INVALID_ARGUMENTS
    ),
    FailureKind.ENCRYPTION_REQUIRED: reply(
        AUTH_ENCRYPTION_REQUIRED,
        "Must issue a STARTTLS command first",
        ES_ENCRYPTION_REQUIRED_FOR_MECHANISM,
    ),
    FailureKind.TEMPORARY: reply(
        AUTH_TEMPORARY_FAILURE, "Temporary authentication failure", ES_OTHER_SECURITY
    ),
}


def authenticator(
    portal: Portal,
    login_delay: LoginDelay,
    settings: ServerSettings,
    *,
    scram_store: IScramStore | None = None,
) -> Authenticator:
    """The listener's SASL policy: its portal, penalty, and the mechanisms it may offer."""
    store = scram_store
    return Authenticator(
        portal,
        login_delay,
        scram_store=store,
        store_mechanisms=(
            (lambda: store_mechanisms(store)) if isinstance(store, PasswordFile) else None
        ),
        mechanisms=settings.auth_mechanisms,
        allow_insecure=settings.allow_insecure_auth,
        hostname=settings.hostname,
    )


class SMTPAuth:
    """The AUTH command and its exchanges, for one :class:`SMTPConnection`."""

    def __init__(self, connection: SMTPConnection, authenticator: Authenticator) -> None:
        self._conn = connection
        self._authenticator = authenticator
        self._exchange: SASLExchange | None = None

    def _driver(self) -> SASLExchange:
        """This connection's driver, made at the first AUTH (most sessions never send one)."""
        if self._exchange is None:
            conn = self._conn
            self._exchange = self._authenticator.exchange(
                SMTP_FRAMING, peer=conn.peer, peer_is_loopback=conn.peer_is_loopback
            )
        return self._exchange

    def mechanisms(self) -> list[str]:
        """The mechanisms offered to this connection now."""
        conn = self._conn
        return self._authenticator.offered(
            secure=conn.session.tls, peer_is_loopback=conn.peer_is_loopback
        )

    def command(self, argument: str) -> None:
        """Handle ``AUTH mechanism [initial-response]``."""
        conn = self._conn
        try:
            mechanism, initial = parse_auth(argument)
        except CommandError as e:
            conn.error(e.reply)
            return
        wire = initial.encode("ascii", "replace") if initial else None
        conn.auth_started()
        conn.wait(self._driver().start(mechanism, wire, secure=conn.session.tls), self._step)

    def line(self, line: bytes) -> None:
        """A response line of the running exchange."""
        self._conn.wait(self._driver().feed(line), self._step)

    def line_too_long(self) -> None:
        """A response line over the limit ends the exchange."""
        self.done(_ERR_TOO_LONG)

    def bad_line_ending(self) -> None:
        """A response line with a bare CR or LF ends the exchange."""
        self.done(ERR_BARE_LF)

    def abort(self) -> None:
        """Drop the running exchange (connection lost); a pending check is withdrawn."""
        if self._exchange is not None:
            self._exchange.abort()

    def done(self, failure: Reply) -> None:
        """End the exchange unsuccessfully with ``failure``."""
        self.abort()
        self._conn.auth_failed(failure)

    def _step(self, outcome: Outcome | object) -> None:
        conn = self._conn
        if isinstance(outcome, SendChallenge):
            conn.send(outcome.line)  # already framed: "334 <b64>\r\n"
            return
        if isinstance(outcome, Authenticated):
            outcome.logout()
            conn.auth_succeeded(outcome.username, _OK)
            return
        assert isinstance(outcome, Refused), outcome  # the driver's Deferreds never fail
        failure = _REFUSALS[outcome.kind]
        if outcome.disconnect:
            conn.send_reply(failure)
            conn.close_with(_ERR_TOO_MANY)
            return
        conn.auth_failed(failure)

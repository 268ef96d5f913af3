"""AUTH for the SMTP server (RFC 4954): the realm, the SASL seam, and the exchange's replies.

No AUTH mechanism is offered before TLS, except to loopback peers when
``allow_insecure_auth`` is set; failed AUTH is delayed per address
(:class:`~netproto_twisted.core.access.LoginDelay`) and the session dropped
after ``max_failed_logins``.

The SASL machinery is reached through one seam, :class:`AuthBackend` (which
mechanisms can be offered; a new exchange per AUTH command, with ``start``,
``respond`` and ``abort``): :class:`SMTPAuth` frames the exchange in SMTP
(``334`` challenges, ``235``/``535`` results, ``*`` cancels) and knows
nothing else of SASL.  Moving to another SASL driver means another
:class:`AuthBackend`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.passwords import IScramStore, PasswordFile, PasswordFileChecker, Runner
from netproto_twisted.core.sasl import (
    SCRAM_SHA_256,
    AuthenticationCancelled,
    AuthenticationFailed,
    Challenge,
    SASLError,
    SASLServer,
    Success,
    decode_response,
    encode_challenge,
    server_mechanisms,
)
from netproto_twisted.smtp._codes import (
    AUTH_CONTINUE,
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
from netproto_twisted.smtp._wire import Reply, parse_auth
from netproto_twisted.smtp.errors import CommandError
from netproto_twisted.smtp.server.replies import ERR_BARE_LF, reply
from netproto_twisted.smtp.server.settings import IAuthenticated

if TYPE_CHECKING:
    from netproto_twisted.smtp.server.connection import SMTPConnection

__all__ = ["AuthBackend", "SASLExchange", "SMTPAuth", "SMTPRealm", "password_portal"]

_log = Logger(namespace="netproto.smtp.server")

_ERR_ENCRYPTION = reply(
    AUTH_ENCRYPTION_REQUIRED,
    "Must issue a STARTTLS command first",
    ES_ENCRYPTION_REQUIRED_FOR_MECHANISM,
)
_ERR_MECHANISM = reply(
    PARAM_NOT_IMPLEMENTED, "Unrecognized authentication type", ES_INVALID_ARGUMENTS
)
_ERR_DECODE = reply(PARAM_SYNTAX, "Cannot decode response", ES_INVALID_ARGUMENTS)
_ERR_CANCELLED = reply(PARAM_SYNTAX, "Authentication cancelled", ES_OTHER_PROTOCOL)
_ERR_TOO_LONG = reply(PARAM_SYNTAX, "Authentication line too long", ES_AUTH_LINE_TOO_LONG)
_ERR_MALFORMED = reply(PARAM_SYNTAX, "Malformed authentication response", ES_SYNTAX_ERROR)
_ERR_TEMPORARY = reply(
    AUTH_TEMPORARY_FAILURE, "Temporary authentication failure", ES_OTHER_SECURITY
)
_ERR_INVALID = reply(
    AUTH_FAILED, "Authentication credentials invalid", ES_AUTH_CREDENTIALS_INVALID
)
_ERR_TOO_MANY = reply(SERVICE_UNAVAILABLE, "Too many failed logins", ES_OTHER_SECURITY)
_OK = reply(AUTH_OK, "Authentication successful", ES_OTHER_SECURITY)


@implementer(IRealm)
class SMTPRealm:
    """A realm whose avatar for :class:`IAuthenticated` is the user name (str)."""

    def requestAvatar(
        self, avatarId: Any, mind: object, *interfaces: Any
    ) -> tuple[Any, object, Callable[[], None]]:
        """Return ``(IAuthenticated, name, logout)``."""
        if IAuthenticated not in interfaces:
            raise NotImplementedError("SMTPRealm only provides IAuthenticated")
        name = avatarId.decode("utf-8") if isinstance(avatarId, bytes) else str(avatarId)
        return IAuthenticated, name, lambda: None


def password_portal(password_file: PasswordFile, runner: Runner) -> Portal:
    """Return a Portal checking the foundation's password file (PLAIN/LOGIN, CRAM-MD5, SCRAM)."""
    return Portal(SMTPRealm(), [PasswordFileChecker(password_file, runner)])


class SASLExchange(Protocol):
    """One SASL exchange, as SMTP AUTH drives it (what the seam hands out)."""

    def start(self, initial_response: bytes | None) -> Deferred[Challenge | Success]:
        """Begin, with the client's initial response if it sent one."""

    def respond(self, data: bytes) -> Deferred[Challenge | Success]:
        """The client's response to the last challenge."""

    def abort(self) -> None:
        """End the exchange early (cancelled, failed, connection lost)."""


class AuthBackend:
    """The seam between SMTP AUTH and the SASL machinery (one per listener).

    :param portal: checks the credentials; its realm must provide :class:`IAuthenticated`.
    :param scram_store: needed to offer SCRAM-SHA-256.
    :param login_delay: the failed-AUTH delay per address.
    :param hostname: the server's name (CRAM-MD5 challenges).
    """

    def __init__(
        self,
        portal: Portal,
        *,
        scram_store: IScramStore | None,
        login_delay: LoginDelay,
        hostname: str,
    ) -> None:
        self.portal = portal
        self.scram_store = scram_store
        self.login_delay = login_delay
        self.hostname = hostname

    def mechanisms(self, *, secure: bool, allow_insecure: bool, loopback: bool) -> list[str]:
        """The mechanisms to offer now (none before TLS unless allowed for loopback)."""
        if not secure and not (allow_insecure and loopback):
            return []
        names = server_mechanisms(
            secure=secure, allow_plaintext_insecure=allow_insecure, peer_is_loopback=loopback
        )
        if self.scram_store is None:
            names = [n for n in names if n != SCRAM_SHA_256]
        return names

    def exchange(self, mechanism: str) -> SASLExchange:
        """A new exchange for ``mechanism`` (one of :meth:`mechanisms`)."""
        return SASLServer(
            mechanism,
            self.portal,
            [IAuthenticated],
            scram_store=self.scram_store,
            hostname=self.hostname,
            final_as_challenge=True,
        )


class SMTPAuth:
    """The AUTH command and its exchange, for one :class:`SMTPConnection`."""

    def __init__(self, connection: SMTPConnection, backend: AuthBackend) -> None:
        self._conn = connection
        self._backend = backend
        self._exchange: SASLExchange | None = None
        self._failures = 0

    def mechanisms(self) -> list[str]:
        """The mechanisms offered to this connection now."""
        conn = self._conn
        return self._backend.mechanisms(
            secure=conn.session.tls,
            allow_insecure=conn.settings.allow_insecure_auth,
            loopback=conn.peer_is_loopback,
        )

    def command(self, argument: str) -> None:
        """Handle ``AUTH mechanism [initial-response]``."""
        conn = self._conn
        try:
            mechanism, initial = parse_auth(argument)
        except CommandError as e:
            conn.error(e.reply)
            return
        offered = self.mechanisms()
        if not offered:
            conn.error(_ERR_ENCRYPTION)
            return
        if mechanism not in offered:
            conn.error(_ERR_MECHANISM)
            return
        try:
            initial_bytes = decode_response(initial.encode("ascii")) if initial else None
        except SASLError:
            conn.error(_ERR_DECODE)
            return
        self._exchange = self._backend.exchange(mechanism)
        conn.auth_started()
        conn.wait(self._exchange.start(initial_bytes), self._step)

    def line(self, line: bytes) -> None:
        """A response line of the exchange."""
        exchange = self._exchange
        if exchange is None:  # pragma: no cover - the AUTH state always has an exchange
            self.done(reply(PARAM_SYNTAX, "No exchange", ES_OTHER_PROTOCOL))
            return
        try:
            data = decode_response(line)
        except AuthenticationCancelled:
            self.done(_ERR_CANCELLED)
            return
        except SASLError:
            self.done(_ERR_DECODE)
            return
        self._conn.wait(exchange.respond(data), self._step)

    def line_too_long(self) -> None:
        """A response line over the limit ends the exchange."""
        self.done(_ERR_TOO_LONG)

    def bad_line_ending(self) -> None:
        """A response line with a bare CR or LF ends the exchange."""
        self.done(ERR_BARE_LF)

    def abort(self) -> None:
        """Drop the exchange (connection lost)."""
        exchange, self._exchange = self._exchange, None
        if exchange is not None:
            exchange.abort()

    def _step(self, result: Challenge | Success | Failure) -> None:
        conn = self._conn
        if isinstance(result, Challenge):
            # Written directly: "334 " keeps its space when empty, and is never wrapped.
            conn.send(b"%d %s\r\n" % (AUTH_CONTINUE, encode_challenge(result.data)))
            return
        if isinstance(result, Success):
            result.logout()
            self._exchange = None
            self._backend.login_delay.succeeded(conn.peer or "unix")
            conn.auth_succeeded(result.username, _OK)
            _log.info(
                "AUTH succeeded for {user} from {peer}", user=result.username, peer=conn.peer
            )
            return
        if result.check(UnauthorizedLogin, AuthenticationFailed):
            self._failed()
            return
        if result.check(SASLError):
            self.done(_ERR_MALFORMED)
            return
        _log.failure("AUTH exchange failed", result)
        self.done(_ERR_TEMPORARY)

    def done(self, failure: Reply) -> None:
        """End the exchange unsuccessfully with ``failure``."""
        self.abort()
        self._conn.auth_failed(failure)

    def _failed(self) -> None:
        conn = self._conn
        host = conn.peer or "unix"
        delay = self._backend.login_delay
        delay.failed(host)
        self._failures += 1
        _log.info("AUTH failed from {peer}", peer=conn.peer)

        def answer(_: object) -> None:
            if delay.should_disconnect(self._failures):
                self.abort()
                conn.send_reply(_ERR_INVALID)
                conn.close_with(_ERR_TOO_MANY)
                return
            self.done(_ERR_INVALID)

        conn.wait(delay.delay(host), answer)

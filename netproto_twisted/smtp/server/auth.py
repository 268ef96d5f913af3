"""STARTTLS and AUTH for the SMTP server session (RFC 3207, RFC 4954).

No AUTH mechanism is offered before TLS, except to loopback peers when
``allow_insecure_auth`` is set; failed AUTH is delayed per address
(:class:`~netproto_twisted.core.access.LoginDelay`) and the session dropped
after ``max_failed_logins``.  STARTTLS discards buffered plaintext
(:meth:`~netproto_twisted.core.lineproto.LineProtocol.start_tls`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from netproto_twisted.core.passwords import PasswordFile, PasswordFileChecker, Runner
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
    AUTH,
    AUTH_CONTINUE,
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
from netproto_twisted.smtp.server.session import (
    _ERR_BARE_LF,
    _ERR_LOCAL,
    _ERR_TOO_LONG,
    IAuthenticated,
    SessionBase,
    _reply,
)

__all__ = ["AuthSession", "SMTPRealm", "password_portal"]

_log = Logger(namespace="netproto.smtp.server")


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


class AuthSession(SessionBase):
    """A server session that can do STARTTLS and AUTH."""

    def __init__(self) -> None:
        super().__init__()
        self._auth_failures = 0

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

    def _mechanisms(self) -> list[str]:
        factory = self.factory
        if factory.portal is None:
            return []
        if not self.is_secure and not (
            self.settings.allow_insecure_auth and self.peer_is_loopback
        ):
            return []
        names = server_mechanisms(
            secure=self.is_secure,
            allow_plaintext_insecure=self.settings.allow_insecure_auth,
            peer_is_loopback=self.peer_is_loopback,
        )
        if factory.scram_store is None:
            names = [n for n in names if n != SCRAM_SHA_256]
        return names

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
        factory = self.factory
        if factory.portal is None:
            self._error(_reply(NOT_IMPLEMENTED, "AUTH not available", ES_INVALID_COMMAND))
            return
        try:
            mechanism, initial = parse_auth(command.argument)
        except CommandError as e:
            self._error(e.reply)
            return
        offered = self._mechanisms()
        if not offered:
            self._error(
                _reply(
                    AUTH_ENCRYPTION_REQUIRED,
                    "Must issue a STARTTLS command first",
                    ES_ENCRYPTION_REQUIRED_FOR_MECHANISM,
                )
            )
            return
        if mechanism not in offered:
            self._error(
                _reply(
                    PARAM_NOT_IMPLEMENTED, "Unrecognized authentication type", ES_INVALID_ARGUMENTS
                )
            )
            return
        try:
            initial_bytes = decode_response(initial.encode("ascii")) if initial else None
        except SASLError:
            self._error(_reply(PARAM_SYNTAX, "Cannot decode response", ES_INVALID_ARGUMENTS))
            return
        self._sasl = SASLServer(
            mechanism,
            factory.portal,
            [IAuthenticated],
            scram_store=factory.scram_store,
            hostname=self.settings.hostname,
            final_as_challenge=True,
        )
        self.session.advance(AUTH)
        self._after(self._sasl.start(initial_bytes), self._auth_step)

    def _auth_line(self, line: bytes) -> None:
        sasl = self._sasl
        if sasl is None:  # pragma: no cover - AUTH state always has an exchange
            self._auth_done(_ERR_LOCAL)
            return
        try:
            data = decode_response(line)
        except AuthenticationCancelled:
            self._auth_done(_reply(PARAM_SYNTAX, "Authentication cancelled", ES_OTHER_PROTOCOL))
            return
        except SASLError:
            self._auth_done(_reply(PARAM_SYNTAX, "Cannot decode response", ES_INVALID_ARGUMENTS))
            return
        self._after(sasl.respond(data), self._auth_step)

    def _auth_step(self, result: Challenge | Success | Failure) -> None:
        if isinstance(result, Challenge):
            # Written directly: "334 " keeps its space when empty, and is never wrapped.
            self.send_raw(b"%d %s\r\n" % (AUTH_CONTINUE, encode_challenge(result.data)))
            return
        if isinstance(result, Success):
            result.logout()
            self.authenticated_as = result.username
            self.factory.login_delay.succeeded(self.peer or "unix")
            self._sasl = None
            self.session.advance(EVENT_AUTH_SUCCEEDED)
            self._send(_reply(AUTH_OK, "Authentication successful", "7.0"))
            _log.info(
                "AUTH succeeded for {user} from {peer}", user=result.username, peer=self.peer
            )
            return
        if result.check(UnauthorizedLogin, AuthenticationFailed):
            self._auth_failed()
            return
        if result.check(SASLError):
            self._auth_done(_reply(PARAM_SYNTAX, "Malformed authentication response", "5.2"))
            return
        _log.failure("AUTH exchange failed", result)
        self._auth_done(_reply(454, "Temporary authentication failure", "7.0"))

    def _auth_done(self, reply: Reply) -> None:
        if self._sasl is not None:
            self._sasl.abort()
            self._sasl = None
        if self.session.state is State.AUTH:
            self.session.advance(EVENT_AUTH_FAILED)
        self._error(reply)

    def _auth_failed(self) -> None:
        host = self.peer or "unix"
        delay = self.factory.login_delay
        delay.failed(host)
        self._auth_failures += 1
        _log.info("AUTH failed from {peer}", peer=self.peer)
        reply = _reply(
            AUTH_FAILED, "Authentication credentials invalid", ES_AUTH_CREDENTIALS_INVALID
        )

        def answer(_: object) -> None:
            if delay.should_disconnect(self._auth_failures):
                if self._sasl is not None:
                    self._sasl.abort()
                    self._sasl = None
                self._send(reply)
                self._close(_reply(SERVICE_UNAVAILABLE, "Too many failed logins", "7.0"))
                return
            self._auth_done(reply)

        self._after(delay.delay(host), answer)

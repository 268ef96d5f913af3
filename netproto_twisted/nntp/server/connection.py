"""The NNTP server session as a sans-I/O connection object.

:class:`NNTPConnection` is one session: the reader commands
(:class:`~netproto_twisted.nntp.server.reader.ReaderCommands`), posting and
feeding (:class:`~netproto_twisted.nntp.server.feed.FeedCommands`), and here
CAPABILITIES, HELP, STARTTLS (RFC 4642), AUTHINFO USER/PASS and SASL
(RFC 4643, through core's SASL driver with ``383`` challenges and the
failed-login penalty) and QUIT.  It dispatches through
:data:`~netproto_twisted.nntp.server.commands.NNTP_COMMANDS`; a test drives
it with bytes through :class:`~netproto_twisted.core.connection.ConnectionDriver`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.core.commands import CommandTable, Refusal, RefusalKind
from netproto_twisted.core.sasl_exchange import (
    NNTP_FRAMING,
    Authenticated,
    FailureKind,
    Outcome,
    Refused,
    SASLExchange,
    SendChallenge,
)
from netproto_twisted.nntp._wire import Code, CommandSyntaxError, block, parse_command, status
from netproto_twisted.nntp.server.commands import NNTP_COMMANDS, State
from netproto_twisted.nntp.server.extensions import LIST_KEYWORDS, ExtensionCommands
from netproto_twisted.nntp.server.feed import FeedCommands

__all__ = ["NNTPConnection"]

_log = Logger(namespace="netproto.nntp.server")

_Handler = Callable[["NNTPConnection", Any], None]

_REFUSAL_CODES = {
    RefusalKind.UNKNOWN: Code.UNKNOWN,
    RefusalKind.BAD_SEQUENCE: Code.NOT_PERMITTED,
    RefusalKind.ARGUMENT: Code.SYNTAX,
    RefusalKind.AUTH_REQUIRED: Code.AUTH_REQUIRED,
    RefusalKind.TLS_REQUIRED: Code.ENCRYPTION_REQUIRED,
}
_LIST_CAPABILITY = "LIST " + LIST_KEYWORDS
_SASL_REPLIES: dict[FailureKind, tuple[int, str]] = {
    FailureKind.BAD_CREDENTIALS: (Code.AUTH_FAILED, "authentication failed"),
    FailureKind.TOO_MANY_FAILURES: (Code.AUTH_FAILED, "authentication failed"),
    FailureKind.CANCELLED: (Code.AUTH_FAILED, "authentication cancelled"),
    FailureKind.MALFORMED: (Code.AUTH_SEQUENCE, "malformed authentication exchange"),
    FailureKind.UNDECODABLE: (Code.BASE64, "response is not base64"),
    FailureKind.NOT_OFFERED: (Code.NOT_SUPPORTED, "mechanism not available"),
    FailureKind.ENCRYPTION_REQUIRED: (Code.ENCRYPTION_REQUIRED, "authentication needs TLS"),
    FailureKind.TEMPORARY: (Code.FAULT, "authentication temporarily unavailable"),
}


class NNTPConnection(ExtensionCommands, FeedCommands):
    """One NNTP server session, sans-I/O (see the module docstring and :class:`SessionBase`)."""

    commands: CommandTable[State, _Handler]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        authenticator = self.authenticator
        self.sasl: SASLExchange | None = (
            authenticator.exchange(
                NNTP_FRAMING, peer=self.peer, peer_is_loopback=self.peer_is_loopback
            )
            if authenticator is not None
            else None
        )
        self._pending_user: str | None = None
        #: A password check waiting its turn.
        self._check: Deferred[Authenticated | Refused] | None = None
        self._logout: Callable[[], None] | None = None
        settings = self.settings
        if settings.allow_posting:
            self.reply(Code.READY_POSTING, f"{settings.hostname} NNTP server ready, posting ok")
        else:
            self.reply(Code.READY_NO_POSTING, f"{settings.hostname} NNTP server ready, no posting")

    @property
    def plaintext_allowed(self) -> bool:
        """Whether AUTHINFO may be used now: TLS, or an allowed loopback peer."""
        return self.secure or (self.settings.allow_insecure_auth and self.peer_is_loopback)

    # -- input -------------------------------------------------------------------------------

    def line_received(self, line: bytes) -> None:
        """A command line (or a SASL response line during AUTHINFO SASL)."""
        if self.closing:
            return
        sasl = self.sasl
        if sasl is not None and sasl.active:
            self.wait(sasl.feed(line), self._sasl_step)
            return
        try:
            verb, argument = parse_command(line)
        except CommandSyntaxError as e:
            self.error(Code.UNKNOWN, str(e))
            return
        refusal = self.commands.dispatch(
            self, verb, argument, State.READY, authenticated=self.username is not None,
            secure=self.secure,
        )  # fmt: skip
        if refusal is not None:
            self._refused(refusal)

    def _refused(self, refusal: Refusal) -> None:
        self.error(_REFUSAL_CODES[refusal.kind], refusal.text)

    def line_too_long(self) -> None:
        """An over-long command line: 501 (it was skipped)."""
        if self.sasl is not None and self.sasl.active:
            self.sasl.abort()
        self.error(Code.SYNTAX, "line too long")

    def bad_line_ending(self, line: bytes) -> None:
        """A bare CR in a command line."""
        if self.sasl is not None and self.sasl.active:
            self.sasl.abort()
        self.error(Code.UNKNOWN, "bare CR in command")

    def timeout(self) -> None:
        """Idle too long: 400 and close."""
        self.reply(Code.UNAVAILABLE, "idle for too long, closing")
        self.close()

    def connection_lost(self) -> None:
        """Gone: abort AUTHINFO, cancel a waiting password check, log out."""
        super().connection_lost()
        if self.sasl is not None:
            self.sasl.abort()
        check, self._check = self._check, None
        if check is not None:
            check.cancel()
        logout, self._logout = self._logout, None
        if logout is not None:
            logout()

    # -- session commands -------------------------------------------------------------------

    def capabilities(self, _: str) -> None:
        """``CAPABILITIES``: what this session may use now."""
        lines = ["VERSION 2", "READER"]
        if self.settings.implementation:
            lines.append("IMPLEMENTATION " + self.settings.implementation)
        if self.settings.allow_posting:
            lines.append("POST")
        lines += ["IHAVE", "STREAMING", "NEWNEWS", "OVER MSGID", "HDR", _LIST_CAPABILITY]
        if self.compression_offered:
            lines.append("COMPRESS DEFLATE")
        # RFC 8054: neither TLS nor a login once COMPRESS is active.
        may_secure = self.username is None and not self.compressed
        if self.tls is not None and not self.secure and may_secure:
            lines.append("STARTTLS")
        if may_secure and self.authenticator is not None:
            mechanisms = self.sasl.mechanisms(secure=self.secure) if self.sasl else []
            words = (["USER"] if self.plaintext_allowed else []) + (["SASL"] if mechanisms else [])
            if words:
                lines.append("AUTHINFO " + " ".join(words))
            if mechanisms:
                lines.append("SASL " + " ".join(mechanisms))
        self.send(block(status(Code.CAPABILITIES, "capability list follows"), lines))

    def help(self, _: str) -> None:
        """``HELP``."""
        self.send(block(status(Code.HELP, "help text follows"), self.commands.help_lines()))

    def quit(self, _: str) -> None:
        """``QUIT``: 205 after every reply still pending, then close."""
        if self.replies_pending:
            self.wait(self.drained(), lambda _: self.quit(""))
            return
        self.reply(Code.CLOSING, "bye")
        self.close()

    def starttls(self, _: str) -> None:
        """``STARTTLS``: 382, then TLS; the session starts over (RFC 4642 2.2.2)."""
        self.reply(Code.CONTINUE_TLS, "continue with TLS negotiation")
        self.start_tls(self.tls)
        self.secure = True
        self._pending_user = None
        self.streaming = False
        self.group_name = None
        self.article_number = None

    # -- AUTHINFO --------------------------------------------------------------------------

    def authinfo(self, argument: str) -> None:
        """``AUTHINFO USER name``, ``AUTHINFO PASS password``, ``AUTHINFO SASL mech [ir]``."""
        which, _, rest = argument.partition(" ")
        which = which.upper()
        if self.authenticator is None:
            self.reply(Code.NOT_PERMITTED, "no logins on this server")
            return
        if which in ("USER", "PASS"):
            if not self.plaintext_allowed:
                self.reply(Code.ENCRYPTION_REQUIRED, "encryption required (STARTTLS)")
            elif not rest:
                self.error(Code.SYNTAX, f"AUTHINFO {which} needs an argument")
            elif which == "USER":
                self._pending_user = rest
                self.reply(Code.PASSWORD, "enter password")
            else:
                self._password(rest)
        elif which == "SASL":
            mechanism, _, initial = rest.partition(" ")
            if not mechanism:
                self.error(Code.SYNTAX, "AUTHINFO SASL needs a mechanism")
                return
            assert self.sasl is not None
            ir = initial.encode("ascii", "replace") or None
            self.wait(self.sasl.start(mechanism.upper(), ir, secure=self.secure), self._sasl_step)
        else:
            self.error(Code.SYNTAX, "AUTHINFO USER, PASS or SASL")

    def _password(self, password: str) -> None:
        name, self._pending_user = self._pending_user, None
        if name is None:
            self.reply(Code.AUTH_SEQUENCE, "AUTHINFO USER first")
            return
        assert self.sasl is not None
        d = self.sasl.check_password(name, password)
        self._check = d
        self.wait(d, self._password_checked)

    def _password_checked(self, outcome: Authenticated | Refused | Failure) -> None:
        self._check = None
        if isinstance(outcome, Authenticated):
            self._logged_in(outcome.username, outcome.logout)
        elif isinstance(outcome, Failure):  # pragma: no cover - the check never fails
            _log.failure("password check failed", outcome)
            self.reply(Code.FAULT, "authentication temporarily unavailable")
        elif outcome.kind is FailureKind.CANCELLED:
            return  # the connection went away while the check waited its turn
        elif outcome.kind is FailureKind.TEMPORARY:
            self.reply(Code.FAULT, "authentication temporarily unavailable")
        else:
            self.reply(Code.AUTH_FAILED, "authentication failed")
            if outcome.disconnect:
                self.reply(Code.UNAVAILABLE, "too many failed logins, closing")
                self.close()

    def _sasl_step(self, outcome: Outcome | Failure) -> None:
        if isinstance(outcome, SendChallenge):
            self.send(outcome.line)
        elif isinstance(outcome, Authenticated):
            self._logged_in(outcome.username, outcome.logout)
        elif isinstance(outcome, Refused):
            code, text = _SASL_REPLIES[outcome.kind]
            self.reply(code, text)
            if outcome.disconnect:
                self.reply(Code.UNAVAILABLE, "too many failed logins, closing")
                self.close()
        else:  # pragma: no cover - the driver never fails
            _log.failure("SASL exchange failed", outcome)
            self.reply(Code.FAULT, "authentication temporarily unavailable")

    def _logged_in(self, user: str, logout: Callable[[], None]) -> None:
        self.username = user
        self._logout = logout
        _log.info("{user} logged in from {peer}", user=user, peer=self.peer or "unix")
        self.reply(Code.AUTH_OK, "authentication accepted")


NNTPConnection.commands = NNTP_COMMANDS.bind(
    {
        "CAPABILITIES": NNTPConnection.capabilities,
        "MODE": NNTPConnection.mode,
        "GROUP": NNTPConnection.group,
        "LISTGROUP": NNTPConnection.listgroup,
        "LAST": NNTPConnection.last,
        "NEXT": NNTPConnection.next,
        "ARTICLE": NNTPConnection.article,
        "HEAD": NNTPConnection.head,
        "BODY": NNTPConnection.body,
        "STAT": NNTPConnection.stat,
        "POST": NNTPConnection.post,
        "IHAVE": NNTPConnection.ihave,
        "CHECK": NNTPConnection.check,
        "TAKETHIS": NNTPConnection.takethis,
        "NEWGROUPS": NNTPConnection.newgroups,
        "NEWNEWS": NNTPConnection.newnews,
        "DATE": NNTPConnection.date,
        "HELP": NNTPConnection.help,
        "LIST": NNTPConnection.list,
        "OVER": NNTPConnection.over,
        "XOVER": NNTPConnection.over,
        "HDR": NNTPConnection.hdr,
        "XHDR": NNTPConnection.xhdr,
        "XPAT": NNTPConnection.xpat,
        "STARTTLS": NNTPConnection.starttls,
        "AUTHINFO": NNTPConnection.authinfo,
        "COMPRESS": NNTPConnection.compress,
        "QUIT": NNTPConnection.quit,
    }
)

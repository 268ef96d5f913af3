"""The IMAP server session as a sans-I/O connection object: framing, literals, login, dispatch.

:class:`IMAPConnection` is one session (RFC 3501 / RFC 9051).  It is fed
lines and raw runs by :class:`~netproto_twisted.imap4.server.protocol.IMAPServerProtocol`
(or by a test through :class:`~netproto_twisted.core.connection.ConnectionDriver`)
and decides the framing itself:

- a line ending in a literal marker (``{n}``, ``{n+}``) switches to a
  counted run of ``n`` octets, after checking ``n``: negative or absurd
  sizes are a ``BAD`` at once; a literal over its limit (before login:
  :attr:`IMAPSettings.preauth_literal`; APPEND's message:
  :attr:`IMAPSettings.append_limit`; anything else:
  :attr:`IMAPSettings.max_literal`) gets ``NO [TOOBIG]``/``BAD`` instead of the
  ``+`` go-ahead, or, if the client did not wait (LITERAL+), is read and
  dropped up to :attr:`IMAPSettings.discard_limit`, beyond which the session ends;
- APPEND's message literal is never held in memory: it goes to the store's
  append writer as it arrives (with backpressure), and is committed only
  when the whole command parsed; a parse error or a lost connection aborts
  the writer, so no partial message ever appears;
- a complete command is parsed (:func:`~netproto_twisted.imap4.wire.parse_command`);
  a syntax error is a tagged ``BAD`` and the session goes on.

The command handlers are in :mod:`~netproto_twisted.imap4.server.mailboxes`
and :mod:`~netproto_twisted.imap4.server.selected`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.core.commands import CommandTable, Refusal, RefusalKind
from netproto_twisted.core.sasl_exchange import (
    IMAP_FRAMING,
    Authenticated,
    Authenticator,
    FailureKind,
    Outcome,
    Refused,
    SendChallenge,
)
from netproto_twisted.imap4.server.commands import IMAP_COMMANDS, State
from netproto_twisted.imap4.server.fetch import MessageCache
from netproto_twisted.imap4.server.mailboxes import MailboxCommands
from netproto_twisted.imap4.server.notify import ChangeHub
from netproto_twisted.imap4.server.prefetch import Prefetcher
from netproto_twisted.imap4.server.selected import SelectedCommands
from netproto_twisted.imap4.server.settings import IMAPSettings
from netproto_twisted.imap4.wire.commands import Request, append_prefix, parse_command
from netproto_twisted.imap4.wire.serialise import continuation, quote, status_line
from netproto_twisted.imap4.wire.tokens import (
    CommandSyntaxError,
    LiteralMarker,
    StreamedLiteral,
    literal_marker,
)
from netproto_twisted.mailstore.errors import InvalidName, NoSuchMailbox
from netproto_twisted.mailstore.interfaces import IAppendWriter
from netproto_twisted.mailstore.maildir import MaildirStore

__all__ = ["IMAPConnection"]

_log = Logger(namespace="netproto.imap4.server")
_Handler = Callable[["IMAPConnection", Request], None]
_TAG = re.compile(rb"[!#$&'+,\-./0-9:;<=>?@A-Z^_`a-z|}~]{1,64}(?= )")
_PLACEHOLDER = object()

_SASL_REPLIES: dict[FailureKind, tuple[str, str, str | None]] = {
    FailureKind.BAD_CREDENTIALS: ("NO", "authentication failed", "AUTHENTICATIONFAILED"),
    FailureKind.TOO_MANY_FAILURES: ("NO", "authentication failed", "AUTHENTICATIONFAILED"),
    FailureKind.CANCELLED: ("BAD", "authentication cancelled", None),
    FailureKind.MALFORMED: ("BAD", "malformed authentication exchange", None),
    FailureKind.UNDECODABLE: ("BAD", "response is not base64", None),
    FailureKind.NOT_OFFERED: ("NO", "mechanism not available", None),
    FailureKind.ENCRYPTION_REQUIRED: ("NO", "authentication needs TLS first", "PRIVACYREQUIRED"),
    FailureKind.TEMPORARY: ("NO", "authentication temporarily unavailable", "UNAVAILABLE"),
}


@dataclass
class _Literal:
    """A literal being received."""

    size: int
    tag: str
    writer: IAppendWriter | None = None
    buffer: bytearray | None = None
    #: Dropped as it comes (over its limit, or its APPEND is refused); then this reply.
    refusal: bytes | None = None


class IMAPConnection(MailboxCommands, SelectedCommands):
    """One IMAP server session, sans-I/O (see the module docstring).

    :param settings: the listener's :class:`IMAPSettings`.
    :param store: the users' Maildir++ trees.
    :param hub: change notification shared by the sessions of the process.
    :param cache: message facts shared by the sessions of the process.
    :param peer: the peer's IP address text (``""`` for a unix socket).
    :param peer_is_loopback: whether the peer is on this host.
    :param secure: whether TLS is already on (implicit TLS).
    :param tls: the server TLS context for STARTTLS, or ``None`` (not offered).
    :param authenticator: checks logins; ``None``: nobody can log in.
    :param consumer: the transport's consumer (a
        :class:`~netproto_twisted.core.connection.ReplyConsumer`): FETCH is paced
        by its backpressure and streams large literals to it; ``None``: each
        batch is sent whole as it is built.
    """

    commands: CommandTable[State, _Handler]

    def __init__(
        self,
        settings: IMAPSettings,
        store: MaildirStore,
        hub: ChangeHub,
        cache: MessageCache,
        *,
        peer: str = "",
        peer_is_loopback: bool = False,
        secure: bool = False,
        tls: object | None = None,
        authenticator: Authenticator | None = None,
        consumer: IConsumer | None = None,
        prefetcher: Prefetcher | None = None,
    ) -> None:
        super().__init__()
        self.consumer = consumer
        self.prefetcher = prefetcher
        self.settings = settings
        self.store = store
        self.hub = hub
        self.cache = cache
        self.peer = peer
        self.peer_is_loopback = peer_is_loopback
        self.secure = secure
        self.tls = tls
        self.authenticator = authenticator
        self.sasl = (
            authenticator.exchange(IMAP_FRAMING, peer=peer, peer_is_loopback=peer_is_loopback)
            if authenticator is not None
            else None
        )
        self.state = State.NOT_AUTHENTICATED
        self.user = None
        self.selected = None
        self.utf8 = False
        self.rev2 = False
        self.condstore = False
        self.qresync = False
        self.idling: Request | None = None
        self._segments: list[object] = []
        self._command_size = 0
        self._literal: _Literal | None = None
        self._writers: list[IAppendWriter] = []
        self._skipping = False
        self._errors = 0
        self._auth_request: Request | None = None
        self._logout: Callable[[], None] | None = None
        #: A password check waiting its turn.
        self._check: Deferred[Authenticated | Refused] | None = None
        self.untagged(
            f"OK [CAPABILITY {' '.join(self.capabilities())}] {settings.hostname} IMAP4 ready"
        )

    # -- facts ------------------------------------------------------------------------

    @property
    def plaintext_allowed(self) -> bool:
        """Whether LOGIN may be used now: TLS, or an allowed loopback peer."""
        return self.secure or (self.settings.allow_insecure_auth and self.peer_is_loopback)

    def capabilities(self) -> list[str]:
        """What this session may use now."""
        caps = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"]
        if self.state is State.NOT_AUTHENTICATED:
            if self.tls is not None and not self.secure:
                caps.append("STARTTLS")
            if not self.plaintext_allowed:
                caps.append("LOGINDISABLED")
            if self.sasl is not None:
                caps += [f"AUTH={m}" for m in self.sasl.mechanisms(secure=self.secure)]
            return caps
        caps += [
            "NAMESPACE", "UIDPLUS", "MOVE", "UNSELECT", "CHILDREN", "SPECIAL-USE",
            "LIST-EXTENDED", "LIST-STATUS", "ESEARCH", "SEARCHRES" if False else "ESEARCH",
            "UTF8=ACCEPT", "BINARY", f"APPENDLIMIT={self.settings.append_limit}",
            "CONDSTORE", "QRESYNC",
        ]  # fmt: skip
        return list(dict.fromkeys(caps))

    # -- errors -----------------------------------------------------------------------

    def _error(self, tag: str | None, text: str, code: str | None = None) -> None:
        self._errors += 1
        self.send(status_line(tag or "*", "BAD", text, code))
        if self._errors >= self.settings.max_errors:
            self.untagged("BYE too many errors")
            self.close()

    def handler_failed(self, failure: Failure) -> None:
        """A handler raised: ``* BYE`` and close."""
        _log.failure("IMAP command handler failed", failure)
        self.untagged("BYE internal server error")
        self.close()

    # -- input ------------------------------------------------------------------------

    def _guess_tag(self) -> str | None:
        first = self._segments[0] if self._segments else b""
        assert isinstance(first, bytes)
        m = _TAG.match(first)
        return m.group(0).decode("ascii") if m else None

    def _reset(self) -> None:
        self._segments = []
        self._command_size = 0
        writers, self._writers = self._writers, []
        for writer in writers:
            writer.abort()

    def line_received(self, line: bytes) -> None:
        """A command line, a continuation after a literal, a SASL response or IDLE's DONE."""
        if self.closing:
            return
        if self.idling is not None and not self._segments:
            self.idle_line(line)
            return
        sasl = self.sasl
        if sasl is not None and sasl.active:
            self.wait(sasl.feed(line), self._sasl_step)
            return
        try:
            marker = literal_marker(line)
        except CommandSyntaxError as e:
            self._segments.append(line)
            tag = self._guess_tag()
            self._reset()
            self._skipping = False
            self._error(tag, e.text)
            return
        if self._skipping:
            # The rest of a command whose literal was refused: drop it (and its literals).
            if marker is None:
                self._skipping = False
            elif not marker.synchronizing and marker.size <= self.settings.discard_limit:
                self._literal = _Literal(marker.size, "*", refusal=b"")
                self.expect_counted(marker.size)
            else:
                self._skipping = False
            return
        self._segments.append(line)
        self._command_size += len(line)
        if marker is None:
            segments = self._segments
            self._segments = []
            self._command_size = 0
            self._execute(segments)
            return
        self._begin_literal(marker)

    def _begin_literal(self, marker: LiteralMarker) -> None:
        settings = self.settings
        tag = self._guess_tag() or "*"
        prefix = append_prefix(self._segments, _PLACEHOLDER) if self.user is not None else None
        if prefix is not None:
            limit = settings.append_limit
        elif self.user is None:
            limit = settings.preauth_literal
        else:
            limit = min(settings.max_literal, max(0, settings.max_command - self._command_size))
        self._command_size += 0 if prefix is not None else marker.size
        if marker.size > limit:
            status = "NO" if prefix is not None else "BAD"
            self._refuse_literal(marker, status_line(tag, status, "literal too large", "TOOBIG"))
            return
        if prefix is not None:
            assert self.user is not None
            mailbox, flags, when = prefix
            try:
                folder = self.folder_name(mailbox)
                writer = self.store.append_message(
                    self.user, folder, flags, when.timestamp() if when is not None else None
                )
            except NoSuchMailbox:
                self._refuse_literal(
                    marker, status_line(tag, "NO", "no such mailbox", "TRYCREATE")
                )
                return
            except (InvalidName, CommandSyntaxError, ValueError):
                self._refuse_literal(marker, status_line(tag, "BAD", "bad mailbox name"))
                return
            self._writers.append(writer)
            self._literal = _Literal(marker.size, tag, writer=writer)
        else:
            self._literal = _Literal(marker.size, tag, buffer=bytearray())
        if marker.synchronizing:
            self.send(continuation("Ready for literal data"))
        self.expect_counted(marker.size)

    def _refuse_literal(self, marker: LiteralMarker, reply: bytes) -> None:
        self._reset()
        self._errors += 1
        if marker.synchronizing:
            self.send(reply)  # the client sends neither the literal nor the rest
            return
        if marker.size > self.settings.discard_limit:
            self.send(reply)
            self.untagged("BYE literal too large")
            self.close()
            return
        self._literal = _Literal(marker.size, "*", refusal=reply)
        self.expect_counted(marker.size)

    def raw_received(self, data: bytes) -> None:
        """Literal octets: to the append writer, the buffer, or nowhere."""
        literal = self._literal
        if literal is None:
            return
        if literal.writer is not None:
            d = literal.writer.write(data)
            if d is not None:
                self.wait(d, self._written)
        elif literal.buffer is not None:
            literal.buffer += data

    def _written(self, result: object) -> None:
        if isinstance(result, Failure):
            _log.failure("writing an appended message failed", result)
            self._literal = None
            self._reset()
            self.untagged("BYE cannot store the message")
            self.close()

    def raw_complete(self) -> None:
        """A literal is complete: its line continues the command."""
        literal, self._literal = self._literal, None
        if literal is None:
            return
        if literal.refusal is not None:
            self._skipping = True
            if literal.refusal:
                self.send(literal.refusal)
            return
        if literal.writer is not None:
            self._segments.append(StreamedLiteral(literal.size, literal.writer))
        else:
            assert literal.buffer is not None
            self._segments.append(bytes(literal.buffer))

    def line_too_long(self) -> None:
        """An over-long line: ``BAD``, the command dropped, the session goes on."""
        tag = self._guess_tag() if self._segments else None
        self._reset()
        self._skipping = False
        if self.sasl is not None and self.sasl.active:
            self.sasl.abort()
        self._error(tag, "command line too long")

    def bad_line_ending(self, line: bytes) -> None:
        """A bare CR: treated as a bad command."""
        self._segments.append(line)
        tag = self._guess_tag()
        self._reset()
        self._error(tag, "bare CR in command")

    def timeout(self) -> None:
        """Autologout."""
        self.untagged("BYE autologout: idle for too long")
        self.close()

    def connection_lost(self) -> None:
        """The connection is gone: abort APPENDs in progress, leave the mailbox, log out."""
        super().connection_lost()
        self._reset()
        if self.sasl is not None:
            self.sasl.abort()
        check, self._check = self._check, None
        if check is not None:
            check.cancel()
        self.deselect()
        logout, self._logout = self._logout, None
        if logout is not None:
            logout()

    # -- dispatch ---------------------------------------------------------------------

    def _execute(self, segments: list[object]) -> None:
        try:
            req = parse_command(segments, self.settings.max_depth)
        except CommandSyntaxError as e:
            self._reset()
            code = None
            text = e.text
            if text.startswith("[BADCHARSET"):
                code, text = "BADCHARSET (UTF-8 US-ASCII)", "charset not supported"
                self._reset()
                self.send(status_line(e.tag or "*", "NO", text, code))
                return
            self._error(e.tag, text)
            return
        if req.verb != "APPEND" and self._writers:
            self._reset()
        found = self.commands.resolve(
            req.verb, None, self.state, authenticated=self.user is not None,
            secure=self.secure, context=self,
        )  # fmt: skip
        if isinstance(found, Refusal):
            self._reset()
            self._refused(req, found)
            return
        assert found.handler is not None
        found.handler(self, req)

    def _refused(self, req: Request, refusal: Refusal) -> None:
        if refusal.kind is RefusalKind.BAD_SEQUENCE and refusal.text.startswith("["):
            code, _, text = refusal.text[1:].partition("] ")
            self.no(req, text, code)
            return
        self._error(req.tag, refusal.text)

    # -- any state --------------------------------------------------------------------

    def capability(self, req: Request) -> None:
        """``CAPABILITY``."""
        self.untagged("CAPABILITY " + " ".join(self.capabilities()))
        self.ok(req, "CAPABILITY completed")

    def noop(self, req: Request) -> None:
        """``NOOP``: report what changed in the selected mailbox."""
        self.report_changes(req, "NOOP completed")

    def logout(self, req: Request) -> None:
        """``LOGOUT``."""
        self.untagged("BYE logging out")
        self.ok(req, "LOGOUT completed")
        self.state = State.LOGOUT
        self.close()

    def id(self, req: Request) -> None:
        """``ID`` (RFC 2971)."""
        name, _, version = self.settings.implementation.partition("-")
        self.untagged(
            b"ID ("
            + b" ".join([b'"name"', quote(name.encode()), b'"version"', quote(version.encode())])
            + b")"
        )
        self.ok(req, "ID completed")

    def enable(self, req: Request) -> None:
        """``ENABLE`` (RFC 5161): IMAP4rev2, UTF8=ACCEPT, CONDSTORE and QRESYNC (RFC 7162)."""
        enabled = []
        for name in req.atoms:
            if name == "IMAP4REV2":
                self.rev2 = True
                enabled.append("IMAP4rev2")
            elif name == "UTF8=ACCEPT":
                self.utf8 = True
                enabled.append("UTF8=ACCEPT")
            elif name == "CONDSTORE":
                self.condstore = True
                enabled.append("CONDSTORE")
            elif name == "QRESYNC":
                self.condstore = self.qresync = True
                enabled.append("QRESYNC")
        self.untagged("ENABLED" + "".join(" " + e for e in dict.fromkeys(enabled)))
        self.ok(req, "ENABLE completed")

    # -- not authenticated ------------------------------------------------------------

    def starttls(self, req: Request) -> None:
        """``STARTTLS``: go ahead, then TLS; what was pipelined after it is discarded."""
        self._reset()
        self.ok(req, "Begin TLS negotiation now")
        self.start_tls(self.tls)
        self.secure = True

    def login(self, req: Request) -> None:
        """``LOGIN user password``: checked after the address's penalty, in its turn."""
        if self.sasl is None:
            self.no(req, "no logins on this server", "UNAVAILABLE")
            return
        user, password = req.strings
        d = self.sasl.check_password(
            user.decode("utf-8", "surrogateescape"), password.decode("utf-8", "surrogateescape")
        )
        self._check = d
        self.wait(d, lambda outcome: self._password_checked(req, outcome))

    def _password_checked(self, req: Request, outcome: Authenticated | Refused | Failure) -> None:
        self._check = None
        if isinstance(outcome, Authenticated):
            self._logged_in(req, outcome.username, outcome.logout)
        elif isinstance(outcome, Failure):  # pragma: no cover - the check never fails
            _log.failure("password check failed", outcome)
            self.no(req, "authentication temporarily unavailable", "UNAVAILABLE")
        elif outcome.kind is FailureKind.CANCELLED:
            return  # the connection went away while the check waited its turn
        elif outcome.kind is FailureKind.TEMPORARY:
            self.no(req, "authentication temporarily unavailable", "UNAVAILABLE")
        else:
            self.no(req, "authentication failed", "AUTHENTICATIONFAILED")
            if outcome.disconnect:
                self.untagged("BYE too many failed logins")
                self.close()

    def authenticate(self, req: Request) -> None:
        """``AUTHENTICATE mechanism [initial-response]`` (RFC 9051, SASL-IR RFC 4959)."""
        sasl = self.sasl
        if sasl is None:
            self.no(req, "no logins on this server", "UNAVAILABLE")
            return
        self._auth_request = req
        d = sasl.start(req.atoms[0], req.initial_response, secure=self.secure)
        self.wait(d, self._sasl_step)

    def _sasl_step(self, outcome: Outcome | Failure) -> None:
        req = self._auth_request
        assert req is not None
        if isinstance(outcome, SendChallenge):
            self.send(outcome.line)
            return
        self._auth_request = None
        if isinstance(outcome, Authenticated):
            self._logged_in(req, outcome.username, outcome.logout)
            return
        if isinstance(outcome, Failure):  # pragma: no cover - the driver never fails
            _log.failure("SASL exchange failed", outcome)
            self.no(req, "authentication temporarily unavailable", "UNAVAILABLE")
            return
        assert isinstance(outcome, Refused)
        status, text, code = _SASL_REPLIES[outcome.kind]
        self.send(status_line(req.tag, status, text, code))
        if outcome.disconnect:
            self.untagged("BYE too many failed logins")
            self.close()

    def _logged_in(self, req: Request, user: str, logout: Callable[[], None]) -> None:
        self._logout = logout
        self.wait(self.store.ensure_inbox(user), lambda result: self._ready(req, user, result))

    def _ready(self, req: Request, user: str, result: object) -> None:
        if isinstance(result, Failure):
            _log.failure("cannot create the INBOX of {user}", result, user=user)
            logout, self._logout = self._logout, None
            if logout is not None:
                logout()
            self.no(req, "mailbox unavailable, try later", "UNAVAILABLE")
            return
        self.user = user
        self.state = State.AUTHENTICATED
        _log.info("{user} logged in from {peer}", user=user, peer=self.peer or "unix")
        self.ok(req, "logged in", "CAPABILITY " + " ".join(self.capabilities()))


IMAPConnection.commands = IMAP_COMMANDS.bind(
    {
        "CAPABILITY": IMAPConnection.capability,
        "NOOP": IMAPConnection.noop,
        "LOGOUT": IMAPConnection.logout,
        "ID": IMAPConnection.id,
        "ENABLE": IMAPConnection.enable,
        "STARTTLS": IMAPConnection.starttls,
        "LOGIN": IMAPConnection.login,
        "AUTHENTICATE": IMAPConnection.authenticate,
        "SELECT": IMAPConnection.select,
        "EXAMINE": IMAPConnection.examine,
        "CREATE": IMAPConnection.create,
        "DELETE": IMAPConnection.delete,
        "RENAME": IMAPConnection.rename,
        "SUBSCRIBE": IMAPConnection.subscribe,
        "UNSUBSCRIBE": IMAPConnection.unsubscribe,
        "LIST": IMAPConnection.list,
        "LSUB": IMAPConnection.lsub,
        "NAMESPACE": IMAPConnection.namespace,
        "STATUS": IMAPConnection.status,
        "APPEND": IMAPConnection.append,
        "IDLE": IMAPConnection.idle,
        "CHECK": IMAPConnection.check,
        "CLOSE": IMAPConnection.close_mailbox,
        "UNSELECT": IMAPConnection.unselect,
        "EXPUNGE": IMAPConnection.expunge,
        "SEARCH": IMAPConnection.search,
        "FETCH": IMAPConnection.fetch,
        "STORE": IMAPConnection.store_flags,
        "COPY": IMAPConnection.copy,
        "MOVE": IMAPConnection.move,
    }
)

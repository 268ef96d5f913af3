"""The POP3 server session as a sans-I/O connection object: states, commands, streaming.

:class:`POP3Connection` is one session (RFC 1939, with CAPA, STLS, AUTH,
UIDL, TOP, UTF8).  It is fed lines (by
:class:`~netproto_twisted.pop3.server.protocol.POP3ServerProtocol`, or by a
test through :class:`~netproto_twisted.core.connection.ConnectionDriver`) and
produces replies and actions; it dispatches through
:data:`~netproto_twisted.pop3.server.commands.POP3_COMMANDS`.

- **AUTHORIZATION**: ``USER``/``PASS`` and ``AUTH`` (core's SASL driver,
  ``+ `` challenges, initial responses), refused before TLS unless the peer
  is loopback and ``allow_insecure_auth`` is set; every credential check
  waits the address's failed-login penalty first; ``APOP`` is refused (the
  password file holds salted hashes, so no timestamp is offered).  A login
  locks the maildrop and snapshots it (``-ERR [IN-USE]`` if another session
  holds it).
- **TRANSACTION**: ``RETR`` and ``TOP`` are streamed from the file by
  :class:`~netproto_twisted.core.streaming.StreamProducer` (read in the
  thread pool, CRLF line endings, dot-stuffed, with backpressure) to the
  ``consumer`` given to the object; a message the store read whole in its
  one trip to the thread pool (smaller than one 64 KiB block) is encoded
  and sent as one reply instead.  ``DELE`` only marks.
- **UPDATE**: only after ``QUIT``: the marked messages are removed, then the
  lock released.  A connection that drops (or times out) removes nothing.
"""

from __future__ import annotations

import builtins
import io
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.core.commands import CommandTable, Refusal, RefusalKind
from netproto_twisted.core.connection import ConnectionBase
from netproto_twisted.core.dotstuff import DotStuffer
from netproto_twisted.core.sasl_exchange import (
    POP3_FRAMING,
    Authenticated,
    Authenticator,
    FailureKind,
    Outcome,
    Refused,
    SendChallenge,
)
from netproto_twisted.core.streaming import BlockRunner, StreamProducer
from netproto_twisted.pop3._wire import CommandSyntaxError, err, multiline, ok, parse_command
from netproto_twisted.pop3.errors import MaildropInUse
from netproto_twisted.pop3.interfaces import DropMessage, IMaildrop, IMaildropStore
from netproto_twisted.pop3.server.commands import POP3_COMMANDS, State
from netproto_twisted.pop3.server.settings import POP3Settings
from netproto_twisted.pop3.server.top import TopEncoder

__all__ = ["AUTH_RESP_CODES", "POP3Connection"]

_log = Logger(namespace="netproto.pop3.server")

_Handler = Callable[["POP3Connection", Any], None]

#: Response codes (RFC 2449, RFC 3206).
IN_USE, AUTH, SYS_TEMP, SYS_PERM = "IN-USE", "AUTH", "SYS/TEMP", "SYS/PERM"
AUTH_RESP_CODES = (IN_USE, AUTH, SYS_TEMP, SYS_PERM)

_SASL_REPLIES: dict[FailureKind, bytes] = {
    FailureKind.BAD_CREDENTIALS: err("authentication failed", AUTH),
    FailureKind.TOO_MANY_FAILURES: err("authentication failed", AUTH),
    FailureKind.CANCELLED: err("authentication cancelled"),
    FailureKind.MALFORMED: err("malformed authentication exchange"),
    FailureKind.UNDECODABLE: err("authentication response is not base64"),
    FailureKind.NOT_OFFERED: err("mechanism not available"),
    FailureKind.ENCRYPTION_REQUIRED: err("authentication needs TLS first (STLS)"),
    FailureKind.TEMPORARY: err("authentication temporarily unavailable", SYS_TEMP),
}
_BYE_TOO_MANY = err("too many failed logins, closing")
_BYE_ERRORS = err("too many errors, closing")
_LINE_TOO_LONG = err("line too long")


def _octets(messages: list[DropMessage]) -> int:
    return sum(m.size for m in messages)


class POP3Connection(ConnectionBase):
    """One POP3 server session, sans-I/O (see the module docstring).

    :param settings: the listener's :class:`POP3Settings`.
    :param maildrops: opens a user's maildrop at login.
    :param consumer: where RETR/TOP stream message data (the transport, or
        a test's collector); replies go through :meth:`send`, and what is
        queued is written to the consumer first, so the order holds.
    :param runner: runs blocking reads of message files (the thread pool).
    :param peer: the peer's IP address text (``""`` for a unix socket).
    :param peer_is_loopback: whether the peer is on this host.
    :param secure: whether TLS is already on (implicit TLS).
    :param tls: the server TLS context for STLS, or ``None`` (not offered).
    :param authenticator: checks logins (USER/PASS and AUTH); ``None``: no login possible.
    """

    #: The command table with this class's handlers (bound below the class).
    commands: CommandTable[State, _Handler]

    def __init__(
        self,
        settings: POP3Settings,
        maildrops: IMaildropStore,
        consumer: IConsumer,
        runner: BlockRunner,
        *,
        peer: str = "",
        peer_is_loopback: bool = False,
        secure: bool = False,
        tls: object | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.maildrops = maildrops
        self.consumer = consumer
        self.runner = runner
        self.peer = peer
        self.peer_is_loopback = peer_is_loopback
        self.secure = secure
        self.tls = tls
        self.authenticator = authenticator
        self.sasl = (
            authenticator.exchange(POP3_FRAMING, peer=peer, peer_is_loopback=peer_is_loopback)
            if authenticator is not None
            else None
        )
        self.state = State.AUTHORIZATION
        self.username: str | None = None
        self.utf8_enabled = False
        self.maildrop: IMaildrop | None = None
        self.messages: builtins.list[DropMessage] = []
        self.deleted: set[int] = set()
        self._pending_user: str | None = None
        self._logout: Callable[[], None] | None = None
        self._errors = 0
        #: A password check waiting its turn.
        self._check: Deferred[Authenticated | Refused] | None = None
        self.send(ok(f"{settings.hostname} POP3 server ready"))

    # -- facts the command table's guards read ----------------------------------------

    @property
    def plaintext_allowed(self) -> bool:
        """Whether USER/PASS (and any AUTH) may be used now: TLS, or allowed loopback."""
        return self.secure or (self.settings.allow_insecure_auth and self.peer_is_loopback)

    def mechanisms(self) -> builtins.list[str]:
        """The SASL mechanisms offered now (empty: none)."""
        if self.sasl is None:
            return []
        return self.sasl.mechanisms(secure=self.secure)

    # -- replies ----------------------------------------------------------------------

    def error(self, line: bytes) -> None:
        """Send a ``-ERR`` for a bad command; after ``max_errors`` of them, close."""
        self._errors += 1
        if self._errors >= self.settings.max_errors:
            self.send(_BYE_ERRORS)
            self.close()
        else:
            self.send(line)

    def _write_now(self, data: bytes) -> None:
        """Write ``data`` to the consumer after what is queued (before streaming to it)."""
        queued = self.data_to_send()
        if queued:
            self.consumer.write(queued)
        if data:
            self.consumer.write(data)

    # -- input ------------------------------------------------------------------------

    def line_received(self, line: bytes) -> None:
        """A command line (or, during AUTH, a SASL response line)."""
        if self.closing:
            return
        sasl = self.sasl
        if sasl is not None and sasl.active:
            self.wait(sasl.feed(line), self._sasl_step)
            return
        try:
            verb, argument = parse_command(line)
        except CommandSyntaxError as e:
            self.error(err(str(e)))
            return
        refusal = self.commands.dispatch(
            self, verb, argument, self.state, authenticated=self.username is not None,
            secure=self.secure,
        )  # fmt: skip
        if refusal is not None:
            self._refused(refusal)

    def _refused(self, refusal: Refusal) -> None:
        if refusal.kind is RefusalKind.UNKNOWN:
            self.error(err("unknown command"))
        else:
            self.error(err(refusal.text))

    def line_too_long(self) -> None:
        """An over-long line: ``-ERR`` (it was skipped); a SASL exchange ends."""
        if self.sasl is not None and self.sasl.active:
            self.sasl.abort()
        self.error(_LINE_TOO_LONG)

    def bad_line_ending(self, line: bytes) -> None:
        """A bare CR inside a line: treated as a bad command."""
        if self.sasl is not None and self.sasl.active:
            self.sasl.abort()
        self.error(err("bare CR in command"))

    def timeout(self) -> None:
        """Autologout (RFC 1939 section 3): close without entering UPDATE."""
        self.send(err("autologout: idle for too long"))
        self.close()

    def connection_lost(self) -> None:
        """The connection is gone: abort AUTH, release the maildrop, delete nothing."""
        super().connection_lost()
        if self.sasl is not None:
            self.sasl.abort()
        check, self._check = self._check, None
        if check is not None:
            check.cancel()  # leaves the address's queue at once
        if self.state is not State.UPDATE:
            self._end_session()

    def _end_session(self) -> Deferred[None] | None:
        logout, self._logout = self._logout, None
        if logout is not None:
            logout()
        maildrop, self.maildrop = self.maildrop, None
        if maildrop is None:
            return None
        d = maildrop.release()
        d.addErrback(lambda f: _log.failure("cannot release the maildrop lock", f))
        return d

    # -- AUTHORIZATION ----------------------------------------------------------------

    def capa(self, _: str) -> None:
        """``CAPA`` (RFC 2449): what this session may use now, honestly."""
        keywords = self.commands.capabilities(
            self.state, authenticated=self.username is not None, secure=self.secure, context=self
        )
        if self.state is State.AUTHORIZATION:  # what a login leads to (RFC 2449 lists both)
            keywords += self.commands.capabilities(
                State.TRANSACTION, authenticated=True, secure=self.secure, context=self
            )
        lines = [k for k in keywords if k not in ("STLS", "USER")]
        lines += ["RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER", "LOGIN-DELAY 0"]
        if "USER" in keywords:
            lines.append("USER")
        if self.state is State.AUTHORIZATION:
            mechanisms = self.mechanisms()
            if mechanisms:
                lines.append("SASL " + " ".join(mechanisms))
        if "STLS" in keywords:
            lines.append("STLS")
        if self.settings.implementation:
            lines.append("IMPLEMENTATION " + self.settings.implementation)
        self.send(multiline(ok("Capability list follows"), lines))

    def stls(self, _: str) -> None:
        """``STLS`` (RFC 2595): go ahead, then TLS; the session starts over as unauthenticated."""
        self.send(ok("Begin TLS negotiation"))
        self.start_tls(self.tls)
        self.secure = True
        self._pending_user = None

    def utf8(self, _: str) -> None:
        """``UTF8`` (RFC 6856): names, passwords and replies are UTF-8 (they always are here)."""
        self.utf8_enabled = True
        self.send(ok("UTF8 enabled"))

    def apop(self, _: str) -> None:
        """``APOP``: refused; the store holds salted hashes, not the shared secret APOP needs."""
        self.error(err("APOP not available"))

    def user(self, name: str) -> None:
        """``USER name``."""
        if self.authenticator is None:
            self.error(err("no logins on this server", AUTH))
            return
        self._pending_user = name
        self.send(ok("send PASS"))

    def pass_(self, password: str) -> None:
        """``PASS password``: checked after the address's penalty, in its turn."""
        name, self._pending_user = self._pending_user, None
        if name is None or self.sasl is None:
            self.error(err("USER first"))
            return
        d = self.sasl.check_password(name, password)
        self._check = d
        self.wait(d, self._password_checked)

    def _password_checked(self, outcome: Authenticated | Refused | Failure) -> None:
        self._check = None
        if isinstance(outcome, Authenticated):
            self._logged_in(outcome.username, outcome.logout)
        elif isinstance(outcome, Failure):  # pragma: no cover - the check never fails
            _log.failure("password check failed", outcome)
            self.send(err("authentication temporarily unavailable", SYS_TEMP))
        elif outcome.kind is FailureKind.CANCELLED:
            return  # the connection went away while the check waited its turn
        elif outcome.kind is FailureKind.TEMPORARY:
            self.send(err("authentication temporarily unavailable", SYS_TEMP))
        else:
            self.send(err("authentication failed", AUTH))
            if outcome.disconnect:
                self.send(_BYE_TOO_MANY)
                self.close()

    def auth(self, argument: str) -> None:
        """``AUTH [mechanism [initial-response]]`` (RFC 5034; no argument lists the mechanisms)."""
        sasl = self.sasl
        assert sasl is not None  # the table's guard
        if not argument:
            self.send(multiline(ok("SASL mechanisms follow"), self.mechanisms()))
            return
        mechanism, _, initial = argument.partition(" ")
        d = sasl.start(mechanism, initial.encode("ascii", "replace") or None, secure=self.secure)
        self.wait(d, self._sasl_step)

    def _sasl_step(self, outcome: Outcome | Failure) -> None:
        if isinstance(outcome, SendChallenge):
            self.send(outcome.line)
            return
        if isinstance(outcome, Authenticated):
            self._logged_in(outcome.username, outcome.logout)
            return
        if isinstance(outcome, Failure):  # pragma: no cover - the driver never fails
            _log.failure("SASL exchange failed", outcome)
            self.send(err("authentication temporarily unavailable", SYS_TEMP))
            return
        assert isinstance(outcome, Refused)
        self.send(_SASL_REPLIES[outcome.kind])
        if outcome.disconnect:
            self.send(_BYE_TOO_MANY)
            self.close()

    def _logged_in(self, user: str, logout: Callable[[], None]) -> None:
        """The credentials are good: lock the maildrop and take its snapshot."""
        self._logout = logout

        def orphaned(result: IMaildrop | Failure) -> IMaildrop | Failure:
            # Opened (and locked) after the connection went: nobody will release it.
            if self.lost and not isinstance(result, Failure):
                result.release().addErrback(
                    lambda f: _log.failure("cannot release the maildrop lock", f)
                )
            return result

        d = self.maildrops.open(user).addBoth(orphaned)
        self.wait(d, lambda r: self._opened(user, r))

    def _opened(self, user: str, result: IMaildrop | Failure) -> None:
        if isinstance(result, Failure):
            logout, self._logout = self._logout, None
            if logout is not None:
                logout()
            if result.check(MaildropInUse):
                self.send(err("maildrop already locked by another session", IN_USE))
            else:
                _log.failure("cannot open the maildrop of {user}", result, user=user)
                self.send(err("cannot open the maildrop, try later", SYS_TEMP))
            return
        self.maildrop = result
        self.messages = list(result.messages)
        self.username = user
        self.state = State.TRANSACTION
        _log.info("{user} logged in from {peer}", user=user, peer=self.peer or "unix")
        self.send(ok(self._summary()))

    def _summary(self) -> str:
        live = self._live()
        return f"maildrop has {len(live)} messages ({_octets(live)} octets)"

    # -- TRANSACTION ------------------------------------------------------------------

    def _live(self) -> builtins.list[DropMessage]:
        return [m for i, m in enumerate(self.messages, 1) if i not in self.deleted]

    def _message(self, number: int) -> DropMessage | None:
        """The message ``number``, or ``None`` after sending the ``-ERR``."""
        if number > len(self.messages):
            self.send(err(f"no message {number}"))
            return None
        if number in self.deleted:
            self.send(err(f"message {number} already deleted"))
            return None
        return self.messages[number - 1]

    def stat(self, _: str) -> None:
        """``STAT``: count and octets of the messages not marked deleted."""
        live = self._live()
        self.send(ok(f"{len(live)} {_octets(live)}"))

    def list(self, number: int | str) -> None:
        """``LIST [msg]``: scan listings."""
        if isinstance(number, int):
            message = self._message(number)
            if message is not None:
                self.send(ok(f"{number} {message.size}"))
            return
        lines = [f"{i} {m.size}" for i, m in enumerate(self.messages, 1) if i not in self.deleted]
        self.send(multiline(ok(self._summary()), lines))

    def uidl(self, number: int | str) -> None:
        """``UIDL [msg]``: unique-id listings."""
        if isinstance(number, int):
            message = self._message(number)
            if message is not None:
                self.send(ok(f"{number} {message.uidl}"))
            return
        lines = [f"{i} {m.uidl}" for i, m in enumerate(self.messages, 1) if i not in self.deleted]
        self.send(multiline(ok(""), lines))

    def dele(self, number: int) -> None:
        """``DELE msg``: mark (removed only in UPDATE)."""
        if self._message(number) is not None:
            self.deleted.add(number)
            self.send(ok(f"message {number} deleted"))

    def rset(self, _: str) -> None:
        """``RSET``: unmark every message."""
        self.deleted.clear()
        self.send(ok(self._summary()))

    def noop(self, _: str) -> None:
        """``NOOP``."""
        self.send(ok())

    def retr(self, number: int) -> None:
        """``RETR msg``: the message, streamed."""
        message = self._message(number)
        if message is not None:
            self._stream(message, ok(f"{message.size} octets"), None)

    def top(self, argument: tuple[int, int]) -> None:
        """``TOP msg n``: the header and ``n`` body lines, streamed."""
        number, lines = argument
        message = self._message(number)
        if message is not None:
            self._stream(message, ok("top of message follows"), TopEncoder(lines))

    def _stream(self, message: DropMessage, status: bytes, encoder: TopEncoder | None) -> None:
        assert self.maildrop is not None

        def orphaned(result: Any) -> Any:
            if self.lost and not isinstance(result, Failure):
                result.close()  # opened after the connection went
            return result

        d = self.maildrop.open_message(message).addBoth(orphaned)
        self.wait(d, lambda r: self._opened_message(r, status, encoder))

    def _opened_message(self, result: Any, status: bytes, encoder: TopEncoder | None) -> None:
        if isinstance(result, Failure):
            _log.failure("cannot open a message", result)
            self.send(err("cannot read the message, try later", SYS_TEMP))
            return
        if isinstance(result, io.BytesIO):
            # A small message the store read whole (one block): encode it and send it
            # with its status line as one reply, without a producer.
            stuffer: TopEncoder | DotStuffer = encoder if encoder is not None else DotStuffer()
            data = result.getvalue()
            self.send(status + stuffer.encode(data) + stuffer.finish())
            return
        self._write_now(status)
        producer = StreamProducer(
            result,
            runner=self.runner,
            dot_stuff=encoder is None,
            encoder=encoder,
            close=True,
        )
        self.wait(producer.start(self.consumer), self._streamed)

    def _streamed(self, result: object) -> None:
        if isinstance(result, Failure):
            # Part of the message is out: the reply cannot be completed, so end the session
            # (no UPDATE: nothing is deleted).
            _log.failure("reading a message failed mid-transfer", result)
            self.close()

    # -- QUIT and UPDATE --------------------------------------------------------------

    def quit(self, _: str) -> None:
        """``QUIT``: in TRANSACTION, enter UPDATE (remove the marked messages) first."""
        if self.state is not State.TRANSACTION:
            self.send(ok(f"{self.settings.hostname} POP3 server signing off"))
            self.close()
            return
        self.state = State.UPDATE
        assert self.maildrop is not None
        doomed = [self.messages[i - 1] for i in sorted(self.deleted)]

        def release(result: int | Failure) -> Deferred[int | Failure]:
            # The lock goes once the deletions are done, whether or not the peer still waits.
            released = self._end_session()
            if released is None:
                return succeed(result)
            return released.addBoth(lambda _: result)

        d: Deferred[Any] = self.maildrop.delete(doomed).addBoth(release)
        self.wait(d, self._updated)

    def _updated(self, result: int | Failure) -> None:
        if isinstance(result, Failure):
            _log.failure("removing the deleted messages failed", result)
            self.send(err("some deleted messages not removed", SYS_TEMP))
        else:
            left = len(self.messages) - len(self.deleted)
            self.send(ok(f"signing off ({result} messages deleted, {left} left)"))
        self.close()


POP3Connection.commands = POP3_COMMANDS.bind(
    {
        "CAPA": POP3Connection.capa,
        "STLS": POP3Connection.stls,
        "USER": POP3Connection.user,
        "PASS": POP3Connection.pass_,
        "APOP": POP3Connection.apop,
        "AUTH": POP3Connection.auth,
        "UTF8": POP3Connection.utf8,
        "STAT": POP3Connection.stat,
        "LIST": POP3Connection.list,
        "RETR": POP3Connection.retr,
        "DELE": POP3Connection.dele,
        "NOOP": POP3Connection.noop,
        "RSET": POP3Connection.rset,
        "TOP": POP3Connection.top,
        "UIDL": POP3Connection.uidl,
        "QUIT": POP3Connection.quit,
    }
)

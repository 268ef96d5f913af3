"""The Telnet server: option negotiation, a login through twisted.cred, then a hosted shell.

A connection gets its banner and ``login:`` prompt at once, whatever the
client negotiates (a client that never answers a single option still logs
in, in NVT mode).  The opening requests (WILL ECHO, WILL SGA, DO NAWS, DO
TTYPE, DO NEW-ENVIRON, DO CHARSET) go out first; their answers shape the
terminal the shell gets (:class:`~netproto_twisted.telnet.interfaces.TerminalInfo`)
and later window-size changes reach it.

The login checks the user name and password through a
:class:`~twisted.cred.portal.Portal` (by default the password file's, see
:func:`~netproto_twisted.core.auth.password_portal`), one check at a time
per address after its failed-login penalty
(:class:`~netproto_twisted.core.access.LoginDelay`); a session is closed
after ``max_failed_logins`` failures or when the login takes longer than
``login_timeout``.  Then the :class:`~netproto_twisted.telnet.interfaces.IShellFactory`
starts the shell.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.core.auth import IAuthenticated
from netproto_twisted.core.login_delay import TooManyWaiting
from netproto_twisted.core.plumbing import DEADLINE_LINE, ConnectionPlumbing
from netproto_twisted.telnet._wire import AYT, EC, EL, IP, NAWS
from netproto_twisted.telnet.interfaces import IShell, IShellFactory, IShellOutput, TerminalInfo
from netproto_twisted.telnet.negotiation import (
    SERVER_POLICY,
    OptionPolicy,
    SessionHandler,
    TelnetSession,
)

__all__ = ["TelnetServerFactory", "TelnetServerProtocol", "TelnetSettings"]

#: Session states.
LOGIN = "login"
PASSWORD = "password"  # noqa: S105 (a state name)
CHECKING = "checking"
SHELL = "shell"
CLOSED = "closed"

_BACKSPACES = (0x08, 0x7F)


@dataclass(frozen=True)
class TelnetSettings:
    """A Telnet server's behaviour and limits.

    :ivar banner: sent before the first ``login:`` prompt.
    :ivar idle_timeout: seconds without input before a session is closed (``None``: never).
    :ivar login_timeout: seconds from connecting to a finished login.
    :ivar max_subnegotiation: bytes one subnegotiation may carry.
    :ivar max_login_line: longest user name or password.
    :ivar max_failed_logins: failures before the session is closed.
    :ivar tls_handshake_timeout: seconds a TLS handshake may take.
    :ivar policy: the options offered and accepted.
    """

    banner: str = "netproto telnet\r\n"
    idle_timeout: float | None = 1800.0
    login_timeout: float = 60.0
    max_subnegotiation: int = 4096
    max_login_line: int = 256
    max_failed_logins: int = 5
    tls_handshake_timeout: float = 30.0
    policy: OptionPolicy = SERVER_POLICY


@implementer(IShellOutput)
class TelnetServerProtocol(ConnectionPlumbing, SessionHandler):
    """One Telnet session: negotiation, login, shell."""

    factory: TelnetServerFactory
    _log = Logger()

    def __init__(self, settings: TelnetSettings) -> None:
        ConnectionPlumbing.__init__(self)
        self.settings = settings
        self.idle_timeout = settings.idle_timeout
        self.tls_handshake_timeout = settings.tls_handshake_timeout
        self.session = TelnetSession(
            server=True,
            handler=self,
            policy=settings.policy,
            max_subnegotiation=settings.max_subnegotiation,
        )
        self.decoder = self.session
        self.state = LOGIN
        self.user = ""
        self._line = bytearray()
        self._last_cr = False
        self._failures = 0
        self._check: Deferred[Any] | None = None
        self.shell: IShell | None = None
        self._producer = False  # the shell's output source is registered with the transport
        self.started = time.time()
        self.bytes_in = 0
        self.bytes_out = 0

    # --- connection -------------------------------------------------------------------

    @property
    def peer(self) -> str:
        """The client's address as text."""
        peer = self.transport.getPeer() if self.transport is not None else None
        host = getattr(peer, "host", None)
        return f"{host}:{getattr(peer, 'port', '')}" if host else str(peer)

    def connectionMade(self) -> None:
        """Negotiate, and show the banner and the login prompt at once."""
        super().connectionMade()
        self.factory.sessions.add(self)
        self.session.start()
        self._flush()
        self.start_deadline(DEADLINE_LINE, self.settings.login_timeout)
        self.write(self.settings.banner.encode("utf-8") + b"login: ")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Stop the shell, cancel a running password check."""
        self.state = CLOSED
        self.factory.session_closed(self)
        # A password check under way finishes (its penalty counts); its result is ignored.
        self._check = None
        shell, self.shell = self.shell, None
        if shell is not None:
            shell.close()
        super().connectionLost(reason)

    def dataReceived(self, data: bytes) -> None:
        """Decode (the session answers negotiations), then handle the text."""
        self.bytes_in += len(data)
        super().dataReceived(data)
        self._flush()

    def _flush(self) -> None:
        out = self.session.data_to_send()
        if out and not self._lost:
            self.bytes_out += len(out)
            self.send_raw(out)

    def timeout_expired(self) -> None:
        """Say why, then close."""
        if self.state in (LOGIN, PASSWORD, CHECKING):
            self.write(b"\r\nLogin timed out.\r\n")
        else:
            self.write(b"\r\nIdle too long; goodbye.\r\n")
        self.transport.loseConnection()

    # --- IShellOutput -----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send terminal output (IAC doubled; NVT line ends unless BINARY)."""
        if self._lost:
            return
        data = self.session.encode(data)
        self.bytes_out += len(data)
        self.send_raw(data)

    def register_producer(self, producer: IPushProducer) -> None:
        """Register the shell's output source with the transport (paused while it is full)."""
        if not self._lost and self.transport is not None:
            self.transport.registerProducer(producer, True)
            self._producer = True

    def exit(self) -> None:
        """The shell ended: close the connection."""
        self.shell = None
        if self._producer and not self._lost:
            # A paused producer left registered would be resumed when the buffer
            # drains, instead of the connection closing.
            self._producer = False
            self.transport.unregisterProducer()
        if not self._lost:
            self.transport.loseConnection()

    # --- SessionHandler ---------------------------------------------------------------

    def window_size_changed(self, columns: int, rows: int) -> None:
        """Pass a NAWS change to the shell."""
        if self.shell is not None:
            self.shell.window_changed(columns, rows)

    @property
    def terminal_type(self) -> str:
        """The client's preferred terminal type (its first TTYPE answer), or ``""``."""
        names = self.session.terminal_types
        return names[0] if names else ""

    def command_received(self, command: int) -> None:
        """AYT gets an answer; IP, EC and EL become the keys a terminal would send."""
        if command == AYT:
            self.write(b"\r\n[yes]\r\n")
        elif self.state == SHELL and self.shell is not None:
            key = {IP: b"\x03", EC: b"\x7f", EL: b"\x15"}.get(command)
            if key:
                self.shell.data_received(key)

    # --- input ------------------------------------------------------------------------

    def bytes_received(self, data: bytes) -> None:
        """Feed the login line editor, or the shell."""
        if self.state == SHELL:
            if self._last_cr:  # the password line's CR LF, split across reads
                self._last_cr = False
                if data[:1] in (b"\n", b"\0"):
                    data = data[1:]
            if self.shell is not None and data:
                self.shell.data_received(data)
            return
        self._edit(data)

    def _echo(self, data: bytes) -> None:
        if self.state == LOGIN and self.session.local_enabled(1):  # ECHO
            self.write(data)

    def _edit(self, data: bytes) -> None:
        """A minimal line editor for the login: backspace, CR/LF/CR NUL, a length bound."""
        for i, byte in enumerate(data):  # login lines are short and rare
            if self.state == SHELL:  # the check finished at once: the rest is the shell's
                if self._last_cr and data[i] in (0, 10):
                    i += 1  # the LF (or NUL) of the password line's CR LF
                self._last_cr = False
                if self.shell is not None and i < len(data):
                    self.shell.data_received(data[i:])
                return
            if self.state != LOGIN and self.state != PASSWORD:
                # typeahead while the password is checked: hold it, in order
                self.pause_input()
                self._held[:0] = data[i:]
                return
            if byte == 0 or (byte == 10 and self._last_cr):
                self._last_cr = False
                continue
            self._last_cr = byte == 13
            if byte in (13, 10):
                line = bytes(self._line)
                self._line.clear()
                self._echo(b"\r\n")
                self._line_done(line)
            elif byte in _BACKSPACES:
                if self._line:
                    del self._line[-1]
                    self._echo(b"\b \b")
            elif byte == 3:  # ^C
                self._line.clear()
                self._echo(b"^C\r\n")
                self.state = LOGIN
                self.write(b"login: ")
            elif len(self._line) < self.settings.max_login_line and byte >= 32:
                self._line.append(byte)
                self._echo(bytes((byte,)))

    def _line_done(self, line: bytes) -> None:
        if self.state == LOGIN:
            if not line.strip():
                self.write(b"login: ")
                return
            self.user = line.decode("utf-8", "replace").strip()
            self.state = PASSWORD
            self.write(b"Password: ")
        else:
            self.write(b"\r\n")
            self.state = CHECKING
            self.pause_input()
            self._check_password(line)

    def _check_password(self, password: bytes) -> None:
        factory = self.factory
        host = getattr(self.transport.getPeer(), "host", "") or ""
        credentials = UsernamePassword(self.user.encode("utf-8"), password)

        def check() -> Deferred[Any]:
            return factory.portal.login(credentials, None, IAuthenticated)

        d = factory.login_delay.attempt(host, check)
        self._check = d
        d.addCallbacks(self._logged_in, self._login_failed)

    def _logged_in(self, result: tuple[Any, Any, Any]) -> None:
        """Start the shell; input held during the check goes to it."""
        self._check = None
        if self._lost:
            return
        _, avatar, _ = result
        self.user = str(avatar)
        self.clear_deadline()
        self.state = SHELL
        self._log.info("telnet login {user} from {peer}", user=self.user, peer=self.peer)
        session = self.session
        columns, rows = session.window_size or (80, 24)
        terminal = TerminalInfo(
            user=self.user,
            terminal_type=self.terminal_type or "vt100",
            columns=columns or 80,
            rows=rows or 24,
            environ=dict(session.environ),
            peer=self.peer,
        )
        self.shell = self.factory.shell_factory.open_shell(terminal, self)
        if self._last_cr and bytes(self._held[:1]) in (b"\n", b"\0"):
            del self._held[:1]  # the LF (or NUL) of the password line's CR LF
            self._last_cr = False
        self.resume_input()

    def _login_failed(self, failure: Failure) -> None:
        self._check = None
        if self._lost or failure.check(Exception) is None:
            return
        if not failure.check(UnauthorizedLogin, TooManyWaiting):
            self._log.failure("telnet password check", failure)
        self._failures += 1
        self._log.info(
            "telnet login failed for {user} from {peer}", user=self.user, peer=self.peer
        )
        self.write(b"Login incorrect\r\n")
        if self._failures >= self.settings.max_failed_logins or failure.check(TooManyWaiting):
            self.transport.loseConnection()
            return
        self.state = LOGIN
        self.write(b"\r\nlogin: ")
        self.resume_input()

    # --- for the admin console --------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Return this session's state for the admin console."""
        return {
            "peer": self.peer,
            "user": self.user if self.state == SHELL else "",
            "state": self.state,
            "terminal": self.terminal_type,
            "window": self.session.window_size,
            "since": self.started,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "naws": self.session.remote_enabled(NAWS),
        }


class TelnetServerFactory(Factory):
    """Builds :class:`TelnetServerProtocol` sessions sharing a portal, a penalty and a shell."""

    protocol = TelnetServerProtocol  # type: ignore[assignment]

    def __init__(
        self,
        reactor: IReactorTime,
        portal: Portal,
        shell_factory: IShellFactory,
        *,
        settings: TelnetSettings | None = None,
        login_delay: LoginDelay | None = None,
    ) -> None:
        self.reactor = reactor
        self.portal = portal
        self.shell_factory = shell_factory
        self.settings = settings or TelnetSettings()
        self.login_delay = login_delay if login_delay is not None else LoginDelay(reactor)
        #: The sessions open now (the admin console lists them).
        self.sessions: set[TelnetServerProtocol] = set()
        self._empty_waiters: list[Deferred[None]] = []

    def session_closed(self, session: TelnetServerProtocol) -> None:
        """Forget a closed session; fire :meth:`when_empty` waiters once none is left."""
        self.sessions.discard(session)
        if not self.sessions:
            waiters, self._empty_waiters = self._empty_waiters, []
            for d in waiters:
                d.callback(None)

    def when_empty(self) -> Deferred[None]:
        """Return a Deferred that fires when no session is open (at once if none is)."""
        d: Deferred[None] = Deferred()
        if not self.sessions:
            d.callback(None)
        else:
            self._empty_waiters.append(d)
        return d

    def buildProtocol(self, addr: Any) -> TelnetServerProtocol:  # type: ignore[override]
        """Return a new session."""
        protocol = TelnetServerProtocol(self.settings)
        protocol.factory = self
        return protocol

"""The FTP control connection as a sans-I/O connection object: login, TLS, data setup, transfers.

:class:`FTPConnection` is one control session.  It is fed command lines (by
:class:`~netproto_twisted.ftp.server.protocol.FTPServerProtocol`) and
dispatches them through :data:`~netproto_twisted.ftp.server.commands.FTP_COMMANDS`;
the file commands' handlers live in :mod:`~netproto_twisted.ftp.server.files`.

- **Login**: ``USER``/``PASS`` against the shared password file through
  core's portal, each check waiting the address's failed-login penalty
  first (:mod:`netproto_twisted.core.login_delay`), and the session closed
  after too many failures.  No password in clear unless the peer is
  loopback and ``allow_insecure_auth`` is set; ``require_tls`` asks TLS of
  every login.  Anonymous users (when enabled) are read-only.
- **TLS** (RFC 4217): ``AUTH TLS``/``AUTH SSL``, ``PBSZ 0``, ``PROT C|P``;
  a data channel under ``PROT P`` must resume the control session (522
  otherwise) when ``require_session_reuse`` is on.  ``CCC`` is refused:
  Twisted's TLS layer cannot hand a connection back to plaintext.
- **Data connections** (RFC 959, 2428, 2577): ``PORT``/``EPRT`` only to the
  control peer's own address and a port >= 1024; ``PASV``/``EPSV`` accept
  only the control peer; ``EPSV ALL`` refuses the others from then on.
- **Transfers** run while commands are still read: ``ABOR`` (426 then 226),
  ``STAT`` (progress), ``NOOP`` and ``QUIT`` are taken meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.core.auth import IAuthenticated
from netproto_twisted.core.commands import CommandTable, Refusal, RefusalKind
from netproto_twisted.core.connection import ConnectionBase
from netproto_twisted.core.login_delay import TooManyWaiting
from netproto_twisted.core.net import canonical_ip
from netproto_twisted.core.sasl_exchange import Authenticator
from netproto_twisted.core.throttle import ByteThrottle
from netproto_twisted.ftp import _wire as w
from netproto_twisted.ftp._wire import CommandSyntaxError, format_reply, parse_command
from netproto_twisted.ftp.errors import FileSystemError
from netproto_twisted.ftp.interfaces import IFTPFilesystem
from netproto_twisted.ftp.server.commands import FTP_COMMANDS, State
from netproto_twisted.ftp.server.data import (
    DataChannel,
    DataPorts,
    PassiveListener,
    TransferFailed,
)
from netproto_twisted.ftp.server.files import bind_handlers
from netproto_twisted.ftp.server.settings import FTPSettings
from netproto_twisted.ftp.users import ANONYMOUS_NAMES, FTPUser, UserTable

__all__ = ["FTPConnection"]

_log = Logger(namespace="netproto.ftp.server")

_Handler = Callable[["FTPConnection", Any], None]
#: Opens a user's filesystem at login.
FilesystemFactory = Callable[[FTPUser], IFTPFilesystem]


class FTPConnection(ConnectionBase):
    """One FTP control session, sans-I/O (see the module docstring).

    :param settings: the listener's :class:`FTPSettings`.
    :param users: homes and permissions (:class:`~netproto_twisted.ftp.users.UserTable`).
    :param filesystems: opens a user's filesystem at login.
    :param data: opens data connections.
    :param clock: the reactor's clock (data-connection timeouts).
    :param peer: the control peer's IP text.
    :param local_host: the control connection's own IP text (PASV listens there).
    :param peer_is_loopback: whether the peer is on this host.
    :param secure: TLS already on (implicit FTPS).
    :param tls: the server TLS context for AUTH TLS and data channels, or ``None``.
    :param authenticator: checks passwords (``None``: only anonymous logins).
    """

    commands: CommandTable[State, _Handler]

    def __init__(
        self,
        settings: FTPSettings,
        users: UserTable,
        filesystems: FilesystemFactory,
        data: DataPorts,
        clock: Any,
        *,
        peer: str,
        local_host: str,
        peer_is_loopback: bool = False,
        secure: bool = False,
        tls: Any | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.users = users
        self.filesystems = filesystems
        self.data = data
        self.clock = clock
        self.peer = peer
        self.local_host = local_host
        self.peer_is_loopback = peer_is_loopback
        self.secure = secure
        self.tls = tls
        self.authenticator = authenticator
        self.state = State.LOGIN
        self.user: FTPUser | None = None
        self.fs: IFTPFilesystem | None = None
        self.cwd = "/"
        self.type_ascii = True
        self.prot_private = False
        self.pbsz_done = False
        self.epsv_all = False
        self.rest = 0
        self.rename_from: str | None = None
        self.mlst_facts = ["type", "size", "modify", "perm", "unix.mode"]
        self._pending_user: str | None = None
        self._errors = 0
        self._password_failures = 0
        self._check: Deferred[Any] | None = None
        self._passive: PassiveListener | None = None
        self._active: tuple[str, int] | None = None
        self.channel: DataChannel | None = None
        self._transfer_aborted = False
        self._throttles: dict[str, ByteThrottle] = {}
        self.reply(w.SERVICE_READY, settings.banner)

    # -- replies ------------------------------------------------------------------------

    def reply(self, code: int, text: str | list[str]) -> None:
        """Send a reply (several lines: a multi-line reply)."""
        self.send(format_reply(code, text))

    def error(self, code: int, text: str) -> None:
        """A bad command's reply; after ``max_errors`` of them, 421 and close."""
        self._errors += 1
        if self._errors >= self.settings.max_errors:
            self.reply(w.SERVICE_CLOSING, "too many errors, closing")
            self.close()
        else:
            self.reply(code, text)

    def fs_failed(self, failure: Failure) -> None:
        """A filesystem operation failed: 550 (or its own code) with its text."""
        value = failure.value
        if isinstance(value, FileSystemError):
            self.reply(value.code, value.text)
            return
        _log.failure("file system operation failed", failure)
        self.reply(w.LOCAL_ERROR, "local error in processing")

    # -- input --------------------------------------------------------------------------

    @property
    def authenticated(self) -> bool:
        """Whether a user is logged in."""
        return self.user is not None

    def line_received(self, line: bytes) -> None:
        """One command line."""
        if self.closing:
            return
        if line[:1] in _TELNET_SYNCH:  # "IAC IP IAC DM" that clients put before ABOR
            line = line.lstrip(b"\xff\xf4\xf2")
        try:
            verb, argument = parse_command(line)
        except CommandSyntaxError as e:
            self.error(w.SYNTAX_ERROR, str(e))
            return
        state = self.state
        if state is State.LOGIN and verb not in _LOGIN_VERBS and verb in FTP_COMMANDS:
            self.error(w.NOT_LOGGED_IN, "log in with USER and PASS first")
            return
        refusal = self.commands.dispatch(
            self, verb, argument, state, authenticated=self.authenticated, secure=self.secure
        )
        if refusal is not None:
            self._refused(refusal)

    def _refused(self, refusal: Refusal) -> None:
        kind = refusal.kind
        if kind is RefusalKind.UNKNOWN:
            self.error(w.NOT_IMPLEMENTED if refusal.verb in _KNOWN_UNIMPLEMENTED
                       else w.SYNTAX_ERROR, refusal.text)  # fmt: skip
        elif kind is RefusalKind.ARGUMENT:
            self.error(w.ARGUMENT_ERROR, refusal.text)
        elif kind is RefusalKind.AUTH_REQUIRED:
            self.error(w.NOT_LOGGED_IN, refusal.text)
        elif kind is RefusalKind.TLS_REQUIRED:
            self.error(w.TLS_REQUIRED_FOR_POLICY, refusal.text)
        elif self.state is State.TRANSFER:
            self.error(w.FILE_UNAVAILABLE_TEMP, "a transfer is in progress; ABOR it or wait")
        else:
            self.error(w.BAD_SEQUENCE, refusal.text)

    def line_too_long(self) -> None:
        """An over-long command line (skipped)."""
        self.error(w.SYNTAX_ERROR, "command line too long")

    def bad_line_ending(self, line: bytes) -> None:
        """A bare CR or LF inside a line."""
        self.error(w.SYNTAX_ERROR, "bad line ending")

    def timeout(self) -> None:
        """Idle too long (not while a transfer runs: the protocol does not time out then)."""
        self.reply(w.SERVICE_CLOSING, "idle timeout, closing control connection")
        self.close()

    def connection_lost(self) -> None:
        """Gone: abort a transfer, stop listening, leave the login queue."""
        super().connection_lost()
        check, self._check = self._check, None
        if check is not None:
            check.cancel()
        self._drop_data()
        if self.channel is not None:
            self._transfer_aborted = True
            self.channel.abort()

    def handler_failed(self, failure: Failure) -> None:
        """A handler raised: 451 and go on."""
        _log.failure("FTP command handler failed", failure)
        self.reply(w.LOCAL_ERROR, "local error in processing")

    # -- login --------------------------------------------------------------------------

    @property
    def plaintext_allowed(self) -> bool:
        """Whether a password may be sent now."""
        if self.secure:
            return True
        if self.settings.require_tls:
            return False
        return self.settings.allow_insecure_auth and self.peer_is_loopback

    def do_user(self, name: str) -> None:
        """``USER name``."""
        if self.user is not None:
            self._logout()
        anonymous = name.lower() in ANONYMOUS_NAMES
        if self.settings.require_tls and not self.secure:
            self.error(w.TLS_REQUIRED_FOR_POLICY, "TLS required: use AUTH TLS first")
            return
        if anonymous:
            if not self.users.anonymous_enabled:
                self.error(w.NOT_LOGGED_IN, "anonymous logins are not allowed")
                return
            self._pending_user = "anonymous"
            self.reply(w.NEED_PASSWORD, "anonymous login ok, send your e-mail as the password")
            return
        if not self.plaintext_allowed:
            self.error(w.TLS_REQUIRED_FOR_POLICY, "use AUTH TLS before sending a password")
            return
        self._pending_user = name
        self.reply(w.NEED_PASSWORD, f"password required for {name}")

    def do_pass(self, password: str) -> None:
        """``PASS password``: checked after the address's penalty, in its turn."""
        name, self._pending_user = self._pending_user, None
        if name is None:
            self.error(w.BAD_SEQUENCE, "send USER first")
            return
        if name == "anonymous":
            self._logged_in("anonymous")
            return
        authenticator = self.authenticator
        if authenticator is None:
            self.error(w.NOT_LOGGED_IN, "login incorrect")
            return
        portal = authenticator.portal
        credentials = UsernamePassword(
            name.encode("utf-8", "surrogateescape"), password.encode("utf-8", "surrogateescape")
        )
        d: Deferred[Any] = authenticator.login_delay.attempt(
            self.peer or "unix", lambda: portal.login(credentials, None, IAuthenticated)
        )
        self._check = d
        self.wait(d, self._password_checked)

    def _password_checked(self, result: Any) -> None:
        self._check = None
        if isinstance(result, Failure):
            if result.check(UnauthorizedLogin):
                assert self.authenticator is not None
                self._password_failures += 1
                self.reply(w.NOT_LOGGED_IN, "login incorrect")
                if self.authenticator.login_delay.should_disconnect(self._password_failures):
                    self.reply(w.SERVICE_CLOSING, "too many failed logins, closing")
                    self.close()
                return
            if not result.check(TooManyWaiting):
                _log.failure("password check failed", result)
            self.reply(w.SERVICE_CLOSING, "authentication temporarily unavailable")
            self.close()
            return
        _interface, avatar, _logout = result
        self._logged_in(str(avatar))

    def _logged_in(self, name: str) -> None:
        user = self.users.user(name)
        try:
            fs = self.filesystems(user)
        except Exception:
            _log.failure("cannot open the home of {user}", user=name)
            self.reply(w.NOT_LOGGED_IN, "home directory not available")
            return
        self.user = user
        self.fs = fs
        self.cwd = "/"
        self.state = State.READY
        _log.info("{user} logged in from {peer}", user=name, peer=self.peer)
        self.reply(w.LOGGED_IN, f"user {name} logged in")

    def _logout(self) -> None:
        self.user = None
        self.fs = None
        self.state = State.LOGIN
        self.cwd = "/"
        self.rest = 0
        self.rename_from = None
        self._drop_data()

    def do_acct(self, _: str) -> None:
        """``ACCT``: superfluous here."""
        self.reply(w.NOT_IMPLEMENTED_SUPERFLUOUS, "ACCT not needed")

    def do_rein(self, _: str) -> None:
        """``REIN``: log out, keep TLS."""
        self._logout()
        self.reply(w.SERVICE_READY, "ready for a new user")

    def do_quit(self, _: str) -> None:
        """``QUIT``: an aborted transfer first, then 221 and close."""
        if self.channel is not None:
            self._abort_transfer()
        self.reply(w.GOODBYE, "goodbye")
        self.close()

    # -- TLS ----------------------------------------------------------------------------

    def do_auth(self, mechanism: str) -> None:
        """``AUTH TLS`` (or ``SSL``, ``TLS-C``): 234, then the handshake."""
        if mechanism.upper() not in ("TLS", "TLS-C", "SSL"):
            self.error(w.PARAMETER_NOT_IMPLEMENTED, "AUTH TLS only")
            return
        self.reply(w.AUTH_OK, "AUTH TLS successful")
        self.start_tls(self.tls)
        self.secure = True
        self._pending_user = None

    def do_pbsz(self, size: str) -> None:
        """``PBSZ 0`` (any other size: 200 with PBSZ=0, as RFC 4217 allows)."""
        self.pbsz_done = True
        self.reply(w.OK, "PBSZ=0")

    def do_prot(self, level: str) -> None:
        """``PROT C`` or ``PROT P``."""
        level = level.upper()
        if not self.pbsz_done:
            self.error(w.BAD_SEQUENCE, "PBSZ first")
        elif level == "P":
            self.prot_private = True
            self.reply(w.OK, "protection level set to P")
        elif level == "C":
            if self.settings.require_tls:
                self.error(w.TLS_REQUIRED_FOR_POLICY, "PROT P required")
                return
            self.prot_private = False
            self.reply(w.OK, "protection level set to C")
        elif level in ("S", "E"):
            self.error(536, "protection level not supported")
        else:
            self.error(w.PARAMETER_NOT_IMPLEMENTED, "unknown protection level")

    def do_ccc(self, _: str) -> None:
        """``CCC``: refused (see the module docstring)."""
        self.error(533, "CCC not available: the control connection stays protected")

    # -- data connection setup -----------------------------------------------------------

    def _drop_data(self) -> None:
        passive, self._passive = self._passive, None
        if passive is not None:
            passive.close()
        self._active = None

    def _same_peer(self, host: str) -> bool:
        return (canonical_ip(host) or host) == (canonical_ip(self.peer) or self.peer)

    def _set_active(self, host: str, port: int) -> None:
        if self.epsv_all:
            self.error(w.BAD_SEQUENCE, "EPSV ALL in effect")
        elif not self._same_peer(host):
            _log.warn("refused data address {host} from {peer}", host=host, peer=self.peer)
            self.error(w.ARGUMENT_ERROR, "data connections go to your own address only")
        elif port < 1024:
            self.error(w.ARGUMENT_ERROR, "data port below 1024 refused")
        else:
            self._drop_data()
            self._active = (host, port)
            self.reply(w.OK, "command okay")

    def do_port(self, argument: str) -> None:
        """``PORT h1,h2,h3,h4,p1,p2``."""
        try:
            host, port = w.parse_port(argument)
        except CommandSyntaxError as e:
            self.error(w.ARGUMENT_ERROR, str(e))
            return
        peer = canonical_ip(self.peer) or self.peer
        if peer.startswith("::ffff:"):
            host = "::ffff:" + host
        self._set_active(host, port)

    def do_eprt(self, argument: str) -> None:
        """``EPRT |p|address|port|``."""
        try:
            host, port = w.parse_eprt(argument)
        except CommandSyntaxError as e:
            self.error(522 if "protocol" in str(e) else w.ARGUMENT_ERROR, str(e))
            return
        self._set_active(host, port)

    def _listen(self) -> PassiveListener | None:
        self._drop_data()
        try:
            listener = self.data.passive(self.peer, self.local_host, **self._data_tls())
        except OSError as e:
            _log.warn("cannot open a passive port: {error}", error=str(e))
            self.reply(w.CANT_OPEN_DATA, "cannot open a passive port")
            return None
        self._passive = listener
        return listener

    def do_pasv(self, _: str) -> None:
        """``PASV``: IPv4 only (the masquerade address, or the control connection's)."""
        if self.epsv_all:
            self.error(w.BAD_SEQUENCE, "EPSV ALL in effect")
            return
        address = self.settings.masquerade or self.local_host
        if address.startswith("::ffff:"):
            address = address[7:]
        if ":" in address:
            self.error(w.PARAMETER_NOT_IMPLEMENTED, "PASV needs IPv4; use EPSV")
            return
        listener = self._listen()
        if listener is not None:
            self.reply(w.ENTERING_PASSIVE, w.format_pasv(address, listener.port))

    def do_epsv(self, argument: str) -> None:
        """``EPSV [ALL|1|2]``."""
        argument = argument.strip().upper()
        if argument == "ALL":
            self.epsv_all = True
            self.reply(w.OK, "EPSV ALL ok")
            return
        if argument and argument not in ("1", "2"):
            self.error(522, "network protocol not supported, use (1,2)")
            return
        listener = self._listen()
        if listener is not None:
            self.reply(w.ENTERING_EXTENDED_PASSIVE, w.format_epsv(listener.port))

    # -- transfers ----------------------------------------------------------------------

    def _data_tls(self) -> dict[str, Any]:
        if not self.prot_private:
            return {}
        return {"tls": self.tls, "require_reuse": self.settings.require_session_reuse}

    def throttle(self, direction: str) -> ByteThrottle | None:
        """The session's byte bucket for ``"download"`` or ``"upload"`` (``None``: no limit).

        One bucket per session and direction, so that back-to-back transfers
        share the rate.
        """
        rate = getattr(self.settings, f"max_{direction}_rate")
        if rate is None:
            return None
        if direction not in self._throttles:
            self._throttles[direction] = ByteThrottle(self.clock, rate)
        return self._throttles[direction]

    def take_rest(self) -> int:
        """The REST offset for this transfer (then cleared)."""
        rest, self.rest = self.rest, 0
        return rest

    def open_channel(self) -> Deferred[DataChannel] | None:
        """The data connection for the next transfer (None: 425 was sent)."""
        timeout = self.settings.data_timeout
        passive, self._passive = self._passive, None
        active, self._active = self._active, None
        if self.settings.require_tls and not self.prot_private:
            self.reply(w.TLS_REQUIRED_FOR_POLICY, "PROT P required")
            if passive is not None:
                passive.close()
            return None
        if passive is not None:
            d = passive.channel()

            def expire() -> None:
                passive.close()
                d.cancel()

            call = self.clock.callLater(timeout, expire)
            d.addBoth(lambda r: (call.cancel() if call.active() else None, r)[1])
            return d
        if active is not None:
            return self.data.active(active[0], active[1], timeout=timeout, **self._data_tls())
        self.reply(w.CANT_OPEN_DATA, "use PORT, EPRT, PASV or EPSV first")
        return None

    def begin_transfer(
        self,
        run: Callable[[DataChannel], Deferred[int]],
        done_text: str = "transfer complete",
        *,
        cleanup: Callable[[bool], Deferred[None] | None] | None = None,
    ) -> None:
        """Open the data connection, reply 150, run ``run(channel)``, reply 226 or an error.

        ``cleanup(ok)`` runs before the final reply (an upload commits or
        discards there); the session takes ABOR/STAT meanwhile.
        """
        opened = self.open_channel()
        if opened is None:
            if cleanup is not None:
                cleanup(False)
            return
        self.state = State.TRANSFER
        self._transfer_aborted = False
        outcome: Deferred[Any] = opened
        channel_holder: list[DataChannel] = []

        def connected(channel: DataChannel) -> Deferred[int]:
            self.channel = channel
            channel_holder.append(channel)
            if self.lost or self._transfer_aborted:
                channel.abort()
                raise TransferFailed(w.TRANSFER_ABORTED, "transfer aborted")
            ready = channel.tls_ready  # TLS started when the connection was made
            if ready is None and self.prot_private:  # PROT P came after PASV/EPSV
                ready = channel.start_tls_server(
                    self.tls, require_reuse=self.settings.require_session_reuse
                )
            if ready is not None:
                self.reply(w.OPENING, "opening TLS data connection")
                d: Deferred[Any] = Deferred()

                def handed_over(result: object) -> None:
                    d.callback(result)  # a Failure errbacks d; ready itself ends quiet

                ready.addBoth(handed_over)
                d.addCallback(lambda _: run(channel))
                return d
            self.reply(w.OPENING, "opening data connection")
            return run(channel)

        def transferred(count: int) -> Deferred[Any]:
            channel = channel_holder[0]
            return channel.finish().addCallback(lambda _: count)

        outcome.addCallback(connected)
        outcome.addCallback(transferred)

        def reply(result: Any) -> None:
            self.channel = None
            if self.state is State.TRANSFER:
                self.state = State.READY if self.user is not None else State.LOGIN
            if self.lost:
                return
            if self._transfer_aborted:
                self.reply(w.CLOSING_DATA, "ABOR successful")
                return
            if not isinstance(result, Failure):
                self.reply(w.CLOSING_DATA, done_text)
                return
            error = result.value
            if isinstance(error, TransferFailed):
                self.reply(error.code, error.text)
            elif isinstance(error, FileSystemError):  # 552: out of space (or quota)
                self.reply(error.code if error.code == 552 else w.LOCAL_ERROR, error.text)
            elif result.check(CancelledError):
                self.reply(w.CANT_OPEN_DATA, "cannot open the data connection")
            else:
                _log.failure("transfer failed", result)
                self.reply(w.TRANSFER_ABORTED, "connection closed; transfer aborted")

        def after(result: Any) -> None:
            # A client that vanished mid-upload closes both connections: whichever the
            # reactor saw first, an upload is committed only while the session lives.
            ok = not isinstance(result, Failure) and not self._transfer_aborted and not self.lost
            if not ok and channel_holder:
                channel_holder[0].abort()
            d = cleanup(ok) if cleanup is not None else None
            if d is None:
                reply(result)
                return

            def cleaned(r: Any) -> None:
                reply(r if isinstance(r, Failure) and ok else result)

            d.addBoth(cleaned)

        outcome.addBoth(after)

    def _abort_transfer(self) -> None:
        self._transfer_aborted = True
        channel = self.channel
        self.reply(w.TRANSFER_ABORTED, "transfer aborted")
        if channel is not None:
            channel.abort()

    def do_abor(self, _: str) -> None:
        """``ABOR``: 426 and 226 during a transfer; 225 otherwise."""
        if self.state is State.TRANSFER:
            self._abort_transfer()
            return
        self._drop_data()
        self.reply(w.NO_TRANSFER, "no transfer to abort")


#: The verbs taken before login.
_LOGIN_VERBS = FTP_COMMANDS.valid_in(State.LOGIN)
#: Telnet bytes of the "interrupt process" and "synch" sequence (RFC 959 section 4.1.3).
_TELNET_SYNCH = (b"\xff", b"\xf4", b"\xf2")
#: Verbs of RFC 959 that this server does not offer (502, not 500).
_KNOWN_UNIMPLEMENTED = frozenset({"SMNT"})


FTPConnection.commands = bind_handlers(FTPConnection)

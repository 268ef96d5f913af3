"""The SASL exchange driver every protocol's AUTH command runs on (SMTP, POP3, IMAP, NNTP).

The mechanisms (:mod:`netproto_twisted.core.sasl`) know nothing of the wire;
this driver adds what every line protocol's AUTH needs around them: which
mechanisms to offer, the base64 lines, ``=`` and ``*``, initial responses,
the failed-login penalty (:class:`~netproto_twisted.core.access.LoginDelay`,
waited *before* each credential check), the failure count that ends a
session, and one small typed outcome per step.  It does no I/O and never
touches a transport: unit tests drive it with bytes.

How a protocol uses it
----------------------

1. **Once per listener**, build an :class:`Authenticator`: the portal, the
   shared :class:`~netproto_twisted.core.access.LoginDelay`, and the
   mechanism policy.  Over the password file::

       authenticator = Authenticator.for_password_file(
           password_file, thread_runner(reactor, reactor.getThreadPool()),
           LoginDelay.from_limits(reactor, limits),
           mechanisms=limits.auth_mechanisms, allow_insecure=allow_insecure_auth,
           hostname="mx.example.org")

2. **Once per connection**, make a :class:`SASLExchange` with the
   protocol's :class:`Framing` (:data:`SMTP_FRAMING` ``334 <b64>``,
   :data:`POP3_FRAMING` and :data:`IMAP_FRAMING` ``+ <b64>``,
   :data:`NNTP_FRAMING` ``383 <b64>``) and the peer::

       self.sasl = authenticator.exchange(SMTP_FRAMING, peer=host, peer_is_loopback=loopback)

   Advertise ``self.sasl.mechanisms(secure=tls_active)`` (EHLO ``AUTH``,
   POP3 ``CAPA SASL``, IMAP ``AUTH=``); an empty list means "offer no AUTH".

3. **On the AUTH command**, call :meth:`SASLExchange.start` with the
   mechanism name and the initial response exactly as it came on the wire
   (base64 bytes, ``b"="`` for an empty one, ``None`` when absent), and pause
   reading until the Deferred fires: it always fires with an outcome, never
   fails.

4. **While** :attr:`SASLExchange.active`, every line the client sends is
   the next response: pass it (without its line ending) to
   :meth:`SASLExchange.feed`, which returns the next outcome the same way.

5. **Map each outcome to the protocol's replies**:

   * :class:`SendChallenge`: write :attr:`SendChallenge.line` as it is (it
     is already framed: ``334 <b64>\\r\\n``) and keep feeding lines;
   * :class:`Authenticated`: the user is :attr:`Authenticated.username`;
     send the success reply (with :attr:`Authenticated.final_data` if the
     protocol's success carries data and its framing has
     ``final_as_challenge=False``); call :attr:`Authenticated.logout` when the
     session ends;
   * :class:`Refused`: send the reply for :attr:`Refused.kind` (a
     :class:`FailureKind`); for ``TOO_MANY_FAILURES`` send the bad-credentials
     reply, then the protocol's closing reply, and disconnect.  SMTP's map:
     BAD_CREDENTIALS ``535 5.7.8``, CANCELLED ``501 5.5.0``, MALFORMED
     ``501 5.5.2``, UNDECODABLE ``501 5.5.4``, NOT_OFFERED ``504 5.5.4``, ENCRYPTION_REQUIRED
     ``538 5.7.11``, TEMPORARY ``454 4.7.0``, TOO_MANY_FAILURES ``535`` then ``421``.

6. **If the line is unusable** (too long, bad line ending), call
   :meth:`SASLExchange.abort` and answer with the protocol's own error.
   **On connection loss**, call :meth:`SASLExchange.abort` too: a check that
   is waiting its turn leaves the address's queue, and a Deferred still
   pending then fires with ``Refused(CANCELLED)``, which the protocol ignores.

The penalty is the driver's business, not the protocol's: a refusal's
Deferred fires only when the penalty it started is over, and a check from a
penalised address starts only when its penalty is over, so the protocol
needs no timer of its own.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Union

from twisted.cred.credentials import ICredentials, UsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.cred.portal import Portal
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.core.auth import IAuthenticated, password_portal, store_mechanisms
from netproto_twisted.core.login_cache import VerifiedPasswordCache
from netproto_twisted.core.login_delay import LoginPenalty, TooManyWaiting
from netproto_twisted.core.passwords import IScramStore, PasswordFile, Runner
from netproto_twisted.core.sasl import (
    MECHANISM_PREFERENCE,
    SCRAM_SHA_256,
    AuthenticationCancelled,
    AuthenticationFailed,
    Challenge,
    SASLError,
    SASLServer,
    Success,
    decode_response,
    encode_challenge,
)

__all__ = [
    "IMAP_FRAMING",
    "NNTP_FRAMING",
    "POP3_FRAMING",
    "SMTP_FRAMING",
    "Authenticated",
    "Authenticator",
    "FailureKind",
    "Framing",
    "Outcome",
    "Refused",
    "SASLExchange",
    "SendChallenge",
]

_log = Logger(namespace="netproto.auth")


class FailureKind(enum.Enum):
    """Why an exchange ended without a login; each protocol maps it to its own reply."""

    #: The credentials were refused (unknown user and wrong password look the same).
    BAD_CREDENTIALS = "bad-credentials"
    #: The client sent ``*``.
    CANCELLED = "cancelled"
    #: Not the mechanism's syntax, an initial response where none may be, a line out of turn.
    MALFORMED = "malformed"
    #: A response (or initial response) that is not base64; a protocol without a
    #: reply of its own for this answers as for MALFORMED.
    UNDECODABLE = "undecodable"
    #: The mechanism is unknown, or not offered now (by the operator's list or the store).
    NOT_OFFERED = "mechanism-not-offered"
    #: No mechanism is offered on this connection before TLS.
    ENCRYPTION_REQUIRED = "encryption-required"
    #: Our fault (the store failed), or too many attempts from the address waiting: try later.
    TEMPORARY = "temporary"
    #: Refused, and the session had too many failures: reply, then disconnect.
    TOO_MANY_FAILURES = "too-many-failures"


@dataclass(frozen=True)
class SendChallenge:
    """The exchange goes on: write :attr:`line` and feed the client's next line."""

    #: The challenge itself (decoded).
    data: bytes
    #: The challenge framed for the wire (``334 <b64>\r\n``), ready to write.
    line: bytes


@dataclass(frozen=True)
class Authenticated:
    """The client logged in."""

    username: str
    #: The avatar interface the portal gave (one of the authenticator's ``interfaces``).
    interface: Any
    avatar: object
    #: Call when the session ends.
    logout: Callable[[], None]
    #: SCRAM's ``v=`` for a framing with ``final_as_challenge=False``; else None.
    final_data: bytes | None = None


@dataclass(frozen=True)
class Refused:
    """The exchange ended without a login (the session goes on unless :attr:`disconnect`)."""

    kind: FailureKind
    #: A short explanation for logs (never a secret).
    reason: str = ""

    @property
    def disconnect(self) -> bool:
        """True when the protocol must close the session after its reply."""
        return self.kind is FailureKind.TOO_MANY_FAILURES


#: What one step of an exchange ends in.
Outcome = Union[SendChallenge, Authenticated, Refused]  # noqa: UP007


@dataclass(frozen=True)
class Framing:
    """How a protocol frames the exchange: the challenge line, initial responses, SCRAM's end.

    :ivar prefix: what precedes a base64 challenge (``b"334 "``, ``b"+ "``, ``b"383 "``).
    :ivar line_end: the line terminator written after it.
    :ivar initial_response: whether the AUTH command may carry an initial
        response (SMTP, POP3 and NNTP always; IMAP only with SASL-IR).
    :ivar final_as_challenge: SCRAM's ``v=`` goes out as one more challenge
        (whose empty answer completes the login) because the success reply
        cannot carry data; False for a protocol whose success can (IMAP4rev2).

    A protocol with stranger needs subclasses it and overrides :meth:`challenge_line`.
    """

    prefix: bytes
    line_end: bytes = b"\r\n"
    initial_response: bool = True
    final_as_challenge: bool = True

    def challenge_line(self, data: bytes) -> bytes:
        """Return the wire line carrying challenge *data* (base64; empty data, empty text)."""
        return self.prefix + encode_challenge(data) + self.line_end


#: SMTP (RFC 4954): ``334 <b64>``.
SMTP_FRAMING = Framing(b"334 ")
#: POP3 (RFC 5034): ``+ <b64>``.
POP3_FRAMING = Framing(b"+ ")
#: IMAP4rev1 with SASL-IR (RFC 3501, RFC 4959): ``+ <b64>``.
IMAP_FRAMING = Framing(b"+ ")
#: NNTP (RFC 4643): ``383 <b64>``.
NNTP_FRAMING = Framing(b"383 ")


class _GatedPortal:
    """A portal whose every login waits its turn and the address's penalty first."""

    def __init__(self, portal: Portal, delay: LoginPenalty, host: str) -> None:
        self._portal = portal
        self._delay = delay
        self._host = host

    def login(self, credentials: ICredentials, mind: object, *interfaces: Any) -> Deferred[Any]:
        """Run the portal's login in the address's turn, after its penalty."""
        return self._delay.attempt(
            self._host, lambda: self._portal.login(credentials, mind, *interfaces)
        )


class Authenticator:
    """What one listener's AUTH shares: portal, penalty, and the mechanism policy.

    :param portal: checks credentials and gives the avatar.
    :param login_delay: the per-address penalty (share one across listeners).
    :param interfaces: the avatar interfaces asked of the portal.
    :param scram_store: where SCRAM salts come from; without one SCRAM is not offered.
    :param store_mechanisms: returns the mechanisms the credential store can
        serve now (:func:`~netproto_twisted.core.auth.store_mechanisms`);
        ``None``: every mechanism.
    :param mechanisms: the operator's list (``--auth-mechanisms``), in the
        order to advertise; empty or ``None``: every mechanism, strongest first.
    :param allow_insecure: offer AUTH without TLS, to loopback peers only.
    :param hostname: the server's name (in CRAM-MD5 challenges).

    **The offer rule**: no mechanism at all before TLS (a client would send
    its user name in clear, and a man in the middle could strip STARTTLS),
    except to a loopback peer when *allow_insecure* is set, which gets every
    mechanism; after TLS, the operator's list, minus what the store cannot
    serve (CRAM-MD5 when no user has a CRAM-MD5 secret, SCRAM without a
    SCRAM store).
    """

    def __init__(
        self,
        portal: Portal,
        login_delay: LoginPenalty,
        *,
        interfaces: Sequence[Any] = (IAuthenticated,),
        scram_store: IScramStore | None = None,
        store_mechanisms: Callable[[], Collection[str]] | None = None,
        mechanisms: Sequence[str] | None = None,
        allow_insecure: bool = False,
        hostname: str = "localhost",
    ) -> None:
        names = tuple(m.upper() for m in mechanisms or ())
        unknown = [m for m in names if m not in MECHANISM_PREFERENCE]
        if unknown:
            raise ValueError(f"unsupported SASL mechanism(s): {', '.join(unknown)}")
        self.portal = portal
        self.login_delay = login_delay
        self.interfaces = tuple(interfaces)
        self.scram_store = scram_store
        self.store_mechanisms = store_mechanisms
        self.mechanisms: tuple[str, ...] = tuple(dict.fromkeys(names)) or MECHANISM_PREFERENCE
        self.allow_insecure = allow_insecure
        self.hostname = hostname

    @classmethod
    def for_password_file(
        cls,
        password_file: PasswordFile,
        runner: Runner,
        login_delay: LoginPenalty,
        *,
        mechanisms: Sequence[str] | None = None,
        allow_insecure: bool = False,
        hostname: str = "localhost",
        cache: VerifiedPasswordCache | None = None,
    ) -> Authenticator:
        """The usual one: :func:`~netproto_twisted.core.auth.password_portal` over the file."""
        return cls(
            password_portal(password_file, runner, cache=cache),
            login_delay,
            scram_store=password_file,
            store_mechanisms=lambda: store_mechanisms(password_file),
            mechanisms=mechanisms,
            allow_insecure=allow_insecure,
            hostname=hostname,
        )

    def offered(self, *, secure: bool, peer_is_loopback: bool = False) -> list[str]:
        """The mechanisms to advertise to a peer (see the offer rule); may be empty."""
        if not secure and not (self.allow_insecure and peer_is_loopback):
            return []
        names = list(self.mechanisms)
        if self.scram_store is None:
            names = [n for n in names if n != SCRAM_SHA_256]
        if self.store_mechanisms is not None:
            servable = self.store_mechanisms()
            names = [n for n in names if n in servable]
        return names

    def exchange(
        self, framing: Framing, *, peer: str, peer_is_loopback: bool = False
    ) -> SASLExchange:
        """Return the driver for one connection from *peer* (its IP text; ``""`` for unix)."""
        return SASLExchange(self, framing, peer=peer, peer_is_loopback=peer_is_loopback)


class SASLExchange:
    """One connection's AUTH: runs one exchange at a time and counts its failures.

    See the module docstring for the protocol's side of it.
    """

    def __init__(
        self,
        authenticator: Authenticator,
        framing: Framing,
        *,
        peer: str,
        peer_is_loopback: bool = False,
    ) -> None:
        self.authenticator = authenticator
        self.framing = framing
        self.peer = peer
        self.peer_is_loopback = peer_is_loopback
        #: Refused logins (bad credentials) in this session so far.
        self.failures = 0
        self._server: SASLServer | None = None
        self._pending: Deferred[Outcome] | None = None
        self._gate = _GatedPortal(authenticator.portal, authenticator.login_delay, peer or "unix")

    @property
    def active(self) -> bool:
        """True between :meth:`start` and the exchange's end: lines go to :meth:`feed`."""
        return self._server is not None

    def mechanisms(self, *, secure: bool) -> list[str]:
        """The mechanisms to advertise on this connection now (empty: offer no AUTH)."""
        return self.authenticator.offered(secure=secure, peer_is_loopback=self.peer_is_loopback)

    def start(
        self, mechanism: str, initial_response: bytes | None, *, secure: bool
    ) -> Deferred[Outcome]:
        """Begin an exchange; *initial_response* as on the wire (base64, ``=``, or None)."""
        if self._server is not None:
            return succeed(Refused(FailureKind.MALFORMED, "an exchange is already running"))
        name = mechanism.upper()
        offered = self.mechanisms(secure=secure)
        if name not in offered:
            if not secure and not offered:
                return succeed(Refused(FailureKind.ENCRYPTION_REQUIRED, "AUTH needs TLS first"))
            return succeed(Refused(FailureKind.NOT_OFFERED, f"{name[:40]} is not offered"))
        initial: bytes | None = None
        if initial_response is not None:
            if not self.framing.initial_response:
                return succeed(Refused(FailureKind.MALFORMED, "no initial response allowed"))
            try:
                initial = decode_response(initial_response)
            except AuthenticationCancelled:
                return succeed(Refused(FailureKind.CANCELLED, "cancelled by the client"))
            except SASLError:
                return succeed(Refused(FailureKind.UNDECODABLE, "initial response is not base64"))
        auth = self.authenticator
        self._server = SASLServer(
            name,
            self._gate,
            auth.interfaces,
            scram_store=auth.scram_store,
            hostname=auth.hostname,
            final_as_challenge=self.framing.final_as_challenge,
        )
        return self._step(self._server.start(initial))

    def feed(self, line: bytes) -> Deferred[Outcome]:
        """Feed the client's next line (without its line ending) to the running exchange."""
        server = self._server
        if server is None or self._pending is not None:
            return succeed(Refused(FailureKind.MALFORMED, "no response expected now"))
        try:
            data = decode_response(line)
        except AuthenticationCancelled:
            self._end()
            return succeed(Refused(FailureKind.CANCELLED, "cancelled by the client"))
        except SASLError:
            self._end()
            return succeed(Refused(FailureKind.UNDECODABLE, "response is not base64"))
        return self._step(server.respond(data))

    def check_password(self, username: str, password: str) -> Deferred[Authenticated | Refused]:
        """Check a plain ``username``/``password`` login (POP3 ``USER``/``PASS``, IMAP ``LOGIN``).

        The check takes the address's turn and penalty as an exchange does,
        and a refusal counts towards the same limit of failures per session,
        so a client cannot get more guesses by mixing the two ways to log
        in.  Fires with :class:`Authenticated` or :class:`Refused` (never
        fails).
        """
        credentials = UsernamePassword(
            username.encode("utf-8", "surrogateescape"),
            password.encode("utf-8", "surrogateescape"),
        )
        d: Deferred[Any] = self._gate.login(credentials, None, *self.authenticator.interfaces)

        def checked(result: Any) -> Authenticated | Refused:
            if isinstance(result, Failure):
                return self._refusal(result)
            interface, avatar, logout = result
            name = str(avatar)
            _log.info("authenticated {user} from {peer}", user=name, peer=self.peer or "unix")
            return Authenticated(name, interface, avatar, logout)

        return d.addBoth(checked)

    def abort(self) -> None:
        """End the running exchange, if any (line unusable, connection lost); idempotent.

        A check waiting for its turn is withdrawn; a Deferred still pending
        fires with ``Refused(CANCELLED)``.
        """
        pending, self._pending = self._pending, None
        self._end()
        if pending is not None:
            pending.cancel()

    def _end(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.abort()

    def _step(self, d: Deferred[Challenge | Success]) -> Deferred[Outcome]:
        outcome: Deferred[Outcome] = d.addBoth(self._outcome)
        if not outcome.called:
            self._pending = outcome

            def clear(result: Outcome) -> Outcome:
                if self._pending is outcome:
                    self._pending = None
                return result

            outcome.addBoth(clear)
        return outcome

    def _outcome(self, result: Challenge | Success | Failure) -> Outcome:
        if isinstance(result, Challenge):
            if self._server is None:  # aborted meanwhile
                return Refused(FailureKind.CANCELLED, "exchange aborted")
            return SendChallenge(result.data, self.framing.challenge_line(result.data))
        self._server = None
        if isinstance(result, Success):
            _log.info(
                "authenticated {user} from {peer}", user=result.username, peer=self.peer or "unix"
            )
            return Authenticated(
                result.username, result.interface, result.avatar, result.logout, result.final_data
            )
        return self._refusal(result)

    def _refusal(self, result: Failure) -> Refused:
        """Map a failed check to its :class:`Refused`, counting refused credentials."""
        if result.check(CancelledError):
            return Refused(FailureKind.CANCELLED, "exchange aborted")
        if result.check(UnauthorizedLogin, AuthenticationFailed):
            self.failures += 1
            _log.info("authentication failed from {peer}", peer=self.peer or "unix")
            if self.authenticator.login_delay.should_disconnect(self.failures):
                return Refused(FailureKind.TOO_MANY_FAILURES, "too many failed logins")
            return Refused(FailureKind.BAD_CREDENTIALS, "credentials refused")
        if result.check(TooManyWaiting):
            return Refused(FailureKind.TEMPORARY, "too many attempts waiting from this address")
        if result.check(SASLError):
            return Refused(FailureKind.MALFORMED, result.getErrorMessage()[:200])
        if not result.check(UnhandledCredentials):
            _log.failure("authentication exchange failed", result)
        return Refused(FailureKind.TEMPORARY, "authentication is temporarily unavailable")

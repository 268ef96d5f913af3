"""An SMTP capture server for users' trial suites: our real ESMTP server, messages kept in memory.

:func:`start_smtp_capture` starts :class:`~netproto_twisted.smtp.SMTPServerFactory`
in-process on ``127.0.0.1`` port 0 with a capture delivery target and fires
with an :class:`SMTPCapture`: where it listens, the messages received so far
(each parsed into an :class:`email.message.EmailMessage` with
``email.policy.default``, plus its envelope and raw bytes), a
:meth:`~SMTPCapture.wait_for_messages` that fires once enough have arrived
(or fails after a timeout measured by the reactor's clock), and a
:meth:`~SMTPCapture.stop` that closes the port and every connection and
leaves no delayed call behind::

    from twisted.internet import reactor
    from twisted.trial.unittest import TestCase
    from netproto_twisted.testing import start_smtp_capture

    class SignupMailTests(TestCase):
        async def test_welcome_mail(self):
            capture = await start_smtp_capture(reactor)
            self.addCleanup(capture.stop)
            await myapp.signup("ann@example.org", smtp=(capture.host, capture.port))
            [message] = await capture.wait_for_messages(1)
            self.assertEqual(message["To"], "ann@example.org")

Every capture is independent (its own port, target, policy and waiters), so
several may run in one test.
"""

from __future__ import annotations

import email
import email.policy
import hmac
import os
import shutil
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernameHashedPassword, IUsernamePassword
from twisted.cred.error import UnauthorizedLogin, UnhandledCredentials
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from netproto_twisted.core.access import ConnectionGuard, LoginDelay
from netproto_twisted.core.errors import NetprotoError
from netproto_twisted.core.passwords import (
    IScramCredentials,
    IScramStore,
    ScramRecord,
    mock_scram_record,
)
from netproto_twisted.core.service import EndpointsService
from netproto_twisted.core.tls import PathArg, ensure_dev_certificate, server_context
from netproto_twisted.smtp._codes import BINARYMIME
from netproto_twisted.smtp._params import MailFrom, RcptTo
from netproto_twisted.smtp.delivery import CapturedMessage, CaptureTarget, DefaultPolicy
from netproto_twisted.smtp.interfaces import (
    Envelope,
    IDeliveryTarget,
    IMessageSink,
    IRecipientPolicy,
    SessionInfo,
)
from netproto_twisted.smtp.server import ServerSettings, SMTPRealm, SMTPServerFactory

__all__ = [
    "DEFAULT_CAPTURE_MAX_SIZE",
    "CapturedMail",
    "SMTPCapture",
    "SMTPCaptureStopped",
    "SMTPCaptureTimeout",
    "start_smtp_capture",
]

_log = Logger(namespace="netproto.testing.smtp")

#: The largest message a capture accepts unless told otherwise (as the server's default).
DEFAULT_CAPTURE_MAX_SIZE = 35 * 1024 * 1024
#: SCRAM iterations for the in-memory users (tests: cheap, still a real exchange).
_SCRAM_ITERATIONS = 4096
#: Seconds :meth:`SMTPCapture.stop` lets clients close before aborting them.
_CLOSE_TIMEOUT = 2.0
_RECEIVED = b"received:"
_PENDING = object()


class SMTPCaptureTimeout(NetprotoError, TimeoutError):
    """:meth:`SMTPCapture.wait_for_messages` saw fewer messages than asked before its timeout."""


class SMTPCaptureStopped(NetprotoError):
    """The capture was stopped while a :meth:`SMTPCapture.wait_for_messages` was pending."""


@dataclass(frozen=True)
class CapturedMail:
    """One message the capture server accepted: the parsed message, its envelope and its bytes."""

    #: The message parsed with ``email.policy.default`` (from :attr:`raw` with
    #: ``\n`` line ends, as the :mod:`email` package expects; ``BINARYMIME``
    #: messages as they are).
    message: EmailMessage
    #: The envelope sender (``""`` for the null sender ``<>``).
    mail_from: str
    #: The envelope recipients, in RCPT order.
    rcpt_to: list[str]
    #: The message as the client sent it (dot-unstuffed, CRLF line ends).
    raw: bytes
    #: The full envelope: MAIL/RCPT parameters (DSN, SMTPUTF8...), HELO, AUTH identity, TLS.
    envelope: Envelope
    #: The ``Received:`` header the server prepended (not part of :attr:`raw`/:attr:`message`).
    received: str = ""


@implementer(IRecipientPolicy)
class _AcceptAll:
    """Every sender, every recipient: all go to the capture."""

    def __init__(self, target: IDeliveryTarget) -> None:
        self.target = target

    def check_sender(self, session: SessionInfo, mail_from: MailFrom) -> Deferred[None]:
        return succeed(None)

    def route(
        self, session: SessionInfo, mail_from: MailFrom, rcpt: RcptTo
    ) -> Deferred[IDeliveryTarget]:
        return succeed(self.target)


@implementer(ICredentialsChecker, IScramStore)
class _MemoryUsers:
    """An in-memory user table: PLAIN/LOGIN, CRAM-MD5 and SCRAM-SHA-256 (cheap iterations)."""

    credentialInterfaces = (IScramCredentials, IUsernamePassword, IUsernameHashedPassword)

    def __init__(self, users: Mapping[str, str]) -> None:
        self._passwords = dict(users)
        self._scram = {
            name: ScramRecord.from_password(password, iterations=_SCRAM_ITERATIONS)
            for name, password in self._passwords.items()
        }
        self._mock_key = os.urandom(32)

    def scram_record(self, name: str) -> ScramRecord | None:
        return self._scram.get(name)

    def mock_scram_record(self, name: str) -> ScramRecord:
        return mock_scram_record(name, self._mock_key, _SCRAM_ITERATIONS)

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes | tuple[()]]:
        """Fire with the user name (UTF-8) or fail with UnauthorizedLogin."""
        if IScramCredentials.providedBy(credentials):
            name = str(credentials.username)
            record = self._scram.get(name)
            target = record or self.mock_scram_record(name)
            return self._result(name, credentials.check_proof(target.stored_key) and bool(record))
        name = self._name(credentials.username)
        password = self._passwords.get(name)
        if IUsernamePassword.providedBy(credentials):
            given = bytes(credentials.password)
            expected = (password or "\0").encode("utf-8")
            return self._result(
                name, hmac.compare_digest(given, expected) and password is not None
            )
        if IUsernameHashedPassword.providedBy(credentials):
            secret = password.encode("utf-8") if password is not None else os.urandom(16)
            return self._result(name, credentials.checkPassword(secret) and password is not None)
        return fail(UnhandledCredentials(f"cannot check {type(credentials).__name__}"))

    @staticmethod
    def _name(raw: object) -> str:
        if isinstance(raw, bytes):
            return raw.decode("utf-8", "replace")
        return str(raw)

    @staticmethod
    def _result(name: str, ok: bool) -> Deferred[bytes | tuple[()]]:
        if ok:
            return succeed(name.encode("utf-8"))
        return fail(UnauthorizedLogin("authentication failed"))


@implementer(IMessageSink)
class _Sink:
    """Wraps a :class:`CaptureTarget` sink: remembers the trace header, reports commits."""

    def __init__(self, capture: SMTPCapture, inner: IMessageSink) -> None:
        self._capture = capture
        self._inner = inner
        self._received = b""
        self._first = True

    def write(self, data: bytes) -> None:
        if self._first:
            self._first = False
            # The server writes its Received header first (IMessageSink's contract).
            if data[: len(_RECEIVED)].lower() == _RECEIVED:
                self._received = data
        self._inner.write(data)

    def commit(self) -> Deferred[str]:
        return self._inner.commit().addCallback(self._committed)

    def _committed(self, queue_id: str) -> str:
        try:
            self._capture._arrived(self._received)
        except Exception:
            _log.failure("recording a captured message failed")
        return queue_id

    def abort(self) -> None:
        self._inner.abort()


@implementer(IDeliveryTarget)
class _Target:
    """The capture's delivery target: a :class:`CaptureTarget` seen through :class:`_Sink`."""

    def __init__(self, capture: SMTPCapture, inner: CaptureTarget) -> None:
        self._capture = capture
        self._inner = inner

    def open(self, envelope: Envelope, recipients: Sequence[RcptTo]) -> IMessageSink:
        return _Sink(self._capture, self._inner.open(envelope, recipients))


def _to_mail(captured: CapturedMessage, received: bytes) -> CapturedMail:
    raw = captured.data
    if received and raw.startswith(received):
        raw = raw[len(received) :]
    envelope = captured.envelope
    # Python's email package expects "\n" line ends (its get_content() keeps "\r\n").
    source = raw if envelope.mail_from.body == BINARYMIME else raw.replace(b"\r\n", b"\n")
    message = email.message_from_bytes(source, policy=email.policy.default)
    return CapturedMail(
        message=message,
        mail_from=envelope.mail_from.address,
        rcpt_to=[r.address for r in captured.recipients],
        raw=raw,
        envelope=envelope,
        received=received.decode("utf-8", "replace").rstrip("\r\n"),
    )


@dataclass
class _Waiter:
    count: int
    deferred: Deferred[list[EmailMessage]]
    call: IDelayedCall | None = None


@dataclass
class SMTPCapture:
    """A running capture server: where it listens, what it received, and how to stop it."""

    #: The host it listens on (``127.0.0.1``).
    host: str
    #: Its (ephemeral) port.
    port: int
    #: The captured messages, in the order the server accepted them.
    messages: list[CapturedMail]
    #: The server's name (greeting, EHLO, Received).
    hostname: str
    #: With TLS: the certificate clients should trust (it names ``localhost``
    #: and ``127.0.0.1``); ``None`` without TLS.
    tls_certificate: Path | None
    #: The :class:`~netproto_twisted.smtp.CaptureTarget` behind the capture:
    #: ``target.fail_commits = True`` makes the server answer ``451`` to the
    #: end of every message; ``target.aborted`` counts discarded messages.
    target: CaptureTarget
    _reactor: Any = field(repr=False)
    _service: EndpointsService | None = field(default=None, repr=False)
    _temp_dir: str | None = field(default=None, repr=False)
    _waiters: list[_Waiter] = field(default_factory=list, repr=False)
    _notify: IDelayedCall | None = field(default=None, repr=False)
    _stopping: Deferred[None] | None = field(default=None, repr=False)
    _stop_result: object = field(default=None, repr=False)
    _stop_waiters: list[Deferred[None]] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._stop_result = _PENDING

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, as ``smtplib.SMTP(*capture.address)`` takes it."""
        return self.host, self.port

    # -- messages -----------------------------------------------------------------------

    def _arrived(self, received: bytes) -> None:
        captured = self.target.messages[-1]
        self.messages.append(_to_mail(captured, received))
        # Waiters run once the server has said 250 (its reply follows this commit).
        if self._waiters and self._notify is None and self._stopping is None:
            self._notify = self._reactor.callLater(0, self._wake)

    def _wake(self) -> None:
        self._notify = None
        ready = [w for w in self._waiters if len(self.messages) >= w.count]
        for waiter in ready:
            self._waiters.remove(waiter)
            if waiter.call is not None and waiter.call.active():
                waiter.call.cancel()
            waiter.deferred.callback([m.message for m in self.messages[: waiter.count]])

    def wait_for_messages(
        self, count: int = 1, *, timeout: float = 10.0
    ) -> Deferred[list[EmailMessage]]:
        """Fire with the first ``count`` parsed messages once that many arrived.

        Fails with :class:`SMTPCaptureTimeout` if they have not arrived within
        ``timeout`` seconds of the reactor's clock, and with
        :class:`SMTPCaptureStopped` if :meth:`stop` is called first.
        Counting starts from the last :meth:`clear`.  The envelopes are in
        :attr:`messages`.  Cancelling the Deferred forgets the wait.
        """
        if count < 0:
            raise ValueError("count must not be negative")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if self._stopping is not None:
            return fail(SMTPCaptureStopped(f"the SMTP capture on port {self.port} is stopped"))
        if len(self.messages) >= count:
            return succeed([m.message for m in self.messages[:count]])

        def cancel(_: Deferred[list[EmailMessage]]) -> None:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            if waiter.call is not None and waiter.call.active():
                waiter.call.cancel()

        waiter = _Waiter(count, Deferred(cancel))

        def expire() -> None:
            self._waiters.remove(waiter)
            waiter.deferred.errback(
                SMTPCaptureTimeout(
                    f"waited {timeout:g} s for {count} message(s) on the SMTP capture at "
                    f"{self.host}:{self.port}; {len(self.messages)} arrived"
                    f" ({self.target.aborted} aborted or refused after DATA)"
                )
            )

        waiter.call = self._reactor.callLater(timeout, expire)
        self._waiters.append(waiter)
        return waiter.deferred

    def clear(self) -> None:
        """Forget the messages captured so far (pending waits count from here)."""
        self.messages.clear()
        self.target.messages.clear()

    # -- stopping -----------------------------------------------------------------------

    def stop(self) -> Deferred[None]:
        """Close the port and every connection, fail pending waits, remove the TLS files.

        Fires once all is closed; the reactor then holds nothing of the
        capture.  Calling it again returns a Deferred for the same stop.
        """
        if self._stopping is None:
            self._stopping = defer.ensureDeferred(self._stop())
            self._stopping.addBoth(self._stopped)
        d: Deferred[None] = Deferred()
        if self._stop_result is _PENDING:
            self._stop_waiters.append(d)
        else:
            _fire(d, self._stop_result)
        return d

    def _stopped(self, result: Failure | None) -> None:
        self._stop_result = result
        waiters, self._stop_waiters = self._stop_waiters, []
        for d in waiters:
            _fire(d, result)

    async def _stop(self) -> None:
        if self._notify is not None and self._notify.active():
            self._notify.cancel()
        self._notify = None
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if waiter.call is not None and waiter.call.active():
                waiter.call.cancel()
            waiter.deferred.errback(
                SMTPCaptureStopped(
                    f"the SMTP capture on port {self.port} stopped while waiting for "
                    f"{waiter.count} message(s); {len(self.messages)} arrived"
                )
            )
        try:
            if self._service is not None:
                await self._service.stopService()
        finally:
            if self._temp_dir is not None:
                shutil.rmtree(self._temp_dir, ignore_errors=True)

    async def __aenter__(self) -> SMTPCapture:
        """``async with await start_smtp_capture(reactor) as capture:`` stops it at the end."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _fire(d: Deferred[None], result: object) -> None:
    if isinstance(result, Failure):
        d.errback(result)
    else:
        d.callback(None)


def _tls_files(tls: bool | tuple[PathArg, PathArg]) -> tuple[Path, Path, str | None]:
    if isinstance(tls, tuple):
        cert, key = tls
        return Path(os.fspath(cast(Any, cert))), Path(os.fspath(cast(Any, key))), None
    temp_dir = tempfile.mkdtemp(prefix="netproto-smtp-capture-")
    try:
        cert_path, key_path = ensure_dev_certificate(temp_dir)
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    return cert_path, key_path, temp_dir


def _new_capture(reactor: Any, hostname: str) -> SMTPCapture:
    return SMTPCapture(
        host="",
        port=0,
        messages=[],
        hostname=hostname,
        tls_certificate=None,
        target=CaptureTarget(),
        _reactor=reactor,
    )


def _capture_factory(
    capture: SMTPCapture,
    reactor: Any,
    *,
    domains: Collection[str] | None,
    tls: bool | tuple[PathArg, PathArg],
    auth_users: Mapping[str, str] | None,
    require_auth: bool | None,
    require_tls: bool,
    max_size: int,
) -> SMTPServerFactory:
    """Build the capture's server factory (and its TLS files, removed by ``stop()``)."""
    if require_tls and not tls:
        raise ValueError("require_tls needs tls")
    if require_auth and not auth_users:
        raise ValueError("require_auth needs auth_users")
    target = _Target(capture, capture.target)
    policy: IRecipientPolicy = (
        _AcceptAll(target) if domains is None else DefaultPolicy(domains, target, None)
    )
    context = None
    if tls:
        cert, key, capture._temp_dir = _tls_files(tls)
        capture.tls_certificate = cert
        context = server_context(cert, key)
    portal = scram_store = None
    if auth_users:
        users = _MemoryUsers(auth_users)
        portal, scram_store = Portal(SMTPRealm(), [users]), users
    settings = ServerSettings(
        hostname=capture.hostname,
        max_size=max_size,
        require_auth=bool(auth_users) if require_auth is None else require_auth,
        require_tls=require_tls,
        allow_insecure_auth=not require_tls,
    )
    return SMTPServerFactory(
        reactor,
        policy,
        settings,
        tls=context,
        portal=portal,
        scram_store=scram_store,
        login_delay=LoginDelay(reactor, base=0.0, maximum=0.0),
    )


async def _start(
    reactor: Any,
    *,
    domains: Collection[str] | None,
    tls: bool | tuple[PathArg, PathArg],
    auth_users: Mapping[str, str] | None,
    require_auth: bool | None,
    require_tls: bool,
    max_size: int,
    hostname: str,
    listen: str,
) -> SMTPCapture:
    capture = _new_capture(reactor, hostname)
    factory = _capture_factory(
        capture,
        reactor,
        domains=domains,
        tls=tls,
        auth_users=auth_users,
        require_auth=require_auth,
        require_tls=require_tls,
        max_size=max_size,
    )
    guard = ConnectionGuard(factory, reactor)
    service = EndpointsService(
        "smtp-capture", reactor, [listen], guard=guard, close_timeout=_CLOSE_TIMEOUT
    )
    capture._service = service
    service.startService()
    try:
        addresses = await service.when_listening()
    except BaseException:
        await capture.stop()
        raise
    kind, where = addresses[0][0], addresses[0][1]
    if kind == "unix":
        capture.host, capture.port = where, 0
    else:
        host, _, port = where.rpartition(":")
        capture.host, capture.port = host.strip("[]"), int(port)
    return capture


def start_smtp_capture(
    reactor: Any,
    *,
    domains: Collection[str] | None = None,
    tls: bool | tuple[PathArg, PathArg] = False,
    auth_users: Mapping[str, str] | None = None,
    require_auth: bool | None = None,
    require_tls: bool = False,
    max_size: int = DEFAULT_CAPTURE_MAX_SIZE,
    hostname: str = "localhost",
    listen: str = "tcp:0:interface=127.0.0.1",
) -> Deferred[SMTPCapture]:
    """Start our ESMTP server in-process with a capture target; fire once it listens.

    :param reactor: the reactor to listen with and time waits by.
    :param domains: accept only recipients in these domains (others get
        ``554 5.7.1``); ``None`` accepts every recipient.
    :param tls: offer STARTTLS: ``True`` with a development certificate made
        in a temporary directory (see :attr:`SMTPCapture.tls_certificate`),
        or ``(cert_path, key_path)``.
    :param auth_users: ``{user: password}`` to offer AUTH (PLAIN, LOGIN,
        CRAM-MD5, SCRAM-SHA-256; also before TLS, the peer being loopback).
    :param require_auth: refuse MAIL before AUTH (``530 5.7.0``); by
        default, whenever ``auth_users`` is given.
    :param require_tls: refuse MAIL before STARTTLS, and offer AUTH only
        after it.
    :param max_size: the largest message accepted (advertised with SIZE).
    :param hostname: the server's name in its greeting and Received header.
    :param listen: the endpoint string (default: IPv4 loopback, any free port);
        with ``unix:PATH``, :attr:`SMTPCapture.host` is the path and ``port`` 0.
    """
    return defer.ensureDeferred(
        _start(
            reactor,
            domains=domains,
            tls=tls,
            auth_users=auth_users,
            require_auth=require_auth,
            require_tls=require_tls,
            max_size=max_size,
            hostname=hostname,
            listen=listen,
        )
    )

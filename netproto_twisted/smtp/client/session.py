"""The SMTP client: :func:`connect_smtp` for a session, :func:`send_mail` for one message.

Every call returns a :class:`~twisted.internet.defer.Deferred` (awaitable
from ``async def`` code).  :class:`SMTPClient` speaks ESMTP: PIPELINING when
offered, SMTPUTF8 / 8BITMIME / SIZE parameters when needed and offered, BDAT
(CHUNKING) for BINARYMIME or when asked, STARTTLS and implicit TLS with
certificate verification by default, AUTH through :mod:`netproto_twisted.core.sasl`.
Messages are streamed from bytes, binary files or body producers with
backpressure; one client sends any number of messages, one after the other.
Any argument holding CR, LF or NUL is refused with
:class:`~netproto_twisted.core.errors.LocalProtocolError` before anything
is sent.  Failures carry the reply's code and text (:mod:`.errors`).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Literal, TypeVar, cast

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.internet.error import TimeoutError as ConnectTimeout
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IReactorThreads,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from netproto_twisted.core import sasl
from netproto_twisted.core._twisted_compat import GenericFactory
from netproto_twisted.core.errors import LocalProtocolError
from netproto_twisted.core.net import is_loopback, normalize_host
from netproto_twisted.core.reactors import IConnectReactor
from netproto_twisted.core.tls import client_options
from netproto_twisted.smtp.client.protocol import TLS_FAILED, SMTPClientProtocol
from netproto_twisted.smtp.client.transaction import SendResult, Transaction, check_text
from netproto_twisted.smtp.errors import (
    SMTPAuthenticationError,
    SMTPConnectError,
    SMTPHeloError,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPResponseError,
    SMTPSenderRefused,
    SMTPServerDisconnected,
    SMTPTLSRequired,
)
from netproto_twisted.smtp.wire._codes import (
    AUTH,
    AUTH_CONTINUE,
    AUTH_OK,
    CLOSING,
    NOOP,
    QUIT,
    RSET,
    SERVICE_READY,
    SERVICE_UNAVAILABLE,
    STARTTLS,
)
from netproto_twisted.smtp.wire._params import (
    Extensions,
    format_mail_from,
    format_rcpt_to,
    parse_ehlo_reply,
)
from netproto_twisted.smtp.wire._syntax import (
    Reply,
    error_from_reply,
    format_auth,
    format_command,
    format_ehlo,
    format_helo,
)

__all__ = [
    "Recipient",
    "SMTPClient",
    "TLSMode",
    "connect_smtp",
    "send_mail",
]

_T = TypeVar("_T")

#: How :func:`connect_smtp` uses TLS.
TLSMode = Literal["starttls", "implicit", "opportunistic", "none"]
#: A recipient: an address, or ``(address, {RCPT parameter: value})``.
Recipient = str | tuple[str, Mapping[str, str | None]]

_TLS_MODES = ("starttls", "implicit", "opportunistic", "none")


def _run(coroutine: Coroutine[Any, Any, _T]) -> Deferred[_T]:
    return Deferred.fromCoroutine(coroutine)


def _local_name(transport: Any) -> str:
    """Return an EHLO name for the local end: an address literal (no blocking DNS lookup)."""
    try:
        host = transport.getHost()
    except Exception:
        return "localhost"
    if isinstance(host, IPv4Address):
        return f"[{normalize_host(host.host)}]"
    if isinstance(host, IPv6Address):
        address = normalize_host(host.host.split("%")[0])
        return f"[{address}]" if "." in address and ":" not in address else f"[IPv6:{address}]"
    return "localhost"


class SMTPClient:
    """An SMTP session: send messages, or drive it verb by verb.

    Built by :func:`connect_smtp`.  The low-level verbs return a Deferred
    that fires with the :class:`~netproto_twisted.smtp.Reply` on success
    (2xx/3xx) and fails with an :class:`~netproto_twisted.smtp.SMTPResponseError`
    subclass carrying the code and text otherwise.

    :ivar extensions: what the last EHLO reply offered (empty after HELO).
    :ivar peer_host: the host name or address the client connected to.
    """

    _log = Logger()

    def __init__(
        self,
        protocol: SMTPClientProtocol,
        *,
        reactor: object = None,
        peer_host: str = "",
        runner: Callable[[Callable[[], bytes]], Deferred[bytes]] | None = None,
    ) -> None:
        self.protocol = protocol
        self.peer_host = peer_host
        self.extensions = Extensions()
        self.helo_name = ""
        self.esmtp = False
        self.authenticated_as: str | None = None
        self._reactor = reactor
        self._runner = runner
        self._lock = DeferredLock()

    # --- state ------------------------------------------------------------------------

    @property
    def is_secure(self) -> bool:
        """Whether the session runs over TLS (implicit, or after STARTTLS)."""
        return self.protocol.is_secure

    @property
    def connected(self) -> bool:
        """Whether the connection is still open and usable."""
        return self.protocol.usable

    def when_closed(self) -> Deferred[None]:
        """Return a Deferred that fires once the connection is closed."""
        d: Deferred[None] = Deferred()

        def fire(result: None) -> None:
            d.callback(None)

        self.protocol.closed.addCallback(fire)
        return d

    def _expect_ok(
        self, d: Deferred[Reply], cls: type[SMTPResponseError] = SMTPResponseError, **extra: Any
    ) -> Deferred[Reply]:
        return d.addCallback(lambda reply: reply.raise_for_status(cls, **extra))

    # --- low-level verbs ----------------------------------------------------------------

    def ehlo(self, name: str | None = None) -> Deferred[Reply]:
        """Send EHLO and record the server's extensions (fails with SMTPHeloError)."""
        name = name or self.helo_name or _local_name(self.protocol.transport)
        line = format_ehlo(name)

        def got(reply: Reply) -> Reply:
            self.extensions = parse_ehlo_reply(reply)
            self.helo_name = name
            self.esmtp = True
            return reply

        return self.protocol.command(line).addCallback(got)

    def helo(self, name: str | None = None) -> Deferred[Reply]:
        """Send HELO (no extensions afterwards; fails with SMTPHeloError)."""
        name = name or self.helo_name or _local_name(self.protocol.transport)
        line = format_helo(name)

        def got(reply: Reply) -> Reply:
            reply.raise_for_status(SMTPHeloError)
            self.extensions = Extensions()
            self.helo_name = name
            self.esmtp = False
            return reply

        return self.protocol.command(line).addCallback(got)

    def ehlo_or_helo(self, name: str | None = None) -> Deferred[Reply]:
        """Send EHLO, and HELO if the server refuses EHLO with a 5xx reply."""

        async def run() -> Reply:
            try:
                return await self.ehlo(name)
            except SMTPHeloError as e:
                if e.code == SERVICE_UNAVAILABLE or not e.permanent:
                    raise
            return await self.helo(name)

        return _run(run())

    def starttls(
        self, tls_options: IOpenSSLClientConnectionCreator | None = None
    ) -> Deferred[Reply]:
        """Send STARTTLS, upgrade the connection, forget the extensions (send EHLO again).

        ``tls_options`` defaults to :func:`~netproto_twisted.core.tls.client_options`
        for :attr:`peer_host`: the certificate and host name are verified.
        Fails with :class:`~netproto_twisted.smtp.SMTPNotSupportedError` if
        STARTTLS is not offered, :class:`~netproto_twisted.smtp.SMTPTLSRequired`
        (code 454) if the handshake or the verification fails.
        """
        if self.is_secure:
            raise LocalProtocolError("TLS is already active on this connection")
        options = tls_options if tls_options is not None else client_options(self.peer_host)

        async def run() -> Reply:
            if self.esmtp and not self.extensions.has(STARTTLS):
                raise SMTPNotSupportedError("STARTTLS extension not supported by server")
            reply = await self.protocol.command(format_command(STARTTLS))
            if reply.code != SERVICE_READY:
                raise error_from_reply(reply, SMTPTLSRequired)
            await self.protocol.start_client_tls(options)
            self.extensions = Extensions()
            self.esmtp = False
            self.authenticated_as = None
            return reply

        return _run(run())

    def login(
        self,
        username: str,
        password: str,
        *,
        mechanism: str | None = None,
        allow_insecure: bool | None = None,
    ) -> Deferred[Reply]:
        """Authenticate with SASL: the strongest offered mechanism, or ``mechanism``.

        PLAIN and LOGIN are used only over TLS or to a loopback address,
        unless ``allow_insecure`` says otherwise.  SCRAM's key derivation
        runs in the reactor's thread pool.  Fails with
        :class:`~netproto_twisted.smtp.SMTPAuthenticationError` (the code
        and text of the refusal), or SMTPNotSupportedError.
        """
        check_text("user name", username)
        check_text("password", password)
        if allow_insecure is None:
            allow_insecure = is_loopback(self.peer_host)
        offered = self.extensions.auth_mechanisms
        if mechanism is None:
            if not self.extensions.has(AUTH):
                raise SMTPNotSupportedError("SMTP AUTH extension not supported by server")
            try:
                mechanism = sasl.choose_mechanism(
                    offered, self.is_secure, allow_plaintext_insecure=allow_insecure
                )
            except sasl.MechanismUnavailable as e:
                raise SMTPNotSupportedError(f"no usable AUTH mechanism: {e}") from None
        elif mechanism.upper() in sasl.PLAINTEXT_MECHANISMS and not (
            self.is_secure or allow_insecure
        ):
            raise SMTPNotSupportedError(f"{mechanism} would send the password in clear")
        mech = sasl.client_mechanism(mechanism, username, password)
        return _run(self._authenticate(mech, username))

    def _respond(self, mech: sasl.ClientMechanism, challenge: bytes, step: int) -> Deferred[bytes]:
        if mech.name != sasl.SCRAM_SHA_256 or step != 1:
            # Only SCRAM's first answer is costly (PBKDF2): that one runs in a thread.
            return Deferred.fromCoroutine(_value(mech.respond(challenge)))
        if self._runner is not None:
            return self._runner(lambda: mech.respond(challenge))
        if IReactorThreads.providedBy(self._reactor):
            pool = self._reactor.getThreadPool()
            return deferToThreadPool(self._reactor, pool, mech.respond, challenge)
        return Deferred.fromCoroutine(_value(mech.respond(challenge)))

    async def _authenticate(self, mech: sasl.ClientMechanism, username: str) -> Reply:
        reply = await self.protocol.command(format_auth(mech.name, mech.initial_response()))
        steps = 0
        while reply.code == AUTH_CONTINUE:
            steps += 1
            if steps > 8:
                self.protocol.write(b"*\r\n")
                await self.protocol.expect()
                raise SMTPAuthenticationError(535, "5.7.8 too many AUTH challenges")
            try:
                challenge = sasl.decode_challenge(reply.text.encode("ascii", "replace"))
                answer = await self._respond(mech, challenge, steps)
            except sasl.SASLError as e:
                # Cancel the exchange (RFC 4954 4) and report the local reason.
                reply = await self.protocol.command(b"*\r\n")
                raise SMTPAuthenticationError(535, f"5.7.8 {e}") from None
            reply = await self.protocol.command(sasl.encode_response(answer) + b"\r\n")
        if reply.code != AUTH_OK:
            raise error_from_reply(reply, SMTPAuthenticationError)
        try:
            mech.verify_final(b"")
        except sasl.SASLError as e:
            self.protocol.lose()
            raise SMTPAuthenticationError(535, f"5.7.8 {e}") from None
        self.authenticated_as = username
        return reply

    def mail(self, sender: str, params: Mapping[str, str | None] | None = None) -> Deferred[Reply]:
        """Send ``MAIL FROM:<sender> [params]`` (fails with SMTPSenderRefused)."""
        line = format_mail_from(sender, params)
        return self._expect_ok(self.protocol.command(line), SMTPSenderRefused, sender=sender)

    def rcpt(
        self, recipient: str, params: Mapping[str, str | None] | None = None
    ) -> Deferred[Reply]:
        """Send ``RCPT TO:<recipient> [params]`` (fails with SMTPRecipientsRefused)."""
        line = format_rcpt_to(recipient, params)

        def check(reply: Reply) -> Reply:
            if reply.code >= 400:
                error = SMTPRecipientsRefused({recipient: (reply.code, reply.status_text)})
                error.reply = reply
                raise error
            return reply

        return self.protocol.command(line).addCallback(check)

    def data(self, message: Any) -> Deferred[Reply]:
        """Send DATA and the message (dot-stuffed, streamed); fire with the final reply.

        Fails with :class:`~netproto_twisted.smtp.SMTPDataError` if the server
        refuses DATA or the message.
        """
        return _run(Transaction(self, message).data_only())

    def bdat(self, message: Any, *, binary: bool = False) -> Deferred[Reply]:
        """Send the message with BDAT (CHUNKING): chunks, the last one marked LAST.

        Line endings are normalised to CRLF unless ``binary``.  Fires with
        the reply to the last chunk; fails with SMTPDataError or
        SMTPNotSupportedError (no CHUNKING).
        """
        return _run(Transaction(self, message).bdat_only(binary=binary))

    def rset(self) -> Deferred[Reply]:
        """Send RSET: abort the current transaction."""
        return self._expect_ok(self.protocol.command(format_command(RSET)))

    def noop(self) -> Deferred[Reply]:
        """Send NOOP."""
        return self._expect_ok(self.protocol.command(format_command(NOOP)))

    def quit(self) -> Deferred[Reply | None]:
        """Send QUIT, wait for the reply, close; fire (with the reply) once the socket closed."""

        async def run() -> Reply | None:
            reply: Reply | None = None
            if self.protocol.usable:
                try:
                    reply = await self.protocol.command(format_command(QUIT))
                except SMTPResponseError:
                    reply = None
            self.protocol.lose()
            await self.when_closed()
            if reply is not None and reply.code != CLOSING:
                self._log.info("unexpected reply to QUIT: {reply}", reply=str(reply))
            return reply

        return _run(run())

    def close(self) -> None:
        """Close the connection without QUIT."""
        self.protocol.lose()

    # --- transactions -------------------------------------------------------------------

    def send_message(
        self,
        sender: str,
        recipients: Sequence[Recipient] | str,
        message: Any,
        *,
        mail_params: Mapping[str, str | None] | None = None,
        use_bdat: bool = False,
        body: str | None = None,
    ) -> Deferred[SendResult]:
        """Send one message to ``recipients`` in one transaction; fire with a :class:`SendResult`.

        ``message`` is bytes, a binary file object (read in chunks, from
        its current position), a path (``os.PathLike``) or a body producer
        (``IBodyProducer``-like).  The envelope is pipelined when the server
        offers PIPELINING.  ``SMTPUTF8`` is added when an address is not
        ASCII, ``SIZE`` when the size is known; DSN and AUTH parameters are
        left out when the server does not offer them.  ``body`` declares
        the content (``"7BIT"``, ``"8BITMIME"`` or ``"BINARYMIME"``, as
        ``mail_params["BODY"]`` does); undeclared, bytes and files are
        looked at (a file is scanned in the thread pool before MAIL) and a
        producer is sent as ``8BITMIME`` when the server offers it.  8-bit
        content to a server without 8BITMIME fails with
        SMTPNotSupportedError (554 5.6.3) before MAIL.  BDAT is used for
        ``BODY=BINARYMIME``, or with ``use_bdat`` when CHUNKING is offered.

        Concurrent calls on one client are queued and run one after the
        other.  After a refusal the transaction is reset (RSET) and the
        session stays usable.  Fails with SMTPSenderRefused,
        SMTPRecipientsRefused (every recipient refused: ``recipients`` maps
        each to ``(code, text)``), SMTPDataError, SMTPNotSupportedError,
        SMTPServerDisconnected, or LocalProtocolError (bad argument; nothing sent).
        """
        if isinstance(recipients, str):
            recipients = [recipients]
        tx = Transaction(self, message, use_bdat=use_bdat)
        tx.prepare(sender, recipients, mail_params, body=body)  # raises before anything is sent
        return self._lock.run(lambda: _run(tx.run()))


async def _value(value: _T) -> _T:
    return value


# --- connecting -------------------------------------------------------------------------------


class _ClientFactory(GenericFactory[SMTPClientProtocol]):
    def __init__(self, reactor: IReactorTime, timeout: float | None) -> None:
        self.reactor = reactor
        self.timeout = timeout

    def buildProtocol(self, addr: Any) -> SMTPClientProtocol:
        proto = SMTPClientProtocol(self.timeout)
        proto.factory = self
        proto.clock = self.reactor
        return proto


def connect_smtp(
    reactor: IConnectReactor,
    host: str,
    port: int = 25,
    *,
    helo: str | None = None,
    tls: TLSMode = "starttls",
    tls_options: IOpenSSLClientConnectionCreator | None = None,
    username: str | None = None,
    password: str | None = None,
    timeout: float = 30.0,
    bind_address: tuple[str, int] | None = None,
    endpoint: IStreamClientEndpoint | None = None,
) -> Deferred[SMTPClient]:
    """Connect, read the greeting, EHLO (HELO fallback), TLS per ``tls``, AUTH if a user is given.

    ``tls``: ``"starttls"`` (required: fail with SMTPTLSRequired if not
    offered), ``"implicit"`` (TLS from the first byte, port 465),
    ``"opportunistic"`` (STARTTLS if offered) or ``"none"``.  Verification
    follows ``tls_options``, by default
    :func:`~netproto_twisted.core.tls.client_options` for ``host`` (verifying).
    ``endpoint`` replaces the TCP connection to ``host``/``port`` (TLS is
    still added for ``"implicit"``).  ``timeout`` bounds the connection
    attempt and every wait for a reply.

    Fails with SMTPConnectError (no connection, or a greeting other than
    220), SMTPHeloError, SMTPTLSRequired, SMTPAuthenticationError,
    SMTPNotSupportedError, SMTPServerDisconnected; the connection is closed then.
    """
    if tls not in _TLS_MODES:
        raise ValueError(f"tls must be one of {_TLS_MODES}, not {tls!r}")
    if helo is not None:
        format_ehlo(helo)  # refuse a bad name before connecting
    if (username is None) != (password is None):
        raise ValueError("give both username and password, or neither")
    if username is not None and password is not None:
        check_text("user name", username)
        check_text("password", password)
    options = tls_options
    if options is None and tls != "none":
        options = client_options(host)
    if endpoint is None:
        endpoint = HostnameEndpoint(reactor, host, port, timeout=timeout, bindAddress=bind_address)
    if tls == "implicit":
        assert options is not None
        endpoint = wrapClientTLS(options, endpoint)

    async def run() -> SMTPClient:
        try:
            proto = cast(
                SMTPClientProtocol, await endpoint.connect(_ClientFactory(reactor, timeout))
            )
        except (ConnectError, DNSLookupError, ConnectTimeout) as e:
            raise SMTPConnectError(421, f"4.4.1 cannot connect to {host}:{port}: {e}") from e
        client = SMTPClient(proto, reactor=reactor, peer_host=host)
        try:
            await _open_session(client, helo, tls, options, username, password)
        except BaseException:
            client.protocol.lose(abort=True)
            await client.when_closed()
            raise
        return client

    return _run(run())


async def _open_session(
    client: SMTPClient,
    helo: str | None,
    tls: TLSMode,
    options: IOpenSSLClientConnectionCreator | None,
    username: str | None,
    password: str | None,
) -> None:
    greeting = await client.protocol.greeting
    if greeting.code != SERVICE_READY:
        raise error_from_reply(greeting, SMTPConnectError)
    await client.ehlo_or_helo(helo)
    if tls in ("starttls", "opportunistic") and not client.is_secure:
        if client.extensions.has(STARTTLS):
            try:
                await client.starttls(options)
            except SMTPResponseError as e:
                if isinstance(e, SMTPServerDisconnected):
                    raise
                raise SMTPTLSRequired(f"STARTTLS failed: {e.code} {e.text}", TLS_FAILED) from e
            await client.ehlo_or_helo(helo)
        elif tls == "starttls":
            raise SMTPTLSRequired("the server does not offer STARTTLS", TLS_FAILED)
    if username is not None and password is not None:
        await client.login(username, password)


def send_mail(
    reactor: IConnectReactor,
    host: str,
    port: int,
    sender: str,
    recipients: Sequence[Recipient] | str,
    message: Any,
    *,
    mail_params: Mapping[str, str | None] | None = None,
    body: str | None = None,
    **connect_kwargs: Any,
) -> Deferred[dict[str, tuple[int, str]]]:
    """Connect, send one message, QUIT; fire with the refused recipients like ``smtplib.sendmail``.

    The result maps each refused recipient to ``(code, text)`` (empty when
    all were accepted); the failures are those of :func:`connect_smtp` and
    :meth:`SMTPClient.send_message` (``mail_params`` and ``body`` are its
    arguments).  ``connect_kwargs`` go to :func:`connect_smtp`.
    """

    async def run() -> dict[str, tuple[int, str]]:
        client = await connect_smtp(reactor, host, port, **connect_kwargs)
        try:
            result = await client.send_message(
                sender, recipients, message, mail_params=mail_params, body=body
            )
        except BaseException:
            await client.quit()
            raise
        await client.quit()
        return result.refused_dict()

    return _run(run())

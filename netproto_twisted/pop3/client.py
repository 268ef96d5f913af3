"""A POP3 client: poplib's commands as Deferreds, SASL, STLS and implicit TLS, streamed RETR.

::

    client = await connect_pop3(reactor, "pop.example.org", 995, tls="implicit",
                                username="alice", password="secret")
    count, octets = await client.stat()
    for number, size in await client.list():
        data = await client.retr(number)              # bytes, for small messages
    with open("big.eml", "wb") as f:
        await client.retr(1, f)                        # streamed to a file (or a consumer)
    await client.dele(1)
    await client.quit()                               # deletions happen now

Every ``-ERR`` fails the command's Deferred with
:class:`~netproto_twisted.pop3.errors.POP3ReplyError` (the text and the
response code, as :class:`poplib.error_proto` carries them); a reply that is
not POP3 with :class:`~netproto_twisted.pop3.errors.POP3ProtocolError`;
a connection that closes or a reply that does not come within ``timeout``
with :class:`~netproto_twisted.pop3.errors.POP3ConnectionLost`.  Commands
may be issued without waiting (they are pipelined, and their replies matched
in order).
"""

from __future__ import annotations

import builtins
import hashlib
import re
from collections.abc import Callable
from typing import Any, Literal, Protocol, cast

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import (
    IConsumer,
    IOpenSSLClientConnectionCreator,
    IReactorTime,
    IStreamClientEndpoint,
)

from netproto_twisted.core.client import (
    PendingReply,
    ReplyQueueFactory,
    ReplyQueueProtocol,
    client_target,
    open_client,
)
from netproto_twisted.core.dotstuff import DotUnstuffer
from netproto_twisted.core.errors import RemoteProtocolError
from netproto_twisted.core.framing import LineEndings
from netproto_twisted.core.sasl import (
    SASLError,
    choose_mechanism,
    client_mechanism,
    decode_challenge,
    encode_response,
)
from netproto_twisted.core.tls import client_options
from netproto_twisted.pop3._wire import (
    format_command,
    parse_capabilities,
    parse_listing,
    parse_status,
    parse_unique_id,
)
from netproto_twisted.pop3.errors import POP3ConnectionLost, POP3Error, POP3ProtocolError

__all__ = ["DEFAULT_PORT", "DEFAULT_TLS_PORT", "POP3Client", "POP3ClientProtocol", "connect_pop3"]

#: The POP3 port (RFC 1939) and the implicit-TLS one (RFC 8314).
DEFAULT_PORT = 110
DEFAULT_TLS_PORT = 995
#: Longest status or challenge line accepted from a server, CRLF excluded.
MAX_REPLY_LINE = 64 * 1024

TLSMode = Literal["starttls", "implicit", "opportunistic", "none"]
_TLS_MODES = ("starttls", "implicit", "opportunistic", "none")
_TIMESTAMP = re.compile(rb"<[^<>\s]+@[^<>\s]+>")


class _Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


Sink = IConsumer | _Writable


class _Pending(PendingReply):
    """One command awaiting its reply."""

    __slots__ = ("challenge", "multiline", "sink", "status", "written")

    def __init__(
        self,
        multiline: bool,
        sink: Callable[[bytes], object] | None,
        challenge: Callable[[bytes], bytes] | None = None,
    ) -> None:
        super().__init__()
        self.multiline = multiline
        self.sink = sink
        self.challenge = challenge
        self.status = ""
        self.written = 0


class POP3ClientProtocol(ReplyQueueProtocol[_Pending, str]):
    """The line plumbing of a POP3 client: commands out, replies matched in order.

    :ivar greeting: fires with the greeting's text (fails on ``-ERR``).
    """

    line_endings = LineEndings.ACCEPT_LF
    max_line_length = MAX_REPLY_LINE
    lost_error = POP3ConnectionLost

    def __init__(self, clock: IReactorTime | None = None, timeout: float | None = 30.0) -> None:
        super().__init__(clock, timeout)
        self._unstuffer: DotUnstuffer | None = None
        self._collect: bytearray | None = None

    # -- commands ---------------------------------------------------------------------

    def command(
        self,
        line: bytes,
        *,
        multiline: bool = False,
        sink: Callable[[bytes], object] | None = None,
        challenge: Callable[[bytes], bytes] | None = None,
    ) -> Deferred[Any]:
        """Send ``line`` (a formatted command) and fire with its reply.

        Single-line: the ``+OK`` text.  Multi-line: ``(text, body)`` where
        ``body`` is the unstuffed data as bytes, or the octets given to
        ``sink`` when one is given.  ``challenge(data) -> response`` answers
        the ``+`` continuation lines of SASL.
        """
        d = self.enqueue(_Pending(multiline, sink, challenge))
        self.send_raw(line)
        return d

    # -- replies ----------------------------------------------------------------------

    def line_received(self, line: bytes) -> None:
        """A status (or continuation) line."""
        if not self.greeted:
            try:
                status = parse_status(line)
            except (POP3Error, RemoteProtocolError) as e:
                self.refuse_greeting(e)
                return
            self.greet(status.text)
            return
        pending = self.next_pending()
        if pending is None:
            self.protocol_error(POP3ProtocolError(f"unexpected line: {line[:80]!r}"))
            return
        if pending.challenge is not None and (line == b"+" or line.startswith(b"+ ")):
            try:
                response = pending.challenge(decode_challenge(line[2:]))
            except SASLError as e:
                self.send_raw(b"*\r\n")  # cancel; the -ERR that follows is ignored
                pending.challenge = None
                pending.status = str(e)
                self.pop_pending()
                pending.deferred.errback(e)
                eat = _Pending(False, None)  # eats the -ERR
                eat.deferred.addErrback(lambda _: None)
                self.push_front(eat)
                return
            self.send_raw(encode_response(response) + b"\r\n")
            return
        try:
            status = parse_status(line)
        except (POP3Error, RemoteProtocolError) as e:
            self.pop_pending()
            pending.deferred.errback(e)
            if isinstance(e, POP3ProtocolError):
                self.protocol_error(e)
            return
        if not pending.multiline:
            self.pop_pending()
            pending.deferred.callback(status.text)
            return
        pending.status = status.text
        if pending.sink is None:
            self._collect = bytearray()
        self._unstuffer = DotUnstuffer(endings=LineEndings.ACCEPT_LF)
        self.set_raw_mode()

    def raw_data_received(self, data: bytes) -> None:
        """Part of a multi-line reply: unstuffed, then collected or given to the sink."""
        unstuffer = self._unstuffer
        pending = self.next_pending()
        if unstuffer is None or pending is None:  # pragma: no cover - raw only in a body
            return
        try:
            payload = unstuffer.feed(data)
        except RemoteProtocolError as e:
            self.protocol_error(POP3ProtocolError(str(e)))
            return
        if payload:
            pending.written += len(payload)
            if pending.sink is not None:
                pending.sink(payload)
            elif self._collect is not None:
                self._collect += payload
        if unstuffer.done:
            self._unstuffer = None
            self.pop_pending()
            body: object = pending.written
            if pending.sink is None and self._collect is not None:
                body = bytes(self._collect)
                self._collect = None
            pending.deferred.callback((pending.status, body))
            self.set_line_mode(unstuffer.rest())

    def line_too_long(self) -> None:
        """A reply line over :data:`MAX_REPLY_LINE`: not a server we can talk to."""
        self.protocol_error(POP3ProtocolError("reply line too long"))

    def bad_line_ending(self, line: bytes) -> None:
        """A bare CR in a reply line: tolerated."""
        self.line_received(line.replace(b"\r", b""))


def _sink_function(sink: Sink) -> Callable[[bytes], object]:
    write = getattr(sink, "write", None)
    if not callable(write):
        raise TypeError("a sink is an IConsumer or an object with write(bytes)")
    return cast(Callable[[bytes], object], write)


class POP3Client:
    """A connected POP3 session (from :func:`connect_pop3`): poplib's commands as Deferreds.

    :ivar welcome: the greeting's text (after ``+OK``).
    :ivar is_secure: whether TLS is on.
    """

    def __init__(self, protocol: POP3ClientProtocol, welcome: str, host: str = "") -> None:
        self.protocol = protocol
        self.welcome = welcome
        self.host = host
        match = _TIMESTAMP.search(welcome.encode("utf-8", "replace"))
        self.timestamp: bytes | None = match.group(0) if match else None

    @property
    def is_secure(self) -> bool:
        """Whether TLS is active."""
        return self.protocol.is_secure

    def _simple(self, verb: str, *arguments: str) -> Deferred[str]:
        return self.protocol.command(format_command(verb, *arguments))

    def _multi(
        self, verb: str, *arguments: str, sink: Callable[[bytes], object] | None = None
    ) -> Deferred[tuple[str, Any]]:
        return self.protocol.command(format_command(verb, *arguments), multiline=True, sink=sink)

    # -- AUTHORIZATION ----------------------------------------------------------------

    def user(self, name: str) -> Deferred[str]:
        """``USER name``; fires with the ``+OK`` text."""
        return self._simple("USER", name)

    def pass_(self, password: str) -> Deferred[str]:
        """``PASS password``; fires with the ``+OK`` text (the maildrop summary)."""
        return self._simple("PASS", password)

    def login(self, name: str, password: str) -> Deferred[str]:
        """``USER`` then ``PASS`` (pipelined); fires with the ``PASS`` reply text."""
        self.user(name).addErrback(lambda _: None)
        return self.pass_(password)

    def apop(self, name: str, secret: str) -> Deferred[str]:
        """``APOP name digest`` with the greeting's timestamp; fails if the server gave none."""
        if self.timestamp is None:
            raise POP3Error("the server's greeting has no APOP timestamp")
        digest = hashlib.md5(self.timestamp + secret.encode("utf-8")).hexdigest()  # noqa: S324
        return self._simple("APOP", name, digest)

    def auth(
        self,
        username: str,
        password: str,
        mechanism: str | None = None,
        *,
        authzid: str = "",
        allow_insecure: bool = False,
    ) -> Deferred[str]:
        """SASL login (RFC 5034): PLAIN, LOGIN, CRAM-MD5 or SCRAM-SHA-256.

        Without ``mechanism`` the strongest the server lists in ``CAPA``'s
        ``SASL`` line is used (PLAIN/LOGIN only over TLS, unless ``allow_insecure``).
        """

        async def run() -> str:
            name = mechanism
            if name is None:
                offered = (await self.capa()).get("SASL", [])
                name = choose_mechanism(
                    offered, self.is_secure, allow_plaintext_insecure=allow_insecure
                )
            mech = client_mechanism(name, username, password, authzid=authzid)
            initial = mech.initial_response()
            arguments = [mech.name]
            if initial is not None:
                arguments.append(encode_response(initial, initial=True).decode("ascii"))
            text: str = await self.protocol.command(
                format_command("AUTH", *arguments), challenge=mech.respond
            )
            return text

        return ensureDeferred(run())

    def capa(self) -> Deferred[dict[str, builtins.list[str]]]:
        """``CAPA``: ``{"TOP": [], "SASL": ["PLAIN", ...], ...}``."""
        d = self._multi("CAPA")
        return d.addCallback(lambda r: parse_capabilities(r[1].splitlines()))

    def stls(self, options: IOpenSSLClientConnectionCreator | None = None) -> Deferred[str]:
        """``STLS`` (RFC 2595), then the TLS handshake (verifying ``host`` by default)."""
        if options is None:
            options = client_options(self.host)

        def go(text: str) -> str:
            self.protocol.start_tls(options, server=False)
            return text

        return self._simple("STLS").addCallback(go)

    def utf8(self) -> Deferred[str]:
        """``UTF8`` (RFC 6856)."""
        return self._simple("UTF8")

    # -- TRANSACTION ------------------------------------------------------------------

    def stat(self) -> Deferred[tuple[int, int]]:
        """``STAT``: ``(count, octets)``."""
        return self._simple("STAT").addCallback(lambda t: parse_listing(t.encode()))

    def list(
        self, which: int | None = None
    ) -> Deferred[list[tuple[int, int]]] | Deferred[tuple[int, int]]:
        """``LIST``: ``[(number, octets), ...]``; ``LIST n``: ``(n, octets)``."""
        if which is not None:
            return self._simple("LIST", str(which)).addCallback(
                lambda t: parse_listing(t.encode())
            )
        return self._multi("LIST").addCallback(
            lambda r: [parse_listing(line) for line in r[1].splitlines() if line]
        )

    def uidl(
        self, which: int | None = None
    ) -> Deferred[builtins.list[tuple[int, str]]] | Deferred[tuple[int, str]]:
        """``UIDL``: ``[(number, uid), ...]``; ``UIDL n``: ``(n, uid)``."""
        if which is not None:
            return self._simple("UIDL", str(which)).addCallback(
                lambda t: parse_unique_id(t.encode())
            )
        return self._multi("UIDL").addCallback(
            lambda r: [parse_unique_id(line) for line in r[1].splitlines() if line]
        )

    def retr(self, which: int, sink: Sink | None = None) -> Deferred[Any]:
        """``RETR n``: the message as bytes (CRLF line endings), or streamed to ``sink``.

        ``sink`` is an :class:`~twisted.internet.interfaces.IConsumer` or a
        binary file object; with one, fires with the octets written.
        """
        write = None if sink is None else _sink_function(sink)
        return self._multi("RETR", str(which), sink=write).addCallback(lambda r: r[1])

    def top(self, which: int, lines: int, sink: Sink | None = None) -> Deferred[Any]:
        """``TOP n lines``: the header and ``lines`` body lines (bytes, or to ``sink``)."""
        write = None if sink is None else _sink_function(sink)
        return self._multi("TOP", str(which), str(lines), sink=write).addCallback(lambda r: r[1])

    def dele(self, which: int) -> Deferred[str]:
        """``DELE n`` (removed at ``QUIT``)."""
        return self._simple("DELE", str(which))

    def rset(self) -> Deferred[str]:
        """``RSET``."""
        return self._simple("RSET")

    def noop(self) -> Deferred[str]:
        """``NOOP``."""
        return self._simple("NOOP")

    def quit(self) -> Deferred[str]:
        """``QUIT``: deletions are applied; fires with the text once the connection closed."""

        async def run() -> str:
            text: str = await self._simple("QUIT")
            self.protocol.lose()
            await self.protocol.when_closed()
            return text

        return ensureDeferred(run())

    def close(self) -> Deferred[None]:
        """Close without ``QUIT`` (no deletion); fires once closed."""
        self.protocol.lose()
        return self.protocol.when_closed()


def connect_pop3(
    reactor: Any,
    host: str,
    port: int | None = None,
    *,
    tls: TLSMode = "starttls",
    tls_options: IOpenSSLClientConnectionCreator | None = None,
    username: str | None = None,
    password: str | None = None,
    mechanism: str | None = None,
    timeout: float = 30.0,
    endpoint: IStreamClientEndpoint | None = None,
) -> Deferred[POP3Client]:
    """Connect, read the greeting, secure per ``tls``, log in if a user is given.

    ``tls``: ``"starttls"`` (STLS required), ``"implicit"`` (TLS from the
    first byte, port 995 by default), ``"opportunistic"`` (STLS if offered),
    ``"none"``.  ``tls_options`` default to verifying ``host``.  With
    ``username``/``password``: ``AUTH`` with ``mechanism`` (or the strongest
    offered; PLAIN and LOGIN only over TLS or with ``tls="none"``) when the
    server offers SASL, else ``USER``/``PASS``.
    ``endpoint`` replaces the TCP connection (TLS is still added for
    ``"implicit"``).  ``timeout`` bounds the connection and every reply.
    """
    if (username is None) != (password is None):
        raise ValueError("give both username and password, or neither")
    target = client_target(
        reactor,
        host,
        port,
        tls=tls,
        modes=_TLS_MODES,
        default_ports=(DEFAULT_PORT, DEFAULT_TLS_PORT),
        tls_options=tls_options,
        timeout=timeout,
        endpoint=endpoint,
    )
    options = target.tls_options

    async def set_up(protocol: POP3ClientProtocol) -> POP3Client:
        client = POP3Client(protocol, await protocol.greeting, host)
        await _open_session(client, tls, options, username, password, mechanism)
        return client

    factory = ReplyQueueFactory(POP3ClientProtocol, reactor, timeout)
    return ensureDeferred(open_client(target.endpoint, factory, set_up, where=target.where))


async def _open_session(
    client: POP3Client,
    tls: TLSMode,
    options: IOpenSSLClientConnectionCreator | None,
    username: str | None,
    password: str | None,
    mechanism: str | None,
) -> None:
    capabilities: dict[str, list[str]] | None = None
    if tls in ("starttls", "opportunistic") and not client.is_secure:
        capabilities = await client.capa()
        if "STLS" in capabilities:
            await client.stls(options)
            capabilities = None
        elif tls == "starttls":
            raise POP3Error("the server does not offer STLS")
    if username is None or password is None:
        return
    if capabilities is None:
        capabilities = await client.capa()
    if mechanism is not None or capabilities.get("SASL"):
        # tls="none" is the caller's explicit choice of a connection in clear.
        await client.auth(username, password, mechanism, allow_insecure=tls == "none")
    else:
        await client.login(username, password)

"""The FTP client: ftplib's calls as Deferreds, with FTPS and data-channel session reuse.

:func:`connect_ftp` connects, reads the greeting, secures the control
connection (``tls="explicit"``: ``AUTH TLS``; ``"implicit"``: TLS from the
first byte) and logs in if a user is given; it fires with an
:class:`FTPClient`, whose methods mirror :class:`ftplib.FTP`'s and return
Deferreds (usable with ``await``)::

    client = await connect_ftp(reactor, "ftp.example.org", tls="explicit",
                               user="alice", password="secret")
    await client.cwd("reports")
    names = await client.nlst()
    with open("q3.csv", "wb") as f:
        await client.retrbinary("RETR q3.csv", f)
    await client.quit()

Data connections are passive by default: ``EPSV`` first, ``PASV`` if the
server does not know it, and the address in a 227 reply is ignored (the
control connection's peer is used: a server cannot point the client
elsewhere).  Active mode (``passive=False``, or :meth:`FTPClient.set_pasv`
as in ftplib) listens on the control connection's local address and sends
``PORT`` (IPv4) or ``EPRT`` (IPv6); the listener takes one connection, from
the control peer's address only.
Under ``PROT P`` each data connection offers the control connection's TLS
session, so servers that demand reuse (vsftpd ``require_ssl_reuse``)
accept it.  Transfers stream: a sink is a callable, a file object or an
:class:`~twisted.internet.interfaces.IConsumer`; uploads read a file object
block by block in the thread pool, paced by the transport.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Callable
from typing import IO, Any, Literal, cast

from twisted.internet.defer import Deferred, ensureDeferred, fail
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
)
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import (
    IConsumer,
    IOpenSSLClientConnectionCreator,
    IReactorTime,
)

from netproto_twisted.core.client import (
    PendingReply,
    ReplyQueueFactory,
    ReplyQueueProtocol,
    client_target,
    open_client,
)
from netproto_twisted.core.framing import LineEndings
from netproto_twisted.core.net import canonical_ip, peer_host
from netproto_twisted.core.streaming import StreamProducer, thread_block_runner
from netproto_twisted.core.tls import client_options
from netproto_twisted.core.tls_sessions import ResumingClientCreator, tls_session
from netproto_twisted.ftp import _wire as w
from netproto_twisted.ftp._wire import CommandSyntaxError, FTPReply, ReplyParser
from netproto_twisted.ftp.client_data import DataFactory, DataProtocol, DataSetup, LineSplitter
from netproto_twisted.ftp.errors import (
    FTPConnectionLost,
    FTPProtocolError,
    FTPReplyError,
    error_for_reply,
)
from netproto_twisted.ftp.listing import ListEntry, parse_list_line

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_TLS_PORT",
    "FTPClient",
    "FTPClientProtocol",
    "Sink",
    "TLSMode",
    "connect_ftp",
]

DEFAULT_PORT = 21
DEFAULT_TLS_PORT = 990
TLSMode = Literal["none", "explicit", "implicit"]
_TLS_MODES = ("none", "explicit", "implicit")
#: Where received data goes: a callable, a binary file object, or a consumer.
Sink = Callable[[bytes], object] | IO[bytes] | IConsumer


def _sink_function(sink: Any) -> Callable[[bytes], object]:
    if IConsumer.providedBy(sink):
        return cast(Callable[[bytes], object], sink.write)
    write = getattr(sink, "write", None)
    if write is not None:
        return cast(Callable[[bytes], object], write)
    if callable(sink):
        return cast(Callable[[bytes], object], sink)
    raise TypeError("a sink is a callable, a file object or an IConsumer")


class FTPClientProtocol(ReplyQueueProtocol[PendingReply, FTPReply]):
    """The control connection: commands out, replies matched to waiters in order.

    ``timeout`` is kept as :attr:`reply_timeout`; the control connection
    itself has no idle timer (a transfer may keep it silent for long).
    """

    line_endings = LineEndings.ACCEPT_LF
    max_line_length = 65536
    transfer_timeout = None
    line_timeout = None
    lost_error = FTPConnectionLost
    closed_message = "control connection closed"

    def __init__(
        self, timeout: float | None = 30.0, clock: IReactorTime | None = None
    ) -> None:
        super().__init__(clock, None)
        self._parser = ReplyParser()
        self.reply_timeout = timeout

    def next_reply(self) -> Deferred[FTPReply]:
        """The reply after those already awaited."""
        if self._lost:
            return fail(FTPConnectionLost(self.closed_message))
        return self.enqueue(PendingReply())

    def send_command(self, line: str) -> Deferred[FTPReply]:
        """Send one command line; fires with its (first) reply."""
        if "\r" in line or "\n" in line:
            raise ValueError("a command must not contain CR or LF")
        d = self.next_reply()
        if not self._lost:
            self.send_raw(line.encode("utf-8", "surrogateescape") + b"\r\n")
        return d

    def line_received(self, line: bytes) -> None:
        """Feed the reply parser; hand complete replies to their waiters."""
        try:
            reply = self._parser.feed(line)
        except CommandSyntaxError as e:
            self.protocol_error(FTPProtocolError(str(e)))
            return
        if reply is None:
            return
        if not self.greeted:
            self.greet(reply)
            return
        if self.next_pending() is None:
            return  # an unsolicited reply (a late 226 after ABOR): nobody waits
        self.pop_pending().deferred.callback(reply)

    def line_too_long(self) -> None:
        """A reply line over 64 KiB: a broken server."""
        self.protocol_error(FTPProtocolError("reply line too long"))


def _check(reply: FTPReply, *, preliminary: bool = False) -> FTPReply:
    """Raise the error a reply stands for (4yz, 5yz; 1yz unless ``preliminary``)."""
    if reply.code >= 400 or (reply.code < 200 and not preliminary):
        raise error_for_reply(reply.code, reply.text)
    return reply


class FTPClient:
    """A logged-in (or not yet) FTP session: ftplib's methods as Deferreds.

    :ivar welcome: the greeting's text.
    :ivar host: the server's host (data connections go to the control peer's address).
    """

    def __init__(
        self,
        protocol: FTPClientProtocol,
        reactor: Any,
        host: str,
        welcome: FTPReply,
        tls_options: IOpenSSLClientConnectionCreator | None,
        *,
        timeout: float = 30.0,
        passive: bool = True,
    ) -> None:
        self.protocol = protocol
        self.reactor = reactor
        self.host = host
        self.welcome = welcome.raw()
        self.tls_options = tls_options
        self.timeout = timeout
        self.peer = peer_host(protocol.transport) or host
        self.prot_private = False
        self.use_epsv = True
        #: Passive data connections (the default); ``False``: active (PORT/EPRT).
        self.passive = passive
        self._transfer: DataProtocol | None = None

    def set_pasv(self, value: bool) -> None:
        """Passive mode on (``True``, the default) or off (active: ``PORT``/``EPRT``)."""
        self.passive = bool(value)

    @property
    def is_secure(self) -> bool:
        """Whether the control connection runs TLS."""
        return self.protocol.is_secure

    # -- plain commands -----------------------------------------------------------------

    def sendcmd(self, command: str) -> Deferred[str]:
        """Send a command; fire with the reply text (ftplib style), or fail on 4yz/5yz."""
        return self.protocol.send_command(command).addCallback(
            lambda r: _check(r, preliminary=True).raw()
        )

    def voidcmd(self, command: str) -> Deferred[str]:
        """Send a command; the reply must be 2yz (else FTPReplyError or the 4yz/5yz error)."""

        def check(reply: FTPReply) -> str:
            _check(reply)
            if not 200 <= reply.code < 300:
                raise FTPReplyError(reply.code, reply.raw())
            return reply.raw()

        return self.protocol.send_command(command).addCallback(check)

    def auth_tls(self) -> Deferred[str]:
        """``AUTH TLS`` and the handshake (the control connection is then protected)."""
        options = self.tls_options
        if options is None:
            options = self.tls_options = client_options(self.host)

        def start(reply: FTPReply) -> str:
            _check(reply)
            self.protocol.start_tls(options, server=False)
            return reply.raw()

        return self.protocol.send_command("AUTH TLS").addCallback(start)

    def prot_p(self) -> Deferred[str]:
        """``PBSZ 0`` and ``PROT P``: data connections under TLS from now on."""

        async def run() -> str:
            await self.voidcmd("PBSZ 0")
            text = await self.voidcmd("PROT P")
            self.prot_private = True
            return text

        return ensureDeferred(run())

    def prot_c(self) -> Deferred[str]:
        """``PROT C``: data connections in clear."""

        def done(text: str) -> str:
            self.prot_private = False
            return text

        return self.voidcmd("PROT C").addCallback(done)

    def login(self, user: str = "anonymous", passwd: str = "", acct: str = "") -> Deferred[str]:
        """``USER``/``PASS`` (and ``ACCT`` if asked); fires with the final reply's text."""

        async def run() -> str:
            password = "anonymous@" if user == "anonymous" and not passwd else passwd
            text = await self.sendcmd("USER " + user)
            if text.startswith("3"):
                text = await self.sendcmd("PASS " + password)
            if text.startswith("3"):
                text = await self.sendcmd("ACCT " + acct)
            if not text.startswith("2"):
                raise FTPReplyError(int(text[:3]), text)
            return text

        return ensureDeferred(run())

    def pwd(self) -> Deferred[str]:
        """The working directory (the quoted path of the 257 reply, unquoted)."""
        return self.voidcmd("PWD").addCallback(_parse257)

    def cwd(self, path: str) -> Deferred[str]:
        """Change directory (``..`` sends CDUP)."""
        if path == "..":
            return self.voidcmd("CDUP")
        return self.voidcmd("CWD " + (path or "."))

    def mkd(self, path: str) -> Deferred[str]:
        """Make a directory; fires with its path."""
        return self.voidcmd("MKD " + path).addCallback(_parse257)

    def rmd(self, path: str) -> Deferred[str]:
        """Remove a directory."""
        return self.voidcmd("RMD " + path)

    def delete(self, path: str) -> Deferred[str]:
        """Delete a file."""
        return self.voidcmd("DELE " + path)

    def rename(self, source: str, destination: str) -> Deferred[str]:
        """``RNFR`` then ``RNTO``."""

        async def run() -> str:
            text = await self.sendcmd("RNFR " + source)
            if not text.startswith("3"):
                raise FTPReplyError(int(text[:3]), text)
            return await self.voidcmd("RNTO " + destination)

        return ensureDeferred(run())

    def size(self, path: str) -> Deferred[int]:
        """``SIZE``: bytes."""
        return self.sendcmd("SIZE " + path).addCallback(lambda text: int(text[3:].strip()))

    def mdtm(self, path: str) -> Deferred[float]:
        """``MDTM``: a POSIX timestamp."""
        return self.voidcmd("MDTM " + path).addCallback(
            lambda text: w.parse_time_val(text[3:].strip())
        )

    def quit(self) -> Deferred[str]:
        """``QUIT``, then close."""

        def close(result: Any) -> Any:
            self.protocol.transport.loseConnection()
            return result

        return self.voidcmd("QUIT").addBoth(close)

    def close(self) -> Deferred[None]:
        """Close without QUIT."""
        self.protocol.transport.loseConnection()
        return self.protocol.when_closed()

    # -- data connections ---------------------------------------------------------------

    async def _passive_port(self) -> int:
        if self.use_epsv:
            reply = await self.protocol.send_command("EPSV")
            if reply.code == w.ENTERING_EXTENDED_PASSIVE:
                return w.parse_epsv(reply.text)
            if reply.code not in (500, 501, 502, 504, 522):
                _check(reply)
                raise FTPReplyError(reply.code, reply.raw())
            self.use_epsv = False
        reply = _check(await self.protocol.send_command("PASV"))
        if reply.code != w.ENTERING_PASSIVE:
            raise FTPReplyError(reply.code, reply.raw())
        _address_ignored, port = w.parse_pasv(reply.text)
        return port

    async def _open_data(self, sink: Callable[[bytes], object] | None) -> DataSetup:
        if not self.passive:
            return await self._open_active(sink)
        port = await self._passive_port()
        endpoint: Any = TCP4ClientEndpoint(self.reactor, self.peer, port, timeout=self.timeout)
        if ":" in self.peer:
            endpoint = TCP6ClientEndpoint(self.reactor, self.peer, port, timeout=self.timeout)
        try:
            data = cast(DataProtocol, await endpoint.connect(DataFactory(self.reactor, sink)))
        except ConnectError as e:
            raise FTPConnectionLost(f"cannot open the data connection: {e}") from e
        return DataSetup(data)

    async def _open_active(self, sink: Callable[[bytes], object] | None) -> DataSetup:
        """Listen on the control connection's local address; tell the server with PORT/EPRT."""
        local = getattr(self.protocol.transport.getHost(), "host", "127.0.0.1")
        local = canonical_ip(local) or local
        factory = DataFactory(self.reactor, sink, peer=self.peer)
        port = self.reactor.listenTCP(0, factory, 1, local)
        setup = DataSetup(factory=factory, port=port)
        number = port.getHost().port
        try:
            if ":" in local and not local.startswith("::ffff:"):
                command = "EPRT " + w.format_eprt(local, number)
            else:
                command = "PORT " + w.format_port(local.removeprefix("::ffff:"), number)
            await self.voidcmd(command)
        except BaseException:
            setup.abort()
            raise
        return setup

    def _data_tls(self, data: DataProtocol) -> None:
        if self.prot_private:
            assert self.tls_options is not None
            creator = ResumingClientCreator(
                self.tls_options, lambda: tls_session(self.protocol.transport)
            )
            data.start_tls(creator, server=False)

    async def _transfer_command(
        self, command: str, setup: DataSetup, rest: int | None
    ) -> FTPReply:
        try:
            if rest is not None:
                text = await self.sendcmd(f"REST {rest}")
                if not text.startswith("3"):
                    raise FTPReplyError(int(text[:3]), text)
            reply = await self.protocol.send_command(command)
        except BaseException:
            setup.abort()
            raise
        if reply.code >= 300 or reply.code < 100:
            setup.abort()
            _check(reply)
            raise FTPReplyError(reply.code, reply.raw())
        return reply

    def retrbinary(
        self, command: str, sink: Any, blocksize: int = 8192, rest: int | None = None
    ) -> Deferred[str]:
        """Run a retrieval command (``RETR name``) in binary; data goes to ``sink``.

        Fires with the final reply's text.  ``rest`` restarts at that offset.
        An ``IConsumer`` sink gets the data connection registered as its
        (push) producer, so that it can pause the transfer.
        """
        return self.retrieve(command, sink, rest=rest)

    def retrieve(
        self, command: str, sink: Any, *, ascii: bool = False, rest: int | None = None
    ) -> Deferred[str]:
        """Run a command that sends data (RETR, LIST, NLST) in type I or A; raw bytes to ``sink``.

        Unlike :meth:`retrlines` the bytes are passed on as they come (line
        endings as the server sent them).  See :meth:`retrbinary` for sinks.
        """

        async def run() -> str:
            await self.voidcmd("TYPE A" if ascii else "TYPE I")
            consumer = sink if IConsumer.providedBy(sink) else None
            return await self._receive(command, _sink_function(sink), rest, consumer)

        return ensureDeferred(run())

    async def _receive(
        self,
        command: str,
        sink: Callable[[bytes], object],
        rest: int | None = None,
        consumer: IConsumer | None = None,
    ) -> str:
        setup = await self._open_data(sink)
        self._transfer = setup.data
        try:
            first = await self._transfer_command(command, setup, rest)
            final = self.protocol.next_reply() if first.code < 200 else None
            try:
                data = await setup.connected(self.reactor, self.timeout)
                self._transfer = data
                self._data_tls(data)
                if consumer is not None:
                    consumer.registerProducer(data.transport, True)
                try:
                    await data.done
                finally:
                    if consumer is not None:
                        consumer.unregisterProducer()
            finally:
                reply = await final if final is not None else first
            return _check(reply).raw()
        finally:
            self._transfer = None

    def retrlines(self, command: str, callback: Callable[[str], object] | None = None
                  ) -> Deferred[str]:  # fmt: skip
        """Run a command in ASCII (``LIST``, ``NLST``, ``RETR``); each line to ``callback``.

        Lines are decoded as UTF-8 (undecodable bytes kept as surrogates) and
        given without their line ending; ``callback`` defaults to nothing.
        """
        lines = LineSplitter(callback or (lambda line: None))

        async def run() -> str:
            await self.voidcmd("TYPE A")
            text = await self._receive(command, lines.feed)
            lines.finish()
            return text

        return ensureDeferred(run())

    def nlst(self, *args: str) -> Deferred[builtins.list[str]]:
        """``NLST``: names."""
        names: builtins.list[str] = []
        command = " ".join(["NLST", *args])
        return self.retrlines(command, names.append).addCallback(lambda _: names)

    def list(self, *args: str) -> Deferred[builtins.list[str]]:
        """``LIST``: the server's listing lines."""
        lines: builtins.list[str] = []
        command = " ".join(["LIST", *args])
        return self.retrlines(command, lines.append).addCallback(lambda _: lines)

    dir = list

    def list_entries(self, path: str = "") -> Deferred[builtins.list[ListEntry]]:
        """``LIST`` parsed (Unix and MS-DOS styles), for servers without MLSD."""

        def parse(lines: builtins.list[str]) -> builtins.list[ListEntry]:
            entries = []
            for line in lines:
                try:
                    entry = parse_list_line(line)
                except CommandSyntaxError:
                    continue
                if entry is not None and entry.name not in (".", ".."):
                    entries.append(entry)
            return entries

        return (self.list(path) if path else self.list()).addCallback(parse)

    def mlsd(
        self, path: str = "", facts: builtins.list[str] | None = None
    ) -> Deferred[builtins.list[tuple[str, dict[str, str]]]]:
        """``MLSD``: ``(name, facts)`` pairs, as ftplib's ``mlsd`` yields them."""
        entries: builtins.list[tuple[str, dict[str, str]]] = []

        def add(line: str) -> None:
            with contextlib.suppress(CommandSyntaxError):
                entries.append(w.parse_mlsx_line(line))

        async def run() -> builtins.list[tuple[str, dict[str, str]]]:
            if facts:
                await self.sendcmd("OPTS MLST " + "".join(f + ";" for f in facts))
            await self.retrlines("MLSD " + path if path else "MLSD", add)
            return entries

        return ensureDeferred(run())

    def storbinary(
        self,
        command: str,
        source: Any,
        blocksize: int = 65536,
        callback: Callable[[bytes], object] | None = None,
        rest: int | None = None,
    ) -> Deferred[str]:
        """Run a store command (``STOR name``) in binary, reading ``source`` (a file or bytes)."""

        async def run() -> str:
            await self.voidcmd("TYPE I")
            return await self._send(command, source, rest, ascii=False, blocksize=blocksize)

        return ensureDeferred(run())

    def storlines(self, command: str, source: Any) -> Deferred[str]:
        """Run a store command in ASCII mode (line endings sent as CRLF)."""

        async def run() -> str:
            await self.voidcmd("TYPE A")
            return await self._send(command, source, None, ascii=True, blocksize=65536)

        return ensureDeferred(run())

    async def _send(
        self, command: str, source: Any, rest: int | None, *, ascii: bool, blocksize: int
    ) -> str:
        setup = await self._open_data(None)
        self._transfer = setup.data
        try:
            first = await self._transfer_command(command, setup, rest)
            final = self.protocol.next_reply() if first.code < 200 else None
            producer = StreamProducer(
                source, runner=thread_block_runner(self.reactor), crlf=ascii,
                chunk_size=max(blocksize, 65536),
            )  # fmt: skip
            try:
                data = await setup.connected(self.reactor, self.timeout)
                self._transfer = data
                self._data_tls(data)
                await producer.start(data.transport)
                data.transport.loseConnection()
                await data.done
            finally:
                reply = await final if final is not None else first
            return _check(reply).raw()
        finally:
            self._transfer = None

    def abort(self) -> Deferred[str]:
        """``ABOR``: drop the running transfer (its call fails), fire with the last reply."""
        data = self._transfer
        if data is not None and data.transport is not None:
            data.transport.abortConnection()
        return self.protocol.send_command("ABOR").addCallback(lambda r: _check(r).raw())


def _parse257(text: str) -> str:
    """The path in a 257 reply (doubled quotes inside it are one quote)."""
    if not text.startswith("257"):
        raise FTPReplyError(int(text[:3]), text)
    start = text.find('"')
    if start < 0:
        return ""
    out, i = [], start + 1
    while i < len(text):
        if text[i] == '"':
            if text[i + 1 : i + 2] == '"':
                out.append('"')
                i += 2
                continue
            break
        out.append(text[i])
        i += 1
    return "".join(out)


def connect_ftp(
    reactor: Any,
    host: str,
    port: int | None = None,
    *,
    tls: TLSMode = "none",
    tls_options: IOpenSSLClientConnectionCreator | None = None,
    user: str | None = None,
    password: str = "",
    prot_p: bool = True,
    timeout: float = 30.0,
    passive: bool = True,
) -> Deferred[FTPClient]:
    """Connect, read the greeting, secure per ``tls``, log in if ``user`` is given.

    ``tls``: ``"explicit"`` (AUTH TLS, then ``PROT P`` after login when
    ``prot_p``), ``"implicit"`` (TLS from the first byte, port 990 by
    default, ``PROT P`` too), ``"none"``.  ``tls_options`` default to
    verifying ``host`` (:func:`~netproto_twisted.core.tls.client_options`).
    ``passive=False``: active data connections (``PORT``/``EPRT``).
    """
    target = client_target(
        reactor,
        host,
        port,
        tls=tls,
        modes=_TLS_MODES,
        default_ports=(DEFAULT_PORT, DEFAULT_TLS_PORT),
        tls_options=tls_options,
        timeout=timeout,
    )
    options = target.tls_options

    async def set_up(protocol: FTPClientProtocol) -> FTPClient:
        greeting = _check(await protocol.greeting)
        client = FTPClient(
            protocol, reactor, host, greeting, options, timeout=timeout, passive=passive
        )
        if tls == "explicit":
            await client.auth_tls()
        if user is not None:
            await client.login(user, password)
            if tls != "none" and prot_p:
                await client.prot_p()
        return client

    factory = ReplyQueueFactory(FTPClientProtocol, reactor, timeout)
    return ensureDeferred(open_client(target.endpoint, factory, set_up, where=target.where))


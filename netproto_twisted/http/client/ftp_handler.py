"""``ftp:`` URLs for the opener through :mod:`netproto_twisted.ftp`'s client (urllib's FTPHandler).

``ftp://[user[:password]@]host[:port]/dir/file[;type=a|i|d]`` opens a
session (``anonymous`` with an empty password when the URL names no user),
changes into each directory of the path in turn (as RFC 1738 says), and:

- for a file, retrieves it in type ``I`` (``;type=a``: type ``A``) and
  streams it as the response body, with ``Content-length`` from ``SIZE``
  (type ``I``) and ``Content-type`` guessed from the name;
- for a directory (a path ending in ``/``, ``;type=d``, or a file name the
  server refuses to ``RETR`` with 550 but lets the client ``CWD`` into),
  sends the ``LIST`` output as the body, as urllib does.

The session is closed when the body has been read (or abandoned).  The
body is paced by its reader: the data connection stops being read while the
reader pauses.  Every FTP or connection error raises
:class:`~netproto_twisted.http.client.errors.URLError` (``ftp error: ...``).
One connection per URL, as urllib's ``FTPHandler`` (no connection cache);
``ftp_proxy`` is not used.
"""

from __future__ import annotations

import email.utils
import mimetypes
from typing import Any
from urllib.parse import unquote, urlsplit

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import ConnectError, ConnectionLost, DNSLookupError
from twisted.internet.interfaces import IConsumer, IProtocol, IPushProducer
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from zope.interface import implementer

from netproto_twisted.ftp import connect_ftp
from netproto_twisted.ftp.client import FTPClient, TLSMode
from netproto_twisted.ftp.errors import FTPError, FTPPermanentError
from netproto_twisted.http.client.errors import URLError
from netproto_twisted.http.client.opener import BaseHandler
from netproto_twisted.http.client.request import Request
from netproto_twisted.http.client.response import Response, headers_message

__all__ = ["FTPHandler", "parse_ftp_url"]

#: Seconds for connecting and for each reply when the request sets no timeout.
DEFAULT_TIMEOUT = 30.0
_FAILURES = (FTPError, ConnectError, DNSLookupError, ConnectionLost, OSError, CancelledError)


def parse_ftp_url(url: str) -> tuple[str, int, str, str, list[str], str, str]:
    """Split an ``ftp:`` URL: ``(host, port, user, password, dirs, file, type)``.

    ``type`` is ``"a"``, ``"i"`` or ``"d"`` (``"d"`` when the path names no
    file, else ``"i"`` unless ``;type=`` says otherwise).

    :raises ValueError: no host, a bad port or a bad ``;type=``.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "ftp":
        raise ValueError("not an ftp: URL")
    host = parts.hostname
    if not host:
        raise ValueError("no host given")
    port = parts.port or 21  # urlsplit raises ValueError for a bad port
    user = unquote(parts.username) if parts.username else "anonymous"
    password = unquote(parts.password) if parts.password else ""
    path, _, attrs = parts.path.partition(";")
    names = [unquote(n) for n in path.split("/")]
    file = names.pop() if names else ""
    dirs = [n for n in names if n]
    kind = "i" if file else "d"
    for attr in attrs.split(";") if attrs else []:
        key, _, value = attr.partition("=")
        if key.lower() == "type":
            if value.lower() not in ("a", "i", "d"):
                raise ValueError(f"bad type {value!r}")
            kind = value.lower()
    for name in (*dirs, file):
        if "\r" in name or "\n" in name:
            raise ValueError("line break in the path")
    return host, port, user, password, dirs, file, kind


@implementer(IConsumer, IPushProducer)
class _FTPBody:
    """The transfer as a response body: a consumer for the FTP client, a source for Response.

    Until the response's reader attaches (``deliverBody``) the data
    connection is paused; afterwards the reader's pauses pass to it.
    """

    def __init__(self, client: FTPClient, length: int | None) -> None:
        self.client = client
        self.length = length
        #: Fires when the server has started the transfer (the 1yz reply).
        self.started: Deferred[None] = Deferred()
        self._producer: Any = None
        self._protocol: IProtocol | None = None
        self._held: list[bytes] = []
        self._paused = True  # until a reader attaches
        self._end: Failure | None = None
        self._stopped = False

    # -- IConsumer (the FTP client writes here) ----------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._producer = producer
        if self._paused:
            producer.pauseProducing()
        if not self.started.called:
            self.started.callback(None)

    def unregisterProducer(self) -> None:
        self._producer = None

    def write(self, data: bytes) -> None:
        if self._stopped:
            return
        if self._protocol is None:
            self._held.append(data)
        else:
            self._protocol.dataReceived(data)

    # -- the transfer's end ------------------------------------------------------------

    def finished(self, result: object) -> None:
        """The RETR/LIST call ended: ``result`` is its reply text or a Failure."""
        if isinstance(result, Failure):
            if not self.started.called:
                self.started.errback(result)
                return
            error = result.value
            self._end = Failure(ConnectionLost(f"ftp transfer failed: {error}"))
        else:
            if not self.started.called:  # nothing to register: an empty listing, say
                self.started.callback(None)
            self._end = Failure(ResponseDone())
        self.client.quit().addErrback(lambda _: self.client.close())
        self._deliver_end()

    def _deliver_end(self) -> None:
        protocol = self._protocol
        if protocol is not None and self._end is not None and not self._held:
            end, self._end = self._end, None
            protocol.connectionLost(end)

    # -- the body source (Response calls deliverBody) ----------------------------------

    def deliverBody(self, protocol: IProtocol) -> None:
        """Start delivering to ``protocol`` (what was held first)."""
        self._protocol = protocol
        protocol.makeConnection(self)  # type: ignore[arg-type]
        held, self._held = self._held, []
        for data in held:
            protocol.dataReceived(data)
        self._deliver_end()
        if self._end is None and not self._stopped:
            self.resumeProducing()

    # -- IPushProducer (the reader pauses us) ------------------------------------------

    def pauseProducing(self) -> None:
        self._paused = True
        if self._producer is not None:
            self._producer.pauseProducing()

    def resumeProducing(self) -> None:
        self._paused = False
        if self._producer is not None:
            self._producer.resumeProducing()

    def stopProducing(self) -> None:
        """The reader abandons the body: drop the transfer and the session."""
        self._stopped = True
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.stopProducing()
        self.client.close()


class FTPHandler(BaseHandler):
    """Open ``ftp:`` URLs (see the module docstring).

    :param passive: passive data connections (the default), else active (PORT/EPRT).
    :param tls: ``"explicit"`` to use AUTH TLS (and ``PROT P``) with every server.
    :param tls_options: the TLS client options for ``tls``.
    """

    def __init__(
        self, *, passive: bool = True, tls: TLSMode = "none", tls_options: Any = None
    ) -> None:
        self.passive = passive
        self.tls = tls
        self.tls_options = tls_options

    async def ftp_open(self, req: Request) -> Response:
        """Connect, log in, change directory, start the transfer; the body streams."""
        try:
            host, port, user, password, dirs, file, kind = parse_ftp_url(req.full_url)
        except ValueError as e:
            raise URLError(f"ftp error: {e}") from e
        timeout = req.timeout if isinstance(req.timeout, (int, float)) else DEFAULT_TIMEOUT
        reactor = self.parent.reactor
        try:
            client = await connect_ftp(
                reactor, host, port, user=user, password=password, timeout=timeout,
                passive=self.passive, tls=self.tls, tls_options=self.tls_options,
            )  # fmt: skip
        except _FAILURES as e:
            raise URLError(f"ftp error: {e}") from e
        try:
            for name in dirs:
                await client.cwd(name)
            body, headers = await self._start(client, file, kind, req.full_url)
        except BaseException as e:
            client.close()
            if isinstance(e, _FAILURES):
                raise URLError(f"ftp error: {e}") from e
            raise
        return Response(
            url=req.full_url,
            status=200,
            reason="OK",
            headers=headers_message(headers),
            source=body,
            reactor=reactor,
            version=None,
            request=req,
            length=body.length,
            idle_timeout=timeout,
        )

    async def _start(
        self, client: FTPClient, file: str, kind: str, url: str
    ) -> tuple[_FTPBody, list[tuple[str, str]]]:
        """Start RETR (or LIST); fire once the server has begun sending."""
        headers: list[tuple[str, str]] = []
        if file and kind != "d":
            size: int | None = None
            if kind == "i":
                try:  # in type I: some servers (pyftpdlib) refuse SIZE in type A
                    await client.voidcmd("TYPE I")
                    size = await client.size(file)
                except FTPError:
                    size = None
            try:  # before RETR: the control connection is busy during the transfer
                modified: float | None = await client.mdtm(file)
            except FTPError:
                modified = None
            body = _FTPBody(client, size)
            client.retrieve(f"RETR {file}", body, ascii=kind == "a").addBoth(body.finished)
            try:
                await body.started
            except FTPPermanentError as e:
                if e.code != 550:
                    raise
                try:  # perhaps a directory (urllib tries that too)
                    await client.cwd(file)
                except FTPError:
                    raise e from None
            else:
                mtype = mimetypes.guess_type(url)[0]
                if mtype:
                    headers.append(("Content-type", mtype))
                if size is not None:
                    headers.append(("Content-length", str(size)))
                if modified is not None:
                    headers.append(("Last-modified", email.utils.formatdate(modified, True)))
                return body, headers
        elif file:
            await client.cwd(file)
        body = _FTPBody(client, None)
        client.retrieve("LIST", body, ascii=True).addBoth(body.finished)
        await body.started
        return body, headers

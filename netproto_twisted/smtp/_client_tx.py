"""One SMTP client transaction: envelope (pipelined when offered), message data, outcome.

Used by :class:`~netproto_twisted.smtp.client.SMTPClient`; see its
``send_message`` for the behaviour.  Everything that can be refused locally
(CR/LF/NUL, bad addresses or parameters, a missing extension) is checked by
:meth:`Transaction.prepare`, before anything is written.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer
from zope.interface import implementer

from netproto_twisted.core.dotstuff import DotStuffer, EolNormalizer, StreamEncoder
from netproto_twisted.core.errors import LocalProtocolError
from netproto_twisted.core.streaming import (
    CHUNK_SIZE,
    StreamProducer,
    StreamStopped,
    thread_block_runner,
)
from netproto_twisted.smtp._client_body import (
    EncodingConsumer,
    ProtocolConsumer,
    file_has_8bit,
    has_8bit,
    is_path,
    is_producer,
    is_rewindable,
    message_size,
    open_message_file,
)
from netproto_twisted.smtp._codes import (
    AUTH,
    BINARYMIME,
    CHUNKING,
    DATA,
    DSN,
    EIGHTBITMIME,
    EXCEEDED_STORAGE,
    PIPELINING,
    RSET,
    SIZE,
    SMTPUTF8,
    START_INPUT,
    TRANSACTION_FAILED,
)
from netproto_twisted.smtp._params import format_mail_from, format_rcpt_to
from netproto_twisted.smtp._wire import Reply, error_from_reply, format_bdat, format_command
from netproto_twisted.smtp.errors import (
    SMTPDataError,
    SMTPNotSupportedError,
    SMTPRecipientsRefused,
    SMTPResponseError,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)

if TYPE_CHECKING:
    from netproto_twisted.smtp._client_proto import SMTPClientProtocol
    from netproto_twisted.smtp.client import SendResult, SMTPClient

__all__ = ["BODY_TYPES", "SEVENBIT", "Transaction", "check_text"]

_T = TypeVar("_T")

#: ``BODY=7BIT`` (RFC 6152): the message is 7-bit ASCII, the default without BODY.
SEVENBIT = "7BIT"
#: The values a caller may declare for the message body (``body=`` or ``BODY``).
BODY_TYPES = (SEVENBIT, EIGHTBITMIME, BINARYMIME)

_FORBIDDEN = re.compile(r"[\r\n\x00]")
_DSN_MAIL = ("RET", "ENVID")
_DSN_RCPT = ("NOTIFY", "ORCPT")
_DATA_LINE = format_command(DATA)
_RSET_LINE = format_command(RSET)
_DOT_LINE = b".\r\n"


def _no_8bitmime(what: str) -> SMTPNotSupportedError:
    """The local refusal of 8-bit content for a server without 8BITMIME (RFC 6152 3)."""
    return SMTPNotSupportedError(
        f"5.6.3 the server does not offer 8BITMIME, needed for this message's {what} content",
        TRANSACTION_FAILED,
    )


def check_text(what: str, value: str) -> None:
    """Raise LocalProtocolError if ``value`` holds CR, LF or NUL."""
    if _FORBIDDEN.search(value):
        raise LocalProtocolError(f"CR, LF or NUL in the {what}")


async def _collect(ds: Sequence[Deferred[Reply]]) -> list[Reply]:
    """Await every Deferred (consuming every failure); raise the first failure."""
    replies: list[Reply] = []
    error: BaseException | None = None
    for d in ds:
        try:
            replies.append(await d)
        except BaseException as e:
            error = error or e
    if error is not None:
        raise error
    return replies


def _upper(params: Mapping[str, str | None] | None) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, value in (params or {}).items():
        check_text(f"parameter {key!r}", key)
        if value is not None:
            check_text(f"parameter {key}", str(value))
        out[key.upper()] = None if value is None else str(value)
    return out


class Transaction:
    """One MAIL/RCPT/DATA-or-BDAT exchange on an :class:`SMTPClient`."""

    def __init__(self, client: SMTPClient, message: Any, *, use_bdat: bool = False) -> None:
        if isinstance(message, str):
            message = message.encode("utf-8")
        self.client = client
        self.message = message
        self.use_bdat = use_bdat
        self.binary = False
        self.sender = ""
        self.recipients: list[str] = []
        self.envelope = b""
        self._lines: list[bytes] = []
        self._params: dict[str, str | None] = {}
        self._rcpts: list[tuple[str, dict[str, str | None]]] = []
        # A file the transaction opened from a path (closed at its end), and
        # whether BODY waits for a scan of the file (in a thread, before MAIL).
        self._opened: BinaryIO | None = None
        self._scan = False

    # --- preparation (no I/O) -----------------------------------------------------------

    def prepare(
        self,
        sender: str,
        recipients: Sequence[Any],
        mail_params: Mapping[str, str | None] | None,
        *,
        body: str | None = None,
    ) -> None:
        """Check the arguments and choose the parameters; raise if anything is wrong.

        ``body`` declares the content (``"7BIT"``, ``"8BITMIME"`` or
        ``"BINARYMIME"``) like ``mail_params["BODY"]``; undeclared, it is
        found: by looking at bytes in memory, by scanning a file (in
        :meth:`run`, before MAIL), and for a producer it is ``8BITMIME``
        when the server offers it.  The envelope is formatted here, or after
        the scan.
        """
        ext = self.client.extensions
        check_text("sender", sender)
        rcpts: list[tuple[str, dict[str, str | None]]] = []
        for item in recipients:
            if isinstance(item, str):
                address, rparams = item, {}
            else:
                address, given = item
                rparams = _upper(given)
            check_text("recipient", address)
            if not ext.has(DSN):
                for key in _DSN_RCPT:
                    rparams.pop(key, None)
            rcpts.append((address, rparams))
        if not rcpts:
            raise LocalProtocolError("send_message needs at least one recipient")
        message = self.message
        if not (
            isinstance(message, (bytes, bytearray, memoryview))
            or is_producer(message)
            or is_path(message)
            or callable(getattr(message, "read", None))
        ):
            raise TypeError(
                "a message must be bytes, a binary file, a path or a body producer, "
                f"not {type(message)}"
            )
        self.sender = sender
        params = _upper(mail_params)
        if body is not None:
            if body.upper() not in BODY_TYPES:
                raise LocalProtocolError(f"body must be one of {BODY_TYPES}, not {body!r}")
            params["BODY"] = body
        utf8 = not sender.isascii() or any(not a.isascii() for a, _ in rcpts)
        if utf8 or SMTPUTF8 in params:
            if not ext.has(SMTPUTF8):
                raise SMTPNotSupportedError(
                    "5.6.7 the server does not offer SMTPUTF8, needed for a non-ASCII address",
                    553,
                )
            params[SMTPUTF8] = None
        self._params = params
        self._choose_body()
        if self.binary or (self.use_bdat and ext.has(CHUNKING)):
            self.use_bdat = True
            if is_producer(message) and not ext.has(PIPELINING):
                if self.binary:
                    raise SMTPNotSupportedError("BDAT from a producer needs PIPELINING")
                self.use_bdat = False
        else:
            self.use_bdat = False
        if not is_path(message):
            self._check_size()
        if not ext.has(DSN):
            for key in _DSN_MAIL:
                params.pop(key, None)
        if not ext.has(AUTH):
            params.pop("AUTH", None)
        self.recipients = [a for a, _ in rcpts]
        self._rcpts = rcpts
        if not (self._scan or is_path(message)):
            self._format_envelope()

    def _choose_body(self) -> None:
        """Set or check ``BODY``, or leave the choice to a scan of the file."""
        ext = self.client.extensions
        params = self._params
        message = self.message
        body = params.get("BODY")
        if body is not None:
            body = params["BODY"] = body.upper()
        if body is None:
            if isinstance(message, (bytes, bytearray, memoryview)):
                self._found_8bit(has_8bit(message))
            elif is_path(message) or (not is_producer(message) and is_rewindable(message)):
                self._scan = True
            elif ext.has(EIGHTBITMIME):
                # A producer or a pipe: the content is unknown, and may be 8-bit.
                params["BODY"] = EIGHTBITMIME
        elif body == EIGHTBITMIME:
            if not ext.has(EIGHTBITMIME):
                raise _no_8bitmime("declared 8-bit")
        elif body == SEVENBIT:
            if not ext.has(EIGHTBITMIME):
                del params["BODY"]  # the default; only a server with 8BITMIME knows BODY
        elif body == BINARYMIME:
            if not (ext.has(CHUNKING) and ext.has(BINARYMIME)):
                raise SMTPNotSupportedError(
                    "5.6.3 the server does not offer BINARYMIME with CHUNKING", 554
                )
            self.binary = True

    def _found_8bit(self, eight_bit: bool) -> None:
        """Declare 8-bit content found in the message; refuse it if the server cannot take it."""
        if not eight_bit:
            return
        if not self.client.extensions.has(EIGHTBITMIME):
            raise _no_8bitmime("8-bit")
        self._params["BODY"] = EIGHTBITMIME

    def _check_size(self) -> None:
        """Add ``SIZE`` when the size is known; refuse a message over the server's limit."""
        ext = self.client.extensions
        params = self._params
        size = message_size(self.message)
        if ext.has(SIZE):
            if "SIZE" not in params and size is not None:
                params["SIZE"] = str(size)
            limit = ext.max_size
            declared = params.get("SIZE")
            if limit is not None and declared is not None and int(declared) > limit:
                raise SMTPSenderRefused(
                    EXCEEDED_STORAGE,
                    f"5.3.4 message size {declared} exceeds the server's limit {limit}",
                    self.sender,
                )
        else:
            params.pop("SIZE", None)

    def _format_envelope(self) -> None:
        lines = [format_mail_from(self.sender, self._params)]
        lines.extend(format_rcpt_to(a, p) for a, p in self._rcpts)
        self.envelope = b"".join(lines)
        self._lines = lines

    def _blocking(self, f: Callable[[], _T]) -> Deferred[_T]:
        """Run blocking file work in the reactor's thread pool (inline without one)."""
        result: Deferred[_T] = thread_block_runner(self.client._reactor)(f)
        return result

    async def _stream(self, consumer: IConsumer, encoder: StreamEncoder | None) -> None:
        """Send the message (bytes or a file) through ``encoder`` to ``consumer``.

        Blocks of a file are read in the thread pool; no trailer is written.
        """
        producer = StreamProducer(
            self.message, encoder=encoder, runner=self._blocking, write_trailer=False
        )
        try:
            await producer.start(consumer)
        except StreamStopped:
            raise SMTPServerDisconnected("connection lost while sending the message") from None

    async def _open(self) -> None:
        """Open a message given as a path (in a thread); it is closed by :meth:`close`."""
        if is_path(self.message) and self._opened is None:
            self._opened = await self._blocking(partial(open_message_file, self.message))
            self.message = self._opened

    async def _inspect(self) -> None:
        """Open a path, scan a file for 8-bit bytes (in a thread), then format the envelope."""
        was_path = is_path(self.message)
        await self._open()
        if was_path:
            self._check_size()
        if self._scan:
            self._scan = False
            self._found_8bit(await self._blocking(partial(file_has_8bit, self.message)))
        self._format_envelope()

    def close(self) -> None:
        """Close the file the transaction opened from a path, if any."""
        opened, self._opened = self._opened, None
        if opened is not None:
            opened.close()

    # --- the exchange -------------------------------------------------------------------

    def _small(self) -> bytes | None:
        message = self.message
        if isinstance(message, (bytes, bytearray, memoryview)) and len(message) <= CHUNK_SIZE:
            return bytes(message)
        return None

    async def run(self) -> SendResult:
        """Run the transaction; return its SendResult or raise (after RSET).

        A message given as a path is opened first, and a file whose content
        was not declared is scanned for 8-bit bytes, both in a thread and
        before MAIL (see :meth:`prepare`).
        """
        if not self.client.protocol.usable:
            raise SMTPServerDisconnected("not connected")
        try:
            if self._scan or is_path(self.message):
                await self._inspect()
            return await self._exchange()
        finally:
            self.close()

    async def _exchange(self) -> SendResult:
        from netproto_twisted.smtp.client import SendResult

        proto = self.client.protocol
        if not proto.usable:
            raise SMTPServerDisconnected("not connected")
        pipelining = self.client.extensions.has(PIPELINING)
        n = len(self.recipients)
        small = self._small()
        data_d: Deferred[Reply] | None = None
        if pipelining:
            payload = self.envelope
            one_shot_bdat = self.use_bdat and small is not None
            if one_shot_bdat:
                assert small is not None
                body = small if self.binary else EolNormalizer().encode(small)
                payload += format_bdat(len(body), last=True) + body
            elif not self.use_bdat:
                payload += _DATA_LINE
            replies = await proto.send_batch(
                payload, n + (2 if one_shot_bdat or not self.use_bdat else 1), slow=one_shot_bdat
            )
            mail_reply, rcpt_replies = replies[0], replies[1 : n + 1]
            data_reply = replies[n + 1] if len(replies) > n + 1 else None
        else:
            one_shot_bdat = False
            data_reply = None
            mail_reply = await proto.command(self._lines[0])
            rcpt_replies = []
            if mail_reply.code < 400:
                for line in self._lines[1:]:
                    rcpt_replies.append(await proto.command(line))
        accepted: dict[str, Reply] = {}
        refused: dict[str, Reply] = {}
        for address, reply in zip(self.recipients, rcpt_replies, strict=False):
            (accepted if reply.code < 400 else refused)[address] = reply
        if mail_reply.code >= 400 or not accepted:
            if data_reply is not None and data_reply.code == START_INPUT:
                # A server that said 354 anyway: end the (empty) message at once.
                await proto.command(_DOT_LINE)
            await self._rset()
            if mail_reply.code >= 400:
                raise error_from_reply(mail_reply, SMTPSenderRefused, sender=self.sender)
            error = SMTPRecipientsRefused({a: (r.code, r.status_text) for a, r in refused.items()})
            raise error
        if one_shot_bdat:
            assert data_reply is not None
            final = data_reply
        elif self.use_bdat:
            final = await self._bdat(pipelining)
        else:
            if data_reply is None:
                data_reply = await proto.command(_DATA_LINE)
            if data_reply.code != START_INPUT:
                await self._rset()
                raise error_from_reply(data_reply, SMTPDataError)
            data_d = await self._stream_data(small)
            final = await data_d
        if final.code >= 400:
            await self._rset()
            raise error_from_reply(final, SMTPDataError)
        return SendResult(accepted, refused, final)

    async def _rset(self) -> None:
        """Reset the transaction, if the connection is still there."""
        proto = self.client.protocol
        if not proto.usable:
            return
        with contextlib.suppress(SMTPResponseError):
            await proto.command(_RSET_LINE)

    async def data_only(self) -> Reply:
        """DATA and the message, for :meth:`SMTPClient.data`."""
        proto = self.client.protocol
        try:
            await self._open()
            reply = await proto.command(_DATA_LINE)
            if reply.code != START_INPUT:
                raise error_from_reply(reply, SMTPDataError)
            final = await (await self._stream_data(self._small()))
        finally:
            self.close()
        if final.code >= 400:
            raise error_from_reply(final, SMTPDataError)
        return final

    async def bdat_only(self, *, binary: bool) -> Reply:
        """BDAT chunks of the message, for :meth:`SMTPClient.bdat`."""
        if not self.client.extensions.has(CHUNKING):
            raise SMTPNotSupportedError("CHUNKING (BDAT) not supported by server")
        self.binary = binary
        try:
            await self._open()
            final = await self._bdat(self.client.extensions.has(PIPELINING))
        finally:
            self.close()
        if final.code >= 400:
            raise error_from_reply(final, SMTPDataError)
        return final

    # --- message data -------------------------------------------------------------------

    async def _stream_data(self, small: bytes | None) -> Deferred[Reply]:
        """Write the dot-stuffed message and its end; return the Deferred final reply."""
        proto = self.client.protocol
        stuffer = DotStuffer()
        if small is not None:
            return proto.command(stuffer.encode(small) + stuffer.finish(), slow=True)
        await self._pump(stuffer)
        return proto.command(stuffer.finish(), slow=True)

    async def _pump(self, encoder: StreamEncoder) -> None:
        """Stream the message through ``encoder`` to the transport, with backpressure."""
        proto = self.client.protocol
        transport = proto.transport
        message = self.message
        if is_producer(message):
            consumer = EncodingConsumer(transport, encoder.encode)
            transport.registerProducer(message, True)
            try:
                await message.startProducing(consumer)
            finally:
                if proto.usable:
                    transport.unregisterProducer()
            return
        await self._stream(ProtocolConsumer(proto), encoder)

    async def _bdat(self, pipelining: bool) -> Reply:
        """Send the message as BDAT chunks; return the last reply (or the first failure)."""
        proto = self.client.protocol
        normalizer = None if self.binary else EolNormalizer()
        if is_producer(self.message):
            ds: list[Deferred[Reply]] = []

            class Framer:
                """Each encoded block as one BDAT chunk, its reply awaited with the others."""

                def encode(self, data: bytes) -> bytes:
                    body = normalizer.encode(data) if normalizer is not None else data
                    if not body:
                        return b""
                    ds.append(proto.expect())
                    return format_bdat(len(body)) + body

                def finish(self) -> bytes:
                    return b""

            await self._pump(Framer())
            ds.append(proto.command(format_bdat(0, last=True), slow=True))
            replies = await _collect(ds)
        else:
            chunks = _BdatChunks(proto, pipelining)
            try:
                await self._stream(chunks, normalizer)
                final = chunks.last()
                if final is not None:
                    await final
            except SMTPDataError:
                await _collect(chunks.pending)
                await self._rset()
                raise
            replies = chunks.done + await _collect(chunks.pending)
        for reply in replies:
            if reply.code >= 400:
                return reply
        return replies[-1]


@implementer(IConsumer)
class _BdatChunks(ProtocolConsumer):
    """Sends each encoded block as a BDAT chunk, one block behind, so the last says LAST.

    Pipelined, the replies are collected in :attr:`pending`; otherwise each
    write returns a Deferred that fires with the chunk's reply (so the
    producer reads no more until then) or fails with SMTPDataError.
    """

    def __init__(self, protocol: SMTPClientProtocol, pipelining: bool) -> None:
        super().__init__(protocol)
        self._proto = protocol
        self._pipelining = pipelining
        self._held = b""
        self.pending: list[Deferred[Reply]] = []
        self.done: list[Reply] = []

    def write(self, data: bytes) -> Deferred[None] | None:  # type: ignore[override]
        """Send the block held back (not the last), hold ``data``."""
        held, self._held = self._held, data
        if held:
            return self._chunk(held, last=False)
        return None

    def last(self) -> Deferred[None] | None:
        """Send the block held back as the LAST chunk (``BDAT 0 LAST`` if none)."""
        held, self._held = self._held, b""
        return self._chunk(held, last=True)

    def _chunk(self, data: bytes, *, last: bool) -> Deferred[None] | None:
        d = self._proto.command(format_bdat(len(data), last=last) + data, slow=last)
        if self._pipelining:
            self.pending.append(d)
            return None

        def check(reply: Reply) -> None:
            self.done.append(reply)
            if reply.code >= 400 and not last:
                raise error_from_reply(reply, SMTPDataError)

        return d.addCallback(check)

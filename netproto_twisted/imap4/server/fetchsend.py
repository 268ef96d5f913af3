"""Sending a FETCH's responses: paced by the client's reading, large literals streamed.

A ``FETCH`` is answered a batch at a time
(:func:`~netproto_twisted.imap4.server.fetch.fetch_pieces` builds about
:data:`BATCH_BUDGET` octets per trip to the thread pool).  While it runs, a
:class:`~netproto_twisted.core.pacer.Pacer` is the transport's producer:
the next batch is built only when the transport's write buffer has room, so
a client that reads slowly holds the server at one batch, not at the whole
answer.  A whole message of at least :data:`STREAM_OVER` octets
(``BODY[]``, ``RFC822``, partial or not) is sent from its file a block at a
time by a :class:`~netproto_twisted.core.streaming.StreamProducer` (CRLF
line endings made on the way), paused and resumed through the pacer.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO, cast

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer

from netproto_twisted.core.pacer import Pacer
from netproto_twisted.core.streaming import StreamProducer
from netproto_twisted.imap4.server.fetch import Piece, StreamedLiteral
from netproto_twisted.mailstore.folder import MaildirFolder

__all__ = ["BATCH_BUDGET", "STREAM_OVER", "LimitedReader", "PieceSender", "release"]

#: Octets of responses built per batch (the last message may take it past).
BATCH_BUDGET = 1024 * 1024
#: A whole message this large or larger is streamed from its file, not read whole.
STREAM_OVER = 256 * 1024


class LimitedReader(io.RawIOBase):
    """At most ``count`` octets of a file object, then the end (blocking, like the file)."""

    def __init__(self, f: BinaryIO, count: int) -> None:
        super().__init__()
        self._f = f
        self.remaining = count

    def readable(self) -> bool:
        """Readable."""
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` octets (never past the limit)."""
        if self.remaining <= 0:
            return b""
        want = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data = self._f.read(want)
        self.remaining -= len(data)
        return data

    def close(self) -> None:
        """Close the file too."""
        if not self.closed:
            self._f.close()
        super().close()


def release(consumer: IConsumer | None, pacer: Pacer | None) -> None:
    """Unregister a FETCH's pacer from the consumer (unless the consumer stopped it)."""
    if pacer is not None and consumer is not None and not pacer.stopped:
        consumer.unregisterProducer()


def open_literal(folder: MaildirFolder, literal: StreamedLiteral) -> LimitedReader:
    """Open the message at the literal's start, limited to its octets (blocking)."""
    f = folder.open_message(literal.info)
    try:
        f.seek(literal.start)
    except BaseException:
        f.close()
        raise
    return LimitedReader(f, literal.count)


class PieceSender:
    """Sends one batch's pieces in order: bytes at once, streamed literals from their files.

    :param send: writes response bytes (the session's ``send``).
    :param consumer: where streamed literals go (the same transport, in order).
    :param pacer: the FETCH's producer; streams are paused and resumed through it.
    :param run: runs a blocking callable in the thread pool (``run(f, *args)``).
    :param folder: the folder the messages are in.
    """

    def __init__(
        self,
        send: Callable[[bytes], None],
        consumer: IConsumer,
        pacer: Pacer,
        run: Callable[..., Deferred[Any]],
        folder: MaildirFolder,
    ) -> None:
        self._send = send
        self._consumer = consumer
        self._pacer = pacer
        self._run = run
        self._folder = folder

    async def send(self, pieces: Sequence[Piece]) -> None:
        """Send the pieces; fails if a file cannot be read or the client goes."""
        for piece in pieces:
            if isinstance(piece, bytes):
                self._send(piece)
                continue
            await self._stream(piece)

    async def _stream(self, literal: StreamedLiteral) -> None:
        await self._pacer.ready()
        reader: LimitedReader = await self._run(open_literal, self._folder, literal)
        producer = StreamProducer(
            cast(BinaryIO, reader),
            runner=self._run,
            register=False,
            close=True,
        )
        self._pacer.attach(producer)
        try:
            sent = await producer.start(self._consumer)
        finally:
            self._pacer.attach(None)
        if sent != literal.count:
            # The file is shorter than its name says: the literal cannot be completed.
            raise OSError(f"message UID {literal.info.uid}: {sent} of {literal.count} octets")

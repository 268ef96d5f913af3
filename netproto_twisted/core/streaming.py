"""Streaming output: send a file, a stream or bytes to a consumer, with backpressure.

Every protocol that sends large data as it is stored -- SMTP DATA and BDAT,
POP3 ``RETR``/``TOP``, NNTP ``ARTICLE``/``BODY``, FTP ``RETR`` (in ASCII or
image mode) -- does the same thing: read the source a block at a time,
perhaps encode each block (dot-stuffing, or line endings rewritten as CRLF),
write it, and stop reading while the connection's write buffer is full.
:class:`StreamProducer` does it once for all of them:

* **Sources.**  ``bytes``, ``bytearray`` and ``memoryview`` are sliced in
  place and :class:`io.BytesIO` is read inline (no copy of the whole, no
  thread); a path (``str`` or :class:`os.PathLike`) is opened in the thread
  pool and closed at the end; any other binary file object is read in the
  thread pool, :data:`CHUNK_SIZE` bytes per read, so that a slow disk never
  stalls the event loop.
* **Encoding.**  ``dot_stuff=True`` dot-stuffs the stream (and so rewrites
  every line ending as CRLF, see
  :class:`~netproto_twisted.core.dotstuff.DotStuffer`) and ends it with the
  ``"."`` line; ``crlf=True`` alone rewrites line endings as CRLF
  (:class:`~netproto_twisted.core.dotstuff.EolNormalizer`); or pass any
  ``encoder`` with ``encode(chunk)`` and ``finish()``.  Encoders carry their
  state across blocks, so a CRLF, a line-start dot or a lone CR cut by a
  block boundary is encoded as if the data came in one piece.
* **Backpressure.**  The producer registers itself with the consumer as an
  :class:`~twisted.internet.interfaces.IPushProducer`: while the consumer
  has paused it, it reads nothing more, so at most one block is held in
  memory beyond what the consumer buffers, whatever the size of the source.
  A consumer whose ``write`` returns a Deferred (an asynchronous sink, or a
  protocol that must see a reply before the next block) is waited for too:
  the next block is read once that Deferred fires, and its failure ends the
  stream with that error.
* **Completion.**  :meth:`StreamProducer.start` returns a Deferred that
  fires with the number of source bytes sent, after the trailer (the
  encoder's ``finish()``) is written; it fails with the read error, or with
  :class:`StreamStopped` when the consumer calls ``stopProducing`` (the
  connection was lost).  A file the producer opened is closed either way;
  a file object given to it is closed only with ``close=True``.

A POP3 server answering ``RETR`` writes the ``+OK`` line, then::

    producer = StreamProducer(path, reactor, dot_stuff=True)
    await producer.start(self.transport)      # the message, then ".\\r\\n"

Blocking work goes through ``runner`` when given (a function that runs a
callable somewhere and returns a Deferred of its result), else the
reactor's thread pool when the reactor has one, else inline.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar, Union, cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IConsumer, IPushProducer, IReactorThreads
from twisted.internet.threads import deferToThreadPool
from zope.interface import implementer

from netproto_twisted.core.dotstuff import DotStuffer, EolNormalizer, StreamEncoder
from netproto_twisted.core.errors import NetprotoError

__all__ = [
    "CHUNK_SIZE",
    "BlockRunner",
    "StreamProducer",
    "StreamSource",
    "StreamStopped",
    "block_reader",
    "reads_inline",
    "thread_block_runner",
]

_T = TypeVar("_T")

#: How many bytes are read (and written) at a time.
CHUNK_SIZE = 64 * 1024

#: Runs a blocking callable (in a thread) and returns a Deferred of its result.
BlockRunner = Callable[[Callable[[], Any]], "Deferred[Any]"]

#: What :class:`StreamProducer` sends: bytes, a binary file object or a path.
StreamSource = Union[bytes, bytearray, memoryview, BinaryIO, str, "os.PathLike[str]"]


class StreamStopped(NetprotoError):
    """The consumer stopped the producer (the connection was lost) before the end."""


def reads_inline(source: object) -> bool:
    """Return whether ``source`` is read on the calling thread: bytes or an :class:`io.BytesIO`."""
    return isinstance(source, (bytes, bytearray, memoryview, io.BytesIO))


def block_reader(source: object, chunk_size: int = CHUNK_SIZE) -> Callable[[], bytes]:
    """Return a function that returns the source's next block, ``b""`` at the end.

    Bytes are sliced without copying the whole; a file object is read
    ``chunk_size`` bytes at a time from its current position (blocking:
    call the function in a thread unless :func:`reads_inline`).

    :raises TypeError: for anything else (and, when a read returns ``str``,
        from the returned function: the file must be opened in binary mode).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source).cast("B")
        position = 0

        def next_slice() -> bytes:
            nonlocal position
            chunk = bytes(view[position : position + chunk_size])
            position += len(chunk)
            return chunk

        return next_slice
    read = getattr(source, "read", None)
    if read is None:
        raise TypeError(f"cannot stream {type(source).__name__}: not bytes or a binary file")

    def next_read() -> bytes:
        chunk = read(chunk_size)
        if isinstance(chunk, str):
            raise TypeError("the file must be opened in binary mode")
        return bytes(chunk or b"")

    return next_read


def thread_block_runner(reactor: object) -> BlockRunner:
    """Return a runner for blocking work: the reactor's thread pool, or inline without one."""
    if IReactorThreads.providedBy(reactor):
        threads: Any = reactor

        def in_pool(f: Callable[[], _T]) -> Deferred[_T]:
            return deferToThreadPool(threads, threads.getThreadPool(), f)

        return in_pool
    return _inline


def _inline(f: Callable[[], _T]) -> Deferred[_T]:
    try:
        return succeed(f())
    except BaseException:
        return fail()


def _open(path: str | os.PathLike[str]) -> BinaryIO:
    return open(path, "rb")


@implementer(IPushProducer)
class StreamProducer:
    """Send a source to a consumer block by block, encoded, pausing when the consumer is full.

    :param source: bytes, a binary file object, or a path to open (see the
        module docstring).
    :param reactor: its thread pool runs blocking reads (unless ``runner``
        is given); ``None``: blocking work runs inline.
    :param dot_stuff: dot-stuff the stream and end it with the ``"."`` line.
    :param crlf: rewrite CR, LF and CRLF line endings as CRLF (implied by
        ``dot_stuff``).
    :param encoder: an encoder of one's own instead (``encode``/``finish``).
    :param runner: runs a blocking callable and returns a Deferred of its result.
    :param chunk_size: bytes per read.
    :param close: close a given file object at the end (a file opened from
        a path is always closed).
    :param write_trailer: write the encoder's ``finish()`` at the end; if
        false, the caller gets it from :meth:`trailer` (to send it in a
        write of its own, as the SMTP client does with the end of DATA).
    :param register: register with the consumer as its producer while
        sending (false when the caller registered it already).

    :ivar bytes_read: source bytes read so far.
    :ivar bytes_written: encoded bytes written so far.
    """

    def __init__(
        self,
        source: StreamSource,
        reactor: object = None,
        *,
        dot_stuff: bool = False,
        crlf: bool = False,
        encoder: StreamEncoder | None = None,
        runner: BlockRunner | None = None,
        chunk_size: int = CHUNK_SIZE,
        close: bool = False,
        write_trailer: bool = True,
        register: bool = True,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, not {chunk_size}")
        if encoder is not None and (dot_stuff or crlf):
            raise ValueError("give an encoder, or dot_stuff/crlf, not both")
        if isinstance(source, (str, os.PathLike)):
            self._path: str | os.PathLike[str] | None = source
            self._source: object = None
            self._close = True
        elif isinstance(source, (bytes, bytearray, memoryview)) or callable(
            getattr(source, "read", None)
        ):
            self._path = None
            self._source = source
            self._close = close
        else:
            raise TypeError(f"cannot stream {type(source).__name__}: not bytes, a file or a path")
        if encoder is None:
            if dot_stuff:
                encoder = DotStuffer()
            elif crlf:
                encoder = EolNormalizer()
        self.encoder = encoder
        self.chunk_size = chunk_size
        self.write_trailer = write_trailer
        self.register = register
        self._run = runner if runner is not None else thread_block_runner(reactor)
        self.bytes_read = 0
        self.bytes_written = 0
        self._paused = False
        self._stopped = False
        self._started = False
        self._waiting: Deferred[None] | None = None
        self._trailer: bytes | None = None

    # --- IPushProducer -------------------------------------------------------------------

    @property
    def is_paused(self) -> bool:
        """Whether the consumer has paused the producer."""
        return self._paused

    @property
    def is_stopped(self) -> bool:
        """Whether the consumer has stopped the producer."""
        return self._stopped

    def pauseProducing(self) -> None:
        """The consumer is full: read and write nothing more until resumed."""
        self._paused = True

    def resumeProducing(self) -> None:
        """The consumer has room again: go on."""
        self._paused = False
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(None)

    def stopProducing(self) -> None:
        """The consumer is gone: stop, close the file, fail :meth:`start`'s Deferred."""
        self._stopped = True
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.errback(self._stop_error())

    # --- sending -------------------------------------------------------------------------

    def start(self, consumer: IConsumer) -> Deferred[int]:
        """Send the whole source to ``consumer``; fire with the number of source bytes sent.

        May be called once.  Fails with the read (or open) error, or with
        :class:`StreamStopped` if the consumer stops the producer first;
        the file is closed before the Deferred fires when it is the
        producer's to close.
        """
        if self._started:
            raise RuntimeError("a StreamProducer sends its source once")
        self._started = True
        return Deferred.fromCoroutine(self._send(consumer))

    def trailer(self) -> bytes:
        """Return what ends the encoded stream (the ``"."`` line), once the source is sent.

        With ``write_trailer=True`` it has been written already; call it
        only after :meth:`start`'s Deferred has fired.
        """
        if self._trailer is None:
            self._trailer = self.encoder.finish() if self.encoder is not None else b""
        return self._trailer

    def _stop_error(self) -> StreamStopped:
        return StreamStopped(f"stopped after {self.bytes_read} bytes of the source")

    def _ready(self) -> Deferred[None]:
        if self._stopped:
            return fail(self._stop_error())
        if not self._paused:
            return succeed(None)
        if self._waiting is None:
            self._waiting = Deferred()
        return self._waiting

    async def _send(self, consumer: IConsumer) -> int:
        opened: object = None
        registered = False
        try:
            source = self._source
            if self._path is not None:
                path = self._path
                source = opened = await self._run(lambda: _open(path))
            read = block_reader(source, self.chunk_size)
            if reads_inline(source):
                next_block: Callable[[], Deferred[bytes]] = lambda: succeed(read())  # noqa: E731
            else:
                next_block = lambda: self._run(read)  # noqa: E731
            if self.register:
                consumer.registerProducer(self, True)
                registered = True
            encode = self.encoder.encode if self.encoder is not None else None
            # IConsumer.write returns None; an asynchronous consumer's returns a Deferred.
            write = cast(Callable[[bytes], object], consumer.write)
            while True:
                await self._ready()
                chunk = await next_block()
                if self._stopped:
                    raise self._stop_error()
                if not chunk:
                    break
                self.bytes_read += len(chunk)
                out = encode(chunk) if encode is not None else chunk
                if out:
                    self.bytes_written += len(out)
                    written = write(out)
                    if isinstance(written, Deferred):
                        await written
            if self.write_trailer:
                end = self.trailer()
                if end:
                    self.bytes_written += len(end)
                    written = write(end)
                    if isinstance(written, Deferred):
                        await written
            return self.bytes_read
        finally:
            if registered and not self._stopped:
                consumer.unregisterProducer()
            if opened is not None:
                opened.close()  # type: ignore[attr-defined]
            elif self._close and self._source is not None:
                close = getattr(self._source, "close", None)
                if close is not None:
                    close()

"""Message sources for the SMTP client: bytes, file objects and body producers, streamed.

The client sends a message in chunks of :data:`CHUNK_SIZE` bytes, never
reading a file object whole, and waits whenever the transport's write buffer
is full (:class:`Pacer`, a push producer registered with the transport).
DATA bodies are dot-stuffed by :class:`~netproto_twisted.core.dotstuff.DotStuffer`;
BDAT bodies get their line endings normalised to CRLF by
:class:`EolNormalizer` (unless the body is BINARYMIME, sent as is).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol, Union

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer, IPushProducer
from zope.interface import implementer

from netproto_twisted.core.framing import CR, CRLF, LF
from netproto_twisted.smtp.errors import SMTPServerDisconnected

__all__ = [
    "CHUNK_SIZE",
    "BodyProducer",
    "EolNormalizer",
    "MessageSource",
    "Pacer",
    "chunks_of",
    "file_has_8bit",
    "has_8bit",
    "is_path",
    "is_rewindable",
    "message_size",
    "open_message_file",
]

#: How many bytes of a message are read and written at a time.
CHUNK_SIZE = 64 * 1024

_EOL = re.compile(rb"\r\n|\r|\n")
_HIGH = re.compile(rb"[\x80-\xff]")


class BodyProducer(Protocol):
    """What a message producer looks like (``twisted.web.iweb.IBodyProducer``'s shape)."""

    length: Any

    def startProducing(self, consumer: IConsumer) -> Deferred[Any]:
        """Write the body to ``consumer``; fire when done."""

    def pauseProducing(self) -> None:
        """Stop writing for a while."""

    def resumeProducing(self) -> None:
        """Write again."""

    def stopProducing(self) -> None:
        """Stop for good."""


#: What :meth:`~netproto_twisted.smtp.SMTPClient.send_message` accepts as a message.
MessageSource = Union[bytes, bytearray, memoryview, BinaryIO, BodyProducer, "os.PathLike[str]"]


def is_producer(message: object) -> bool:
    """Return whether ``message`` is a body producer (it has ``startProducing``)."""
    return callable(getattr(message, "startProducing", None))


def message_size(message: object) -> int | None:
    """Return the message's size in bytes if it can be known without reading it, else ``None``."""
    if isinstance(message, (bytes, bytearray)):
        return len(message)
    if isinstance(message, memoryview):
        return message.nbytes
    if is_producer(message):
        length = getattr(message, "length", None)
        return length if isinstance(length, int) and not isinstance(length, bool) else None
    seekable = getattr(message, "seekable", None)
    try:
        if seekable is not None and seekable():
            here = message.tell()  # type: ignore[attr-defined]
            end = message.seek(0, 2)  # type: ignore[attr-defined]
            message.seek(here)  # type: ignore[attr-defined]
            return max(0, int(end) - int(here))
    except (OSError, ValueError):
        return None
    return None


def has_8bit(message: object) -> bool:
    """Return whether an in-memory message holds bytes above 127 (``False`` for streams)."""
    if isinstance(message, (bytes, bytearray)):
        return not message.isascii()
    if isinstance(message, memoryview):
        return _HIGH.search(message) is not None
    return False


def is_path(message: object) -> bool:
    """Return whether ``message`` names a file to send (``os.PathLike``; a ``str`` is text)."""
    return isinstance(message, os.PathLike)


def is_rewindable(message: object) -> bool:
    """Return whether a file object can be read ahead and rewound (it is seekable)."""
    seekable = getattr(message, "seekable", None)
    try:
        return bool(seekable is not None and seekable())
    except (OSError, ValueError):
        return False


def file_has_8bit(f: BinaryIO) -> bool:
    """Return whether ``f`` holds a byte above 127 from its current position on.

    Blocking (run it in a thread): reads :data:`CHUNK_SIZE` bytes at a time,
    stops at the first 8-bit byte, and seeks back to where it started.
    """
    start = f.tell()
    try:
        while chunk := f.read(CHUNK_SIZE):
            if isinstance(chunk, str):
                raise TypeError("the message file must be opened in binary mode")
            if not chunk.isascii():
                return True
        return False
    finally:
        f.seek(start)


def open_message_file(path: os.PathLike[str]) -> BinaryIO:
    """Open a message file for reading, in binary mode (blocking: run it in a thread)."""
    return open(path, "rb")


def chunks_of(message: object) -> Callable[[], bytes]:
    """Return a function that returns the message's next chunk, ``b""`` at the end.

    Bytes are sliced without copying the whole; a file object is read
    :data:`CHUNK_SIZE` bytes at a time.
    """
    if isinstance(message, (bytes, bytearray, memoryview)):
        view = memoryview(message).cast("B")
        position = 0

        def next_slice() -> bytes:
            nonlocal position
            chunk = bytes(view[position : position + CHUNK_SIZE])
            position += len(chunk)
            return chunk

        return next_slice
    read = getattr(message, "read", None)
    if read is None:
        raise TypeError(f"a message must be bytes, a binary file or a producer, not {message!r}")

    def next_read() -> bytes:
        chunk = read(CHUNK_SIZE)
        if isinstance(chunk, str):
            raise TypeError("the message file must be opened in binary mode")
        return bytes(chunk or b"")

    return next_read


class EolNormalizer:
    """Rewrite CRLF, bare CR and bare LF as CRLF in a stream split anywhere (for BDAT)."""

    def __init__(self) -> None:
        self._skip_lf = False

    def encode(self, chunk: bytes) -> bytes:
        """Return ``chunk`` with normalised line endings."""
        if self._skip_lf and chunk:
            # The LF of a CRLF whose CR ended the last non-empty chunk.
            self._skip_lf = False
            if chunk[:1] == LF:
                chunk = chunk[1:]
        if not chunk:
            return chunk
        self._skip_lf = chunk[-1:] == CR
        if chunk.count(CR) == chunk.count(LF) == chunk.count(CRLF):
            return chunk
        return _EOL.sub(CRLF, chunk)


@implementer(IPushProducer)
class Pacer:
    """A push producer registered with the transport while a message is written.

    The transport pauses it when its write buffer fills; :meth:`ready`
    returns a Deferred that fires once writing may go on, or fails with
    :class:`~netproto_twisted.smtp.SMTPServerDisconnected` if the
    connection is gone.
    """

    def __init__(self) -> None:
        self.paused = False
        self.stopped = False
        self._waiting: Deferred[None] | None = None

    def ready(self) -> Deferred[None]:
        """Return a Deferred that fires when the transport wants more data."""
        if self.stopped:
            d: Deferred[None] = Deferred()
            d.errback(SMTPServerDisconnected("connection lost while sending the message"))
            return d
        if not self.paused:
            return succeed(None)
        if self._waiting is None:
            self._waiting = Deferred()
        return self._waiting

    def pauseProducing(self) -> None:
        """The transport's buffer is full."""
        self.paused = True

    def resumeProducing(self) -> None:
        """The transport's buffer has drained."""
        self.paused = False
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(None)

    def stopProducing(self) -> None:
        """The connection is gone."""
        self.stopped = True
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.errback(SMTPServerDisconnected("connection lost while sending the message"))


@implementer(IConsumer)
class EncodingConsumer:
    """The consumer a body producer writes to: encode each chunk, write it to the transport."""

    def __init__(self, transport: Any, encode: Callable[[bytes], bytes]) -> None:
        self._transport = transport
        self._encode = encode
        self.written = 0

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Pass the producer on to the transport (it pauses it when full)."""
        self._transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        """Forget the producer."""
        self._transport.unregisterProducer()

    def write(self, data: bytes) -> None:
        """Encode ``data`` and write it."""
        self.written += len(data)
        out = self._encode(data)
        if out:
            self._transport.write(out)

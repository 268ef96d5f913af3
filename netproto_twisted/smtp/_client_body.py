"""Message sources for the SMTP client: bytes, file objects and body producers, streamed.

The client sends a message with :class:`~netproto_twisted.core.streaming.StreamProducer`:
:data:`CHUNK_SIZE` bytes at a time, a file object read in the thread pool,
never whole, and no more read while the transport's write buffer is full.
DATA bodies are dot-stuffed by :class:`~netproto_twisted.core.dotstuff.DotStuffer`;
BDAT bodies get their line endings normalised to CRLF by
:class:`~netproto_twisted.core.dotstuff.EolNormalizer` (unless the body is
BINARYMIME, sent as is).  This module adds what is SMTP's own: the sizes and
8-bit scans that choose MAIL's parameters, and the consumers that put the
encoded blocks on an :class:`~netproto_twisted.smtp._client_proto.SMTPClientProtocol`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, Union

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer
from zope.interface import implementer

from netproto_twisted.core.dotstuff import EolNormalizer
from netproto_twisted.core.streaming import CHUNK_SIZE

if TYPE_CHECKING:
    from netproto_twisted.smtp._client_proto import SMTPClientProtocol

__all__ = [
    "CHUNK_SIZE",
    "BodyProducer",
    "EolNormalizer",
    "MessageSource",
    "ProtocolConsumer",
    "file_has_8bit",
    "has_8bit",
    "is_path",
    "is_rewindable",
    "message_size",
    "open_message_file",
]

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


@implementer(IConsumer)
class ProtocolConsumer:
    """The consumer a :class:`~netproto_twisted.core.streaming.StreamProducer` writes a message to.

    Writes go through the protocol (nothing is written once the connection
    is unusable) and count as activity for its idle timer; the producer is
    registered with the transport, which pauses it when its buffer fills.
    """

    def __init__(self, protocol: SMTPClientProtocol) -> None:
        self._protocol = protocol

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Register ``producer`` with the transport."""
        self._protocol.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        """Unregister it, if the connection is still usable."""
        if self._protocol.usable:
            self._protocol.transport.unregisterProducer()

    def write(self, data: bytes) -> None:
        """Write message data (it gets no reply of its own)."""
        self._protocol.write(data)
        self._protocol.reset_idle_timer()


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

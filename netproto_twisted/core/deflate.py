"""Raw DEFLATE (RFC 1951) over a whole connection: NNTP COMPRESS (RFC 8054), IMAP COMPRESS=DEFLATE.

Both protocols compress everything after a go-ahead reply, both ways, as
one raw deflate stream per direction (zlib ``wbits=-15``: no zlib or gzip
header), and flush with ``Z_SYNC_FLUSH`` after each burst of output so the
peer can decode every reply as soon as it arrives.

:class:`DeflateStream` is the sans-I/O part: :meth:`~DeflateStream.compress`
(one burst in, its bytes out, sync-flushed) and
:meth:`~DeflateStream.decompress` (bytes received in, text out), with a cap
on what one received chunk may expand to (:attr:`DeflateStream.max_expansion`):
a chunk that would give more is a decompression bomb and raises
:class:`DecompressionBomb`; a stream zlib cannot decode raises
:class:`CompressionError`.

:func:`start_deflate` installs it on a connection built on
:class:`~netproto_twisted.core.plumbing.ConnectionPlumbing` (received bytes
are inflated before framing, written bytes deflated in
:meth:`~netproto_twisted.core.plumbing.ConnectionPlumbing.send_raw`); bytes
already received but not yet framed are inflated too.  On a decoding error
the protocol's ``compression_failed(error)`` is called (the default closes
the connection).

:func:`tls_compression_off` says whether a TLS context refuses TLS-level
compression (RFC 8054 forbids layering COMPRESS over it; Twisted's
``CertificateOptions``, and so every context from :mod:`netproto_twisted.core.tls`,
always sets ``OP_NO_COMPRESSION``).
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

from OpenSSL import SSL

from netproto_twisted.core.errors import RemoteProtocolError

if TYPE_CHECKING:
    from netproto_twisted.core.plumbing import ConnectionPlumbing

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_MAX_EXPANSION",
    "CompressionError",
    "DecompressionBomb",
    "DeflateStream",
    "InflatingDecoder",
    "start_deflate",
    "tls_compression_off",
]

#: zlib's ``wbits`` for a raw deflate stream (no header, no checksum), 32 KiB window.
RAW_DEFLATE_WBITS = -15
#: The compression level used unless told otherwise (zlib's default trade-off).
DEFAULT_LEVEL = 6
#: The most bytes one received chunk may inflate to (a TCP read is at most 64 KiB).
DEFAULT_MAX_EXPANSION = 4 * 1024 * 1024


class CompressionError(RemoteProtocolError):
    """The peer's compressed stream cannot be decoded (junk, or data after its end)."""


class DecompressionBomb(CompressionError):
    """One received chunk inflates to more than :attr:`DeflateStream.max_expansion` bytes."""


class DeflateStream:
    """One connection's two raw deflate streams, sans-I/O.

    :param level: the compression level of what is sent (0-9).
    :param max_expansion: the most bytes one call of :meth:`decompress` may
        produce; more is a :class:`DecompressionBomb`.
    :ivar bytes_in: compressed bytes received so far.
    :ivar bytes_inflated: what they inflated to.
    :ivar bytes_out: compressed bytes produced so far.
    """

    def __init__(
        self, *, level: int = DEFAULT_LEVEL, max_expansion: int = DEFAULT_MAX_EXPANSION
    ) -> None:
        if max_expansion < 1:
            raise ValueError(f"max_expansion must be positive, not {max_expansion}")
        self.max_expansion = max_expansion
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, RAW_DEFLATE_WBITS)
        self._inflate = zlib.decompressobj(RAW_DEFLATE_WBITS)
        self.bytes_in = 0
        self.bytes_inflated = 0
        self.bytes_out = 0
        self.failed = False

    def compress(self, data: bytes) -> bytes:
        """Deflate ``data`` (one burst of output) and sync-flush: the peer can decode it all."""
        out = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        self.bytes_out += len(out)
        return out

    def decompress(self, data: bytes) -> bytes:
        """Inflate received ``data``; the result may be empty (a partial block).

        :raises DecompressionBomb: if ``data`` inflates to more than
            :attr:`max_expansion` bytes.
        :raises CompressionError: if ``data`` is not a deflate stream, or
            comes after the end of one.
        """
        if self.failed:
            raise CompressionError("the compressed stream already failed")
        self.bytes_in += len(data)
        inflate = self._inflate
        try:
            out = inflate.decompress(data, self.max_expansion)
        except zlib.error as e:
            self.failed = True
            raise CompressionError(f"undecodable compressed data: {e}") from None
        if inflate.unconsumed_tail:
            self.failed = True
            raise DecompressionBomb(
                f"{len(data)} compressed bytes inflate to more than {self.max_expansion}"
            )
        if inflate.eof:
            # A final block ends the stream: nothing may follow it on this connection.
            self.failed = True
            raise CompressionError("the peer ended its compressed stream")
        self.bytes_inflated += len(out)
        return out


class InflatingDecoder:
    """A plumbing decoder: inflates received bytes; reports an error once, then drops input.

    :param stream: the connection's :class:`DeflateStream`.
    :param inner: the decoder in place before compression started, or
        ``None``; it now runs on the inflated bytes.
    :param on_error: called with the :class:`CompressionError`, once.
    """

    def __init__(self, stream: DeflateStream, inner: Any, on_error: Any) -> None:
        self.stream = stream
        self._inner = inner
        self._on_error = on_error

    def decode(self, data: bytes) -> bytes:
        """Inflate ``data`` (then pass it through the earlier decoder, if any)."""
        stream = self.stream
        if stream.failed:
            return b""
        try:
            data = stream.decompress(data)
        except CompressionError as e:
            self._on_error(e)
            return b""
        inner = self._inner
        if inner is not None and data:
            data = inner.decode(data)
        return data


class DeflatingEncoder:
    """A plumbing encoder: deflates each write and sync-flushes it."""

    def __init__(self, stream: DeflateStream) -> None:
        self.stream = stream

    def encode(self, data: bytes) -> bytes:
        """Deflate one write (a reply, or a block of a streamed listing)."""
        return self.stream.compress(data)


def start_deflate(
    protocol: ConnectionPlumbing,
    *,
    level: int = DEFAULT_LEVEL,
    max_expansion: int = DEFAULT_MAX_EXPANSION,
) -> DeflateStream:
    """Compress everything ``protocol`` sends and receives from now on; return the stream.

    Call it right after writing the go-ahead reply (NNTP ``206``, IMAP's
    tagged ``OK``), or, on a client, on reading it.  Received bytes not yet
    framed are inflated now.  A decoding error calls
    ``protocol.compression_failed(error)``.
    """
    stream = DeflateStream(level=level, max_expansion=max_expansion)
    protocol.install_codec(
        InflatingDecoder(stream, protocol.decoder, protocol.compression_failed),
        DeflatingEncoder(stream),
    )
    return stream


def tls_compression_off(context: object) -> bool:
    """Whether the TLS ``context`` (server or client options) refuses TLS-level compression.

    ``True`` for a context whose OpenSSL context has ``OP_NO_COMPRESSION``
    (every ``CertificateOptions``); ``False`` when it cannot be told.
    """
    get = getattr(context, "getContext", None)
    if get is None:
        return False
    try:
        ssl_context = get()
        # set_options ORs its argument in and returns the options: 0 reads them.
        options = int(ssl_context.set_options(0))
    except Exception:
        return False
    return bool(options & SSL.OP_NO_COMPRESSION)

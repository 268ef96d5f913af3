"""Content decoding (gzip, deflate, br) with a limit against decompression bombs; sans-I/O.

A :class:`Decoder` is fed the body as it arrives and returns decoded bytes;
it raises :class:`~netproto_twisted.http.client.errors.DecompressionBomb` as
soon as the output passes ``max_size`` bytes, or passes ``max_ratio`` times
the input once the output is over a mebibyte -- so a 10 MB gzip bomb that
inflates to 10 GB is refused after decoding a few megabytes, without ever
holding more than one chunk in memory.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from netproto_twisted.http.client.errors import DecompressionBomb

try:
    import brotli  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - brotli is optional
    brotli = None

__all__ = [
    "DEFAULT_MAX_DECODED",
    "DEFAULT_MAX_RATIO",
    "Decoder",
    "accept_encoding",
    "make_decoder",
]

#: Decoded bytes a response may produce by default (1 GiB).
DEFAULT_MAX_DECODED = 1 << 30
#: Largest output/input ratio allowed once the output passes :data:`_RATIO_FLOOR`.
DEFAULT_MAX_RATIO = 1000
_RATIO_FLOOR = 1 << 20
#: Decoded bytes produced per step, so a tiny input cannot make a huge chunk.
_STEP = 256 * 1024


def accept_encoding() -> str:
    """The ``Accept-Encoding`` value this client can decode (``br`` only with brotli)."""
    return "gzip, deflate, br" if brotli is not None else "gzip, deflate"


class Decoder:
    """Decode one content-coded body in chunks, within a size and ratio limit."""

    def __init__(
        self,
        coding: str,
        *,
        max_size: int = DEFAULT_MAX_DECODED,
        max_ratio: int = DEFAULT_MAX_RATIO,
    ) -> None:
        self.coding = coding
        self.max_size = max_size
        self.max_ratio = max_ratio
        self.bytes_in = 0
        self.bytes_out = 0
        self._first = True
        self._zlib: zlib._Decompress | None = None
        self._brotli: object | None = None
        if coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            self._zlib = None  # decided on the first bytes: zlib-wrapped or raw
        elif coding == "br":
            if brotli is None:
                raise ValueError("br content coding needs the brotli package")
            self._brotli = brotli.Decompressor()
        else:
            raise ValueError(f"unknown content coding {coding!r}")

    def _check(self, produced: int) -> None:
        self.bytes_out += produced
        if self.bytes_out > self.max_size:
            raise DecompressionBomb(self.max_size)
        if self.bytes_out > _RATIO_FLOOR and self.bytes_out > self.max_ratio * max(
            self.bytes_in, 1
        ):
            raise DecompressionBomb(self.max_size)

    def feed(self, data: bytes, emit: Callable[[bytes], None]) -> None:
        """Decode ``data``, passing each decoded piece to ``emit`` (in bounded steps)."""
        if self._brotli is not None:
            self.bytes_in += len(data)
            out = self._brotli.process(data)  # type: ignore[attr-defined]
            self._check(len(out))
            if out:
                emit(out)
            return
        if self._zlib is None:
            # deflate: RFC 9110 says zlib format; some servers send raw deflate.
            wbits = zlib.MAX_WBITS if data[:1] and (data[0] & 0x0F) == 8 else -zlib.MAX_WBITS
            self._zlib = zlib.decompressobj(wbits)
        decomp = self._zlib
        pending = data
        while pending:
            out = decomp.decompress(pending, _STEP)
            self.bytes_in += len(pending) - len(decomp.unconsumed_tail)
            pending = decomp.unconsumed_tail
            self._check(len(out))
            if out:
                emit(out)
            if decomp.eof:
                break

    def flush(self, emit: Callable[[bytes], None]) -> None:
        """Emit what the decoder still holds at the end of the body."""
        if self._zlib is not None:
            out = self._zlib.flush()
            self._check(len(out))
            if out:
                emit(out)


def make_decoder(
    content_encoding: str | None,
    *,
    max_size: int = DEFAULT_MAX_DECODED,
    max_ratio: int = DEFAULT_MAX_RATIO,
) -> Decoder | None:
    """A decoder for a ``Content-Encoding`` value, or ``None`` for identity or an unknown coding.

    Only one coding is undone (the last applied); stacked codings are left
    encoded, as are codings we do not know.
    """
    if not content_encoding:
        return None
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    if len(codings) != 1 or codings[0] == "identity":
        return None
    try:
        return Decoder(codings[0], max_size=max_size, max_ratio=max_ratio)
    except ValueError:
        return None

"""core.deflate: the raw DEFLATE stream pair, its bomb cap, installing it on a connection."""

from __future__ import annotations

import zlib

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from netproto_twisted.core.deflate import (
    CompressionError,
    DecompressionBomb,
    DeflateStream,
    start_deflate,
    tls_compression_off,
)
from netproto_twisted.core.lineproto import LineProtocol
from netproto_twisted.core.tls import ensure_dev_certificate, server_context


def peer_pair() -> tuple[zlib._Compress, zlib._Decompress]:
    """What the other end uses: its own raw deflate compressor and decompressor."""
    return zlib.compressobj(6, zlib.DEFLATED, -15), zlib.decompressobj(-15)


class StreamTests(TestCase):
    def test_each_burst_is_decodable_at_once(self) -> None:
        """A sync flush after every write: the peer decodes each reply without waiting."""
        stream = DeflateStream()
        _, inflate = peer_pair()
        for i in range(50):
            reply = f"211 {i} 1 {i} comp.test\r\n".encode()
            self.assertEqual(inflate.decompress(stream.compress(reply)), reply)
        # A sync flush ends on the empty stored block 00 00 FF FF.
        self.assertTrue(stream.compress(b"x").endswith(b"\x00\x00\xff\xff"))
        self.assertGreater(stream.bytes_out, 0)

    def test_decompress_peer_stream_in_pieces(self) -> None:
        deflate, _ = peer_pair()
        text = b"".join(b"%d\tsubject %d\tfrom\r\n" % (i, i) for i in range(2000))
        wire = deflate.compress(text) + deflate.flush(zlib.Z_SYNC_FLUSH)
        stream = DeflateStream()
        out = b"".join(stream.decompress(wire[i : i + 7]) for i in range(0, len(wire), 7))
        self.assertEqual(out, text)
        self.assertEqual((stream.bytes_in, stream.bytes_inflated), (len(wire), len(text)))

    def test_junk_is_an_error(self) -> None:
        stream = DeflateStream()
        with self.assertRaises(CompressionError):
            stream.decompress(b"\xff" * 64)
        # Once failed, it stays failed.
        with self.assertRaises(CompressionError):
            stream.decompress(b"")

    def test_bomb(self) -> None:
        """A chunk inflating past the cap raises, without producing the whole output."""
        bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
        wire = bomb.compress(b"\0" * (20 * 1024 * 1024)) + bomb.flush(zlib.Z_SYNC_FLUSH)
        self.assertLess(len(wire), 64 * 1024)
        stream = DeflateStream(max_expansion=1024 * 1024)
        with self.assertRaises(DecompressionBomb):
            stream.decompress(wire)

    def test_expansion_up_to_the_cap_is_fine(self) -> None:
        deflate, _ = peer_pair()
        wire = deflate.compress(b"a" * 1000) + deflate.flush(zlib.Z_SYNC_FLUSH)
        self.assertEqual(DeflateStream(max_expansion=1000).decompress(wire), b"a" * 1000)
        with self.assertRaises(DecompressionBomb):
            DeflateStream(max_expansion=999).decompress(wire)

    def test_end_of_stream_is_an_error(self) -> None:
        """A final block ends the peer's stream: the connection cannot go on."""
        deflate, _ = peer_pair()
        wire = deflate.compress(b"QUIT\r\n") + deflate.flush(zlib.Z_FINISH)
        with self.assertRaises(CompressionError):
            DeflateStream().decompress(wire + b"more")

    def test_bad_cap(self) -> None:
        with self.assertRaises(ValueError):
            DeflateStream(max_expansion=0)

    @given(st.lists(st.binary(max_size=3000), max_size=20))
    def test_round_trip(self, writes: list[bytes]) -> None:
        one, other = DeflateStream(), DeflateStream()
        for data in writes:
            self.assertEqual(other.decompress(one.compress(data)), data)

    def test_tls_contexts_refuse_tls_compression(self) -> None:
        cert, key = ensure_dev_certificate(self.mktemp())
        self.assertTrue(tls_compression_off(server_context(cert, key)))
        self.assertFalse(tls_compression_off(object()))


class Lines(LineProtocol):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[bytes] = []
        self.errors: list[Exception] = []

    def line_received(self, line: bytes) -> None:
        self.lines.append(line)
        if line == b"COMPRESS":
            self.send_raw(b"206 go\r\n")
            start_deflate(self, max_expansion=64 * 1024)

    def compression_failed(self, error: Exception) -> None:
        self.errors.append(error)
        super().compression_failed(error)


class InstalledTests(TestCase):
    def connect(self) -> tuple[Lines, StringTransport]:
        proto, transport = Lines(), StringTransport()
        proto.makeConnection(transport)
        return proto, transport

    def test_bytes_after_the_command_in_the_same_read_are_inflated(self) -> None:
        proto, transport = self.connect()
        deflate, inflate = peer_pair()
        wire = deflate.compress(b"GROUP a\r\nQUIT\r\n") + deflate.flush(zlib.Z_SYNC_FLUSH)
        proto.dataReceived(b"COMPRESS\r\n" + wire[:5])
        proto.dataReceived(wire[5:])
        self.assertEqual(proto.lines, [b"COMPRESS", b"GROUP a", b"QUIT"])
        out = transport.value()
        self.assertTrue(out.startswith(b"206 go\r\n"))
        proto.send_raw(b"211 ok\r\n")
        self.assertEqual(
            inflate.decompress(transport.value()[len(b"206 go\r\n") :]), b"211 ok\r\n"
        )

    def test_junk_after_the_go_ahead_closes(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(b"COMPRESS\r\n")
        proto.dataReceived(b"\xff\xfe junk \xff" * 8)
        self.assertEqual(len(proto.errors), 1)
        self.assertTrue(transport.disconnecting)
        proto.dataReceived(b"more")  # ignored, reported once
        self.assertEqual(len(proto.errors), 1)
        self.assertEqual(proto.lines, [b"COMPRESS"])

    def test_bomb_closes(self) -> None:
        proto, transport = self.connect()
        bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
        wire = bomb.compress(b"A" * (8 * 1024 * 1024)) + bomb.flush(zlib.Z_SYNC_FLUSH)
        proto.dataReceived(b"COMPRESS\r\n")
        proto.dataReceived(wire)
        self.assertIsInstance(proto.errors[0], DecompressionBomb)
        self.assertTrue(transport.disconnecting)

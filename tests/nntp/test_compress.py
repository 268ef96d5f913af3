"""NNTP COMPRESS DEFLATE (RFC 8054): our client and a raw zlib socket against our server.

The raw tests run a blocking socket in a thread with nothing of ours on
that side but ``zlib``: they check the wire format itself (206 in clear,
then raw deflate both ways, sync-flushed replies) and what bad input does.
"""

from __future__ import annotations

import contextlib
import socket
import zlib
from collections.abc import Callable
from typing import TypeVar

from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase

from netproto_twisted.core.errors import LocalProtocolError
from netproto_twisted.nntp import NNTPClient, NNTPPermanentError, connect_nntp
from netproto_twisted.testing.nntp import NewsServer, start_news_server

T = TypeVar("T")


class RawPeer:
    """A blocking NNTP peer: clear text, then raw deflate both ways after ``206``."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buffer = b""
        self.inflate: zlib._Decompress | None = None
        self.deflate: zlib._Compress | None = None
        self.closed = False

    def send(self, data: bytes) -> None:
        if self.deflate is not None:
            data = self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
            return False
        if self.inflate is not None:
            data = self.inflate.decompress(data)
        self.buffer += data
        return True

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise EOFError(self.buffer)
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def block(self) -> list[bytes]:
        lines = []
        while (line := self.line()) != b".":
            lines.append(line)
        return lines

    def command(self, line: bytes) -> bytes:
        self.send(line + b"\r\n")
        return self.line()

    def start(self) -> None:
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)
        # Whatever came behind the 206 line is compressed already.
        rest, self.buffer = self.buffer, b""
        if rest:
            self.buffer = self.inflate.decompress(rest)

    def until_closed(self) -> bytes:
        while not self.closed:
            try:
                self._fill()
            except ConnectionResetError:
                break
        return self.buffer

    def close(self) -> None:
        self.sock.close()


class CompressTests(TestCase):
    async def start(self, **settings: object) -> NewsServer:
        news = await start_news_server(
            reactor, groups={"comp.test": "Tests"}, users={"reader": "secret"}, **settings
        )
        self.addCleanup(news.stop)
        return news

    async def client(self, news: NewsServer) -> NNTPClient:
        client = await connect_nntp(reactor, news.host, news.port)
        self.addCleanup(client.close)
        return client

    def raw(self, news: NewsServer, run: Callable[[RawPeer], T]) -> defer.Deferred[T]:
        def go() -> T:
            peer = RawPeer(news.host, news.port)
            try:
                assert peer.line().startswith(b"200 ")
                return run(peer)
            finally:
                peer.close()

        return threads.deferToThread(go)

    # -- our client ---------------------------------------------------------------------------

    async def test_client_reads_and_posts_compressed(self) -> None:
        news = await self.start()
        for i in range(5):
            await news.add_article("comp.test", subject=f"s{i}", body=f"body {i}\n.dot\n")
        client = await self.client(news)
        await client.login("reader", "secret")
        caps = await client.capabilities()
        self.assertEqual(caps["COMPRESS"], ["DEFLATE"])
        self.assertIn("MOTD", caps["LIST"])
        self.assertEqual(await client.compress(), "compression active")
        self.assertTrue(client.compressed)
        caps = await client.capabilities()
        self.assertNotIn("COMPRESS", caps)
        self.assertNotIn("AUTHINFO", caps)
        group = await client.group("comp.test")
        self.assertEqual(group.count, 5)
        article = await client.article(3)
        self.assertIn(b".dot", article.lines)
        self.assertIn(b"body 2", article.lines)
        await client.post(
            b"From: a@b.test\r\nNewsgroups: comp.test\r\nSubject: zipped\r\n\r\nhello\r\n"
        )
        over = await client.over((1, None))
        self.assertEqual(over[-1][1]["subject"], "zipped")
        with self.assertRaises(NNTPPermanentError) as e:
            await client.protocol.command("COMPRESS DEFLATE")
        self.assertEqual(e.exception.code, 502)
        self.assertEqual(await client.quit(), "bye")

    async def test_over_of_many_lines(self) -> None:
        """A long OVER listing streams through the compressor intact, and shrinks."""
        news = await self.start()
        count = 1500
        await defer.gatherResults(
            [
                news.add_article("comp.test", subject=f"subject number {i}", body="x\n")
                for i in range(count)
            ]
        )
        client = await self.client(news)
        await client.compress()
        await client.group("comp.test")
        seen: list[int] = []
        total = await client.over(
            (1, None), on_lines=lambda batch: seen.extend(n for n, _ in batch)
        )
        self.assertEqual(total, count)
        self.assertEqual(seen, list(range(1, count + 1)))
        over = await client.over((count - 1, count))
        self.assertEqual([f["subject"] for _, f in over],
                         [f"subject number {i}" for i in (count - 2, count - 1)])  # fmt: skip
        # The overview text compresses well: far fewer bytes came over the wire.
        stream = client.protocol.decoder.stream  # type: ignore[union-attr]
        self.assertGreater(stream.bytes_inflated, 100 * count)
        self.assertLess(stream.bytes_in * 3, stream.bytes_inflated)

    async def test_client_refuses_to_pipeline_behind_compress(self) -> None:
        news = await self.start()
        client = await self.client(news)
        d = client.compress()
        with self.assertRaises(LocalProtocolError):
            client.protocol.command("DATE")
        await d
        self.assertGreater((await client.date()).year, 2000)

    async def test_connect_with_compress(self) -> None:
        """``connect_nntp(compress=True)``: logged in first, then compressed, if offered."""
        news = await self.start()
        await news.add_article("comp.test")
        client = await connect_nntp(
            reactor, news.host, news.port, user="reader", password="secret", compress=True
        )
        self.addCleanup(client.close)
        self.assertTrue(client.compressed)
        self.assertEqual((await client.group("comp.test")).count, 1)
        plain = await start_news_server(reactor, groups=["comp.test"], compression=False)
        self.addCleanup(plain.stop)
        other = await connect_nntp(reactor, plain.host, plain.port, compress=True)
        self.addCleanup(other.close)
        self.assertFalse(other.compressed)

    async def test_refused_compress_leaves_clear_text(self) -> None:
        news = await self.start(compression=False)
        client = await self.client(news)
        self.assertNotIn("COMPRESS", await client.capabilities())
        with self.assertRaises(NNTPPermanentError) as e:
            await client.compress()
        self.assertEqual(e.exception.code, 502)
        self.assertFalse(client.compressed)
        self.assertEqual((await client.group("comp.test")).count, 0)

    async def test_login_before_compress_only(self) -> None:
        news = await self.start()
        client = await self.client(news)
        await client.compress()
        with self.assertRaises(NNTPPermanentError) as e:
            await client.login("reader", "secret")
        self.assertEqual(e.exception.code, 502)

    # -- the wire, with zlib alone ------------------------------------------------------------

    async def test_raw_wire_format(self) -> None:
        news = await self.start()
        await news.add_article("comp.test", subject="hello", body="line\n")

        def run(peer: RawPeer) -> tuple[bytes, list[bytes], bytes, bytes, bytes]:
            caps = peer.command(b"CAPABILITIES")
            assert caps.startswith(b"101"), caps
            assert b"COMPRESS DEFLATE" in peer.block()
            bad = peer.command(b"COMPRESS GZIP")
            go = peer.command(b"COMPRESS DEFLATE")
            peer.start()
            group = peer.command(b"GROUP comp.test")
            assert peer.command(b"ARTICLE 1").startswith(b"220 ")
            article = peer.block()
            again = peer.command(b"COMPRESS DEFLATE")
            return bad, article, go, group, again

        bad, article, go, group, again = await self.raw(news, run)
        self.assertTrue(bad.startswith(b"503 "))
        self.assertTrue(go.startswith(b"206 "))
        self.assertEqual(group, b"211 1 1 1 comp.test")
        self.assertIn(b"Subject: hello", article)
        self.assertEqual(article[-1], b"line")
        self.assertTrue(again.startswith(b"502 "))

    async def test_raw_replies_are_sync_flushed(self) -> None:
        """Each reply ends in a sync flush: readable at once, no trailing partial block."""
        news = await self.start()

        def run(peer: RawPeer) -> bytes:
            peer.command(b"COMPRESS DEFLATE")
            peer.start()
            peer.send(b"DATE\r\n")
            data = peer.sock.recv(65536)
            return data

        data = await self.raw(news, run)
        self.assertTrue(data.endswith(b"\x00\x00\xff\xff"))
        self.assertTrue(zlib.decompressobj(-15).decompress(data).startswith(b"111 "))

    async def test_junk_after_206(self) -> None:
        news = await self.start()

        def run(peer: RawPeer) -> bytes:
            peer.command(b"COMPRESS DEFLATE")
            peer.start()
            peer.send_raw(b"GROUP comp.test\r\n")  # clear text where deflate is due
            return peer.until_closed()

        rest = await self.raw(news, run)
        self.assertTrue(rest.startswith(b"400 "), rest)

    async def test_decompression_bomb(self) -> None:
        news = await self.start(max_compressed_expansion=256 * 1024)

        def run(peer: RawPeer) -> tuple[bytes, bytes]:
            peer.command(b"COMPRESS DEFLATE")
            peer.start()
            ok = peer.command(b"DATE")
            assert peer.deflate is not None
            bomb = peer.deflate.compress(b"X" * (16 * 1024 * 1024))
            bomb += peer.deflate.flush(zlib.Z_SYNC_FLUSH)
            with contextlib.suppress(OSError):
                peer.send_raw(bomb)
            return ok, peer.until_closed()

        ok, rest = await self.raw(news, run)
        self.assertTrue(ok.startswith(b"111 "))
        self.assertTrue(rest.startswith(b"400 "), rest[:80])

    async def test_no_starttls_or_authinfo_after_compress(self) -> None:
        news = await self.start(tls=True)

        def run(peer: RawPeer) -> tuple[bytes, bytes, list[bytes]]:
            peer.command(b"CAPABILITIES")
            before = peer.block()
            assert b"STARTTLS" in before and b"AUTHINFO USER SASL" in before, before
            assert b"COMPRESS DEFLATE" in before, before
            peer.command(b"COMPRESS DEFLATE")
            peer.start()
            auth = peer.command(b"AUTHINFO USER reader")
            tls = peer.command(b"STARTTLS")
            peer.command(b"CAPABILITIES")
            return auth, tls, peer.block()

        auth, tls, caps = await self.raw(news, run)
        self.assertTrue(auth.startswith(b"502 "))
        self.assertTrue(tls.startswith(b"502 "))
        self.assertFalse([c for c in caps if c.split()[0] in (b"AUTHINFO", b"COMPRESS")])

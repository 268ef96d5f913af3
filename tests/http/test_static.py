"""Static files over loopback, checked with the stdlib's urllib.request and raw sockets."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

from twisted.trial.unittest import TestCase

from netproto_twisted.http.server import body
from netproto_twisted.testing import ServedSite, serve_http

from .helpers import fetch, raw_exchange, reactor

BIG = bytes(range(256)) * 12 * 1024  # 3 MiB: streamed, not cached


class StaticTests(TestCase):
    async def serve(self, **kwargs: object) -> ServedSite:
        server = await serve_http(reactor, path=self.root, **kwargs)  # type: ignore[arg-type]
        self.addCleanup(server.stop)
        return server

    def setUp(self) -> None:
        self.base = Path(self.mktemp()).absolute()
        self.root = self.base / "www"
        (self.root / "sub").mkdir(parents=True)
        (self.root / "docs").mkdir()
        (self.root / "docs" / "index.html").write_text("<p>docs index</p>")
        (self.root / "hello.txt").write_bytes(b"0123456789abcdefghij")
        (self.root / "<script>&.txt").write_text("x")
        (self.root / "B.txt").write_text("b")
        (self.root / "a.txt").write_text("a")
        (self.root / "big.bin").write_bytes(BIG)
        (self.root / "app.js").write_text("console.log(1)")
        (self.root / "app.js.br").write_bytes(b"BROTLI")
        (self.root / "app.js.gz").write_bytes(gzip.compress(b"console.log(1)"))
        (self.base / "secret.txt").write_text("secret")
        os.symlink(self.base / "secret.txt", self.root / "out-link")
        os.symlink(self.root / "hello.txt", self.root / "in-link")

    async def test_listing_is_escaped_and_sorted(self) -> None:
        server = await self.serve()
        reply = await fetch(server.url("/"))
        self.assertEqual(reply.status, 200)
        page = reply.body.decode()
        self.assertIn("&lt;script&gt;&amp;.txt", page)
        self.assertNotIn("<script>", page)
        self.assertIn('href="%3Cscript%3E%26.txt"', page)
        order = [page.index(n) for n in ('"a.txt"', '"B.txt"', '"big.bin"', '"docs/"', '"sub/"')]
        self.assertEqual(order, sorted(order))

    async def test_index_file_and_directory_redirect(self) -> None:
        server = await self.serve()
        reply = await fetch(server.url("/docs/"))
        self.assertEqual((reply.status, reply.body), (200, b"<p>docs index</p>"))
        self.assertEqual(reply.headers["Content-Type"], "text/html; charset=utf-8")
        reply = await fetch(server.url("/docs?x=1"))
        self.assertEqual(reply.status, 301)
        self.assertEqual(reply.headers["Location"], "/docs/?x=1")

    async def test_no_listings(self) -> None:
        server = await self.serve(listings=False)
        self.assertEqual((await fetch(server.url("/sub/"))).status, 404)

    async def test_file_head_and_methods(self) -> None:
        server = await self.serve()
        reply = await fetch(server.url("/hello.txt"))
        self.assertEqual(reply.body, b"0123456789abcdefghij")
        self.assertEqual(reply.headers["Content-Type"], "text/plain; charset=utf-8")
        self.assertEqual(reply.headers["Accept-Ranges"], "bytes")
        head = await fetch(server.url("/hello.txt"), method="HEAD")
        self.assertEqual(
            (head.status, head.body, head.headers["Content-Length"]), (200, b"", "20")
        )
        post = await fetch(server.url("/hello.txt"), data=b"x")
        self.assertEqual(post.status, 405)
        self.assertEqual(post.headers["Allow"], "GET, HEAD")
        self.assertEqual((await fetch(server.url("/nope"))).status, 404)
        self.assertEqual((await fetch(server.url("/hello.txt/"))).status, 404)

    async def test_ranges(self) -> None:
        server = await self.serve()
        one = await fetch(server.url("/hello.txt"), Range="bytes=2-4")
        self.assertEqual((one.status, one.body), (206, b"234"))
        self.assertEqual(one.headers["Content-Range"], "bytes 2-4/20")
        suffix = await fetch(server.url("/hello.txt"), Range="bytes=-3")
        self.assertEqual(suffix.body, b"hij")
        many = await fetch(server.url("/hello.txt"), Range="bytes=0-1,5-6")
        self.assertEqual(many.status, 206)
        kind = many.headers["Content-Type"]
        self.assertTrue(kind.startswith("multipart/byteranges; boundary="))
        boundary = kind.rpartition("=")[2].encode()
        self.assertEqual(many.body.count(b"--" + boundary), 3)
        self.assertIn(b"Content-Range: bytes 0-1/20\r\n\r\n01\r\n", many.body)
        self.assertIn(b"Content-Range: bytes 5-6/20\r\n\r\n56\r\n", many.body)
        self.assertEqual(int(many.headers["Content-Length"]), len(many.body))
        bad = await fetch(server.url("/hello.txt"), Range="bytes=50-60")
        self.assertEqual((bad.status, bad.headers["Content-Range"]), (416, "bytes */20"))
        big = await fetch(server.url("/big.bin"), Range="bytes=1000000-1000009,-2")
        self.assertIn(BIG[1000000:1000010], big.body)
        self.assertIn(BIG[-2:], big.body)

    async def test_validators(self) -> None:
        server = await self.serve()
        first = await fetch(server.url("/hello.txt"))
        etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
        again = await fetch(server.url("/hello.txt"), If_None_Match=etag)
        self.assertEqual((again.status, again.body), (304, b""))
        since = await fetch(server.url("/hello.txt"), If_Modified_Since=modified)
        self.assertEqual(since.status, 304)
        other = await fetch(server.url("/hello.txt"), If_None_Match='"other"')
        self.assertEqual(other.status, 200)
        matched = await fetch(server.url("/hello.txt"), Range="bytes=0-0", If_Range=etag)
        self.assertEqual(matched.status, 206)
        stale = await fetch(server.url("/hello.txt"), Range="bytes=0-0", If_Range='"stale"')
        self.assertEqual((stale.status, len(stale.body)), (200, 20))
        failed = await fetch(server.url("/hello.txt"), If_Match='"stale"')
        self.assertEqual(failed.status, 412)

    async def test_precompressed_siblings(self) -> None:
        server = await self.serve()
        br = await fetch(server.url("/app.js"), Accept_Encoding="gzip, br")
        self.assertEqual((br.body, br.headers["Content-Encoding"]), (b"BROTLI", "br"))
        self.assertEqual(br.headers["Vary"], "Accept-Encoding")
        self.assertEqual(br.headers["Content-Type"], "text/javascript; charset=utf-8")
        gz = await fetch(server.url("/app.js"), Accept_Encoding="gzip, br;q=0")
        self.assertEqual(gzip.decompress(gz.body), b"console.log(1)")
        plain = await fetch(server.url("/app.js"))
        self.assertEqual(plain.body, b"console.log(1)")
        self.assertIsNone(plain.headers["Content-Encoding"])
        self.assertNotEqual(plain.headers["ETag"], br.headers["ETag"])

    async def test_large_file_streamed(self) -> None:
        server = await self.serve()
        reply = await fetch(server.url("/big.bin"))
        self.assertEqual(reply.body, BIG)

    async def test_large_file_and_single_range_by_sendfile(self) -> None:
        calls: list[tuple[int, int | None]] = []
        real = body.sendfile_transport

        def counting(reactor: Any, transport: Any, fd: int, offset: int, count: Any) -> Any:
            calls.append((offset, count))
            return real(reactor, transport, fd, offset, count)

        self.patch(body, "sendfile_transport", counting)
        server = await self.serve()
        whole = await fetch(server.url("/big.bin"))
        part = await fetch(server.url("/big.bin"), Range="bytes=1000000-2999999")
        both = await fetch(server.url("/big.bin"), Range="bytes=0-9,-2")  # multipart: producer
        head = await fetch(server.url("/big.bin"), method="HEAD")
        self.assertEqual(whole.body, BIG)
        self.assertEqual((part.status, part.body), (206, BIG[1000000:3000000]))
        self.assertIn(BIG[:10], both.body)
        self.assertEqual((head.body, head.headers["Content-Length"]), (b"", str(len(BIG))))
        self.assertEqual(calls, [(0, len(BIG)), (1000000, 2000000)])

    async def test_client_gone_mid_sendfile(self) -> None:
        server = await self.serve()
        answer = await raw_exchange(
            server.port, b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n", limit=100_000
        )  # reads a part, then closes
        self.assertTrue(answer.startswith(b"HTTP/1.1 200 OK"))
        again = await fetch(server.url("/big.bin"))  # the server goes on serving
        self.assertEqual(again.body, BIG)

    async def test_changed_file_seen_after_revalidation(self) -> None:
        server = await self.serve(revalidate=0.0)
        self.assertEqual((await fetch(server.url("/a.txt"))).body, b"a")
        (self.root / "a.txt").write_text("changed")
        self.assertEqual((await fetch(server.url("/a.txt"))).body, b"changed")

    async def test_traversal_in_every_encoding(self) -> None:
        server = await self.serve()
        attacks = [
            "/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt", "/..%2fsecret.txt",
            "/sub/..%2f..%2fsecret.txt", "/..%5csecret.txt", "/%5c..%5csecret.txt",
            "/..\\secret.txt", "/hello.txt%00.png", "/%252e%252e/secret.txt",
            "/%c0%ae%c0%ae/secret.txt", "/out-link", "//secret.txt", "/sub/../../secret.txt",
        ]  # fmt: skip
        for path in attacks:
            answer = await raw_exchange(
                server.port,
                f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
            )
            status = answer.split(b" ", 2)[1]
            self.assertIn(status, (b"400", b"404"), path)
            self.assertNotIn(b"secret", answer.partition(b"\r\n\r\n")[2], path)
        self.assertEqual((await fetch(server.url("/in-link"))).status, 200)

    async def test_symlinks_out_allowed(self) -> None:
        server = await self.serve(follow_symlinks=True)
        self.assertEqual((await fetch(server.url("/out-link"))).body, b"secret")

"""``ftp:`` URLs through the opener: our FTP server, pyftpdlib and vsftpd as the peers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import ResponseDone

from netproto_twisted.core.tls import client_options
from netproto_twisted.http.client import FTPHandler, URLError, build_opener, urlopen
from netproto_twisted.http.client.ftp_handler import parse_ftp_url
from netproto_twisted.testing.ftp import FTPTestServer, start_ftp_server
from tests.ftp.peers import Pyftpdlib, Vsftpd, free_port

#: Characters of names in the property test: anything but the separators and line breaks.
_NAME = st.characters(blacklist_characters="/;\r\n", blacklist_categories=("Cs",))


class ParseTests(SynchronousTestCase):
    def test_parts(self) -> None:
        self.assertEqual(
            parse_ftp_url("ftp://u%40x:p%3Aw@host:2121/a/b%20c/f.txt;type=a"),
            ("host", 2121, "u@x", "p:w", ["a", "b c"], "f.txt", "a"),
        )
        self.assertEqual(
            parse_ftp_url("ftp://host/pub/"), ("host", 21, "anonymous", "", ["pub"], "", "d")
        )
        self.assertEqual(parse_ftp_url("ftp://h/f")[5:], ("f", "i"))
        self.assertEqual(parse_ftp_url("ftp://h/d;type=d")[4:], ([], "d", "d"))
        self.assertEqual(parse_ftp_url("FTP://[::1]:21/x")[:2], ("::1", 21))

    @given(
        st.lists(st.text(_NAME, min_size=1, max_size=8), max_size=4),
        st.text(_NAME, max_size=8),
        st.text(_NAME, min_size=1, max_size=8),
        st.text(_NAME, max_size=8),
    )
    def test_round_trip(self, dirs: list[str], file: str, user: str, password: str) -> None:
        """Percent-encoded parts come back as they were, whatever characters they hold."""
        path = "/".join(quote(n, safe="") for n in [*dirs, file])
        auth = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
        url = f"ftp://{auth}@example.org:2121/{path}"
        host, port, u, p, d, f, kind = parse_ftp_url(url)
        self.assertEqual(
            (host, port, u, p, d, f), ("example.org", 2121, user, password, dirs, file)
        )
        self.assertEqual(kind, "i" if file else "d")

    def test_refused(self) -> None:
        for url in ("ftp:///nohost", "ftp://h:99999/f", "ftp://h/f;type=x", "http://h/f",
                    "ftp://h/a%0D%0ADELE%20x/f"):  # fmt: skip
            with self.assertRaises(ValueError, msg=url):
                parse_ftp_url(url)


class _Slow(Protocol):
    """Reads the body pausing after each chunk; resumed by the test."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.chunks = 0
        self.ended: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        self.chunks += 1
        self.transport.pauseProducing()  # type: ignore[union-attr]
        reactor.callLater(0, self.transport.resumeProducing)  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.ended = reason


class OurServerTests(TestCase):
    async def _server(self) -> FTPTestServer:
        server = await start_ftp_server(
            reactor, self.mktemp(), {"alice": ("p@ss", "elr")}, anonymous=True
        )
        self.addCleanup(server.stop)
        home = server.path("alice")
        (home / "d" / "e").mkdir(parents=True)
        (home / "d" / "e" / "notes.txt").write_bytes(b"one\ntwo\n")
        (home / "big.bin").write_bytes(self.payload)
        return server

    payload = os.urandom(3 * 1024 * 1024 + 11)

    def _url(self, server: FTPTestServer, path: str) -> str:
        return f"ftp://alice:p%40ss@127.0.0.1:{server.port}/{path}"

    async def test_file_streamed_with_headers(self) -> None:
        server = await self._server()
        response = await urlopen(self._url(server, "big.bin"), reactor=reactor)
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers["Content-length"], str(len(self.payload)))
        self.assertIn("Last-modified", response.headers)
        self.assertEqual(await response.read(max_size=None), self.payload)

    async def test_paced_by_the_reader(self) -> None:
        server = await self._server()
        response = await urlopen(self._url(server, "big.bin"), reactor=reactor)
        reader = _Slow()
        response.deliver_body(reader)
        while reader.ended is None:
            await _turn()
        self.assertIsNotNone(reader.ended.check(ResponseDone))
        self.assertEqual(bytes(reader.data), self.payload)
        self.assertGreater(reader.chunks, 10)

    async def test_nested_path_and_ascii_type(self) -> None:
        server = await self._server()
        response = await urlopen(self._url(server, "d/e/notes.txt"), reactor=reactor)
        self.assertEqual(response.headers["Content-type"], "text/plain")
        self.assertEqual(await response.read(), b"one\ntwo\n")
        response = await urlopen(self._url(server, "d/e/notes.txt;type=a"), reactor=reactor)
        self.assertEqual(await response.read(), b"one\r\ntwo\r\n")
        self.assertNotIn("Content-length", response.headers)

    async def test_directory_listings(self) -> None:
        server = await self._server()
        for path in ("d/e/", "d/e", "d/e;type=d"):
            response = await urlopen(self._url(server, path), reactor=reactor)
            lines = (await response.read()).decode().splitlines()
            self.assertEqual(len(lines), 1, path)
            self.assertTrue(lines[0].endswith(" notes.txt"), lines)
        anonymous = await urlopen(f"ftp://127.0.0.1:{server.port}/", reactor=reactor)
        self.assertEqual(await anonymous.read(), b"")  # the empty pub/ root

    async def test_errors_are_url_errors(self) -> None:
        server = await self._server()
        bad = [
            self._url(server, "missing.bin"),
            self._url(server, "d/nowhere/x.txt"),
            f"ftp://alice:wrong@127.0.0.1:{server.port}/big.bin",
            f"ftp://127.0.0.1:{free_port()}/x",
            "ftp:///x",
        ]
        for url in bad:
            with self.assertRaises(URLError, msg=url) as e:
                await urlopen(url, reactor=reactor)
            self.assertIn("ftp error", str(e.exception.reason))

    async def test_abandoned_body_closes_the_session(self) -> None:
        server = await self._server()
        response = await urlopen(self._url(server, "big.bin"), reactor=reactor)
        await response.close()  # a big body is abandoned, not drained
        live = server.factory.live  # type: ignore[attr-defined]
        for _ in range(500):
            if not live:
                break
            await _turn(0.01)
        self.assertEqual(len(live), 0)

    async def test_explicit_tls(self) -> None:
        server = await start_ftp_server(reactor, self.mktemp(), {"alice": ("pw", "elr")}, tls=True)
        self.addCleanup(server.stop)
        server.path("alice", "s.txt").write_bytes(b"secret")
        handler = FTPHandler(tls="explicit", tls_options=client_options("localhost", verify=False))
        opener = build_opener(handler, reactor=reactor)
        response = await opener.open(f"ftp://alice:pw@127.0.0.1:{server.port}/s.txt")
        self.assertEqual(await response.read(), b"secret")

    async def test_active_mode_handler(self) -> None:
        server = await self._server()
        opener = build_opener(FTPHandler(passive=False), reactor=reactor)
        response = await opener.open(self._url(server, "d/e/notes.txt"))
        self.assertEqual(await response.read(), b"one\ntwo\n")


class PeerTests(TestCase):
    async def test_pyftpdlib(self) -> None:
        server = Pyftpdlib(Path(self.mktemp()).absolute())
        self.addCleanup(server.stop)
        await server.started()
        (server.root / "sub").mkdir()
        (server.root / "sub" / "f.bin").write_bytes(b"p" * 100_000)
        base = f"ftp://bob:pw@127.0.0.1:{server.port}"
        response = await urlopen(base + "/sub/f.bin", reactor=reactor)
        self.assertEqual(response.headers["Content-length"], "100000")
        self.assertEqual(await response.read(), b"p" * 100_000)
        listing = await (await urlopen(base + "/sub/", reactor=reactor)).read()
        self.assertIn(b"f.bin", listing)
        with self.assertRaises(URLError):
            await urlopen(base + "/sub/none.bin", reactor=reactor)

    async def test_vsftpd(self) -> None:
        server = Vsftpd(Path(self.mktemp()).absolute())
        self.addCleanup(server.stop)
        await server.started()
        (server.root / "hello.txt").write_bytes(b"hello vsftpd\n")
        base = f"ftp://127.0.0.1:{server.port}"
        response = await urlopen(base + "/hello.txt", reactor=reactor)
        self.assertEqual(await response.read(), b"hello vsftpd\n")
        listing = await (await urlopen(base + "/", reactor=reactor)).read()
        self.assertIn(b"hello.txt", listing)


def _turn(seconds: float = 0) -> Any:
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)

"""The client's active mode (PORT/EPRT): against vsftpd, pyftpdlib and our own server."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core.tls import client_options
from netproto_twisted.ftp import FTPConnectionLost, connect_ftp
from netproto_twisted.ftp.client import FTPClient
from netproto_twisted.ftp.client_data import DataFactory, DataSetup
from tests.ftp.helpers import ServerTestCase
from tests.ftp.peers import Pyftpdlib, Vsftpd

_INSECURE = client_options("localhost", verify=False)


async def _round_trip(test: TestCase, client: FTPClient, name: str) -> list[str]:
    """Store, retrieve, list and resume in active mode; return the names listed."""
    test.assertFalse(client.passive)
    sent: list[str] = []
    send = client.protocol.send_command

    def record(line: str) -> Any:
        sent.append(line.split(" ")[0])
        return send(line)

    client.protocol.send_command = record  # type: ignore[method-assign]
    payload = os.urandom(400_000)
    await client.storbinary(f"STOR {name}", io.BytesIO(payload))
    out = io.BytesIO()
    await client.retrbinary(f"RETR {name}", out)
    test.assertEqual(out.getvalue(), payload)
    part = io.BytesIO()
    await client.retrbinary(f"RETR {name}", part, rest=399_000)
    test.assertEqual(part.getvalue(), payload[399_000:])
    names = await client.nlst()
    client.protocol.send_command = send  # type: ignore[method-assign]
    test.assertEqual(sent.count("PORT"), 4)  # one per transfer, and no passive command
    test.assertFalse({"EPSV", "PASV"} & set(sent))
    return names


class OurServerActiveTests(ServerTestCase):
    async def test_plain(self) -> None:
        server = await self.start()
        client = await connect_ftp(
            reactor, "127.0.0.1", server.port, user="alice", password="secret", passive=False
        )
        names = await _round_trip(self, client, "a.bin")
        self.assertEqual(names, ["a.bin"])
        await client.quit()
        self.assertEqual(server.path("alice", "a.bin").stat().st_size, 400_000)

    async def test_tls_data_channel_resumes_the_session(self) -> None:
        server = await self.start(tls=True)  # the server requires session reuse by default
        client = await connect_ftp(
            reactor, "127.0.0.1", server.port, tls="explicit", tls_options=_INSECURE,
            user="alice", password="secret", passive=False,
        )  # fmt: skip
        self.assertTrue(client.prot_private)
        self.assertEqual(await _round_trip(self, client, "t.bin"), ["t.bin"])
        await client.quit()

    async def test_set_pasv_switches_both_ways(self) -> None:
        server = await self.start()
        server.path("alice", "x.txt").write_bytes(b"x")
        client = await connect_ftp(reactor, "127.0.0.1", server.port, user="alice",
                                   password="secret")  # fmt: skip
        self.assertTrue(client.passive)
        client.set_pasv(False)
        self.assertEqual(await client.nlst(), ["x.txt"])
        client.set_pasv(True)
        self.assertEqual(await client.nlst(), ["x.txt"])
        await client.quit()


class VsftpdActiveTests(TestCase):
    async def _server(self) -> Vsftpd:
        server = Vsftpd(Path(self.mktemp()).absolute())
        self.addCleanup(server.stop)
        await server.started()
        return server

    async def test_plain(self) -> None:
        server = await self._server()
        client = await connect_ftp(
            reactor, "127.0.0.1", server.port, user="anonymous", passive=False
        )
        await client.cwd("up")
        self.assertEqual(await _round_trip(self, client, "v.bin"), ["v.bin"])
        await client.quit()

    async def test_tls_with_required_session_reuse(self) -> None:
        server = await self._server()
        client = await connect_ftp(
            reactor, "127.0.0.1", server.port, tls="explicit", tls_options=_INSECURE,
            user="anonymous", passive=False,
        )  # fmt: skip
        await client.cwd("up")
        self.assertEqual(await _round_trip(self, client, "w.bin"), ["w.bin"])
        await client.quit()


class PyftpdlibActiveTests(TestCase):
    async def test_plain(self) -> None:
        server = Pyftpdlib(Path(self.mktemp()).absolute())
        self.addCleanup(server.stop)
        await server.started()
        client = await connect_ftp(
            reactor, "127.0.0.1", server.port, user="bob", password="pw", passive=False
        )
        self.assertEqual(await _round_trip(self, client, "p.bin"), ["p.bin"])
        lines = await client.list()
        self.assertEqual(len(lines), 1)
        await client.quit()


class _Port:
    def __init__(self) -> None:
        self.listening = True

    def stopListening(self) -> None:
        self.listening = False


class ActiveSetupTests(SynchronousTestCase):
    def test_only_the_control_peer_once(self) -> None:
        factory = DataFactory(None, None, peer="127.0.0.1")
        port = _Port()
        setup = DataSetup(factory=factory, port=port)  # type: ignore[arg-type]
        self.assertIsNone(factory.buildProtocol(IPv4Address("TCP", "127.0.0.2", 5000)))
        self.assertTrue(port.listening)
        self.assertIsNotNone(factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000)))
        self.assertFalse(port.listening)  # taken: the listener stops
        self.assertIsNone(factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5001)))
        self.assertIsNotNone(setup)

    def test_server_that_never_connects(self) -> None:
        clock = Clock()
        port = _Port()
        factory = DataFactory(None, None, peer="127.0.0.1")
        setup = DataSetup(factory=factory, port=port)  # type: ignore[arg-type]
        d = ensureDeferred(setup.connected(clock, 5))
        clock.advance(5)
        failure = self.failureResultOf(d, FTPConnectionLost)
        self.assertIn("within 5 s", str(failure.value))
        self.assertFalse(port.listening)

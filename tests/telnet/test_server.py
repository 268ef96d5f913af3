"""The Telnet server over loopback with our client: login, shells, NAWS, bad input."""

from __future__ import annotations

import socket
from dataclasses import replace
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.telnet._wire import ECHO, IAC, SB, TTYPE, WILL, WONT, negotiation
from netproto_twisted.telnet.client import connect_telnet
from netproto_twisted.telnet.errors import TelnetConnectionClosed
from netproto_twisted.telnet.negotiation import CLIENT_POLICY, OptionPolicy
from netproto_twisted.telnet.script import ScriptedSession
from netproto_twisted.telnet.server import TelnetServerProtocol, TelnetSettings
from netproto_twisted.telnet.shells import PtyShellFactory
from netproto_twisted.testing.telnet import telnet_server_factory

USERS = {"alice": "wonderland"}
PY_PROMPT = rb">>> $"


class Listening(TestCase):
    """A server on an ephemeral loopback port, closed after the test."""

    shell: Any = None
    settings: TelnetSettings | None = None

    def setUp(self) -> None:
        self.factory = telnet_server_factory(
            reactor,
            USERS,
            self.mktemp(),
            shell_factory=self.shell,
            settings=self.settings,
            login_delay=LoginDelay(reactor, base=0.05, maximum=0.05),
        )
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.factory.when_empty)
        self.addCleanup(self.port.stopListening)
        self.address = ("127.0.0.1", self.port.getHost().port)

    async def client(self, **kw: Any) -> Any:
        client = await connect_telnet(reactor, *self.address, **kw)
        self.addCleanup(client.close)
        return client


class PythonShellTests(Listening):
    async def test_login_and_evaluate(self) -> None:
        client = await self.client()
        session = ScriptedSession(client, prompt=PY_PROMPT, timeout=10)
        await session.login(b"alice", b"wonderland")
        self.assertIn(b"42", await session.run(b"6 * 7"))
        self.assertIn(b"alice", await session.run(b"user"))
        # Line editing: a typo erased with backspace (DEL).
        self.assertIn(b"12", await session.run(b"3 * 5\x7f4"))
        # History: up arrow repeats the last line.
        self.assertIn(b"12", await session.run(b"\x1b[A"))
        # Completion: "use" + Tab completes the name "user".
        client.write(b"use\t")
        echoed = await client.read_until(b"user", timeout=10)
        self.assertIn(b"r", echoed)
        self.assertEqual([s.state for s in self.factory.sessions], ["shell"])

    async def test_non_ascii_input(self) -> None:
        """UTF-8 typed at the prompt reaches the interpreter (one character cut across writes)."""
        client = await self.client()
        session = ScriptedSession(client, prompt=PY_PROMPT, timeout=10)
        await session.login(b"alice", b"wonderland")
        self.assertIn("'É'".encode(), await session.run("'é'.upper()".encode()))
        client.write(b"len('\xe2\x82")
        await client.read_until(b"'", timeout=10)  # the first half went out on its own
        self.assertIn(b"\n1\n", await session.run(b"\xac')"))

    async def test_wrong_password_then_right(self) -> None:
        client = await self.client()
        session = ScriptedSession(client, prompt=PY_PROMPT, timeout=10)
        await session.wait_for(rb"login: $")
        session.send(b"alice")
        await session.wait_for(rb"Password: $")
        session.send(b"nope")
        await session.wait_for(rb"Login incorrect")
        await session.login(b"alice", b"wonderland")

    async def test_options_reach_the_server(self) -> None:
        policy = replace(CLIENT_POLICY, window_size=(111, 33), terminal_types=("VT220",))
        client = await self.client(policy=policy)
        session = ScriptedSession(client, prompt=PY_PROMPT, timeout=10)
        await session.login(b"alice", b"wonderland")
        (server,) = self.factory.sessions
        self.assertEqual(server.session.window_size, (111, 33))
        self.assertEqual(server.terminal_type, "VT220")
        self.assertTrue(client.session.remote_enabled(ECHO))

    async def test_client_that_never_negotiates_gets_a_prompt(self) -> None:
        """A client refusing every option (telnetlib does) still logs in."""
        client = await self.client(policy=OptionPolicy())
        session = ScriptedSession(client, prompt=PY_PROMPT, timeout=10)
        await session.login(b"alice", b"wonderland")
        self.assertIn(b"4", await session.run(b"2+2"))

    async def test_disconnect_during_login_check(self) -> None:
        client = await self.client()
        await client.read_until(b"login: ", timeout=10)
        client.write(b"alice\r\nwrong\r\n")
        await client.close()
        # The server forgets the session; a new one still logs in.
        client = await self.client()
        await ScriptedSession(client, prompt=PY_PROMPT, timeout=10).login(b"alice", b"wonderland")

    async def test_too_many_failures_close(self) -> None:
        client = await self.client()
        for _ in range(5):
            await client.read_until(b"login: ", timeout=10)
            client.write(b"alice\r\nbad\r\n")
        text = await client.read_all()
        self.assertIn(b"Login incorrect", text)
        self.assertTrue(client.eof)


class HostileInputTests(Listening):
    settings = TelnetSettings(max_subnegotiation=1024)

    async def raw(self) -> socket.socket:
        sock = socket.create_connection(self.address)
        self.addCleanup(sock.close)
        return sock

    async def test_never_ending_subnegotiation_and_iac_flood(self) -> None:
        client = await self.client(policy=OptionPolicy())
        await client.read_until(b"login: ", timeout=10)
        client.transport.write(bytes([IAC, SB, TTYPE]) + b"x" * 2_000_000)
        client.transport.write(bytes([IAC, 240]))  # IAC SE
        client.transport.write(b"\xff\xf1" * 500_000)  # 1 MB of IAC NOP
        client.write(b"alice\r\n")
        await client.read_until(b"Password: ", timeout=20)
        (server,) = self.factory.sessions
        self.assertLessEqual(len(server.session.parser._sub), 1024)
        self.assertIn("subnegotiation of TTYPE too long", server.session.errors)

    async def test_option_ping_pong(self) -> None:
        client = await self.client(policy=OptionPolicy())
        await client.read_until(b"login: ", timeout=10)
        client.transport.write((negotiation(WILL, 31) + negotiation(WONT, 31)) * 1000)
        client.write(b"alice\r\n")
        await client.read_until(b"Password: ", timeout=10)
        (server,) = self.factory.sessions
        self.assertIn("option ping-pong on NAWS", server.session.errors)


class PtyShellTests(Listening):
    shell = PtyShellFactory(reactor, ["/bin/sh"], env={"PS1": "$ "})

    async def test_pty_shell_and_window_size(self) -> None:
        policy = replace(CLIENT_POLICY, window_size=(100, 30), terminal_types=("XTERM",))
        client = await self.client(policy=policy)
        session = ScriptedSession(client, prompt=rb"\$ $", timeout=10)
        await session.login(b"alice", b"wonderland")
        self.assertIn(b"30 100", await session.run(b"stty size"))
        self.assertIn(b"xterm", await session.run(b"echo $TERM"))
        client.set_window_size(132, 50)
        self.assertIn(b"50 132", await session.run(b"stty size"))
        session.send(b"exit")
        with self.assertRaises(TelnetConnectionClosed):
            while True:
                await client.read_some() or (_ for _ in ()).throw(TelnetConnectionClosed())


class PtyBackpressureTests(Listening):
    """A client that stops reading pauses the server's reads from the PTY."""

    shell = PtyShellFactory(reactor, ["/bin/sh"], env={"PS1": "$ "})
    total = 4_000_000

    async def test_slow_client_pauses_the_program(self) -> None:
        client = await self.client()
        session = ScriptedSession(client, prompt=rb"\$ $", timeout=10)
        await session.login(b"alice", b"wonderland")
        (server,) = self.factory.sessions
        process = server.shell.process
        # Small socket buffers on both ends, so that a few KiB fill the path.
        client.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        server.transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        client.transport.pauseProducing()  # the client stops reading
        client.write(b"head -c %d /dev/zero | tr '\\0' x; echo; echo EN''D; exit\r" % self.total)
        for _ in range(500):  # until the server stops reading the PTY (at most 5 s)
            await deferLater(reactor, 0.01, lambda: None)
            if server.bytes_out > 20_000 and process not in reactor.getReaders():
                break
        self.assertNotIn(process, reactor.getReaders())
        # The program's output did not pile up in the server: it waits in the PTY.
        stalled = server.bytes_out
        self.assertLess(stalled, self.total // 4)
        await deferLater(reactor, 0.05, lambda: None)
        self.assertLess(server.bytes_out - stalled, 65536)
        self.assertIsNotNone(process.pid)  # still running, blocked on its terminal
        client.transport.resumeProducing()
        # All of it arrives, then the shell exits and the connection closes (at once:
        # the PTY, done, no longer holds the connection open as its producer).
        text = await client.read_all().addTimeout(10, reactor)
        self.assertGreaterEqual(text.count(b"x"), self.total)
        self.assertLess(text.count(b"x"), self.total + 10)  # (the echoed command line)
        self.assertIn(b"\r\nEND\r\n", text)


class LoginTimeoutTests(SynchronousTestCase):
    def test_login_times_out(self) -> None:
        clock = Clock()
        factory = telnet_server_factory(
            clock, USERS, self.mktemp(), settings=TelnetSettings(login_timeout=30)
        )
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertIn(b"login: ", transport.value())
        clock.advance(31)
        self.assertIn(b"Login timed out", transport.value())
        self.assertTrue(transport.disconnecting)
        self.assertIsInstance(protocol, TelnetServerProtocol)

    def test_idle_shell_times_out(self) -> None:
        clock = Clock()
        settings = TelnetSettings(login_timeout=1000, idle_timeout=300)
        factory = telnet_server_factory(clock, USERS, self.mktemp(), settings=settings)
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"alice\r\nwonderland\r\n")
        self.assertEqual(protocol.state, "shell")
        clock.advance(299)
        protocol.dataReceived(b"1\r")
        clock.advance(299)
        self.assertFalse(transport.disconnecting)
        clock.advance(2)
        self.assertIn(b"Idle too long", transport.value())
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost()
        self.assertEqual(factory.sessions, set())


class ProducerTests(SynchronousTestCase):
    def test_exit_unregisters_the_shell_producer(self) -> None:
        """The shell ending unregisters its producer first: a paused one would hold the close."""
        factory = telnet_server_factory(Clock(), USERS, self.mktemp())
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        producer = StringTransport()  # (an IPushProducer)
        protocol.register_producer(producer)
        self.assertIs(transport.producer, producer)
        self.assertTrue(transport.streaming)
        protocol.exit()
        self.assertIsNone(transport.producer)
        self.assertTrue(transport.disconnecting)
        protocol.exit()  # (again: nothing left to unregister)

"""Telnet against real peers: inetutils telnet (on a pty) and telnetlib against our server;
our client against inetutils telnetd and against telnetlib3's server."""

from __future__ import annotations

import fcntl
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.telnet.client import connect_telnet
from netproto_twisted.telnet.negotiation import CLIENT_POLICY
from netproto_twisted.telnet.script import ScriptedSession
from netproto_twisted.testing.telnet import telnet_server_factory

INETUTILS_TELNET = shutil.which("inetutils-telnet")
TELNETD = "/usr/sbin/telnetd" if os.path.exists("/usr/sbin/telnetd") else None
HERE = Path(__file__).parent


class PtyProgram:
    """A program on a pseudo-terminal, driven with bounded waits for its output."""

    def __init__(self, argv: list[str], columns: int, rows: int) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, close_fds=True
        )
        os.close(slave)
        self.seen = b""

    def expect(self, pattern: bytes, timeout: float = 20.0) -> bytes:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.seen):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} in {self.seen[-300:]!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"program ended before {pattern!r}: {self.seen[-300:]!r}")
                self.seen += chunk
        return self.seen

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        os.close(self.master)


class OurServer(TestCase):
    def setUp(self) -> None:
        self.factory = telnet_server_factory(
            reactor,
            {"alice": "wonderland"},
            self.mktemp(),
            login_delay=LoginDelay(reactor, base=0.05, maximum=0.05),
        )
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.factory.when_empty)
        self.addCleanup(self.port.stopListening)

    async def test_inetutils_telnet(self) -> None:
        if INETUTILS_TELNET is None:
            raise SkipTest("inetutils-telnet is not installed (Debian: inetutils-telnet)")
        port = self.port.getHost().port
        program = PtyProgram([INETUTILS_TELNET, "127.0.0.1", str(port)], 120, 40)
        self.addCleanup(program.close)

        def session() -> bytes:
            program.expect(rb"login: ")
            program.send(b"alice\r")
            program.expect(rb"Password: ")
            program.send(b"wonderland\r")
            program.expect(rb">>> ")
            program.send(b"print(6 * 7)\r")
            return program.expect(rb"42\r\n")

        text = await deferToThread(session)
        self.assertNotIn(b"wonderland", text)  # the password was not echoed
        (server,) = self.factory.sessions
        self.assertEqual(server.session.window_size, (120, 40))
        self.assertTrue(server.terminal_type)
        self.assertEqual(server.session.errors, [])

    async def test_telnetlib(self) -> None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import telnetlib
        port = self.port.getHost().port

        def session() -> tuple[int, bytes]:
            tn = telnetlib.Telnet("127.0.0.1", port, timeout=20)
            try:
                tn.read_until(b"login: ", 20)
                tn.write(b"alice\r\n")
                tn.read_until(b"Password: ", 20)
                tn.write(b"wonderland\r\n")
                tn.read_until(b">>> ", 20)
                tn.write(b"'ab' * 3\r\n")
                index, _, text = tn.expect([rb"'ababab'\r\n>>> ", rb"Error"], 20)
                if b">>> \r\n>>> " in text:
                    return -2, text  # the CR LF after the password reached the shell
                if index != 0:
                    return index, text
                tn.write("'é' * 2\r\n".encode())  # UTF-8 typed at the prompt
                index, _, text = tn.expect(["'éé'\r\n>>> ".encode(), rb"Error"], 20)
                return index, text
            finally:
                tn.close()

        index, text = await deferToThread(session)
        self.assertEqual(index, 0, text)


class OurClient(TestCase):
    async def test_inetutils_telnetd(self) -> None:
        """inetutils telnetd (as inetd runs it) with ``-E '/bin/sh -i'`` in place of /bin/login.

        telnetd's own login needs /bin/login and the system's accounts; the
        shell it runs instead exercises the same negotiation and PTY path.
        """
        if TELNETD is None:
            raise SkipTest("inetutils telnetd is not installed (Debian: inetutils-telnetd)")
        if os.geteuid() != 0:
            raise SkipTest("inetutils telnetd needs root to allocate its pty")
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(20)
        self.addCleanup(listener.close)
        children: list[subprocess.Popen[bytes]] = []

        def accept_once() -> None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            children.append(
                subprocess.Popen(
                    [TELNETD, "-h", "-E", "/bin/sh -i"],
                    stdin=conn,
                    stdout=conn,
                    stderr=subprocess.DEVNULL,
                    env={"PATH": "/usr/bin:/bin", "PS1": "$ "},
                )
            )
            conn.close()

        thread = threading.Thread(target=accept_once, daemon=True)
        thread.start()
        policy = replace(CLIENT_POLICY, window_size=(101, 31), terminal_types=("VT220",))
        client = await connect_telnet(
            reactor, "127.0.0.1", listener.getsockname()[1], policy=policy
        )
        session = ScriptedSession(client, prompt=rb"[$#] $", timeout=20)
        await session.wait_for_prompt()
        self.assertIn(b"31 101", await session.run(b"stty size"))
        self.assertIn(b"vt220", await session.run(b"echo $TERM"))
        client.set_window_size(90, 20)
        self.assertIn(b"20 90", await session.run(b"stty size"))
        self.assertIn(b"x\xffy", await session.run(b"printf 'x\\377y\\n'"))
        session.send(b"exit")
        await client.read_all()
        for child in children:
            await deferToThread(child.wait, 20)

    async def test_telnetlib3_server(self) -> None:
        try:
            import telnetlib3  # noqa: F401
        except ImportError:
            raise SkipTest("telnetlib3 is not installed") from None
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "telnetlib3_server.py")],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

        def stop() -> Any:
            proc.send_signal(signal.SIGTERM)
            return deferToThread(proc.wait, 20)

        self.addCleanup(stop)
        assert proc.stdout is not None
        port = int(await deferToThread(proc.stdout.readline))
        policy = replace(CLIENT_POLICY, window_size=(99, 33), terminal_types=("XTERM",))
        client = await connect_telnet(reactor, "127.0.0.1", port, policy=policy)
        self.addCleanup(client.close)
        index, _, text = await client.expect([rb"t3> "], 20)
        self.assertEqual(index, 0, text)
        self.assertIn(b"size=99x33", text)
        self.assertIn(b"term=xterm", text.lower())
        client.write(b"hello\r\n")
        self.assertIn(b"you said hello", await client.read_until(b"t3> ", 20))
        client.write(b"quit\r\n")
        await client.read_all()

"""The client's interact() on pipes, and the blocking wrapper run as a script would run it."""

from __future__ import annotations

import os
import subprocess
import sys
import termios
import textwrap

from twisted.internet import reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from netproto_twisted.core.access import LoginDelay
from netproto_twisted.telnet.client import connect_telnet
from netproto_twisted.telnet.negotiation import OptionPolicy
from netproto_twisted.testing.telnet import telnet_server_factory
from tests.twistd import REPO


class Shouter(Protocol):
    """Greets, then answers each chunk in upper case; ``bye`` closes."""

    def connectionMade(self) -> None:
        self.transport.write(b"hello\r\n")

    def dataReceived(self, data: bytes) -> None:
        if b"bye" in data:
            self.transport.loseConnection()
        else:
            self.transport.write(data.upper())


class InteractTests(TestCase):
    async def test_interact_joins_pipes_to_the_session(self) -> None:
        port = reactor.listenTCP(0, Factory.forProtocol(Shouter), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = await connect_telnet(
            reactor, "127.0.0.1", port.getHost().port, policy=OptionPolicy()
        )
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        done = client.interact(reactor, stdin_r, stdout_w)
        os.write(stdin_w, b"abc")
        seen = b""
        while b"ABC" not in seen:
            seen += await deferToThread(os.read, stdout_r, 4096)
        self.assertTrue(seen.startswith(b"hello\r\n"))
        os.write(stdin_w, b"bye")
        await done
        os.close(stdin_w)
        os.close(stdout_r)

    async def test_interact_puts_a_terminal_in_raw_mode(self) -> None:
        """A pty as standard input: raw while the session runs, its settings restored after."""
        port = reactor.listenTCP(0, Factory.forProtocol(Shouter), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = await connect_telnet(
            reactor, "127.0.0.1", port.getHost().port, policy=OptionPolicy()
        )
        master, slave = os.openpty()
        self.addCleanup(os.close, master)
        # The terminal's settings are seen through a descriptor of our own (interact
        # closes the one it was given).
        probe = os.open(os.ttyname(slave), os.O_RDWR | os.O_NOCTTY)
        self.addCleanup(os.close, probe)
        before = termios.tcgetattr(probe)
        self.assertTrue(before[3] & termios.ICANON and before[3] & termios.ECHO)
        stdout_r, stdout_w = os.pipe()
        self.addCleanup(os.close, stdout_r)
        done = client.interact(reactor, slave, stdout_w)
        raw = termios.tcgetattr(probe)
        self.assertFalse(raw[3] & (termios.ICANON | termios.ECHO | termios.ISIG))
        # Keys reach the server as typed: no line end needed, no local echo.
        os.write(master, b"abc")
        seen = b""
        while b"ABC" not in seen:
            seen += await deferToThread(os.read, stdout_r, 4096)
        self.assertTrue(seen.startswith(b"hello\r\n"))
        os.write(master, b"bye")
        await done
        self.assertEqual(termios.tcgetattr(probe), before)

    def test_terminal_restored_when_joining_fails(self) -> None:
        master, slave = os.openpty()
        self.addCleanup(os.close, master)
        self.addCleanup(os.close, slave)
        before = termios.tcgetattr(slave)

        class Broken:
            def attach_sink(self, sink: object) -> None:
                if sink is not None:
                    raise RuntimeError("no sink")

        from netproto_twisted.telnet.interact import run_interact

        self.assertRaises(RuntimeError, run_interact, Broken(), reactor, slave, 1)
        self.assertEqual(termios.tcgetattr(slave), before)


class BlockingTests(TestCase):
    async def test_blocking_wrapper_in_a_script(self) -> None:
        factory = telnet_server_factory(
            reactor,
            {"alice": "wonderland"},
            self.mktemp(),
            login_delay=LoginDelay(reactor, base=0.05, maximum=0.05),
        )
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(factory.when_empty)
        self.addCleanup(port.stopListening)
        script = textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(REPO)!r})
            from netproto_twisted.telnet.blocking import Telnet
            with Telnet("127.0.0.1", {port.getHost().port}, timeout=20) as tn:
                tn.read_until(b"login: ", 20)
                tn.write(b"alice\\r\\n")
                tn.read_until(b"Password: ", 20)
                tn.write(b"wonderland\\r\\n")
                tn.read_until(b">>> ", 20)
                tn.write(b"print(6 * 7)\\r\\n")
                index, match, text = tn.expect([rb"42\\r\\n"], 20)
                print(index)
        """)
        result: subprocess.CompletedProcess[str] = await deferToThread(
            subprocess.run,
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.assertEqual(result.stdout.strip(), "0", result.stderr)



"""The Telnet client's reads (telnetlib's semantics), on a StringTransport and a fake clock."""

from __future__ import annotations

import re
from typing import Any

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.telnet._wire import DO, ECHO, IAC, NAWS, SB, SE, SGA, WILL, negotiation
from netproto_twisted.telnet.client import TelnetClient
from netproto_twisted.telnet.errors import TelnetConnectionClosed, TelnetReadBusy, TelnetTimeout
from netproto_twisted.telnet.script import ScriptedSession


def connected() -> tuple[TelnetClient, StringTransport, Clock]:
    clock = Clock()
    client = TelnetClient()
    client.clock = clock
    transport = StringTransport()
    client.makeConnection(transport)
    return client, transport, clock


def result(d: Any) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "Deferred has not fired"
    return out[0]


class ReadTests(SynchronousTestCase):
    def test_read_until_across_chunks(self) -> None:
        client, _, _ = connected()
        d = client.read_until(b"login: ")
        client.dataReceived(b"Welcome\r\nlog")
        self.assertNoResult(d)
        client.dataReceived(b"in: rest")
        self.assertEqual(self.successResultOf(d), b"Welcome\r\nlogin: ")
        self.assertEqual(self.successResultOf(client.read_very_eager()), b"rest")

    def test_read_until_timeout_returns_what_is_there(self) -> None:
        client, _, clock = connected()
        d = client.read_until(b"$ ", timeout=5)
        client.dataReceived(b"partial")
        clock.advance(5)
        self.assertEqual(self.successResultOf(d), b"partial")

    def test_expect(self) -> None:
        client, _, clock = connected()
        d = client.expect([rb"Password: ", re.compile(rb"(\w+)\$ ")], timeout=3)
        client.dataReceived(b"motd\r\nbob$ tail")
        index, match, text = self.successResultOf(d)
        self.assertEqual((index, match.group(1), text), (1, b"bob", b"motd\r\nbob$ "))
        d = client.expect([rb"never"], timeout=3)
        clock.advance(3)
        self.assertEqual(self.successResultOf(d), (-1, None, b"tail"))

    def test_negotiation_is_answered_and_text_kept(self) -> None:
        client, transport, _ = connected()
        seen: list[tuple[int, int]] = []
        client.set_option_negotiation_callback(lambda c, verb, opt: seen.append((verb, opt)))
        client.dataReceived(negotiation(WILL, ECHO) + b"a" + negotiation(DO, NAWS) + b"\xff\xffb")
        self.assertEqual(self.successResultOf(client.read_very_eager()), b"a\xffb")
        self.assertIn(negotiation(DO, ECHO), transport.value())
        self.assertIn(bytes([IAC, SB, NAWS, 0, 80, 0, 24, IAC, SE]), transport.value())
        self.assertEqual(seen, [(WILL, ECHO), (DO, NAWS)])
        transport.clear()
        client.set_window_size(120, 40)
        self.assertEqual(transport.value(), bytes([IAC, SB, NAWS, 0, 120, 0, 40, IAC, SE]))

    def test_write_doubles_iac(self) -> None:
        client, transport, _ = connected()
        client.write(b"x\xffy")
        self.assertEqual(transport.value(), b"x\xff\xffy")

    def test_eof(self) -> None:
        client, _transport, _ = connected()
        d = client.read_all()
        client.dataReceived(b"bye")
        client.connectionLost()
        self.assertEqual(self.successResultOf(d), b"bye")
        self.failureResultOf(client.read_until(b"x"), TelnetConnectionClosed)
        self.failureResultOf(client.read_very_eager(), EOFError)
        self.assertEqual(self.successResultOf(client.read_some()), b"")

    def test_one_read_at_a_time(self) -> None:
        client, _, _ = connected()
        client.read_some()
        self.assertRaises(TelnetReadBusy, client.read_some)

    def test_read_until_is_linear(self) -> None:
        """A read_until waiting through many chunks searches each byte about once."""
        client, _, _ = connected()
        calls = []
        d = client.read_until(b"PROMPT> ")
        original = bytearray.find

        class Counting(bytearray):
            def find(self, sub: Any, start: Any = 0, *args: Any) -> int:  # type: ignore[override]
                calls.append(len(self) - start)
                return original(self, sub, start, *args)

        client._buf = Counting()
        for _ in range(2000):
            client.dataReceived(b"x" * 1000)
        client.dataReceived(b"PROMPT> ")
        self.assertEqual(len(self.successResultOf(d)), 2_000_008)
        self.assertLess(sum(calls), 2 * 2_000_008)

    def test_expect_does_not_rescan_from_start(self) -> None:
        client, _, _ = connected()
        d = client.expect([rb"END"], window=16)
        for _ in range(100):
            client.dataReceived(b"y" * 1000)
        client.dataReceived(b"EN")
        client.dataReceived(b"D")
        self.assertEqual(self.successResultOf(d)[2][-3:], b"END")

    def test_big_buffer_compacts(self) -> None:
        client, _, _ = connected()
        client.dataReceived(b"a" * 3_000_000 + b"$ " + b"b" * 10)
        self.assertEqual(len(self.successResultOf(client.read_until(b"$ "))), 3_000_002)
        self.assertEqual(client.buffered(), 10)
        self.assertLess(len(client._buf), 100)


class ScriptTests(SynchronousTestCase):
    def test_login_and_run(self) -> None:
        client, transport, clock = connected()
        session = ScriptedSession(client, timeout=5)
        d = session.login(b"bob", b"pw")
        from twisted.internet.defer import ensureDeferred

        d = ensureDeferred(d)
        client.dataReceived(b"login: ")
        self.assertEqual(transport.value(), b"bob\r\n")
        client.dataReceived(b"bob\r\nPassword: ")
        client.dataReceived(b"\r\nbob$ ")
        self.successResultOf(d)
        d2 = ensureDeferred(session.run(b"uname"))
        client.dataReceived(b"uname\r\nLinux\r\nbob$ ")
        self.assertEqual(self.successResultOf(d2), b"Linux\n")
        d3 = ensureDeferred(session.run(b"hang"))
        client.dataReceived(b"hang\r\n...")
        clock.advance(5)
        failure = self.failureResultOf(d3, TelnetTimeout)
        self.assertIn(b"...", failure.value.text)


class DebugLevelTests(SynchronousTestCase):
    """``set_debuglevel``: every byte received and sent, and each negotiation, logged."""

    def exchange(self, client: TelnetClient) -> list[str]:
        with capturedLogs() as events:
            client.dataReceived(negotiation(WILL, SGA) + b"hi")
            client.write(b"x\xff")
        self.assertEqual(self.successResultOf(client.read_very_eager()), b"hi")
        return [formatEvent(e) for e in events]

    def test_nothing_logged_at_level_zero(self) -> None:
        client, transport, _ = connected()
        self.assertEqual(client.debuglevel, 0)
        self.assertEqual(self.exchange(client), [])
        self.assertEqual(transport.value(), negotiation(DO, SGA) + b"x\xff\xff")

    def test_level_one_logs_both_directions(self) -> None:
        client, _, _ = connected()
        client.set_debuglevel(1)
        self.assertEqual(
            self.exchange(client),
            [
                "telnet recv b'\\xff\\xfb\\x03hi'",  # the bytes as they arrived
                "telnet recv IAC WILL SGA",  # the negotiation, named
                "telnet send b'\\xff\\xfd\\x03'",  # the engine's answer
                "telnet send b'x\\xff\\xff'",  # write(): IAC doubled, as sent
            ],
        )
        client.set_debuglevel(0)
        self.assertEqual(self.exchange(client), [])

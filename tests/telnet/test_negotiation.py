"""RFC 1143 negotiation and the options' subnegotiations, sans I/O; properties over sequences."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.telnet._wire import (
    BINARY,
    CHARSET,
    DO,
    DONT,
    ECHO,
    EOR_OPTION,
    IAC,
    LINEMODE,
    NAWS,
    NEW_ENVIRON,
    SB,
    SE,
    SGA,
    STATUS,
    TIMING_MARK,
    TTYPE,
    WILL,
    WONT,
    negotiation,
    subnegotiation,
)
from netproto_twisted.telnet.negotiation import (
    CLIENT_POLICY,
    NO,
    SERVER_POLICY,
    WANTYES,
    OptionPolicy,
    SessionHandler,
    TelnetSession,
)

OPTIONS = [BINARY, ECHO, SGA, STATUS, TTYPE, EOR_OPTION, NAWS, LINEMODE, NEW_ENVIRON, CHARSET, 99]


class Recorder(SessionHandler):
    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []

    def option_changed(self, option: int, local: bool, enabled: bool) -> None:
        self.events.append(("option", option, local, enabled))

    def window_size_changed(self, columns: int, rows: int) -> None:
        self.events.append(("naws", columns, rows))

    def terminal_types_received(self, names: tuple[str, ...]) -> None:
        self.events.append(("ttype", names))

    def environ_received(self, variables: object) -> None:
        self.events.append(("env", dict(variables)))  # type: ignore[call-overload]

    def charset_changed(self, name: str) -> None:
        self.events.append(("charset", name))

    def timing_mark(self) -> None:
        self.events.append(("tm",))

    def linemode_changed(self, mode: int) -> None:
        self.events.append(("linemode", mode))


def converse(a: TelnetSession, b: TelnetSession, rounds: int = 50) -> int:
    """Exchange queued bytes until both are quiet; return the rounds it took (fails if never)."""
    for n in range(rounds):
        x = a.data_to_send()
        b.decode(x)
        y = b.data_to_send()
        a.decode(y)
        if not x and not y:
            return n
    raise AssertionError("negotiation did not settle")


class NegotiationTests(SynchronousTestCase):
    def pair(self, **client: object) -> tuple[TelnetSession, TelnetSession, Recorder, Recorder]:
        hs, hc = Recorder(), Recorder()
        policy = replace(CLIENT_POLICY, **client)
        s = TelnetSession(server=True, handler=hs)
        c = TelnetSession(server=False, handler=hc, policy=policy)
        s.start()
        converse(s, c)
        return s, c, hs, hc

    def test_full_server_client_negotiation(self) -> None:
        s, c, hs, _hc = self.pair(
            terminal_types=("XTERM", "VT100"),
            window_size=(132, 43),
            environ={"USER": "bob", "LANG": "C"},
        )
        self.assertTrue(s.local_enabled(ECHO) and c.remote_enabled(ECHO))
        self.assertTrue(s.local_enabled(SGA) and c.remote_enabled(SGA))
        self.assertEqual(s.window_size, (132, 43))
        self.assertIn(("ttype", ("XTERM", "VT100")), hs.events)
        self.assertEqual(s.environ, {"USER": "bob", "LANG": "C"})
        self.assertEqual((s.charset, c.charset), ("UTF-8", "UTF-8"))
        self.assertTrue(s.settled() and c.settled())
        self.assertEqual(s.errors + c.errors, [])
        c.set_window_size(100, 30)
        converse(s, c)
        self.assertEqual(hs.events[-1], ("naws", 100, 30))

    def test_ttype_cycles(self) -> None:
        """The client answers its list in order, repeats the last once, then starts again."""
        c = TelnetSession(
            server=False, policy=OptionPolicy(local=frozenset({TTYPE}), terminal_types=("A", "B"))
        )
        c.decode(negotiation(DO, TTYPE))
        c.data_to_send()
        names = []
        for _ in range(5):
            c.decode(subnegotiation(TTYPE, b"\x01"))
            names.append(c.data_to_send()[4:-2])
        self.assertEqual(names, [b"A", b"B", b"B", b"A", b"B"])

    def test_refused_option_gets_dont(self) -> None:
        s = TelnetSession(server=True)
        s.decode(negotiation(WILL, 99))
        self.assertEqual(s.data_to_send(), negotiation(DONT, 99))
        s.decode(negotiation(DO, 99))
        self.assertEqual(s.data_to_send(), negotiation(WONT, 99))
        # WONT/DONT for a disabled option gets no reply (no loop).
        s.decode(negotiation(WONT, 99) + negotiation(DONT, 99))
        self.assertEqual(s.data_to_send(), b"")

    def test_queue_bit(self) -> None:
        """Asking to disable while the enable is in flight queues it (RFC 1143 OPPOSITE)."""
        s = TelnetSession(server=True)
        s.request_remote(NAWS, True)
        s.request_remote(NAWS, False)
        self.assertEqual(s.data_to_send(), negotiation(DO, NAWS))
        self.assertEqual(s.states()[NAWS][2:], (WANTYES, True))
        s.decode(negotiation(WILL, NAWS))
        self.assertEqual(s.data_to_send(), negotiation(DONT, NAWS))
        s.decode(negotiation(WONT, NAWS))
        self.assertEqual(s.states()[NAWS][2:], (NO, False))
        self.assertEqual(s.data_to_send(), b"")

    def test_ping_pong_is_cut_off(self) -> None:
        """A peer flipping an option for ever gets it refused after max_flips changes."""
        s = TelnetSession(server=True)
        sent = 0
        for _ in range(200):
            s.decode(negotiation(WILL, NAWS) + negotiation(WONT, NAWS))
            sent += len(s.data_to_send())
        self.assertIn("option ping-pong on NAWS", s.errors)
        self.assertLess(sent, 3 * 2 * 30)
        self.assertFalse(s.remote_enabled(NAWS))

    def test_timing_mark(self) -> None:
        s, c, hs, _hc = self.pair()
        s.request_remote(TIMING_MARK, True)
        converse(s, c)
        self.assertEqual(hs.events[-1], ("tm",))
        self.assertNotIn(TIMING_MARK, s.states())

    def test_status(self) -> None:
        s, c, _hs, _hc = self.pair()
        c.decode(b"")
        s.request_local(STATUS, True)
        converse(s, c)
        s.decode(bytes([IAC, SB, STATUS, 1, IAC, SE]))
        reply = s.data_to_send()
        self.assertTrue(reply.startswith(bytes([IAC, SB, STATUS, 0])))
        self.assertIn(bytes([WILL, ECHO]), reply)
        self.assertIn(bytes([DO, NAWS]), reply)

    def test_linemode(self) -> None:
        hs, hc = Recorder(), Recorder()
        s = TelnetSession(server=True, handler=hs)
        c = TelnetSession(
            server=False, handler=hc, policy=OptionPolicy(local=frozenset({LINEMODE}))
        )
        s.request_remote(LINEMODE, True)
        converse(s, c)
        self.assertEqual(c.linemode, 3)
        self.assertIn(("linemode", 3), hs.events)
        c.decode(bytes([IAC, SB, LINEMODE, DO, 2, IAC, SE]))
        self.assertEqual(c.data_to_send(), bytes([IAC, SB, LINEMODE, WONT, 2, IAC, SE]))

    def test_charset_collision_server_wins(self) -> None:
        s = TelnetSession(
            server=True,
            policy=replace(SERVER_POLICY, charsets=("UTF-8", "LATIN1")),
        )  # type: ignore[arg-type]
        c = TelnetSession(
            server=False,
            policy=replace(CLIENT_POLICY, charsets=("LATIN1",)),
        )  # type: ignore[arg-type]
        s.request_remote(CHARSET, True)
        # Deliver the DO; the client's WILL then crosses the server's REQUEST with its own.
        c.decode(s.data_to_send())
        will = c.data_to_send()
        s.decode(will)  # server: option on, sends its REQUEST
        c.request_charset(["LATIN1"])
        from_c = c.data_to_send()
        from_s = s.data_to_send()
        s.decode(from_c)  # server rejects the client's request
        c.decode(from_s)  # client drops its own and accepts the server's
        converse(s, c)
        self.assertEqual((s.charset, c.charset), ("LATIN1", "LATIN1"))


ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.sampled_from(["local", "remote", "deliver", "raw"]),
        st.sampled_from(OPTIONS),
        st.booleans(),
        st.integers(0, 40),
    ),
    max_size=60,
)


class NegotiationProperties(SynchronousTestCase):
    @settings(max_examples=300, deadline=None)
    @given(ACTIONS)
    def test_random_sequences_settle_and_agree(
        self, actions: list[tuple[str, str, int, bool, int]]
    ) -> None:
        """Any interleaving of requests and partial deliveries settles; both sides agree."""
        a = TelnetSession(server=True)
        b = TelnetSession(server=False)
        wire = {"a": bytearray(), "b": bytearray()}  # bytes in flight from a, from b
        peer = {"a": b, "b": a}
        me = {"a": a, "b": b}
        a.start()
        for side, action, option, flag, cut in actions:
            s = me[side]
            if action == "local":
                s.request_local(option, flag)
            elif action == "remote":
                s.request_remote(option, flag)
            elif action == "deliver":
                wire[side] += s.data_to_send()
                chunk = bytes(wire[side][:cut])
                del wire[side][:cut]
                peer[side].decode(chunk)
            else:
                wire[side] += s.data_to_send() + negotiation(WILL if flag else WONT, option)
        for side in "ab":
            wire[side] += me[side].data_to_send()
        for _ in range(60):
            x, y = bytes(wire["a"]), bytes(wire["b"])
            wire["a"].clear()
            wire["b"].clear()
            b.decode(x)
            a.decode(y)
            wire["a"] += a.data_to_send()
            wire["b"] += b.data_to_send()
            if not wire["a"] and not wire["b"]:
                break
        else:
            self.fail("negotiation loops")
        self.assertTrue(a.settled() and b.settled(), (a.states(), b.states()))
        for option in set(a.states()) | set(b.states()):
            if option == 99:
                continue
            self.assertEqual(a.local_enabled(option), b.remote_enabled(option), option)
            self.assertEqual(a.remote_enabled(option), b.local_enabled(option), option)
        for s in (a, b):
            self.assertLessEqual(len(s.parser._sub), s.parser.max_subnegotiation)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=500))
    def test_random_bytes_never_crash(self, data: bytes) -> None:
        for server in (True, False):
            s = TelnetSession(server=server, max_subnegotiation=128)
            s.start()
            s.decode(data)
            self.assertLess(len(s.data_to_send()), 20 * len(data) + 200)

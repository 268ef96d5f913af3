"""Telnet option negotiation, sans I/O: RFC 1143's Q method and the options' subnegotiations.

:class:`TelnetSession` is the whole protocol engine of one side of a Telnet
connection, without a transport: feed it received bytes with
:meth:`~TelnetSession.decode` (it returns the application data), take what
it must send with :meth:`~TelnetSession.data_to_send`, and hear about
options, window sizes, terminal types and the like through a
:class:`SessionHandler`.

Negotiation follows RFC 1143 (the Q method): for each option and each side
a state (NO, YES, WANTNO, WANTYES) and a queue bit (EMPTY, OPPOSITE), so
that no sequence of requests and replies loops, and a request made while
one is in flight is queued, not lost.  A peer that flips one option more
than ``max_flips`` times (option ping-pong) gets it refused from then on.

Options understood, with their subnegotiations:

- ECHO, SGA, BINARY (BINARY received turns off CR NUL translation);
- NAWS (RFC 1073): the client reports its window size, the server hears it;
- TTYPE (RFC 1091): the server asks until a name repeats; the client
  answers from its list in order, repeats the last once, then cycles;
- NEW-ENVIRON (RFC 1572): the server asks, the client answers from its
  environment (VAR/USERVAR, ESC quoting);
- CHARSET (RFC 2066): either side may send REQUEST once the option is on
  in either direction; the receiver ACCEPTs the first name it supports or
  REJECTs.  When both sides' REQUESTs cross, the server's wins: the server
  REJECTs the client's, and the client drops its own and answers the
  server's (RFC 2066 section 3);
- LINEMODE (RFC 1184), basics: MODE with its ACK bit, FORWARDMASK refused,
  SLC ignored;
- EOR (RFC 885), STATUS (RFC 859, answered with the enabled options) and
  TIMING-MARK (RFC 860, answered at once; not a state).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from netproto_twisted.telnet._wire import (
    BINARY,
    CHARSET,
    DO,
    DONT,
    ECHO,
    EOR_OPTION,
    GA,
    LINEMODE,
    NAWS,
    NEW_ENVIRON,
    OPTION_NAMES,
    SGA,
    STATUS,
    TIMING_MARK,
    TTYPE,
    WILL,
    WONT,
    TelnetParser,
    encode_text,
    escape,
    negotiation,
    subnegotiation,
)

__all__ = [
    "CLIENT_POLICY",
    "NO",
    "SERVER_POLICY",
    "WANTNO",
    "WANTYES",
    "YES",
    "OptionPolicy",
    "SessionHandler",
    "TelnetSession",
]

# Q method states and queue bits (RFC 1143).
NO = "NO"
YES = "YES"
WANTNO = "WANTNO"
WANTYES = "WANTYES"
EMPTY = False
OPPOSITE = True

# Subnegotiation codes.
IS, SEND, INFO = 0, 1, 2  # TTYPE, NEW-ENVIRON, STATUS
ENV_VAR, ENV_VALUE, ENV_ESC, ENV_USERVAR = 0, 1, 2, 3
CS_REQUEST, CS_ACCEPTED, CS_REJECTED = 1, 2, 3
LM_MODE, LM_FORWARDMASK, LM_SLC = 1, 2, 3
LM_MODE_EDIT, LM_MODE_TRAPSIG, LM_MODE_ACK = 1, 2, 4

#: Most terminal types a server collects before it stops asking.
MAX_TTYPES = 16


@dataclass(frozen=True)
class OptionPolicy:
    """Which options a side offers and accepts, and what it says in subnegotiations.

    :ivar local: options this side agrees to enable on its end (WILL).
    :ivar remote: options this side agrees to let the peer enable (DO).
    :ivar ask_local: options this side offers at the start (sends WILL).
    :ivar ask_remote: options this side asks the peer for at the start (sends DO).
    :ivar terminal_types: a client's terminal types, best first (TTYPE).
    :ivar window_size: a client's window (columns, rows) for NAWS.
    :ivar environ: a client's variables for NEW-ENVIRON.
    :ivar charsets: character sets this side accepts or requests, best first.
    :ivar max_flips: changes of one option by the peer before it is refused.
    """

    local: frozenset[int] = frozenset()
    remote: frozenset[int] = frozenset()
    ask_local: tuple[int, ...] = ()
    ask_remote: tuple[int, ...] = ()
    terminal_types: tuple[str, ...] = ("XTERM-256COLOR", "XTERM", "VT100")
    window_size: tuple[int, int] = (80, 24)
    environ: Mapping[str, str] = field(default_factory=dict)
    charsets: tuple[str, ...] = ("UTF-8",)
    max_flips: int = 20


#: A server: echoes and suppresses go-ahead itself, wants the client's window, terminal
#: type, environment and charset; offers BINARY, EOR, STATUS, CHARSET.
SERVER_POLICY = OptionPolicy(
    local=frozenset({ECHO, SGA, BINARY, EOR_OPTION, STATUS, CHARSET}),
    remote=frozenset({SGA, BINARY, NAWS, TTYPE, NEW_ENVIRON, CHARSET, LINEMODE, EOR_OPTION}),
    ask_local=(SGA, ECHO),
    ask_remote=(NAWS, TTYPE, NEW_ENVIRON, CHARSET),
)
#: A client: accepts the server's ECHO/SGA/BINARY/EOR/STATUS/CHARSET and offers its window,
#: terminal type, environment, charset and binary mode when asked.
CLIENT_POLICY = OptionPolicy(
    local=frozenset({SGA, BINARY, NAWS, TTYPE, NEW_ENVIRON, CHARSET}),
    remote=frozenset({ECHO, SGA, BINARY, EOR_OPTION, STATUS, CHARSET}),
)


class SessionHandler:
    """What a :class:`TelnetSession` reports; every method does nothing by default."""

    def option_changed(self, option: int, local: bool, enabled: bool) -> None:
        """An option became enabled or disabled on our side (``local``) or the peer's."""

    def negotiation_received(self, verb: int, option: int) -> None:
        """``IAC verb option`` arrived (told before the Q method answers it)."""

    def command_received(self, command: int) -> None:
        """A command such as ``IAC AYT``, ``IAC IP``, ``IAC GA`` or ``IAC EOR`` arrived."""

    def window_size_changed(self, columns: int, rows: int) -> None:
        """The client reported its window size (NAWS)."""

    def terminal_types_received(self, names: tuple[str, ...]) -> None:
        """A server learnt the client's terminal types (TTYPE; complete when a name repeats)."""

    def environ_received(self, variables: Mapping[str, str]) -> None:
        """The client sent variables (NEW-ENVIRON IS or INFO)."""

    def charset_changed(self, name: str) -> None:
        """Both sides agreed on a character set (CHARSET ACCEPTED)."""

    def charset_rejected(self) -> None:
        """Our CHARSET REQUEST was rejected."""

    def linemode_changed(self, mode: int) -> None:
        """The LINEMODE MODE was set (and acknowledged)."""

    def timing_mark(self) -> None:
        """A TIMING-MARK we sent was answered: everything before it was processed."""

    def subnegotiation_dropped(self, option: int) -> None:
        """A subnegotiation exceeded the size bound and was dropped."""


class _Option:
    """The Q-method state of one option: ours (``us``) and the peer's (``him``)."""

    __slots__ = ("flips", "him", "himq", "refused", "us", "usq")

    def __init__(self) -> None:
        self.us = NO
        self.usq = EMPTY
        self.him = NO
        self.himq = EMPTY
        self.flips = 0
        self.refused = False


class TelnetSession:
    """One side of a Telnet connection, without I/O (see the module).

    :param server: which side this is (it decides TTYPE/NEW-ENVIRON roles
        and CHARSET collisions).
    :param handler: where events go.
    :param policy: options offered and accepted.
    :param max_subnegotiation: the bound on one subnegotiation's payload.
    """

    def __init__(
        self,
        *,
        server: bool,
        handler: SessionHandler | None = None,
        policy: OptionPolicy | None = None,
        max_subnegotiation: int = 8192,
    ) -> None:
        self.server = server
        self.handler = handler or SessionHandler()
        self.policy = policy or (SERVER_POLICY if server else CLIENT_POLICY)
        self.parser = TelnetParser(self, max_subnegotiation=max_subnegotiation)
        self._options: dict[int, _Option] = {}
        self._out = bytearray()
        self._ttype_index = 0
        self._ttype_repeated = False
        self.terminal_types: list[str] = []
        self._ttype_done = False
        self.window_size: tuple[int, int] | None = None
        self.environ: dict[str, str] = {}
        self.charset: str | None = None
        self._charset_pending = False
        self.linemode = 0
        self._timing_marks = 0
        #: Violations seen (Q-method errors, ping-pong, overflows): for logs and tests.
        self.errors: list[str] = []

    # --- the byte streams -------------------------------------------------------------

    def start(self) -> None:
        """Queue the opening requests of the policy (``ask_local``/``ask_remote``)."""
        for option in self.policy.ask_local:
            self.request_local(option, True)
        for option in self.policy.ask_remote:
            self.request_remote(option, True)

    def decode(self, data: bytes) -> bytes:
        """Return the application data in received ``data``; queue replies (Decoder stage)."""
        return self.parser.decode(data)

    def data_to_send(self) -> bytes:
        """Return and forget the protocol bytes queued for the peer."""
        if not self._out:
            return b""
        data = bytes(self._out)
        self._out.clear()
        return data

    def encode(self, data: bytes) -> bytes:
        """Return application ``data`` for the wire: IAC doubled; NVT line ends unless BINARY."""
        if self.local_enabled(BINARY):
            return escape(data)
        return encode_text(data)

    def send_command(self, command: int) -> None:
        """Queue ``IAC command`` (GA, EOR, NOP, AYT ...)."""
        self._out += bytes((255, command))

    def end_of_prompt(self) -> None:
        """Queue the mark after a prompt: ``IAC EOR`` if EOR is on, else ``IAC GA`` unless SGA."""
        if self.local_enabled(EOR_OPTION):
            self.send_command(239)
        elif not self.local_enabled(SGA):
            self.send_command(GA)

    # --- queries ----------------------------------------------------------------------

    def _option(self, option: int) -> _Option:
        state = self._options.get(option)
        if state is None:
            state = self._options[option] = _Option()
        return state

    def local_enabled(self, option: int) -> bool:
        """Whether ``option`` is on on our side (we said WILL and the peer DO)."""
        state = self._options.get(option)
        return state is not None and state.us == YES

    def remote_enabled(self, option: int) -> bool:
        """Whether ``option`` is on on the peer's side (it said WILL and we DO)."""
        state = self._options.get(option)
        return state is not None and state.him == YES

    def states(self) -> dict[int, tuple[str, bool, str, bool]]:
        """Return ``{option: (us, usq, him, himq)}`` (for tests and the STATUS reply)."""
        return {k: (v.us, v.usq, v.him, v.himq) for k, v in self._options.items()}

    def settled(self) -> bool:
        """Whether no negotiation is in flight (no WANTYES/WANTNO on either side)."""
        return all(v.us in (YES, NO) and v.him in (YES, NO) for v in self._options.values())

    # --- requests (RFC 1143 section 7) ---------------------------------------------------

    def request_local(self, option: int, enable: bool) -> bool:
        """Ask to enable (WILL) or disable (WONT) ``option`` on our side; False if refused."""
        if option == TIMING_MARK:
            return False
        s = self._option(option)
        if enable and (option not in self.policy.local or s.refused):
            return False
        s.us, s.usq, send = _request(s.us, s.usq, enable)
        if send:
            self._out += negotiation(WILL if enable else WONT, option)
        return True

    def request_remote(self, option: int, enable: bool) -> bool:
        """Ask the peer to enable (DO) or disable (DONT) ``option``; False if refused."""
        if option == TIMING_MARK:
            if enable:
                self._timing_marks += 1
                self._out += negotiation(DO, TIMING_MARK)
            return enable
        s = self._option(option)
        if enable and (option not in self.policy.remote or s.refused):
            return False
        s.him, s.himq, send = _request(s.him, s.himq, enable)
        if send:
            self._out += negotiation(DO if enable else DONT, option)
        return True

    # --- received negotiation (RFC 1143 section 7) ---------------------------------------

    def negotiation_received(self, verb: int, option: int) -> None:
        """Run the Q method for ``IAC verb option`` (called by the parser)."""
        self.handler.negotiation_received(verb, option)
        if option == TIMING_MARK:
            self._timing_mark(verb)
            return
        s = self._option(option)
        if s.refused and (s.him if verb in (WILL, WONT) else s.us) == NO:
            return  # ping-pong: a refused option's further requests get no answer
        if verb in (WILL, WONT):
            accept = option in self.policy.remote and not s.refused
            before = s.him
            s.him, s.himq, reply, error = _receive(s.him, s.himq, verb == WILL, accept)
            if reply is not None:
                self._out += negotiation(DO if reply else DONT, option)
            if error:
                self.errors.append(f"{error} ({OPTION_NAMES.get(option, option)})")
            if before != s.him and YES in (before, s.him):
                self._changed(option, s, local=False, enabled=s.him == YES)
        else:
            accept = option in self.policy.local and not s.refused
            before = s.us
            s.us, s.usq, reply, error = _receive(s.us, s.usq, verb == DO, accept)
            if reply is not None:
                self._out += negotiation(WILL if reply else WONT, option)
            if error:
                self.errors.append(f"{error} ({OPTION_NAMES.get(option, option)})")
            if before != s.us and YES in (before, s.us):
                self._changed(option, s, local=True, enabled=s.us == YES)

    def _changed(self, option: int, state: _Option, *, local: bool, enabled: bool) -> None:
        """React to an option turning on or off, then tell the handler."""
        state.flips += 1
        if state.flips > self.policy.max_flips and not state.refused:
            state.refused = True
            self.errors.append(f"option ping-pong on {OPTION_NAMES.get(option, option)}")
            if enabled:  # turn it off, and keep it off
                if local:
                    self.request_local(option, False)
                else:
                    self.request_remote(option, False)
        if not local and option == BINARY:
            self.parser.binary = enabled
        if enabled:
            self._option_on(option, local)
        self.handler.option_changed(option, local, enabled)

    def _option_on(self, option: int, local: bool) -> None:
        """Start what an option's subnegotiation needs once it is on."""
        if self.server and not local:
            if option == TTYPE:
                self.terminal_types.clear()
                self._ttype_done = False
                self._out += subnegotiation(TTYPE, bytes((SEND,)))
            elif option == NEW_ENVIRON:
                self._out += subnegotiation(NEW_ENVIRON, bytes((SEND,)))
            elif option == LINEMODE:
                self._out += subnegotiation(
                    LINEMODE, bytes((LM_MODE, LM_MODE_EDIT | LM_MODE_TRAPSIG))
                )
        if not self.server and local and option == NAWS:
            self.set_window_size(*self.policy.window_size)
        if option == CHARSET and self.server and self.policy.charsets and self.charset is None:
            self.request_charset(self.policy.charsets)

    def _timing_mark(self, verb: int) -> None:
        """TIMING-MARK is no state: answer DO at once, count answers to ours."""
        if verb == DO:
            self._out += negotiation(WILL, TIMING_MARK)
        elif verb in (WILL, WONT) and self._timing_marks:
            self._timing_marks -= 1
            self.handler.timing_mark()

    # --- commands and subnegotiations --------------------------------------------------

    def command_received(self, command: int) -> None:
        """Pass a two-byte command to the handler (called by the parser)."""
        self.handler.command_received(command)

    def subnegotiation_overflow(self, option: int) -> None:
        """Record a subnegotiation that exceeded the bound (called by the parser)."""
        self.errors.append(f"subnegotiation of {OPTION_NAMES.get(option, option)} too long")
        self.handler.subnegotiation_dropped(option)

    def subnegotiation_received(self, option: int, payload: bytes) -> None:
        """Act on ``IAC SB option payload IAC SE`` (called by the parser)."""
        if not payload and option != NAWS:
            return
        if option == NAWS:
            if self.server and self.remote_enabled(NAWS) and len(payload) == 4:
                columns = payload[0] << 8 | payload[1]
                rows = payload[2] << 8 | payload[3]
                self.window_size = (columns, rows)
                self.handler.window_size_changed(columns, rows)
        elif option == TTYPE:
            self._ttype(payload)
        elif option == NEW_ENVIRON:
            self._environ(payload)
        elif option == CHARSET:
            self._charset(payload)
        elif option == LINEMODE:
            self._linemode(payload)
        elif option == STATUS and payload[0] == SEND and self.local_enabled(STATUS):
            self._out += subnegotiation(STATUS, bytes((IS,)) + self._status())

    def _ttype(self, payload: bytes) -> None:
        if payload[0] == SEND and not self.server and self.local_enabled(TTYPE):
            names = self.policy.terminal_types or ("UNKNOWN",)
            index = self._ttype_index
            name = names[min(index, len(names) - 1)]
            if index >= len(names):  # the last repeated once: start again (cycling)
                self._ttype_index = 0
            else:
                self._ttype_index = index + 1
            self._out += subnegotiation(TTYPE, bytes((IS,)) + name.encode("ascii", "replace"))
        elif payload[0] == IS and self.server and not self._ttype_done:
            name = payload[1:].decode("ascii", "replace")
            seen = self.terminal_types
            if name in seen or len(seen) >= MAX_TTYPES:
                self._ttype_done = True
                self.handler.terminal_types_received(tuple(seen))
                return
            seen.append(name)
            self._out += subnegotiation(TTYPE, bytes((SEND,)))

    def _environ(self, payload: bytes) -> None:
        kind = payload[0]
        if kind == SEND and not self.server and self.local_enabled(NEW_ENVIRON):
            wanted = [name for _, name, _ in _parse_environ(payload[1:])]
            env = self.policy.environ
            reply = bytearray((IS,))
            for name in wanted or sorted(env):
                if name in env:
                    code = (
                        ENV_VAR
                        if name in ("USER", "DISPLAY", "PRINTER", "SYSTEMTYPE", "JOB", "ACCT")
                        else ENV_USERVAR
                    )
                    reply += bytes((code,)) + _env_quote(name)
                    reply += bytes((ENV_VALUE,)) + _env_quote(env[name])
            self._out += subnegotiation(NEW_ENVIRON, bytes(reply))
        elif kind in (IS, INFO) and self.server:
            variables = {
                name: value for _, name, value in _parse_environ(payload[1:]) if value is not None
            }
            self.environ.update(variables)
            self.handler.environ_received(variables)

    def request_charset(self, names: Iterable[str]) -> None:
        """Send CHARSET REQUEST for ``names`` (needs CHARSET on in either direction)."""
        if not (self.local_enabled(CHARSET) or self.remote_enabled(CHARSET)):
            return
        body = b";" + b";".join(n.encode("ascii", "replace") for n in names)
        self._charset_pending = True
        self._out += subnegotiation(CHARSET, bytes((CS_REQUEST,)) + body)

    def _charset(self, payload: bytes) -> None:
        kind = payload[0]
        if kind == CS_REQUEST:
            if self._charset_pending:
                if self.server:  # ours wins
                    self._out += subnegotiation(CHARSET, bytes((CS_REJECTED,)))
                    return
                self._charset_pending = False
            body = payload[1:]
            if body.startswith(b"[TTABLE]"):
                body = body[9:]
            names = body[1:].split(body[:1]) if body else []
            ours = {n.upper(): n for n in self.policy.charsets}
            for raw in names:
                name = raw.decode("ascii", "replace")
                if name.upper() in ours:
                    self.charset = name
                    self._out += subnegotiation(CHARSET, bytes((CS_ACCEPTED,)) + raw)
                    self.handler.charset_changed(name)
                    return
            self._out += subnegotiation(CHARSET, bytes((CS_REJECTED,)))
        elif kind == CS_ACCEPTED and self._charset_pending:
            self._charset_pending = False
            self.charset = payload[1:].decode("ascii", "replace")
            self.handler.charset_changed(self.charset)
        elif kind == CS_REJECTED and self._charset_pending:
            self._charset_pending = False
            self.handler.charset_rejected()

    def _linemode(self, payload: bytes) -> None:
        kind = payload[0]
        if kind == LM_MODE and len(payload) >= 2:
            mode = payload[1]
            if self.server:
                if mode & LM_MODE_ACK:
                    self.linemode = mode & ~LM_MODE_ACK
                    self.handler.linemode_changed(self.linemode)
            elif self.local_enabled(LINEMODE) and not mode & LM_MODE_ACK and mode != self.linemode:
                self.linemode = mode
                self._out += subnegotiation(LINEMODE, bytes((LM_MODE, mode | LM_MODE_ACK)))
                self.handler.linemode_changed(mode)
        elif kind == DO and len(payload) >= 2 and payload[1] == LM_FORWARDMASK:
            self._out += subnegotiation(LINEMODE, bytes((WONT, LM_FORWARDMASK)))

    def _status(self) -> bytes:
        out = bytearray()
        for option, s in sorted(self._options.items()):
            if s.us == YES:
                out += bytes((WILL, option))
            if s.him == YES:
                out += bytes((DO, option))
        return bytes(out)

    def set_window_size(self, columns: int, rows: int) -> None:
        """A client: report a new window size (sent only while NAWS is on)."""
        if not self.local_enabled(NAWS):
            return
        columns = max(0, min(columns, 0xFFFF))
        rows = max(0, min(rows, 0xFFFF))
        body = bytes((columns >> 8, columns & 0xFF, rows >> 8, rows & 0xFF))
        self._out += subnegotiation(NAWS, body)


def _request(state: str, queue: bool, enable: bool) -> tuple[str, bool, bool]:
    """Return (state, queue, send?) for a local request to enable or disable (RFC 1143)."""
    want, wanting, other = (YES, WANTYES, WANTNO) if enable else (NO, WANTNO, WANTYES)
    if state == (NO if enable else YES):
        return wanting, EMPTY, True
    if state in (want, wanting):
        return state, EMPTY, False  # already there, or already asking: cancel any queue
    assert state == other
    return state, OPPOSITE, False  # asking the other way: queue this one


def _receive(
    state: str, queue: bool, positive: bool, accept: bool
) -> tuple[str, bool, bool | None, str]:
    """Return (state, queue, reply, error) for a received WILL/DO (``positive``) or WONT/DONT.

    ``reply`` is True for DO/WILL, False for DONT/WONT, None for no reply.
    """
    if positive:
        if state == NO:
            return (YES, EMPTY, True, "") if accept else (NO, EMPTY, False, "")
        if state == YES:
            return state, queue, None, ""
        if state == WANTNO:
            if queue == EMPTY:
                return NO, EMPTY, None, "DONT answered by WILL"
            return YES, EMPTY, None, "DONT answered by WILL"
        # WANTYES
        if queue == EMPTY:
            return YES, EMPTY, None, ""
        return WANTNO, EMPTY, False, ""
    if state == NO:
        return state, queue, None, ""
    if state == YES:
        return NO, EMPTY, False, ""
    if state == WANTNO:
        if queue == EMPTY:
            return NO, EMPTY, None, ""
        return WANTYES, EMPTY, True, ""
    return NO, EMPTY, None, ""  # WANTYES, either queue


def _env_quote(text: str) -> bytes:
    """Quote a NEW-ENVIRON name or value (ESC before VAR, VALUE, ESC, USERVAR bytes)."""
    raw = text.encode("utf-8", "replace")
    if not any(b < 4 for b in raw):
        return raw
    out = bytearray()
    for b in raw:  # rare: only for control bytes 0..3
        if b < 4:
            out.append(ENV_ESC)
        out.append(b)
    return bytes(out)


def _parse_environ(data: bytes) -> Sequence[tuple[int, str, str | None]]:
    """Parse ``VAR name [VALUE value] ...`` into (kind, name, value or None) triples."""
    items: list[tuple[int, str, str | None]] = []
    kind = -1
    name = bytearray()
    value: bytearray | None = None
    i = 0
    n = len(data)

    def flush() -> None:
        if kind >= 0:
            items.append(
                (
                    kind,
                    name.decode("utf-8", "replace"),
                    None if value is None else value.decode("utf-8", "replace"),
                )
            )

    while i < n:
        b = data[i]
        i += 1
        if b in (ENV_VAR, ENV_USERVAR):
            flush()
            kind, name, value = b, bytearray(), None
        elif b == ENV_VALUE:
            value = bytearray()
        else:
            if b == ENV_ESC and i < n:
                b = data[i]
                i += 1
            (name if value is None else value).append(b)
    flush()
    return items[:256]

"""A Telnet client: telnetlib's reads and writes as Deferreds, in linear time.

::

    client = await connect_telnet(reactor, "router.example", 23)
    await client.read_until(b"login: ", timeout=10)
    client.write(b"admin\\n")
    index, match, text = await client.expect([rb"Password: ", rb"\\$ "], timeout=10)
    ...
    await client.close()

Every read returns a :class:`~twisted.internet.defer.Deferred` with
telnetlib's result: :meth:`~TelnetClient.read_until` the data up to and
including the expected bytes (or what arrived when the timeout ran out),
:meth:`~TelnetClient.expect` ``(index, match, text)`` (``(-1, None, text)``
on timeout), :meth:`~TelnetClient.read_some`, :meth:`~TelnetClient.read_all`,
:meth:`~TelnetClient.read_eager` and :meth:`~TelnetClient.read_very_eager`.
A read on a closed connection with nothing left fails with
:class:`~netproto_twisted.telnet.errors.TelnetConnectionClosed` (an
:exc:`EOFError`, as telnetlib raises).  Reads are one at a time.

Linear time: received data is appended to one buffer with a consumed
offset; a waiting :meth:`~TelnetClient.read_until` searches only the bytes
that arrived since its last search (plus ``len(expected) - 1``), and
:meth:`~TelnetClient.expect` looks back at most ``window`` bytes before
them, so neither rescans a long buffer from its start.

Options are negotiated per RFC 1143 by a
:class:`~netproto_twisted.telnet.negotiation.TelnetSession` with
:data:`~netproto_twisted.telnet.negotiation.CLIENT_POLICY` (accept the
server's ECHO, SGA, BINARY; offer NAWS, TTYPE, NEW-ENVIRON, CHARSET when
asked); :meth:`~TelnetClient.set_option_negotiation_callback` hears every
``IAC WILL/WONT/DO/DONT``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from netproto_twisted.core.plumbing import ConnectionPlumbing
from netproto_twisted.core.tls import client_options
from netproto_twisted.telnet._wire import COMMAND_NAMES, OPTION_NAMES, escape
from netproto_twisted.telnet.errors import TelnetConnectionClosed, TelnetReadBusy
from netproto_twisted.telnet.negotiation import (
    CLIENT_POLICY,
    OptionPolicy,
    SessionHandler,
    TelnetSession,
)

__all__ = [
    "DEFAULT_PORT",
    "EXPECT_WINDOW",
    "TelnetClient",
    "TelnetClientFactory",
    "connect_telnet",
]

#: The Telnet port (RFC 854).
DEFAULT_PORT = 23
#: How far before the newly arrived data :meth:`TelnetClient.expect` looks for a match start.
EXPECT_WINDOW = 64 * 1024
#: Consumed bytes kept at the front of the buffer before it is compacted.
_COMPACT_AT = 1 << 20

Pattern = re.Pattern[bytes]
NegotiationCallback = Callable[["TelnetClient", int, int], None]


class _Wait:
    """One pending read: what it waits for, its Deferred, its timer, where its search got to."""

    __slots__ = ("deferred", "expected", "kind", "patterns", "scanned", "timer", "window")

    def __init__(self, kind: str, deferred: Deferred[Any]) -> None:
        self.kind = kind
        self.deferred = deferred
        self.expected = b""
        self.patterns: list[Pattern] = []
        self.scanned = 0
        self.window = EXPECT_WINDOW
        self.timer: IDelayedCall | None = None


class TelnetClient(ConnectionPlumbing, SessionHandler):
    """The client side of one Telnet connection (a Protocol); reads and writes as telnetlib's."""

    _log = Logger()

    def __init__(
        self, policy: OptionPolicy = CLIENT_POLICY, *, max_subnegotiation: int = 8192
    ) -> None:
        ConnectionPlumbing.__init__(self)
        self.session = TelnetSession(
            server=False, handler=self, policy=policy, max_subnegotiation=max_subnegotiation
        )
        self.decoder = self.session
        self._buf = bytearray()
        self._start = 0
        self._eof = False
        self._wait: _Wait | None = None
        self._closed: Deferred[None] = Deferred()
        self._closed_waiters: list[Deferred[None]] = []
        self._callback: NegotiationCallback | None = None
        self.debuglevel = 0
        #: Where received data also goes while :meth:`interact` runs.
        self._sink: Callable[[bytes], None] | None = None

    # --- connection -------------------------------------------------------------------

    def connectionMade(self) -> None:
        """Send the policy's opening requests, if any."""
        super().connectionMade()
        self.session.start()
        self._flush()

    def dataReceived(self, data: bytes) -> None:
        """Decode ``data`` (the session answers negotiations), buffer the text."""
        if self.debuglevel:
            self._log.info("telnet recv {data!r}", data=data)
        super().dataReceived(data)
        self._flush()

    def bytes_received(self, data: bytes) -> None:
        """Append decoded text to the buffer and let a waiting read look at it."""
        sink = self._sink
        if sink is not None:
            sink(data)
            return
        wait = self._wait
        if wait is not None and wait.kind == "some" and self._start == len(self._buf):
            self._finish(wait, data)  # nothing buffered: hand the chunk over as it is
            return
        self._buf += data
        if wait is not None:
            self._check()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Mark end of file, settle a waiting read, fire :meth:`closed`."""
        super().connectionLost(reason)
        self._eof = True
        if self._wait is not None:
            self._check()
        if not self._closed.called:
            self._closed.callback(None)
        waiters, self._closed_waiters = self._closed_waiters, []
        for d in waiters:
            d.callback(None)

    def _flush(self) -> None:
        out = self.session.data_to_send()
        if out and self.transport is not None and not self._lost:
            if self.debuglevel:
                self._log.info("telnet send {data!r}", data=out)
            self.send_raw(out)

    # --- SessionHandler ---------------------------------------------------------------

    def negotiation_received(self, verb: int, option: int) -> None:
        """Log the negotiation (debug level) and pass it to the callback."""
        if self.debuglevel:
            self._log.info(
                "telnet recv IAC {verb} {option}",
                verb=COMMAND_NAMES.get(verb, verb),
                option=OPTION_NAMES.get(option, option),
            )
        if self._callback is not None:
            self._callback(self, verb, option)

    # --- telnetlib's API ----------------------------------------------------------------

    def set_debuglevel(self, level: int) -> None:
        """Log every byte sent and received (and each negotiation) when ``level`` > 0."""
        self.debuglevel = level

    def set_option_negotiation_callback(self, callback: NegotiationCallback | None) -> None:
        """Call ``callback(client, verb, option)`` for each ``IAC WILL/WONT/DO/DONT`` received.

        Unlike telnetlib's, it does not replace the answer: the RFC 1143
        engine still answers, and the callback may ask for more with
        :meth:`request_option`.
        """
        self._callback = callback

    def request_option(self, option: int, *, local: bool, enable: bool = True) -> bool:
        """Ask to enable or disable ``option`` on our side (``local``) or the server's."""
        session = self.session
        ok = (session.request_local if local else session.request_remote)(option, enable)
        self._flush()
        return ok

    def set_window_size(self, columns: int, rows: int) -> None:
        """Report a new window size to the server (when NAWS is on)."""
        self.session.set_window_size(columns, rows)
        self._flush()

    def write(self, data: bytes) -> None:
        """Send ``data`` with every IAC doubled (telnetlib's ``write``)."""
        if self._lost:
            raise OSError("telnet connection closed")
        data = escape(data)
        if self.debuglevel:
            self._log.info("telnet send {data!r}", data=data)
        self.send_raw(data)

    @property
    def eof(self) -> bool:
        """Whether the connection closed (telnetlib's ``eof``)."""
        return self._eof

    def buffered(self) -> int:
        """Return how many received bytes no read has taken yet."""
        return len(self._buf) - self._start

    def close(self) -> Deferred[None]:
        """Close the connection; the Deferred fires when it is closed."""
        if not self._lost and self.transport is not None:
            self.transport.loseConnection()
        return self.closed()

    def closed(self) -> Deferred[None]:
        """Return a Deferred that fires when the connection is closed."""
        d: Deferred[None] = Deferred()
        if self._closed.called:
            d.callback(None)
        else:
            self._closed_waiters.append(d)
        return d

    def read_until(self, expected: bytes, timeout: float | None = None) -> Deferred[bytes]:
        """Read until ``expected`` (included) or ``timeout``; on timeout or EOF, what is there."""
        wait = self._begin("until", timeout)
        wait.expected = expected
        wait.scanned = self._start
        return self._started(wait)

    def expect(
        self,
        patterns: Sequence[bytes | Pattern],
        timeout: float | None = None,
        *,
        window: int | None = EXPECT_WINDOW,
    ) -> Deferred[tuple[int, re.Match[bytes] | None, bytes]]:
        """Read until one of the regular expressions matches: ``(index, match, text)``.

        As telnetlib's, the first pattern in the list that matches wins, and
        ``text`` runs to the end of the match; on timeout ``(-1, None, text)``
        with what arrived.  A match may start at most ``window`` bytes before
        the data that arrived since the last search (``None``: anywhere).
        """
        wait = self._begin("expect", timeout)
        wait.patterns = [p if isinstance(p, re.Pattern) else re.compile(p) for p in patterns]
        wait.scanned = self._start
        wait.window = -1 if window is None else window
        return self._started(wait)

    def read_some(self) -> Deferred[bytes]:
        """Read at least one byte (what is there); ``b""`` at end of file."""
        return self._started(self._begin("some", None))

    def read_all(self) -> Deferred[bytes]:
        """Read everything until the connection closes."""
        return self._started(self._begin("all", None))

    def read_very_eager(self) -> Deferred[bytes]:
        """Return everything received so far, without waiting (EOFError if closed and empty)."""
        if self._eof and not self.buffered():
            return fail(TelnetConnectionClosed("telnet connection closed"))
        return succeed(self._take(len(self._buf)))

    read_eager = read_very_eager
    read_lazy = read_very_eager
    read_very_lazy = read_very_eager

    # --- the buffer -------------------------------------------------------------------

    def _begin(self, kind: str, timeout: float | None) -> _Wait:
        if self._wait is not None:
            raise TelnetReadBusy("another read is still waiting")
        wait = _Wait(kind, Deferred())
        if timeout is not None:
            clock = self.clock
            if clock is None:
                raise RuntimeError("a timeout needs the client's clock (connect_telnet sets it)")
            wait.timer = clock.callLater(timeout, self._timed_out, wait)
        return wait

    def _started(self, wait: _Wait) -> Deferred[Any]:
        self._wait = wait
        self._check()
        return wait.deferred

    def _take(self, end: int) -> bytes:
        """Return ``buf[start:end]`` and consume it; compact the buffer now and then."""
        buf = self._buf
        with memoryview(buf) as view:
            data = bytes(view[self._start : end])
        self._start = end
        if end == len(buf):
            buf.clear()
            self._start = 0
        elif end > _COMPACT_AT and end > len(buf) // 2:
            del buf[:end]
            self._start = 0
        return data

    def _finish(self, wait: _Wait, result: Any) -> None:
        self._wait = None
        if wait.timer is not None and wait.timer.active():
            wait.timer.cancel()
        if isinstance(result, Exception):
            wait.deferred.errback(Failure(result))
        else:
            wait.deferred.callback(result)

    def _check(self) -> None:
        """Settle the waiting read if the buffer (or end of file) satisfies it."""
        wait = self._wait
        if wait is None:
            return
        buf = self._buf
        kind = wait.kind
        if kind == "until":
            expected = wait.expected
            pos = buf.find(expected, max(self._start, wait.scanned - len(expected) + 1))
            if pos >= 0:
                self._finish(wait, self._take(pos + len(expected)))
                return
            wait.scanned = len(buf)
        elif kind == "expect":
            base = self._start
            origin = base if wait.window < 0 else max(base, wait.scanned - wait.window)
            for index, pattern in enumerate(wait.patterns):
                found = pattern.search(buf, origin)
                if found is not None:
                    text = self._take(found.end())
                    match = pattern.search(text, found.start() - base)
                    self._finish(wait, (index, match, text))
                    return
            wait.scanned = len(buf)
        elif kind == "some":
            if self.buffered():
                self._finish(wait, self._take(len(buf)))
                return
            if self._eof:
                self._finish(wait, b"")
            return
        if self._eof:
            if kind == "all":
                self._finish(wait, self._take(len(buf)))
            elif not self.buffered():
                self._finish(wait, TelnetConnectionClosed("telnet connection closed"))
            elif kind == "expect":
                self._finish(wait, (-1, None, self._take(len(buf))))
            else:
                self._finish(wait, self._take(len(buf)))

    def _timed_out(self, wait: _Wait) -> None:
        wait.timer = None
        if self._wait is not wait:
            return
        text = self._take(len(self._buf))
        self._finish(wait, (-1, None, text) if wait.kind == "expect" else text)

    # --- interact ---------------------------------------------------------------------

    def interact(self, reactor: Any, stdin_fd: int = 0, stdout_fd: int = 1) -> Deferred[None]:
        """Join the terminal to the session until the connection closes (telnetlib's ``interact``).

        Keyboard input goes to the server as typed; what the server sends
        (and anything buffered) goes to standard output.  A terminal on
        standard input is in raw mode until the session ends.
        """
        from netproto_twisted.telnet.interact import run_interact

        return run_interact(self, reactor, stdin_fd, stdout_fd)

    def attach_sink(self, sink: Callable[[bytes], None] | None) -> None:
        """Send received text to ``sink`` instead of the buffer (``None``: back to the buffer)."""
        self._sink = sink
        if sink is not None and self.buffered():
            sink(self._take(len(self._buf)))


class TelnetClientFactory(Factory):
    """Builds :class:`TelnetClient` protocols; carries the reactor the clients' timers use."""

    def __init__(self, reactor: IReactorTime, policy: OptionPolicy = CLIENT_POLICY) -> None:
        self.reactor = reactor
        self.policy = policy

    def buildProtocol(self, addr: Any) -> TelnetClient:
        """Return a new :class:`TelnetClient`."""
        protocol = TelnetClient(self.policy)
        protocol.factory = self
        return protocol


def connect_telnet(
    reactor: Any,
    host: str,
    port: int = DEFAULT_PORT,
    *,
    timeout: float = 30.0,
    policy: OptionPolicy = CLIENT_POLICY,
    tls: bool = False,
    tls_verify: bool = True,
    tls_ca_file: str | None = None,
    debuglevel: int = 0,
) -> Deferred[TelnetClient]:
    """Connect to a Telnet server and return the :class:`TelnetClient` (telnetlib's ``Telnet``).

    ``reactor`` provides :class:`~twisted.internet.interfaces.IReactorTCP`
    and :class:`~twisted.internet.interfaces.IReactorTime`.  ``tls`` runs
    Telnet over TLS (the server's ``ssl:`` endpoint), verifying the
    certificate unless ``tls_verify`` is false.
    """
    endpoint: Any = HostnameEndpoint(reactor, host, port, timeout=timeout)
    if tls:
        endpoint = wrapClientTLS(
            client_options(host, verify=tls_verify, ca_file=tls_ca_file), endpoint
        )
    d: Deferred[TelnetClient] = endpoint.connect(TelnetClientFactory(reactor, policy))

    def ready(client: TelnetClient) -> TelnetClient:
        client.set_debuglevel(debuglevel)
        return client

    return d.addCallback(ready)

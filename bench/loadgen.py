"""The load generator of the benchmarks: many request/response clients on one epoll loop.

One thread, one epoll, non-blocking sockets with TCP_NODELAY: the cheapest
way to drive many request/response clients from CPython (about 7-8 us of CPU
per request on the development machine, mostly in the kernel's send/recv).
A :class:`Dialogue` says what each client sends and how it recognises the end
of each response; :func:`run_load` runs it with a count and a wall-clock cap.
"""

from __future__ import annotations

import errno
import math
import os
import re
import select
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["Dialogue", "LoadResult", "Step", "http_response_complete", "percentile", "run_load"]

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


def http_response_complete(buf: bytearray) -> bool:
    """True once ``buf`` holds one whole HTTP/1.x response with a Content-Length (or none)."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    m = _CONTENT_LENGTH.search(buf, 0, end + 2)
    return len(buf) >= end + 4 + (int(m.group(1)) if m else 0)

_EPOLL_IN = select.EPOLLIN
_EPOLL_OUT = select.EPOLLOUT


@dataclass(frozen=True)
class Step:
    """Send ``send``, then read until the response is complete.

    ``until`` is a byte count (int), a suffix the buffer ends with (bytes), a
    compiled regex searched in the buffer (for multi-line replies; keep such
    responses small, the buffer is searched whole on every read), or a
    function of the buffer returning True once it holds the whole response
    (see :func:`http_response_complete`).
    """

    send: bytes
    until: int | bytes | re.Pattern[bytes] | Callable[[bytearray], bool]


@dataclass(frozen=True)
class Dialogue:
    """What each client does on a connection: greeting, setup, requests, teardown.

    One request is one pass through ``request``; its latency runs from the
    first send of the pass to the end of its last response.
    """

    request: Sequence[Step]
    #: What the server sends unprompted on connect (send must be b"").
    greeting: Step | None = None
    setup: Sequence[Step] = ()
    teardown: Sequence[Step] = ()
    #: Reconnect after this many requests (0: one connection per client).
    requests_per_connection: int = 0


@dataclass
class LoadResult:
    """What one load run did: completed requests, errors, time, generator CPU, latencies."""

    requests: int
    errors: int
    elapsed: float
    cpu: float
    latencies: list[float] = field(default_factory=list, repr=False)
    timed_out: bool = False

    @property
    def rps(self) -> float:
        """Completed requests per second of wall-clock time."""
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def cpu_per_request(self) -> float:
        """Seconds of load-generator CPU per completed request."""
        return self.cpu / self.requests if self.requests else 0.0


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of already sorted values (0.0 if empty)."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


_GREETING, _SETUP, _REQUEST, _TEARDOWN = range(4)


class _Conn:
    __slots__ = ("buf", "client", "count", "idx", "phase", "sock", "t0")

    def __init__(self, sock: socket.socket, client: int) -> None:
        self.sock = sock
        self.client = client
        self.buf = bytearray()
        self.phase = _GREETING
        self.idx = 0
        self.count = 0
        self.t0 = 0.0


def run_load(
    host: str,
    port: int,
    dialogue: Dialogue,
    clients: int,
    requests: int,
    time_limit: float,
) -> LoadResult:
    """Drive ``clients`` connections, ``requests`` requests each, ``time_limit`` s at most.

    One thread, one epoll, non-blocking sockets with TCP_NODELAY. A client
    whose connection fails or closes early counts one error and stops.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    phases: list[Sequence[Step]] = [
        [dialogue.greeting] if dialogue.greeting is not None else [],
        dialogue.setup,
        dialogue.request,
        dialogue.teardown,
    ]
    if not dialogue.request:
        raise ValueError("a dialogue needs at least one request step")
    per_conn = dialogue.requests_per_connection
    ep = select.epoll()
    conns: dict[int, _Conn] = {}
    done = [0] * clients
    latencies: list[float] = []
    lat_append = latencies.append
    perf = time.perf_counter
    errors = 0
    finished = 0

    def connect(client: int) -> None:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = s.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            raise OSError(err, os.strerror(err))
        c = _Conn(s, client)
        conns[s.fileno()] = c
        ep.register(s.fileno(), _EPOLL_OUT)

    def close(c: _Conn) -> None:
        fd = c.sock.fileno()
        if fd < 0:
            return
        ep.unregister(fd)
        del conns[fd]
        c.sock.close()

    def next_step(c: _Conn, now: float) -> None:
        """Send the step at (phase, idx), skipping empty phases; close when all is done."""
        nonlocal finished
        while True:
            steps = phases[c.phase]
            if c.idx < len(steps):
                if c.phase == _REQUEST and c.idx == 0:
                    c.t0 = now
                data = steps[c.idx].send
                if data:
                    c.sock.send(data)  # small writes on a fresh socket buffer never block
                return
            # phase exhausted
            if c.phase == _REQUEST:
                lat_append(now - c.t0)
                c.count += 1
                done[c.client] += 1
                c.idx = 0
                if done[c.client] < requests and (not per_conn or c.count < per_conn):
                    continue
            if c.phase == _TEARDOWN:
                close(c)
                if done[c.client] < requests:
                    connect(c.client)
                else:
                    finished += 1
                return
            c.phase += 1
            c.idx = 0

    cpu0 = time.process_time()
    t_start = perf()
    deadline = t_start + time_limit
    for i in range(clients):
        connect(i)
    # A bound on loop turns besides the clock: each turn completes at least one read.
    max_turns = clients * (requests + 2) * (len(dialogue.request) + len(dialogue.setup) + 4) * 64
    turns = 0
    timed_out = False
    poll = ep.poll
    while finished + errors < clients:
        now = perf()
        if now >= deadline or turns >= max_turns:
            timed_out = True
            break
        turns += 1
        for fd, ev in poll(min(1.0, deadline - now)):
            c = conns.get(fd)
            if c is None:
                continue
            now = perf()
            try:
                if ev & _EPOLL_OUT:  # connect finished
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    ep.modify(fd, _EPOLL_IN)
                    c.phase, c.idx, c.count = _GREETING, 0, 0
                    next_step(c, now)
                    continue
                data = c.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed by server")
                buf = c.buf
                buf += data
                until = phases[c.phase][c.idx].until
                if isinstance(until, int):
                    complete = len(buf) >= until
                elif isinstance(until, bytes):
                    complete = buf.endswith(until)
                elif isinstance(until, re.Pattern):
                    complete = until.search(buf) is not None
                else:
                    complete = until(buf)
                if complete:
                    buf.clear()
                    c.idx += 1
                    next_step(c, now)
            except OSError:
                if c.phase == _TEARDOWN:  # the server may close first, as for QUIT
                    close(c)
                    if done[c.client] < requests:
                        connect(c.client)
                    else:
                        finished += 1
                    continue
                errors += 1
                close(c)
    elapsed = perf() - t_start
    cpu = time.process_time() - cpu0
    for c in list(conns.values()):
        close(c)
    ep.close()
    return LoadResult(sum(done), errors, elapsed, cpu, latencies, timed_out)

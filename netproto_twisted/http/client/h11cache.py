"""What h11 built or parsed once, kept for the same input: request events and response heads.

Both are pure functions of their input for a connection in a fresh cycle:
h11 validates every header line of an event it builds and of a head it
parses with regular expressions, which is most of the client's CPU per
request when a client repeats itself (a poller, a crawler of one site, an
RPC client).  :mod:`netproto_twisted.http.client.http11` uses them.
"""

from __future__ import annotations

import h11

__all__ = ["HEADS", "MAX_CACHED_HEADS", "Head", "remember_head", "request_event"]

#: A parsed head: status, reason, version, headers, Content-Length, keep-alive.
Head = tuple[int, bytes, tuple[int, int], tuple[tuple[bytes, bytes], ...], int, bool]
#: Heads h11 parsed, by (request method, our h11 state, header limit, head bytes).
#: A server answers a repeated request with the same head (nginx's changes once a
#: second, with its Date), and the same bytes after the same request parse the
#: same: the parse (regular expressions per header line) is done once.  Only
#: complete heads of Content-Length bodies, received at the start of a read.
HEADS: dict[tuple[bytes, object, int, bytes], Head] = {}
MAX_CACHED_HEADS = 256

_events: dict[tuple[bytes, bytes, tuple[tuple[bytes, bytes], ...], int], h11.Request] = {}
_MAX_CACHED_EVENTS = 512


def request_event(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], size: int
) -> h11.Request:
    """h11's Request event, cached: building one validates every header with a regex.

    ``size`` is the Content-Length to add (``-1``: none).  Events are
    immutable, so a client repeating a request (same URL, same headers,
    same body length: a poller, an RPC client) reuses the validated one.
    """
    key = (method, target, tuple(headers), size)
    event = _events.get(key)
    if event is None:
        if size >= 0:
            headers = [*headers, (b"Content-Length", b"%d" % size)]
        event = h11.Request(method=method, target=target, headers=headers)
        if len(_events) >= _MAX_CACHED_EVENTS:
            _events.clear()
        _events[key] = event
    return event


def remember_head(key: tuple[bytes, object, int, bytes], head: Head) -> None:
    """Keep ``head`` for ``key`` (the table is emptied when full)."""
    if len(HEADS) >= MAX_CACHED_HEADS:
        HEADS.clear()
    HEADS[key] = head

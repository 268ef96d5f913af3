"""Writing a whole HTTP/1.x response as one block of bytes, bypassing ``Request.write``.

For a response whose status, header lines and body are all known at once
(a cached small file, a WSGI answer returned as a list), twisted.web's
``Request.write`` builds a ``Headers`` object, encodes it line by line and
queues head and body for the reactor's next turn.  :func:`write_whole`
joins twisted.web's own lines (``Server``, ``Date``, ``Connection: close``
from the request's ``responseHeaders``) with the caller's pre-encoded lines
and the body, writes the block straight to the socket when nothing is
queued (:func:`~netproto_twisted.core.net.send_now`), and finishes the
request.  The request's ``code``, ``sentLength`` and ``startedWriting`` are
set as ``Request.write`` sets them, so access logs and ``finish`` see the
same request.  Only for an HTTP/1.x channel (:func:`can_write_whole`).
"""

from __future__ import annotations

from typing import Any

from twisted.web.http import NO_BODY_CODES, HTTPChannel
from twisted.web.server import Request

from netproto_twisted.core.net import raw_tcp_connection, send_now

__all__ = ["can_write_whole", "raw_connection", "write_whole"]

#: The plain TCP connection beneath an HTTP/1.x channel (or None), kept on the channel.
_RAW_CONNECTION = "netproto_raw_connection"


def can_write_whole(request: Request) -> bool:
    """Whether ``request`` is on an HTTP/1.x channel and nothing of its response went out."""
    return isinstance(request.channel, HTTPChannel) and not request.startedWriting


def raw_connection(channel: Any) -> Any:
    """:func:`~netproto_twisted.core.net.raw_tcp_connection` of the channel's transport, cached."""
    raw = getattr(channel, _RAW_CONNECTION, False)
    if raw is False:
        raw = raw_tcp_connection(channel.transport)
        setattr(channel, _RAW_CONNECTION, raw)
    return raw


def write_whole(
    request: Request,
    code: int,
    reason: bytes | None,
    lines: bytes,
    body: bytes,
    *,
    has_length: bool,
    skip: frozenset[bytes] = frozenset(),
    finish: bool = True,
) -> bool:
    """Write status, headers and ``body`` of ``request`` as one block, then finish it.

    ``lines`` are header lines, each ending in CRLF, already checked (no
    CR/LF inside); a ``Content-Length`` of ``body`` is added unless
    ``has_length``; twisted.web's own headers named in ``skip`` (canonical
    case, as ``b"Server"``) are left out because ``lines`` has its own.
    No body goes out for HEAD, 204 and 304.  With ``finish=False`` the
    caller sends the body (``body`` is then ``b""`` and ``has_length``
    true).  Returns whether the kernel took the whole block at once
    (nothing is left queued in the transport).
    """
    channel: Any = request.channel
    request.setResponseCode(code, reason or None)
    parts = [request.clientproto, b" %d " % code, request.code_message, b"\r\n"]
    for name, values in request.responseHeaders.getAllRawHeaders():
        if name in skip:
            continue
        for value in values:
            parts += (name, b": ", value, b"\r\n")
    parts.append(lines)
    if not has_length and code not in NO_BODY_CODES:
        parts.append(b"Content-Length: %d\r\n" % len(body))
    parts.append(b"\r\n")
    if body and request.method != b"HEAD" and code not in NO_BODY_CODES:
        parts.append(body)
        request.sentLength = len(body)
    request.startedWriting = 1
    data = b"".join(parts)
    raw = raw_connection(channel)
    sent = send_now(raw, data) if raw is not None else 0
    if sent < len(data):
        channel.transport.write(data[sent:] if sent else data)
    if finish:
        request.finish()
    return sent == len(data)

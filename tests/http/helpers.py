"""Shared pieces of the HTTP server tests: a reactor, blocking clients run in threads."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

reactor: Any = _reactor


@dataclass
class Reply:
    """What urllib saw: status, headers, body."""

    status: int
    headers: Message
    body: bytes


def _fetch(url: str, method: str | None, data: bytes | None, headers: dict[str, str]) -> Reply:
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.headers, e.read())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def fetch(
    url: str, *, method: str | None = None, data: bytes | None = None, **headers: str
) -> Deferred[Reply]:
    """Fetch ``url`` with urllib.request in a thread (in header names, ``_`` stands for ``-``)."""
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    return deferToThread(_fetch, url, method, data, named)


def _raw(port: int, data: bytes, limit: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        chunks = []
        total = 0
        while total < limit:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)


def raw_exchange(port: int, data: bytes, limit: int = 1 << 20) -> Deferred[bytes]:
    """Send ``data`` on a new connection and read until the server closes it (or ``limit``)."""
    return deferToThread(_raw, port, data, limit)

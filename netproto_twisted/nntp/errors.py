"""NNTP errors: the server's numeric replies (client side), the store's refusals (server side).

Every 4xx/5xx reply a client receives is an :class:`NNTPReplyError` (a
:class:`~netproto_twisted.core.errors.ProtocolError` with ``code`` and
``text``): :class:`NNTPTemporaryError` for 4xx, :class:`NNTPPermanentError`
for 5xx -- the counterparts of nntplib's ``NNTPTemporaryError`` and
``NNTPPermanentError``.
"""

from __future__ import annotations

from netproto_twisted.core.errors import NetprotoError, ProtocolError, RemoteProtocolError

__all__ = [
    "NNTPConnectionLost",
    "NNTPError",
    "NNTPPermanentError",
    "NNTPProtocolError",
    "NNTPReplyError",
    "NNTPTemporaryError",
    "NoSuchGroup",
    "StoreError",
    "reply_error",
]


class NNTPError(NetprotoError):
    """Base class of the NNTP package's own errors."""


class NNTPReplyError(ProtocolError, NNTPError):
    """The server answered with an error code (``code``, ``text``)."""


class NNTPTemporaryError(NNTPReplyError):
    """A 4xx reply (no such article, try later, authentication required...)."""


class NNTPPermanentError(NNTPReplyError):
    """A 5xx reply (unknown command, syntax error, not permitted...)."""


class NNTPProtocolError(RemoteProtocolError, NNTPError):
    """The server's reply is not NNTP (no code, an unexpected code, a bad overview line)."""


class NNTPConnectionLost(NNTPError):
    """The connection closed before the reply came."""


class StoreError(NNTPError):
    """The article store refused or failed an operation."""


class NoSuchGroup(StoreError):
    """The group is not in the store."""


def reply_error(code: int, text: str) -> NNTPReplyError:
    """The exception for an error reply: temporary for 4xx, permanent otherwise."""
    if 400 <= code < 500:
        return NNTPTemporaryError(code, text)
    return NNTPPermanentError(code, text)

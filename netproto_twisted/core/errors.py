"""The error hierarchy shared by every protocol.

One base, :class:`NetprotoError`.  Errors that a peer reports carry the
protocol's reply ``code`` and ``text``; errors of our own making are told
apart from the peer's (after h11): :class:`LocalProtocolError` means we were
asked to send something the protocol forbids, :class:`RemoteProtocolError`
means the peer sent something it forbids.
"""

from __future__ import annotations

__all__ = [
    "AccessDenied",
    "ConfigError",
    "LimitExceeded",
    "LineTooLong",
    "LocalProtocolError",
    "NetprotoError",
    "PermanentError",
    "ProtocolError",
    "RemoteProtocolError",
    "TemporaryError",
    "error_for_code",
]


class NetprotoError(Exception):
    """Base class of every error raised by netproto_twisted."""


class ProtocolError(NetprotoError):
    """A reply from a peer that reports failure: carries ``code`` and ``text``."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class TemporaryError(ProtocolError):
    """A transient failure (SMTP/FTP/NNTP 4xx): the same request may succeed later."""


class PermanentError(ProtocolError):
    """A permanent failure (SMTP/FTP/NNTP 5xx): repeating the request will not help."""


def error_for_code(code: int, text: str) -> ProtocolError:
    """Return the :class:`ProtocolError` subclass instance that fits a 3-digit reply code."""
    if 400 <= code < 500:
        return TemporaryError(code, text)
    if 500 <= code < 600:
        return PermanentError(code, text)
    return ProtocolError(code, text)


class LocalProtocolError(NetprotoError):
    """We were asked to send something the protocol forbids (CR/LF in an argument...)."""


class RemoteProtocolError(NetprotoError):
    """The peer sent something the protocol forbids."""


class LineTooLong(RemoteProtocolError):
    """The peer sent a line longer than the configured maximum."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"line longer than {limit} bytes")
        self.limit = limit


class LimitExceeded(NetprotoError):
    """A configured limit (size, rate, connections) was exceeded."""

    def __init__(self, what: str, limit: int | float) -> None:
        super().__init__(f"{what} exceeds the limit of {limit}")
        self.what = what
        self.limit = limit


class AccessDenied(NetprotoError):
    """A peer was refused by access control (deny list, allow list, limits)."""


class ConfigError(NetprotoError):
    """A configuration error: names the key and the reason, in one line."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}" if key else reason)
        self.key = key
        self.reason = reason

"""IMAP errors: a ``NO``/``BAD`` completion, a lost connection, a server breaking IMAP."""

from __future__ import annotations

from netproto_twisted.core.errors import NetprotoError, TaggedReplyError

__all__ = ["IMAPConnectionLost", "IMAPError", "IMAPProtocolError", "IMAPReplyError"]


class IMAPError(NetprotoError):
    """Base of the IMAP client's errors."""


class IMAPReplyError(TaggedReplyError, IMAPError):
    """The server completed a command with ``NO`` or ``BAD`` (or said ``BYE``)."""


class IMAPConnectionLost(IMAPError):
    """The connection closed (or timed out) before the reply."""


class IMAPProtocolError(IMAPError):
    """The server sent something that is not IMAP."""

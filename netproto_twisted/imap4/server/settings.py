"""The IMAP server's settings (one :class:`IMAPSettings` per listener)."""

from __future__ import annotations

from dataclasses import dataclass

from netproto_twisted import __version__

__all__ = ["DEFAULT_IDLE_TIMEOUT", "IMAPSettings"]

#: RFC 9051 section 5.4: an inactivity autologout timer of at least 30 minutes.
DEFAULT_IDLE_TIMEOUT = 1800.0


@dataclass(frozen=True)
class IMAPSettings:
    """Everything that shapes one listening IMAP server's behaviour.

    :ivar hostname: the server's name in the greeting.
    :ivar allow_insecure_auth: allow LOGIN and AUTHENTICATE without TLS to loopback peers.
    :ivar max_line_length: longest command line, CRLF excluded (longer: ``BAD``, skipped).
    :ivar max_literal: largest literal in a command other than APPEND's message.
    :ivar max_command: most octets in one command, its literals included (APPEND's messages
        excepted).
    :ivar preauth_literal: largest literal accepted before login.
    :ivar append_limit: largest message APPEND takes (``APPENDLIMIT``).
    :ivar discard_limit: a non-synchronising literal over its limit is read and dropped
        (then ``BAD``) up to this size; a larger one ends the session.
    :ivar max_depth: deepest parenthesis nesting in a command.
    :ivar max_errors: bad commands in a session before it is closed.
    :ivar idle_timeout: seconds without a command (IDLE included) before autologout.
    :ivar tls_handshake_timeout: seconds a TLS handshake may take.
    :ivar command_rate: sustained commands per second per connection (``None``: no limit).
    :ivar command_burst: commands a connection may send at once before the rate applies.
    :ivar fetch_batch: messages read per trip to the thread pool in FETCH and SEARCH.
    """

    hostname: str = "localhost"
    allow_insecure_auth: bool = False
    max_line_length: int = 65536
    max_literal: int = 65536
    max_command: int = 1024 * 1024
    preauth_literal: int = 1024
    append_limit: int = 35 * 1024 * 1024
    discard_limit: int = 1024 * 1024
    max_depth: int = 32
    max_errors: int = 50
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    tls_handshake_timeout: float | None = 30.0
    command_rate: float | None = None
    command_burst: int = 200
    fetch_batch: int = 250
    implementation: str = f"netproto_twisted-{__version__}"

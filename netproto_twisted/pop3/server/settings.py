"""The POP3 server's settings (one :class:`POP3Settings` per listener)."""

from __future__ import annotations

from dataclasses import dataclass

from netproto_twisted import __version__

__all__ = ["DEFAULT_IDLE_TIMEOUT", "POP3Settings"]

#: RFC 1939 section 3: an autologout timer of at least 10 minutes.
DEFAULT_IDLE_TIMEOUT = 600.0


@dataclass(frozen=True)
class POP3Settings:
    """Everything that shapes one listening POP3 server's behaviour.

    :ivar hostname: the server's name in the greeting.
    :ivar allow_insecure_auth: allow USER/PASS and AUTH without TLS to loopback peers.
    :ivar max_line_length: longest command line, CRLF included (longer: ``-ERR``, skipped).
    :ivar max_errors: bad commands in a session before it is closed.
    :ivar idle_timeout: seconds without a command before the session is closed
        (no deletion: the UPDATE state is never entered).
    :ivar tls_handshake_timeout: seconds a TLS handshake may take.
    :ivar command_rate: sustained commands per second per connection (``None``: no limit).
    :ivar command_burst: commands a connection may send at once before the rate applies.
    :ivar implementation: the ``IMPLEMENTATION`` capability's text ("": not advertised).
    """

    hostname: str = "localhost"
    allow_insecure_auth: bool = False
    max_line_length: int = 2048
    max_errors: int = 20
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    tls_handshake_timeout: float | None = 30.0
    command_rate: float | None = None
    command_burst: int = 200
    implementation: str = f"netproto_twisted-{__version__}"

"""The SMTP server's settings (one :class:`ServerSettings` per listener); the avatar interface."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from netproto_twisted.core.access import Network
from netproto_twisted.core.auth import IAuthenticated
from netproto_twisted.smtp.wire._codes import DEFAULT_MAX_MESSAGE_SIZE

__all__ = ["BareLF", "IAuthenticated", "ServerSettings"]

#: What to do with bare CR/LF in commands and data: refuse (the default) or normalise.
BareLF = Literal["reject", "normalize"]


@dataclass(frozen=True)
class ServerSettings:
    """Everything that shapes one listening SMTP server's behaviour.

    :ivar hostname: the server's name in the greeting, EHLO and Received.
    :ivar max_size: the largest message accepted, in octets (advertised with SIZE).
    :ivar require_auth: submission role: MAIL needs AUTH first (``530 5.7.0``).
    :ivar require_tls: refuse MAIL before STARTTLS (``530 5.7.0``).
    :ivar relay_networks: peers that may relay without AUTH.
    :ivar allow_insecure_auth: offer AUTH without TLS to loopback peers.
    :ivar auth_mechanisms: the SASL mechanisms to offer, in order (empty: all
        the credential store can serve).
    :ivar bare_lf: ``"reject"`` bare CR/LF (the default) or ``"normalize"`` them.
    :ivar max_recipients: recipients per transaction (``452 4.5.3`` beyond; these
        refusals do not count against ``max_errors``).
    :ivar max_errors: bad commands in a session before it is closed (``421``).
    :ivar max_line_length: longest command line, CRLF excluded.
    :ivar max_data_line_length: longest message line, CRLF excluded, or ``None``.
    :ivar idle_timeout: seconds without input before ``421`` and close.
    :ivar tls_handshake_timeout: seconds a TLS handshake may take.
    :ivar command_rate: sustained commands per second per connection (``None``: no limit);
        beyond ``command_burst`` commands, the next one is handled only when due.
    :ivar greeting: text after the host name in the ``220`` greeting.
    :ivar extra_keywords: more EHLO keywords to advertise (for subclasses that handle them).
    """

    hostname: str = "localhost"
    max_size: int = DEFAULT_MAX_MESSAGE_SIZE
    require_auth: bool = False
    require_tls: bool = False
    relay_networks: tuple[Network, ...] = ()
    allow_insecure_auth: bool = False
    auth_mechanisms: tuple[str, ...] = ()
    bare_lf: BareLF = "reject"
    max_recipients: int = 1000
    max_errors: int = 20
    max_line_length: int = 2048
    max_data_line_length: int | None = None
    idle_timeout: float | None = 300.0
    tls_handshake_timeout: float | None = 30.0
    command_rate: float | None = None
    command_burst: int = 200
    greeting: str = "ESMTP netproto"
    extra_keywords: tuple[str, ...] = field(default=())

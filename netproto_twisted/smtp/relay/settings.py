"""The relay's settings: one frozen dataclass, with the defaults and the checks in one place.

:class:`RelaySettings` is what a :class:`~netproto_twisted.smtp.relay.service.Relay`
is configured with (the daemon builds it from its ``[smtp]`` keys and
options); the collaborators a relay talks to (spool, reactor, resolver,
connect function, random source) are passed to the relay itself.  Building
a :class:`RelaySettings` checks every value and every pair of values that
must agree, and raises :class:`SettingError` (a :class:`ValueError`) naming
the settings involved.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from netproto_twisted.core.config import check_bounds, field

__all__ = [
    "DEFAULT_DEAD_HOST_TIME",
    "DEFAULT_DELAY_WARNING",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_JITTER",
    "DEFAULT_LIFETIME",
    "DEFAULT_MAX_ACTIVE_ENTRIES",
    "DEFAULT_MAX_BACKOFF",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_DEAD_HOST_TIME",
    "DEFAULT_MIN_BACKOFF",
    "DEFAULT_PER_DESTINATION",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_PORT",
    "DEFAULT_STOP_GRACE",
    "DEFAULT_TIMEOUT",
    "MIN_POLL_INTERVAL",
    "ORDERED_PAIRS",
    "TLS_MODES",
    "RelaySettings",
    "SettingError",
    "plausible_address",
]

#: How long a message may stay in the queue before it bounces (RFC 5321 4.5.4.1: 4-5 days).
DEFAULT_LIFETIME = 5 * 86400.0
#: The first retry delay.
DEFAULT_MIN_BACKOFF = 300.0
#: The longest retry delay.
DEFAULT_MAX_BACKOFF = 4 * 3600.0
#: Retry delays vary by up to this fraction either way (+-10 %), so that the
#: messages for a destination that comes back do not all arrive at once.
DEFAULT_JITTER = 0.1
#: How long a next-hop host that could not be reached is skipped (doubling on
#: repeated failures up to DEFAULT_MAX_DEAD_HOST_TIME); 0 turns the cache off.
DEFAULT_DEAD_HOST_TIME = 120.0
#: The longest a next-hop host is skipped.
DEFAULT_MAX_DEAD_HOST_TIME = 1800.0
#: When a delay notice goes out (to recipients with ``NOTIFY=DELAY``).
DEFAULT_DELAY_WARNING = 4 * 3600.0
#: Connections at most to one destination (next-hop domain).
DEFAULT_PER_DESTINATION = 5
#: Connections at most to all next hops together.
DEFAULT_MAX_CONNECTIONS = 100
#: Queue entries read into memory and being delivered at most at one time.
DEFAULT_MAX_ACTIVE_ENTRIES = 1000
#: How long a connection with nothing to send is kept open for the next message.
DEFAULT_IDLE_TIMEOUT = 5.0
#: How long the relay waits for a next hop to accept the connection and for each reply.
DEFAULT_TIMEOUT = 300.0
#: How often the relay looks for ``netproto queue`` requests (``DIR/flush``, ``DIR/rescan``).
DEFAULT_POLL_INTERVAL = 5.0
#: How long transactions in flight get to finish when the relay stops.
DEFAULT_STOP_GRACE = 5.0
#: The port of MX next hops (a smarthost names its own).
DEFAULT_PORT = 25
#: The shortest non-zero ``poll_interval`` (each look is a trip to the disk thread).
MIN_POLL_INTERVAL = 0.1
#: Pairs of settings whose first may not exceed the second.
ORDERED_PAIRS = (
    ("min_backoff", "max_backoff"),
    ("dead_host_time", "max_dead_host_time"),
    ("per_destination", "max_connections"),
)
#: Outbound TLS modes: opportunistic STARTTLS, required STARTTLS (``require`` or
#: ``starttls``), implicit TLS, none; each maps to :func:`connect_smtp`'s ``tls``.
TLS_MODES: dict[str, Literal["starttls", "implicit", "opportunistic", "none"]] = {
    "opportunistic": "opportunistic",
    "require": "starttls",
    "starttls": "starttls",
    "implicit": "implicit",
    "none": "none",
}


def plausible_address(address: str) -> bool:
    """Tell whether ``address`` looks like ``local@domain`` (no spaces or control characters)."""
    local, at, domain = address.rpartition("@")
    return bool(local and at and domain) and all(
        c.isprintable() and not c.isspace() for c in address
    )


class SettingError(ValueError):
    """A setting out of range or contradicting another; the message names the settings.

    ``names`` are the settings involved; :meth:`renamed` words the same
    message with other names for them (the daemon's ``[smtp]`` keys).
    """

    def __init__(self, names: tuple[str, ...], explain: Callable[..., str]) -> None:
        self.names = names
        self._explain = explain
        super().__init__(explain(*names))

    def renamed(self, names: Mapping[str, str]) -> str:
        """The message with each setting called by ``names[setting]`` (if given)."""
        return self._explain(*(names.get(name, name) for name in self.names))


@dataclass(frozen=True)
class RelaySettings:
    """How a relay delivers: next hops, TLS, limits, retries and notices (checked on creation)."""

    hostname: str = field(help="the name the relay gives in EHLO and in its notices")
    smarthost: tuple[str, int] | None = field(
        default=None, help="(host, port) every message goes through; None: the MX hosts"
    )
    port: int = field(
        default=DEFAULT_PORT, minimum=1, maximum=65535, help="port of MX next hops"
    )
    tls: str = field(default="opportunistic", help="a key of TLS_MODES")
    verify: bool = field(default=False, help="verify the next hop's certificate and name")
    ca_file: str | None = field(
        default=None, help="CA certificates (PEM) to trust; None: the system's"
    )
    username: str | None = field(default=None, help="AUTH user at the next hop")
    password: str | None = field(default=None, help="that user's password")
    per_destination: int = field(
        default=DEFAULT_PER_DESTINATION, minimum=1, help="connections at most to one destination"
    )
    max_connections: int = field(
        default=DEFAULT_MAX_CONNECTIONS, minimum=1, help="connections at most in all"
    )
    min_backoff: float = field(
        default=DEFAULT_MIN_BACKOFF, minimum=0.0, help="first retry delay, seconds (doubles)"
    )
    max_backoff: float = field(
        default=DEFAULT_MAX_BACKOFF, minimum=0.0, help="longest retry delay, seconds"
    )
    lifetime: float = field(
        default=DEFAULT_LIFETIME, minimum=0.0, help="seconds retried before a bounce"
    )
    jitter: float = field(
        default=DEFAULT_JITTER, minimum=0.0, help="fraction a retry delay varies by (0 to < 1)"
    )
    delay_warning: float = field(
        default=DEFAULT_DELAY_WARNING, minimum=0.0, help="seconds before a delay notice"
    )
    idle_timeout: float = field(
        default=DEFAULT_IDLE_TIMEOUT, minimum=0.0, help="seconds an idle connection is kept"
    )
    timeout: float = field(
        default=DEFAULT_TIMEOUT, minimum=0.0, help="seconds to connect and for each reply"
    )
    poll_interval: float = field(
        default=DEFAULT_POLL_INTERVAL, minimum=0.0,
        help="seconds between looks for netproto queue requests (0: never)",
    )
    stop_grace: float = field(
        default=DEFAULT_STOP_GRACE, minimum=0.0, help="seconds deliveries get to end at stop"
    )
    postmaster: str | None = field(
        default=None, help="where failures of null-sender messages go (None: nobody)"
    )
    dead_host_time: float = field(
        default=DEFAULT_DEAD_HOST_TIME, minimum=0.0,
        help="seconds a host that failed is skipped (doubles; 0: never)",
    )
    max_dead_host_time: float = field(
        default=DEFAULT_MAX_DEAD_HOST_TIME, minimum=0.0, help="longest a host is skipped"
    )
    max_active_entries: int = field(
        default=DEFAULT_MAX_ACTIVE_ENTRIES, minimum=1, help="queue entries in memory at most"
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and math.isnan(value):
                raise SettingError((f.name,), lambda name: f"{name} must be a number, not nan")
        check_bounds(self)
        if self.postmaster is not None and not plausible_address(self.postmaster):
            raise ValueError(
                "postmaster must be an address like postmaster@example.org, "
                f"not {self.postmaster!r}"
            )
        if self.tls not in TLS_MODES:
            raise ValueError(f"tls must be one of {sorted(TLS_MODES)}, not {self.tls!r}")
        for low, high in ORDERED_PAIRS:
            small, large = getattr(self, low), getattr(self, high)
            if small > large:
                raise SettingError((low, high), _exceeds(small, large))
        if not self.jitter < 1.0:
            jitter = self.jitter
            raise SettingError(
                ("jitter",), lambda name: f"{name} must be less than 1, got {jitter!r}"
            )
        if 0.0 < self.poll_interval < MIN_POLL_INTERVAL:
            interval = self.poll_interval
            raise SettingError(
                ("poll_interval",),
                lambda name: f"{name} must be 0 (never) or at least {MIN_POLL_INTERVAL:g}, "
                f"got {interval!r}",
            )


def _exceeds(small: float, large: float) -> Callable[[str, str], str]:
    """The message for a pair of settings in the wrong order, given their names."""
    return lambda low, high: f"{low} ({small:g}) must not exceed {high} ({large:g})"

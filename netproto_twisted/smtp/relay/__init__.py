"""The SMTP relay: a durable queue, delivery to the next hops, retries and DSN reports.

Its parts: :mod:`~netproto_twisted.smtp.relay.queue` (the on-disk spool,
:class:`Spool`, which the server delivers to), :mod:`~netproto_twisted.smtp.relay.service`
(:class:`Relay`, the service that drains it), :mod:`~netproto_twisted.smtp.relay.settings`
(:class:`RelaySettings`, how it delivers), :mod:`~netproto_twisted.smtp.relay.bounce`
(RFC 3464 delivery status notifications) and
:mod:`~netproto_twisted.smtp.relay.queue_cli` (``netproto queue``).  The
modules whose names start with an underscore are private: routing
(``_route``), one transaction (``_send``), the due index (``_index``), what
is reported to whom (``_notices``), the entry and directory formats
(``_queue_entry``, ``_queue_dir``) and the daemon's options (``_tap``).

Nothing here is imported by the rest of :mod:`netproto_twisted.smtp` except
its face and ``tap``: the relay is a client of the SMTP package (its wire
format, client and delivery interfaces), never the reverse.
"""

from __future__ import annotations

from netproto_twisted.smtp.relay.bounce import DSNParts, dsn_parts, spool_notice
from netproto_twisted.smtp.relay.queue import (
    DELIVERED,
    FAILED,
    PENDING,
    EntryNotFound,
    QueueEntry,
    RecipientState,
    Spool,
    SpoolDirectory,
    SpoolSink,
    synchronous_runner,
)
from netproto_twisted.smtp.relay.service import Relay, RouteError
from netproto_twisted.smtp.relay.settings import (
    DEFAULT_DEAD_HOST_TIME,
    DEFAULT_DELAY_WARNING,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_JITTER,
    DEFAULT_LIFETIME,
    DEFAULT_MAX_ACTIVE_ENTRIES,
    DEFAULT_MAX_BACKOFF,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_DEAD_HOST_TIME,
    DEFAULT_MIN_BACKOFF,
    DEFAULT_PER_DESTINATION,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_PORT,
    DEFAULT_STOP_GRACE,
    DEFAULT_TIMEOUT,
    TLS_MODES,
    RelaySettings,
    SettingError,
    plausible_address,
)

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
    "DELIVERED",
    "FAILED",
    "PENDING",
    "TLS_MODES",
    "DSNParts",
    "EntryNotFound",
    "QueueEntry",
    "RecipientState",
    "Relay",
    "RelaySettings",
    "RouteError",
    "SettingError",
    "Spool",
    "SpoolDirectory",
    "SpoolSink",
    "dsn_parts",
    "plausible_address",
    "spool_notice",
    "synchronous_runner",
]

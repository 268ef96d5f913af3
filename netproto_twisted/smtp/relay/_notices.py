"""What the relay reports about an entry's outcomes, to whom, and the sending of those notices.

Failures go to the sender (RFC 3461 ``NOTIFY`` honoured), never to the null
sender; a failure of a message from the null sender (a double bounce) goes
to the postmaster if one is configured, unless the recipient that failed is
the postmaster: a notice is never sent about a failed postmaster copy, so
nothing loops.
"""

from __future__ import annotations

from twisted.logger import Logger

from netproto_twisted.smtp.relay._queue_entry import (
    DELIVERED,
    FAILED,
    PENDING,
    QueueEntry,
    RecipientState,
)
from netproto_twisted.smtp.relay.bounce import spool_notice, wants
from netproto_twisted.smtp.relay.queue import Spool

__all__ = ["Notices"]

_log = Logger(namespace="netproto.smtp.relay")


class Notices:
    """The relay's notices: which outcomes are reported, and spooling the due ones."""

    def __init__(
        self,
        spool: Spool,
        *,
        hostname: str,
        lifetime: float,
        delay_warning: float,
        postmaster: str | None,
    ) -> None:
        self.spool = spool
        self.hostname = hostname
        self.lifetime = lifetime
        self.delay_warning = delay_warning
        self.postmaster = postmaster or None

    def reports_failure(self, entry: QueueEntry, r: RecipientState) -> bool:
        """Tell whether a failure of ``r`` gets a notice: to the sender, or to the postmaster."""
        if entry.mail_from.address:
            return wants(r, "FAILURE")
        if self.postmaster is None or r.status != FAILED:
            return False
        return r.address.lower() != self.postmaster.lower()

    def reports_success(self, entry: QueueEntry, r: RecipientState, dsn_passed: bool) -> bool:
        """Tell whether a delivery of ``r`` gets a "relayed" notice (DSN not passed on)."""
        return bool(entry.mail_from.address) and not dsn_passed and wants(r, "SUCCESS")

    def needs_delay_notice(self, entry: QueueEntry, now: float) -> bool:
        """Tell whether a delay notice for ``entry`` is due at ``now``."""
        if not entry.mail_from.address or self.delay_warning <= 0:
            return False
        if now < entry.received_at + self.delay_warning:
            return False
        return any(not r.delay_notified and wants(r, "DELAY") for r in entry.pending)

    async def send_due(self, entry: QueueEntry, now: float) -> bool:
        """Spool the notices due for ``entry`` and save what was reported; False if one failed."""
        null_sender = not entry.mail_from.address
        if null_sender:  # nothing goes back; failures may go to the postmaster
            for r in entry.recipients:
                if r.status != PENDING and not self.reports_failure(entry, r):
                    r.notified = True
        groups: list[list[RecipientState]] = [
            [r for r in entry.recipients if r.status == FAILED and not r.notified],
            [r for r in entry.recipients if r.status == DELIVERED and not r.notified],
        ]
        if self.needs_delay_notice(entry, now):
            groups.append([r for r in entry.pending if not r.delay_notified and wants(r, "DELAY")])
        for group in groups:
            if not group:
                continue
            try:
                await spool_notice(
                    self.spool,
                    entry,
                    group,
                    reporting_mta=self.hostname,
                    retry_until=entry.received_at + self.lifetime,
                    now=now,
                    postmaster=self.postmaster if null_sender else None,
                )
            except Exception:
                _log.failure("relay: cannot queue a notice for {id}", id=entry.id)
                return False
            for r in group:
                if r.status == PENDING:
                    r.delay_notified = True
                else:
                    r.notified = True
            await self.spool.save(entry)
        return True

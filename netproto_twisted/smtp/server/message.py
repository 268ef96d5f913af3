"""One mail transaction of the SMTP server: sender, recipients, the open sinks, the size.

:class:`Transaction` is what MAIL opens and the end of the data (or RSET,
EHLO, a failure, the connection's loss) closes; :meth:`Transaction.open`
starts the message in every delivery target, :meth:`Transaction.write`
streams its bytes, and an end of data commits every sink (``250`` only once
all are durable).  Nothing here touches a transport or a reactor.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from netproto_twisted.core.ids import uuid7
from netproto_twisted.smtp.interfaces import (
    Envelope,
    IDeliveryTarget,
    IMessageSink,
    SessionInfo,
)
from netproto_twisted.smtp.server.replies import ERR_LOCAL, ERR_TOO_BIG
from netproto_twisted.smtp.wire._params import MailFrom, RcptTo
from netproto_twisted.smtp.wire._syntax import Reply
from netproto_twisted.smtp.wire._trace import protocol_name, received_header

__all__ = ["Transaction"]

_log = Logger(namespace="netproto.smtp.server")


class Transaction:
    """One mail transaction: sender, accepted recipients with their targets, open sinks.

    :ivar failed: the reply that ends the transaction once its data is read
        (too big, a bad line, a sink that failed), or ``None``.
    """

    def __init__(self, mail_from: MailFrom, session_info: SessionInfo) -> None:
        self.mail_from = mail_from
        #: What the recipient policy is told about the session (fixed for the transaction).
        self.session_info = session_info
        self.id = uuid7().hex
        self.received_at = time.time()
        self.recipients: list[tuple[RcptTo, IDeliveryTarget]] = []
        self.sinks: list[IMessageSink] = []
        self.size = 0
        self.failed: Reply | None = None

    def abort(self) -> None:
        """Abort every open sink (nothing half-delivered)."""
        sinks, self.sinks = self.sinks, []
        for sink in sinks:
            try:
                sink.abort()
            except Exception:
                _log.failure("aborting a message sink failed")

    def fail(self, reply: Reply) -> None:
        """Remember the first failure and abort the sinks (the data is still read)."""
        if self.failed is None:
            self.failed = reply
            self.abort()

    def open(
        self,
        *,
        helo: str,
        peer: str,
        authenticated_as: str | None,
        tls: bool,
        esmtp: bool,
        hostname: str,
    ) -> list[Deferred[Any]] | None:
        """Open one sink per target and write the Received header.

        Return the Deferreds of the sinks that asked to wait (input is held
        until they fire), or ``None`` if a target failed (every sink aborted).
        """
        groups: dict[int, tuple[IDeliveryTarget, list[RcptTo]]] = {}
        for rcpt, target in self.recipients:
            groups.setdefault(id(target), (target, []))[1].append(rcpt)
        envelope = Envelope(
            mail_from=self.mail_from,
            recipients=tuple(r for r, _ in self.recipients),
            helo=helo,
            peer=peer,
            authenticated_as=authenticated_as,
            tls=tls,
            received_at=self.received_at,
            id=self.id,
        )
        header = received_header(
            helo=helo,
            peer_ip=peer or None,
            by=hostname,
            protocol=protocol_name(
                esmtp=esmtp,
                tls=tls,
                authenticated=authenticated_as is not None,
                smtputf8=self.mail_from.smtputf8,
            ),
            queue_id=self.id,
            date=datetime.fromtimestamp(self.received_at, timezone.utc),
            recipients=[r.address for r in envelope.recipients],
        )
        waits: list[Deferred[Any]] = []
        try:
            for target, rcpts in groups.values():
                sink = target.open(envelope, rcpts)
                self.sinks.append(sink)
                wait = sink.write(header)
                if wait is not None:
                    waits.append(wait)
        except Exception:
            _log.failure("opening a delivery target failed")
            self.abort()
            return None
        self.size = 0
        return waits

    def write(self, data: bytes, max_size: int) -> list[Deferred[Any]]:
        """Stream message bytes to every sink; return the Deferreds of sinks that asked to wait.

        Past ``max_size`` (or after a failure) the bytes are counted but dropped.
        """
        if self.failed is not None or not data:
            return []
        self.size += len(data)
        if self.size > max_size:
            self.fail(ERR_TOO_BIG)
            return []
        waits: list[Deferred[Any]] = []
        try:
            for sink in self.sinks:
                wait = sink.write(data)
                if wait is not None:
                    waits.append(wait)
        except Exception:
            _log.failure("writing to a delivery target failed")
            self.fail(ERR_LOCAL)
            return []
        return waits

    def accepted_line(self, ids: str) -> str:
        """The log line for a committed message."""
        return (
            f"{self.id}: accepted from=<{self.mail_from.address}> "
            f"rcpts={len(self.recipients)} size={self.size} stored={ids}"
        )

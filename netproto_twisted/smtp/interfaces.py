"""The shared SMTP types: envelopes, message sinks, delivery targets and the recipient policy.

These are the contracts between the server (which receives a message),
the delivery targets (Maildir, the relay queue, a capture target for tests,
user code) and the pluggable sender/recipient policy.

The server groups the accepted recipients of a transaction by the target
:meth:`IRecipientPolicy.route` returned for them (by identity), opens one
:class:`IMessageSink` per target with :meth:`IDeliveryTarget.open`, writes
every chunk of the message to each sink, and at the end of the data
commits *all* sinks.  It says ``250`` only once every ``commit()`` has
fired; if any fails it aborts the others and says ``451 4.3.0``, so
nothing is half delivered.
"""

# ruff: noqa: N805  (zope interface methods have no ``self``)

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from twisted.internet.defer import Deferred
from zope.interface import Interface

from netproto_twisted.smtp.wire._params import MailFrom, RcptTo

__all__ = [
    "Envelope",
    "IDeliveryTarget",
    "IMessageSink",
    "IRecipientPolicy",
    "IRevocableSink",
    "SessionInfo",
]


@dataclass(frozen=True)
class Envelope:
    """The envelope of one message: sender, recipients and where it came from."""

    #: The sender (``address == ""`` is the null sender) with its MAIL parameters.
    mail_from: MailFrom
    #: Every accepted recipient of the transaction with its RCPT parameters.
    recipients: tuple[RcptTo, ...]
    #: The client's EHLO/HELO name.
    helo: str = ""
    #: The client's IP address (``""`` for unix sockets and local submission).
    peer: str = ""
    #: The authenticated identity, or ``None``.
    authenticated_as: str | None = None
    #: Whether the session was protected by TLS.
    tls: bool = False
    #: ``time.time()`` when the transaction started.
    received_at: float = 0.0
    #: A uuid7 hex string: the queue id / session transaction id.
    id: str = ""


@dataclass(frozen=True)
class SessionInfo:
    """What the recipient policy may look at about the client's session."""

    #: The client's IP address (``""`` for unix sockets).
    peer: str
    #: The client's EHLO/HELO name.
    helo: str
    #: The authenticated identity, or ``None``.
    authenticated_as: str | None
    #: Whether the session is protected by TLS.
    tls: bool
    #: Whether the client may relay: authenticated or inside a relay network.
    relay_allowed: bool


class IMessageSink(Interface):
    """One message being received for one group of recipients."""

    def write(data: bytes) -> Deferred[None] | None:
        """Append message bytes in order (CRLF line ends, dot-unstuffed, Received first).

        A sink that cannot keep up returns a Deferred: the server then reads
        no more from the client until it fires (it may still pass on the
        rest of the chunk in hand).  None means: carry on.
        """

    def commit() -> Deferred[str]:
        """Make the message durable; fires with an id for the log only once it is fsync'd."""

    def abort() -> None:
        """Discard everything written so far (idempotent; harmless after a failed commit)."""


class IRevocableSink(IMessageSink):
    """A sink that can take back a message it committed (the transaction failed elsewhere)."""

    def revoke() -> Deferred[None]:
        """Remove the committed message again; fires once it is gone."""


class IDeliveryTarget(Interface):
    """Where a message goes for some recipients (Maildir, relay queue, capture, user code)."""

    def open(envelope: Envelope, recipients: Sequence[RcptTo]) -> IMessageSink:
        """Start receiving one message for ``recipients`` (a subset of ``envelope.recipients``)."""


class IRecipientPolicy(Interface):
    """The pluggable sender/recipient policy and routing used by the server."""

    def check_sender(session: SessionInfo, mail_from: MailFrom) -> Deferred[None]:
        """Accept the sender, or errback with ``CommandError(Reply)`` to refuse it."""

    def route(
        session: SessionInfo, mail_from: MailFrom, rcpt: RcptTo
    ) -> Deferred[IDeliveryTarget]:
        """Fire with the target taking ``rcpt``, or errback with ``CommandError(Reply)``.

        Typical refusals: ``550 5.1.1`` for an unknown local user and
        ``550 5.7.1`` (relay denied) for a foreign domain the session may not
        relay to.
        """

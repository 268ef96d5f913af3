"""What the POP3 server needs from a store: maildrops opened per login, locked for the session.

A :class:`IMaildropStore` opens a user's maildrop (:class:`IMaildrop`): it
takes the session lock, and lists the messages as they are at that moment
(the snapshot the session works on: messages delivered later are shown at
the next login).  :class:`~netproto_twisted.pop3.maildrop.MaildirMaildrops`
serves the Maildir++ tree SMTP delivers into; tests and applications may
provide their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

__all__ = ["DropMessage", "IMaildrop", "IMaildropStore"]


@dataclass(frozen=True)
class DropMessage:
    """One message of a maildrop as the session shows it.

    :ivar size: octets as sent by ``RETR`` (CRLF line endings, before dot-stuffing).
    :ivar uidl: the unique-id listing (RFC 1939: 1 to 70 characters 0x21-0x7E),
        stable across sessions.
    :ivar key: the store's handle of the message (opaque to the server).
    """

    size: int
    uidl: str
    key: object


class IMaildrop(Interface):
    """One user's locked maildrop, as it was at login (numbered from 1 in :attr:`messages`)."""

    messages = Attribute("Sequence[DropMessage]: the snapshot taken at login, in order")

    def open_message(message: DropMessage) -> Deferred[BinaryIO]:  # noqa: N805
        """Fire with the message opened for binary reading (the caller closes it)."""

    def delete(messages: Sequence[DropMessage]) -> Deferred[int]:  # noqa: N805
        """Remove the messages (the UPDATE state); fire with how many were removed."""

    def release() -> Deferred[None]:
        """Release the session lock (after :meth:`delete`, or when the session ends)."""


class IMaildropStore(Interface):
    """Opens maildrops for logged-in users."""

    def open(user: str) -> Deferred[IMaildrop]:  # noqa: N805
        """Lock ``user``'s maildrop and take its snapshot.

        Fails with :class:`~netproto_twisted.pop3.errors.MaildropInUse` when
        another session holds it, with another exception when the store fails.
        """

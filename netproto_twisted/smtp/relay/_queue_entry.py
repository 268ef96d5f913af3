"""Queue entries: a spooled message's envelope and the delivery state of each recipient.

:class:`QueueEntry` is what an ``.env`` file holds (JSON, :meth:`QueueEntry.to_json`);
:class:`RecipientState` is one recipient's part of it.  The public home of
these names is :mod:`netproto_twisted.smtp.relay.queue`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from netproto_twisted.core.errors import NetprotoError
from netproto_twisted.smtp.wire._params import MailFrom, RcptTo

__all__ = [
    "DELIVERED",
    "FAILED",
    "PENDING",
    "EntryNotFound",
    "QueueEntry",
    "RecipientState",
]

#: Recipient state: not delivered yet (will be tried at ``next_try``).
PENDING = "pending"
#: Recipient state: the next hop accepted the message.
DELIVERED = "delivered"
#: Recipient state: permanently refused, or the lifetime ran out.
FAILED = "failed"

_FORMAT = 1


class EntryNotFound(NetprotoError):
    """No queue entry has this id (never had, or it was delivered or deleted)."""


@dataclass
class RecipientState:
    """One recipient of a queue entry and how its delivery stands."""

    address: str
    params: dict[str, str | None] = field(default_factory=dict)
    status: str = PENDING
    attempts: int = 0
    next_try: float = 0.0
    #: The last reply for this recipient: ``(code, enhanced status or None, text)``.
    reply: tuple[int, str | None, str] | None = None
    #: The host that gave the last reply (``dns; mx.example.org`` style host name).
    remote: str = ""
    #: Whether the final outcome needs no (further) DSN: reported, or not asked for.
    notified: bool = False
    #: Whether a delay DSN was sent.
    delay_notified: bool = False

    @property
    def rcpt(self) -> RcptTo:
        """The recipient as a :class:`~netproto_twisted.smtp.RcptTo`."""
        return RcptTo(self.address, dict(self.params))

    @property
    def domain(self) -> str:
        """The domain part of the address, lower case (``""`` if there is none)."""
        return self.address.rpartition("@")[2].lower() if "@" in self.address else ""


@dataclass
class QueueEntry:
    """One spooled message: its envelope and the state of each recipient."""

    id: str
    mail_from: MailFrom
    recipients: list[RecipientState]
    helo: str = ""
    peer: str = ""
    authenticated_as: str | None = None
    tls: bool = False
    received_at: float = 0.0
    size: int = 0
    #: Whether the message has a byte above 127 (None: not known, spooled by an older version).
    eight_bit: bool | None = None
    held: bool = False

    @property
    def pending(self) -> list[RecipientState]:
        """The recipients still to be delivered."""
        return [r for r in self.recipients if r.status == PENDING]

    @property
    def finished(self) -> bool:
        """Whether nothing remains to be done: every recipient final and reported."""
        return all(r.status != PENDING and r.notified for r in self.recipients)

    def to_json(self) -> bytes:
        """Serialise the entry (the ``.env`` file's content)."""
        data: dict[str, Any] = {
            "format": _FORMAT,
            "id": self.id,
            "mail_from": {"address": self.mail_from.address, "params": self.mail_from.params},
            "helo": self.helo,
            "peer": self.peer,
            "authenticated_as": self.authenticated_as,
            "tls": self.tls,
            "received_at": self.received_at,
            "size": self.size,
            "eight_bit": self.eight_bit,
            "recipients": [
                {
                    "address": r.address,
                    "params": r.params,
                    "status": r.status,
                    "attempts": r.attempts,
                    "next_try": r.next_try,
                    "reply": list(r.reply) if r.reply is not None else None,
                    "remote": r.remote,
                    "notified": r.notified,
                    "delay_notified": r.delay_notified,
                }
                for r in self.recipients
            ],
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, *, held: bool = False) -> QueueEntry:
        """Parse an ``.env`` file's content; raise ValueError if it is not one."""
        try:
            obj = json.loads(data.decode("utf-8"))
            if obj.get("format") != _FORMAT:
                raise ValueError(f"unknown spool format {obj.get('format')!r}")
            recipients = [
                RecipientState(
                    address=r["address"],
                    params=dict(r["params"]),
                    status=r["status"],
                    attempts=int(r["attempts"]),
                    next_try=float(r["next_try"]),
                    reply=(
                        (int(r["reply"][0]), r["reply"][1], str(r["reply"][2]))
                        if r["reply"] is not None
                        else None
                    ),
                    remote=r.get("remote", ""),
                    notified=bool(r["notified"]),
                    delay_notified=bool(r.get("delay_notified", False)),
                )
                for r in obj["recipients"]
            ]
            return cls(
                id=str(obj["id"]),
                mail_from=MailFrom(obj["mail_from"]["address"], dict(obj["mail_from"]["params"])),
                recipients=recipients,
                helo=obj.get("helo", ""),
                peer=obj.get("peer", ""),
                authenticated_as=obj.get("authenticated_as"),
                tls=bool(obj.get("tls", False)),
                received_at=float(obj.get("received_at", 0.0)),
                size=int(obj.get("size", 0)),
                eight_bit=_optional_bool(obj.get("eight_bit")),
                held=held,
            )
        except (KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
            raise ValueError(f"not a spool entry: {e}") from e


def _optional_bool(value: object) -> bool | None:
    return None if value is None else bool(value)

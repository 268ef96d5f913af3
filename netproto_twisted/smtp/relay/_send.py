"""One relay transaction: an entry's recipients for one destination over an open connection.

:func:`send_job` sends a :class:`Job` through a :class:`Connection` and
turns whatever happens (replies, refusals, a lost connection) into one
:data:`~netproto_twisted.smtp.relay._route.Outcome` per recipient; the
relay records them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from netproto_twisted.core.errors import LocalProtocolError
from netproto_twisted.smtp.client.body import file_has_8bit
from netproto_twisted.smtp.client.transaction import SEVENBIT
from netproto_twisted.smtp.errors import (
    SMTPRecipientsRefused,
    SMTPResponseError,
    SMTPServerDisconnected,
)
from netproto_twisted.smtp.relay._queue_entry import QueueEntry, RecipientState
from netproto_twisted.smtp.relay._route import Outcome
from netproto_twisted.smtp.relay.queue import Spool
from netproto_twisted.smtp.wire._codes import (
    DSN,
    EIGHTBITMIME,
    MAILBOX_NAME_INVALID,
    SMTPUTF8,
    TRANSACTION_FAILED,
)

__all__ = ["Connection", "Job", "needs_smtputf8", "send_job", "split_enhanced"]

#: RFC 6531 3.2: the next hop lacks SMTPUTF8 and the message needs it.
NO_SMTPUTF8: Outcome = (
    MAILBOX_NAME_INVALID,
    "5.6.7",
    "the next hop does not support SMTPUTF8, which this message needs (RFC 6531)",
)
#: RFC 6152 3: 8-bit content for a next hop without 8BITMIME, and no conversion.
NO_8BITMIME: Outcome = (
    TRANSACTION_FAILED,
    "5.6.3",
    "the next hop does not support 8BITMIME and the message has 8-bit content (RFC 6152)",
)


def split_enhanced(code: int, text: str) -> Outcome:
    """Split ``"5.1.1 no such user"`` into ``(code, "5.1.1", "no such user")`` if it has one."""
    head, _, rest = text.partition(" ")
    parts = head.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts) and parts[0] == str(code // 100):
        return code, head, rest
    return code, None, text


def needs_smtputf8(entry: QueueEntry, recipients: list[RecipientState]) -> bool:
    """Tell whether sending ``entry`` to ``recipients`` needs SMTPUTF8 at the next hop.

    It does when the message came with ``SMTPUTF8`` (its header may be
    UTF-8, RFC 6532) or when the sender or a recipient is not ASCII.
    """
    return (
        entry.mail_from.smtputf8
        or not entry.mail_from.address.isascii()
        or any(not r.address.isascii() for r in recipients)
    )


@dataclass
class Job:
    """An entry's recipients for one destination: one transaction."""

    entry: QueueEntry
    recipients: list[RecipientState]
    retried: bool = False
    #: Whether the next hop took the DSN parameters (it reports success itself).
    dsn_passed: bool = False


@dataclass(eq=False)
class Connection:
    """An open client connection to one next-hop host."""

    client: Any
    host: str
    port: int = 25
    uses: int = 0


async def send_job(
    spool: Spool, conn: Connection, job: Job
) -> tuple[dict[str, Outcome] | None, bool]:
    """Send one job; return the outcome per recipient (None: skipped) and if ``conn`` broke.

    ``job.dsn_passed`` tells afterwards whether the next hop took the DSN
    parameters.  A message that needs SMTPUTF8 fails with ``553 5.6.7`` at
    a next hop without it (RFC 6531 3.2; no downgrade).  ``BODY`` follows
    the content (recorded while spooling): ``8BITMIME`` for 8-bit content,
    which fails with ``554 5.6.3`` at a next hop without 8BITMIME (RFC 6152
    3; no conversion), else ``7BIT`` (dropped by the client for a next hop
    without 8BITMIME), whatever the sender declared: 7-bit content sent as
    ``BODY=8BITMIME`` goes anywhere, which is the one trivial conversion.
    """
    entry = job.entry
    message = await spool.open_message(entry.id)
    if message is None:
        return None, False  # held or deleted meanwhile
    client = conn.client
    extensions = client.extensions
    every = [r.address for r in job.recipients]
    if needs_smtputf8(entry, job.recipients) and not extensions.has(SMTPUTF8):
        message.close()
        return dict.fromkeys(every, NO_SMTPUTF8), False
    dsn = bool(extensions.has(DSN))
    job.dsn_passed = dsn
    params: dict[str, str | None] = {}
    for key in ("BODY", "SMTPUTF8") + (("RET", "ENVID") if dsn else ()):
        if key in entry.mail_from.params:
            params[key] = entry.mail_from.params[key]
    rcpts: list[str | tuple[str, dict[str, str | None]]] = []
    for r in job.recipients:
        rp = {k: v for k, v in r.params.items() if k in ("NOTIFY", "ORCPT")} if dsn else {}
        rcpts.append((r.address, rp) if rp else r.address)
    if (params.get("BODY") or SEVENBIT).upper() in (SEVENBIT, EIGHTBITMIME):
        eight_bit = entry.eight_bit
        if eight_bit is None:  # spooled by a version that did not record it
            try:
                eight_bit = await spool.run(file_has_8bit, message)
            except BaseException:
                message.close()
                raise
        if eight_bit and not extensions.has(EIGHTBITMIME):
            message.close()
            return dict.fromkeys(every, NO_8BITMIME), False
        # The content as it is, labelled (so the client need not scan it again).
        params["BODY"] = EIGHTBITMIME if eight_bit else SEVENBIT
    broken = False
    try:
        result = await client.send_message(
            entry.mail_from.address, rcpts, message, mail_params=params
        )
        outcomes: dict[str, Outcome] = {}
        for address, reply in result.accepted.items():
            outcomes[address] = (reply.code, reply.enhanced, reply.text)
        data = result.data_reply
        if data is not None:
            for address in outcomes:
                outcomes[address] = (data.code, data.enhanced, data.text)
        for address, reply in result.refused.items():
            outcomes[address] = (reply.code, reply.enhanced, reply.text)
    except SMTPRecipientsRefused as e:
        outcomes = {a: split_enhanced(c, t) for a, (c, t) in e.recipients.items()}
    except SMTPServerDisconnected as e:
        broken = True
        outcomes = dict.fromkeys(every, (451, "4.4.2", f"connection lost: {e.text}"))
    except SMTPResponseError as e:
        broken = e.code == 421
        outcomes = dict.fromkeys(every, split_enhanced(e.code, e.text))
    except LocalProtocolError as e:  # the client refused an argument: nothing was sent
        outcomes = dict.fromkeys(every, (553, "5.1.3", f"cannot be sent: {e}"))
    except Exception as e:
        broken = True
        outcomes = dict.fromkeys(every, (451, "4.4.2", f"delivery failed: {e}"))
    finally:
        message.close()  # a read-only file: closing does not wait for the disk
    for address in every:
        outcomes.setdefault(address, (451, "4.4.2", "no reply for this recipient"))
    return outcomes, broken

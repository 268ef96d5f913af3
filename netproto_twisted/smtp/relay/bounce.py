"""RFC 3464 delivery status notifications: the bounces, delay and success notices of the relay.

:func:`dsn_parts` builds a ``multipart/report; report-type=delivery-status``
message around the original: the head (headers, a human-readable part, the
``message/delivery-status`` part and the header of the third part) and the
tail (the closing boundary).  The caller streams the original message (or
only its header, see :func:`returned_content`) between the two, so a large
message is never held in memory.  Which recipients a notice covers and what
it says about each (``failed``, ``delayed``, ``relayed``, ``delivered``)
follows their :class:`~netproto_twisted.smtp.relay.queue.RecipientState`.
:func:`spool_notice` puts a notice into the spool, addressed to the
original sender from the null sender.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Sequence
from dataclasses import dataclass

from twisted.logger import Logger

from netproto_twisted.core.ids import message_id, uuid7
from netproto_twisted.smtp.interfaces import Envelope, IMessageSink
from netproto_twisted.smtp.relay.queue import DELIVERED, FAILED, QueueEntry, RecipientState, Spool
from netproto_twisted.smtp.wire._address import xtext_encode
from netproto_twisted.smtp.wire._params import MailFrom, RcptTo

__all__ = [
    "ACTION_DELAYED",
    "ACTION_DELIVERED",
    "ACTION_FAILED",
    "ACTION_RELAYED",
    "RETURN_FULL",
    "RETURN_HEADERS",
    "RETURN_NONE",
    "DSNParts",
    "dsn_parts",
    "returned_content",
    "spool_notice",
    "wants",
]

ACTION_FAILED = "failed"
ACTION_DELAYED = "delayed"
ACTION_DELIVERED = "delivered"
ACTION_RELAYED = "relayed"

RETURN_FULL = "full"
RETURN_HEADERS = "headers"
RETURN_NONE = "none"

_CRLF = "\r\n"
_CHUNK = 64 * 1024
_MAX_RETURNED_HEADER = 1024 * 1024

_log = Logger(namespace="netproto.smtp.relay")


def wants(recipient: RecipientState, what: str) -> bool:
    """Tell whether a recipient's NOTIFY asks for ``what`` (SUCCESS, FAILURE or DELAY).

    Without NOTIFY, failures are reported and the rest is not (RFC 3461 4.1).
    """
    notify = recipient.rcpt.notify
    if notify is None:
        return what == "FAILURE"
    return what in notify


def returned_content(entry: QueueEntry, action: str) -> str:
    """Decide how much of the original a notice carries: RETURN_FULL / _HEADERS / _NONE.

    Failures return the whole message unless ``RET=HDRS`` (or the message is
    ``BINARYMIME``, which cannot travel inside ``message/rfc822``); delay and
    success notices return the header only.
    """
    if action != ACTION_FAILED:
        return RETURN_HEADERS
    if entry.mail_from.ret == "HDRS" or entry.mail_from.body == "BINARYMIME":
        return RETURN_HEADERS
    return RETURN_FULL


@dataclass(frozen=True)
class DSNParts:
    """A notice in pieces: ``head`` + the returned original + ``tail``; its envelope params."""

    head: bytes
    tail: bytes
    returned: str
    mail_params: dict[str, str | None]


def _action(recipient: RecipientState, remote_dsn: bool = False) -> str:
    if recipient.status == FAILED:
        return ACTION_FAILED
    if recipient.status == DELIVERED:
        return ACTION_RELAYED
    return ACTION_DELAYED


def _status(recipient: RecipientState, action: str) -> str:
    if recipient.reply is not None and recipient.reply[1]:
        status = recipient.reply[1]
        if action == ACTION_FAILED and status.startswith("4"):
            return "4.4.7" if recipient.reply[0] // 100 == 4 else "5" + status[1:]
        return status
    if action == ACTION_FAILED:
        if recipient.reply is not None and recipient.reply[0] // 100 == 5:
            return "5.0.0"
        return "4.4.7"
    if action == ACTION_DELAYED:
        return "4.0.0"
    return "2.0.0"


def _address_field(address: str) -> str:
    if address.isascii():
        return f"rfc822; {address}"
    return f"utf-8; {address}"


def _date(when: float) -> str:
    return email.utils.formatdate(when, localtime=False)


_SUBJECTS = {
    ACTION_FAILED: "Undelivered Mail Returned to Sender",
    ACTION_DELAYED: "Delayed Mail (still being retried)",
    ACTION_RELAYED: "Successful Mail Delivery Report",
}

_EXPLANATIONS = {
    ACTION_FAILED: "could not be delivered to one or more recipients. It is attached below.",
    ACTION_DELAYED: "has not yet been delivered to one or more recipients; "
    "delivery will be retried, you do not need to resend it.",
    ACTION_RELAYED: "was delivered to the next mail system for the recipients below.",
}

_POSTMASTER_SUBJECT = "Postmaster Copy: Undelivered Mail from the Null Sender"
_POSTMASTER_EXPLANATION = (
    "A message from the null sender (queue id {id}; most likely a delivery "
    "notice itself) could not be delivered. Nothing goes back to a null "
    "sender, so this copy comes to the postmaster. Its header is attached below."
)


def dsn_parts(
    entry: QueueEntry,
    recipients: Sequence[RecipientState],
    *,
    reporting_mta: str,
    retry_until: float | None = None,
    now: float | None = None,
    postmaster: str | None = None,
) -> DSNParts:
    """Build the notice about ``recipients`` of ``entry`` (one action kind per notice).

    The kind is taken from the first recipient (failed, delayed or relayed);
    ``retry_until`` is the end of the entry's lifetime (``Will-Retry-Until``
    of delay notices).  The notice goes to ``entry.mail_from.address`` from
    the null sender; the caller never sends one for a null sender.  With
    ``postmaster``, it is the postmaster's copy of a failure instead (a
    double bounce: ``entry`` is from the null sender), returning the
    original's header only.
    """
    if not recipients:
        raise ValueError("a delivery status notification needs recipients")
    if postmaster is None and not entry.mail_from.address:
        raise ValueError("never notify the null sender")
    when = time.time() if now is None else now
    kind = _action(recipients[0])
    if postmaster is not None and kind != ACTION_FAILED:
        raise ValueError("the postmaster gets copies of failures only")
    to = entry.mail_from.address if postmaster is None else postmaster
    returned = returned_content(entry, kind) if postmaster is None else RETURN_HEADERS
    boundary = f"{uuid7().hex}/{reporting_mta}"
    utf8 = (
        entry.mail_from.smtputf8
        or not to.isascii()
        or not all(r.address.isascii() for r in recipients)
    )
    lines = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{to}>",
        f"Subject: {_SUBJECTS[kind] if postmaster is None else _POSTMASTER_SUBJECT}",
        f"Date: {_date(when)}",
        f"Message-ID: {message_id(reporting_mta)}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
        "",
        "This is a MIME-encapsulated delivery status notification.",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        f"This is the mail system at {reporting_mta}.",
        "",
        (
            f"Your message (queue id {entry.id}) {_EXPLANATIONS[kind]}"
            if postmaster is None
            else _POSTMASTER_EXPLANATION.format(id=entry.id)
        ),
        "",
    ]
    for r in recipients:
        detail = f"{r.reply[0]} {r.reply[2]}" if r.reply is not None else "no reply"
        via = f" (from {r.remote})" if r.remote else ""
        lines.append(f"<{r.address}>: {detail}{via}")
    lines += [
        "",
        f"--{boundary}",
        "Content-Type: message/" + ("global-delivery-status" if utf8 else "delivery-status"),
        "",
        f"Reporting-MTA: dns; {reporting_mta}",
    ]
    if entry.mail_from.envid is not None:
        lines.append(f"Original-Envelope-Id: {xtext_encode(entry.mail_from.envid)}")
    if entry.received_at:
        lines.append(f"Arrival-Date: {_date(entry.received_at)}")
    for r in recipients:
        action = _action(r)
        lines.append("")
        orcpt = r.rcpt.orcpt
        if orcpt is not None:
            lines.append(f"Original-Recipient: {orcpt[0]}; {orcpt[1]}")
        lines.append(f"Final-Recipient: {_address_field(r.address)}")
        lines.append(f"Action: {action}")
        lines.append(f"Status: {_status(r, action)}")
        if r.remote:
            lines.append(f"Remote-MTA: dns; {r.remote}")
        if r.reply is not None:
            text = " ".join(r.reply[2].split())
            lines.append(f"Diagnostic-Code: smtp; {r.reply[0]} {text}")
        if r.attempts:
            lines.append(f"Last-Attempt-Date: {_date(when)}")
        if action == ACTION_DELAYED and retry_until is not None:
            lines.append(f"Will-Retry-Until: {_date(retry_until)}")
    lines += ["", f"--{boundary}"]
    if returned == RETURN_FULL:
        lines.append("Content-Type: message/" + ("global" if utf8 else "rfc822"))
        if entry.mail_from.body == "8BITMIME" or utf8:
            lines.append("Content-Transfer-Encoding: 8bit")
    else:
        lines.append(
            "Content-Type: " + ("message/global-headers" if utf8 else "text/rfc822-headers")
        )
    lines += ["", ""]
    head = _CRLF.join(lines).encode("utf-8")
    tail = f"{_CRLF}--{boundary}--{_CRLF}".encode()
    params: dict[str, str | None] = {}
    if entry.mail_from.body in ("8BITMIME", "BINARYMIME") or utf8:
        params["BODY"] = "8BITMIME"
    if utf8:
        params["SMTPUTF8"] = None
    return DSNParts(head=head, tail=tail, returned=returned, mail_params=params)


async def spool_notice(
    spool: Spool,
    entry: QueueEntry,
    group: Sequence[RecipientState],
    *,
    reporting_mta: str,
    retry_until: float | None,
    now: float,
    postmaster: str | None = None,
) -> str:
    """Spool one notice about ``group`` to the entry's sender, from the null sender.

    With ``postmaster``, the notice is the postmaster's copy of a failure of
    an entry from the null sender (see :func:`dsn_parts`) and goes there.
    The original (or its header) is streamed from the spool in 64 KiB pieces
    read in the spool's thread pool.  Fires with the notice's queue id once
    it is durable.
    """
    parts = dsn_parts(
        entry,
        group,
        reporting_mta=reporting_mta,
        retry_until=retry_until,
        now=now,
        postmaster=postmaster,
    )
    to = entry.mail_from.address if postmaster is None else postmaster
    sender = RcptTo(to, {})
    envelope = Envelope(
        mail_from=MailFrom("", parts.mail_params),
        recipients=(sender,),
        helo=reporting_mta,
        received_at=now,
    )
    sink = spool.open(envelope, [sender])
    try:
        sink.write(parts.head)
        await _copy_original(spool, entry, sink, parts.returned)
        sink.write(parts.tail)
    except BaseException:
        sink.abort()
        raise
    notice_id = await sink.commit()
    kind = {FAILED: "bounce", DELIVERED: "success notice"}.get(group[0].status, "delay notice")
    if postmaster is not None:
        kind = "postmaster copy of a double bounce"
    _log.info(
        "relay: {kind} {notice} for {id} to <{sender}>",
        kind=kind,
        notice=notice_id,
        id=entry.id,
        sender=to,
    )
    return notice_id


async def _copy_original(
    spool: Spool, entry: QueueEntry, sink: IMessageSink, returned: str
) -> None:
    """Write the original (RETURN_FULL) or its header (RETURN_HEADERS) into ``sink``."""
    if returned not in (RETURN_FULL, RETURN_HEADERS):
        return
    try:
        f = await spool.run(open, spool.directory.message_path(entry.id), "rb")
    except FileNotFoundError:
        return
    try:
        seen = b""
        while True:
            chunk: bytes = await spool.run(f.read, _CHUNK)
            if not chunk:
                break
            if returned == RETURN_FULL:
                sink.write(chunk)
                continue
            seen += chunk
            end = seen.find(b"\r\n\r\n")
            if end >= 0:
                sink.write(seen[: end + 2])
                return
            if len(seen) >= _MAX_RETURNED_HEADER:
                cut = seen.rfind(b"\r\n", 0, _MAX_RETURNED_HEADER)
                sink.write(seen[: cut + 2] if cut >= 0 else b"")
                return
        if returned == RETURN_HEADERS and seen:
            sink.write(seen if seen.endswith(b"\r\n") else seen + b"\r\n")
    finally:
        f.close()

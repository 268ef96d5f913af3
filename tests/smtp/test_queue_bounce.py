"""Tests for RFC 3464 notices (netproto_twisted.smtp.relay.bounce)."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import email
import email.policy

from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.smtp import MailFrom
from netproto_twisted.smtp.relay.bounce import (
    RETURN_FULL,
    RETURN_HEADERS,
    dsn_parts,
    returned_content,
    wants,
)
from netproto_twisted.smtp.relay.queue import (
    DELIVERED,
    FAILED,
    PENDING,
    QueueEntry,
    RecipientState,
)

ORIGINAL = b"Subject: original\r\nFrom: a@example.org\r\n\r\nbody\r\n"


def entry(
    *recipients: RecipientState, sender: str = "a@example.org", **params: str | None
) -> QueueEntry:
    return QueueEntry(
        id="0190abcd",
        mail_from=MailFrom(sender, dict(params)),
        recipients=list(recipients),
        received_at=1_700_000_000.0,
    )


def parse(
    parts_entry: QueueEntry, recipients: list[RecipientState], original: bytes = ORIGINAL
) -> email.message.EmailMessage:
    parts = dsn_parts(
        parts_entry, recipients, reporting_mta="relay.example.net", now=1_700_000_100.0
    )
    returned = (
        original if parts.returned == RETURN_FULL else original.split(b"\r\n\r\n")[0] + b"\r\n"
    )
    msg = email.message_from_bytes(parts.head + returned + parts.tail, policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def status_text(msg: email.message.EmailMessage) -> str:
    for part in msg.walk():
        if part.get_content_type().endswith("delivery-status"):
            payload = part.get_payload()
            return (
                "\n".join(str(p) for p in payload) if isinstance(payload, list) else str(payload)
            )
    raise AssertionError("no status part")


class WantsTests(SynchronousTestCase):
    def test_defaults_and_explicit(self) -> None:
        plain = RecipientState("b@x.example")
        self.assertTrue(wants(plain, "FAILURE"))
        self.assertFalse(wants(plain, "SUCCESS"))
        self.assertFalse(wants(plain, "DELAY"))
        never = RecipientState("b@x.example", {"NOTIFY": "NEVER"})
        self.assertFalse(wants(never, "FAILURE"))
        both = RecipientState("b@x.example", {"NOTIFY": "SUCCESS,DELAY"})
        self.assertTrue(wants(both, "DELAY"))
        self.assertFalse(wants(both, "FAILURE"))


class ReturnedContentTests(SynchronousTestCase):
    def test_choices(self) -> None:
        self.assertEqual(returned_content(entry(), "failed"), RETURN_FULL)
        self.assertEqual(returned_content(entry(RET="HDRS"), "failed"), RETURN_HEADERS)
        self.assertEqual(returned_content(entry(BODY="BINARYMIME"), "failed"), RETURN_HEADERS)
        self.assertEqual(returned_content(entry(RET="FULL"), "delayed"), RETURN_HEADERS)
        self.assertEqual(returned_content(entry(RET="FULL"), "relayed"), RETURN_HEADERS)


class DSNTests(SynchronousTestCase):
    def test_failure_report_structure(self) -> None:
        r = RecipientState(
            "b@x.example",
            status=FAILED,
            reply=(550, "5.1.1", "no such user"),
            attempts=1,
            remote="mx.x.example",
        )
        msg = parse(entry(r, ENVID="id+20x"), [r])
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        self.assertEqual(msg["Auto-Submitted"], "auto-replied")
        kinds = [p.get_content_type() for p in msg.iter_parts()]
        self.assertEqual(kinds, ["text/plain", "message/delivery-status", "message/rfc822"])
        text = status_text(msg)
        for line in (
            "Reporting-MTA: dns; relay.example.net",
            "Original-Envelope-Id: id+2B20x",  # xtext-encoded
            "Final-Recipient: rfc822; b@x.example",
            "Action: failed",
            "Status: 5.1.1",
            "Remote-MTA: dns; mx.x.example",
            "Diagnostic-Code: smtp; 550 no such user",
            "Arrival-Date:",
            "Last-Attempt-Date:",
        ):
            self.assertIn(line, text)
        self.assertIn(b"body", msg.as_bytes())

    def test_status_codes(self) -> None:
        cases = [
            (FAILED, (451, "4.2.2", "mailbox full"), "4.4.7"),  # expired after 4xx
            (FAILED, (451, None, "later"), "4.4.7"),
            (FAILED, (550, None, "no"), "5.0.0"),
            (FAILED, None, "4.4.7"),
            (PENDING, (451, "4.2.2", "full"), "4.2.2"),
            (PENDING, None, "4.0.0"),
            (DELIVERED, (250, None, "ok"), "2.0.0"),
        ]
        for status, reply, expected in cases:
            r = RecipientState("b@x.example", status=status, reply=reply)
            self.assertIn(
                f"Status: {expected}", status_text(parse(entry(r), [r])), (status, reply)
            )

    def test_delay_notice(self) -> None:
        r = RecipientState(
            "b@x.example", {"NOTIFY": "DELAY"}, reply=(451, "4.3.0", "busy"), attempts=2
        )
        parts = dsn_parts(
            entry(r), [r], reporting_mta="relay.example.net", retry_until=1_700_432_000.0
        )
        self.assertEqual(parts.returned, RETURN_HEADERS)
        self.assertIn(b"Action: delayed", parts.head)
        self.assertIn(b"Will-Retry-Until:", parts.head)
        self.assertIn(b"Content-Type: text/rfc822-headers", parts.head)
        self.assertIn(b"Delayed Mail", parts.head)

    def test_orcpt_and_utf8(self) -> None:
        r = RecipientState(
            "jörg@x.example",
            {"ORCPT": "utf-8;jörg@y.example"},
            status=FAILED,
            reply=(550, "5.1.1", "no"),
        )
        parts = dsn_parts(entry(r, SMTPUTF8=None), [r], reporting_mta="relay.example.net")
        self.assertIn(b"Content-Type: message/global-delivery-status", parts.head)
        self.assertIn("Final-Recipient: utf-8; jörg@x.example".encode(), parts.head)
        self.assertIn("Original-Recipient: utf-8; jörg@y.example".encode(), parts.head)
        self.assertIn(b"Content-Type: message/global", parts.head)
        self.assertEqual(parts.mail_params, {"BODY": "8BITMIME", "SMTPUTF8": None})

    def test_8bit_original_keeps_8bitmime(self) -> None:
        r = RecipientState("b@x.example", status=FAILED, reply=(550, None, "no"))
        parts = dsn_parts(entry(r, BODY="8BITMIME"), [r], reporting_mta="relay.example.net")
        self.assertIn(b"Content-Transfer-Encoding: 8bit", parts.head)
        self.assertEqual(parts.mail_params, {"BODY": "8BITMIME"})

    def test_refusals(self) -> None:
        r = RecipientState("b@x.example", status=FAILED)
        self.assertRaises(ValueError, dsn_parts, entry(r), [], reporting_mta="m")
        self.assertRaises(ValueError, dsn_parts, entry(r, sender=""), [r], reporting_mta="m")

    def test_crlf_everywhere(self) -> None:
        r = RecipientState("b@x.example", status=FAILED, reply=(550, None, "no"))
        parts = dsn_parts(entry(r), [r], reporting_mta="relay.example.net")
        for piece in (parts.head, parts.tail):
            self.assertNotIn(b"\n", piece.replace(b"\r\n", b""))

"""Double bounces: a failure of a message from the null sender goes to the postmaster, once."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from twisted.logger import capturedLogs, formatEvent

from netproto_twisted.smtp import MailFrom
from netproto_twisted.smtp.client import SendResult
from netproto_twisted.smtp.errors import SMTPRecipientsRefused
from netproto_twisted.smtp.relay import RelaySettings
from netproto_twisted.smtp.relay.bounce import dsn_parts
from netproto_twisted.smtp.relay.queue import DELIVERED, FAILED, QueueEntry, RecipientState
from tests.smtp.test_relay import MESSAGE, RelayTestsBase

POSTMASTER = "postmaster@relay.example.net"


def refuse_all(host: str, sender: str, rcpts: list[str]) -> SendResult:
    raise SMTPRecipientsRefused(dict.fromkeys(rcpts, (550, "5.1.1 no such user")))


class PostmasterTests(RelayTestsBase):
    def test_failed_bounce_goes_to_the_postmaster(self) -> None:
        self.net.answer = refuse_all
        self.make_relay(postmaster=POSTMASTER)
        self.net.down.add("relay.example.net")  # the postmaster copy stays in the spool
        self.store("b@remote.example", sender="", data=b"Subject: bounce\r\n\r\nSECRET\r\n")
        [(entry, msg)] = self.notices()
        self.assertEqual([r.address for r in entry.recipients], [POSTMASTER])
        self.assertEqual(entry.mail_from.address, "")
        self.assertIn(POSTMASTER, msg["To"])
        self.assertIn("Postmaster Copy", msg["Subject"])
        status = "\n".join(self.status_fields(msg))
        self.assertIn("Final-Recipient: rfc822; b@remote.example", status)
        self.assertIn("Status: 5.1.1", status)
        raw = msg.as_bytes()
        self.assertIn(b"Subject: bounce", raw)  # the header of the failed message
        self.assertNotIn(b"SECRET", raw)  # and not its body
        self.assertEqual(len(self.entries()), 1)  # the failed bounce itself is gone

    def test_no_postmaster_no_copy(self) -> None:
        self.net.answer = refuse_all
        self.make_relay()
        with capturedLogs() as events:
            entry_id = self.store("b@remote.example", sender="")
        self.assertEqual(self.entries(), [])
        [text] = [formatEvent(e) for e in events if e.get("id") == entry_id]
        self.assertIn(
            "to <b@remote.example> failed: 550 5.1.1 no such user (from <>: no notice)", text
        )

    def test_never_loops(self) -> None:
        """Original fails, its bounce fails, the postmaster copy fails: then nothing more."""
        self.net.answer = refuse_all
        self.net.down.clear()
        relay = self.make_relay(postmaster=POSTMASTER)
        self.store("b@remote.example")
        self.assertEqual(self.entries(), [])
        sent = [(s[1], [a for a, _ in s[2]]) for s in self.net.sent]
        self.assertEqual(
            sent,
            [
                ("a@example.org", ["b@remote.example"]),  # the original
                ("", ["a@example.org"]),  # its bounce
                ("", [POSTMASTER]),  # the postmaster's copy of the double bounce
            ],
        )
        self.assertEqual(relay.attempts, 3)

    def test_postmaster_matching_ignores_case(self) -> None:
        self.net.answer = refuse_all
        self.make_relay(postmaster=POSTMASTER)
        self.store(POSTMASTER.upper(), sender="")
        self.assertEqual(self.entries(), [])

    def test_expired_null_sender_message(self) -> None:
        self.net.down.add("mx1.remote.example")
        self.make_relay(postmaster=POSTMASTER, min_backoff=300, lifetime=500)
        self.net.down.add("relay.example.net")
        self.store("b@remote.example", sender="")
        self.reactor.advance(300)
        self.assertEqual(self.notices()[0][0].recipients[0].address, "b@remote.example")
        self.reactor.advance(600)  # past the lifetime
        [(entry, msg)] = self.notices()
        self.assertEqual(entry.recipients[0].address, POSTMASTER)
        self.assertIn("Status: 4.4.7", "\n".join(self.status_fields(msg)))

    def test_successes_of_null_sender_messages_stay_silent(self) -> None:
        from netproto_twisted.smtp import RcptTo

        self.make_relay(postmaster=POSTMASTER)
        self.store(RcptTo("b@remote.example", {"NOTIFY": "SUCCESS"}), sender="")
        self.assertEqual(self.entries(), [])

    def test_bad_postmaster(self) -> None:
        for bad in ("postmaster", "a b@example.org", "pm@example.org\r\n"):
            self.assertRaises(ValueError, RelaySettings, hostname="x", postmaster=bad)


class PostmasterNoticeTests(RelayTestsBase):
    def entry(self, status: str) -> QueueEntry:
        r = RecipientState("b@remote.example", status=status, reply=(550, "5.1.1", "no"))
        return QueueEntry("0123", MailFrom("", {"RET": "FULL"}), [r], size=len(MESSAGE))

    def test_headers_only_and_failures_only(self) -> None:
        entry = self.entry(FAILED)
        parts = dsn_parts(
            entry, entry.recipients, reporting_mta="m.example", postmaster="p@x.example"
        )
        self.assertEqual(parts.returned, "headers")
        self.assertIn(b"To: <p@x.example>", parts.head)
        self.assertRaises(ValueError, dsn_parts, entry, entry.recipients, reporting_mta="m")
        done = self.entry(DELIVERED)
        self.assertRaises(
            ValueError,
            dsn_parts,
            done,
            done.recipients,
            reporting_mta="m.example",
            postmaster="p@x.example",
        )

"""SMTPUTF8 and 8BITMIME at a next hop that lacks them: bounce (5.6.7, 5.6.3) or send as 7-bit."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.smtp.client import SendResult
from netproto_twisted.smtp.client.body import file_has_8bit
from netproto_twisted.smtp.errors import SMTPNotSupportedError
from netproto_twisted.smtp.relay.queue import DELIVERED, FAILED, QueueEntry
from tests.smtp.test_relay import MESSAGE, RelayTestsBase

EIGHT_BIT = "From: a@example.org\r\nSubject: caf\u00e9\r\n\r\nna\u00efve\r\n".encode()


class SMTPUTF8Tests(RelayTestsBase):
    def setUp(self) -> None:
        super().setUp()
        self.net.legacy_hosts.add("mx1.remote.example")
        self.resolver.table["other.example"] = [(10, "mx.other.example")]

    def test_flagged_message_bounces_with_5_6_7(self) -> None:
        self.store("b@remote.example", SMTPUTF8=None)
        relay = self.make_relay()
        self.assertEqual(self.net.sent, [])  # nothing was sent to the next hop
        [(_, msg)] = self.notices()
        status = "\n".join(self.status_fields(msg))
        self.assertIn("Status: 5.6.7", status)
        self.assertIn("Diagnostic-Code: smtp; 553", status)
        self.assertIn("SMTPUTF8", status)
        self.assertEqual(relay.attempts, 1)

    def test_non_ascii_recipient_bounces(self) -> None:
        self.store("b\u00f6b@remote.example")
        self.make_relay()
        self.assertEqual(self.net.sent, [])
        [(_, msg)] = self.notices()
        self.assertIn("Status: 5.6.7", "\n".join(self.status_fields(msg)))

    def test_only_the_legacy_destination_fails(self) -> None:
        entry_id = self.store("b@remote.example", "c@other.example", SMTPUTF8=None)
        self.net.down.discard("example.org")
        states: dict[str, str] = {}
        original = self.spool.save

        def spy(entry: QueueEntry) -> Deferred[bool]:
            if entry.id == entry_id:
                states.update({r.address: r.status for r in entry.recipients})
            return original(entry)

        self.spool.save = spy  # type: ignore[method-assign]
        self.make_relay()
        self.assertEqual(states, {"b@remote.example": FAILED, "c@other.example": DELIVERED})
        sent = [(s[0], s[4]) for s in self.net.sent if s[1]]
        self.assertEqual(sent, [("mx.other.example", {"SMTPUTF8": None, "BODY": "7BIT"})])

    def test_the_clients_own_refusal_is_permanent_too(self) -> None:
        """The real client refuses such a transaction itself (553 5.6.7): same outcome."""

        def client_refuses(host: str, sender: str, rcpts: list[str]) -> SendResult:
            raise SMTPNotSupportedError("5.6.7 the server does not offer SMTPUTF8", 553)

        self.net.legacy_hosts.clear()
        self.net.answer = client_refuses
        self.store("b@remote.example")
        self.make_relay()
        [(_, msg)] = self.notices()
        self.assertIn("Status: 5.6.7", "\n".join(self.status_fields(msg)))

    def test_next_hop_with_smtputf8_gets_it(self) -> None:
        self.net.legacy_hosts.clear()
        self.store("b\u00f6b@remote.example", SMTPUTF8=None)
        self.make_relay()
        [(_, _, rcpts, _, params)] = self.net.sent
        self.assertEqual(rcpts, [("b\u00f6b@remote.example", {})])
        self.assertEqual(params, {"SMTPUTF8": None, "BODY": "7BIT"})
        self.assertEqual(self.entries(), [])


class EightBitMIMETests(RelayTestsBase):
    def setUp(self) -> None:
        super().setUp()
        self.net.legacy_hosts.add("mx1.remote.example")

    def test_8bit_content_bounces_with_5_6_3(self) -> None:
        self.store("b@remote.example", data=EIGHT_BIT, BODY="8BITMIME")
        self.make_relay()
        self.assertEqual(self.net.sent, [])
        [(_, msg)] = self.notices()
        status = "\n".join(self.status_fields(msg))
        self.assertIn("Status: 5.6.3", status)
        self.assertIn("Diagnostic-Code: smtp; 554", status)

    def test_7bit_content_goes_as_7bit(self) -> None:
        """Declared 8BITMIME but 7-bit after all: sent (the client drops BODY=7BIT here)."""
        self.store("b@remote.example", data=MESSAGE, BODY="8BITMIME")
        self.make_relay()
        [(_, _, _, data, params)] = self.net.sent
        self.assertEqual((data, params), (MESSAGE, {"BODY": "7BIT"}))
        self.assertEqual(self.entries(), [])

    def test_next_hop_with_8bitmime_gets_it(self) -> None:
        self.net.legacy_hosts.clear()
        self.store("b@remote.example", data=EIGHT_BIT, BODY="8BITMIME")
        self.make_relay()
        [(_, _, _, data, params)] = self.net.sent
        self.assertEqual((data, params), (EIGHT_BIT, {"BODY": "8BITMIME"}))

    def test_undeclared_8bit_is_labelled(self) -> None:
        """8-bit content sent without BODY=8BITMIME gets the label it needs, or bounces."""
        self.resolver.table["other.example"] = [(10, "mx.other.example")]
        self.store("b@remote.example", "c@other.example", data=EIGHT_BIT)
        self.make_relay()
        [(host, _, _, data, params)] = self.net.sent
        self.assertEqual(
            (host, data, params), ("mx.other.example", EIGHT_BIT, {"BODY": "8BITMIME"})
        )
        [(_, msg)] = self.notices()
        status = "\n".join(self.status_fields(msg))
        self.assertIn("Final-Recipient: rfc822; b@remote.example", status)
        self.assertIn("Status: 5.6.3", status)

    def test_recorded_while_spooling(self) -> None:
        seven = self.store("b@remote.example", data=MESSAGE)
        eight = self.store("b@remote.example", data=EIGHT_BIT)
        self.assertIs(self.spool.directory.load(seven).eight_bit, False)
        self.assertIs(self.spool.directory.load(eight).eight_bit, True)

    def test_entries_of_older_versions_are_scanned(self) -> None:
        """An entry without the record (eight_bit None) has its file scanned instead."""
        self.net.legacy_hosts.clear()
        for data in (EIGHT_BIT, MESSAGE):
            entry_id = self.store("b@remote.example", data=data)
            entry = self.spool.directory.load(entry_id)
            entry.eight_bit = None
            self.spool.directory.save(entry_id, entry.to_json())
        self.assertIsNone(self.spool.directory.load(entry_id).eight_bit)
        self.make_relay()
        self.assertEqual([s[4] for s in self.net.sent], [{"BODY": "8BITMIME"}, {"BODY": "7BIT"}])


class Has8BitTests(SynchronousTestCase):
    @given(st.binary(max_size=3 * 65536 + 10, min_size=0))
    def test_matches_a_direct_check_and_rewinds(self, data: bytes) -> None:
        f = io.BytesIO(data)
        self.assertEqual(file_has_8bit(f), not data.isascii())
        self.assertEqual(f.tell(), 0)

    def test_late_8bit_byte(self) -> None:
        f = io.BytesIO(b"a" * 200_000 + b"\xe9")
        self.assertTrue(file_has_8bit(f))

"""Tests for the SMTP session state table (smtp._state) and the Received header (smtp._trace)."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.errors import LocalProtocolError
from netproto_twisted.smtp import (
    AUTH,
    BDAT,
    COMMAND_STATES,
    COMMANDS,
    DATA,
    EHLO,
    EVENT_ABORT,
    EVENT_AUTH_FAILED,
    EVENT_AUTH_SUCCEEDED,
    EVENT_BDAT_LAST,
    EVENT_CLOSE,
    EVENT_END_OF_DATA,
    HELO,
    MAIL,
    NOOP,
    QUIT,
    RCPT,
    RSET,
    STARTTLS,
    TRANSITIONS,
    VALID_COMMANDS,
    VRFY,
    Session,
    State,
    protocol_name,
    received_header,
)

EVENTS = sorted(
    COMMANDS
    | {
        EVENT_ABORT,
        EVENT_AUTH_FAILED,
        EVENT_AUTH_SUCCEEDED,
        EVENT_BDAT_LAST,
        EVENT_CLOSE,
        EVENT_END_OF_DATA,
    }
)


def session_at(*events: str, tls: bool = False) -> Session:
    """A session after the given events."""
    session = Session(tls=tls)
    for event in events:
        session.advance(event)
    return session


class TableTests(SynchronousTestCase):
    """The data tables themselves."""

    def test_every_state_has_a_row(self) -> None:
        self.assertEqual(set(TRANSITIONS), set(State))
        self.assertEqual(set(VALID_COMMANDS), set(COMMAND_STATES))

    def test_valid_commands_are_the_table_verbs(self) -> None:
        for state, verbs in VALID_COMMANDS.items():
            self.assertEqual(set(TRANSITIONS[state]) & COMMANDS, verbs, state)

    def test_targets_are_states(self) -> None:
        for row in TRANSITIONS.values():
            for target in row.values():
                self.assertIsInstance(target, State)

    def test_close_from_everywhere(self) -> None:
        for state in State:
            self.assertIs(TRANSITIONS[state][EVENT_CLOSE], State.CLOSED)

    def test_no_commands_while_reading_data_or_sasl(self) -> None:
        for state in (State.DATA, State.AUTH, State.CLOSED):
            self.assertFalse(set(TRANSITIONS[state]) & COMMANDS)


class SessionTests(SynchronousTestCase):
    """Session: refusals (503 5.5.1) and transitions."""

    def assertRefused(self, session: Session, verb: str, text: str) -> None:
        reply = session.refusal(verb)
        assert reply is not None, verb
        self.assertEqual((reply.code, reply.enhanced, reply.text), (503, "5.5.1", text))

    def test_full_data_transaction(self) -> None:
        session = Session()
        for event, state in (
            (EHLO, State.GREETED),
            (MAIL, State.MAIL),
            (RCPT, State.RCPT),
            (RCPT, State.RCPT),
            (DATA, State.DATA),
            (EVENT_END_OF_DATA, State.GREETED),
            (QUIT, State.CLOSED),
        ):
            if event in COMMANDS:
                self.assertIsNone(session.refusal(event), event)
            self.assertIs(session.advance(event), state)
            self.assertIs(session.state, state)

    def test_bdat_transaction(self) -> None:
        session = session_at(EHLO, MAIL, RCPT, BDAT)
        self.assertIs(session.state, State.BDAT)
        self.assertIsNone(session.refusal(BDAT))
        self.assertIs(session.advance(BDAT), State.BDAT)
        self.assertIs(session.advance(EVENT_BDAT_LAST), State.GREETED)
        # A single BDAT LAST straight from RCPT.
        self.assertIs(session_at(EHLO, MAIL, RCPT, EVENT_BDAT_LAST).state, State.GREETED)

    def test_bdat_refusals(self) -> None:
        session = session_at(EHLO, MAIL, RCPT, BDAT)
        self.assertRefused(session, DATA, "Error: DATA not permitted after BDAT")
        self.assertRefused(session, RCPT, "Error: RCPT not permitted after BDAT")
        self.assertRefused(session, MAIL, "Error: nested MAIL command")
        self.assertRefused(session, EHLO, "Error: bad sequence of commands")
        for verb in (RSET, QUIT, NOOP):
            self.assertIsNone(session.refusal(verb))
        self.assertIs(session.advance(EVENT_ABORT), State.GREETED)

    def test_before_helo(self) -> None:
        session = Session()
        for verb in (MAIL, RCPT, DATA, BDAT, STARTTLS, AUTH):
            self.assertRefused(session, verb, "Error: send HELO/EHLO first")
        for verb in (EHLO, HELO, NOOP, RSET, QUIT, VRFY):
            self.assertIsNone(session.refusal(verb))
        self.assertIs(session.advance(RSET), State.CONNECTED)

    def test_sequence_errors(self) -> None:
        greeted = session_at(EHLO)
        self.assertRefused(greeted, RCPT, "Error: need MAIL command")
        self.assertRefused(greeted, DATA, "Error: need MAIL command")
        in_mail = session_at(EHLO, MAIL)
        self.assertRefused(in_mail, MAIL, "Error: nested MAIL command")
        self.assertRefused(in_mail, DATA, "Error: need RCPT command")
        self.assertRefused(in_mail, BDAT, "Error: need RCPT command")
        in_rcpt = session_at(EHLO, MAIL, RCPT)
        self.assertRefused(in_rcpt, MAIL, "Error: nested MAIL command")
        for session in (in_mail, in_rcpt):
            self.assertRefused(
                session, AUTH, "Error: AUTH not permitted during a mail transaction"
            )
            self.assertRefused(
                session, STARTTLS, "Error: STARTTLS not permitted during a mail transaction"
            )

    def test_rset_and_ehlo_end_a_transaction(self) -> None:
        for event in (RSET, EHLO, HELO):
            session = session_at(EHLO, MAIL, RCPT)
            self.assertTrue(session.in_transaction)
            self.assertIs(session.advance(event), State.GREETED)
            self.assertFalse(session.in_transaction)

    def test_no_commands_in_data(self) -> None:
        session = session_at(EHLO, MAIL, RCPT, DATA)
        self.assertTrue(session.in_transaction)
        self.assertRefused(session, NOOP, "Error: no command expected now")
        self.assertRaises(LocalProtocolError, session.advance, NOOP)

    def test_auth_rules(self) -> None:
        self.assertRefused(session_at(HELO), AUTH, "Error: send EHLO first")
        session = session_at(EHLO)
        self.assertIsNone(session.refusal(AUTH))
        self.assertIs(session.advance(AUTH), State.AUTH)
        self.assertIs(session.advance(EVENT_AUTH_FAILED), State.GREETED)
        self.assertFalse(session.authenticated)
        session.advance(AUTH)
        session.advance(EVENT_AUTH_SUCCEEDED)
        self.assertTrue(session.authenticated)
        self.assertRefused(session, AUTH, "Error: already authenticated")
        # Initial response accepted at once: AUTH then success.
        self.assertTrue(session_at(EHLO, AUTH, EVENT_AUTH_SUCCEEDED).authenticated)

    def test_starttls_resets(self) -> None:
        self.assertRefused(session_at(HELO), STARTTLS, "Error: send EHLO first")
        session = session_at(EHLO, AUTH, EVENT_AUTH_SUCCEEDED)
        self.assertIsNone(session.refusal(STARTTLS))
        self.assertIs(session.advance(STARTTLS), State.CONNECTED)
        self.assertEqual((session.tls, session.esmtp, session.authenticated), (True, False, False))
        self.assertRefused(session, MAIL, "Error: send HELO/EHLO first")
        session.advance(EHLO)
        self.assertRefused(session, STARTTLS, "Error: TLS already active")
        self.assertRefused(session_at(EHLO, tls=True), STARTTLS, "Error: TLS already active")

    def test_helo_then_ehlo_flags(self) -> None:
        session = session_at(HELO)
        self.assertFalse(session.esmtp)
        session.advance(EHLO)
        self.assertTrue(session.esmtp)

    def test_closed(self) -> None:
        session = session_at(EHLO, QUIT)
        self.assertRefused(session, NOOP, "Error: no command expected now")
        self.assertIs(session.advance(EVENT_CLOSE), State.CLOSED)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.sampled_from(EVENTS), max_size=30))
    def test_model_every_sequence(self, events: list[str]) -> None:
        """refusal() and advance() agree with the table for any event sequence."""
        session = Session()
        for event in events:
            before = session.state
            allowed = event in TRANSITIONS[before]
            if event in COMMANDS:
                refusal = session.refusal(event)
                if refusal is None:
                    self.assertTrue(allowed, (before, event))
                else:
                    self.assertEqual(refusal.code, 503)
                    # Only AUTH/STARTTLS flag rules refuse what the table allows.
                    if allowed:
                        self.assertIn(event, (AUTH, STARTTLS))
                    continue
            if allowed:
                self.assertIs(session.advance(event), TRANSITIONS[before][event])
            else:
                self.assertRaises(LocalProtocolError, session.advance, event)
                self.assertIs(session.state, before)


class ReceivedTests(SynchronousTestCase):
    """protocol_name and received_header."""

    date = datetime(2026, 11, 21, 7, 0, 0, tzinfo=timezone.utc)

    def test_protocol_names(self) -> None:
        self.assertEqual(protocol_name(esmtp=False, tls=True, authenticated=True), "SMTP")
        self.assertEqual(protocol_name(esmtp=True), "ESMTP")
        self.assertEqual(protocol_name(esmtp=True, tls=True), "ESMTPS")
        self.assertEqual(protocol_name(esmtp=True, authenticated=True), "ESMTPA")
        self.assertEqual(protocol_name(esmtp=True, tls=True, authenticated=True), "ESMTPSA")
        self.assertEqual(protocol_name(esmtp=True, smtputf8=True), "UTF8SMTP")
        self.assertEqual(
            protocol_name(esmtp=True, tls=True, authenticated=True, smtputf8=True), "UTF8SMTPSA"
        )

    def test_full_header(self) -> None:
        header = received_header(
            helo="client.example",
            peer_ip="192.0.2.7",
            peer_host="host.client.example",
            by="mx.example",
            protocol="ESMTPS",
            queue_id="0190abcd",
            recipients=["u@mx.example"],
            date=self.date,
            tls_info="TLSv1.3 TLS_AES_256_GCM_SHA384",
        )
        self.assertEqual(
            header,
            b"Received: from client.example (host.client.example [192.0.2.7])\r\n"
            b"\tby mx.example (netproto) with ESMTPS (TLSv1.3 TLS_AES_256_GCM_SHA384)\r\n"
            b"\tid 0190abcd\r\n"
            b"\tfor <u@mx.example>; Sat, 21 Nov 2026 07:00:00 +0000\r\n",
        )

    def test_minimal_header_ipv6_and_no_for(self) -> None:
        header = received_header(
            helo=None,
            peer_ip="2001:db8::1",
            by="mx",
            protocol="SMTP",
            queue_id="q1",
            recipients=["a@x", "b@x"],
            date=self.date,
            software=None,
        )
        self.assertEqual(
            header,
            b"Received: from unknown (unknown [IPv6:2001:db8::1])\r\n\tby mx with SMTP\r\n"
            b"\tid q1; Sat, 21 Nov 2026 07:00:00 +0000\r\n",
        )

    def test_same_instant_in_two_zones_keeps_its_own_offset(self) -> None:
        kwargs: dict[str, Any] = {
            "helo": "h", "peer_ip": "192.0.2.1", "by": "mx", "protocol": "ESMTP", "queue_id": "q",
        }
        utc = received_header(date=self.date, **kwargs)
        plus2 = received_header(date=self.date.astimezone(timezone(timedelta(hours=2))), **kwargs)
        self.assertIn(b"07:00:00 +0000", utc)
        self.assertIn(b"09:00:00 +0200", plus2)
        later = received_header(date=self.date + timedelta(seconds=1.5), **kwargs)
        self.assertIn(b"07:00:01 +0000", later)

    def test_local_socket_peer_has_no_address(self) -> None:
        header = received_header(
            helo="app", peer_ip=None, by="mx", protocol="ESMTP", queue_id="q", date=self.date
        )
        self.assertTrue(header.startswith(b"Received: from app (via local socket)\r\n"))

    def test_ipv4_mapped_and_offset(self) -> None:
        header = received_header(
            helo="h",
            peer_ip="::ffff:192.0.2.1",
            by="mx",
            protocol="ESMTP",
            queue_id="q",
            date=self.date.astimezone(timezone(timedelta(hours=2))),
        )
        self.assertIn(b"(unknown [192.0.2.1])", header)
        self.assertIn(b"Sat, 21 Nov 2026 09:00:00 +0200", header)

    def test_peer_text_cannot_forge_clauses(self) -> None:
        header = received_header(
            helo="evil) by trusted.example (x; y\\z\u00e9 w",
            peer_ip="127.0.0.1",
            peer_host="a(b)",
            by="mx",
            protocol="ESMTP",
            queue_id="q",
            date=self.date,
        )
        first = header.split(b"\r\n")[0]
        self.assertEqual(
            first, b"Received: from evil__by_trusted.example__x__y_z__w (a_b_ [127.0.0.1])"
        )
        self.assertEqual(header.count(b";"), 1)
        self.assertEqual(header.count(b"\r\n"), 3)
        long_helo = received_header(
            helo="x" * 5000,
            peer_ip="127.0.0.1",
            by="mx",
            protocol="ESMTP",
            queue_id="q",
            date=self.date,
        )
        self.assertLess(len(long_helo.split(b"\r\n")[0]), 400)

    def test_bad_arguments(self) -> None:
        kwargs = {
            "helo": "h",
            "peer_ip": "127.0.0.1",
            "by": "mx",
            "protocol": "ESMTP",
            "queue_id": "q",
            "date": self.date,
        }
        self.assertRaises(ValueError, received_header, **{**kwargs, "peer_ip": "nope"})
        self.assertRaises(ValueError, received_header, **{**kwargs, "date": datetime(2026, 1, 1)})
        self.assertRaises(ValueError, received_header, **{**kwargs, "by": "mx\r\nX: y"})
        self.assertRaises(ValueError, received_header, **{**kwargs, "queue_id": "a b"})

"""Tests for the relay (smtp.relay.service) with a fake resolver and a fake client."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import email
import email.policy
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.names import dns
from twisted.names.error import DNSNameError, DNSServerError
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.core.errors import LocalProtocolError
from netproto_twisted.smtp import Extensions, MailFrom, RcptTo, Reply
from netproto_twisted.smtp.client import SendResult
from netproto_twisted.smtp.errors import (
    SMTPConnectError,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)
from netproto_twisted.smtp.interfaces import Envelope
from netproto_twisted.smtp.relay import Relay, RelaySettings
from netproto_twisted.smtp.relay.queue import (
    DELIVERED,
    FAILED,
    PENDING,
    QueueEntry,
    Spool,
    synchronous_runner,
)

T0 = 1_700_000_000.0
MESSAGE = b"From: a@example.org\r\nSubject: hello\r\n\r\nThe body.\r\n"


class FakeResolver:
    """An IResolver with only lookupMailExchange, answering from a table."""

    def __init__(self, table: dict[str, list[tuple[int, str]] | Exception]) -> None:
        self.table = table
        self.lookups: list[str] = []

    def lookupMailExchange(self, name: str) -> Deferred[Any]:
        self.lookups.append(name)
        answer = self.table.get(name, [])
        if isinstance(answer, Exception):
            return fail(answer)
        records = [
            dns.RRHeader(name=name, type=dns.MX, payload=dns.Record_MX(pref, host))
            for pref, host in answer
        ]
        return succeed((records, [], []))


class FakeClient:
    """An SMTPClient stand-in: records transactions, answers per the network's rules."""

    def __init__(self, net: FakeNetwork, host: str, port: int) -> None:
        self.net = net
        self.host = host
        self.port = port
        keywords: dict[str, tuple[str, ...]] = {"PIPELINING": ()}
        if host not in net.legacy_hosts:
            keywords.update({"8BITMIME": (), "SMTPUTF8": ()})
        if host in net.dsn_hosts:
            keywords["DSN"] = ()
        self.extensions = Extensions(host, keywords)
        self.closed = False
        self.transactions = 0

    def send_message(
        self,
        sender: str,
        recipients: Sequence[str | tuple[str, dict[str, str | None]]],
        message: Any,
        *,
        mail_params: dict[str, str | None] | None = None,
    ) -> Deferred[SendResult]:
        assert not self.closed
        self.transactions += 1
        rcpts = [(r, {}) if isinstance(r, str) else (r[0], dict(r[1])) for r in recipients]
        data = message.read()
        record = (self.host, sender, rcpts, data, dict(mail_params or {}))
        self.net.sent.append(record)
        if self.net.manual:
            d: Deferred[SendResult] = Deferred()
            self.net.waiting.append((d, record))
            return d
        try:
            return succeed(self.net.answer(self.host, sender, [a for a, _ in rcpts]))
        except Exception as e:
            return fail(e)

    def quit(self) -> Deferred[None]:
        self.closed = True
        return succeed(None)

    def close(self) -> None:
        self.closed = True


def accept_all(host: str, sender: str, rcpts: list[str]) -> SendResult:
    ok = Reply(250, ("ok",), "2.1.5")
    return SendResult(
        accepted=dict.fromkeys(rcpts, ok), data_reply=Reply(250, ("queued",), "2.0.0")
    )


class FakeNetwork:
    """The fake ``connect_smtp``: which hosts are down, how they answer, what they got."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.dsn_hosts: set[str] = set()
        self.legacy_hosts: set[str] = set()  # offer neither 8BITMIME nor SMTPUTF8
        self.answer: Callable[[str, str, list[str]], SendResult] = accept_all
        self.connects: list[tuple[str, int, dict[str, Any]]] = []
        self.clients: list[FakeClient] = []
        self.sent: list[
            tuple[str, str, list[tuple[str, dict[str, str | None]]], bytes, dict[str, str | None]]
        ] = []
        self.manual = False
        self.waiting: list[tuple[Deferred[SendResult], Any]] = []

    def connect(self, reactor: Any, host: str, port: int, **kwargs: Any) -> Deferred[FakeClient]:
        self.connects.append((host, port, kwargs))
        if host in self.down:
            return fail(SMTPConnectError(421, f"4.4.1 cannot connect to {host}"))
        client = FakeClient(self, host, port)
        self.clients.append(client)
        return succeed(client)


class RelayTestsBase(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.reactor = MemoryReactorClock()
        self.reactor.advance(T0)
        self.spool = Spool(self.dir / "queue", self.reactor, runner=synchronous_runner)
        self.net = FakeNetwork()
        self.net.down.add("example.org")  # notices to the sender stay in the spool
        self.resolver = FakeResolver({"remote.example": [(10, "mx1.remote.example")]})
        self.relay: Relay | None = None

    def make_relay(self, **kwargs: Any) -> Relay:
        """Start a relay: ``kwargs`` are :class:`RelaySettings` fields or ``Relay`` arguments."""
        options: dict[str, Any] = {
            "resolver": self.resolver,
            "connect": self.net.connect,
            "random": lambda: 0.5,  # no jitter unless a test asks for it
        }
        values: dict[str, Any] = {"hostname": "relay.example.net", "poll_interval": 0}
        for key, value in kwargs.items():
            (options if key in options else values)[key] = value
        relay = Relay(self.spool, self.reactor, RelaySettings(**values), **options)
        self.relay = relay
        relay.startService()
        self.successResultOf(relay.ready)
        self.addCleanup(self.stop)
        return relay

    def stop(self) -> None:
        if self.relay is not None and self.relay.running:
            self.relay.stopService()

    def store(
        self,
        *rcpts: str | RcptTo,
        sender: str = "a@example.org",
        data: bytes = MESSAGE,
        **params: str | None,
    ) -> str:
        recipients = tuple(r if isinstance(r, RcptTo) else RcptTo(r) for r in rcpts)
        env = Envelope(
            MailFrom(sender, dict(params)), recipients, received_at=self.reactor.seconds()
        )
        sink = self.spool.open(env, recipients)
        sink.write(data)
        return self.successResultOf(sink.commit())

    def entries(self) -> list[QueueEntry]:
        return self.successResultOf(self.spool.list())

    def notices(self) -> list[tuple[QueueEntry, email.message.EmailMessage]]:
        """The DSNs in the spool (null sender), parsed."""
        found = []
        for entry in self.entries():
            if entry.mail_from.address == "":
                raw = self.spool.directory.message_path(entry.id).read_bytes()
                msg = email.message_from_bytes(raw, policy=email.policy.default)
                assert isinstance(msg, email.message.EmailMessage)
                found.append((entry, msg))
        return found

    def status_fields(self, msg: email.message.EmailMessage) -> list[str]:
        """The delivery-status part as text."""
        for part in msg.walk():
            if part.get_content_type() in (
                "message/delivery-status",
                "message/global-delivery-status",
            ):
                payload = part.get_payload()
                if isinstance(payload, list):
                    return [str(p) for p in payload]
                return [str(payload)]
        raise AssertionError("no delivery-status part")


class DeliveryTests(RelayTestsBase):
    def test_delivers_and_removes(self) -> None:
        self.store("b@remote.example", "c@remote.example")
        relay = self.make_relay()
        self.assertEqual([c[:2] for c in self.net.connects], [("mx1.remote.example", 25)])
        self.assertEqual(self.net.connects[0][2]["tls"], "opportunistic")
        self.assertEqual(self.net.connects[0][2]["helo"], "relay.example.net")
        [(host, sender, rcpts, data, _params)] = self.net.sent
        self.assertEqual((host, sender, data), ("mx1.remote.example", "a@example.org", MESSAGE))
        self.assertEqual([a for a, _ in rcpts], ["b@remote.example", "c@remote.example"])
        self.assertEqual(self.entries(), [])
        self.assertEqual(len(relay.index), 0)
        self.assertEqual(relay.attempts, 1)

    def test_new_entries_are_delivered_at_once(self) -> None:
        self.make_relay()
        self.store("b@remote.example")
        self.assertEqual(len(self.net.sent), 1)
        self.assertEqual(self.entries(), [])

    def test_mx_preference_and_fallback(self) -> None:
        self.resolver.table["remote.example"] = [
            (20, "mx2.remote.example"),
            (10, "mx1.remote.example"),
        ]
        self.net.down.add("mx1.remote.example")
        self.store("b@remote.example")
        self.make_relay()
        self.assertEqual(
            [c[0] for c in self.net.connects], ["mx1.remote.example", "mx2.remote.example"]
        )
        self.assertEqual(self.net.sent[0][0], "mx2.remote.example")
        self.assertEqual(self.entries(), [])

    def test_no_mx_uses_the_domain_itself(self) -> None:
        self.store("b@plain.example")
        self.make_relay(port=2525)
        self.assertEqual([c[:2] for c in self.net.connects], [("plain.example", 2525)])
        self.assertEqual(self.entries(), [])

    def test_domain_literal(self) -> None:
        self.store("b@[192.0.2.7]")
        self.make_relay()
        self.assertEqual(self.net.connects[0][0], "192.0.2.7")
        self.assertEqual(self.resolver.lookups, [])

    def test_smarthost(self) -> None:
        self.store("b@remote.example", "c@other.example")
        self.make_relay(
            smarthost=("smart.example.net", 587), tls="require", username="u", password="p"
        )
        [(host, port, kwargs)] = self.net.connects
        self.assertEqual((host, port), ("smart.example.net", 587))
        self.assertEqual(
            (kwargs["tls"], kwargs["username"], kwargs["password"]), ("starttls", "u", "p")
        )
        self.assertEqual(len(self.net.sent), 1)  # one transaction for both domains
        self.assertEqual(self.resolver.lookups, [])

    def test_tls_none_and_bad_options(self) -> None:
        self.store("b@remote.example")
        self.make_relay(tls="none")
        self.assertEqual(self.net.connects[0][2]["tls"], "none")
        self.assertIsNone(self.net.connects[0][2]["tls_options"])
        self.assertRaises(ValueError, RelaySettings, hostname="x", tls="maybe")
        self.assertEqual(RelaySettings(hostname="x", tls="starttls").tls, "starttls")
        self.assertRaises(ValueError, RelaySettings, hostname="x", per_destination=0)

    def test_per_destination_limit_and_reuse(self) -> None:
        self.net.manual = True
        for i in range(6):
            self.store(f"u{i}@remote.example")
        self.store("v@other.example")
        relay = self.make_relay(per_destination=2)
        remote = [c for c in self.net.connects if c[0] == "mx1.remote.example"]
        self.assertEqual(len(remote), 2)
        self.assertEqual(len(self.net.waiting), 3)  # two to remote.example, one to other.example
        while self.net.waiting:
            outstanding = [r for _, r in self.net.waiting if r[0] == "mx1.remote.example"]
            self.assertLessEqual(len(outstanding), 2)
            d, record = self.net.waiting.pop(0)
            d.callback(accept_all(record[0], record[1], [a for a, _ in record[2]]))
        self.assertEqual(self.entries(), [])
        self.assertEqual(len(self.net.connects), 3)  # the two connections carried all six
        self.assertEqual(relay.connections, 3)
        self.assertEqual(sorted(c.transactions for c in self.net.clients), [1, 3, 3])

    def test_idle_connections_close(self) -> None:
        self.store("b@remote.example")
        self.make_relay(idle_timeout=5)
        [client] = self.net.clients
        self.assertFalse(client.closed)
        self.store("c@remote.example")  # reuses the idle connection
        self.assertEqual(len(self.net.clients), 1)
        self.reactor.advance(5)
        self.assertTrue(client.closed)

    def test_stop_closes_idle_connections(self) -> None:
        self.store("b@remote.example")
        relay = self.make_relay()
        relay.stopService()
        self.assertTrue(self.net.clients[0].closed)

    def test_stop_aborts_transactions_after_grace(self) -> None:
        self.net.manual = True
        entry_id = self.store("b@remote.example")
        relay = self.make_relay(stop_grace=5)
        [client] = self.net.clients
        stopped = relay.stopService()
        self.assertNoResult(stopped)
        self.reactor.advance(5)
        self.assertTrue(client.closed)
        d, _ = self.net.waiting.pop()
        d.errback(SMTPServerDisconnected("connection lost"))
        self.successResultOf(stopped)
        [r] = self.spool.directory.load(entry_id).recipients
        self.assertEqual((r.status, r.attempts), (PENDING, 1))  # saved, retried later

    def test_broken_reused_connection_is_retried_once(self) -> None:
        self.store("b@remote.example")
        self.make_relay()
        calls: list[int] = []

        def flaky(host: str, sender: str, rcpts: list[str]) -> SendResult:
            calls.append(1)
            if len(calls) == 1:
                raise SMTPServerDisconnected("connection lost")
            return accept_all(host, sender, rcpts)

        self.net.answer = flaky
        self.store("c@remote.example")
        self.assertEqual(len(self.net.clients), 2)
        self.assertEqual(self.entries(), [])


class RetryTests(RelayTestsBase):
    def test_backoff_doubles_up_to_the_maximum(self) -> None:
        self.net.answer = lambda *a: SendResult(
            refused={"b@remote.example": Reply(451, ("busy",), "4.3.0")}
        )

        def refuse(host: str, sender: str, rcpts: list[str]) -> SendResult:
            raise SMTPRecipientsRefused({"b@remote.example": (451, "4.3.0 busy")})

        self.net.answer = refuse
        entry_id = self.store("b@remote.example")
        relay = self.make_relay(min_backoff=300, max_backoff=2400, idle_timeout=1)
        delays = []
        for _ in range(6):
            entry = self.spool.directory.load(entry_id)  # the state is on disk after each attempt
            [r] = entry.recipients
            self.assertEqual((r.status, r.reply), (PENDING, (451, "4.3.0", "busy")))
            delays.append(r.next_try - self.reactor.seconds())
            self.reactor.advance(delays[-1] - 1)
            attempts = relay.attempts
            self.reactor.advance(1)
            self.assertEqual(relay.attempts, attempts + 1)
        self.assertEqual(delays, [300, 600, 1200, 2400, 2400, 2400])

    def test_lifetime_then_bounce(self) -> None:
        self.net.down.add("mx1.remote.example")
        self.store("b@remote.example", data=MESSAGE, ENVID="env-1")
        self.make_relay(min_backoff=300, lifetime=1000)
        self.reactor.advance(300)
        self.reactor.advance(600)
        self.assertEqual(self.notices(), [])
        self.reactor.advance(1200)  # past the lifetime: fails
        [(bounce_entry, msg)] = self.notices()
        self.assertEqual([r.address for r in bounce_entry.recipients], ["a@example.org"])
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertIn("a@example.org", msg["To"])
        self.assertIn("MAILER-DAEMON@relay.example.net", msg["From"])
        status = "\n".join(self.status_fields(msg))
        self.assertIn("Action: failed", status)
        self.assertIn("Status: 4.4.7", status)
        self.assertIn("Final-Recipient: rfc822; b@remote.example", status)
        self.assertIn("Original-Envelope-Id: env-1", status)
        self.assertIn("Reporting-MTA: dns; relay.example.net", status)
        returned = [p for p in msg.walk() if p.get_content_type() == "message/rfc822"]
        self.assertEqual(len(returned), 1)
        self.assertIn(b"The body.", msg.as_bytes())
        # the original is gone; the bounce itself waits for example.org's MX
        self.assertEqual([e.id for e in self.entries()], [bounce_entry.id])

    def test_restart_keeps_the_schedule(self) -> None:
        self.net.down.add("mx1.remote.example")
        self.store("b@remote.example")
        relay = self.make_relay(min_backoff=300)
        self.assertEqual(len(self.net.connects), 1)
        relay.stopService()
        self.net.down.clear()
        self.make_relay(min_backoff=300)
        self.assertEqual(len(self.net.connects), 1)  # not due yet
        self.reactor.advance(300)
        self.assertEqual(len(self.net.connects), 2)
        self.assertEqual(self.entries(), [])

    def test_flush_trigger(self) -> None:
        self.net.down.add("mx1.remote.example")
        self.store("b@remote.example")
        self.make_relay(poll_interval=5)
        self.net.down.clear()
        self.spool.directory.request_flush()
        self.reactor.advance(5)
        self.assertEqual(len(self.net.connects), 2)
        self.assertEqual(self.entries(), [])

    def test_hold_and_release(self) -> None:
        entry_id = self.store("b@remote.example")
        self.spool.directory.hold(entry_id)
        self.make_relay(poll_interval=5)
        self.reactor.advance(60)
        self.assertEqual(self.net.sent, [])
        self.spool.directory.release(entry_id)
        self.reactor.advance(5)
        self.assertEqual(len(self.net.sent), 1)
        self.assertEqual(self.entries(), [])

    def test_hold_while_queued_then_delete(self) -> None:
        self.net.down.add("mx1.remote.example")
        entry_id = self.store("b@remote.example")
        relay = self.make_relay(poll_interval=5, min_backoff=300)
        self.spool.directory.hold(entry_id)
        self.reactor.advance(300)
        self.assertEqual(len(self.net.connects), 1)  # held: the retry did not connect
        self.spool.directory.delete(entry_id)
        self.reactor.advance(5)
        self.assertEqual(len(relay.index), 0)

    def test_rescan_picks_up_entries_of_other_processes(self) -> None:
        relay = self.make_relay(poll_interval=5)
        other = Spool(self.dir / "queue", self.reactor, runner=synchronous_runner)
        env = Envelope(MailFrom("a@example.org"), (RcptTo("b@remote.example"),), received_at=T0)
        sink = other.open(env, env.recipients)  # no listener: this relay does not hear of it
        sink.write(MESSAGE)
        self.successResultOf(sink.commit())
        self.assertEqual(self.net.sent, [])
        self.spool.directory.touch(self.spool.directory.rescan_file)
        self.reactor.advance(5)
        self.assertEqual(len(self.net.sent), 1)
        self.assertEqual(len(relay.index), 0)

    def test_rescan_never_rolls_state_back(self) -> None:
        """A scan that read an entry before a save made meanwhile does not undo the save."""
        self.net.down.add("mx1.remote.example")
        entry_id = self.store("b@remote.example", "c@remote.example")
        relay = self.make_relay(poll_interval=5, min_backoff=300)
        stale = self.spool.directory.scan(relay._summary)
        entry = self.spool.directory.load(entry_id)
        [r, _] = entry.recipients
        r.status, r.notified = DELIVERED, True  # as if delivered after the scan read the disk
        self.successResultOf(self.spool.save(entry))
        self.net.down.clear()
        relay._merge(stale, flush=True)
        self.assertEqual([a for a, _ in self.net.sent[-1][2]], ["c@remote.example"])

    def test_rescan_keeps_entries_spooled_during_the_scan(self) -> None:
        self.net.down.add("mx1.remote.example")
        relay = self.make_relay(poll_interval=5)
        relay._recent.clear()  # a scan starts (and reads an empty spool)
        entry_id = self.store("b@remote.example")  # spooled meanwhile
        relay._merge([], flush=False)
        self.assertIn(entry_id, relay.index)

    def test_default_resolver_uses_the_given_reactor(self) -> None:
        from twisted.names.client import Resolver

        settings = RelaySettings(hostname="relay.example.net", poll_interval=0)
        relay = Relay(self.spool, self.reactor, settings)
        relay.startService()
        self.addCleanup(relay.stopService)
        self.assertIsInstance(relay.resolver, Resolver)
        self.assertIs(relay.resolver._reactor, self.reactor)

    def test_mx_lookup_failure_is_temporary(self) -> None:
        self.resolver.table["remote.example"] = DNSServerError("SERVFAIL")
        entry_id = self.store("b@remote.example")
        self.make_relay()
        [r] = self.spool.directory.load(entry_id).recipients
        self.assertEqual((r.status, r.reply and r.reply[:2]), (PENDING, (451, "4.4.3")))


class BounceTests(RelayTestsBase):
    def test_unknown_domain_bounces(self) -> None:
        self.resolver.table["gone.example"] = DNSNameError("NXDOMAIN")
        self.store(RcptTo("b@gone.example", {"ORCPT": "rfc822;B@gone.example"}), RET="HDRS")
        self.make_relay()
        [(_, msg)] = self.notices()
        status = "\n".join(self.status_fields(msg))
        self.assertIn("Status: 5.1.2", status)
        self.assertIn("Original-Recipient: rfc822; B@gone.example", status)
        headers = [p for p in msg.walk() if p.get_content_type() == "text/rfc822-headers"]
        self.assertEqual(len(headers), 1)
        self.assertNotIn(b"The body.", msg.as_bytes())  # RET=HDRS
        self.assertIn(b"Subject: hello", msg.as_bytes())

    def test_null_mx(self) -> None:
        self.resolver.table["nomail.example"] = [(0, "")]  # "." on the wire
        self.store("b@nomail.example")
        self.make_relay()
        [(_, msg)] = self.notices()
        self.assertIn("Status: 5.1.10", "\n".join(self.status_fields(msg)))
        self.assertEqual([c[0] for c in self.net.connects], ["example.org"])  # the bounce only

    def test_partial_refusal(self) -> None:
        def answer(host: str, sender: str, rcpts: list[str]) -> SendResult:
            return SendResult(
                accepted={"b@remote.example": Reply(250, ("ok",))},
                refused={"c@remote.example": Reply(550, ("no such user",), "5.1.1")},
                data_reply=Reply(250, ("queued",)),
            )

        self.net.answer = answer
        self.store("b@remote.example", "c@remote.example")
        self.make_relay()
        [(_entry, msg)] = self.notices()
        status = "\n".join(self.status_fields(msg))
        self.assertIn("Final-Recipient: rfc822; c@remote.example", status)
        self.assertNotIn("b@remote.example", status)
        self.assertIn("Diagnostic-Code: smtp; 550 no such user", status)
        self.assertIn("Remote-MTA: dns; mx1.remote.example", status)
        self.assertEqual(len(self.entries()), 1)  # the original is finished and gone

    def test_client_refusing_an_argument_is_permanent(self) -> None:
        def refuse(host: str, sender: str, rcpts: list[str]) -> SendResult:
            raise LocalProtocolError("bad address")

        self.net.answer = refuse
        self.store("b@remote.example")
        relay = self.make_relay()
        [(_, msg)] = self.notices()
        self.assertIn("Status: 5.1.3", "\n".join(self.status_fields(msg)))
        self.assertEqual(relay.attempts, 1)

    def test_never_bounce_to_the_null_sender(self) -> None:
        self.net.answer = self.sender_refused
        self.store("b@remote.example", sender="")
        self.make_relay()
        self.assertEqual(self.notices(), [])
        self.assertEqual(self.entries(), [])

    def sender_refused(self, host: str, sender: str, rcpts: list[str]) -> SendResult:
        raise SMTPSenderRefused(550, "5.7.1 go away", sender)

    def test_notify_never(self) -> None:
        self.net.answer = self.sender_refused
        self.store(RcptTo("b@remote.example", {"NOTIFY": "NEVER"}))
        self.make_relay()
        self.assertEqual(self.entries(), [])

    def test_sender_refused_bounces_every_recipient(self) -> None:
        self.net.answer = self.sender_refused
        self.store("b@remote.example", "c@remote.example")
        self.make_relay()
        [(_, msg)] = self.notices()
        status = "\n".join(self.status_fields(msg))
        self.assertEqual(status.count("Action: failed"), 2)
        self.assertIn("Status: 5.7.1", status)

    def test_success_notice_when_next_hop_lacks_dsn(self) -> None:
        self.store(RcptTo("b@remote.example", {"NOTIFY": "SUCCESS"}), ENVID="e-7")
        self.make_relay()
        [(_, msg)] = self.notices()
        status = "\n".join(self.status_fields(msg))
        self.assertIn("Action: relayed", status)
        self.assertIn("Status: 2.0.0", status)
        self.assertIn("Successful", msg["Subject"])
        self.assertNotIn(b"The body.", msg.as_bytes())  # headers only
        [(_, _, rcpts, _, params)] = self.net.sent
        self.assertEqual(rcpts, [("b@remote.example", {})])  # DSN not offered: not passed on
        self.assertEqual(params, {"BODY": "7BIT"})  # DSN parameters not passed on

    def test_dsn_parameters_passed_on(self) -> None:
        self.net.dsn_hosts.add("mx1.remote.example")
        rcpt = RcptTo(
            "b@remote.example", {"NOTIFY": "SUCCESS,FAILURE", "ORCPT": "rfc822;b@x.example"}
        )
        self.store(rcpt, ENVID="e-7", RET="HDRS", BODY="8BITMIME")
        self.make_relay()
        [(_, _, rcpts, _, params)] = self.net.sent
        self.assertEqual(rcpts, [("b@remote.example", dict(rcpt.params))])
        # (BODY follows the content: this one is 7-bit, whatever was declared)
        self.assertEqual(params, {"ENVID": "e-7", "RET": "HDRS", "BODY": "7BIT"})
        self.assertEqual(self.notices(), [])  # the next hop reports success itself
        self.assertEqual(self.entries(), [])

    def test_delay_notice_once(self) -> None:
        self.net.down.add("mx1.remote.example")
        self.store(RcptTo("b@remote.example", {"NOTIFY": "DELAY,FAILURE"}))
        self.make_relay(min_backoff=600, delay_warning=1000)
        self.reactor.advance(600)
        self.assertEqual(self.notices(), [])
        self.reactor.advance(400)  # the delay warning is due
        [(_, msg)] = self.notices()
        status = "\n".join(self.status_fields(msg))
        self.assertIn("Action: delayed", status)
        self.assertIn("Will-Retry-Until:", status)
        for _ in range(5):
            self.reactor.advance(1200)
        self.assertEqual(len(self.notices()), 1)

    def test_unnotified_failures_are_reported_after_restart(self) -> None:
        entry_id = self.store("b@remote.example")
        entry = self.spool.directory.load(entry_id)
        entry.recipients[0].status = FAILED
        entry.recipients[0].reply = (550, "5.1.1", "no such user")
        self.successResultOf(self.spool.save(entry))
        self.net.down.add("mx1.example.org")
        self.resolver.table["example.org"] = [(10, "mx1.example.org")]
        self.make_relay()
        self.assertEqual(len(self.notices()), 1)
        self.assertNotIn(entry_id, [e.id for e in self.entries()])

    def test_delivered_state_survives(self) -> None:
        entry_id = self.store("b@remote.example", "c@remote.example")
        entry = self.spool.directory.load(entry_id)
        entry.recipients[0].status = DELIVERED
        entry.recipients[0].notified = True
        self.successResultOf(self.spool.save(entry))
        self.make_relay()
        [(_, _, rcpts, _, _)] = self.net.sent
        self.assertEqual(rcpts, [("c@remote.example", {})])  # b was not sent again

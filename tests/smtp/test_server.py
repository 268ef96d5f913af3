"""The SMTP server on a StringTransport: commands, pipelining, DATA, BDAT, policy, delivery."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import ip_address, ip_network
from typing import Any, cast

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred, succeed
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from netproto_twisted.smtp import MailFrom, RcptTo
from netproto_twisted.smtp.delivery import CaptureTarget
from netproto_twisted.smtp.interfaces import (
    Envelope,
    IDeliveryTarget,
    IMessageSink,
    IRecipientPolicy,
    SessionInfo,
)
from netproto_twisted.smtp.server import ServerSettings
from netproto_twisted.smtp.server.replies import parse_peer as _parse_peer
from netproto_twisted.smtp.server.replies import peer_facts as _peer_facts

from .test_server_support import Harness

MESSAGE = "Subject: hi\r\n\r\nHello\r\n..leading dot\r\n"


def transaction(rcpts: Sequence[str] = ("bob@example.org",), body: str = MESSAGE) -> str:
    lines = ["MAIL FROM:<sender@client.example>"]
    lines += [f"RCPT TO:<{r}>" for r in rcpts]
    lines.append("DATA")
    return "\r\n".join(lines) + "\r\n" + body + ".\r\n"


class GreetingAndEhloTests(SynchronousTestCase):
    def test_greeting(self) -> None:
        h = Harness()
        self.assertEqual(h.output(), ["220 mx.example.org ESMTP netproto"])

    def test_ehlo_advertises_extensions(self) -> None:
        h = Harness(ServerSettings(hostname="mx.example.org", max_size=1000))
        lines = h.ehlo()
        self.assertEqual(lines[0], "250-mx.example.org Hello client.example")
        keywords = [line[4:] for line in lines[1:]]
        for keyword in (
            "PIPELINING",
            "SIZE 1000",
            "8BITMIME",
            "SMTPUTF8",
            "CHUNKING",
            "BINARYMIME",
            "DSN",
            "ENHANCEDSTATUSCODES",
        ):
            self.assertIn(keyword, keywords)
        self.assertTrue(lines[-1].startswith("250 "))
        # Neither STARTTLS (no certificate) nor AUTH (no portal) is offered.
        self.assertFalse([k for k in keywords if k.startswith(("STARTTLS", "AUTH"))])

    def test_helo(self) -> None:
        h = Harness()
        h.output()
        self.assertEqual(h.send("HELO client.example\r\n"), ["250 mx.example.org"])

    def test_helo_session_refuses_esmtp_parameters(self) -> None:
        h = Harness()
        h.output()
        h.send("HELO c\r\n")
        reply = h.send("MAIL FROM:<a@b.example> SIZE=10\r\n")
        self.assertTrue(reply[0].startswith("555 5.5.4"), reply)

    def test_mail_before_ehlo(self) -> None:
        h = Harness()
        h.output()
        self.assertEqual(
            h.send("MAIL FROM:<a@b.example>\r\n"), ["503 5.5.1 Error: send HELO/EHLO first"]
        )

    def test_simple_commands(self) -> None:
        h = Harness()
        h.ehlo()
        self.assertEqual(h.send("NOOP\r\n"), ["250 2.0.0 Ok"])
        self.assertEqual(h.send("RSET\r\n"), ["250 2.0.0 Ok"])
        self.assertTrue(h.send("VRFY bob\r\n")[0].startswith("252 "))
        self.assertTrue(h.send("EXPN list\r\n")[0].startswith("502 "))
        self.assertTrue(h.send("HELP\r\n")[0].startswith("214 "))
        self.assertEqual(h.send("QUIT\r\n"), ["221 2.0.0 Bye"])
        self.assertTrue(h.closed)

    def test_unknown_command(self) -> None:
        h = Harness()
        h.ehlo()
        self.assertEqual(h.send("FOO bar\r\n"), ["500 5.5.1 Command unrecognized"])
        self.assertFalse(h.closed)


class TransactionTests(SynchronousTestCase):
    def test_accepted_message_logged_once(self) -> None:
        events: list[LogEvent] = []

        def observe(event: LogEvent) -> None:
            if "accepted" in event:
                events.append(event)

        observer = cast(ILogObserver, observe)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        h = Harness()
        h.ehlo()
        replies = h.send(transaction())
        queue_id = replies[3].rsplit(" ", 1)[1]
        [event] = events
        [message] = h.local.messages
        self.assertEqual(
            formatEvent(event),
            f"{queue_id}: accepted from=<sender@client.example> rcpts=1 "
            f"size={len(message.data) - message.data.index(b'Subject:')} stored={queue_id}.1",
        )
        self.assertEqual(
            (event["id"], event["sender"], event["count"]),
            (queue_id, "sender@client.example", 1),
        )

    def test_message_is_delivered_with_received_header(self) -> None:
        h = Harness()
        h.ehlo()
        replies = h.send(transaction())
        self.assertEqual(
            replies[:3], ["250 2.1.0 Ok", "250 2.1.5 Ok", "354 End data with <CR><LF>.<CR><LF>"]
        )
        self.assertTrue(replies[3].startswith("250 2.0.0 Ok: queued as "), replies)
        [message] = h.local.messages
        self.assertTrue(message.data.startswith(b"Received: from client.example"))
        self.assertIn(b"by mx.example.org", message.data)
        self.assertIn(b"for <bob@example.org>", message.data)
        self.assertTrue(message.data.endswith(b"Subject: hi\r\n\r\nHello\r\n.leading dot\r\n"))
        env = message.envelope
        self.assertEqual(env.mail_from.address, "sender@client.example")
        self.assertEqual([r.address for r in env.recipients], ["bob@example.org"])
        self.assertEqual(env.helo, "client.example")
        self.assertEqual(env.peer, "192.0.2.10")
        self.assertIsNone(env.authenticated_as)
        self.assertFalse(env.tls)
        self.assertEqual(len(env.id), 32)
        self.assertIn(env.id, replies[3])
        self.assertGreater(env.received_at, 0)

    def test_pipelined_transactions_answer_in_order(self) -> None:
        h = Harness()
        h.ehlo()
        batch = (
            transaction() + transaction(("alice@example.org", "nobody@example.org")) + "QUIT\r\n"
        )
        replies = h.send(batch)
        codes = [r[:3] for r in replies]
        self.assertEqual(
            codes, ["250", "250", "354", "250", "250", "250", "550", "354", "250", "221"]
        )
        self.assertEqual(len(h.local.messages), 2)
        self.assertEqual(
            [r.address for r in h.local.messages[1].recipients], ["alice@example.org"]
        )

    def test_data_ends_only_at_crlf_dot_crlf(self) -> None:
        h = Harness()
        h.ehlo()
        h.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
        for piece in (b"line\r", b"\n.", b"x\r", b"\n.", b"\r", b"\n"):
            h.proto.dataReceived(piece)
        replies = h.output()
        self.assertEqual(len(replies), 1)
        self.assertTrue(replies[0].startswith("250 2.0.0"))
        self.assertTrue(h.local.messages[0].data.endswith(b"line\r\nx\r\n"))

    def test_empty_message(self) -> None:
        h = Harness()
        h.ehlo()
        replies = h.send("MAIL FROM:<>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n.\r\n")
        self.assertTrue(replies[-1].startswith("250 2.0.0"), replies)
        self.assertEqual(h.local.messages[0].envelope.mail_from.address, "")

    def test_dsn_and_smtputf8_parameters_kept_in_envelope(self) -> None:
        h = Harness()
        h.ehlo()
        h.send(
            "MAIL FROM:<ä@client.example> SMTPUTF8 BODY=8BITMIME RET=HDRS ENVID=QQ+2B1\r\n"
            "RCPT TO:<bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.org\r\n"
            "DATA\r\nx\r\n.\r\n"
        )
        env = h.local.messages[0].envelope
        self.assertEqual(env.mail_from.ret, "HDRS")
        self.assertEqual(env.mail_from.envid, "QQ+1")
        self.assertTrue(env.mail_from.smtputf8)
        self.assertEqual(env.recipients[0].notify, ("SUCCESS", "FAILURE"))
        self.assertEqual(env.recipients[0].orcpt, ("rfc822", "bob@example.org"))
        self.assertIn(b"with UTF8SMTP", h.local.messages[0].data)

    def test_rset_aborts_transaction(self) -> None:
        h = Harness()
        h.ehlo()
        h.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.org>\r\nRSET\r\n")
        self.assertEqual(h.send("DATA\r\n"), ["503 5.5.1 Error: need MAIL command"])

    def test_data_without_recipients(self) -> None:
        h = Harness()
        h.ehlo()
        h.send("MAIL FROM:<a@b.example>\r\n")
        self.assertEqual(h.send("DATA\r\n"), ["503 5.5.1 Error: need RCPT command"])

    def test_too_many_recipients(self) -> None:
        h = Harness(ServerSettings(max_recipients=2))
        h.ehlo()
        replies = h.send(
            "MAIL FROM:<a@b.example>\r\n"
            + "".join("RCPT TO:<bob@example.org>\r\n" for _ in range(3))
        )
        self.assertEqual(replies[-1], "452 4.5.3 Too many recipients")

    def test_recipient_limit_is_not_counted_as_errors(self) -> None:
        # 1,025 recipients: the 25 beyond the limit get 452 and nothing else
        # happens; the first 1,000 get their message (no 421 at the 20th 452).
        h = Harness()
        h.ehlo()
        replies = h.send(
            "MAIL FROM:<a@b.example>\r\n"
            + "RCPT TO:<bob@example.org>\r\n" * 1025
            + "DATA\r\nSubject: many\r\n\r\nhi\r\n.\r\n"
        )
        self.assertEqual(replies.count("452 4.5.3 Too many recipients"), 25)
        self.assertEqual(replies[-2], "354 End data with <CR><LF>.<CR><LF>")
        self.assertTrue(replies[-1].startswith("250 2.0.0 Ok: queued as"), replies[-1])
        self.assertEqual(len(h.local.messages[0].recipients), 1000)
        self.assertFalse(h.closed)

    def test_recipients_grouped_by_target(self) -> None:
        h = Harness(relay_networks=(ip_network("192.0.2.0/24"),))
        h.ehlo()
        h.send(
            transaction(("bob@example.org", "x@far.example", "alice@example.org", "y@far.example"))
        )
        self.assertEqual(h.local.opened, 1)
        self.assertEqual(h.relay.opened, 1)
        self.assertEqual(
            [r.address for r in h.local.messages[0].recipients],
            ["bob@example.org", "alice@example.org"],
        )
        self.assertEqual(
            [r.address for r in h.relay.messages[0].recipients], ["x@far.example", "y@far.example"]
        )
        # Each target sees the whole envelope, and the same bytes.
        self.assertEqual(len(h.relay.messages[0].envelope.recipients), 4)
        self.assertEqual(h.local.messages[0].data, h.relay.messages[0].data)
        self.assertNotIn(b"for <", h.local.messages[0].data)  # no Bcc leak with >1 recipient


class RelayPolicyTests(SynchronousTestCase):
    def test_never_an_open_relay(self) -> None:
        h = Harness()
        h.ehlo()
        h.send("MAIL FROM:<a@b.example>\r\n")
        self.assertEqual(
            h.send("RCPT TO:<victim@far.example>\r\n"), ["554 5.7.1 Relay access denied"]
        )
        # Tricks with the local domain in the local part do not help either.
        self.assertTrue(h.send('RCPT TO:<"x@example.org"@far.example>\r\n')[0].startswith("554"))
        self.assertTrue(h.send("RCPT TO:<x%far.example@far.example>\r\n")[0].startswith("554"))
        self.assertEqual(h.relay.opened, 0)

    def test_unknown_local_user(self) -> None:
        h = Harness()
        h.ehlo()
        h.send("MAIL FROM:<a@b.example>\r\n")
        self.assertEqual(
            h.send("RCPT TO:<nobody@example.org>\r\n"),
            ["550 5.1.1 Recipient address rejected: User unknown"],
        )

    def test_postmaster_always_accepted(self) -> None:
        h = Harness(user_exists=lambda user: False)
        h.ehlo()
        h.send("MAIL FROM:<a@b.example>\r\n")
        self.assertEqual(h.send("RCPT TO:<Postmaster>\r\n"), ["250 2.1.5 Ok"])
        self.assertEqual(h.send("RCPT TO:<postmaster@EXAMPLE.org>\r\n"), ["250 2.1.5 Ok"])

    def test_relay_network_may_relay(self) -> None:
        h = Harness(relay_networks=(ip_network("192.0.2.0/24"),))
        h.ehlo()
        h.send(transaction(("x@far.example",)))
        self.assertEqual(len(h.relay.messages), 1)

    def test_relay_network_mapped_ipv6_peer(self) -> None:
        h = Harness(peer="::ffff:192.0.2.7", relay_networks=(ip_network("192.0.2.0/24"),))
        h.ehlo()
        h.send("MAIL FROM:<a@b.example>\r\n")
        self.assertEqual(h.send("RCPT TO:<x@far.example>\r\n"), ["250 2.1.5 Ok"])

    def test_outside_relay_network_may_not_relay(self) -> None:
        h = Harness(peer="198.51.100.1", relay_networks=(ip_network("192.0.2.0/24"),))
        h.ehlo()
        h.send("MAIL FROM:<a@b.example>\r\n")
        self.assertTrue(h.send("RCPT TO:<x@far.example>\r\n")[0].startswith("554 5.7.1"))

    def test_peer_facts(self) -> None:
        """Each peer address is parsed once; the answers match a fresh parse."""
        cases = [
            (IPv4Address("TCP", "127.0.0.1", 1), ("127.0.0.1", ip_address("127.0.0.1"), True)),
            (
                IPv6Address("TCP", "::ffff:192.0.2.7", 1),
                ("::ffff:192.0.2.7", ip_address("192.0.2.7"), False),
            ),
            (IPv6Address("TCP", "::1", 1), ("::1", ip_address("::1"), True)),
            (UNIXAddress(b"/tmp/s"), ("", None, True)),
            (IPv4Address("TCP", "not-an-ip", 1), ("", None, True)),
        ]
        for address, expected in cases:
            self.assertEqual(_peer_facts(address), expected)
        hits = _parse_peer.cache_info().hits
        _peer_facts(IPv4Address("TCP", "127.0.0.1", 2))
        self.assertEqual(_parse_peer.cache_info().hits, hits + 1)

    def test_loopback_peer_outside_relay_networks(self) -> None:
        h = Harness(peer="127.0.0.1", relay_networks=(ip_network("192.0.2.0/24"),))
        self.assertTrue(h.proto.peer_is_loopback)
        self.assertFalse(h.proto.in_relay_network)
        h = Harness(peer="192.0.2.9", relay_networks=(ip_network("192.0.2.0/24"),))
        self.assertFalse(h.proto.peer_is_loopback)
        self.assertTrue(h.proto.in_relay_network)


@implementer(IRecipientPolicy)
class SlowPolicy:
    """Answers only when the test fires the Deferreds; records the calls."""

    def __init__(self, target: IDeliveryTarget) -> None:
        self.target = target
        self.pending: list[Deferred[Any]] = []
        self.calls: list[str] = []

    def check_sender(self, session: SessionInfo, mail_from: MailFrom) -> Deferred[None]:
        self.calls.append("MAIL " + mail_from.address)
        d: Deferred[None] = Deferred()
        self.pending.append(d)
        return d

    def route(
        self, session: SessionInfo, mail_from: MailFrom, rcpt: RcptTo
    ) -> Deferred[IDeliveryTarget]:
        self.calls.append("RCPT " + rcpt.address)
        d: Deferred[IDeliveryTarget] = Deferred()
        self.pending.append(d)
        return d


class PipeliningOrderTests(SynchronousTestCase):
    def test_commands_wait_for_the_previous_one(self) -> None:
        target = CaptureTarget()
        policy = SlowPolicy(target)
        h = Harness(policy=policy)
        h.ehlo()
        replies = h.send(
            "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<c@example.org>\r\n"
            "DATA\r\nx\r\n.\r\nNOOP\r\n"
        )
        self.assertEqual(replies, [])
        self.assertEqual(policy.calls, ["MAIL a@b.example"])
        self.assertEqual(h.transport.producerState, "paused")
        policy.pending[0].callback(None)
        self.assertEqual(h.output(), ["250 2.1.0 Ok"])
        self.assertEqual(policy.calls[-1], "RCPT bob@example.org")
        policy.pending[1].callback(target)
        self.assertEqual(h.output(), ["250 2.1.5 Ok"])
        policy.pending[2].callback(target)
        replies = h.output()
        self.assertEqual([r[:3] for r in replies], ["250", "354", "250", "250"])
        self.assertEqual(h.transport.producerState, "producing")
        self.assertEqual(len(target.messages), 1)


class _HeldSink:
    def __init__(self, log: list[str], name: str, result: Deferred[str]) -> None:
        self.log, self.name, self.result = log, name, result

    def write(self, data: bytes) -> None:
        self.log.append(f"{self.name} write")

    def commit(self) -> Deferred[str]:
        self.log.append(f"{self.name} commit")
        return self.result

    def abort(self) -> None:
        self.log.append(f"{self.name} abort")


@implementer(IDeliveryTarget)
class HeldTarget:
    """A target whose commits fire only when the test says so."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name
        self.results: list[Deferred[str]] = []

    def open(self, envelope: Envelope, recipients: Sequence[RcptTo]) -> IMessageSink:
        d: Deferred[str] = Deferred()
        self.results.append(d)
        return _HeldSink(self.log, self.name, d)  # type: ignore[return-value]


@implementer(IRecipientPolicy)
class SplitPolicy:
    def __init__(self, a: IDeliveryTarget, b: IDeliveryTarget) -> None:
        self.a, self.b = a, b

    def check_sender(self, session: SessionInfo, mail_from: MailFrom) -> Deferred[None]:
        return succeed(None)

    def route(
        self, session: SessionInfo, mail_from: MailFrom, rcpt: RcptTo
    ) -> Deferred[IDeliveryTarget]:
        return succeed(self.a if rcpt.address.startswith("a") else self.b)


class DurabilityTests(SynchronousTestCase):
    def test_250_only_after_every_commit(self) -> None:
        log: list[str] = []
        a, b = HeldTarget(log, "a"), HeldTarget(log, "b")
        h = Harness(policy=SplitPolicy(a, b))
        h.ehlo()
        replies = h.send(transaction(("a@x.example", "b@x.example")) + "NOOP\r\n")
        self.assertEqual([r[:3] for r in replies], ["250", "250", "250", "354"])
        a.results[0].callback("id-a")
        self.assertEqual(h.output(), [])
        b.results[0].callback("id-b")
        replies = h.output()
        self.assertTrue(replies[0].startswith("250 2.0.0 Ok: queued as"))
        self.assertEqual(replies[1], "250 2.0.0 Ok")  # the NOOP waited for the commit
        self.assertNotIn("a abort", log)

    def test_one_failed_commit_aborts_all_and_says_451(self) -> None:
        log: list[str] = []
        a, b = HeldTarget(log, "a"), HeldTarget(log, "b")
        h = Harness(policy=SplitPolicy(a, b))
        h.ehlo()
        h.send(transaction(("a@x.example", "b@x.example")))
        a.results[0].callback("id-a")
        b.results[0].errback(OSError("disk full"))
        self.assertEqual(h.output(), ["451 4.3.0 Error: local error in processing"])
        self.assertIn("a abort", log)
        self.assertIn("b abort", log)
        self.flushLoggedErrors(OSError)
        # The session goes on.
        self.assertEqual(h.send("NOOP\r\n"), ["250 2.0.0 Ok"])

    def test_capture_commit_failure(self) -> None:
        h = Harness()
        h.local.fail_commits = True
        h.ehlo()
        replies = h.send(transaction())
        self.assertEqual(replies[-1], "451 4.3.0 Error: local error in processing")
        self.assertEqual(h.local.messages, [])
        self.flushLoggedErrors(OSError)

    def test_disconnect_mid_data_delivers_nothing(self) -> None:
        log: list[str] = []
        a = HeldTarget(log, "a")
        h = Harness(policy=SplitPolicy(a, a))
        h.ehlo()
        h.send("MAIL FROM:<x@y.example>\r\nRCPT TO:<a@x.example>\r\nDATA\r\nSubject: half\r\n")
        h.proto.connectionLost(Exception("reset"))  # type: ignore[arg-type]
        self.assertEqual(log[-1], "a abort")
        self.assertNotIn("a commit", log)

    def test_disconnect_mid_data_capture(self) -> None:
        h = Harness()
        h.ehlo()
        h.send("MAIL FROM:<x@y.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nhalf")
        h.proto.connectionLost(Exception("reset"))  # type: ignore[arg-type]
        self.assertEqual(h.local.messages, [])
        self.assertEqual(h.local.aborted, 1)


class SizeTests(SynchronousTestCase):
    def test_declared_size_too_big(self) -> None:
        h = Harness(ServerSettings(max_size=100))
        h.ehlo()
        self.assertEqual(
            h.send("MAIL FROM:<a@b.example> SIZE=101\r\n"),
            ["552 5.3.4 Message size exceeds fixed maximum message size"],
        )

    def test_data_beyond_limit_is_refused_and_dropped(self) -> None:
        h = Harness(ServerSettings(max_size=100))
        h.ehlo()
        replies = h.send(transaction(body="x" * 60 + "\r\n" + "y" * 60 + "\r\n") + "NOOP\r\n")
        self.assertEqual(
            replies[-2:],
            ["552 5.3.4 Message size exceeds fixed maximum message size", "250 2.0.0 Ok"],
        )
        self.assertEqual(h.local.messages, [])
        self.assertEqual(h.local.aborted, 1)

    def test_lying_size_parameter_does_not_help(self) -> None:
        h = Harness(ServerSettings(max_size=100))
        h.ehlo()
        replies = h.send(
            "MAIL FROM:<a@b.example> SIZE=10\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n"
            + "z" * 500
            + "\r\n.\r\n"
        )
        self.assertTrue(replies[-1].startswith("552 5.3.4"))
        self.assertEqual(h.local.messages, [])

    def test_bdat_beyond_limit(self) -> None:
        h = Harness(ServerSettings(max_size=100))
        h.ehlo()
        replies = h.send(
            "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.org>\r\nBDAT 80\r\n"
            + "a" * 80
            + "BDAT 80 LAST\r\n"
            + "b" * 80
            + "NOOP\r\n"
        )
        self.assertEqual(replies[-3], "250 2.0.0 Ok: 80 octets received")
        self.assertTrue(replies[-2].startswith("552 5.3.4"))
        self.assertEqual(replies[-1], "250 2.0.0 Ok")
        self.assertEqual(h.local.messages, [])


class BdatTests(SynchronousTestCase):
    def test_chunks(self) -> None:
        h = Harness()
        h.ehlo()
        replies = h.send(
            "MAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<bob@example.org>\r\n"
            "BDAT 7\r\nab\r\n.\0\xffBDAT 0\r\nBDAT 3 LAST\r\nxyzQUIT\r\n".encode("latin-1")
        )
        self.assertEqual(
            replies[2:5],
            ["250 2.0.0 Ok: 7 octets received", "250 2.0.0 Ok: 7 octets received", replies[4]],
        )
        self.assertTrue(replies[4].startswith("250 2.0.0 Ok: queued as"))
        self.assertEqual(replies[5], "221 2.0.0 Bye")
        data = h.local.messages[0].data
        self.assertTrue(data.endswith(b"\r\nab\r\n.\0\xffxyz"))  # binary, not unstuffed

    def test_bdat_zero_last(self) -> None:
        h = Harness()
        h.ehlo()
        replies = h.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.org>\r\nBDAT 0 LAST\r\n")
        self.assertTrue(replies[-1].startswith("250 2.0.0 Ok: queued"))

    def test_refused_bdat_chunk_is_discarded_not_executed(self) -> None:
        h = Harness()
        h.ehlo()
        chunk = "RCPT TO:<x@far.example>\r\n"
        replies = h.send(f"BDAT {len(chunk)}\r\n{chunk}NOOP\r\n")
        self.assertEqual(replies, ["503 5.5.1 Error: need MAIL command", "250 2.0.0 Ok"])

    def test_data_after_bdat_refused(self) -> None:
        h = Harness()
        h.ehlo()
        replies = h.send(
            "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.org>\r\nBDAT 1\r\nxDATA\r\n"
        )
        self.assertEqual(replies[-1], "503 5.5.1 Error: DATA not permitted after BDAT")

    def test_malformed_bdat_closes(self) -> None:
        h = Harness()
        h.ehlo()
        h.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.org>\r\n")
        self.assertEqual(h.send("BDAT lots\r\n"), ["501 5.5.4 Syntax: BDAT chunk-size [LAST]"])
        self.assertTrue(h.closed)


class TimeoutTests(SynchronousTestCase):
    def test_idle_timeout(self) -> None:
        h = Harness(ServerSettings(idle_timeout=60.0))
        h.ehlo()
        h.clock.advance(59)
        self.assertFalse(h.closed)
        h.clock.advance(2)
        self.assertEqual(h.output(), ["421 4.4.2 Error: timeout exceeded"])
        self.assertTrue(h.closed)


class CommandRateTests(SynchronousTestCase):
    def test_commands_beyond_the_burst_wait_their_turn(self) -> None:
        h = Harness(ServerSettings(command_rate=2.0, command_burst=3))
        h.output()
        replies = h.send("EHLO c\r\nNOOP\r\nNOOP\r\nNOOP\r\nQUIT\r\n")
        self.assertEqual(replies[-1], "250 2.0.0 Ok")
        self.assertEqual(sum(r == "250 2.0.0 Ok" for r in replies), 2)
        h.clock.advance(0.5)
        self.assertEqual(h.output(), ["250 2.0.0 Ok"])
        self.assertFalse(h.closed)
        h.clock.advance(0.5)
        self.assertEqual(h.output(), ["221 2.0.0 Bye"])
        self.assertTrue(h.closed)

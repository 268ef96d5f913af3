"""Delivery targets and the default recipient policy: Maildir, capture, fan-out, routing."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from netproto_twisted.mailstore.maildir import MaildirStore
from netproto_twisted.smtp import MailFrom, RcptTo
from netproto_twisted.smtp.delivery import (
    CaptureTarget,
    DefaultPolicy,
    FanOutSink,
    MaildirTarget,
    commit_all,
    default_user_of,
)
from netproto_twisted.smtp.errors import CommandError
from netproto_twisted.smtp.interfaces import (
    Envelope,
    IDeliveryTarget,
    IRevocableSink,
    SessionInfo,
)

from .test_server_support import Harness


def run_now(f: Any, *args: Any, **kwargs: Any) -> Deferred[Any]:
    return maybeDeferred(f, *args, **kwargs)


ENVELOPE = Envelope(MailFrom("a@b.example"), (RcptTo("bob@example.org"),), id="0" * 32)
SESSION = SessionInfo(
    peer="192.0.2.1", helo="c", authenticated_as=None, tls=False, relay_allowed=False
)
RELAYER = SessionInfo(
    peer="192.0.2.1", helo="c", authenticated_as="u", tls=True, relay_allowed=True
)


class MaildirTargetTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.base = Path(self.mktemp())
        self.store = MaildirStore(str(self.base), runner=run_now)
        self.target = MaildirTarget(self.store)

    def new(self, user: str) -> list[bytes]:
        directory = self.base / user / "new"
        return [p.read_bytes() for p in sorted(directory.iterdir())] if directory.is_dir() else []

    def test_one_file_linked_for_each_distinct_user(self) -> None:
        rcpts = [RcptTo("Bob@example.org"), RcptTo("alice@example.org"), RcptTo("bob@example.net")]
        sink = self.target.open(ENVELOPE, rcpts)
        sink.write(b"Subject: x\r\n\r\n")
        sink.write(b"body\r\n")
        name = self.successResultOf(sink.commit())
        self.assertEqual(self.new("bob"), [b"Subject: x\n\nbody\n"])  # stored with LF
        self.assertEqual(self.new("alice"), [b"Subject: x\n\nbody\n"])
        bob, alice = (self.base / user / "new" / name for user in ("bob", "alice"))
        self.assertEqual(bob.stat().st_ino, alice.stat().st_ino)  # written once, linked twice
        self.assertEqual(bob.stat().st_nlink, 2)  # the tmp/ file is gone

    def test_abort_leaves_nothing(self) -> None:
        sink = self.target.open(ENVELOPE, [RcptTo("bob@example.org")])
        sink.write(b"x" * 200_000)  # past the writer's buffer: a tmp file exists
        sink.abort()
        sink.abort()  # idempotent
        self.assertEqual(self.new("bob"), [])
        tmp = self.base / "bob" / "tmp"
        self.assertEqual(list(tmp.iterdir()) if tmp.is_dir() else [], [])

    def test_server_delivers_to_maildir(self) -> None:
        h = Harness(policy=DefaultPolicy(["example.org"], self.target))
        h.ehlo()
        replies = h.send(
            "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<BOB@example.org>\r\n"
            "DATA\r\nSubject: hi\r\n\r\n..x\r\n.\r\n"
        )
        self.assertTrue(replies[-1].startswith("250 2.0.0 Ok: queued as"), replies)
        [stored] = self.new("bob")
        self.assertTrue(stored.startswith(b"Received: from client.example"))
        self.assertTrue(stored.endswith(b"\nSubject: hi\n\n.x\n"))  # stored with LF

    def test_user_of(self) -> None:
        self.assertEqual(default_user_of("Bob@Example.org"), "bob")
        self.assertEqual(default_user_of("Postmaster"), "postmaster")
        self.assertEqual(default_user_of('"b o"@example.org'), "b o")


class _Writer:
    def __init__(self, result: Deferred[str]) -> None:
        self.result = result
        self.chunks: list[bytes] = []
        self.aborted = 0

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def commit(self) -> Deferred[str]:
        return self.result

    def abort(self) -> None:
        self.aborted += 1


class FanOutSinkTests(SynchronousTestCase):
    def test_writes_everywhere_and_joins_ids(self) -> None:
        a, b = _Writer(succeed("a")), _Writer(succeed("b"))
        sink = FanOutSink([a, b])
        sink.write(b"x")
        self.assertEqual(self.successResultOf(sink.commit()), "a b")
        self.assertEqual(a.chunks, b.chunks)

    def test_one_failure_fails_the_commit(self) -> None:
        sink = FanOutSink([_Writer(succeed("a")), _Writer(fail(OSError("full")))])
        self.failureResultOf(sink.commit(), OSError)


class CaptureTargetTests(SynchronousTestCase):
    def test_wait_for(self) -> None:
        target = CaptureTarget()
        waiting = target.wait_for(2)
        for n in range(2):
            sink = target.open(ENVELOPE, ENVELOPE.recipients)
            sink.write(b"m%d" % n)
            self.assertNoResult(waiting)
            self.successResultOf(sink.commit())
        self.assertEqual([m.data for m in self.successResultOf(waiting)], [b"m0", b"m1"])
        self.assertEqual(len(self.successResultOf(target.wait_for(1))), 1)


class DefaultPolicyTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.local, self.relay = CaptureTarget(), CaptureTarget()
        self.policy = DefaultPolicy(
            ["Example.ORG."], self.local, self.relay, user_exists={"bob"}.__contains__
        )

    def route(self, address: str, session: SessionInfo = SESSION) -> Any:
        d = self.policy.route(session, MailFrom("a@b.example"), RcptTo(address))
        return d

    def refusal(self, address: str, session: SessionInfo = SESSION) -> str:
        failure = self.failureResultOf(self.route(address, session), CommandError)
        return str(failure.value)

    def test_local(self) -> None:
        self.assertIs(self.successResultOf(self.route("bob@example.org")), self.local)
        self.assertIs(self.successResultOf(self.route("BOB@EXAMPLE.ORG.")), self.local)
        self.assertIs(self.successResultOf(self.route("Postmaster")), self.local)
        self.assertEqual(
            self.refusal("eve@example.org"), "550 5.1.1 Recipient address rejected: User unknown"
        )

    def test_relay_only_when_allowed(self) -> None:
        self.assertEqual(self.refusal("x@far.example"), "554 5.7.1 Relay access denied")
        self.assertIs(self.successResultOf(self.route("x@far.example", RELAYER)), self.relay)
        no_relay = DefaultPolicy(["example.org"], self.local, None)
        d = no_relay.route(RELAYER, MailFrom(""), RcptTo("x@far.example"))
        self.assertEqual(str(self.failureResultOf(d, CommandError).value)[:9], "554 5.7.1")

    def test_sender_accepted(self) -> None:
        self.successResultOf(self.policy.check_sender(SESSION, MailFrom("")))

    def test_user_lookups_remembered_for_a_second(self) -> None:
        users = {"bob"}
        asked: list[str] = []
        now = [100.0]

        def exists(user: str) -> bool:
            asked.append(user)
            return user in users

        policy = DefaultPolicy(
            ["example.org"], self.local, user_exists=exists, clock=lambda: now[0]
        )

        def route(address: str) -> Any:
            return policy.route(SESSION, MailFrom(""), RcptTo(address))

        for _ in range(3):
            self.assertIs(self.successResultOf(route("bob@example.org")), self.local)
            self.failureResultOf(route("eve@example.org"), CommandError)
        self.assertEqual(asked, ["bob", "eve"])  # once each, not once per RCPT
        users.add("eve")
        now[0] += 0.9
        self.failureResultOf(route("eve@example.org"), CommandError)  # still remembered
        now[0] += 0.1
        self.assertIs(self.successResultOf(route("eve@example.org")), self.local)
        self.assertEqual(asked, ["bob", "eve", "eve"])
        now[0] -= 50  # a clock that goes back forgets too
        self.successResultOf(route("bob@example.org"))
        self.assertEqual(asked[-1], "bob")

    def test_user_cache_off_and_bounded(self) -> None:
        asked: list[str] = []

        def exists(user: str) -> bool:
            asked.append(user)
            return True

        off = DefaultPolicy(["example.org"], self.local, user_exists=exists, user_cache_seconds=0)
        for _ in range(2):
            off.route(SESSION, MailFrom(""), RcptTo("bob@example.org"))
        self.assertEqual(asked, ["bob", "bob"])
        small = DefaultPolicy(["example.org"], self.local, user_exists=exists, clock=lambda: 5.0)
        small.user_cache_size = 2
        for name in ["a", "b", "c", "c"]:
            small.route(SESSION, MailFrom(""), RcptTo(f"{name}@example.org"))
        self.assertEqual(asked[2:], ["a", "b", "c", "c"])  # a third user is not remembered

    def test_no_local_target(self) -> None:
        policy = DefaultPolicy(["example.org"], None)
        d = policy.route(SESSION, MailFrom(""), RcptTo("bob@example.org"))
        self.assertEqual(self.failureResultOf(d, CommandError).value.code, 550)


class _SlowSink:
    """A sink whose every write asks the server to wait until the test releases it."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.waits: list[Deferred[None]] = []
        self.committed = False

    def write(self, data: bytes) -> Deferred[None]:
        self.data.append(data)
        wait: Deferred[None] = Deferred()
        self.waits.append(wait)
        return wait

    def commit(self) -> Deferred[str]:
        self.committed = True
        return succeed("slow.1")

    def abort(self) -> None:
        pass


@implementer(IDeliveryTarget)
class _SlowTarget:
    def __init__(self) -> None:
        self.sink = _SlowSink()

    def open(self, envelope: Envelope, recipients: object) -> _SlowSink:
        return self.sink


class SinkBackpressureTests(SynchronousTestCase):
    def test_server_stops_reading_while_a_sink_waits(self) -> None:
        target = _SlowTarget()
        h = Harness(policy=DefaultPolicy(["example.org"], target, CaptureTarget(),
                                         user_exists=lambda u: True))
        h.ehlo()
        replies = h.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
        self.assertEqual([r[:3] for r in replies], ["250", "250", "354"])
        sink = target.sink
        self.assertEqual(len(sink.waits), 1)  # the Received header's write
        h.proto.dataReceived(b"first line\r\n")
        self.assertEqual(h.transport.producerState, "paused")  # reading stopped
        h.proto.dataReceived(b"second line\r\n.\r\nQUIT\r\n")  # still in the kernel's hands
        self.assertFalse(sink.committed)
        self.assertEqual(h.output(), [])
        while not sink.committed:
            waiting = [w for w in sink.waits if not w.called]
            self.assertTrue(waiting)
            waiting[0].callback(None)
        self.assertEqual(b"".join(sink.data[1:]), b"first line\r\nsecond line\r\n")
        self.assertEqual([r[:3] for r in h.output()], ["250"])
        for wait in sink.waits:  # QUIT waits until the sink has caught up
            if not wait.called:
                wait.callback(None)
        self.assertEqual([r[:3] for r in h.output()], ["221"])


class _RevocableWriter(_Writer):
    def __init__(self, result: Deferred[str]) -> None:
        super().__init__(result)
        self.revoked = 0

    def revoke(self) -> Deferred[None]:
        self.revoked += 1
        return succeed(None)


class CommitAllTests(SynchronousTestCase):
    def test_revocable_sinks_commit_first_and_are_revoked_when_a_later_one_fails(self) -> None:
        order: list[str] = []

        class Recording(_Writer):
            def __init__(self, name: str, result: Deferred[str]) -> None:
                super().__init__(result)
                self.name = name

            def commit(self) -> Deferred[str]:
                order.append(self.name)
                return self.result

        spool = FanOutSink([Recording("spool", fail(OSError("queue disk full")))])
        local_writer = _RevocableWriter(succeed("m1"))
        local = FanOutSink([local_writer])
        self.assertTrue(IRevocableSink.providedBy(local))
        self.assertFalse(IRevocableSink.providedBy(spool))
        self.failureResultOf(commit_all([spool, local]), OSError)
        self.assertEqual(local_writer.revoked, 1)  # no copy left for the retry to duplicate

    def test_the_rest_is_aborted_after_a_failure(self) -> None:
        first = _RevocableWriter(fail(OSError("no")))
        later = _Writer(succeed("x"))
        self.failureResultOf(commit_all([FanOutSink([later]), FanOutSink([first])]), OSError)
        self.assertEqual((first.revoked, later.aborted), (0, 1))

    def test_all_ids_when_every_sink_commits(self) -> None:
        sinks = [FanOutSink([_Writer(succeed("q1"))]),
                 FanOutSink([_RevocableWriter(succeed("m1"))])]
        self.assertEqual(sorted(self.successResultOf(commit_all(sinks))), ["m1", "q1"])


class MixedTransactionTests(SynchronousTestCase):
    def test_relay_failure_leaves_no_local_copy(self) -> None:
        base = Path(self.mktemp())
        store = MaildirStore(str(base), runner=run_now)
        relay = CaptureTarget()
        relay.fail_commits = True
        h = Harness(policy=DefaultPolicy(["example.org"], MaildirTarget(store), relay,
                                         user_exists=lambda u: True),
                    relay_networks=(ip_network("192.0.2.0/24"),))
        h.ehlo()
        replies = h.send(
            "MAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.org>\r\n"
            "RCPT TO:<carol@elsewhere.example>\r\nDATA\r\nSubject: s\r\n\r\nbody\r\n.\r\n"
        )
        self.assertEqual([r[:3] for r in replies], ["250", "250", "250", "354", "451"])
        self.assertEqual(list((base / "bob" / "new").iterdir()), [])
        self.assertEqual(list((base / "bob" / "tmp").iterdir()), [])
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)  # the 451's cause, logged

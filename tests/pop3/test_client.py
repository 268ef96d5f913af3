"""Our POP3 client against our server, in memory (testing.memory): no socket, no real time."""

from __future__ import annotations

import io
import os

from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from netproto_twisted.pop3 import (
    MaildirMaildrops,
    POP3ConnectionLost,
    POP3Error,
    POP3ReplyError,
    POP3ServerFactory,
    POP3Settings,
    connect_pop3,
)
from netproto_twisted.testing import MemoryEndpoint

from .helpers import (
    MESSAGES,
    PASSWORD,
    USER,
    authenticator,
    inline,
    maildir_files,
    make_maildir,
    password_file,
)


@implementer(IConsumer)
class Consumer:
    def __init__(self) -> None:
        self.data = bytearray()

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.data += data


class ClientTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.base = os.path.join(self.dir, "mail")
        make_maildir(self.base)
        self.clock = MemoryReactorClock()
        users = password_file(self.dir)
        factory = POP3ServerFactory(
            self.clock,
            MaildirMaildrops(self.base, inline),
            authenticator(users, self.clock),
            POP3Settings(hostname="pop.test", allow_insecure_auth=True),
            runner=inline,
        )
        self.endpoint = MemoryEndpoint(factory, self.clock)

    def connect(self, **kwargs: object):  # type: ignore[no-untyped-def]
        d = connect_pop3(self.clock, "localhost", tls="none", endpoint=self.endpoint, **kwargs)  # type: ignore[arg-type]
        return self.endpoint.result_of(d)

    def test_poplib_parity(self) -> None:
        client = self.connect()
        run = self.endpoint.result_of
        self.assertEqual(client.welcome, "pop.test POP3 server ready")
        self.assertIsNone(client.timestamp)
        self.assertRaises(POP3Error, client.apop, USER, PASSWORD)
        self.assertEqual(run(client.utf8()), "UTF8 enabled")
        self.assertEqual(run(client.user(USER)), "send PASS")
        self.assertEqual(run(client.pass_(PASSWORD)), "maildrop has 3 messages (168 octets)")
        self.assertEqual(run(client.stat()), (3, 168))
        self.assertEqual(run(client.list()), [(1, 51), (2, 71), (3, 46)])
        self.assertEqual(run(client.list(2)), (2, 71))
        uids = run(client.uidl())
        self.assertEqual([n for n, _ in uids], [1, 2, 3])
        self.assertEqual(run(client.uidl(3)), uids[2])
        self.assertEqual(run(client.retr(2)), MESSAGES[1])
        self.assertEqual(run(client.retr(3)), MESSAGES[2].replace(b"\n", b"\r\n"))
        self.assertEqual(run(client.top(2, 0)), b"From: carol@example.org\r\nSubject: two\r\n\r\n")
        self.assertEqual(run(client.noop()), "")
        self.assertEqual(run(client.dele(1)), "message 1 deleted")
        with self.assertRaises(POP3ReplyError) as caught:
            run(client.retr(1))
        self.assertEqual(str(caught.exception), "-ERR message 1 already deleted")
        self.assertIn("3 messages", run(client.rset()))
        run(client.dele(2))
        self.assertEqual(len(maildir_files(self.base)), 3)
        self.assertIn("1 messages deleted", run(client.quit()))
        self.assertEqual(len(maildir_files(self.base)), 2)

    def test_retr_streamed_to_a_file_and_a_consumer(self) -> None:
        client = self.connect(username=USER, password=PASSWORD)
        f = io.BytesIO()
        self.assertEqual(self.endpoint.result_of(client.retr(1, f)), len(MESSAGES[0]))
        self.assertEqual(f.getvalue(), MESSAGES[0])
        consumer = Consumer()
        self.assertEqual(self.endpoint.result_of(client.retr(2, consumer)), len(MESSAGES[1]))
        self.assertEqual(bytes(consumer.data), MESSAGES[1])

    def test_sasl_mechanisms(self) -> None:
        for mechanism in ("SCRAM-SHA-256", "PLAIN", "LOGIN", None):
            client = self.connect(username=USER, password=PASSWORD, mechanism=mechanism)
            self.assertEqual(self.endpoint.result_of(client.stat()), (3, 168))
            self.endpoint.result_of(client.quit())

    def test_pipelined_commands(self) -> None:
        client = self.connect()
        login = client.login(USER, PASSWORD)
        stat, listing, body = client.stat(), client.list(), client.retr(1)
        self.assertIn("3 messages", self.endpoint.result_of(login))
        self.assertEqual(self.endpoint.result_of(stat), (3, 168))
        self.assertEqual(len(self.endpoint.result_of(listing)), 3)
        self.assertEqual(self.endpoint.result_of(body), MESSAGES[0])

    def test_errors_carry_response_codes(self) -> None:
        first = self.connect(username=USER, password=PASSWORD)
        second = self.connect()
        self.endpoint.result_of(second.user(USER))
        with self.assertRaises(POP3ReplyError) as caught:
            self.endpoint.result_of(second.pass_(PASSWORD))
        self.assertEqual(caught.exception.response_code, "IN-USE")
        self.assertTrue(caught.exception.temporary)
        self.endpoint.result_of(second.user(USER))
        d = second.pass_("wrong")
        self.endpoint.flush()
        self.endpoint.advance(1.0)
        with self.assertRaises(POP3ReplyError) as caught:
            self.endpoint.result_of(d)
        self.assertEqual(caught.exception.response_code, "AUTH")
        self.assertTrue(caught.exception.permanent)
        self.endpoint.result_of(first.quit())

    def test_starttls_required_but_not_offered(self) -> None:
        d = connect_pop3(self.clock, "localhost", tls="starttls", endpoint=self.endpoint)
        with self.assertRaises(POP3Error) as caught:
            self.endpoint.result_of(d)
        self.assertIn("STLS", str(caught.exception))

    def test_connection_lost_fails_pending_commands(self) -> None:
        client = self.connect(username=USER, password=PASSWORD)
        d = client.stat()
        self.endpoint.pair.close()
        with self.assertRaises(POP3ConnectionLost):
            self.endpoint.result_of(d)

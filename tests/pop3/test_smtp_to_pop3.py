"""End to end in memory: mail sent through our SMTP server is read through our POP3 server."""

from __future__ import annotations

import os

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from netproto_twisted.pop3 import MaildirMaildrops, POP3ServerFactory, POP3Settings, connect_pop3
from netproto_twisted.testing import MemoryEndpoint

from .helpers import PASSWORD, USER, authenticator, deliver_by_smtp, inline, password_file


class SMTPToPOP3Tests(SynchronousTestCase):
    def test_what_smtp_delivers_pop3_serves_and_deletes(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        base = os.path.join(directory, "mail")
        clock = MemoryReactorClock()
        bodies = [
            b"Subject: first\r\n\r\n.dot line\r\nbody\r\n",
            b"Subject: second\r\n\r\n" + b"long line " * 2000 + b"\r\n",
        ]
        deliver_by_smtp(base, bodies)

        pop3 = MemoryEndpoint(
            POP3ServerFactory(
                clock,
                MaildirMaildrops(base, inline),
                authenticator(password_file(directory), clock),
                POP3Settings(allow_insecure_auth=True),
                runner=inline,
            ),
            clock,
        )
        client = pop3.result_of(
            connect_pop3(clock, "localhost", tls="none", username=USER, password=PASSWORD,
                         endpoint=pop3)
        )  # fmt: skip
        listing = pop3.result_of(client.list())
        self.assertEqual(len(listing), 2)
        for (number, size), body in zip(listing, bodies, strict=True):
            message = pop3.result_of(client.retr(number))
            self.assertEqual(len(message), size)
            self.assertTrue(message.startswith(b"Received: "))  # the SMTP server's trace
            self.assertTrue(message.endswith(body))
        pop3.result_of(client.dele(1))
        pop3.result_of(client.quit())
        again = pop3.result_of(
            connect_pop3(clock, "localhost", tls="none", username=USER, password=PASSWORD,
                         endpoint=pop3)
        )  # fmt: skip
        self.assertEqual(pop3.result_of(again.stat())[0], 1)
        self.assertTrue(pop3.result_of(again.retr(1)).endswith(bodies[1]))
        pop3.result_of(again.quit())

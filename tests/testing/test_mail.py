"""netproto_twisted.testing.start_mail_servers: the documented example, run as a test."""

from __future__ import annotations

import time

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from netproto_twisted.imap4 import connect_imap
from netproto_twisted.pop3 import connect_pop3
from netproto_twisted.smtp import send_mail
from netproto_twisted.testing import start_mail_servers


class MailServersTests(TestCase):
    async def test_welcome_mail_arrives(self) -> None:
        started = time.monotonic()
        servers = await start_mail_servers(reactor, self.mktemp(), {"alice": "pw"})
        self.addCleanup(servers.stop)
        self.assertLess(time.monotonic() - started, 1.0)
        await send_mail(reactor, "127.0.0.1", servers.smtp_port, "app@example.org",
                        "alice@example.org", b"Subject: welcome\r\n\r\nhi\r\n",
                        tls="none")  # fmt: skip
        imap = await connect_imap(reactor, "127.0.0.1", servers.imap_port, tls="none",
                                  username="alice", password="pw")  # fmt: skip
        await imap.select("INBOX")
        self.assertEqual(await imap.search("SUBJECT", "welcome"), [1])
        await imap.logout()

    async def test_pop3_and_a_user_added_later(self) -> None:
        servers = await start_mail_servers(reactor, self.mktemp())
        self.addCleanup(servers.stop)
        servers.add_user("bob", "secret")
        await send_mail(reactor, "127.0.0.1", servers.smtp_port, "app@example.org",
                        "bob@example.org", b"Subject: x\r\n\r\ny\r\n", tls="none")  # fmt: skip
        pop = await connect_pop3(reactor, "127.0.0.1", servers.pop3_port, tls="none",
                                 username="bob", password="secret")  # fmt: skip
        self.assertEqual((await pop.stat())[0], 1)
        await pop.quit()

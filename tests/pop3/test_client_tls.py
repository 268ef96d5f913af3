"""Our client against our server over loopback TLS: STLS and implicit TLS, verified."""

from __future__ import annotations

import os

from twisted.trial.unittest import TestCase

from netproto_twisted.core.tls import client_options
from netproto_twisted.pop3 import POP3ReplyError, connect_pop3

from .helpers import MESSAGES, PASSWORD, USER, make_maildir, password_file
from .loopback import LoopbackServer, reactor


class ClientTLSTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)
        self.base = os.path.join(self.dir, "mail")
        make_maildir(self.base)
        self.users = password_file(self.dir)

    def server(self, **kwargs: bool) -> LoopbackServer:
        server = LoopbackServer(self.dir, self.base, self.users, allow_insecure=False, **kwargs)
        self.addCleanup(server.stop)
        return server

    async def test_stls_then_scram(self) -> None:
        server = self.server()
        client = await connect_pop3(
            reactor, "localhost", server.number, tls="starttls",
            tls_options=client_options("localhost", ca_file=server.cert),
            username=USER, password=PASSWORD,
        )  # fmt: skip
        self.assertTrue(client.is_secure)
        self.assertEqual(await client.stat(), (3, 168))
        self.assertEqual(await client.retr(2), MESSAGES[1])
        await client.quit()

    async def test_implicit_tls_then_plain(self) -> None:
        server = self.server(implicit=True)
        client = await connect_pop3(
            reactor, "localhost", server.number, tls="implicit",
            tls_options=client_options("localhost", ca_file=server.cert),
            username=USER, password=PASSWORD, mechanism="PLAIN",
        )  # fmt: skip
        self.assertTrue(client.is_secure)
        capabilities = await client.capa()
        self.assertNotIn("STLS", capabilities)
        self.assertEqual(await client.top(1, 0), MESSAGES[0].split(b"\r\n\r\n")[0] + b"\r\n\r\n")
        await client.quit()

    async def test_without_tls_the_server_refuses_logins(self) -> None:
        server = self.server(tls=False)
        client = await connect_pop3(reactor, "127.0.0.1", server.number, tls="opportunistic")
        capabilities = await client.capa()
        self.assertNotIn("USER", capabilities)
        self.assertNotIn("SASL", capabilities)
        with self.assertRaises(POP3ReplyError) as caught:
            await client.user(USER)
        self.assertIn("TLS", str(caught.exception))
        await client.quit()

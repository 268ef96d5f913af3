"""Our server with our own client over loopback: BDAT, pipelining, implicit TLS, SCRAM."""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import io
import threading

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from netproto_twisted.core.tls import client_options, tls_server_endpoint_args
from netproto_twisted.smtp.client import connect_smtp
from tests.interop.test_smtp_server_peers import (
    PASSWORD,
    LiveServerMixin,
    maildir_messages,
    reactor,
)


class OwnClientTests(LiveServerMixin, TestCase):
    timeout = 60

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return self.start_server(
            self,
            submission=("ssl:0:interface=127.0.0.1",),
            complete=lambda text: (
                f"{text}:{tls_server_endpoint_args(self.cert, self.key)}"
                if text.startswith("ssl:")
                else text
            ),
        )

    def tls(self) -> object:
        return client_options("localhost", ca_file=self.cert)

    async def test_bdat_streamed_from_a_file(self) -> None:
        client = await connect_smtp(reactor, "127.0.0.1", self.mx, tls="none")
        self.addCleanup(client.close)
        body = b"Subject: chunks\r\n\r\n" + b"line\r\n.dot line\r\n" * 50_000
        result = await client.send_message(
            "s@client.example",
            ["alice@example.org", "nobody@example.org"],
            io.BytesIO(body),
            use_bdat=True,
        )
        self.assertEqual(list(result.accepted), ["alice@example.org"])
        self.assertEqual(result.refused["nobody@example.org"].code, 550)
        assert result.data_reply is not None
        self.assertEqual(result.data_reply.code, 250)
        [stored] = maildir_messages(self.maildir, "alice")
        self.assertTrue(stored.endswith(body))  # BDAT: no dot-stuffing either way
        await client.quit()

    async def test_message_file_is_read_off_the_reactor_thread(self) -> None:
        main = threading.current_thread()
        readers: list[threading.Thread] = []

        class File(io.RawIOBase):
            """A file whose reads say which thread made them (it is not seekable)."""

            def __init__(self, data: bytes) -> None:
                self._data = io.BytesIO(data)

            def readable(self) -> bool:
                return True

            def read(self, size: int = -1) -> bytes:
                readers.append(threading.current_thread())
                return self._data.read(size)

        body = b"Subject: threads\r\n\r\n" + b"x" * 78 + b"\r\n" * 2000
        for use_bdat in (False, True):
            readers.clear()
            client = await connect_smtp(reactor, "127.0.0.1", self.mx, tls="none")
            self.addCleanup(client.close)
            result = await client.send_message(
                "s@client.example", ["alice@example.org"], File(body), use_bdat=use_bdat
            )
            self.assertEqual(list(result.accepted), ["alice@example.org"])
            await client.quit()
            self.assertTrue(readers)
            self.assertNotIn(main, readers)
        stored = maildir_messages(self.maildir, "alice")
        self.assertEqual(len(stored), 2)
        self.assertTrue(all(m.endswith(body) for m in stored))

    async def test_many_messages_on_one_connection(self) -> None:
        client = await connect_smtp(reactor, "127.0.0.1", self.mx, tls="none")
        self.addCleanup(client.close)
        for n in range(20):
            message = b"Subject: %d\r\n\r\n.leading dot\r\n" % n
            result = await client.send_message("s@client.example", ["bob@example.org"], message)
            self.assertEqual(list(result.accepted), ["bob@example.org"])
        stored = maildir_messages(self.maildir, "bob")
        self.assertEqual(len(stored), 20)
        self.assertTrue(all(m.endswith(b"\r\n.leading dot\r\n") for m in stored))
        await client.quit()

    async def test_implicit_tls_scram_submission(self) -> None:
        client = await connect_smtp(
            reactor,
            "127.0.0.1",
            self.submission,
            tls="implicit",
            tls_options=self.tls(),  # type: ignore[arg-type]
            username="bob",
            password=PASSWORD,
        )
        self.addCleanup(client.close)
        self.assertTrue(client.is_secure)
        result = await client.send_message(
            "bob@example.org", ["far@far.example"], b"Subject: out\r\n\r\nx\r\n"
        )
        self.assertEqual(list(result.accepted), ["far@far.example"])
        [message] = self.relay.messages
        self.assertEqual(message.envelope.authenticated_as, "bob")
        self.assertTrue(message.envelope.tls)
        self.assertIn(b"with ESMTPSA", message.data)
        await client.quit()
